#!/usr/bin/env python3
"""Golden dataset plans from sd-scripts' own dataset code.

For each case below, builds the folders (image sizes and caption files as the
case lists them; pixels are a flat colour, only sizes matter to a plan), runs
sd-scripts' train_network argument parser on a kohya command line, and its
dataset pipeline exactly as train_network.py does (generate_dreambooth_subsets_config_by_subdirs,
BlueprintGenerator, generate_dataset_group_by_blueprint, which makes the
buckets), and records what the plan is: per image its repeats, bucket and
resized size; buckets with counts; mean aspect error; batches per epoch;
train/reg image counts; tag frequencies; steps for a few epoch/accumulation
settings. Then the same for fine-tuning datasets (--in_json: a metadata
file lists the images, captions and tags; METADATA_CASES). Writes Fixtures/golden/training/datasets.json. The Swift test
rebuilds the same folders from that file and compares. Needs a checkout of
kohya-ss/sd-scripts (SD_SCRIPTS) and its Python dependencies (torch,
diffusers, transformers, accelerate, voluptuous, toml, opencv-python):

    SD_SCRIPTS=/path/to/sd-scripts python3 Fixtures/golden/make_dataset_golden.py

Folder order: sd-scripts lists sub-folders in file-system order; each case has
at most one regularization folder, so the order cannot change the result.
"""
import json
import math
import os
import shutil
import sys
import tempfile
import types

from PIL import Image

SD = os.environ.get("SD_SCRIPTS")
if not SD:
    sys.exit("set SD_SCRIPTS to a kohya-ss/sd-scripts checkout")
sys.path.insert(0, SD)
# The long-prompt pipelines import names newer transformers removed; the dataset code does not use them.
for name, cls in [("library.lpw_stable_diffusion", "StableDiffusionLongPromptWeightingPipeline"),
                  ("library.sdxl_lpw_stable_diffusion", "SdxlStableDiffusionLongPromptWeightingPipeline")]:
    stub = types.ModuleType(name)
    setattr(stub, cls, object)
    sys.modules[name] = stub
import train_network  # noqa: E402
from library import config_util, train_util  # noqa: E402

SIZES = [(512, 512), (1024, 768), (1920, 1080), (300, 300), (400, 600), (768, 1024), (640, 360), (333, 777), (1000, 1000), (512, 700)]

def folder(name, count, first=0, captions=".caption", every=1):
    """count images with sizes from SIZES (cycling from `first`); a caption file for every `every`-th."""
    images = []
    for i in range(count):
        w, h = SIZES[(first + i) % len(SIZES)]
        caption = f"{name.split('_', 1)[1]}, tag{i % 3}, Tag{i % 2}" if i % every == 0 else None
        images.append({"name": f"img{i:03d}.png", "width": w, "height": h, "caption": caption, "caption_extension": captions})
    return {"name": name, "images": images}

CASES = [
    {"name": "buckets_512", "args": ["--resolution", "512", "--enable_bucket", "--train_batch_size", "4"],
     "train": [folder("30_X", 7), folder("5_Y z", 3, first=4, every=2)], "reg": [folder("1_class", 20, first=2, every=100)]},
    {"name": "no_upscale", "args": ["--resolution", "512", "--enable_bucket", "--bucket_no_upscale", "--train_batch_size", "2"],
     "train": [folder("3_a_b", 10), folder("2_c", 4, first=7)], "reg": []},
    {"name": "no_buckets", "args": ["--resolution", "512", "--train_batch_size", "2"],
     "train": [folder("4_solo", 5, captions=".txt")], "reg": []},
    {"name": "rect_limits", "args": ["--resolution", "512,768", "--enable_bucket", "--min_bucket_reso", "320", "--max_bucket_reso", "1024",
                                     "--train_batch_size", "3"],
     "train": [folder("6_rect", 10, first=3)], "reg": []},
    {"name": "reg_surplus", "args": ["--resolution", "512", "--enable_bucket", "--train_batch_size", "1"],
     "train": [folder("2_A", 3)], "reg": [folder("1_R", 10, first=1)]},
]

