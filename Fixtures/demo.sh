#!/usr/bin/env bash
# Runs each LoRA Tools command on the bundled fixtures (after `swift build -c release`).
# Outputs go to a temporary folder; every command is echoed before it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { printf '\n$ %s\n' "$*"; "$@"; }

run $bin/lora-inspect --summary Fixtures/models/*.safetensors Fixtures/golden/*.safetensors Fixtures/golden/ckpt/lora_*
run $bin/lora-inspect Fixtures/golden/sd1_kohya_lora.safetensors
run $bin/lora-merge --model Fixtures/models/sd1_tiny.safetensors --lora Fixtures/models/sd1_tiny_lora.safetensors:0.8 \
    --lora Fixtures/golden/kohya/kohya_locon_r4.safetensors:1:lbw=OUTALL --precision fp16 -o "$out/merged.safetensors"
run $bin/lora-merge loras Fixtures/golden/kohya/kohya_lora_r4.safetensors:0.6 Fixtures/golden/kohya/kohya_locon_r4.safetensors:0.4 \
    --rank 2 -o "$out/combined.safetensors"
run $bin/lora-extract --base Fixtures/models/sd1_tiny.safetensors --tuned "$out/merged.safetensors" --rank 4 --conv-rank 2 \
    -o "$out/extracted.safetensors"
run $bin/lora-extract resize "$out/extracted.safetensors" --dynamic sv_fro=0.9 -o "$out/resized.safetensors"
run $bin/lora-inspect --summary "$out/merged.safetensors" "$out/combined.safetensors" "$out/extracted.safetensors" "$out/resized.safetensors"
