#!/usr/bin/env python3
"""Golden fixtures for the Swift tests, written by the reference Python stack.

Run by hand from the repository root (needs torch, safetensors, numpy):

    python3 Fixtures/golden/make_golden.py

It writes small files into Fixtures/golden/ and golden.json with the values
our Swift code must reproduce. ΔW is rebuilt here with torch operations in
float64 (conv2d, einsum and kron, as kohya / A1111 / LyCORIS write them), so
the Swift implementation is checked against an independent one.

The malicious pickles under evil/ are *built*, never loaded: loading them
with torch.load(weights_only=False) would run `echo` commands.
"""
import hashlib
import io
import json
import math
import os
import pickle
import struct
import zipfile

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(20261123)
golden = {"files": {}}


def rnd(*shape, scale=1.0, dtype=torch.float16):
    return (torch.randn(*shape, dtype=torch.float64) * scale).to(dtype)


def projection_vector(n):
    # Easy to rebuild in Swift: x_i = sin(i + 1).
    return torch.tensor([math.sin(i + 1) for i in range(n)], dtype=torch.float64)


def record_module(entry, name, algorithm, delta, rank=None, alpha=None, scale=1.0, full=False):
    flat = delta.reshape(delta.shape[0], -1).to(torch.float64)
    x = projection_vector(flat.shape[1])
    sv = torch.linalg.svdvals(flat)
    energy = torch.cumsum(sv ** 2, 0) / torch.sum(sv ** 2) if torch.sum(sv ** 2) > 0 else None
    item = {
        "algorithm": algorithm,
        "shape": list(delta.shape),
        "rank": rank,
        "alpha": alpha,
        "scale": scale,
        "norm": float(torch.linalg.norm(flat)),
        "singular_values": [float(v) for v in sv[:8]],
        "rank90": int(torch.searchsorted(energy, torch.tensor(0.9 - 1e-12, dtype=torch.float64)) + 1) if energy is not None else 0,
        "rank99": int(torch.searchsorted(energy, torch.tensor(0.99 - 1e-12, dtype=torch.float64)) + 1) if energy is not None else 0,
        "projection": [float(v) for v in flat @ x],
    }
    if full:
        item["delta"] = [float(v) for v in flat.reshape(-1)]
    entry["modules"][name] = item


def file_hashes(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0] if path.endswith(".safetensors") else None
    out = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "autov1": hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8],
    }
    if n is not None:
        out["addnet"] = hashlib.sha256(data[8 + n:]).hexdigest()
    return out


def f64(t):
    return t.to(torch.float64)


def kohya_metadata(base_version, dim, alpha, module="networks.lora", args=None):
    return {
        "ss_network_module": module,
        "ss_network_dim": str(dim),
        "ss_network_alpha": str(alpha),
        "ss_network_args": json.dumps(args) if args else "null",
        "ss_base_model_version": base_version,
        "ss_v2": "False",
        "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors",
        "ss_resolution": "(512, 512)",
        "ss_learning_rate": "0.0001",
        "ss_optimizer": "torch.optim.adamw.AdamW",
        "ss_num_epochs": "8",
        "ss_epoch": "8",
        "ss_steps": "800",
        "ss_num_train_images": "200",
        "ss_tag_frequency": json.dumps({"5_golden": {"goldchar": 40, "1girl": 38, "smile": 10},
                                        "2_reg": {"1girl": 12, "outdoors": 7}}),
        "ss_dataset_dirs": json.dumps({"5_golden": {"n_repeats": 5, "img_count": 40}}),
    }


def save_with_addnet_hash(tensors, path, metadata):
    """Write like sd-scripts: the data hash goes into sshs_model_hash."""
    save_file(tensors, path, metadata=metadata)
    metadata = dict(metadata)
    metadata["sshs_model_hash"] = file_hashes(path)["addnet"]
    save_file(tensors, path, metadata=metadata)


