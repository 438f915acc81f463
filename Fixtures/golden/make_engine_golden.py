#!/usr/bin/env python3
"""Golden outputs for the diffusion engine, from PyTorch, transformers,
diffusers, k-diffusion and AUTOMATIC1111's own prompt code.

Run by hand; needs torch, transformers, diffusers, k-diffusion, torchsde,
open_clip_torch, ftfy and lark, plus a checkout of AUTOMATIC1111's
stable-diffusion-webui (or Forge, which carries its history) for its
`modules/` folder, and the engine fixtures written by the Swift generator:

    swift run -c release lora-bench fixtures --all --out /tmp/engine
    A1111_SRC=/path/to/stable-diffusion-webui \
        python3 Fixtures/golden/make_engine_golden.py /tmp/engine

The fixture models are not committed (tens of MB); engine.json records their
sha256 so the tests can tell when the generator changed and this script must
be run again. Everything is float32 on the CPU.

What each golden file holds:
  noise.safetensors     torch.randn with CPU generators (several seeds/shapes)
  text.safetensors      A1111 conditioning for SD1 (clip skip 1, 2), SD2, SDXL
  unet.safetensors      one U-Net forward per family (fractional timesteps)
  vae.safetensors       VAE decode and encode (SD1 engine model)
  samplers.safetensors  4-step runs of every sampler, initial noise from seeds
  engine.json           tokenizer ids, prompt parses, chunks, schedules, shas
"""
import gzip
import hashlib
import json
import os
import sys
import tempfile
import types

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "engine")
ROOT = os.path.dirname(os.path.dirname(HERE))
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(2)
info = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
# torch runs normal_fill_AVX2 whenever its capability is AVX2 or AVX512 (normal_stub has no AVX-512
# kernel); the tests force the kernel named here instead of trusting the host they run on.
info["noise_kernel"] = "avx2" if info["cpu_capability"] in ("AVX2", "AVX512") else "libm"


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


# ---------------------------------------------------------------- A1111 code

class Opts(types.SimpleNamespace):
    pass


opts = Opts(emphasis="Original", comma_padding_backtrack=20, CLIP_stop_at_last_layers=1,
            use_old_emphasis_implementation=False, textual_inversion_add_hashes_to_infotext=False)


def import_a1111():
    """Import A1111's prompt parser, chunker, emphasis and DDIM with stub neighbours."""
    src = os.environ.get("A1111_SRC")
    if not src or not os.path.isdir(os.path.join(src, "modules")):
        sys.exit("set A1111_SRC to a stable-diffusion-webui checkout (its modules/ folder is imported)")
    package = types.ModuleType("modules")
    package.__path__ = [os.path.join(src, "modules")]
    sys.modules["modules"] = package
    for name, attrs in {
        "shared": {"opts": opts},
        "devices": {"device": torch.device("cpu"), "dtype": torch.float32},
        "sd_hijack": {"StableDiffusionModelHijack": object},
        "models": {}, "models.diffusion": {}, "models.diffusion.uni_pc": {"uni_pc": types.SimpleNamespace(UniPC=object)},
        "torch_utils": {"float64": lambda x: torch.float64},
    }.items():
        module = types.ModuleType("modules." + name)
        module.__dict__.update(attrs)
        if name.startswith("models"):
            module.__path__ = []
        sys.modules["modules." + name] = module
    import modules.prompt_parser
    import modules.sd_emphasis
    import modules.sd_hijack_clip
    import modules.sd_hijack_open_clip
    import modules.sd_samplers_timesteps_impl
    return modules


# ---------------------------------------------------------------- tokenizer

def tokenizer_files(folder):
    """vocab.json + merges.txt (the Hugging Face layout) from the committed merges."""
    import open_clip.tokenizer as oc
    bpe = os.path.join(ROOT, "Fixtures", "tokenizer", "clip_bpe_merges.txt.gz")
    simple = oc.SimpleTokenizer(bpe_path=bpe)
    vocab = dict(simple.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(lines) + "\n")
    from transformers import CLIPTokenizer
    return CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                         unk_token="<|endoftext|>", bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                         pad_token="<|endoftext|>")


