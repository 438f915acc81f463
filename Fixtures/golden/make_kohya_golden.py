#!/usr/bin/env python3
"""Golden outputs from kohya-ss/sd-scripts itself, on our tiny SD1 fixture.

Run by hand (needs torch, diffusers, transformers and a checkout of sd-scripts):

    SD_SCRIPTS=/path/to/sd-scripts python3 Fixtures/golden/make_kohya_golden.py

1. Loads Fixtures/models/sd1_tiny.safetensors through kohya's own LDM → diffusers
   conversion into a diffusers UNet2DConditionModel and a transformers
   CLIPTextModel built at the fixture's tiny widths (a strict load: this also
   checks our generator's key names against diffusers').
2. Creates LoRAs with kohya's own `networks.lora.create_network` (a plain LoRA
   and a LoCon with conv_dim), randomises their weights and saves them with
   kohya's `save_weights` (its metadata and sshs hashes included).
3. Bakes them into the model with kohya's `merge_lora.merge_to_sd_model` and
   converts back with `convert_unet_state_dict_to_sd`; stores only the tensors
   that changed (fp16, as `merge_lora.py --save_precision fp16` writes them).
4. Combines the two LoRAs with `svd_merge_lora.merge_lora_models` (rank 2),
   with kohya's 0.99 clamp and with the clamp turned off.
5. Extracts a LoRA from sd1_tiny and a "tuned" copy with planted low-rank
   changes (`swift run lora-bench fixtures --all` writes it; pass its path in
   TUNED) with kohya's own `extract_lora_from_models.svd` (dim 4, conv_dim 2,
   fp16), and resizes kohya_lora_r4 with `resize_lora.resize_lora_model`
   (rank 2, and sv_fro 0.9 with max rank 4).
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file

SD = os.environ.get("SD_SCRIPTS") or (sys.argv[1] if len(sys.argv) > 1 else None)
if not SD:
    sys.exit("set SD_SCRIPTS to a checkout of kohya-ss/sd-scripts")
sys.path.insert(0, SD)
sys.path.insert(0, os.path.join(SD, "networks"))

from diffusers import UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402

from library import model_util  # noqa: E402
import lora as kohya_lora  # noqa: E402
import merge_lora  # noqa: E402
import svd_merge_lora  # noqa: E402
import extract_lora_from_models  # noqa: E402
import resize_lora  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "kohya")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(42)

BASE = os.path.join(ROOT, "Fixtures/models/sd1_tiny.safetensors")
UNET_CONFIG = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
                   block_out_channels=(8, 16, 32, 32),
                   down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                   up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                   cross_attention_dim=8, attention_head_dim=2, norm_num_groups=8)
TE_CONFIG = CLIPTextConfig(vocab_size=64, hidden_size=8, intermediate_size=32, num_hidden_layers=12,
                           num_attention_heads=2, max_position_embeddings=8)


def load_models():
    checkpoint = {k: v.float() for k, v in load_file(BASE).items()}
    unet = UNet2DConditionModel(**UNET_CONFIG)
    unet_sd = model_util.convert_ldm_unet_checkpoint(False, dict(checkpoint), unet.config)
    unet.load_state_dict(unet_sd, strict=True)
    te = CLIPTextModel(TE_CONFIG)
    te_sd = model_util.convert_ldm_clip_checkpoint_v1(dict(checkpoint))
    missing, unexpected = te.load_state_dict(te_sd, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    return checkpoint, unet, te


def make_lora(name, unet, te, dim, alpha, **kwargs):
    network = kohya_lora.create_network(1.0, dim, alpha, None, te, unet, **kwargs)
    network.apply_to(te, unet)  # registers the modules (and hooks these model copies, used for nothing else)
    with torch.no_grad():
        for pname, p in network.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if "lora_up" in pname else 0.5))
    metadata = {"ss_network_module": "networks.lora", "ss_network_dim": str(dim), "ss_network_alpha": str(alpha),
                "ss_base_model_version": "sd_v1", "ss_v2": "False"}
    if kwargs:
        metadata["ss_network_args"] = str(kwargs)
    path = os.path.join(OUT, name)
    network.save_weights(path, torch.float16, metadata)
    return path


def merged_ldm(unet, te):
    out = {"model.diffusion_model." + k: v for k, v in model_util.convert_unet_state_dict_to_sd(False, unet.state_dict()).items()}
    for k, v in te.state_dict().items():
        out["cond_stage_model.transformer." + k] = v
    return out


def bake(lora_path, ratio, output, max_elements=None):
    checkpoint, unet, te = load_models()
    merge_lora.merge_to_sd_model(te, unet, [lora_path], [ratio], torch.float)
    merged = merged_ldm(unet, te)
    base = load_file(BASE)
    changed = {k: v.to(torch.float16).contiguous() for k, v in merged.items()
               if k in base and not torch.equal(v.to(torch.float16), base[k])
               and (max_elements is None or v.numel() <= max_elements)}
    save_file(changed, os.path.join(OUT, output))
    print(f"{output}: {len(changed)} changed tensors")


def load_checkpoint_models(path):
    """Build the tiny models from an LDM checkpoint the way kohya converts one."""
    checkpoint = {k: v.float() for k, v in load_file(path).items()}
    unet = UNet2DConditionModel(**UNET_CONFIG)
    unet.load_state_dict(model_util.convert_ldm_unet_checkpoint(False, dict(checkpoint), unet.config), strict=True)
    te = CLIPTextModel(TE_CONFIG)
    te.load_state_dict(model_util.convert_ldm_clip_checkpoint_v1(dict(checkpoint)), strict=False)
    return te, None, unet


def extract(tuned):
    import argparse
    import hashlib
    import json
    # kohya's loader builds full-size SD1 models; hand it the tiny ones instead.
    extract_lora_from_models.model_util.load_models_from_stable_diffusion_checkpoint = lambda v2, path: load_checkpoint_models(path)
    extract_lora_from_models.args = argparse.Namespace(device=None)
    out = os.path.join(OUT, "extracted_r4_conv2.safetensors")
    extract_lora_from_models.svd(model_org=BASE, model_tuned=tuned, save_to=out, dim=4, conv_dim=2, v2=False, sdxl=False,
                                 save_precision="fp16", clamp_quantile=0.99, min_diff=0.01)
    # Unclamped (kohya always clamps; a quantile of max |value| disables it).
    quantile = torch.quantile
    torch.quantile = lambda values, q: values.abs().max()
    extract_lora_from_models.svd(model_org=BASE, model_tuned=tuned, save_to=os.path.join(OUT, "extracted_r4_conv2_noclamp.safetensors"),
                                 dim=4, conv_dim=2, v2=False, sdxl=False, save_precision="fp16", clamp_quantile=1.0, min_diff=0.01)
    torch.quantile = quantile
    with open(os.path.join(OUT, "extract_inputs.json"), "w") as f:
        json.dump({"tuned_sha256": hashlib.sha256(open(tuned, "rb").read()).hexdigest()}, f)
    print("extracted", out)


def resize(lora_path):
    sd = {k: v.float() for k, v in load_file(lora_path).items()}  # kohya loads in float for the SVD
    for name, rank, method, param in [("resized_r2.safetensors", 2, None, None), ("resized_fro0.9.safetensors", 4, "sv_fro", 0.9)]:
        resized, _, _ = resize_lora.resize_lora_model(dict(sd), rank, rank, torch.float16, "cpu", method, param, False)
        save_file({k: v.contiguous() for k, v in resized.items()}, os.path.join(OUT, name))
        print("resized", name)


if __name__ == "__main__":
    _, unet, te = load_models()
    lora_path = make_lora("kohya_lora_r4.safetensors", unet, te, 4, 2.0)
    _, unet, te = load_models()
    locon_path = make_lora("kohya_locon_r4.safetensors", unet, te, 4, 1.0, conv_dim=2, conv_alpha=1.0)
    bake(lora_path, 0.8, "merged_lora_0.8.safetensors")
    # Only the smaller tensors of the LoCon merge are kept, to keep fixtures small.
    bake(locon_path, 1.0, "merged_locon_1.0.safetensors", max_elements=8192)

    # kohya always clamps at ±quantile(values, 0.99); even 1.0 cuts the negative
    # tail, so the unclamped reference replaces torch.quantile by the largest |value|.
    quantile = torch.quantile
    for clamp, name in [(True, "svd_merged_r2.safetensors"), (False, "svd_merged_r2_noclamp.safetensors")]:
        torch.quantile = quantile if clamp else (lambda values, q: values.abs().max())
        sd, metadata, _, _ = svd_merge_lora.merge_lora_models([lora_path, locon_path], [0.6, 0.4], [], 2, 2, None, torch.float)
        torch.quantile = quantile
        save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in sd.items()}, os.path.join(OUT, name), metadata)
        print(f"{name}: {len(sd)} tensors")

    if os.environ.get("TUNED"):
        extract(os.environ["TUNED"])
    else:
        print("TUNED not set: skipping the extraction golden")
    resize(lora_path)
