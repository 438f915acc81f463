#!/usr/bin/env bash
# A tour of the file formats: each LoRA Tools command on the bundled format fixtures (after
# `swift build -c release`); the quick start is Fixtures/demo.sh.
# Outputs go to a temporary folder (or $DEMO_OUT); every command is echoed before it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
# DEMO_OUT=folder keeps the outputs (the sheets, cells and manifest) to look at.
if [ -n "${DEMO_OUT:-}" ]; then out=$DEMO_OUT; mkdir -p "$out"; else out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
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

# A comparison sheet: a tiny random-weight SD1 model (so the images are noise-like patterns) and
# three LoRAs as epochs, two weights, two seeds; the second run comes entirely from the cache.
run $bin/lora-bench fixtures --all --out "$out/engine" >/dev/null
for kind in lora locon loha; do cp "$out/engine/sd1_engine_$kind.safetensors" "$out/engine/demo-$kind.safetensors"; done
xyz=($bin/lora-xyz --model "$out/engine/sd1_engine.safetensors" --loras "$out/engine/demo-*.safetensors" --weights 0.5,1
     --prompt 'a cat, <lora>' --negative 'blurry' --seeds 1,2 --sampler 'DPM++ 2M Karras' --steps 4 --width 64 --height 64
     --tokenizer Fixtures/tokenizer/clip_bpe_merges.txt.gz -o "$out/sheet.png")
run "${xyz[@]}" --dry-run
run "${xyz[@]}" --combined --cells "$out/cells"
run "${xyz[@]}" --combined

# Training, end to end: a procedural concept folder in kohya's layout (stars captioned "zkw shape, …"),
# two epochs of a LoRA on the same tiny random-weight model with a sample image per epoch, the file
# inspected, merged, and drawn on an epoch x weight sheet.
run $bin/lora-bench shapes --out "$out/dataset" --count 8 --concept
printf '# kohya prompt file\nzkw shape, a red star on a white background --w 64 --h 64 --s 4 --d 1\n' > "$out/prompts.txt"
run $bin/lora-train --model "$out/engine/sd1_engine.safetensors" --tokenizer Fixtures/tokenizer/clip_bpe_merges.txt.gz \
    --train-data-dir "$out/dataset" --output-dir "$out/train" --output-name zkw --resolution 64 --train-batch-size 4 \
    --network-dim 4 --network-alpha 4 --learning-rate 1e-3 --caption-extension .txt --max-train-epochs 2 \
    --save-every-n-epochs 1 --sample-prompts "$out/prompts.txt" --sample-every-n-epochs 1
run $bin/lora-inspect "$out/train/zkw.safetensors"
run $bin/lora-merge --model "$out/engine/sd1_engine.safetensors" --lora "$out/train/zkw.safetensors" -o "$out/train/merged.safetensors"
run $bin/lora-xyz --model "$out/engine/sd1_engine.safetensors" --loras "$out/train/zkw*.safetensors" --weights 0,1 \
    --prompt 'zkw shape, a red star, <lora>' --seeds 1 --steps 4 --width 64 --height 64 \
    --tokenizer Fixtures/tokenizer/clip_bpe_merges.txt.gz -o "$out/train-sheet.png"
