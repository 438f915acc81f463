#!/usr/bin/env python3
"""Python's `random` as kohya's validation split uses it, for PythonRandom.

Run by hand from the repository root (plain CPython 3): python3 Fixtures/golden/make_python_random_golden.py
Writes Fixtures/golden/random/python_random.json: for several seeds (0, small, 32-bit, 64-bit), the first
words of `getrandbits(32)` after `random.seed(seed)`, and `random.shuffle` of range(n) for several n,
and the train/validation halves sd-scripts' `split_train_val` (library/train_util.py) gives for a few
(n, validation_split, validation_seed).
"""
import json
import math
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "random", "python_random.json")

cases = []
for seed in [0, 1, 42, 1234, 2**31 - 1, 2**32 + 5, 2**63 + 12345]:
    random.seed(seed)
    words = [random.getrandbits(32) for _ in range(8)]
    shuffles = {}
    for n in [1, 2, 5, 10, 37, 1000]:
        random.seed(seed)
        items = list(range(n))
        random.shuffle(items)
        shuffles[str(n)] = items
    cases.append({"seed": str(seed), "getrandbits32": words, "shuffles": shuffles})


def split_train_val(n, validation_split, validation_seed):
    # sd-scripts' split_train_val with a validation seed, on indices instead of paths.
    dataset = list(range(n))
    state = random.getstate()
    random.seed(validation_seed)
    random.shuffle(dataset)
    random.setstate(state)
    train = dataset[0:math.ceil(n * (1 - validation_split))]
    validation = dataset[n - round(n * validation_split):]
    return train, validation


splits = []
for n, fraction, seed in [(10, 0.2, 42), (10, 0.15, 42), (7, 0.5, 3), (16, 0.25, 1), (3, 0.1, 0)]:
    train, validation = split_train_val(n, fraction, seed)
    splits.append({"n": n, "split": fraction, "seed": seed, "train": train, "validation": validation})

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"python": sys.version.split()[0], "cases": cases, "splits": splits}, f, separators=(",", ":"))
print(OUT)