# ---------------------------------------------------------------- kohya LoRA, SD1 widths
def kohya_sd1():
    path = os.path.join(HERE, "sd1_kohya_lora.safetensors")
    entry = {"kind": "lora", "family": "SD1.x", "modules": {}}
    r, alpha = 4, 2.0
    shapes = {
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (768, 768),
        "lora_te_text_model_encoder_layers_11_mlp_fc2": (768, 3072),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": (320, 768),
        "lora_unet_down_blocks_0_attentions_0_proj_in": (320, 320, 1, 1),
        "lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_2": (1280, 5120),
        "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn1_to_out_0": (320, 320),
        "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q": (1280, 1280),
    }
    tensors = {}
    for name, shape in shapes.items():
        out, inp = shape[0], shape[1]
        conv = len(shape) == 4
        down = rnd(r, inp, 1, 1, scale=1 / math.sqrt(inp)) if conv else rnd(r, inp, scale=1 / math.sqrt(inp))
        dead = name.endswith("attn1_to_q")
        up = (torch.zeros(out, r, 1, 1) if conv else torch.zeros(out, r)).half() if dead else \
            (rnd(out, r, 1, 1, scale=0.3) if conv else rnd(out, r, scale=0.3))
        tensors[name + ".lora_down.weight"] = down
        tensors[name + ".lora_up.weight"] = up
        tensors[name + ".alpha"] = torch.tensor(alpha, dtype=torch.float16)
        delta = (f64(up).reshape(out, r) @ f64(down).reshape(r, inp)) * (alpha / r)
        if conv:
            delta = delta.reshape(out, inp, 1, 1)
        record_module(entry, name, "LoRA", delta, rank=r, alpha=alpha, scale=alpha / r)
    save_with_addnet_hash(tensors, path, kohya_metadata("sd_v1", r, alpha))
    golden["files"]["sd1_kohya_lora.safetensors"] = entry
    return tensors


# ---------------------------------------------------------------- LoCon with 3x3 and Tucker
def locon():
    path = os.path.join(HERE, "sd1_locon.safetensors")
    entry = {"kind": "lora", "modules": {}}
    tensors = {}
    r, alpha, out, inp = 4, 1.0, 16, 8
    name = "lora_unet_down_blocks_0_resnets_0_conv1"
    down, up = rnd(r, inp, 3, 3, scale=0.3), rnd(out, r, 1, 1, scale=0.3)
    tensors.update({name + ".lora_down.weight": down, name + ".lora_up.weight": up, name + ".alpha": torch.tensor(alpha).half()})
    # kohya computes conv ΔW as a convolution of the permuted down by up.
    delta = torch.nn.functional.conv2d(f64(down).permute(1, 0, 2, 3), f64(up)).permute(1, 0, 2, 3) * (alpha / r)
    record_module(entry, name, "LoRA", delta, rank=r, alpha=alpha, scale=alpha / r, full=True)

    name = "lora_unet_down_blocks_0_resnets_1_conv2"
    down, mid, up = rnd(r, inp, 1, 1, scale=0.3), rnd(r, r, 3, 3, scale=0.3), rnd(out, r, 1, 1, scale=0.3)
    tensors.update({name + ".lora_down.weight": down, name + ".lora_mid.weight": mid, name + ".lora_up.weight": up,
                    name + ".alpha": torch.tensor(2.0).half()})
    # A1111 rebuild_cp_decomposition: einsum('i j k l, j r, p i -> p r k l', mid, down, up).
    delta = torch.einsum("ijkl,jr,pi->prkl", f64(mid), f64(down).flatten(1), f64(up).flatten(1)) * (2.0 / r)
    record_module(entry, name, "LoRA", delta, rank=r, alpha=2.0, scale=2.0 / r, full=True)

    name = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_ff_net_0_proj"
    down, up = rnd(r, 12, scale=0.5), rnd(24, r, scale=0.5)
    tensors.update({name + ".lora_down.weight": down, name + ".lora_up.weight": up})  # no alpha: scale 1
    record_module(entry, name, "LoRA", f64(up) @ f64(down), rank=r, alpha=None, scale=1.0, full=True)
    save_file(tensors, path, metadata=kohya_metadata("sd_v1", r, 1, args={"conv_dim": "4", "conv_alpha": "1"}))
    golden["files"]["sd1_locon.safetensors"] = entry


