#!/usr/bin/env bash
# Build a live reForge (Panchovix/stable-diffusion-webui-reForge main 3b56b268, 2026-03-11) test host for this
# extension, CPU only, outside the checkout (measured 2026-12-03 on the 2-core machine; venv ~1.5 min from the
# local wheel cache). Needs an A1111 host built by setup.sh (its HF cache, repositories/ and models/VAE-approx/model.pt)
# and the Forge host's full-size random SD-1.5 checkpoint (setup_forge.sh builds it).
# Usage: tools/live_webui/setup_reforge.sh <dest> <reforge-tree-already-laid-out> <a1111-dest> <a1111-sdw> <forge-ckpt>
# The reForge tree comes from a git archive of 3b56b268 (extract blob by blob if a snapshot lacks some; one missing
# here, ldm_patched/modules/text_encoders/llama_tokenizer/tokenizer.json, is not needed for SD-1.5).
# repositories/: launch_utils.py wants joypaul162/Stability-AI-stablediffusion f16630a9 (not obtainable here);
# the A1111 host's trees are used instead (stablediffusion cf1d67a6, generative-models 45c443b3, k-diffusion
# ab527a9a, BLIP 48211a15, assets 6f7db241).
# reForge guesses the architecture (ldm_patched model_detection) and ignores a YAML beside the checkpoint: the tiny
# A1111 checkpoint is rejected ("Could not detect model type"), the full-size one loads.
set -euo pipefail
DEST=$1; SRC=$2; A1=$3; SDW=$4; CKPT=$5; HERE=$(cd "$(dirname "$0")" && pwd); EXT=$(cd "$HERE/../.." && pwd)
python3.11 -m venv "$DEST/venv"
# requirements: CRLF stripped, trailing blanks stripped, setuptools unpinned like the others, torch pinned,
# the pydantic GitHub wheel (unreachable) replaced by PyPI's pydantic 1.10.15; the last line has no newline.
{ tr -d '\r' < "$SRC/requirements_versions.txt"; echo; } | sed 's/ *$//' | sed '/^$/d' \
  | sed 's/^setuptools==69.5.1.*/setuptools>=77,<81/' | sed 's/^torch$/torch==2.14.1/' \
  | sed 's#^https://github.com/Panchovix/pydantic-fixreforge.*#pydantic==1.10.15#' > "$DEST/reqs.txt"
printf 'torchvision==0.29.1\njoblib\nclip-anytorch\n' >> "$DEST/reqs.txt"   # k_diff/evaluation.py imports clip
"$DEST/venv/bin/pip" install -q -U pip "setuptools>=77,<81" wheel
"$DEST/venv/bin/pip" install --find-links /opt/pypi-more/files torch==2.14.1 torchvision==0.29.1
"$DEST/venv/bin/pip" install --find-links /opt/pypi-more/files -r "$DEST/reqs.txt"
mkdir -p "$SRC/repositories"
for r in stable-diffusion-stability-ai generative-models k-diffusion BLIP stable-diffusion-webui-assets; do
  [ -e "$SRC/repositories/$r" ] || cp -a "$SDW/repositories/$r" "$SRC/repositories/"
done
# reForge calls sd_vae_approx.model() in every process_images and no longer ships model.pt: without it each
# generation tries to download it and answers 500 (URLError).
cp -n "$SDW/models/VAE-approx/model.pt" "$SRC/models/VAE-approx/model.pt"
ln -sfn "$CKPT" "$SRC/models/Stable-diffusion/sd15-random.safetensors"
# check 12 needs a second loadable checkpoint with another hash (not the tiny one: reForge cannot load it): the same
# weights re-saved with different metadata (~20 s, 2 GB); run smoke.py with MEMSTAB_LIVE_CKPT2=sd15-random-b.
[ -f "$DEST/sd15-random-b.safetensors" ] || "$DEST/venv/bin/python" -c "from safetensors.torch import load_file, save_file; \
save_file(load_file('$CKPT'), '$DEST/sd15-random-b.safetensors', metadata={'memstab_live_variant': 'b'})"
ln -sfn "$DEST/sd15-random-b.safetensors" "$SRC/models/Stable-diffusion/sd15-random-b.safetensors"
ln -sfn "$EXT" "$SRC/extensions/sd-webui-memstab"
# (No shim is needed: calibration gives reference runs an empty ScriptRunner, which reForge's processing.py:1065
# requires; with p.scripts = None every calibration failed there.)
# check 13 of smoke.py: ln -sfn $HERE/fault_injector $SRC/extensions/memstab-fault-injector, start the webui with
# MEMSTAB_FAULT_FLAG=<path> and run smoke.py with MEMSTAB_LIVE_FAULT_FLAG=<same path>.
mkdir -p "$DEST/profiles"
echo "{\"memstab_profile_dir\": \"$DEST/profiles\", \"emphasis\": \"None\"}" > "$SRC/config.json"
cat <<MSG
start:  cd $SRC && HF_HOME=$A1/hf HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $DEST/venv/bin/python launch.py \\
  --skip-prepare-environment --skip-install --skip-torch-cuda-test --always-cpu --no-download-sd-model --api --nowebui \\
  --port PORT --server-name 127.0.0.1 --skip-version-check --ckpt models/Stable-diffusion/sd15-random.safetensors > LOG 2>&1
smoke:  MEMSTAB_LIVE_CKPT2=sd15-random-b $DEST/venv/bin/python $HERE/smoke.py http://127.0.0.1:PORT --log LOG
MSG
