#!/usr/bin/env python3
"""Golden values for the Training library, from the code sd-scripts runs.

training/optimizer.json: torch.optim.AdamW (single-tensor CPU path) and
diffusers' get_scheduler (what sd-scripts' get_scheduler_fix calls); with the
optimizer packages installed (lion-pytorch, prodigyopt, dadaptation,
schedulefree==1.4.1, pytorch-optimizer==3.10.0, came-pytorch, bitsandbytes,
prodigy-plus-schedule-free==1.9.2),
every other optimizer lora-train has on the same gradients.

training/step.safetensors (when given the engine fixture folder): kohya's
training step on the tiny SD1 engine model in diffusers (the weights of
sd1_engine.safetensors, converted as make_engine_golden.py does), with
kohya's LoRA modules (networks/lora.py LoRAModule: org(x) + up(down(x)) ·
multiplier · alpha/rank on every Linear and 1×1 Conv2d of each
Transformer2DModel), DDPMScheduler.add_noise, l2 loss as train_network.py
computes it, then ten AdamW steps on the same batch. Records the batch, the first
step's loss and gradients, and the losses and factors after ten steps; the
initial factors are normal(0, 0.2) draws of a generator seeded 1, in module
order (the test redraws them with its torch-identical generator). Deterministic (torch.manual_seed); needs torch,
diffusers, transformers:

    swift run -c release lora-bench fixtures --all --out /tmp/engine
    [SD_SCRIPTS=/path/to/sd-scripts] python3 Fixtures/golden/make_training_golden.py [/tmp/engine]

training/step_bf16.safetensors (same folder): the first step of that batch under kohya's
--mixed_precision bf16 (bf16 U-Net, torch's CPU autocast). ONLY_BF16=1 writes it alone.

training/lycoris_step.safetensors, lycoris_locon_tucker_step.safetensors, lycoris_loha_step.safetensors,
lycoris_loha_tucker_step.safetensors, lycoris_lokr_step.safetensors, lycoris_lokr_tucker_step.safetensors,
lycoris_lokr_norm_step.safetensors, lycoris_ia3_step.safetensors and lycoris_presets.json (same folder): LyCORIS's
LoCon, LoHa and LoKr (each also with Tucker cores, with DoRA: lycoris_<algo>_dora_step.safetensors, and with a trained
scalar: lycoris_<algo>_scalar_step.safetensors; LoKr also as the GUI's LoKr v1.1, with train_norm) and (IA)^3 through lycoris.kohya (see lycoris_step, ia3_step, lycoris_presets);
lokr_layouts.json: LokrModule's split of layers at SD's real widths; lycoris_max_norm.json: its --scale_weight_norms.
ONLY_LYCORIS=1 writes them alone.

training/text_encoder_step.safetensors (same folder): kohya's text-encoder
LoRA on the fixture's CLIP with clip skip 2, into the frozen U-Net: the loss
and every module's gradient.

training/loss_weights.json (with SD_SCRIPTS, a checkout of kohya-ss/sd-scripts):
its own min-SNR, v-prediction scaling, v-pred-like and debiased weights; and with the engine folder too,
training/lora_fa_step.safetensors: its networks/lora_fa.py (LoRA-FA) trained ten steps (see lora_fa_step).
"""
import hashlib
import importlib.metadata
import json
import math
import os
import sys

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

# The other optimizers kohya's --optimizer_type loads, from their own packages
# (lion-pytorch, torch SGD, prodigyopt, dadaptation), on the same gradients.
# The second parameter starts at zero in the *_zero cases (LoRA's up: Prodigy's
# p0 is then the scalar 0).
#
# `factors` multiplies both groups' rates step by step as kohya's scheduler does: WARMUP is constant_with_warmup over
# two steps, whose first step runs at rate 0 (diffusers' warmup starts at 0/2), so the *_warmup entries show what each
# package does with a step at rate 0. `param_shapes` replaces the two default shapes (same values, read in order).
WARMUP = [0.0, 0.5] + [1.0] * 8


def run_optimizer(make, lrs, zero_second=False, schedule_free=False, factors=None, param_shapes=None):
    param_shapes = param_shapes or shapes
    start = [[math.cos(0.5 * i) for i in range(math.prod(param_shapes[0]))],
             [0.0] * math.prod(param_shapes[1]) if zero_second else [math.cos(0.5 * i) for i in range(math.prod(param_shapes[1]))]]
    ps = [torch.tensor(v, dtype=torch.float32).reshape(s).clone().requires_grad_(True) for v, s in zip(start, param_shapes)]
    groups = [{"params": [ps[0]]}, {"params": [ps[1]]}]
    if lrs is not None:
        groups[0]["lr"], groups[1]["lr"] = lrs
    opt = make(groups)
    if schedule_free:
        opt.train()
    steps, ds = [], []
    for step in range(10):
        if factors is not None:
            for group, lr in zip(opt.param_groups, lrs):
                group["lr"] = lr * factors[step]
        for p in ps:
            n = p.numel()
            p.grad = torch.tensor([gradient(step, i, n) for i in range(n)], dtype=torch.float32).reshape(p.shape)
        opt.step()
        # schedulefree: kohya's loop calls eval() after every step (samples, saves) and train() before the next;
        # the averaged weights x are recorded.
        if schedule_free:
            opt.eval()
        steps.append([p.detach().reshape(-1).tolist() for p in ps])
        if schedule_free:
            opt.train()
        # DAdaptAdanIP keeps d as a tensor; ProdigyPlusScheduleFree steps at the groups' harmonic mean when it has one.
        ds.append(float(getattr(opt, "shared_d", None) or opt.param_groups[0].get("d", 0.0)))
    entry = {"initial": start, "learning_rates": lrs or [0.0, 0.0], "after_each_step": steps, "d": ds}
    if factors is not None:
        entry["factors"] = factors
    if param_shapes is not shapes:
        entry["shapes"] = [list(s) for s in param_shapes]
    return entry