TOKENIZER_PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "masterpiece, best quality, 1girl, solo, (smile:1.2), looking at viewer!!",
    "it\u2019s a \u201cquoted\u201d \ufb01ne \uff26\uff35\uff2c\uff2c width caf\u00e9 na\u00efve \u6771\u4eac \U0001F680 x2 3.14159",
    "don't I'll we've they're she's HE'D 'quoted'",
    "&amp; &lt;tag&gt; &#39;x&#39; &amp",
    "hello...world?!? ((( ))) [ ] \\ / :-) --- ___ ~~~",
    "  multiple   spaces\tand\nnewlines  ",
    "\u00c5ngstr\u00f6m \u0391\u03b8\u03ae\u03bd\u03b1 \u041c\u043e\u0441\u043a\u0432\u0430 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0939\u093f\u0928\u094d\u0926\u0940",
    "",
]

PARSE_PROMPTS = [
    "normal text",
    "an (important) word",
    "(unbalanced",
    "\\(literal\\]",
    "(unnecessary)(parens)",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    "[[[a]]] ((b:0.5):2) (c:+1.5) (d: 1.2 ) (e:1.) (f:-0.5) (g:.5)",
    "a BREAK b BREAKfast (c BREAK d) BREAK",
    "trailing backslash \\ and \\\\ double and \\x",
    "colon: not a weight:1.2) ) ] [unclosed square",
    "",
]


def long_prompt():
    words = ["masterpiece", "best quality", "highly detailed", "1girl", "solo", "long hair", "blue eyes",
             "smile", "looking at viewer", "outdoors", "cherry blossoms", "wind", "sunlight", "depth of field"]
    return ", ".join(words * 4) + ", (extremely:1.3) detailed background, [simple]"


CHUNK_PROMPTS = [
    "a cat",
    long_prompt(),
    "first part BREAK second part",
    "BREAK",
    "",
    "word " * 80,
]


# ---------------------------------------------------------------- models

def diffusers_models(family, ckpt_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint, convert_open_clip_checkpoint)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    ckpt = load_file(ckpt_path)

    def clip_config(width, act):
        return CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=4 * width, num_hidden_layers=3,
                              num_attention_heads=width // 64, max_position_embeddings=77, hidden_act=act,
                              bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, projection_dim=width)

    def load(model, state, allowed_missing=()):
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not any(a in k for a in allowed_missing)]
        unexpected = [k for k in unexpected if not any(a in k for a in allowed_missing)]
        assert not missing and not unexpected, (missing, unexpected)
        return model.eval()

    if family == "sd1":
        unet = UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64, 64, 64), layers_per_block=2,
                                    cross_attention_dim=128, attention_head_dim=8, norm_num_groups=32)
        encoders = [load(CLIPTextModel(clip_config(128, "quick_gelu")), convert_ldm_clip_checkpoint(ckpt), ["position_ids"])]
    elif family == "sd2":
        unet = UNet2DConditionModel(sample_size=8, block_out_channels=(64, 64, 128, 128), layers_per_block=2,
                                    cross_attention_dim=128, attention_head_dim=[1, 1, 2, 2], use_linear_projection=True,
                                    norm_num_groups=32)
        te = CLIPTextModel(clip_config(128, "gelu"))  # SD2 does not use the projection
        encoders = [load(te, convert_open_clip_checkpoint(te, ckpt), ["position_ids"])]
    else:
        unet = UNet2DConditionModel(sample_size=8, block_out_channels=(64, 128, 128), layers_per_block=2,
                                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                                    transformer_layers_per_block=[1, 2, 2], cross_attention_dim=192,
                                    attention_head_dim=[1, 2, 2], use_linear_projection=True, norm_num_groups=32,
                                    addition_embed_type="text_time", addition_time_embed_dim=256,
                                    projection_class_embeddings_input_dim=128 + 6 * 256)
        clip_l = load(CLIPTextModel(clip_config(64, "quick_gelu")),
                      convert_ldm_clip_checkpoint(ckpt, remove_prefix="conditioner.embedders.0.transformer."), ["position_ids"])
        big_g = CLIPTextModelWithProjection(clip_config(128, "gelu"))
        big_g = load(big_g, convert_open_clip_checkpoint(big_g, ckpt, prefix="conditioner.embedders.1.model."), ["position_ids"])
        encoders = [clip_l, big_g]
    load(unet, convert_ldm_unet_checkpoint(ckpt, unet.config))
    vae = AutoencoderKL(block_out_channels=(32, 64, 64, 64), layers_per_block=2, latent_channels=4, norm_num_groups=32,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4, sample_size=64,
                        scaling_factor=0.13025 if family == "sdxl" else 0.18215)
    load(vae, convert_ldm_vae_checkpoint(ckpt, vae.config))
    return unet, encoders, vae


