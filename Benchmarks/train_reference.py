#!/usr/bin/env python3
"""The torch side of `lora-bench train`: one LoRA training step on the SD1.5
U-Net (diffusers, random weights), latents cached, batch 1, with sd-scripts'
LoRAModule (networks/lora.py: org(x) + up(down(x))·alpha/rank) on the 192
attention targets, DDPM noise, l2 loss, AdamW. What kohya's train_network.py
runs per step once the latents are cached, without its data loader. Prints JSON:

    python3 Benchmarks/train_reference.py [--threads 2] [--steps 3] [--size 512] [--dim 32]
                                          [--gradient-checkpointing] [--precision bf16] [--algo loha|lokr [--factor F]]
                                          [--scale-weight-norms M] [--dora]

With --algo locon, loha or lokr the modules are LyCORIS's (lycoris.kohya.create_network, lycoris_lora 3.2.0.post2,
preset attn-mlp: the same 192 U-Net layers; network args as the kohya_ss GUI writes them, decompose_both=False),
--scale-weight-norms runs LyCORIS's max norm after each optimizer step as train_network.py does, --dora sets
dora_wd=True (weight decomposition) and --rank-dropout P LyCORIS's rank_dropout. --algo lora-fa is sd-scripts'
LoRA-FA as train_network.py runs networks/lora_fa.py: lora_down drawn N(0, 2/(in + rank)) and left out of the
optimizer, but still given a gradient (its network's requires_grad_(True) reaches it).
"""
import argparse
import contextlib
import json
import resource
import time

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--size", type=int, default=512)
parser.add_argument("--dim", type=int, default=32)
parser.add_argument("--alpha", type=float, default=16)
parser.add_argument("--gradient-checkpointing", action="store_true")
parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
parser.add_argument("--algo", choices=["lora", "lora-fa", "locon", "loha", "lokr"], default="lora")
parser.add_argument("--rank-dropout", type=float, default=0, help="LyCORIS's rank_dropout (locon, loha, lokr)")
parser.add_argument("--factor", default="-1")
parser.add_argument("--scale-weight-norms", type=float, default=0, help="LyCORIS's apply_max_norm_regularization after each step (loha, lokr)")
parser.add_argument("--dora", action="store_true", help="LyCORIS's dora_wd=True (locon, loha, lokr)")
args = parser.parse_args()
if args.scale_weight_norms and args.algo == "lora":
    parser.error("--scale-weight-norms is measured with --algo loha or lokr (LyCORIS's rule)")
kohya = args.algo in ("lora", "lora-fa")
if args.dora and kohya:
    parser.error("--dora is LyCORIS's: --algo locon, loha or lokr")
if args.rank_dropout and kohya:
    parser.error("--rank-dropout is measured with LyCORIS's --algo locon, loha or lokr")
torch.set_num_threads(args.threads)
torch.manual_seed(0)

unet = UNet2DConditionModel(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                            cross_attention_dim=768, attention_head_dim=8)
unet.requires_grad_(False)
if args.gradient_checkpointing:
    unet.enable_gradient_checkpointing()
    unet.train()


class LoRAModule(torch.nn.Module):
    def __init__(self, org, rank, alpha):
        super().__init__()
        if isinstance(org, torch.nn.Conv2d):
            self.lora_down = torch.nn.Conv2d(org.in_channels, rank, org.kernel_size, org.stride, org.padding, bias=False)
            self.lora_up = torch.nn.Conv2d(rank, org.out_channels, (1, 1), (1, 1), bias=False)
        else:
            self.lora_down = torch.nn.Linear(org.in_features, rank, bias=False)
            self.lora_up = torch.nn.Linear(rank, org.out_features, bias=False)
        torch.nn.init.zeros_(self.lora_up.weight)
        if args.algo == "lora-fa":
            in_dim = org.in_channels if isinstance(org, torch.nn.Conv2d) else org.in_features
            torch.nn.init.normal_(self.lora_down.weight, std=(2.0 / (in_dim + rank)) ** 0.5)
        self.scale = alpha / rank
        self.org = org

    def forward(self, x):
        return self.org(x) + self.lora_up(self.lora_down(x)) * self.scale


modules = []
for name, module in (unet.named_modules() if kohya else []):
    if module.__class__.__name__ != "Transformer2DModel":
        continue
    for child_name, child in list(module.named_modules()):
        if isinstance(child, torch.nn.Linear) or (isinstance(child, torch.nn.Conv2d) and child.kernel_size == (1, 1)):
            lora = LoRAModule(child, args.dim, args.alpha)
            parent = module.get_submodule(child_name.rsplit(".", 1)[0]) if "." in child_name else module
            setattr(parent, child_name.rsplit(".", 1)[-1], lora)
            modules.append(lora)
parameters = [p for m in modules for p in ((m.lora_up.weight,) if args.algo == "lora-fa" else (m.lora_down.weight, m.lora_up.weight))]
if not kohya:
    from lycoris.kohya import create_network
    network = create_network(1.0, args.dim, args.alpha, None, None, unet, algo=args.algo, preset="attn-mlp", factor=args.factor,
                             decompose_both="False", dora_wd=str(args.dora), rank_dropout=str(args.rank_dropout))
    network.apply_to(None, unet, False, True)
    modules = network.unet_loras
    parameters = list(network.parameters())
optimizer = torch.optim.AdamW(parameters, lr=1e-4)
scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
latent = args.size // 8
latents, noise = torch.randn(1, 4, latent, latent), torch.randn(1, 4, latent, latent)
context = torch.randn(1, 77, 768)
timesteps = torch.tensor([500])
autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else contextlib.nullcontext()
times = []
for _ in range(args.steps):
    start = time.perf_counter()
    with autocast:
        prediction = unet(scheduler.add_noise(latents, noise, timesteps), timesteps, context).sample
    loss = torch.nn.functional.mse_loss(prediction.float(), noise.float(), reduction="none").mean([1, 2, 3]).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if args.scale_weight_norms:  # train_network.py calls it after the optimizer step, inside the step
        network.apply_max_norm_regularization(args.scale_weight_norms, "cpu")
    times.append(time.perf_counter() - start)
print(json.dumps({
    "torch": torch.__version__, "threads": args.threads, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    "algo": args.algo, "dora": args.dora, "rank_dropout": args.rank_dropout, "modules": len(modules), "size": args.size, "dim": args.dim, "precision": args.precision,
    "gradient_checkpointing": args.gradient_checkpointing, "scale_weight_norms": args.scale_weight_norms, "step_seconds": times,
    "step_seconds_median": sorted(times)[len(times) // 2], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}, indent=1))