try:
    from transformers.optimization import Adafactor
    import dadaptation
    import dadaptation.experimental
    import lion_pytorch
    import prodigyopt
    out["optimizers"] = {
        "lion": run_optimizer(lambda g: lion_pytorch.Lion(g, weight_decay=0.01), [1e-3, 3e-2]),
        "sgd_nesterov": run_optimizer(lambda g: torch.optim.SGD(g, momentum=0.9, nesterov=True, weight_decay=0.001), [1e-2, 3e-2]),
        "prodigy": run_optimizer(lambda g: prodigyopt.Prodigy(g), [1.0, 1.0]),
        "prodigy_zero": run_optimizer(lambda g: prodigyopt.Prodigy(g, use_bias_correction=True, safeguard_warmup=True, weight_decay=0.01,
                                                                   d_coef=2.0, d0=1e-5), [1.0, 1.0], zero_second=True),
        "dadapt_adam": run_optimizer(lambda g: dadaptation.DAdaptAdam(g), [1.0, 1.0]),
        "dadapt_lion": run_optimizer(lambda g: dadaptation.DAdaptLion(g), [1.0, 1.0]),
        "dadapt_lion_decay": run_optimizer(lambda g: dadaptation.DAdaptLion(g, weight_decay=0.01, d0=1e-2, betas=(0.95, 0.98)), [0.5, 0.5],
                                           zero_second=True),
        # kohya's Adafactor: relative_step on (the given rate only seeds the log), and a run with an external rate.
        "adafactor": run_optimizer(lambda g: Adafactor(g, lr=None, relative_step=True), None),
        "adafactor_external": run_optimizer(lambda g: Adafactor(g, lr=1e-3, relative_step=False, scale_parameter=False, beta1=0.9,
                                                                 weight_decay=0.01), [1e-3, 3e-3], zero_second=True),
        "dadapt_adam_decoupled": run_optimizer(lambda g: dadaptation.DAdaptAdam(g, decouple=True, weight_decay=0.01, use_bias_correction=True),
                                               [1.0, 0.0], zero_second=True),
        # kohya's DAdaptSGD, DAdaptAdaGrad, DAdaptation (= experimental.DAdaptAdamPreprint), DAdaptAdan and DAdaptAdanIP,
        # with defaults and with their arguments (DAdaptAdaGrad and the Adans take the first group's rate for every group).
        "dadapt_sgd": run_optimizer(lambda g: dadaptation.DAdaptSGD(g), [1.0, 1.0]),
        "dadapt_sgd_momentum": run_optimizer(lambda g: dadaptation.DAdaptSGD(g, momentum=0.9, weight_decay=0.01, d0=1e-3), [0.5, 0.0],
                                             zero_second=True),
        "dadapt_adagrad": run_optimizer(lambda g: dadaptation.DAdaptAdaGrad(g), [1.0, 1.0]),
        "dadapt_adagrad_momentum": run_optimizer(lambda g: dadaptation.DAdaptAdaGrad(g, momentum=0.9, weight_decay=0.01, eps=1e-5, d0=1e-3),
                                                 [0.5, 0.5], zero_second=True),
        "dadapt_adam_preprint": run_optimizer(lambda g: dadaptation.experimental.DAdaptAdamPreprint(g), [1.0, 1.0]),
        "dadapt_adam_preprint_decoupled": run_optimizer(lambda g: dadaptation.experimental.DAdaptAdamPreprint(
            g, decouple=True, weight_decay=0.01, betas=(0.95, 0.99), d0=1e-4), [1.0, 0.0], zero_second=True),
        "dadapt_adan": run_optimizer(lambda g: dadaptation.DAdaptAdan(g), [1.0, 1.0]),
        "dadapt_adan_no_prox": run_optimizer(lambda g: dadaptation.DAdaptAdan(g, no_prox=True, weight_decay=0.05, betas=(0.9, 0.9, 0.95),
                                                                               d0=1e-4), [0.5, 0.5], zero_second=True),
        "dadapt_adan_ip": run_optimizer(lambda g: dadaptation.experimental.DAdaptAdanIP(g), [1.0, 1.0]),
    }
    out["dadaptation"] = dadaptation.__version__ if hasattr(dadaptation, "__version__") else "3.2"
    import schedulefree
    out["optimizers"].update({
        "adamw_schedulefree": run_optimizer(lambda g: schedulefree.AdamWScheduleFree(g, warmup_steps=3, weight_decay=0.01), [1e-3, 3e-2],
                                            schedule_free=True),
        "adamw_schedulefree_frozen": run_optimizer(lambda g: schedulefree.AdamWScheduleFree(g, betas=(0.95, 0.99)), [2e-3, 0.0],
                                                   schedule_free=True),
        "radam_schedulefree": run_optimizer(lambda g: schedulefree.RAdamScheduleFree(g), [1e-3, 3e-2], schedule_free=True),
        "radam_schedulefree_sgd_phase": run_optimizer(lambda g: schedulefree.RAdamScheduleFree(g, betas=(0.9, 0.99), weight_decay=0.01,
                                                                                                 silent_sgd_phase=False), [1e-3, 3e-2],
                                                      schedule_free=True),
        "sgd_schedulefree": run_optimizer(lambda g: schedulefree.SGDScheduleFree(g, momentum=0.8, weight_decay=0.001, r=0.5), [1e-2, 3e-2],
                                          schedule_free=True),
    })
    out["schedulefree"] = "1.4.1"
    # A first step at rate 0 (warmup): torch, lion-pytorch and transformers still move their moments; prodigyopt and
    # dadaptation return before touching anything when no group has a rate (DAdaptSGD divides by zero instead).
    out["optimizers"].update({
        "adamw_warmup": run_optimizer(lambda g: torch.optim.AdamW(g, weight_decay=0.01, foreach=False), [1e-3, 3e-2], factors=WARMUP),
        "lion_warmup": run_optimizer(lambda g: lion_pytorch.Lion(g, weight_decay=0.01), [1e-3, 3e-2], factors=WARMUP),
        "sgd_nesterov_warmup": run_optimizer(lambda g: torch.optim.SGD(g, momentum=0.9, nesterov=True, weight_decay=0.001), [1e-2, 3e-2],
                                             factors=WARMUP),
        "adafactor_external_warmup": run_optimizer(lambda g: Adafactor(g, lr=1e-3, relative_step=False, scale_parameter=False, beta1=0.9,
                                                                        weight_decay=0.01), [1e-3, 3e-3], factors=WARMUP),
        "prodigy_warmup": run_optimizer(lambda g: prodigyopt.Prodigy(g, safeguard_warmup=True), [1.0, 1.0], factors=WARMUP),
        "dadapt_adam_warmup": run_optimizer(lambda g: dadaptation.DAdaptAdam(g), [1.0, 1.0], factors=WARMUP),
        "dadapt_lion_warmup": run_optimizer(lambda g: dadaptation.DAdaptLion(g), [1.0, 1.0], factors=WARMUP),
        "dadapt_adagrad_warmup": run_optimizer(lambda g: dadaptation.DAdaptAdaGrad(g, momentum=0.9), [1.0, 1.0], factors=WARMUP),
        "dadapt_adam_preprint_warmup": run_optimizer(lambda g: dadaptation.experimental.DAdaptAdamPreprint(g), [1.0, 1.0], factors=WARMUP),
        "dadapt_adan_warmup": run_optimizer(lambda g: dadaptation.DAdaptAdan(g), [1.0, 1.0], factors=WARMUP),
    })
    # The kohya_ss GUI's other optimizers, by the module paths it passes (kohya's get_optimizer imports them):
    # pytorch_optimizer.CAME (the version kohya_ss pins) and came_pytorch.CAME, factored over the last two dimensions
    # (a conv LoRA's kernel), and bitsandbytes' AdEMAMix in its 32-bit form (its CPU kernel; the 8-bit forms train as it).
    import bitsandbytes
    import came_pytorch
    import pytorch_optimizer
    conv = [(3, 4), (2, 3, 1, 2)]
    out["optimizers"].update({
        "came": run_optimizer(lambda g: pytorch_optimizer.CAME(g), [2e-4, 1e-3], param_shapes=conv),
        "came_vector": run_optimizer(lambda g: pytorch_optimizer.CAME(g, weight_decay=0.01, betas=(0.8, 0.99, 0.999)), [2e-4, 1e-3]),
        "came_options": run_optimizer(lambda g: pytorch_optimizer.CAME(g, weight_decay=0.1, fixed_decay=True, ams_bound=True,
                                                                       clip_threshold=0.5, eps1=1e-20, eps2=1e-12), [2e-4, 1e-3],
                                      param_shapes=conv, factors=WARMUP),
        "came_original": run_optimizer(lambda g: came_pytorch.CAME(g, lr=1e-3, weight_decay=0.01), [2e-4, 1e-3], param_shapes=conv),
        "came_original_vector": run_optimizer(lambda g: came_pytorch.CAME(g, lr=1e-3, eps=(1e-30, 1e-12)), [2e-4, 1e-3]),
        "ademamix": run_optimizer(lambda g: bitsandbytes.optim.AdEMAMix(g, optim_bits=32), [1e-3, 3e-2], factors=WARMUP),
        "ademamix_scheduled": run_optimizer(lambda g: bitsandbytes.optim.AdEMAMix(g, optim_bits=32, t_alpha=6, t_beta3=8, alpha=8.0,
                                                                                  betas=(0.9, 0.99, 0.999), weight_decay=0.0, eps=1e-6),
                                            [1e-3, 3e-2]),
    })
    # prodigy-plus-schedule-free 1.9.2 (sd-scripts' and kohya_ss's pin), driven as kohya drives schedule-free ones:
    # per-group d with their harmonic mean, factored second moments (a dimension of 32 or more; both orientations of
    # a LoRA matrix, a conv kernel), a LoRA up at zero, RAdam's rectification, Adam-atan2, one shared d, prodigy_steps.
    from prodigyplus.prodigy_plus_schedulefree import ProdigyPlusScheduleFree
    out["optimizers"].update({
        "prodigy_plus": run_optimizer(lambda g: ProdigyPlusScheduleFree(g), [1.0, 1.0], schedule_free=True),
        "prodigy_plus_factored": run_optimizer(lambda g: ProdigyPlusScheduleFree(g), [1.0, 1.0], zero_second=True, schedule_free=True,
                                               param_shapes=[(4, 40), (40, 4)]),
        "prodigy_plus_conv": run_optimizer(lambda g: ProdigyPlusScheduleFree(g, weight_decay=0.01, use_bias_correction=True, d_coef=2.0,
                                                                             split_groups_mean=False, betas=(0.95, 0.98)),
                                           [1.0, 0.5], schedule_free=True, param_shapes=[(2, 40, 3, 3), (33, 2, 1, 1)]),
        "prodigy_plus_atan2_shared": run_optimizer(lambda g: ProdigyPlusScheduleFree(g, eps=None, split_groups=False, weight_decay=0.01,
                                                                                     weight_decay_by_lr=False, prodigy_steps=5, d0=1e-4),
                                                   [1.0, 1.0], schedule_free=True, param_shapes=[(4, 40), (5,)]),
    })
    out["prodigy_plus_schedule_free"] = importlib.metadata.version("prodigy-plus-schedule-free")
    out["pytorch_optimizer"] = importlib.metadata.version("pytorch_optimizer")  # kohya_ss pins 3.10.0
    out["came_pytorch"] = "0.1.3"
    out["bitsandbytes"] = bitsandbytes.__version__
