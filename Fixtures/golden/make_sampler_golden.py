#!/usr/bin/env python3
"""k-diffusion's LMS, Heun, DPM2 and DPM2 a samplers on a denoiser known in closed form.

    K_DIFFUSION=/path/to/k-diffusion python3 Fixtures/golden/make_sampler_golden.py

The data are Gaussian per element, N(mu, s^2), so the ideal denoiser is D(x; sigma) = (x s^2 + mu sigma^2) /
(s^2 + sigma^2): no network, so the golden checks the samplers' arithmetic alone (the U-Net runs are
make_engine_golden.py's). k-diffusion's sampling.py is loaded from the checkout with its package's `utils`
and `torchdiffeq` (used only by log_likelihood) stubbed, so it needs torch, scipy, torchsde and tqdm, not
the package's training dependencies. The initial latents and the ancestral noise come from torch generators
and are stored, so the Swift test feeds the same ones. Writes Fixtures/golden/engine/samplers_closed_form.json.
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
coefficients = [[sampling.linear_multistep_coeff(min(i + 1, 4), sigmas.numpy(), i, j) for j in range(min(i + 1, 4))]
                for i in range(len(sigmas) - 1)]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine", "samplers_closed_form.json")
with open(out, "w") as f:
    json.dump({"shape": list(shape), "mu": mu.flatten().tolist(), "s": s, "sigmas": sigmas.tolist(), "x0": x0.flatten().tolist(),
               "ancestral_noise": [n.flatten().tolist() for n in used], "lms_coefficients": coefficients,
               "results": {k: v.flatten().tolist() for k, v in runs.items()}}, f)
print(f"wrote {out}: {len(used)} ancestral draws")