def a1111_embedders(modules, family, encoders, tokenizer):
    """A1111's hijacked embedders around the transformers models."""
    hijack = types.SimpleNamespace(fixes=None, extra_generation_params={},
                                   embedding_db=types.SimpleNamespace(find_embedding_at_position=lambda t, p: (None, None)))
    clip = modules.sd_hijack_clip
    open_clip = modules.sd_hijack_open_clip

    def open_clip_wrapped(te, penultimate_key=None):
        def encode(tokens):
            out = te(input_ids=tokens, output_hidden_states=True)
            penultimate = out.hidden_states[-2]
            if penultimate_key is None:  # SD2: penultimate layer, then ln_final
                return te.text_model.final_layer_norm(penultimate)
            return {"penultimate": penultimate, "pooled": out.text_embeds}
        return types.SimpleNamespace(encode_with_transformer=encode, layer=penultimate_key, return_pooled=penultimate_key is not None)

    if family == "sd1":
        wrapped = types.SimpleNamespace(tokenizer=tokenizer, transformer=encoders[0])
        return [clip.FrozenCLIPEmbedderWithCustomWords(wrapped, hijack)]
    if family == "sd2":
        return [open_clip.FrozenOpenCLIPEmbedderWithCustomWords(open_clip_wrapped(encoders[0]), hijack)]
    wrapped = types.SimpleNamespace(tokenizer=tokenizer, transformer=encoders[0], layer="hidden",
                                    layer_idx=encoders[0].config.num_hidden_layers - 1)
    first = clip.FrozenCLIPEmbedderForSDXLWithCustomWords(wrapped, hijack)
    second = open_clip.FrozenOpenCLIPEmbedder2WithCustomWords(open_clip_wrapped(encoders[1], "penultimate"), hijack)
    return [first, second]


def condition(embedders, family, prompt, negative=False):
    """Conditioning as A1111 builds it: (context, pooled or None)."""
    with torch.no_grad():
        if family != "sdxl":
            return embedders[0]([prompt]), None
        first = embedders[0]([prompt])
        second, pooled = embedders[1]([prompt])
        context = torch.cat([first, second], dim=-1)
        if negative and prompt == "":
            context, pooled = torch.zeros_like(context), torch.zeros_like(pooled)
        return context, pooled


def sdxl_time_ids(height, width):
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32)


# ---------------------------------------------------------------- samplers

class LDMLike(torch.nn.Module):
    """What k-diffusion's CompVis wrappers expect: alphas_cumprod and apply_model."""

    def __init__(self, unet, family):
        super().__init__()
        self.unet = unet
        self.family = family
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
        import numpy as np
        self.register_buffer("alphas_cumprod", torch.tensor(np.cumprod(1 - betas.numpy(), axis=0), dtype=torch.float32))

    def apply_model(self, x, t, cond):
        context, vector = cond
        kwargs = {}
        if vector is not None:
            kwargs["added_cond_kwargs"] = vector
        return self.unet(x, t, encoder_hidden_states=context, **kwargs).sample


