#!/usr/bin/env python3
"""kohya's own train_network.py, timed per optimizer step: the reference side of `lora-bench kohya-train`.

    python3 Benchmarks/kohya_train_timed.py --sd-scripts /path/to/sd-scripts --merges Fixtures/tokenizer/clip_bpe_merges.txt.gz \\
        --tokenizer-cache /tmp/kohya-tokenizer --json-out times.json -- <train_network.py arguments>

Runs the checkout's train_network.py unchanged in this process, with a global optimizer step hook (torch's
register_optimizer_step_post_hook) that notes the time after each step, and writes JSON: the seconds between
consecutive steps (step 1 has no start mark: its time includes the script's set-up and is left out), torch's
version, threads and CPU capability. Peak memory is measured by the caller (wait4), as /usr/bin/time -v does.

kohya loads the CLIP tokenizer from the Hugging Face hub unless --tokenizer_cache_dir holds a saved copy; with no
hub to reach, --merges builds that copy (vocab.json derived from the merges as CLIP's own tokenizer derives it) into
--tokenizer-cache, and --tokenizer_cache_dir is passed to kohya. Needs kohya's requirements (accelerate,
transformers, diffusers, …) and torchvision in the same Python.
"""
import argparse
import gzip
import json
import os
import runpy
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--sd-scripts", required=True, help="a checkout of kohya-ss/sd-scripts")
parser.add_argument("--merges", required=True, help="CLIP's BPE merges (bpe_simple_vocab_16e6.txt[.gz] or its first 48,895 lines)")
parser.add_argument("--tokenizer-cache", required=True, help="folder for the saved tokenizer (made once)")
parser.add_argument("--json-out", required=True)
parser.add_argument("kohya_args", nargs=argparse.REMAINDER)
args = parser.parse_args()
kohya_args = args.kohya_args[1:] if args.kohya_args[:1] == ["--"] else args.kohya_args


def bytes_to_unicode():
    """CLIP's byte ↔ printable-character table (the 256 base symbols of its vocabulary)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def save_tokenizer(merges_path, folder):
    from transformers import CLIPTokenizer
    opener = gzip.open if merges_path.endswith(".gz") else open
    with opener(merges_path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [line for line in lines[1:48895] if line]  # CLIP uses the first 49152 - 256 - 2 merges
    symbols = bytes_to_unicode()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({token: i for i, token in enumerate(vocab)}, f)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), pad_token="<|endoftext|>")
    tokenizer.model_max_length = 77
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407], "not CLIP's vocabulary"
    tokenizer.save_pretrained(folder)


# kohya looks for <cache>/<hub id with / as _> (library/strategy_base.py, _load_tokenizer).
cached = os.path.join(args.tokenizer_cache, "openai_clip-vit-large-patch14")
if not os.path.exists(os.path.join(cached, "tokenizer_config.json")):
    save_tokenizer(args.merges, cached)

import torch  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_post_hook  # noqa: E402

marks = []
register_optimizer_step_post_hook(lambda optimizer, a, k: marks.append(time.perf_counter()))

script = os.path.join(args.sd_scripts, "train_network.py")
sys.argv = [script] + kohya_args + ["--tokenizer_cache_dir", args.tokenizer_cache]
sys.path.insert(0, args.sd_scripts)
try:
    runpy.run_path(script, run_name="__main__")
finally:
    with open(args.json_out, "w") as f:
        json.dump({
            "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "steps": len(marks), "step_seconds": [b - a for a, b in zip(marks, marks[1:])], "step_seconds_begin_at_step": 2,
        }, f, indent=1)
