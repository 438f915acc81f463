#!/usr/bin/env python3
"""diffusers' DPMSolverSinglestepScheduler, as kohya builds it for `--sample_sampler dpmsingle`, on a denoiser
known in closed form.

    python3 Fixtures/golden/make_diffusers_sampler_golden.py      # needs torch and diffusers

kohya's train_util.get_my_scheduler builds it with num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
beta_schedule="scaled_linear" and the class's defaults otherwise (solver_order=2, algorithm_type="dpmsolver++",
solver_type="midpoint", final_sigmas_type="zero", which turns lower_order_final on). The data are Gaussian per
element, N(mu, s^2), in the variance-preserving form x_t = sqrt(a) x0 + sqrt(1 - a) eps, whose ideal noise
prediction is closed form, so the golden checks the scheduler's arithmetic alone (as make_sampler_golden.py
does for k-diffusion's and A1111's samplers). The run loops as diffusers' pipelines do: for t in
scheduler.timesteps, eps = model(x, t), x = scheduler.step(eps, t, x). Runs of 7 and 8 steps (the order lists
differ for odd and even counts); the timesteps set_timesteps chooses for 1 to 60 steps; the scheduler's float32
alphas_cumprod, which the Swift test feeds its sampler. Writes Fixtures/golden/engine/diffusers_samplers_closed_form.json.
"""
import json
import os

import diffusers
import torch
from diffusers import DPMSolverSinglestepScheduler

diffusers.utils.logging.set_verbosity_error()  # set_timesteps warns, each time, that it turns lower_order_final on


def kohya_scheduler():
    return DPMSolverSinglestepScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


shape = (1, 4, 4, 4)
mu = torch.randn(shape, generator=torch.Generator().manual_seed(7)) * 0.8
s = 0.5
noise = torch.randn(shape, generator=torch.Generator().manual_seed(11))
alphas_cumprod = kohya_scheduler().alphas_cumprod


def epsilon(x, t):
    a = alphas_cumprod[t]
    x0 = mu + a.sqrt() * s * s * (x - a.sqrt() * mu) / (a * s * s + 1 - a)
    return (x - a.sqrt() * x0) / (1 - a).sqrt()


runs = {}
for steps in (7, 8):
    scheduler = kohya_scheduler()
    scheduler.set_timesteps(steps)
    x, calls = noise.clone(), []
    for t in scheduler.timesteps:
        calls.append(int(t))
        x = scheduler.step(epsilon(x, int(t)), t, x).prev_sample
    runs[str(steps)] = {"calls": calls, "orders": scheduler.order_list, "result": x.flatten().tolist()}

timesteps = {}
for steps in range(1, 61):
    scheduler = kohya_scheduler()
    scheduler.set_timesteps(steps)
    timesteps[str(steps)] = scheduler.timesteps.tolist()

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine", "diffusers_samplers_closed_form.json")
with open(out, "w") as f:
    json.dump({"diffusers": diffusers.__version__, "shape": list(shape), "mu": mu.flatten().tolist(), "s": s,
               "noise": noise.flatten().tolist(), "alphas_cumprod": alphas_cumprod.tolist(),
               "dpm_singlestep": runs, "dpm_singlestep_timesteps": timesteps}, f)
print(f"wrote {out} (diffusers {diffusers.__version__})")
