#!/usr/bin/env python3
"""kohya's colour augmentation (sd-scripts library/train_util.py AugHelper.color_aug), run by its own code.

    SD_SCRIPTS=/path/to/sd-scripts python3 Fixtures/golden/make_augment_golden.py   (needs numpy and opencv)

color_aug draws from Python's `random` (0.33: augment at all; then > 0.5: hue shift uniform(-8, 8) in
OpenCV's 8-bit HSV, H in [0, 180); else gamma uniform(0.95, 1.05) as image ** gamma on 0..255 values).
Here its `random` is replaced by a stub that returns chosen draws, so each case is one known hue shift or
gamma; Swift redoes the same cases. The image is kohya's RGB array, which color_aug converts with
COLOR_BGR2HSV (so the hue turns the other way round than its sign says; ours does the same).
Writes Fixtures/golden/augment/color_aug.json.
"""
import json
import os
import sys

import numpy as np

import ast  # noqa: E402
import types  # noqa: E402

import cv2  # noqa: E402

# train_util.py imports half of the torch ecosystem; only its AugHelper class is needed, so that class's own
# source is taken out of the file and run with the names it uses (cv2, np, random).
source = open(os.path.join(os.environ["SD_SCRIPTS"], "library", "train_util.py"), encoding="utf-8").read()
node = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "AugHelper")
train_util = types.SimpleNamespace()
namespace = {"cv2": cv2, "np": np, "random": None}
exec(compile(ast.Module(body=[node], type_ignores=[]), "train_util.py", "exec"), namespace)

HERE = os.path.dirname(os.path.abspath(__file__))


class Draws:
    """Stands in for the `random` module: random() and uniform() return queued values."""

    def __init__(self, randoms, uniforms):
        self.randoms, self.uniforms = list(randoms), list(uniforms)

    def random(self):
        return self.randoms.pop(0)

    def uniform(self, a, b):
        return self.uniforms.pop(0)


# 24x16 pixels: hue ramps at several saturations and values, greys, primaries, near-white and near-black.
h, w = 16, 24
image = np.zeros((h, w, 3), dtype=np.uint8)
rng = np.random.default_rng(20261201)
for y in range(h):
    for x in range(w):
        if y < 8:
            hue = x / w * 6
            sat, val = [1.0, 0.6, 0.3, 0.05][y % 4], [255, 180, 90, 20][y // 2 % 4]
            k = lambda n: (n + hue) % 6
            f = lambda n: val * (1 - sat * max(0, min(k(n), 4 - k(n), 1)))
            image[y, x] = [round(f(5)), round(f(3)), round(f(1))]
        else:
            image[y, x] = rng.integers(0, 256, 3)
image[15, :4] = [[0, 0, 0], [255, 255, 255], [128, 128, 128], [255, 0, 0]]

cases = []
helper = namespace["AugHelper"]()
for shift in [3.7, -8.0, -0.4, 7.99, 0.5]:
    namespace["random"] = Draws([0.1, 0.9], [shift])
    cases.append({"kind": "hue", "value": shift, "pixels": helper.color_aug(image.copy())["image"].reshape(-1).tolist()})
for gamma in [0.95, 1.05, 1.0, 0.9712]:
    namespace["random"] = Draws([0.1, 0.2], [gamma])
    cases.append({"kind": "gamma", "value": gamma, "pixels": helper.color_aug(image.copy())["image"].reshape(-1).tolist()})
namespace["random"] = Draws([0.5], [])
cases.append({"kind": "none", "value": 0, "pixels": helper.color_aug(image.copy())["image"].reshape(-1).tolist()})

os.makedirs(os.path.join(HERE, "augment"), exist_ok=True)
with open(os.path.join(HERE, "augment", "color_aug.json"), "w") as f:
    json.dump({"width": w, "height": h, "image": image.reshape(-1).tolist(), "cases": cases, "opencv": cv2.__version__,
               "numpy": np.__version__}, f, separators=(",", ":"))
print(f"{len(cases)} cases, OpenCV {cv2.__version__}")
