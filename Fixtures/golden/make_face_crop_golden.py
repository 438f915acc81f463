#!/usr/bin/env python3
"""kohya's face-centred crop (sd-scripts library/train_util.py BaseDataset.crop_target and
load_image_with_face_info), run by its own code with Python's own `random`.

    SD_SCRIPTS=/path/to/sd-scripts python3 Fixtures/golden/make_face_crop_golden.py   (needs numpy)

crop_target's source is taken out of train_util.py (which imports half of the torch ecosystem) and run
with `random` seeded per case and a stand-in for resize_image that records the size asked for and
returns an array whose values are their own coordinates (y * 100000 + x), so the crop's first value
says where it started. After each case one more getrandbits(32) shows how many draws it took.
Swift replays each case with PythonRandom seeded alike (Tests/TrainingTests/FaceCropTests.swift).
load_image_with_face_info's file-name parsing is run on a list of names with load_image stubbed.
Writes Fixtures/golden/augment/face_crop.json.
"""
import ast
import json
import os
import random
import types

import numpy as np

source = open(os.path.join(os.environ["SD_SCRIPTS"], "library", "train_util.py"), encoding="utf-8").read()
base = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "BaseDataset")
functions = [n for n in base.body if isinstance(n, ast.FunctionDef) and n.name in ("crop_target", "load_image_with_face_info")]
assert len(functions) == 2

resized = []


def resize_image(image, width, height, new_width, new_height, interpolation):
    assert image.shape[:2] == (height, width)
    resized.append((new_width, new_height))
    ys, xs = np.mgrid[0:new_height, 0:new_width]
    return ys * 100000 + xs


namespace = {"random": random, "resize_image": resize_image, "BaseSubset": object, "load_image": lambda path, alpha: None, "os": os}
exec(compile(ast.Module(body=functions, type_ignores=[]), "train_util.py", "exec"), namespace)
crop_target, load_image_with_face_info = namespace["crop_target"], namespace["load_image_with_face_info"]

HERE = os.path.dirname(os.path.abspath(__file__))

cases = []
# (image w, h), (face cx, cy, w, h), (target w, h), range, random_crop
shapes = [
    ((1024, 768), (500, 300, 200, 240), (512, 512), (2.0, 4.0), False),
    ((1024, 768), (500, 300, 200, 240), (512, 512), (2.0, 4.0), True),
    ((1024, 768), (500, 300, 200, 240), (512, 512), (3.0, 3.0), False),   # one scale, no shift
    ((768, 1024), (100, 900, 60, 50), (512, 640), (1.5, 5.0), False),     # face near a corner
    ((768, 1024), (100, 900, 60, 50), (512, 640), (1.5, 5.0), True),
    ((640, 640), (320, 320, 30, 30), (512, 512), (2.0, 4.0), False),      # small face: no shift (< 40)
    ((2000, 1200), (1900, 50, 400, 300), (448, 640), (1.0, 2.0), False),  # big face, scale pinned at cover
    ((2000, 1200), (1900, 50, 400, 300), (448, 640), (1.0, 2.0), True),
    ((512, 512), (256, 256, 100, 100), (512, 512), (2.0, 4.0), True),     # already the target's size: untouched
    ((900, 700), (450, -20, 90, 110), (512, 512), (2.0, 4.0), True),      # centre above the image
    ((800, 600), (700, 500, 41, 30), (384, 384), (1.2, 8.0), False),      # randint(-41 // 20, 41 // 20): Python floors to -3
]
for shape_index, (image, face, target, rng, random_crop) in enumerate(shapes):
    for seed in (0, 7, 20261202, 123456789):
        random.seed(seed)
        ys, xs = np.mgrid[0:image[1], 0:image[0]]
        img = ys * 100000 + xs
        this = types.SimpleNamespace(width=target[0], height=target[1])
        subset = types.SimpleNamespace(face_crop_aug_range=rng, random_crop=random_crop, resize_interpolation=None)
        resized.clear()
        out = crop_target(this, subset, img, *face)
        assert out.shape == (target[1], target[0]), out.shape
        scaled = resized[0] if resized else image
        first = int(out[0, 0])
        cases.append({"image": list(image), "face": list(face), "target": list(target), "range": list(rng),
                      "random_crop": random_crop, "seed": seed, "scaled": list(scaled),
                      "left": first % 100000, "top": first // 100000, "next_bits": random.getrandbits(32)})

names = []
for name in ["photo.png", "a_b_c_d.png", "img_512_300_120_140.png", "my_cat_0_10_20_30.jpg", "x_+12_ 7_40_-3.png",
             "shot_1_2_3_4_5.webp", "a_b_c_d_e.png", "face_10_20_0_0.png", "dir.with.dots/pic_9_8_7_6.jpeg",
             "trail_1_2_3_.png", "neg_-5_10_20_30.png"]:
    subset = types.SimpleNamespace(face_crop_aug_range=(2.0, 4.0))
    try:
        _, cx, cy, w, h = load_image_with_face_info(None, subset, "/data/10_x/" + name)
        names.append({"name": name, "face": [cx, cy, w, h]})
    except ValueError:
        names.append({"name": name, "error": True})

os.makedirs(os.path.join(HERE, "augment"), exist_ok=True)
with open(os.path.join(HERE, "augment", "face_crop.json"), "w") as f:
    json.dump({"source": "sd-scripts library/train_util.py crop_target, load_image_with_face_info; CPython random",
               "crops": cases, "names": names}, f, indent=1)
    f.write("\n")
print(len(cases), "crops,", len(names), "names")
