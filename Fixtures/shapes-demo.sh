#!/usr/bin/env bash
# The whole LoRA story on a tiny shapes model trained from scratch by `lora-bench tiny-model` (after
# `swift build -c release`; the model is the first argument): it has seen circles, squares and
# triangles of six colours and never a star. A concept folder in kohya's
# layout teaches it one, "zkw shape"; the LoRA is trained, inspected, merged, extracted again from the
# merged model, measured, and drawn on an epoch x weight sheet with seeds on Z. Every command is echoed before it runs; everything stays in demo-output/
# (or $DEMO_OUT), which git ignores.
#   bash Fixtures/shapes-demo.sh shapes_tiny.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
out=${DEMO_OUT:-demo-output}
rm -rf "$out"; mkdir -p "$out"
run() { printf '\n$ %s\n' "$*"; "$@"; }
model=${1:?usage: Fixtures/shapes-demo.sh MODEL (from lora-bench tiny-model)}
tokenizer=Fixtures/tokenizer/clip_bpe_merges.txt.gz
prompt='zkw shape, a yellow star on a blue background'

run $bin/lora-inspect --summary $model
# 16 stars of random colours, sizes and places, captioned "zkw shape, a red star on a white background".
run $bin/lora-bench shapes --out "$out/dataset" --count 16 --concept
run $bin/lora-train --model $model --tokenizer $tokenizer --train-data-dir "$out/dataset" --output-dir "$out/train" \
    --output-name zkw --resolution 64 --train-batch-size 4 --network-dim 8 --network-alpha 8 --learning-rate 2e-3 \
    --caption-extension .txt --max-train-epochs 4 --save-every-n-epochs 1 --seed 1
run $bin/lora-inspect "$out/train/zkw.safetensors"
run $bin/lora-merge --model $model --lora "$out/train/zkw.safetensors" -o "$out/merged.safetensors"
run $bin/lora-extract --base $model --tuned "$out/merged.safetensors" --rank 8 -o "$out/extracted.safetensors"
# The effect, measured: each render is read by pixel statistics (shape by mask moments, colour by palette).
run $bin/lora-bench shapes-eval --model $model --lora "$out/train/zkw.safetensors" --weights 0,0.5,1 \
    --prompt "star:yellow:$prompt" --seeds 8
run $bin/lora-bench shapes-eval --model $model --lora "$out/extracted.safetensors" --weights 1 --prompt "star:yellow:$prompt" --seeds 8
run $bin/lora-bench shapes-eval --model "$out/merged.safetensors" --prompt "star:yellow:$prompt" --seeds 8
run $bin/lora-xyz --model $model --loras "$out/train/zkw*.safetensors" --weights 0,0.5,1 --prompt "$prompt, <lora>" \
    --seeds 1,2,3 --steps 20 --cfg 5 --width 64 --height 64 --tokenizer $tokenizer --cells "$out/cells" -o "$out/sheet.png"

printf '\nThe sheets: %s (columns: epochs 1-4; rows: LoRA weight 0, 0.5, 1; one sheet per seed). Cells: %s/\n' "$out/sheet-z*.png" "$out/cells"
