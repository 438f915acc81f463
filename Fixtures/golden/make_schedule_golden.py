#!/usr/bin/env python3
"""transformers' learning-rate schedules that sd-scripts' get_scheduler_fix calls with its own arguments,
for LearningRateSchedule's inverse_sqrt, cosine_with_min_lr and warmup_stable_decay.

Run by hand from the repository root (needs torch and transformers): python3 Fixtures/golden/make_schedule_golden.py
Writes Fixtures/golden/training/schedules_transformers.json: per case the arguments (as get_scheduler_fix
derives them: num_cycles = lr_scheduler_num_cycles / 2, num_stable_steps = N - W - decay) and the rate at
every optimizer step of a LambdaLR over one parameter at base rate 2e-4.

Also Fixtures/golden/training/schedules_torch.json: kohya's --lr_scheduler_type with torch.optim.lr_scheduler's classes,
built as get_scheduler_fix builds them (the class on the optimizer, --lr_scheduler_args through ast.literal_eval), over
two parameter groups at 2e-4 and 5e-3 (eta_min is absolute), the rates of 40 steps.
"""
import ast
import json
import os

import torch
from transformers.optimization import (get_cosine_with_min_lr_schedule_with_warmup, get_inverse_sqrt_schedule,
                                       get_wsd_schedule)

HERE = os.path.dirname(os.path.abspath(__file__))
BASE, TOTAL = 2e-4, 24


def rates(make):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    scheduler = make(opt)
    out = []
    for _ in range(TOTAL + 2):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out


cases = []
for warmup, timescale in [(0, None), (4, None), (4, 10), (0, 7)]:
    cases.append({"kind": "inverse_sqrt", "warmup": warmup, "timescale": timescale,
                  "rates": rates(lambda o: get_inverse_sqrt_schedule(o, num_warmup_steps=warmup, timescale=timescale))})
for warmup, cycles, ratio in [(0, 1, 0.1), (5, 1, 0.0), (3, 3, 0.25)]:
    cases.append({"kind": "cosine_with_min_lr", "warmup": warmup, "num_cycles": cycles, "min_lr_ratio": ratio,
                  "rates": rates(lambda o: get_cosine_with_min_lr_schedule_with_warmup(
                      o, num_warmup_steps=warmup, num_training_steps=TOTAL, num_cycles=cycles / 2, min_lr_rate=ratio))})
for warmup, decay, ratio, warmup_type, decay_type, cycles in [(4, 8, 0.0, "linear", "cosine", 1), (3, 10, 0.1, "cosine", "linear", 1),
                                                               (5, 6, 0.2, "1-sqrt", "1-sqrt", 1), (0, 12, 0.0, "linear", "cosine", 2)]:
    cases.append({"kind": "warmup_stable_decay", "warmup": warmup, "decay": decay, "min_lr_ratio": ratio, "warmup_type": warmup_type,
                  "decay_type": decay_type, "num_cycles": cycles,
                  "rates": rates(lambda o: get_wsd_schedule(o, num_warmup_steps=warmup, num_stable_steps=TOTAL - warmup - decay,
                                                            num_decay_steps=decay, warmup_type=warmup_type, decay_type=decay_type,
                                                            min_lr_ratio=ratio, num_cycles=cycles / 2))})

out = os.path.join(HERE, "training", "schedules_transformers.json")
with open(out, "w") as f:
    json.dump({"base": BASE, "total": TOTAL, "cases": cases}, f, indent=1)
print(out, len(cases), "cases")

torch_cases = []
for name, args in [("StepLR", ["step_size=7", "gamma=0.5"]), ("StepLR", ["step_size=3"]), ("MultiStepLR", ["milestones=[5, 12, 12, 30]", "gamma=0.3"]),
                   ("ExponentialLR", ["gamma=0.93"]), ("ConstantLR", []), ("ConstantLR", ["factor=0.25", "total_iters=9"]),
                   ("LinearLR", []), ("LinearLR", ["start_factor=0.1", "end_factor=0.6", "total_iters=17"]),
                   ("PolynomialLR", ["total_iters=25", "power=2.0"]), ("CosineAnnealingLR", ["T_max=15", "eta_min=1e-5"]),
                   ("CosineAnnealingLR", ["T_max=40"]), ("CosineAnnealingWarmRestarts", ["T_0=6", "T_mult=2", "eta_min=1e-6"]),
                   ("CosineAnnealingWarmRestarts", ["T_0=7"])]:
    kwargs = {k: ast.literal_eval(v) for k, v in (a.split("=") for a in args)}
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 2e-4},
                           {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 5e-3}], lr=2e-4)
    scheduler = getattr(torch.optim.lr_scheduler, name)(opt, **kwargs)
    groups = [[], []]
    for _ in range(40):
        for g, group in zip(groups, opt.param_groups):
            g.append(group["lr"])
        opt.step()
        scheduler.step()
    torch_cases.append({"name": name, "args": args, "bases": [2e-4, 5e-3], "rates": groups})
out = os.path.join(HERE, "training", "schedules_torch.json")
with open(out, "w") as f:
    json.dump({"torch": torch.__version__, "cases": torch_cases}, f, indent=1)
print(out, len(torch_cases), "cases")