# ---------------------------------------------------------------- LoHa
def loha():
    path = os.path.join(HERE, "sd1_loha.safetensors")
    entry = {"kind": "lora", "modules": {}}
    tensors = {}
    r = 3
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    w1a, w1b, w2a, w2b = rnd(10, r, scale=.5), rnd(r, 6, scale=.5), rnd(10, r, scale=.5), rnd(r, 6, scale=.5)
    tensors.update({name + ".hada_w1_a": w1a, name + ".hada_w1_b": w1b, name + ".hada_w2_a": w2a, name + ".hada_w2_b": w2b,
                    name + ".alpha": torch.tensor(6.0).half()})
    delta = (f64(w1a) @ f64(w1b)) * (f64(w2a) @ f64(w2b)) * (6.0 / r)
    record_module(entry, name, "LoHa", delta, rank=r, alpha=6.0, scale=6.0 / r, full=True)

    name = "lora_unet_down_blocks_0_resnets_0_conv1"
    w1a, w1b, w2a, w2b = rnd(8, r, scale=.5), rnd(r, 4 * 9, scale=.5), rnd(8, r, scale=.5), rnd(r, 4 * 9, scale=.5)
    tensors.update({name + ".hada_w1_a": w1a, name + ".hada_w1_b": w1b, name + ".hada_w2_a": w2a, name + ".hada_w2_b": w2b,
                    name + ".alpha": torch.tensor(1.0).half()})
    delta = ((f64(w1a) @ f64(w1b)) * (f64(w2a) @ f64(w2b))).reshape(8, 4, 3, 3) * (1.0 / r)
    record_module(entry, name, "LoHa", delta, rank=r, alpha=1.0, scale=1.0 / r, full=True)

    name = "lora_unet_down_blocks_0_resnets_1_conv2"
    t1, t2 = rnd(r, r, 3, 3, scale=.5), rnd(r, r, 3, 3, scale=.5)
    w1a, w1b, w2a, w2b = rnd(r, 8, scale=.5), rnd(r, 4, scale=.5), rnd(r, 8, scale=.5), rnd(r, 4, scale=.5)
    tensors.update({name + ".hada_t1": t1, name + ".hada_t2": t2, name + ".hada_w1_a": w1a, name + ".hada_w1_b": w1b,
                    name + ".hada_w2_a": w2a, name + ".hada_w2_b": w2b, name + ".alpha": torch.tensor(3.0).half()})

    def cp(t, wa, wb):  # A1111 make_weight_cp: einsum('i j k l, j r, i p -> p r k l')
        return torch.einsum("ijkl,jr,ip->prkl", f64(t), f64(wb), f64(wa))
    delta = cp(t1, w1a, w1b) * cp(t2, w2a, w2b) * (3.0 / r)
    record_module(entry, name, "LoHa", delta, rank=r, alpha=3.0, scale=1.0, full=True)
    entry["modules"][name]["scale"] = 3.0 / r
    save_file(tensors, path, metadata={"ss_network_module": "lycoris.kohya", "ss_network_args": json.dumps({"algo": "loha"}),
                                       "ss_base_model_version": "sd_v1"})
    golden["files"]["sd1_loha.safetensors"] = entry


# ---------------------------------------------------------------- LoKr
def lokr():
    path = os.path.join(HERE, "sd1_lokr.safetensors")
    entry = {"kind": "lora", "modules": {}}
    tensors = {}
    # both factors full: scale 1 whatever alpha says
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k"
    w1, w2 = rnd(2, 4, scale=.5), rnd(5, 3, scale=.5)
    tensors.update({name + ".lokr_w1": w1, name + ".lokr_w2": w2, name + ".alpha": torch.tensor(7.0).half()})
    record_module(entry, name, "LoKr", torch.kron(f64(w1), f64(w2)), rank=None, alpha=7.0, scale=1.0, full=True)
    # w2 low rank
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_v"
    w1, w2a, w2b = rnd(2, 2, scale=.5), rnd(8, 2, scale=.5), rnd(2, 6, scale=.5)
    tensors.update({name + ".lokr_w1": w1, name + ".lokr_w2_a": w2a, name + ".lokr_w2_b": w2b, name + ".alpha": torch.tensor(1.0).half()})
    record_module(entry, name, "LoKr", torch.kron(f64(w1), f64(w2a) @ f64(w2b)) * 0.5, rank=2, alpha=1.0, scale=0.5, full=True)
    # both decomposed
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0"
    w1a, w1b, w2a, w2b = rnd(3, 1, scale=.5), rnd(1, 2, scale=.5), rnd(4, 2, scale=.5), rnd(2, 5, scale=.5)
    tensors.update({name + ".lokr_w1_a": w1a, name + ".lokr_w1_b": w1b, name + ".lokr_w2_a": w2a, name + ".lokr_w2_b": w2b,
                    name + ".alpha": torch.tensor(4.0).half()})
    record_module(entry, name, "LoKr", torch.kron(f64(w1a) @ f64(w1b), f64(w2a) @ f64(w2b)) * 2.0, rank=2, alpha=4.0, scale=2.0, full=True)
    # conv, w2 full 4-D
    name = "lora_unet_down_blocks_0_resnets_0_conv1"
    w1, w2 = rnd(2, 2, scale=.5), rnd(4, 3, 3, 3, scale=.5)
    tensors.update({name + ".lokr_w1": w1, name + ".lokr_w2": w2})
    record_module(entry, name, "LoKr", torch.kron(f64(w1).unsqueeze(2).unsqueeze(2), f64(w2)), rank=None, alpha=None, scale=1.0, full=True)
    # conv, w2 decomposed with a Tucker core
    name = "lora_unet_down_blocks_0_resnets_1_conv2"
    w1, w2a, w2b, t2 = rnd(2, 2, scale=.5), rnd(2, 4, scale=.5), rnd(2, 3, scale=.5), rnd(2, 2, 3, 3, scale=.5)
    tensors.update({name + ".lokr_w1": w1, name + ".lokr_w2_a": w2a, name + ".lokr_w2_b": w2b, name + ".lokr_t2": t2,
                    name + ".alpha": torch.tensor(2.0).half()})
    w2 = torch.einsum("ijkl,jr,ip->prkl", f64(t2), f64(w2b), f64(w2a)).contiguous()
    record_module(entry, name, "LoKr", torch.kron(f64(w1).unsqueeze(2).unsqueeze(2), w2) * 1.0, rank=2, alpha=2.0, scale=1.0, full=True)
    save_file(tensors, path, metadata={"ss_network_module": "lycoris.kohya", "ss_network_args": json.dumps({"algo": "lokr"})})
    golden["files"]["sd1_lokr.safetensors"] = entry


