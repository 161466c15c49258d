#!/usr/bin/env bash
# Build a live Forge 2 (dfdcbab6) test host for this extension, CPU only, outside the checkout (measured recipe:
# /work/shared/research/live-webui.md). Needs an A1111 host built by setup.sh first (its venv, HF cache and
# repositories/stable-diffusion-stability-ai build the checkpoint).
# Usage: tools/live_webui/setup_forge.sh <dest> <forge-tree-already-laid-out> <a1111-dest> <a1111-sdw>
# The Forge tree and its repositories/ come from git archives of: lllyasviel/stable-diffusion-webui-forge dfdcbab6,
# huggingface_guess 84826248, stable-diffusion-webui-assets 6f7db241, BLIP 48211a15 (BLIP.gif may be missing).
# Forge only recognises SD-1.5's real channel counts: the checkpoint is full size with random weights (~2.1 GB fp16).
set -euo pipefail
DEST=$1; SDF=$2; A1=$3; SDW=$4; HERE=$(cd "$(dirname "$0")" && pwd); EXT=$(cd "$HERE/../.." && pwd)
python3 -m venv "$DEST/venv"
tr -d '\r' < "$SDF/requirements_versions.txt" | sed 's/^setuptools==69.5.1.*/setuptools>=77,<81/' \
  | sed 's/^torch$/torch==2.14.1/' > "$DEST/reqs.txt"
printf 'torchvision==0.29.1\njoblib\n' >> "$DEST/reqs.txt"
"$DEST/venv/bin/pip" install -q -U pip "setuptools>=77,<81" wheel
"$DEST/venv/bin/pip" install torch==2.14.1 torchvision==0.29.1
"$DEST/venv/bin/pip" install -r "$DEST/reqs.txt"
CKPT="$SDF/models/Stable-diffusion/sd15-random.safetensors"
[ -f "$CKPT" ] || HF_HOME="$A1/hf" HF_HUB_OFFLINE=1 "$A1/venv/bin/python" "$HERE/build_tiny_ckpt.py" "$SDW" --full "$CKPT"
ln -sfn "$EXT" "$SDF/extensions/sd-webui-memstab"
mkdir -p "$DEST/profiles"
echo "{\"memstab_profile_dir\": \"$DEST/profiles\", \"emphasis\": \"None\"}" > "$SDF/config.json"
cat <<MSG
start:  cd $SDF && HF_HOME=$A1/hf HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $DEST/venv/bin/python launch.py \\
  --skip-prepare-environment --skip-install --skip-torch-cuda-test --always-cpu --no-download-sd-model --api --nowebui \\
  --port PORT --server-name 127.0.0.1 --skip-version-check --ckpt models/Stable-diffusion/sd15-random.safetensors > LOG 2>&1
smoke:  $DEST/venv/bin/python $HERE/smoke.py http://127.0.0.1:PORT --log LOG
MSG