def batch_cond(cond, uncond, family, height, width):
    context = torch.cat([cond[0], uncond[0]])
    if family != "sdxl":
        return (context, None)
    time_ids = sdxl_time_ids(height, width).repeat(2, 1)
    return (context, {"text_embeds": torch.cat([cond[1], uncond[1]]), "time_ids": time_ids})


def run_sampler(name, model, cond, uncond, family, seed, steps, cfg, size, prediction="eps"):
    import k_diffusion.external as external
    import k_diffusion.sampling as sampling
    wrapper = (external.CompVisVDenoiser if prediction == "v" else external.CompVisDenoiser)(model, quantize=False)
    generator = torch.Generator().manual_seed(seed)
    shape = (1, 4, size // 8, size // 8)
    initial = torch.randn(shape, generator=generator)
    both = batch_cond(cond, uncond, family, size, size)

    def guided(x, sigma):
        out = wrapper(torch.cat([x, x]), torch.cat([sigma, sigma]), cond=both)
        c, u = out.chunk(2)
        return u + (c - u) * cfg

    def noise_sampler(sigma, sigma_next):
        return torch.randn(shape, generator=generator)

    with torch.no_grad():
        if name == "DDIM":
            modules = sys.modules["modules"]
            a = model.alphas_cumprod

            def epsilon(x, t):
                ts = torch.tensor([t, t], dtype=torch.float32)
                out = model.apply_model(torch.cat([x, x]), ts, both)
                if prediction == "v":  # A1111's CompVisTimestepsVDenoiser
                    ti = ts.to(torch.int)
                    out = a.sqrt()[ti, None, None, None] * out + (1 - a).sqrt()[ti, None, None, None] * torch.cat([x, x])
                c, u = out.chunk(2)
                return u + (c - u) * cfg

            timesteps = torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps))) + 1, 0, 999)
            inner = types.SimpleNamespace(inner_model=types.SimpleNamespace(alphas_cumprod=a))
            call = types.SimpleNamespace(inner_model=inner)

            class M:
                inner_model = inner

                def __call__(self, x, t, **_):
                    return epsilon(x, int(t[0].item()))
            return initial, modules.sd_samplers_timesteps_impl.ddim(M(), initial.clone(), timesteps, disable=True)
        karras = name.endswith("Karras")
        if karras:
            sigmas = sampling.get_sigmas_karras(steps, wrapper.sigmas[0].item(), wrapper.sigmas[-1].item())
        else:
            sigmas = wrapper.get_sigmas(steps)
        x = initial * sigmas[0]
        if name == "Euler":
            return initial, sampling.sample_euler(guided, x, sigmas, disable=True)
        if name == "Euler a":
            return initial, sampling.sample_euler_ancestral(guided, x, sigmas, noise_sampler=noise_sampler, disable=True)
        if name.startswith("DPM++ 2M"):
            return initial, sampling.sample_dpmpp_2m(guided, x, sigmas, disable=True)
        if name.startswith("DPM++ SDE"):
            sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
            brownian = sampling.BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=[seed])
            return initial, sampling.sample_dpmpp_sde(guided, x, sigmas, noise_sampler=brownian, disable=True)
    raise ValueError(name)


# ---------------------------------------------------------------- main

