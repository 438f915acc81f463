#!/usr/bin/env bash
# Retrains Fixtures/shapes/shapes_tiny.safetensors from scratch with our own tools (the recipe is also in
# the file's lora_tools.recipe metadata): the VAE, then the U-Net on a frozen random CLIP (lora-bench
# tiny-model's defaults), then a second U-Net stage at half the learning rate on other scenes. About 55 min
# on 2 AMD EPYC cores (AVX2). The same commands give the same file on a host with the same kernel path;
# an AVX-512 host rounds its GEMMs differently, so its file differs in the last bits (and draws the same).
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product lora-bench
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
.build/release/lora-bench tiny-model --out "$stage/stage1.safetensors"
.build/release/lora-bench tiny-model --from "$stage/stage1.safetensors" --vae-steps 0 --unet-steps 1800 --unet-rate 5e-4 --seed 2 \
    --out "$stage/shapes_tiny_fp16.safetensors"
# Matrices to F8_E4M3 (torch + safetensors; see to_fp8.py): the committed file must stay under 10 MB.
python3 Fixtures/shapes/to_fp8.py "$stage/shapes_tiny_fp16.safetensors" Fixtures/shapes/shapes_tiny.safetensors
