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