def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def brownian():
    """numpy SeedSequence states and k-diffusion's Brownian-tree noise (DPM++ SDE)."""
    import numpy as np
    import k_diffusion.sampling as sampling
    info["seed_sequence"] = [
        {"entropy": e, "spawn_key": list(k), "pool_size": p,
         "state": [int(v) for v in np.random.SeedSequence(entropy=e, spawn_key=k, pool_size=p).generate_state(4)]}
        for e, k, p in [(0, (), 4), (1234, (), 24), (1234, (0, 0), 24), (1234, (5, 3), 24), (2**32 + 7, (1, 1), 24),
                        (4294967295, (2**33 + 1, 40), 24), (42, (), 8)]]
    sigmas = torch.tensor([14.6146, 10.7468, 7.3, 3.0, 1.0, 0.5, 0.1, 0.0292])
    x = torch.zeros(1, 4, 8, 8)
    sampler = sampling.BrownianTreeNoiseSampler(x, sigmas.min(), sigmas.max(), seed=[1234])
    tensors, queries = {}, []
    pairs = [(sigmas[i], sigmas[i + 1]) for i in range(len(sigmas) - 1)] + [(sigmas[2], sigmas[5]), (sigmas[6], sigmas[1])]
    for i, (a, b) in enumerate(pairs):
        tensors[f"query{i}"] = sampler(a, b).contiguous()
        queries.append([a.item(), b.item()])
    info["brownian_queries"] = queries
    save_file(tensors, os.path.join(OUT, "brownian.safetensors"))