# ---------------------------------------------------------------- full / norm, and diffusers/PEFT naming
def full_and_peft():
    path = os.path.join(HERE, "sd1_full.safetensors")
    entry = {"kind": "lora", "modules": {}}
    diff = rnd(6, 4, scale=.1)
    tensors = {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_q.diff": diff,
               "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_q.diff_b": rnd(6, scale=.1)}
    record_module(entry, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_q", "Full", f64(diff), full=True)
    save_file(tensors, path)
    golden["files"]["sd1_full.safetensors"] = entry

    path = os.path.join(HERE, "sd1_peft.safetensors")
    entry = {"kind": "lora", "family": "SD1.x", "modules": {}}
    tensors = {}
    for name, (out, inp) in {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k": (320, 768),
                             "text_encoder.text_model.encoder.layers.3.mlp.fc1": (3072, 768)}.items():
        a, b = rnd(4, inp, scale=.05), rnd(out, 4, scale=.05)
        tensors[name + ".lora_A.weight"], tensors[name + ".lora_B.weight"] = a, b
        record_module(entry, name, "LoRA", f64(b) @ f64(a), rank=4, alpha=None, scale=1.0)
    save_file(tensors, path, metadata={"format": "pt"})
    golden["files"]["sd1_peft.safetensors"] = entry


# ---------------------------------------------------------------- SDXL names
def sdxl():
    path = os.path.join(HERE, "sdxl_kohya_lora.safetensors")
    entry = {"kind": "lora", "family": "SDXL", "modules": {}}
    tensors = {}
    for name, (out, inp) in {"lora_te1_text_model_encoder_layers_0_self_attn_q_proj": (768, 768),
                             "lora_te2_text_model_encoder_layers_31_mlp_fc2": (1280, 5120),
                             "lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k": (640, 2048),
                             "lora_unet_output_blocks_0_1_proj_out": (1280, 1280)}.items():
        down, up = rnd(2, inp, scale=.05), rnd(out, 2, scale=.05)
        tensors[name + ".lora_down.weight"], tensors[name + ".lora_up.weight"] = down, up
        tensors[name + ".alpha"] = torch.tensor(1.0).half()
        record_module(entry, name, "LoRA", f64(up) @ f64(down) * 0.5, rank=2, alpha=1.0, scale=0.5)
    meta = kohya_metadata("sdxl_base_v1-0", 2, 1)
    save_file(tensors, path, metadata=meta)
    golden["files"]["sdxl_kohya_lora.safetensors"] = entry


# ---------------------------------------------------------------- PyTorch checkpoints
def describe_tensors(d, prefix=""):
    out = {}
    for k, v in d.items():
        name = prefix + k
        if isinstance(v, dict):
            out.update(describe_tensors(v, name + "."))
        elif isinstance(v, torch.Tensor):
            t = v.detach().to(torch.float64)
            out[name] = {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""),
                         "sum": float(t.sum()), "sum_squares": float((t * t).sum()),
                         "first": [float(x) for x in t.reshape(-1)[:4]]}
    return out


