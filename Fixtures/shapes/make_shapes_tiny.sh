#!/usr/bin/env bash
# Retrains Fixtures/shapes/shapes_tiny.safetensors from scratch with our own tools (the recipe is also in
# the file's lora_tools.recipe metadata): the VAE, then the U-Net on a frozen random CLIP (lora-bench
# tiny-model's defaults), then a second U-Net stage at half the learning rate on other scenes. 2,000 VAE
# steps and 3,600 + 1,800 U-Net steps, each batch of 8 split into 2 shards that run at once, one core each
# (--shards, part of the recipe). Rerun in full on 2 AMD EPYC cores (AVX2) on 2026-12-02 08:20 with nothing
# beside it: 34 min 29 s (stage 1 1,559 s, stage 2 510 s; VAE step 0.26 s, U-Net step 0.28 s), against 55 min
# before the shards (0.44 / 0.45 s a step).
# The same commands give the same file bit for bit on a host with the same kernels, whatever its number of
# cores (checked on short runs: 1 core under taskset against 2). Kernels that round differently (an AVX-512 host) give
# another file. The committed file was made before the shards, with earlier kernels, so this script no longer
# reproduces it. Today's rerun is the better base model (seen prompts 62/72 right against 60/72, VAE round
# trip MSE 0.0253 against 0.0277, `lora-bench shapes-eval`), but the quick start's star LoRA learns less
# reliably on it: with demo.sh's settings and lora-train seeds 1, 2, 3, a yellow star at weight 1 in 2, 3 and 2
# of 8 renders (a star of any colour in 2, 6, 7), against 7, 5 and 4 of 8 on the committed file; other rates,
# ranks, epochs and kohya's noise offset / min-SNR did no better over three seeds. So the committed file stays
# the quick start's model, and demo.sh's numbers belong to it.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product lora-bench
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
.build/release/lora-bench tiny-model --out "$stage/stage1.safetensors"
.build/release/lora-bench tiny-model --from "$stage/stage1.safetensors" --vae-steps 0 --unet-steps 1800 --unet-rate 5e-4 --seed 2 \
    --save-precision fp8 --out Fixtures/shapes/shapes_tiny.safetensors
# --save-precision fp8: matrices and kernels as F8_E4M3, biases and norms fp16 (9.2 MB instead of 18.2 MB in fp16;
# the repository's limit for a fixture is 10 MB). The committed file was made before our writer could write
# fp8: stage 2 wrote fp16 and torch converted it (fp32 -> fp16 -> fp8). Rounding once, as here, moves about
# one value in 300 by one fp8 step, so a rerun of this script gives a file that draws the same but is not
# bit-identical to the committed one.