except ImportError as e:
    print("skipping the other optimizers:", e)

# Schedules: the rate used at each optimizer step (read before the step).
schedules = {}
for name, warmup, extra in [("constant", 0, {}), ("constant_with_warmup", 4, {}), ("linear", 3, {}), ("cosine", 5, {}),
                            ("cosine_with_restarts", 2, {"num_cycles": 3}), ("polynomial", 4, {"power": 2.0}),
                            # kohya passes no warmup to piecewise_constant; a bound given twice keeps its last value (a dict).
                            ("piecewise_constant", 0, {"step_rules": "1:5,0.1:9,0.5:9,0.25:15,0.01"})]:
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

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "training", "optimizer.json"), "w") as f:
    json.dump(out, f, indent=1)
print("wrote optimizer.json")


class LoRAModule(torch.nn.Module):
    """sd-scripts networks/lora.py LoRAModule (no dropouts), wrapping `org`."""

    def __init__(self, name, org, rank, alpha):
        super().__init__()
        self.lora_name = name
        if isinstance(org, torch.nn.Conv2d):
            self.lora_down = torch.nn.Conv2d(org.in_channels, rank, org.kernel_size, org.stride, org.padding, bias=False)
            self.lora_up = torch.nn.Conv2d(rank, org.out_channels, (1, 1), (1, 1), bias=False)
        else:
            self.lora_down = torch.nn.Linear(org.in_features, rank, bias=False)
            self.lora_up = torch.nn.Linear(rank, org.out_features, bias=False)
        self.scale = alpha / rank
        self.alpha = alpha
        self.multiplier = 1.0
        self.org = org

    def forward(self, x):
        return self.org(x) + self.lora_up(self.lora_down(x)) * self.multiplier * self.scale


def fixture_unet(folder):
    """The SD1 engine fixture's U-Net in diffusers (frozen, fp32) and the fixture's SHA-256."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
    from safetensors.torch import load_file
    torch.manual_seed(0)
    # The SD1 engine fixture's U-Net, configured as make_engine_golden.py configures it.
    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64, 64, 64), layers_per_block=2,
                                cross_attention_dim=128, attention_head_dim=8, norm_num_groups=32)
    fixture = os.path.join(folder, "sd1_engine.safetensors")
    with open(fixture, "rb") as f:
        fixture_sha256 = hashlib.sha256(f.read()).hexdigest()
    state = convert_ldm_unet_checkpoint(load_file(fixture), unet.config)
    missing, unexpected = unet.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    unet.eval().requires_grad_(False)
    return unet, fixture_sha256


def lycoris_batch_step(unet):
    """The LyCORIS goldens' batch (drawn after torch.manual_seed(2)) through the U-Net with its modules, l2 loss as
    train_network.py computes it, and the backward: the batch tensors and the loss for the file, and the loss."""
    from diffusers import DDPMScheduler
    torch.manual_seed(2)
    latents, noise, context = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16), torch.randn(2, 77, 128)
    timesteps = torch.tensor([17, 643])
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                              clip_sample=False)
    prediction = unet(scheduler.add_noise(latents, noise, timesteps), timesteps, context).sample
    loss = torch.nn.functional.mse_loss(prediction.float(), noise.float(), reduction="none").mean([1, 2, 3]).mean()
    loss.backward()
    return {"latents": latents, "noise": noise, "timesteps": timesteps.float(), "context": context,
            "loss": torch.tensor([loss.item()], dtype=torch.float64)}, loss


def lora_dropout_seed(seed, pass_index, name):
    """The seed of a module's dropout generator in a pass, as lora-train derives it (Diffusion/Layers/LoRADropout.swift
    generatorSeed: FNV-1a of the name, mixed with the run's seed and the pass)."""
    mask = (1 << 64) - 1
    h = 0xcbf29ce484222325
    for byte in name.encode():
        h = ((h ^ byte) * 0x100000001b3) & mask
    h ^= ((seed * 0x9E3779B97F4A7C15) & mask) ^ ((pass_index * 0xC2B2AE3D27D4EB4F) & mask)
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def seed_rank_dropout(loras, seed, masks):
    """LyCORIS draws its rank dropout masks with torch.rand on the global generator in each module's forward: seed it
    before each module's forward with the seed lora-train's generator of that module has in pass 0, so both draw the
    same uniforms, and record each module's mask (1 kept, 0 dropped) in `masks`."""
    for lora in loras:
        def run(*args, lora=lora, forward=lora.org_module[0].forward, **kwargs):
            torch.manual_seed(lora_dropout_seed(seed, 0, lora.lora_name))
            real = torch.rand

            def recording(*a, **k):
                out = real(*a, **k)
                masks[lora.lora_name + ".rank_dropout_mask"] = (out > lora.rank_dropout).float()
                return out
            torch.rand = recording
            try:
                return forward(*args, **kwargs)
            finally:
                torch.rand = real
        lora.org_module[0].forward = run


