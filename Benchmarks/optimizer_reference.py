#!/usr/bin/env python3
"""The torch side of `lora-bench optimizer`: one step of each optimizer kohya loads, from its own package, over the
parameter shapes `lora-bench optimizer --shapes-out shapes.json` writes (kohya's SD1.5 LoRA at a rank), the same
fixed gradients, one parameter group, as kohya builds it (torch's default foreach path where the package has one):

    lora-bench optimizer --rank 32 --shapes-out /tmp/shapes.json
    python3 Benchmarks/optimizer_reference.py /tmp/shapes.json [--threads 2] [--steps 5]
"""
import argparse
import json
import math
import statistics
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("shapes")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--steps", type=int, default=5)
args = parser.parse_args()
torch.set_num_threads(args.threads)

with open(args.shapes) as f:
    shapes = json.load(f)
params = [torch.full(s, 0.01, requires_grad=True) for s in shapes]
for k, p in enumerate(params):
    n = p.numel()
    p.grad = (torch.sin(torch.arange(n, dtype=torch.float64) * 0.37 + k) * 1e-4).float().reshape(p.shape)
print(f"{len(params)} tensors, {sum(p.numel() for p in params)} parameters")


def makers():
    yield "AdamW", lambda g: torch.optim.AdamW(g, lr=1e-4)
    import lion_pytorch
    yield "Lion", lambda g: lion_pytorch.Lion(g, lr=1e-4)
    import prodigyopt
    yield "Prodigy", lambda g: prodigyopt.Prodigy(g, lr=1.0)
    from transformers.optimization import Adafactor
    yield "Adafactor", lambda g: Adafactor(g, lr=None, relative_step=True)
    import schedulefree
    yield "AdamWScheduleFree", lambda g: schedulefree.AdamWScheduleFree(g, lr=1e-4)
    import pytorch_optimizer
    yield "pytorch_optimizer.CAME", lambda g: pytorch_optimizer.CAME(g, lr=1e-4)
    import bitsandbytes
    yield "bitsandbytes.optim.AdEMAMix (32-bit)", lambda g: bitsandbytes.optim.AdEMAMix(g, lr=1e-4, optim_bits=32)
    from prodigyplus.prodigy_plus_schedulefree import ProdigyPlusScheduleFree
    yield "prodigyplus.ProdigyPlusScheduleFree", lambda g: ProdigyPlusScheduleFree(g, lr=1.0)


for name, make in makers():
    opt = make([{"params": params}])
    if hasattr(opt, "train"):
        opt.train()
    opt.step()  # state allocation
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - start)
    print(f"{name:40s}{statistics.median(times) * 1000:8.1f} ms")
