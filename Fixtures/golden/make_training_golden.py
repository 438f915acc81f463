#!/usr/bin/env python3
"""Golden values for Training's optimizers and schedules, from the code
sd-scripts runs: torch.optim.AdamW (single-tensor CPU path) and diffusers'
get_scheduler (what sd-scripts' get_scheduler_fix calls). Deterministic; needs
torch and diffusers. Writes training/optimizer.json beside this script:

    python3 Fixtures/golden/make_training_golden.py
"""
import json
import math
import os

import torch
from diffusers.optimization import get_scheduler

out = {"torch": torch.__version__}

# AdamW: two parameters, ten steps, gradients from a fixed formula (not random:
# the Swift test recomputes them the same way).
def gradient(step, index, count):
    return math.sin(0.37 * (step + 1) + 1.3 * index) * (1.0 + 0.1 * index) / (1 + step % 3)

shapes = [(3, 4), (5,)]
initial = [[math.cos(0.5 * i) for i in range(math.prod(s))] for s in shapes]
params = [torch.tensor(v, dtype=torch.float32).reshape(s).clone().requires_grad_(True) for v, s in zip(initial, shapes)]
optimizer = torch.optim.AdamW([{"params": [params[0]], "lr": 1e-3}, {"params": [params[1]], "lr": 3e-2}], weight_decay=0.01,
                              foreach=False)
trajectory = []
for step in range(10):
    for p in params:
        n = p.numel()
        p.grad = torch.tensor([gradient(step, i, n) for i in range(n)], dtype=torch.float32).reshape(p.shape)
    optimizer.step()
    trajectory.append([p.detach().reshape(-1).tolist() for p in params])
out["adamw"] = {"initial": initial, "learning_rates": [1e-3, 3e-2], "weight_decay": 0.01, "after_each_step": trajectory}

# Schedules: the rate used at each optimizer step (read before the step).
schedules = {}
for name, warmup, extra in [("constant", 0, {}), ("constant_with_warmup", 4, {}), ("linear", 3, {}), ("cosine", 5, {}),
                            ("cosine_with_restarts", 2, {"num_cycles": 3}), ("polynomial", 4, {"power": 2.0})]:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=2e-4)
    scheduler = get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=20, **extra)
    rates = []
    for _ in range(24):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    schedules[name] = {"warmup": warmup, "total": 20, "base": 2e-4, **extra, "rates": rates}
out["schedules"] = schedules

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "training", "optimizer.json"), "w") as f:
    json.dump(out, f, indent=1)
print("wrote optimizer.json")