def lycoris_step(folder, algo="locon", preset="full", conv_dim="1", out_name=None, dim=2, alpha=1.5, conv_alpha="0.5", gradients_of=None,
                 rank_dropout_seed=None, **network_args):
    """training/lycoris_step.safetensors: LyCORIS's LoCon as the kohya_ss GUI's "LyCORIS/LoCon" creates it
    (lycoris.kohya.create_network, lycoris_lora 3.2.0.post2, algo=locon preset=full) on the fixture's U-Net, dim 2
    alpha 1.5, conv_dim 1 conv_alpha 0.5: its modules (name, rank, alpha) in its order, and the first training step's
    loss and every gradient, from factors drawn as training_step draws them (normal(0, 0.2), seed 1, down then up,
    in that order) on a batch drawn after torch.manual_seed(2).

    With algo=loha or lokr (and LoKr's network args as strings, as kohya passes them), the same for
    training/lycoris_<algo>_step.safetensors: every parameter of each module drawn in named_parameters order, its
    gradient under `<module>.<parameter>.grad`, and per module its parameters' shapes and the saved alpha (0 where a
    module has none). With another preset, conv_dim or network args (use_tucker) and out_name, the same for that network
    (metadata: preset, conv_dim, dim, alpha, conv_alpha); `gradients_of` keeps the gradients of the modules whose names
    contain one of its strings (metadata: gradients_of). With rank_dropout among the network args, `rank_dropout_seed`
    seeds LyCORIS's draws of each module's mask as lora-train seeds them (seed_rank_dropout; metadata: rank_dropout_seed),
    and the masks of the kept modules are stored under `<module>.rank_dropout_mask`."""
    from lycoris.kohya import create_network, LycorisNetworkKohya
    from lycoris.config import PRESET
    LycorisNetworkKohya.apply_preset(PRESET["full"])  # apply_preset only sets the keys a preset has
    from safetensors.torch import save_file
    unet, fixture_sha256 = fixture_unet(folder)
    network = create_network(1.0, dim, alpha, None, None, unet, conv_dim=conv_dim, conv_alpha=conv_alpha, algo=algo, preset=preset, **network_args)
    network.apply_to(None, unet, False, True)
    generator = torch.Generator().manual_seed(1)
    kept = [lora for lora in network.unet_loras if gradients_of is None or any(part in lora.lora_name for part in gradients_of)]
    # With dora_wd, LyCORIS's own start of each kept module's magnitude (its layer's row norms) before the draws replace it.
    initial = {lora.lora_name + ".dora_scale.initial": lora.dora_scale.detach().clone() for lora in kept if hasattr(lora, "dora_scale")}
    for lora in network.unet_loras:
        for _, parameter in lora.named_parameters():  # LoCon: lora_down, lora_up
            torch.nn.init.normal_(parameter, std=0.2, generator=generator)
    masks = {}
    if rank_dropout_seed is not None:
        assert float(network_args["rank_dropout"]) > 0 and all(lora.training for lora in network.unet_loras)
        seed_rank_dropout(network.unet_loras, rank_dropout_seed, masks)
    tensors, loss = lycoris_batch_step(unet)
    tensors.update(initial)
    tensors.update({k: v for k, v in masks.items() if any(part in k for part in gradients_of or [""])})
    # The plain LoCon golden names gradients <module>.lora_down.grad; every other one by the parameter's full name.
    plain_locon = algo == "locon" and not network_args
    for lora in kept:
        for name, parameter in lora.named_parameters():
            key = name.replace(".weight", "") if plain_locon else name
            tensors[lora.lora_name + "." + key + ".grad"] = parameter.grad.detach().clone()
    from lycoris.modules.loha import LohaModule
    if any(isinstance(lora, LohaModule) and lora.tucker for lora in network.unet_loras):
        # LyCORIS's HadaWeightTucker.backward gives hada_w1_a (w2_a) a gradient built from the other product's core
        # (its `temp` of t2·w2_b where t1·w1_b belongs): the same step again with ΔW by torch.einsum and autograd,
        # recorded as `<key>.autograd_grad`, is the exact gradient.
        import lycoris.functional.loha as functional_loha
        buggy = functional_loha.make_weight_tucker
        functional_loha.make_weight_tucker = lambda t1, w1d, w1u, t2, w2d, w2u, scale: (
            torch.einsum("i j ..., j r, i p -> p r ...", t1, w1d, w1u) * torch.einsum("i j ..., j r, i p -> p r ...", t2, w2d, w2u) * scale)
        for lora in network.unet_loras:
            for parameter in lora.parameters():
                parameter.grad = None
        _, exact_loss = lycoris_batch_step(unet)
        assert exact_loss.item() == loss.item()
        functional_loha.make_weight_tucker = buggy
        for lora in kept:
            for name, parameter in lora.named_parameters():
                tensors[lora.lora_name + "." + name + ".autograd_grad"] = parameter.grad.detach().clone()
    import importlib.metadata as md
    if plain_locon:
        modules = [[m.lora_name, m.lora_dim, float(m.alpha)] for m in network.unet_loras]
    else:
        modules = [[m.lora_name, getattr(m, "lora_dim", 0), float(getattr(m, "alpha", 0)), [[n, list(p.shape)] for n, p in m.named_parameters()]]
                   for m in network.unet_loras]
    metadata = {"modules": json.dumps(modules), "network_args": json.dumps(network_args), "preset": preset, "conv_dim": conv_dim, "dim": str(dim), "alpha": str(alpha), "conv_alpha": conv_alpha,
                "gradients_of": json.dumps(gradients_of), "rank_dropout_seed": json.dumps(rank_dropout_seed),
                "fixture_sha256": fixture_sha256, "lycoris_lora": md.version("lycoris_lora"), "torch": torch.__version__,
                "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if plain_locon:
        del metadata["network_args"]
    name = out_name or ("lycoris_step.safetensors" if algo == "locon" else f"lycoris_{algo}_step.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(HERE, "training", name), metadata=metadata)
    print(f"wrote {name}: {len(network.unet_loras)} modules, loss {loss.item():.6f}")


def ia3_step(folder):
    """training/lycoris_ia3_step.safetensors: LyCORIS's IA3Module (lycoris_lora 3.2.0.post2) on the layers preset full
    places (the LoCon network's, conv_dim 1). That release has no "ia3" in lycoris.kohya's module table, so kohya's
    create_network stops with KeyError: 'ia3'; the modules are built here as create_single_module would build them
    (IA3Module(name, layer, 1.0): output side), then trained one step like lycoris_step, from weights drawn
    normal(0, 0.2), seed 1, in module order."""
    from lycoris.kohya import create_network
    from lycoris.modules.ia3 import IA3Module
    unet, fixture_sha256 = fixture_unet(folder)
    placement = create_network(1.0, 2, 1.5, None, None, unet, conv_dim="1", conv_alpha="0.5", algo="locon", preset="full")
    modules = [IA3Module(lora.lora_name, lora.org_module[0], 1.0) for lora in placement.unet_loras]
    for module in modules:
        module.apply_to()
    generator = torch.Generator().manual_seed(1)
    for module in modules:
        torch.nn.init.normal_(module.weight, std=0.2, generator=generator)
    from safetensors.torch import save_file
    tensors, loss = lycoris_batch_step(unet)
    for module in modules:
        tensors[module.lora_name + ".weight.grad"] = module.weight.grad.detach().clone()
    import importlib.metadata as md
    metadata = {"modules": json.dumps([[m.lora_name, 0, 0.0, [["weight", list(m.weight.shape)]]] for m in modules]),
                "on_input": json.dumps(sorted({int(m.on_input) for m in modules})),
                "fixture_sha256": fixture_sha256, "lycoris_lora": md.version("lycoris_lora"), "torch": torch.__version__,
                "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(HERE, "training", "lycoris_ia3_step.safetensors"), metadata=metadata)
    print(f"wrote lycoris_ia3_step.safetensors: {len(modules)} modules, loss {loss.item():.6f}")


def lycoris_presets(folder):
    """training/lycoris_presets.json: the modules (name, rank, alpha) lycoris.kohya.create_network places for each of
    LyCORIS's built-in presets the kohya_ss GUI offers, with algo=locon, dim 2 alpha 1.5, conv_dim 1 conv_alpha 0.5, on
    the fixture's U-Net and CLIP (text-encoder names with the text_model level kohya's transformers has); under "norms",
    the NormModules each preset adds with train_norm=True."""
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    from lycoris.kohya import LycorisNetworkKohya, create_network
    from lycoris.config import PRESET
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel
    unet, fixture_sha256 = fixture_unet(folder)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=128, intermediate_size=512, num_hidden_layers=3, num_attention_heads=2,
                            max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    te = CLIPTextModel(config)
    level = "" if hasattr(te, "text_model") else "text_model_"
    out = {"fixture_sha256": fixture_sha256, "dim": 2, "alpha": 1.5, "conv_dim": 1, "conv_alpha": 0.5, "presets": {}}
    for preset in ["full", "full-lin", "attn-mlp", "attn-only", "unet-only", "unet-transformer-only", "unet-convblock-only"]:
        LycorisNetworkKohya.apply_preset(PRESET["full"])  # apply_preset only sets the keys a preset has
        network = create_network(1.0, 2, 1.5, None, te, unet, conv_dim="1", conv_alpha="0.5", algo="locon", preset=preset)
        te_names = [[m.lora_name.replace("lora_te_", "lora_te_" + level, 1), m.lora_dim, float(m.alpha)] for m in network.text_encoder_loras]
        out["presets"][preset] = {"unet": [[m.lora_name, m.lora_dim, float(m.alpha)] for m in network.unet_loras], "te": te_names}
        # train_norm: the NormModules the same preset adds (text encoder and U-Net).
        LycorisNetworkKohya.apply_preset(PRESET["full"])
        normed = create_network(1.0, 2, 1.5, None, te, unet, conv_dim="1", conv_alpha="0.5", algo="locon", preset=preset, train_norm="True")
        out["norms"] = out.get("norms", {})
        out["norms"][preset] = sorted(m.lora_name.replace("lora_te_", "lora_te_" + level, 1) for m in normed.text_encoder_loras + normed.unet_loras
                                      if type(m).__name__ == "NormModule")
    with open(os.path.join(HERE, "training", "lycoris_presets.json"), "w") as f:
        json.dump(out, f, indent=0)
    print("wrote lycoris_presets.json:", {k: (len(v["unet"]), len(v["te"]), len(out["norms"][k])) for k, v in out["presets"].items()})


def lokr_layouts():
    """training/lokr_layouts.json: how LyCORIS's LokrModule splits layers of SD1/SD2's real widths (its tensors' names,
    shapes and order, and the alpha it saves) for the settings the kohya_ss GUI's LoKr presets use, with the network
    args as the strings kohya passes (decompose_both="False" is true in LokrModule), and with unbalanced_factorization."""
    from lycoris.modules.lokr import LokrModule
    layers = [("linear", 320, 320, 1), ("linear", 768, 320, 1), ("linear", 1024, 640, 1), ("linear", 320, 2560, 1),
              ("linear", 1280, 320, 1), ("linear", 1280, 10240, 1), ("linear", 5120, 1280, 1), ("linear", 768, 3072, 1),
              ("linear", 3072, 768, 1), ("linear", 1280, 1280, 1), ("conv", 4, 320, 3), ("conv", 320, 4, 3), ("conv", 320, 320, 3),
              ("conv", 320, 640, 3), ("conv", 640, 1280, 3), ("conv", 2560, 1280, 3), ("conv", 1920, 640, 3), ("conv", 960, 320, 3),
              ("conv", 640, 320, 1), ("conv", 320, 320, 1)]
    settings = [dict(dim=64, alpha=64, factor="-1", decompose_both="False"), dict(dim=100000, alpha=1, factor="6", decompose_both="False"),
                dict(dim=8, alpha=4, factor="-1", decompose_both="False"), dict(dim=8, alpha=4, factor="4"),
                dict(dim=16, alpha=8, factor="8", full_matrix=True), dict(dim=4, alpha=0, factor="16"),
                dict(dim=8, alpha=4, factor="-1", decompose_both="False", unbalanced_factorization=True),
                dict(dim=100000, alpha=1, factor="6", unbalanced_factorization=True)]
    out = []
    for kind, inputs, outputs, kernel in layers:
        layer = torch.nn.Linear(inputs, outputs) if kind == "linear" else torch.nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2)
        for setting in settings:
            extra = {k: v for k, v in setting.items() if k not in ("dim", "alpha")}
            module = LokrModule("m", layer, 1.0, setting["dim"], setting["alpha"], **extra)
            out.append({"kind": kind, "in": inputs, "out": outputs, "kernel": kernel, **setting,
                        "tensors": [[n, list(p.shape)] for n, p in module.named_parameters()], "saved_alpha": float(module.alpha),
                        "scale": float(module.scale)})
    with open(os.path.join(HERE, "training", "lokr_layouts.json"), "w") as f:
        json.dump({"lycoris_lora": importlib.metadata.version("lycoris_lora"), "layouts": out}, f, indent=0)
    print(f"wrote lokr_layouts.json: {len(out)} layouts")


def lora_unet(folder, weight_dtype=torch.float32):
    """The fixture's U-Net (frozen, in `weight_dtype` as kohya's weight_dtype) with kohya's LoRA modules in fp32."""
    unet, fixture_sha256 = fixture_unet(folder)
    # train_network.py: unet.to(weight_dtype) for the frozen model; the network keeps fp32 (no --full_bf16).
    unet.to(weight_dtype)
    rank, alpha = 2, 1.5
    # Factors drawn from their own generator, in module order, so the test redraws them (TorchGenerator) instead of storing them.
    generator = torch.Generator().manual_seed(1)
    modules = []
    # create_modules: named_modules of each Transformer2DModel, Linear or 1x1 Conv2d children.
    for name, module in unet.named_modules():
        if module.__class__.__name__ != "Transformer2DModel":
            continue
        for child_name, child in list(module.named_modules()):
            is_linear = isinstance(child, torch.nn.Linear)
            is_1x1 = isinstance(child, torch.nn.Conv2d) and child.kernel_size == (1, 1)
            if not (is_linear or is_1x1):
                continue
            lora_name = ("lora_unet." + name + "." + child_name).replace(".", "_")
            lora = LoRAModule(lora_name, child, rank, alpha)
            # kohya's init is Kaiming-uniform down, zero up; both random here so every gradient is non-zero.
            torch.nn.init.normal_(lora.lora_down.weight, std=0.2, generator=generator)
            torch.nn.init.normal_(lora.lora_up.weight, std=0.2, generator=generator)
            parent = module.get_submodule(child_name.rsplit(".", 1)[0]) if "." in child_name else module
            setattr(parent, child_name.rsplit(".", 1)[-1], lora)
            modules.append(lora)
    metadata = {"rank": str(rank), "alpha": str(alpha), "modules": json.dumps([m.lora_name for m in modules]),
                "factor_seed": "1", "fixture_sha256": fixture_sha256, "factor_std": "0.2", "torch": torch.__version__,
                "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    return unet, modules, metadata


def training_step(folder):
    from diffusers import DDPMScheduler
    from safetensors.torch import save_file
    unet, modules, metadata = lora_unet(folder)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                              clip_sample=False)
    # 16×16 latents: the deepest level is 2×2 (at 8×8 it would be 1×1, where self-attention over one token has
    # a zero q/k gradient and GroupNorm normalises two values: float noise that AdamW would amplify).
    latents = torch.randn(2, 4, 16, 16)
    noise = torch.randn(2, 4, 16, 16)
    timesteps = torch.tensor([17, 643])
    context = torch.randn(2, 77, 128)
    tensors = {"latents": latents, "noise": noise, "timesteps": timesteps.float(), "context": context}
    parameters = [p for m in modules for p in (m.lora_down.weight, m.lora_up.weight)]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3, weight_decay=0.01, foreach=False)
    losses = []
    for step in range(10):
        noisy = scheduler.add_noise(latents, noise, timesteps)
        prediction = unet(noisy, timesteps, context).sample
        loss = torch.nn.functional.mse_loss(prediction.float(), noise.float(), reduction="none").mean([1, 2, 3]).mean()
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            for m in modules:
                tensors[m.lora_name + ".lora_down.grad"] = m.lora_down.weight.grad.detach().clone()
                tensors[m.lora_name + ".lora_up.grad"] = m.lora_up.weight.grad.detach().clone()
        losses.append(loss.item())
        optimizer.step()
    for m in modules:
        tensors[m.lora_name + ".lora_down.after10"] = m.lora_down.weight.detach().clone()
        tensors[m.lora_name + ".lora_up.after10"] = m.lora_up.weight.detach().clone()
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(HERE, "training", "step.safetensors"), metadata=metadata)
    print(f"wrote step.safetensors: {len(modules)} modules, loss {losses[0]:.6f} -> {losses[-1]:.6f}")