def main(fixtures):
    noise()
    brownian()
    modules = import_a1111()
    import open_clip.tokenizer as oc
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = tokenizer_files(folder)
        info["tokenizer"] = {
            "huggingface": [tokenizer(p, add_special_tokens=False)["input_ids"] for p in TOKENIZER_PROMPTS],
            "openclip": [oc._tokenizer.encode(p) for p in TOKENIZER_PROMPTS],
            "prompts": TOKENIZER_PROMPTS,
        }
        info["parse"] = [{"prompt": p, "segments": modules.prompt_parser.parse_prompt_attention(p)} for p in PARSE_PROMPTS]

        text, unet_out, vae_out, samplers = {}, {}, {}, {}
        info["fixtures"] = {}
        info["text"] = []
        info["samplers"] = []
        for family in ["sd1", "sd2", "sdxl"]:
            path = os.path.join(fixtures, f"{family}_engine.safetensors")
            info["fixtures"][f"{family}_engine.safetensors"] = sha256(path)
            unet, encoders, vae = diffusers_models(family, path)
            embedders = a1111_embedders(modules, family, encoders, tokenizer)

            if family != "sdxl":
                chunks = []
                for p in CHUNK_PROMPTS:
                    found, count = embedders[0].tokenize_line(p)
                    chunks.append({"prompt": p, "tokens": [c.tokens for c in found], "multipliers": [c.multipliers for c in found],
                                   "token_count": count})
                info[f"chunks_{family}"] = chunks

            prompts = ["a (red:1.3) [blue] cat, BREAK sitting on a mat", long_prompt(), ""]
            for index, prompt in enumerate(prompts):
                for skip in ([1, 2] if family == "sd1" else [1]):
                    opts.CLIP_stop_at_last_layers = skip
                    for negative in ([False, True] if family == "sdxl" and prompt == "" else [False]):
                        context, pooled = condition(embedders, family, prompt, negative)
                        name = f"{family}_p{index}_skip{skip}" + ("_negative" if negative else "")
                        text[name] = context[0].contiguous()
                        if pooled is not None:
                            text[name + "_pooled"] = pooled[0].contiguous()
                        info["text"].append({"name": name, "family": family, "prompt": prompt, "clip_skip": skip, "negative": negative})
            opts.CLIP_stop_at_last_layers = 1

            g = torch.Generator().manual_seed(7)
            context_dim = unet.config.cross_attention_dim
            x = torch.randn(2, 4, 8, 8, generator=g)
            context = torch.randn(2, 77, context_dim, generator=g)
            t = torch.tensor([999.0, 123.456])
            kwargs = {}
            unet_out[f"{family}_x"] = x
            unet_out[f"{family}_context"] = context
            unet_out[f"{family}_t"] = t
            if family == "sdxl":
                pooled = torch.randn(2, 128, generator=g)
                time_ids = torch.tensor([[64, 64, 0, 0, 64, 64], [1024, 768, 16, 8, 1024, 1024]], dtype=torch.float32)
                kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
                unet_out["sdxl_pooled"] = pooled
                unet_out["sdxl_time_ids"] = time_ids
            with torch.no_grad():
                unet_out[f"{family}_out"] = unet(x, t, encoder_hidden_states=context, **kwargs).sample

            if family == "sd1":
                with torch.no_grad():
                    z = torch.randn(1, 4, 8, 8, generator=g)
                    vae_out["decode_in"] = z
                    vae_out["decode_out"] = vae.decode(z / vae.config.scaling_factor).sample
                    image = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
                    dist = vae.encode(image).latent_dist
                    vae_out["encode_in"] = image
                    vae_out["encode_mean"] = dist.mean
                    vae_out["encode_logvar"] = dist.logvar

            model = LDMLike(unet, family)
            if family == "sd1":
                info["alphas_cumprod"] = model.alphas_cumprod.tolist()
                import k_diffusion.external as external
                import k_diffusion.sampling as sampling
                wrap = external.CompVisDenoiser(model, quantize=False)
                info["sigmas_uniform_20"] = wrap.get_sigmas(20).tolist()
                info["sigmas_karras_20"] = sampling.get_sigmas_karras(20, wrap.sigmas[0].item(), wrap.sigmas[-1].item()).tolist()
                info["sigma_to_t"] = [[s, wrap.sigma_to_t(torch.tensor(s)).item()] for s in [14.6146, 3.0, 0.5, 0.0292, 0.02, 20.0]]
                runs = [("Euler", "eps"), ("Euler a", "eps"), ("DPM++ 2M", "eps"), ("DPM++ 2M Karras", "eps"),
                        ("DDIM", "eps"), ("DPM++ SDE Karras", "eps")]
            elif family == "sd2":
                runs = [("Euler", "v"), ("DDIM", "v"), ("DPM++ 2M Karras", "v")]
            else:
                runs = [("Euler a", "eps"), ("DPM++ 2M Karras", "eps")]
            cond = condition(embedders, family, "a (red:1.3) cat, sitting on a mat")
            uncond = condition(embedders, family, "", negative=True)
            for sampler, prediction in runs:
                seed = 1234
                initial, final = run_sampler(sampler, model, cond, uncond, family, seed, 4, 7.0, 64, prediction)
                name = f"{family}_{sampler.replace(' ', '_').replace('+', 'p')}_{prediction}"
                samplers[name] = final.contiguous()
                samplers[name + "_initial"] = initial.contiguous()
                info["samplers"].append({"name": name, "family": family, "sampler": sampler, "prediction": prediction,
                                         "seed": seed, "steps": 4, "cfg": 7.0, "size": 64,
                                         "prompt": "a (red:1.3) cat, sitting on a mat", "negative": ""})
                if family == "sd1" and sampler == "Euler a":
                    with torch.no_grad():
                        image = vae.decode(final / vae.config.scaling_factor).sample
                    samplers[name + "_image"] = image.contiguous()
                    # A1111's pixels: clamp((x + 1) / 2) * 255, truncated.
                    pixels = (torch.clamp((image[0] + 1) / 2, 0, 1) * 255).permute(1, 2, 0).numpy().astype("uint8")
                    info["sd1_euler_a_pixels_sha256"] = hashlib.sha256(pixels.tobytes()).hexdigest()

        save_file(text, os.path.join(OUT, "text.safetensors"))
        save_file({k: v.contiguous() for k, v in unet_out.items()}, os.path.join(OUT, "unet.safetensors"))
        save_file({k: v.contiguous() for k, v in vae_out.items()}, os.path.join(OUT, "vae.safetensors"))
        save_file(samplers, os.path.join(OUT, "samplers.safetensors"))
    with open(os.path.join(OUT, "engine.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
