#!/usr/bin/env python3
"""diffusers on torch CPU on the shapes `lora-bench engine` times: one SD1.5
U-Net evaluation on a batch of 2 at 64x64 latents (one sampling step with CFG)
and a VAE decode to 512x512, float32, random weights (speed does not depend on
the values). Prints JSON. Usage:

    python3 Benchmarks/engine_reference.py [--threads 2] [--steps 3]
"""
import argparse
import json
import resource
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--size", type=int, default=512)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

# The SD1.5 U-Net and VAE configurations (runwayml/stable-diffusion-v1-5).
unet = UNet2DConditionModel(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                            cross_attention_dim=768, attention_head_dim=8).eval()
vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4).eval()
latent = args.size // 8
x = torch.randn(2, 4, latent, latent)
context = torch.randn(2, 77, 768)
t = torch.tensor([999.0, 999.0])
times = []
with torch.no_grad():
    for _ in range(args.steps):
        start = time.perf_counter()
        unet(x, t, encoder_hidden_states=context)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    vae.decode(x[:1] / 0.18215)
    decode = time.perf_counter() - start
print(json.dumps({
    "torch": torch.__version__, "threads": args.threads, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    "step_seconds": times, "step_seconds_median": sorted(times)[len(times) // 2], "decode_seconds": decode,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}, indent=1))
