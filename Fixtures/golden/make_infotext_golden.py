"""Golden infotexts for lora-xyz (Fixtures/golden/xyz/infotext.json).

For each case the expected text is assembled the way A1111's
processing.create_infotext assembles it (field order of 1.9+, values passed
through A1111's own infotext_utils.quote), then parsed back with A1111's own
parse_generation_parameters to prove A1111 reads every setting back; the PNG
chunk bytes are the ones PIL writes for PngInfo.add_text("parameters", text),
which is how A1111 saves images.

Usage: A1111_SRC=<checkout of AUTOMATIC1111/stable-diffusion-webui> python make_infotext_golden.py
(only modules/infotext_utils.py is read; gradio and the rest are stubbed).
"""
import io
import json
import os
import sys
import types

from PIL import Image, PngImagePlugin

src = os.environ.get("A1111_SRC")
if not src:
    sys.exit("set A1111_SRC to an A1111 checkout (modules/infotext_utils.py is read)")

# Stub what infotext_utils imports at module level; parse_generation_parameters only needs opts.
for name in ["gradio", "modules", "modules.paths", "modules.shared", "modules.ui_tempdir", "modules.script_callbacks",
             "modules.processing", "modules.infotext_versions"]:
    sys.modules[name] = types.ModuleType(name)
sys.modules["modules.paths"].data_path = "/tmp"
sys.modules["gradio"].update = lambda **kwargs: kwargs
class Options(types.SimpleNamespace):
    def __getattr__(self, name):  # any other setting: off
        return False


opts = Options(infotext_skip_pasting=[], infotext_styles="Ignore")
sys.modules["modules.shared"].opts = opts
sys.modules["modules.infotext_versions"].backcompat = lambda res: None
modules = sys.modules["modules"]
for sub in ["shared", "ui_tempdir", "script_callbacks", "processing", "infotext_versions", "paths"]:
    setattr(modules, sub, sys.modules["modules." + sub])
sys.modules["modules.infotext_utils"] = types.ModuleType("modules.infotext_utils")
namespace = {"__name__": "modules.infotext_utils"}
code = open(os.path.join(src, "modules", "infotext_utils.py")).read()
exec(compile(code, "infotext_utils.py", "exec"), namespace)
quote, parse = namespace["quote"], namespace["parse_generation_parameters"]


def number(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def create_infotext(c):
    # processing.create_infotext, with the values lora-xyz sets (None = left out).
    params = {
        "Steps": c["steps"],
        "Sampler": c["sampler"],
        "Schedule type": c["schedule"],
        "CFG scale": number(c["cfg"]),
        "Seed": c["seed"],
        "Size": f"{c['width']}x{c['height']}",
        "Model hash": c["model_hash"],
        "Model": c["model_name"],
        "VAE hash": c.get("vae_hash"),
        "VAE": c.get("vae_name"),
        "Clip skip": None if c["clip_skip"] <= 1 else c["clip_skip"],
        "RNG": "CPU",
        # extra_generation_params: extra_networks_lora's "Lora hashes"
        "Lora hashes": ", ".join(f"{n.replace(':', '').replace(',', '')}: {h}" for n, h in c["lora_hashes"]) or None,
        "Version": c["version"],
    }
    text = ", ".join([k if k == v else f"{k}: {quote(v)}" for k, v in params.items() if v is not None])
    negative = f"\nNegative prompt: {c['negative']}" if c["negative"] else ""
    return f"{c['prompt']}{negative}\n{text}".strip()


cases = [
    dict(prompt="mychar, 1girl, smile, <lora:mychar-000004:0.8>", negative="lowres, bad hands", seed=1234, steps=20, cfg=7,
         sampler="DPM++ 2M", schedule="Karras", sampler_choice="DPM++ 2M Karras", width=512, height=512, clip_skip=1,
         model_hash="6ce0161689", model_name="v1-5-pruned-emaonly", lora_hashes=[["mychar-000004", "0123456789ab"]],
         version="lora-tools 0.1.0"),
    dict(prompt="a photo of a cat", negative="", seed=4294967295, steps=30, cfg=7.5, sampler="Euler a", schedule="Uniform",
         sampler_choice="Euler a", width=768, height=512, clip_skip=2, model_hash="abcdef0123", model_name="anything, v3: final",
         vae_hash="735e4c3a44", vae_name="vae-ft-mse-840000-ema-pruned.safetensors", lora_hashes=[], version="lora-tools 0.1.0"),
    dict(prompt="猫, (cat:1.2), \"quoted\" <lora:style,v2:0.5:lbw=OUTD>", negative="ugly\nworst", seed=7, steps=4, cfg=5,
         sampler="DDIM", schedule="Automatic", sampler_choice="DDIM", width=1024, height=1024, clip_skip=1,
         model_hash="0000000000", model_name="sdxl", lora_hashes=[["style,v2", "fedcba987654"]], version="lora-tools 0.1.0"),
]

out = []
for c in cases:
    text = create_infotext(c)
    parsed = parse(text)
    assert parsed["Prompt"] == c["prompt"].strip(), (parsed["Prompt"], c["prompt"])
    assert parsed["Negative prompt"] == c["negative"], parsed
    assert str(parsed["Steps"]) == str(c["steps"]) and parsed["Sampler"] == c["sampler"], parsed
    assert str(parsed["Seed"]) == str(c["seed"]) and float(parsed["CFG scale"]) == c["cfg"], parsed
    assert parsed["Size-1"] == str(c["width"]) and parsed["Size-2"] == str(c["height"]), parsed
    assert parsed["Model hash"] == c["model_hash"] and parsed["Model"] == c["model_name"], parsed
    assert parsed.get("RNG") == "CPU", parsed
    if c.get("vae_name"):
        assert parsed["VAE"] == c["vae_name"] and parsed["VAE hash"] == c["vae_hash"], parsed
    if c["lora_hashes"]:
        assert parsed["Lora hashes"].startswith(c["lora_hashes"][0][0].replace(",", "")), parsed
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG", pnginfo=info)
    data = buffer.getvalue()
    # Find the text chunk PIL wrote.
    offset, chunk = 8, None
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        kind = data[offset + 4:offset + 8]
        if kind in (b"tEXt", b"iTXt"):
            chunk = data[offset:offset + 12 + length]
        offset += 12 + length
    out.append(dict(c, text=text, chunk_hex=chunk.hex(), chunk_type=chunk[4:8].decode()))

folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xyz")
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, "infotext.json"), "w") as f:
    json.dump({"source": "A1111 processing.create_infotext order, infotext_utils.quote/parse_generation_parameters, PIL PngInfo",
               "cases": out}, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"wrote {len(out)} cases")
