#!/usr/bin/env python3
"""k-diffusion's LMS, Heun, DPM2 and DPM2 a samplers, and A1111's DDIM and PLMS, on a denoiser known in closed form.

    K_DIFFUSION=/path/to/k-diffusion A1111_SRC=/path/to/stable-diffusion-webui python3 Fixtures/golden/make_sampler_golden.py

The data are Gaussian per element, N(mu, s^2), so the ideal denoiser is D(x; sigma) = (x s^2 + mu sigma^2) /
(s^2 + sigma^2): no network, so the golden checks the samplers' arithmetic alone (the U-Net runs are
make_engine_golden.py's). k-diffusion's sampling.py is loaded from the checkout with its package's `utils`
and `torchdiffeq` (used only by log_likelihood) stubbed, so it needs torch, scipy, torchsde and tqdm, not
the package's training dependencies. The initial latents and the ancestral noise come from torch generators
and are stored, so the Swift test feeds the same ones. A1111's timestep samplers (modules/sd_samplers_timesteps_impl.py,
its other imports stubbed) run on the same data in the variance-preserving form they use: x_t = sqrt(a) x0 + sqrt(1 - a) eps,
whose ideal noise prediction is closed form too, at A1111's timesteps for 8 steps. Writes
Fixtures/golden/engine/samplers_closed_form.json.
"""
import importlib.util
import json
import os
import sys
import types

import torch

root = os.environ["K_DIFFUSION"]
package = types.ModuleType("k_diffusion")
package.__path__ = []
utils = types.ModuleType("k_diffusion.utils")


def append_dims(x, target_dims):
    return x[(...,) + (None,) * (target_dims - x.ndim)]


utils.append_dims = append_dims
package.utils = utils
sys.modules["k_diffusion"] = package
sys.modules["k_diffusion.utils"] = utils
sys.modules.setdefault("torchdiffeq", types.SimpleNamespace(odeint=None))
spec = importlib.util.spec_from_file_location("k_diffusion.sampling", os.path.join(root, "k_diffusion", "sampling.py"))
sampling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sampling)

shape = (1, 4, 4, 4)
g = torch.Generator().manual_seed(7)
mu = torch.randn(shape, generator=g) * 0.8
s = 0.5


def model(x, sigma):
    sigma = sigma.reshape(-1, 1, 1, 1)
    return (x * s * s + mu * sigma * sigma) / (s * s + sigma * sigma)


sigmas = sampling.get_sigmas_karras(8, 0.0292, 14.6146)
noise = torch.randn(shape, generator=torch.Generator().manual_seed(11))
x0 = noise * sigmas[0]
stream = [torch.randn(shape, generator=torch.Generator().manual_seed(100 + i)) for i in range(len(sigmas))]
used = []


def noise_sampler(sigma, sigma_next):
    n = stream[len(used)]
    used.append(n)
    return n


runs = {
    "lms": sampling.sample_lms(model, x0.clone(), sigmas, disable=True),
    "heun": sampling.sample_heun(model, x0.clone(), sigmas, disable=True),
    "dpm2": sampling.sample_dpm_2(model, x0.clone(), sigmas, disable=True),
    "dpm2_ancestral": sampling.sample_dpm_2_ancestral(model, x0.clone(), sigmas, noise_sampler=noise_sampler, disable=True),
}
# A1111's DDIM and PLMS: its timesteps (modules/sd_samplers_timesteps.py: range(0, 1000, 1000 // steps) + 1, clipped)
# and LDM's float32 alphas_cumprod of the scaled-linear schedule.
a1111 = os.environ["A1111_SRC"]
modules = types.ModuleType("modules")
modules.__path__ = []
modules.shared = types.SimpleNamespace(opts=None)
uni_pc = types.ModuleType("modules.models.diffusion.uni_pc")
uni_pc.uni_pc = types.SimpleNamespace(UniPC=object)
sys.modules.update({"modules": modules, "modules.shared": modules.shared, "modules.models": types.ModuleType("modules.models"),
                    "modules.models.diffusion": types.ModuleType("modules.models.diffusion"),
                    "modules.models.diffusion.uni_pc": uni_pc})
package.sampling = sampling
sys.modules["k_diffusion.sampling"] = sampling
spec = importlib.util.spec_from_file_location("modules.sd_samplers_timesteps_impl",
                                              os.path.join(a1111, "modules", "sd_samplers_timesteps_impl.py"))
timesteps_impl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(timesteps_impl)
betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
alphas_cumprod = torch.cumprod(1 - betas, dim=0).to(torch.float32)
steps = 8
timesteps = torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps))) + 1, 0, 999)


class EpsilonModel:
    """The ideal noise prediction for x_t = sqrt(a) x0 + sqrt(1 - a) eps with x0 ~ N(mu, s^2), A1111's model(x, t) call."""
    inner_model = types.SimpleNamespace(inner_model=types.SimpleNamespace(alphas_cumprod=alphas_cumprod))

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, **_):
        self.calls.append(int(t[0].item()))
        a = alphas_cumprod[int(t[0].item())]
        x0 = mu + a.sqrt() * s * s * (x - a.sqrt() * mu) / (a * s * s + 1 - a)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()


timestep_runs, timestep_calls = {}, {}
for name, sampler in [("ddim", timesteps_impl.ddim), ("plms", timesteps_impl.plms)]:
    eps_model = EpsilonModel()
    timestep_runs[name] = sampler(eps_model, noise.clone(), timesteps, disable=True)
    timestep_calls[name] = eps_model.calls

coefficients = [[sampling.linear_multistep_coeff(min(i + 1, 4), sigmas.numpy(), i, j) for j in range(min(i + 1, 4))]
                for i in range(len(sigmas) - 1)]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine", "samplers_closed_form.json")
with open(out, "w") as f:
    json.dump({"shape": list(shape), "mu": mu.flatten().tolist(), "s": s, "sigmas": sigmas.tolist(), "x0": x0.flatten().tolist(),
               "ancestral_noise": [n.flatten().tolist() for n in used], "lms_coefficients": coefficients,
               "results": {k: v.flatten().tolist() for k, v in runs.items()},
               "noise": noise.flatten().tolist(), "steps": steps, "timesteps": timesteps.tolist(),
               "timestep_results": {k: v.flatten().tolist() for k, v in timestep_runs.items()}, "timestep_calls": timestep_calls}, f)
print(f"wrote {out}: {len(used)} ancestral draws")