def lora_fa_step(folder, sd_scripts):
    """training/lora_fa_step.safetensors: sd-scripts' own LoRA-FA (networks/lora_fa.py from the SD_SCRIPTS checkout) on
    the fixture's U-Net, dim 2 alpha 1.5: its modules in order, the tensors its
    prepare_optimizer_params hands the optimizer (lora_up alone), and ten AdamW steps (lr 1e-3, weight decay 0.01) on
    the LyCORIS goldens' batch from factors drawn as training_step draws them (normal(0, 0.2), seed 1, down then up):
    each step's loss, the first step's gradients of lora_up and lora_up after ten steps (lora_down is checked to be
    unchanged, as drawn)."""
    sys.path.insert(0, sd_scripts)
    import networks.lora_fa as lora_fa
    from safetensors.torch import save_file
    unet, fixture_sha256 = fixture_unet(folder)
    # No conv_dim: the 32-channel level's time_emb_proj modules would get gradients that are float noise (GroupNorm with
    # one channel per group removes their shift), which ten AdamW steps amplify.
    network = lora_fa.create_network(1.0, 2, 1.5, None, [], unet)
    network.apply_to([], unet, apply_text_encoder=False, apply_unet=True)
    generator = torch.Generator().manual_seed(1)
    for lora in network.unet_loras:
        for parameter in (lora.lora_down.weight, lora.lora_up.weight):
            torch.nn.init.normal_(parameter, std=0.2, generator=generator)
    groups = network.prepare_optimizer_params(None, 1e-3, 1e-3)
    names = {id(p): n for n, p in network.named_parameters()}
    trained = [names[id(p)] for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.01, foreach=False)
    tensors, losses = {}, []
    for step in range(10):
        optimizer.zero_grad()
        batch, loss = lycoris_batch_step(unet)
        if step == 0:
            tensors.update({k: v for k, v in batch.items() if k != "loss"})
            # torch computes lora_down's gradient too (prepare_optimizer_params' nn.Module.requires_grad_(True) passes over
            # LoRAModule.requires_grad_), but no optimizer group holds it: it is never applied, nor zeroed.
            for lora in network.unet_loras:
                tensors[lora.lora_name + ".lora_up.grad"] = lora.lora_up.weight.grad.detach().clone()
        losses.append(loss.item())
        optimizer.step()
    # lora_down is left as drawn (the test redraws it), so only lora_up is kept.
    for lora in network.unet_loras:
        tensors[lora.lora_name + ".lora_up.after10"] = lora.lora_up.weight.detach().clone()
    generator = torch.Generator().manual_seed(1)
    for lora in network.unet_loras:
        drawn = torch.empty_like(lora.lora_down.weight).normal_(std=0.2, generator=generator)
        assert torch.equal(drawn, lora.lora_down.weight), lora.lora_name
        torch.empty_like(lora.lora_up.weight).normal_(std=0.2, generator=generator)
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    import subprocess
    commit = subprocess.run(["git", "-C", sd_scripts, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    metadata = {"modules": json.dumps([m.lora_name for m in network.unet_loras]), "trained": json.dumps(trained),
                "fixture_sha256": fixture_sha256, "sd_scripts": commit or "unknown", "torch": torch.__version__,
                "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(HERE, "training", "lora_fa_step.safetensors"), metadata=metadata)
    print(f"wrote lora_fa_step.safetensors: {len(network.unet_loras)} modules, loss {losses[0]:.6f} -> {losses[-1]:.6f}")


def bf16_step(folder):
    """training/step_bf16.safetensors: the first step of training_step's batch as kohya runs it with
    --mixed_precision bf16: the frozen U-Net stored in bf16, the forward under torch's CPU autocast (bf16
    matmuls and convolutions whose outputs are bf16 too; norms and softmax in fp32), the loss in fp32, the
    LoRA factors fp32. Its loss and gradients, for a tolerance check of our bf16 GEMMs (which round the
    operands only and keep fp32 activations, so they cannot equal it)."""
    from diffusers import DDPMScheduler
    from safetensors.torch import load_file, save_file
    unet, modules, metadata = lora_unet(folder, weight_dtype=torch.bfloat16)
    batch = load_file(os.path.join(HERE, "training", "step.safetensors"))
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                              clip_sample=False)
    timesteps = batch["timesteps"].long()
    noisy = scheduler.add_noise(batch["latents"], batch["noise"], timesteps)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        prediction = unet(noisy, timesteps, batch["context"]).sample
    loss = torch.nn.functional.mse_loss(prediction.float(), batch["noise"].float(), reduction="none").mean([1, 2, 3]).mean()
    loss.backward()
    tensors = {"loss": torch.tensor([loss.item()], dtype=torch.float64)}
    for m in modules:
        tensors[m.lora_name + ".lora_down.grad"] = m.lora_down.weight.grad.detach().float().clone()
        tensors[m.lora_name + ".lora_up.grad"] = m.lora_up.weight.grad.detach().float().clone()
    save_file(tensors, os.path.join(HERE, "training", "step_bf16.safetensors"), metadata=metadata)
    print(f"wrote step_bf16.safetensors: loss {loss.item():.6f} (fp32 {batch['losses'][0].item():.6f})")


def text_encoder_step(folder):
    """kohya's text-encoder LoRA (every Linear of CLIPAttention and CLIPMLP,
    named lora_te_text_model_encoder_layers_<i>_<path>) on the engine
    fixture's CLIP, clip skip 2 as sd-scripts applies it (hidden_states[-2],
    then the final LayerNorm), into the frozen U-Net: the loss and the
    modules' gradients for two token sequences. Factors: normal(0, 0.2) from a
    generator seeded 2, down then up, in module order."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint
    from safetensors.torch import load_file, save_file
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(5)
    fixture = os.path.join(folder, "sd1_engine.safetensors")
    with open(fixture, "rb") as f:
        fixture_sha256 = hashlib.sha256(f.read()).hexdigest()
    checkpoint = load_file(fixture)
    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64, 64, 64), layers_per_block=2,
                                cross_attention_dim=128, attention_head_dim=8, norm_num_groups=32)
    missing, unexpected = unet.load_state_dict(convert_ldm_unet_checkpoint(checkpoint, unet.config), strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    unet.eval().requires_grad_(False)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=128, intermediate_size=512, num_hidden_layers=3, num_attention_heads=2,
                            max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    te = CLIPTextModel(config)
    state = convert_ldm_clip_checkpoint(checkpoint)
    if not any(k.startswith("text_model.") for k in te.state_dict()):  # newer transformers: no text_model. level
        state = {k.removeprefix("text_model."): v for k, v in state.items()}
    missing, unexpected = te.load_state_dict(state, strict=False)
    assert not [k for k in missing if "position_ids" not in k] and not [k for k in unexpected if "position_ids" not in k]
    te.eval().requires_grad_(False)
    rank, alpha = 2, 1.5
    generator = torch.Generator().manual_seed(2)
    modules = []
    for name, module in te.named_modules():
        if module.__class__.__name__ not in ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP"):
            continue
        for child_name, child in list(module.named_modules()):
            if not isinstance(child, torch.nn.Linear):
                continue
            path = name if hasattr(te, "text_model") else "text_model." + name  # kohya's transformers has the text_model level
            lora = LoRAModule(("lora_te." + path + "." + child_name).replace(".", "_"), child, rank, alpha)
            torch.nn.init.normal_(lora.lora_down.weight, std=0.2, generator=generator)
            torch.nn.init.normal_(lora.lora_up.weight, std=0.2, generator=generator)
            setattr(module, child_name, lora)
            modules.append(lora)
    ids = torch.full((2, 77), 49407, dtype=torch.long)
    ids[0, :6] = torch.tensor([49406, 320, 1929, 539, 1237, 49407])
    ids[1, :4] = torch.tensor([49406, 4558, 2368, 49407])
    output = te(ids, output_hidden_states=True)
    context = getattr(te, "text_model", te).final_layer_norm(output.hidden_states[-2])
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                              clip_sample=False)
    latents, noise, timesteps = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16), torch.tensor([120, 777])
    prediction = unet(scheduler.add_noise(latents, noise, timesteps), timesteps, context).sample
    loss = torch.nn.functional.mse_loss(prediction.float(), noise.float(), reduction="none").mean([1, 2, 3]).mean()
    loss.backward()
    tensors = {"ids": ids.float(), "latents": latents, "noise": noise, "timesteps": timesteps.float(), "loss": torch.tensor([loss.item()], dtype=torch.float64)}
    # With clip skip 2 the last layer's modules take no part: torch leaves their gradient None (AdamW skips them).
    reached = [m for m in modules if m.lora_down.weight.grad is not None]
    for m in reached:
        tensors[m.lora_name + ".lora_down.grad"] = m.lora_down.weight.grad.detach().clone()
        tensors[m.lora_name + ".lora_up.grad"] = m.lora_up.weight.grad.detach().clone()
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(HERE, "training", "text_encoder_step.safetensors"),
              metadata={"rank": str(rank), "alpha": str(alpha), "modules": json.dumps([m.lora_name for m in modules]),
                        "reached": json.dumps([m.lora_name for m in reached]), "factor_seed": "2",
                        "clip_skip": "2", "fixture_sha256": fixture_sha256, "torch": torch.__version__,
                        "cpu_capability": torch.backends.cpu.get_cpu_capability()})
    print(f"wrote text_encoder_step.safetensors: {len(modules)} modules, loss {loss.item():.6f}")


def loss_weights(sd_scripts):
    """sd-scripts' own per-item loss weighting functions, on a row of timesteps."""
    from diffusers import DDPMScheduler
    sys.path.insert(0, sd_scripts)
    from library.custom_train_functions import (add_v_prediction_like_loss, apply_debiased_estimation, apply_snr_weight,
                                                prepare_scheduler_for_custom_training,
                                                scale_v_prediction_loss_like_noise_prediction)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                              clip_sample=False)
    prepare_scheduler_for_custom_training(scheduler, "cpu")
    timesteps = torch.tensor([0, 1, 17, 250, 500, 643, 999])
    cases = {}
    for v in [False, True]:
        ones = lambda: torch.ones(len(timesteps))
        cases[f"min_snr_5_v{int(v)}"] = apply_snr_weight(ones(), timesteps, scheduler, 5, v).tolist()
        cases[f"debiased_v{int(v)}"] = apply_debiased_estimation(ones(), timesteps, scheduler, v).tolist()
        combined = apply_snr_weight(ones(), timesteps, scheduler, 5, v)
        if v:
            combined = scale_v_prediction_loss_like_noise_prediction(combined, timesteps, scheduler)
            combined = add_v_prediction_like_loss(combined, timesteps, scheduler, torch.tensor(0.1))
        cases[f"combined_v{int(v)}"] = apply_debiased_estimation(combined, timesteps, scheduler, v).tolist()
    # Loss types and Huber schedules (train_util.conditional_loss, get_huber_threshold_if_needed) through
    # train_network.py's reduction (element loss, mean over C, H, W, batch mean): the loss and d loss / d pred.
    import types
    from types import SimpleNamespace
    # The long-prompt pipelines import names newer transformers removed; the loss code does not use them.
    for name, cls in [("library.lpw_stable_diffusion", "StableDiffusionLongPromptWeightingPipeline"),
                      ("library.sdxl_lpw_stable_diffusion", "SdxlStableDiffusionLongPromptWeightingPipeline")]:
        stub = types.ModuleType(name)
        setattr(stub, cls, object)
        sys.modules.setdefault(name, stub)
    from library.train_util import conditional_loss, get_huber_threshold_if_needed
    n = 2 * 4 * 4 * 4
    pred0 = torch.tensor([math.sin(0.1 * i) for i in range(n)], dtype=torch.float32).reshape(2, 4, 4, 4)
    target = torch.tensor([math.cos(0.07 * i) for i in range(n)], dtype=torch.float32).reshape(2, 4, 4, 4)
    loss_timesteps = torch.tensor([17, 643])
    losses = {}
    for loss_type in ["l2", "l1", "huber", "smooth_l1"]:
        for schedule in ["snr", "exponential", "constant"]:
            args = SimpleNamespace(loss_type=loss_type, huber_schedule=schedule, huber_c=0.1, huber_scale=1.5)
            pred = pred0.clone().requires_grad_(True)
            huber_c = get_huber_threshold_if_needed(args, loss_timesteps, scheduler)
            loss = conditional_loss(pred, target, loss_type, "none", huber_c).mean([1, 2, 3]).mean()
            loss.backward()
            losses[f"{loss_type}_{schedule}"] = {"loss": loss.item(), "gradient": pred.grad.reshape(-1).tolist()}
    # --scale_weight_norms: networks/lora.py's own apply_max_norm_regularization on three modules
    # (linear, 1x1 conv, 3x3 LoCon conv), values from a formula, M = 0.5.
    from networks.lora import LoRANetwork as KohyaNetwork

    class Holder(torch.nn.Module):
        def __init__(self, up_shape, down_shape, alpha, offset):
            super().__init__()
            self.lora_up = torch.nn.Module()
            self.lora_down = torch.nn.Module()
            count_up, count_down = math.prod(up_shape), math.prod(down_shape)
            self.lora_up.weight = torch.nn.Parameter(torch.tensor([math.sin(0.3 * i + offset) for i in range(count_up)]).reshape(up_shape))
            self.lora_down.weight = torch.nn.Parameter(torch.tensor([math.cos(0.2 * i + offset) for i in range(count_down)]).reshape(down_shape))
            self.register_buffer("alpha", torch.tensor(alpha))

    holders = torch.nn.Module()
    specs = [("linear", (6, 2), (2, 5), 1.5, 0.0), ("small", (6, 2), (2, 5), 0.02, 1.0),
             ("conv1x1", (6, 2, 1, 1), (2, 5, 1, 1), 2.0, 2.0), ("conv3x3", (4, 2, 1, 1), (2, 3, 3, 3), 1.0, 3.0)]
    for name, up_shape, down_shape, alpha, offset in specs:
        holders.add_module(name, Holder(up_shape, down_shape, alpha, offset))
    before = {k: v.detach().clone().reshape(-1).tolist() for k, v in holders.state_dict().items()}
    with torch.no_grad():
        keys_scaled, average, maximum = KohyaNetwork.apply_max_norm_regularization(holders, 0.5, "cpu")
    max_norm = {"max": 0.5, "specs": [[n, list(u), list(d), a, o] for n, u, d, a, o in specs], "before": before,
                "after": {k: v.reshape(-1).tolist() for k, v in holders.state_dict().items()},
                "keys_scaled": keys_scaled, "average": float(average), "maximum": float(maximum)}
    # Block learning rates: networks/lora.py's own parse_block_lr_kwargs (+ get_block_lr_weight) for SD1.
    from networks.lora import parse_block_lr_kwargs
    block_rates = []
    for kwargs in [{"down_lr_weight": "sine+.5"}, {"down_lr_weight": "1,0.5,,2", "mid_lr_weight": "0.3", "up_lr_weight": "cosine"},
                   {"up_lr_weight": "linear", "block_lr_zero_threshold": "0.1"}, {"mid_lr_weight": "0", "up_lr_weight": "zeros+0.25"}]:
        block_rates.append({"kwargs": kwargs, "weights": parse_block_lr_kwargs(False, dict(kwargs))})
    # torch's bilinear upsampling (the pyramid noise's), align_corners=False.
    small = torch.tensor([math.sin(1.7 * i) for i in range(2 * 3 * 2)], dtype=torch.float32).reshape(1, 2, 3, 2)
    upsampled = torch.nn.Upsample(size=(7, 5), mode="bilinear")(small)
    with open(os.path.join(HERE, "training", "loss_weights.json"), "w") as f:
        json.dump({"timesteps": timesteps.tolist(), "cases": cases, "loss_timesteps": loss_timesteps.tolist(), "losses": losses,
                   "upsample": {"input": small.reshape(-1).tolist(), "output": upsampled.reshape(-1).tolist()},
                   "max_norm": max_norm, "block_rates": block_rates}, f, indent=1)
    print("wrote loss_weights.json")


def lycoris_max_norm():
    """training/lycoris_max_norm.json: --scale_weight_norms with lycoris.kohya, from LyCORIS's own
    LycorisNetworkKohya.apply_max_norm_regularization over LoConModule, LohaModule, LokrModule and IA3Module
    (lycoris_lora 3.2.0.post2) on small Linear and Conv2d layers, factors from a formula: which modules it scales, the
    report, each module's scalar and parameters after, the tensors its state_dict saves (the scalar multiplied into
    lora_up / hada_w1_a), and then, to show the scalar enters training, LoCon's output and gradients for an input and
    an output gradient, and LoHa's and LoKr's ΔW as their forward uses it with the gradients for a given dΔW."""
    from types import SimpleNamespace
    from lycoris.kohya import LycorisNetworkKohya
    from lycoris.modules.locon import LoConModule
    from lycoris.modules.loha import LohaModule
    from lycoris.modules.lokr import LokrModule
    from lycoris.modules.ia3 import IA3Module
    torch.manual_seed(0)  # the layers' own initialisation (unused: the modules' weights are set below)

    def layer(kind):
        return torch.nn.Linear(5, 6, bias=False) if kind == "linear" else torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)

    specs = [("locon_linear", LoConModule, "linear", dict(lora_dim=2, alpha=1.5), 1.0),
             ("locon_conv", LoConModule, "conv", dict(lora_dim=2, alpha=1.0), 1.0),
             ("locon_small", LoConModule, "linear", dict(lora_dim=2, alpha=0.02), 1.0),
             ("loha_linear", LohaModule, "linear", dict(lora_dim=2, alpha=1.5), 1.2),
             ("loha_conv", LohaModule, "conv", dict(lora_dim=2, alpha=1.0), 0.8),
             ("loha_middle", LohaModule, "linear", dict(lora_dim=2, alpha=25.0), 0.35),
             ("lokr_full", LokrModule, "linear", dict(lora_dim=100000, alpha=1.0, factor=-1), 1.0),
             ("lokr_lowrank", LokrModule, "conv", dict(lora_dim=1, alpha=0.5, factor=2, decompose_both=True), 1.0),
             ("ia3", IA3Module, "linear", dict(), 1.0),
             # Tucker cores (LoHa's is left out: its gradients below would come from LyCORIS's HadaWeightTucker.backward).
             ("locon_tucker", LoConModule, "conv", dict(lora_dim=2, alpha=1.0, use_tucker=True), 1.0),
             ("lokr_tucker", LokrModule, "conv", dict(lora_dim=1, alpha=0.5, factor=2, use_tucker=True), 1.0)]
    modules = []
    for index, (name, kind_class, kind, kwargs, amplitude) in enumerate(specs):
        module = kind_class(name, layer(kind), 1.0, **kwargs)
        with torch.no_grad():
            for n, (_, p) in enumerate(module.named_parameters()):
                values = [amplitude * math.sin(0.3 * i + index + 0.7 * n) for i in range(p.numel())]
                p.copy_(torch.tensor(values).reshape(p.shape))
        modules.append(module)
    before = {m.lora_name: {n: p.detach().reshape(-1).tolist() for n, p in m.named_parameters()} for m in modules}
    holder = SimpleNamespace(unet_loras=modules, text_encoder_loras=[])
    maximum = 0.5
    none = LycorisNetworkKohya.apply_max_norm_regularization(holder, 100.0, "cpu")
    keys_scaled, average, largest = LycorisNetworkKohya.apply_max_norm_regularization(holder, maximum, "cpu")
    out = {"max": maximum, "keys_scaled": int(keys_scaled), "average": float(average), "maximum": float(largest),
           "none": [float(v) for v in none], "modules": []}
    for (name, _, kind, kwargs, _), module in zip(specs, modules):
        entry = {"name": name, "algo": module.name, "kind": kind, "rank": int(getattr(module, "lora_dim", 0)),
                 "alpha": float(getattr(module, "alpha", 0)), "before": before[name],
                 "parameters": [[n, list(p.shape)] for n, p in module.named_parameters()],
                 "after": {n: p.detach().reshape(-1).tolist() for n, p in module.named_parameters()},
                 "scalar": float(module.scalar) if hasattr(module, "scalar") else 1.0,
                 "saved": {k: v.detach().reshape(-1).tolist() for k, v in module.state_dict().items()}}
        module.train()
        module.apply_to()
        if isinstance(module, LoConModule):
            shape = (2, 5) if kind == "linear" else (1, 3, 4, 4)
            x = torch.tensor([math.cos(0.37 * i) for i in range(math.prod(shape))]).reshape(shape)
            base = module.org_forward(x).detach()
            y = module.org_module[0](x)
            dy = torch.tensor([math.sin(0.23 * i + 1) for i in range(y.numel())]).reshape(y.shape)
            (y * dy).sum().backward()
            entry.update(x=x.reshape(-1).tolist(), x_shape=list(shape), output=(y - base).detach().reshape(-1).tolist(), dy=dy.reshape(-1).tolist())
        elif not isinstance(module, IA3Module):
            delta = module.get_weight(module.shape) * module.scalar
            g = torch.tensor([math.sin(0.23 * i + 1) for i in range(delta.numel())]).reshape(delta.shape)
            (delta * g).sum().backward()
            entry.update(delta=delta.detach().reshape(-1).tolist(), delta_gradient=g.reshape(-1).tolist())
        if not isinstance(module, IA3Module):
            entry["gradients"] = {n: p.grad.reshape(-1).tolist() for n, p in module.named_parameters()}
        out["modules"].append(entry)
    import importlib.metadata as md
    out["lycoris_lora"], out["torch"] = md.version("lycoris_lora"), torch.__version__
    with open(os.path.join(HERE, "training", "lycoris_max_norm.json"), "w") as f:
        json.dump(out, f, indent=0)
    print("wrote lycoris_max_norm.json:", keys_scaled, average, largest, [(e["name"], e["scalar"]) for e in out["modules"]])


