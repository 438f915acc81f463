#!/usr/bin/env python3
"""sd-scripts' --zero_terminal_snr on diffusers' DDPMScheduler, for NoiseSchedule.zeroTerminalSNR.

Run by hand from the repository root (needs torch and diffusers):
    SD_SCRIPTS=/path/to/sd-scripts python3 Fixtures/golden/make_zero_terminal_snr_golden.py
Writes Fixtures/golden/training/zero_terminal_snr.json: the scheduler's alphas_cumprod before and after
sd-scripts' fix_noise_scheduler_betas_for_zero_terminal_snr (taken out of library/custom_train_functions.py
by ast: the module imports more than this needs), and all_snr as prepare_scheduler_for_custom_training
leaves it when train_network.py calls it first (computed before the fix: min_snr_gamma keeps the old SNR).
"""
import ast
import json
import logging
import os

import torch
from diffusers import DDPMScheduler

HERE = os.path.dirname(os.path.abspath(__file__))
source = open(os.path.join(os.environ["SD_SCRIPTS"], "library", "custom_train_functions.py"), encoding="utf-8").read()
wanted = {"fix_noise_scheduler_betas_for_zero_terminal_snr", "prepare_scheduler_for_custom_training"}
nodes = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name in wanted]
namespace = {"torch": torch, "logger": logging.getLogger("golden")}
exec(compile(ast.Module(body=nodes, type_ignores=[]), "custom_train_functions.py", "exec"), namespace)

scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, clip_sample=False)
before = scheduler.alphas_cumprod.tolist()
namespace["prepare_scheduler_for_custom_training"](scheduler, "cpu")   # train_network.py's get_noise_scheduler: first this,
namespace["fix_noise_scheduler_betas_for_zero_terminal_snr"](scheduler)  # then the fix
out = os.path.join(HERE, "training", "zero_terminal_snr.json")
with open(out, "w") as f:
    json.dump({"alphas_cumprod": before, "fixed_alphas_cumprod": scheduler.alphas_cumprod.tolist(),
               "all_snr": scheduler.all_snr.tolist()}, f)
print(out)
