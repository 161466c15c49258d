#!/usr/bin/env bash
# Create (or refresh) .venv with the pinned development requirements. Idempotent: quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.memstab-reqs
want="$(cat requirements-dev.txt requirements-ui.txt; echo k-diffusion==0.1.1.post1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps k-diffusion==0.1.1.post1
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-ui.txt
  printf '%s' "$want" > "$stamp"
fi
# gradio 4.40.0 (Forge 2's pin) in a folder of its own, .venv/gradio4, for the test that builds the UI under gradio 4:
# it puts the folder first on sys.path in a subprocess. --no-deps: requirements-ui4.txt lists only what gradio 4 needs
# beyond .venv's packages.
g4=.venv/gradio4
if [ ! -f "$g4/.memstab-reqs" ] || ! cmp -s requirements-ui4.txt "$g4/.memstab-reqs"; then
  rm -rf "$g4"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target "$g4" -r requirements-ui4.txt
  cp requirements-ui4.txt "$g4/.memstab-reqs"
fi
