#!/usr/bin/env bash
# Build a live AUTOMATIC1111 v1.10.1 test host for this extension, CPU only, outside the checkout (measured recipe:
# /work/shared/research/live-webui.md). Usage: tools/live_webui/setup.sh <dest> <sdw-tree-already-laid-out>
# The webui tree and its repositories/ come from git archives of: webui 82a973c0 (CoderBotics-ai fork),
# stablediffusion cf1d67a6, generative-models 45c443b3, k-diffusion ab527a9a, BLIP 48211a15,
# stable-diffusion-webui-assets 6f7db241 (a few large sample images may be missing from a snapshot; none is needed).
set -euo pipefail
DEST=$1; SDW=$2; HERE=$(cd "$(dirname "$0")" && pwd); EXT=$(cd "$HERE/../.." && pwd)
python3 -m venv "$DEST/venv"
tr -d '\r' < "$SDW/requirements_versions.txt" | sed 's/^setuptools==69.5.1.*/setuptools>=77,<81/' > "$DEST/reqs.txt"
echo clip-anytorch >> "$DEST/reqs.txt"
"$DEST/venv/bin/pip" install -q -U pip "setuptools>=77,<81" wheel
"$DEST/venv/bin/pip" install torch==2.14.1 torchvision==0.29.1
"$DEST/venv/bin/pip" install -r "$DEST/reqs.txt"
"$DEST/venv/bin/python" "$HERE/build_hf_cache.py" "$DEST/hf"
HF_HOME="$DEST/hf" HF_HUB_OFFLINE=1 "$DEST/venv/bin/python" "$HERE/build_tiny_ckpt.py" "$SDW"
ln -sfn "$EXT" "$SDW/extensions/sd-webui-memstab"
mkdir -p "$DEST/profiles"
echo "{\"memstab_profile_dir\": \"$DEST/profiles\", \"emphasis\": \"None\"}" > "$SDW/config.json"
cat <<MSG
start:  cd $SDW && HF_HOME=$DEST/hf HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $DEST/venv/bin/python launch.py \\
  --skip-prepare-environment --skip-torch-cuda-test --use-cpu all --no-half --no-download-sd-model --api --nowebui \\
  --port PORT --server-name 127.0.0.1 --skip-version-check --ckpt models/Stable-diffusion/tiny-random.safetensors > LOG 2>&1
smoke:  $DEST/venv/bin/python $HERE/smoke.py http://127.0.0.1:PORT --log LOG
MSG