def checkpoints(lora_tensors):
    os.makedirs(os.path.join(HERE, "ckpt"), exist_ok=True)
    small = {k: v for k, v in lora_tensors.items() if "mid_block" not in k and "layers_11" not in k}
    jobs = {}
    torch.save(small, os.path.join(HERE, "ckpt/lora_zip.ckpt"))
    jobs["ckpt/lora_zip.ckpt"] = small
    torch.save(small, os.path.join(HERE, "ckpt/lora_legacy.pt"), _use_new_zipfile_serialization=False)
    jobs["ckpt/lora_legacy.pt"] = small
    torch.save(small, os.path.join(HERE, "ckpt/lora_protocol4.pt"), pickle_protocol=4)
    jobs["ckpt/lora_protocol4.pt"] = small

    # A training checkpoint: nested state_dict, views sharing one storage,
    # a transposed (non-contiguous) view, bf16, int64, a Parameter, extras.
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    state = {
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": torch.nn.Parameter(rnd(8, 8, 1, 1, dtype=torch.float32)),
        "model.diffusion_model.time_embed.0.weight": base.t(),             # non-contiguous view
        "model.diffusion_model.time_embed.0.bias": base[1],               # view with storage offset
        "cond_stage_model.transformer.text_model.embeddings.position_ids": torch.arange(8).unsqueeze(0),
        "first_stage_model.decoder.conv_out.weight": rnd(3, 4, 3, 3, dtype=torch.bfloat16),
        "model_ema.decay": torch.tensor(0.9999),
    }
    training = {"state_dict": state, "epoch": 3, "global_step": 1200, "hparams": {"lr": 1e-4, "name": "golden"}}
    torch.save(training, os.path.join(HERE, "ckpt/nested_training.ckpt"))
    jobs["ckpt/nested_training.ckpt"] = state

    # The same zip, re-packed with deflate (some tools re-zip checkpoints).
    src = os.path.join(HERE, "ckpt/lora_zip.ckpt")
    dst = os.path.join(HERE, "ckpt/lora_deflated.ckpt")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item.filename))
    jobs["ckpt/lora_deflated.ckpt"] = small

    for name, tensors in jobs.items():
        golden["files"][name] = {"kind": "tensors", "tensors": describe_tensors(tensors)}


# ---------------------------------------------------------------- malicious pickles (built, never loaded)
class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def torch_zip(path, pickle_bytes):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/version", "3\n")


def evil():
    os.makedirs(os.path.join(HERE, "evil"), exist_ok=True)
    # os.system pickles as posix.system: the classic payload.
    torch_zip(os.path.join(HERE, "evil/os_system.ckpt"),
              pickle.dumps({"state_dict": _Reduce(os.system, ("echo pwned-by-os-system",))}, protocol=2))
    # builtins.eval in a bare pickle stream (looks like a legacy .pt).
    with open(os.path.join(HERE, "evil/builtins_eval.pt"), "wb") as f:
        f.write(pickle.dumps(_Reduce(eval, ("print('pwned-by-eval')",)), protocol=2))
    # subprocess.Popen via STACK_GLOBAL (protocol 4), hidden inside a plausible state dict.
    import subprocess
    payload = {"model.diffusion_model.out.2.weight": 1, "trigger": _Reduce(subprocess.Popen, (["echo", "pwned-by-popen"],))}
    torch_zip(os.path.join(HERE, "evil/subprocess_protocol4.ckpt"), pickle.dumps(payload, protocol=4))
    # A whole pickled module object: not dangerous by name, but not a state dict either.
    torch_zip(os.path.join(HERE, "evil/unknown_global.ckpt"),
              pickle.dumps({"model": _Reduce(collections_counter_like, (1,))}, protocol=2))
    for name in ["evil/os_system.ckpt", "evil/builtins_eval.pt", "evil/subprocess_protocol4.ckpt", "evil/unknown_global.ckpt"]:
        golden["files"][name] = {"kind": "dangerous"}


def collections_counter_like(x):  # pickled by reference as __main__.collections_counter_like
    return x


if __name__ == "__main__":
    lora = kohya_sd1()
    locon()
    loha()
    lokr()
    full_and_peft()
    sdxl()
    checkpoints(lora)
    evil()
    for name, entry in golden["files"].items():
        entry["hashes"] = file_hashes(os.path.join(HERE, name))
    golden["torch_version"] = torch.__version__
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1, sort_keys=True)
    print("wrote", len(golden["files"]), "fixtures")