def lycoris_goldens(folder):
    """Every LyCORIS golden (needs lycoris_lora==3.2.0.post2)."""
    lycoris_step(folder)
    lycoris_step(folder, algo="loha")
    # As the kohya_ss GUI writes them: factor=-1 decompose_both=False (a non-empty string, so true in LokrModule).
    lycoris_step(folder, algo="lokr", factor="-1", decompose_both="False")
    # The GUI's loha-sd15 sets use_cp: Tucker cores on the 3x3 convolutions (conv_dim 2, so the cores are 2x2x3x3).
    lycoris_step(folder, algo="loha", preset="unet-convblock-only", conv_dim="2", out_name="lycoris_loha_tucker_step.safetensors", use_tucker="True")
    # use_tucker on LoCon (lora_mid: a 1x1 lora_down, the 3x3 core, lora_up) and on LoKr (lokr_t2 where w2 is low-rank:
    # at conv_dim 2 and factor -1 every 3x3 kernel of the fixture), convblock preset as the LoHa one.
    lycoris_step(folder, algo="locon", preset="unet-convblock-only", conv_dim="2", out_name="lycoris_locon_tucker_step.safetensors", use_tucker="True")
    lycoris_step(folder, algo="lokr", preset="unet-convblock-only", conv_dim="2", out_name="lycoris_lokr_tucker_step.safetensors", factor="-1",
                 decompose_both="False", use_tucker="True")
    # dora_wd (the GUI's "DoRA Weight Decompose") on LoCon, LoHa and LoKr, convblock preset, some modules' gradients kept.
    for algo, extra in [("locon", {}), ("loha", {}), ("lokr", {"factor": "-1", "decompose_both": "False"})]:
        lycoris_step(folder, algo=algo, preset="unet-convblock-only", conv_dim="2", out_name=f"lycoris_{algo}_dora_step.safetensors", dora_wd="True",
                     gradients_of=["down_blocks_1_", "conv_in", "up_blocks_0_resnets_1_"], **extra)
    # use_scalar (the GUI's "Use Scalar"): each module's scalar trained, its factors all drawn (here, as every golden's are).
    for algo, extra in [("locon", {}), ("loha", {}), ("lokr", {"factor": "-1", "decompose_both": "False"})]:
        lycoris_step(folder, algo=algo, preset="unet-convblock-only", conv_dim="2", out_name=f"lycoris_{algo}_scalar_step.safetensors", use_scalar="True",
                     gradients_of=["down_blocks_1_", "conv_in", "up_blocks_0_resnets_1_"], **extra)
    # The GUI's "sd15 - LoKr v1.1": full matrices (dim 100000, factor 6), use_cp (no module gets a core: w2 is full),
    # train_norm (NormModules on the ResBlocks' and transformers' norms), rank_dropout_scale at rank_dropout 0.
    lycoris_step(folder, algo="lokr", out_name="lycoris_lokr_norm_step.safetensors", dim=100000, alpha=1, conv_dim="100000", conv_alpha="1",
                 factor="6", decompose_both="True", use_cp="True", train_norm="True", rank_dropout_scale="True", rank_dropout="0",
                 gradients_of=["_norm", "down_blocks_1_", "conv_in"])
    # rank_dropout (the GUI's "Rank dropout", written for every LyCORIS type): rows of ΔW dropped in each forward, LoCon's
    # beside its layer and LoKr's on the full preset, LoHa's inside DoRA's decomposition on the convblock one (as the DoRA
    # goldens: on the attention layers DoRA's gradients are ill-conditioned, torch's fp32 ones 8e-5 from its fp64 ones);
    # the draws seeded as lora-train seeds them.
    for algo, preset, extra in [("locon", "full", {}), ("loha", "unet-convblock-only", {"dora_wd": "True", "conv_dim": "2"}),
                                ("lokr", "full", {"factor": "-1", "decompose_both": "False"})]:
        lycoris_step(folder, algo=algo, preset=preset, out_name=f"lycoris_{algo}_rank_dropout_step.safetensors", rank_dropout="0.3",
                     rank_dropout_seed=5, gradients_of=["down_blocks_1_", "conv_in", "mid_block_attentions_0_transformer_blocks_0_attn2"], **extra)
    ia3_step(folder)
    lycoris_presets(folder)
    lokr_layouts()
    lycoris_max_norm()


if len(sys.argv) > 1:
    if os.environ.get("ONLY_BF16"):  # adds step_bf16.safetensors beside the committed step.safetensors
        bf16_step(sys.argv[1])
        sys.exit(0)
    if os.environ.get("ONLY_LYCORIS"):  # the LyCORIS goldens alone
        lycoris_goldens(sys.argv[1])
        sys.exit(0)
    training_step(sys.argv[1])
    bf16_step(sys.argv[1])
    text_encoder_step(sys.argv[1])
    lycoris_goldens(sys.argv[1])
if os.environ.get("SD_SCRIPTS"):
    loss_weights(os.environ["SD_SCRIPTS"])
    if len(sys.argv) > 1:
        lora_fa_step(sys.argv[1], os.environ["SD_SCRIPTS"])
