#!/usr/bin/env python3
"""Training-image resizes with each of kohya's --resize_interpolation methods, from sd-scripts' own resize_image.

    SD_SCRIPTS=/path/to/sd-scripts python3 Fixtures/golden/make_resize_golden.py

library/utils.py `resize_image` resizes with PIL for "lanczos" and "box" and with OpenCV for "nearest"
(INTER_NEAREST_EXACT), "bilinear"/"linear" (INTER_LINEAR), "bicubic"/"cubic" (INTER_CUBIC) and "area"
(INTER_AREA, which OpenCV runs as a linear filter with its own weights when a side grows). Each case is a
patterned image the Swift test recomputes, shrunk, enlarged, and both at once. Needs sd-scripts' Python
dependencies (numpy, opencv-python, Pillow). Writes Fixtures/golden/training/resize_interpolations.json.
"""
import json
import os
import sys

import cv2
import numpy as np
import PIL

sys.path.insert(0, os.environ["SD_SCRIPTS"])
from library.utils import resize_image  # noqa: E402


def pattern(w, h):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((x * 37 + y * 91 + c * 53 + (x * y) % 17 * 7) % 256).astype(np.uint8)


sizes = [((37, 23), (16, 10)), ((37, 23), (48, 30)), ((37, 23), (50, 12)), ((48, 36), (24, 18)), ((20, 30), (20, 45)),
         ((30, 20), (45, 20))]
cases = []
for method in ["lanczos", "box", "nearest", "bilinear", "linear", "bicubic", "cubic", "area"]:
    for (w, h), (rw, rh) in sizes:
        resized = resize_image(pattern(w, h), w, h, rw, rh, method)
        cases.append({"method": method, "from": [w, h], "to": [rw, rh], "pixels_hex": resized.reshape(-1).tobytes().hex()})
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "training", "resize_interpolations.json")
with open(out, "w") as f:
    json.dump({"opencv": cv2.__version__, "pillow": PIL.__version__, "cases": cases}, f, indent=0, sort_keys=True)
print(f"wrote {out}: {len(cases)} cases")
