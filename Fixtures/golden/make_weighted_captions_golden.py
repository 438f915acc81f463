#!/usr/bin/env python3
"""sd-scripts' --weighted_captions tokenization, for CaptionEncoder.weightedChunks.

Run by hand from the repository root (needs torch, transformers, open_clip and an sd-scripts checkout):
    SD_SCRIPTS=/path/to/sd-scripts python3 Fixtures/golden/make_weighted_captions_golden.py
Writes Fixtures/golden/kohya/weighted_captions.json: for each caption and max_token_length (75, 150),
the token ids per 77-token chunk and the weight of every position, as sd-scripts'
TokenizeStrategy._get_input_ids(..., weighted=True) gives them (library/strategy_base.py, which
SdTokenizeStrategy.tokenize_with_weights calls with max_length = max_token_length + 2), through
transformers' CLIPTokenizer built from the committed BPE merges (make_engine_golden.tokenizer_files).
"""
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.environ["SD_SCRIPTS"])

from make_engine_golden import tokenizer_files  # noqa: E402
from library.strategy_base import TokenizeStrategy  # noqa: E402

CAPTIONS = [
    "zkw shape, a red star on a blue background",
    "zkw shape, (red star:1.3), [blue background], ((bright))",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    "(word: 1.2) keeps its space and is no weight here, \\(literal\\) (unbalanced",
    "(" + ", ".join(f"tag{i}" for i in range(60)) + ":1.5), tail words after the long group",
    "[[" + ", ".join(f"word{i}" for i in range(100)) + "]]",
    "",
]

with tempfile.TemporaryDirectory() as folder:
    tokenizer = tokenizer_files(folder)
    tokenizer.model_max_length = 77   # the SD tokenizer's (a tokenizer built from files has no limit)
    strategy = object.__new__(TokenizeStrategy)
    cases = []
    for caption in CAPTIONS:
        for length in (75, 150):
            ids, weights = strategy._get_input_ids(tokenizer, caption, length + 2, weighted=True)
            ids = ids.reshape(-1, 77)
            weights = weights.reshape(-1, 77)
            cases.append({"caption": caption, "max_token_length": length, "ids": ids.tolist(),
                          "weights": [[float(w) for w in row] for row in weights.float().tolist()]})

out = os.path.join(HERE, "kohya", "weighted_captions.json")
with open(out, "w") as f:
    json.dump({"cases": cases}, f, separators=(",", ":"))
print(out, len(cases), "cases")