# Fine-tuning cases (--in_json): images listed by a metadata file instead of <repeats>_<tokens> folders,
# run through the FineTuningDataset path train_network.py takes for --in_json. Keys are paths relative to
# --train_data_dir (today's sd-scripts finds images by them) of several lengths, since kohya registers
# the longest keys first; captions and tags as merge_captions_to_metadata.py / merge_dd_tags_to_metadata.py write.
def listed(entries, first=0):
    return [{"path": key, "width": SIZES[(first + i) % len(SIZES)][0], "height": SIZES[(first + i) % len(SIZES)][1], **fields}
            for i, (key, fields) in enumerate(entries)]

METADATA_CASES = [
    {"name": "metadata_json", "file": "meta_cap_dd.json", "args": ["--resolution", "512", "--enable_bucket", "--train_batch_size", "2",
                                                                   "--dataset_repeats", "3"],
     "images": listed([("img000.png", {"caption": "a red fox", "tags": "fox, Red, animal"}),
                       ("a.png", {"caption": "short key"}),
                       ("sub/img002.png", {"tags": "fox, forest"}),
                       ("img001.png", {"caption": "a second fox", "tags": ""}),
                       ("zz.jpg", {"caption": "", "tags": "animal"}),
                       ("img003.png", {})])},
    {"name": "metadata_jsonl_wildcard", "file": "meta.jsonl", "args": ["--resolution", "512", "--train_batch_size", "1", "--enable_wildcard",
                                                                       "--caption_separator", ";", "--dataset_repeats", "2"],
     "images": listed([("one.png", {"caption": "first line\n\nsecond line", "tags": "x;y\nz"}),
                       ("three.png", {"caption": "plain", "tags": "t"}),
                       ("two.png", {"caption": "no tags"})], first=3)},
]

def write_metadata(case, train_dir, path):
    for image in case["images"]:
        os.makedirs(os.path.dirname(os.path.join(train_dir, image["path"])), exist_ok=True)
        Image.new("RGB", (image["width"], image["height"]), (120, 80, 40)).save(os.path.join(train_dir, image["path"]))
    fields = lambda image: {k: v for k, v in image.items() if k in ("caption", "tags")}
    if path.endswith(".jsonl"):
        text = "".join(json.dumps({"image_path": i["path"], **fields(i)}) + "\n" for i in case["images"])
    else:
        text = json.dumps({i["path"]: fields(i) for i in case["images"]}, indent=2)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text

def build(root, folders):
    for f in folders:
        path = os.path.join(root, f["name"])
        os.makedirs(path)
        for image in f["images"]:
            Image.new("RGB", (image["width"], image["height"]), (120, 80, 40)).save(os.path.join(path, image["name"]))
            if image["caption"] is not None:
                base = os.path.splitext(image["name"])[0]
                with open(os.path.join(path, base + image["caption_extension"]), "w", encoding="utf-8") as c:
                    c.write(image["caption"] + "\nsecond line is ignored\n")

from library.strategy_base import LatentsCachingStrategy  # noqa: E402
from library.strategy_sd import SdSdxlLatentsCachingStrategy  # noqa: E402
# train_network.py sets the caching strategy before the dataset (FineTuningDataset looks for caches with it).
LatentsCachingStrategy.set_strategy(SdSdxlLatentsCachingStrategy(True, False, 1, False))

