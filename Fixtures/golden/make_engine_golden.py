#!/usr/bin/env python3
"""Golden outputs for the diffusion engine, from PyTorch, transformers,
diffusers and k-diffusion (the sampler code A1111 runs).

Run by hand (needs torch, transformers, diffusers, k-diffusion):

    python3 Fixtures/golden/make_engine_golden.py

Writes Fixtures/golden/engine/*.safetensors (float32 tensors) and
engine.json (descriptions, prompts, token ids). The tiny models it builds
are saved in the original single-file (LDM) layout, the engine's input.
"""
import json
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "engine")
os.makedirs(OUT, exist_ok=True)
info = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def noise():
    """torch.randn with CPU generators: block path, ragged tail, small path, continuation."""
    tensors = {}
    for seed in [0, 1, 42, 1234, 2**32 + 5, 4294967295]:
        shapes = [(1, 4, 8, 8), (17,), (2, 3)] + ([(1, 4, 64, 64)] if seed == 1234 else [])
        for shape in shapes:
            g = torch.Generator().manual_seed(seed)
            first = torch.randn(shape, generator=g)
            second = torch.randn(shape, generator=g)  # the stream continues (ancestral samplers)
            name = f"seed{seed}_{'x'.join(map(str, shape))}"
            tensors[name + "_first"] = first.contiguous()
            tensors[name + "_second"] = second.contiguous()
    save_file(tensors, os.path.join(OUT, "noise.safetensors"))


if __name__ == "__main__":
    noise()
    with open(os.path.join(OUT, "engine.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
