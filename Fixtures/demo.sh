#!/usr/bin/env bash
# The quick start: the whole LoRA story on the bundled tiny shapes model (after `swift build -c release`).
# The model (Fixtures/shapes/shapes_tiny.safetensors, trained from scratch by `lora-bench tiny-model`; its
# recipe is in its metadata) has seen circles, squares and triangles of six colours and never a star. A
# concept folder in kohya's layout teaches it one, "zkw shape": the LoRA is trained, inspected, merged,
# extracted again from the merged model, measured (each render read by pixel statistics), and drawn on an
# epoch x weight sheet with seeds on Z. Every command is echoed before it runs. Everything stays in
# demo-output/ (or $DEMO_OUT), which git ignores. Another model (e.g. one you trained): the first argument.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
out=${DEMO_OUT:-demo-output}
rm -rf "$out"; mkdir -p "$out"
run() { printf '\n$ %s\n' "$*"; "$@"; }
model=${1:-Fixtures/shapes/shapes_tiny.safetensors}
tokenizer=Fixtures/tokenizer/clip_bpe_merges.txt.gz
prompt='zkw shape, a yellow star on a blue background'

run $bin/lora-inspect --summary $model
# What the base model draws for prompts it was trained on, read back by pixel statistics.
run $bin/lora-bench shapes-eval --model $model --seeds 4 --prompt "circle:red:a red circle on a white background" \
    --prompt "square:blue:a blue square on a yellow background" --prompt "triangle:white:a white triangle on a black background"
# 16 stars of random colours, sizes and places, captioned "zkw shape, a red star on a white background".
run $bin/lora-bench shapes --out "$out/dataset" --count 16 --concept
run $bin/lora-train --model $model --tokenizer $tokenizer --train-data-dir "$out/dataset" --output-dir "$out/train" \
    --output-name zkw --resolution 64 --train-batch-size 4 --network-dim 8 --network-alpha 8 --learning-rate 1e-3 \
    --caption-extension .txt --max-train-epochs 4 --save-every-n-epochs 1 --seed 1
run $bin/lora-inspect "$out/train/zkw.safetensors"
# The model stores its matrices in fp8. Merged in fp8 (lora-merge's default: each tensor's own dtype) the star LoRA's change
# comes out 23% off and half its values round back to the base's (it still draws 7/8 stars); the merged model here is fp16.
run $bin/lora-merge --model $model --lora "$out/train/zkw.safetensors" --precision fp16 -o "$out/merged.safetensors"
run $bin/lora-extract --base $model --tuned "$out/merged.safetensors" --rank 8 -o "$out/extracted.safetensors"
# The effect, measured: the share of renders that show a star, by LoRA weight, then by epoch at weight 1;
# the merged model and the extracted LoRA should measure as the LoRA does.
run $bin/lora-bench shapes-eval --model $model --lora "$out/train/zkw.safetensors" --weights 0,0.5,1 \
    --prompt "star:yellow:$prompt" --seeds 8
for epoch in "$out"/train/zkw-0000*.safetensors "$out/train/zkw.safetensors"; do
    run $bin/lora-bench shapes-eval --model $model --lora "$epoch" --prompt "star:yellow:$prompt" --seeds 8
done
run $bin/lora-bench shapes-eval --model "$out/merged.safetensors" --prompt "star:yellow:$prompt" --seeds 8
run $bin/lora-bench shapes-eval --model $model --lora "$out/extracted.safetensors" --prompt "star:yellow:$prompt" --seeds 8
run $bin/lora-xyz --model $model --loras "$out/train/zkw*.safetensors" --weights 0,0.5,1 --prompt "$prompt, <lora>" \
    --seeds 1,2,3 --steps 20 --cfg 5 --width 64 --height 64 --tokenizer $tokenizer --cells "$out/cells" -o "$out/sheet.png"

printf '\nThe sheets: %s (columns: epochs 1-4; rows: LoRA weight 0, 0.5, 1; one sheet per seed). Cells: %s/\n' \
    "$(ls "$out"/sheet*.png | tr '\n' ' ')" "$out/cells"
