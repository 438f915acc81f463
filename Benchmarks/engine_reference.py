#!/usr/bin/env python3
"""diffusers on torch CPU on the shapes `lora-bench engine` times: one U-Net
evaluation on a batch of 2 (one sampling step with CFG) and a VAE decode,
random weights (speed does not depend on the values). Prints JSON. Usage:

    python3 Benchmarks/engine_reference.py [--threads 2] [--steps 3] [--family sd1|sdxl] [--size 512]
                                           [--precision fp32|bf16]

--precision bf16 runs under torch.autocast("cpu", dtype=torch.bfloat16): what
torch users do for speed on CPUs with AMX/AVX512-BF16 (lora-bench engine
--precision bf16 is the same arithmetic).
"""
import argparse
import contextlib
import json
import resource
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--size", type=int, default=None, help="pixels (default 512 for sd1, 1024 for sdxl)")
parser.add_argument("--family", choices=["sd1", "sdxl"], default="sd1")
parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
parser.add_argument("--no-decode", action="store_true")
args = parser.parse_args()
size = args.size or (1024 if args.family == "sdxl" else 512)
torch.set_num_threads(args.threads)
torch.manual_seed(0)

latent = size // 8
if args.family == "sd1":
    # runwayml/stable-diffusion-v1-5 unet/config.json
    unet = UNet2DConditionModel(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                                cross_attention_dim=768, attention_head_dim=8).eval()
    context = torch.randn(2, 77, 768)
    extra = {}
else:
    # stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
    unet = UNet2DConditionModel(sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                                transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
                                cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
                                addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816).eval()
    context = torch.randn(2, 77, 2048)
    extra = {"added_cond_kwargs": {"text_embeds": torch.randn(2, 1280), "time_ids": torch.tensor([[size, size, 0, 0, size, size]] * 2, dtype=torch.float32)}}
vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4).eval()
x = torch.randn(2, 4, latent, latent)
t = torch.tensor([999.0, 999.0])
autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else contextlib.nullcontext()
times = []
decode = None
with torch.no_grad(), autocast:
    for _ in range(args.steps):
        start = time.perf_counter()
        unet(x, t, encoder_hidden_states=context, **extra)
        times.append(time.perf_counter() - start)
    if not args.no_decode:
        start = time.perf_counter()
        vae.decode(x[:1] / 0.18215)
        decode = time.perf_counter() - start
print(json.dumps({
    "torch": torch.__version__, "threads": args.threads, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    "family": args.family, "size": size, "precision": args.precision,
    "step_seconds": times, "step_seconds_median": sorted(times)[len(times) // 2], "step_seconds_min": min(times),
    "decode_seconds": decode, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}, indent=1))