results = []
for case in CASES + METADATA_CASES:
    work = tempfile.mkdtemp()
    try:
        train_dir, reg_dir = os.path.join(work, "train"), os.path.join(work, "reg")
        os.makedirs(train_dir)
        argv = ["--train_data_dir", train_dir] + case["args"]
        if "file" in case:  # a fine-tuning case
            metadata_path = os.path.join(work, case["file"])
            case["text"] = write_metadata(case, train_dir, metadata_path)
            case["train"], case["reg"] = [], []
            argv += ["--in_json", metadata_path]
        build(train_dir, case["train"])
        if case["reg"]:
            os.makedirs(reg_dir)
            build(reg_dir, case["reg"])
            argv += ["--reg_data_dir", reg_dir]
        ext = next((i["caption_extension"] for f in case["train"] for i in f["images"]), ".caption")
        argv += ["--caption_extension", ext]
        args = train_network.setup_parser().parse_args(argv)
        train_util.prepare_dataset_args(args, True)  # what train_network.train does first
        sanitizer = config_util.ConfigSanitizer(True, True, False, True)
        if args.in_json is None:
            user_config = {"datasets": [{"subsets": config_util.generate_dreambooth_subsets_config_by_subdirs(args.train_data_dir, args.reg_data_dir)}]}
        else:  # train_network.py's "Training with captions" branch
            user_config = {"datasets": [{"subsets": [{"image_dir": args.train_data_dir, "metadata_file": args.in_json}]}]}
        blueprint = config_util.BlueprintGenerator(sanitizer).generate(user_config, args)
        group, _ = config_util.generate_dataset_group_by_blueprint(blueprint.dataset_group)
        dataset = group.datasets[0]
        images = []
        for info in dataset.image_data.values():
            rel = os.path.relpath(info.absolute_path, work)
            images.append({"path": rel, "repeats": info.num_repeats, "caption": info.caption, "is_reg": info.is_reg,
                           "bucket": list(info.bucket_reso), "resized": list(info.resized_size)})
        buckets = [{"resolution": list(reso), "count": len(b)} for reso, b in zip(dataset.bucket_manager.resos, dataset.bucket_manager.buckets) if len(b) > 0]
        batches = len(dataset)
        steps = {}
        for epochs, accumulation in [(3, 1), (3, 2), (None, 1)]:
            per_epoch = math.ceil(batches / accumulation)
            total = epochs * per_epoch if epochs else 1600
            steps[f"{epochs}x{accumulation}"] = {"steps_per_epoch": per_epoch, "total": total,
                                                 "epochs": epochs if epochs else math.ceil(1600 / per_epoch)}
        metadata = {"metadata": {"file": case["file"], "text": case["text"], "images": case["images"]}} if "file" in case else {}
        results.append({
            **metadata,
            "name": case["name"], "args": case["args"], "caption_extension": ext, "train": case["train"], "reg": case["reg"],
            "images": sorted(images, key=lambda i: i["path"]), "buckets": buckets,
            "mean_img_ar_error": float(dataset.bucket_info["mean_img_ar_error"]) if dataset.bucket_info else None,
            "batches_per_epoch": batches, "num_train_images": dataset.num_train_images, "num_reg_images": dataset.num_reg_images,
            "tag_frequency": dataset.tag_frequency, "steps": steps,
        })
    finally:
        shutil.rmtree(work)

# Resizing: sd-scripts' own resize_image (library/utils.py: OpenCV's INTER_AREA when
# shrinking both sides, PIL's Lanczos otherwise) on a patterned image the test recomputes.
import numpy as np  # noqa: E402
from library.utils import resize_image  # noqa: E402

def pattern(w, h):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((x * 37 + y * 91 + c * 53 + (x * y) % 17 * 7) % 256).astype(np.uint8)

resizes = []
for (w, h), (rw, rh) in [((37, 23), (16, 10)), ((37, 23), (80, 50)), ((37, 23), (50, 12)), ((64, 48), (48, 36)), ((20, 30), (20, 45))]:
    image = pattern(w, h)
    resized = resize_image(image, w, h, rw, rh)
    resizes.append({"from": [w, h], "to": [rw, rh], "pixels_hex": resized.reshape(-1).tobytes().hex()})

# A latent cache as sd-scripts writes it (strategy_base.save_latents_to_disk, np.savez), values from a formula.
import torch  # noqa: E402
latents = torch.tensor([[[(c * 31 + y * 7 + x) / 50.0 - 1 for x in range(6)] for y in range(5)] for c in range(4)], dtype=torch.float32)
npz = os.path.join(os.path.dirname(os.path.abspath(__file__)), "training", "kohya_latents_0048x0040_sd.npz")
if os.path.exists(npz):
    os.remove(npz)
LatentsCachingStrategy.save_latents_to_disk(None, npz, latents, (48, 40), (0, 0, 48, 40), flipped_latents_tensor=latents.flip(2))

# Sample prompt lines as sd-scripts parses them (line_to_prompt_dict).
prompt_lines = ["masterpiece, zkw shape --n lowres, bad hands --w 768 --h 515 --d 42 --l 6.5 --s 28 --ss euler_a",
                "a cat --W 640 --S 5000 --D 7", "plain prompt", "odd --w abc --s 12 --x 3 --l 7", "with -- dashes --n  two  spaces"]
prompts = [{"line": line, "parsed": train_util.line_to_prompt_dict(line)} for line in prompt_lines]

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "training", "datasets.json")
with open(out, "w") as f:
    json.dump({"sd_scripts": "see SD_SCRIPTS checkout", "cases": results, "resizes": resizes, "prompts": prompts}, f, indent=1, sort_keys=True)
print("wrote", out)
