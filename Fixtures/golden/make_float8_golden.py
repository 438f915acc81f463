#!/usr/bin/env python3
"""torch's float32 -> float8 rounding, for Conversion.fromFloat (F8_E4M3, F8_E5M2).

Run by hand from the repository root (needs torch): python3 Fixtures/golden/make_float8_golden.py
Writes Fixtures/golden/float8/float8.json: float32 inputs as bit patterns and the bytes torch's
`.to(torch.float8_e4m3fn)` and `.to(torch.float8_e5m2)` give on the CPU. The inputs are every
float8 value, the midpoints between neighbours (ties) and one float32 ulp either side of them,
the saturation and overflow edges, signed zeros, infinities, NaN, and seeded normals at several
scales.
"""
import json
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(20261201)


def bits(values):
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in values]


def ulp_neighbours(v):
    b = struct.unpack("<I", struct.pack("<f", v))[0]
    return [struct.unpack("<f", struct.pack("<I", b + d))[0] for d in (-1, 1)] if v > 0 else []


inputs = []
for dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
    grid = torch.arange(256, dtype=torch.uint8).view(dtype).float()
    finite = sorted(set(v for v in grid.tolist() if v == v and abs(v) != float("inf") and v >= 0))
    inputs += finite
    for a, b in zip(finite, finite[1:]):
        mid = (a + b) / 2
        inputs += [mid] + ulp_neighbours(mid)
inputs += [448.0, 449.0, 463.9, 464.0, 479.0, 480.0, 500.0, 57344.0, 61439.0, 61440.0, 65535.0, 65536.0, 1e9, 3e38,
           2.0 ** -10, 2.0 ** -17, 2.0 ** -18, 1e-30, 1e-45, float("inf"), float("nan")]
inputs += (torch.randn(400, dtype=torch.float64) * torch.tensor([1e-3, 1e-2, 0.1, 1.0]).repeat(100)).tolist()
inputs = [v for v in inputs] + [-v for v in inputs] + [0.0, -0.0]
x = torch.tensor(inputs, dtype=torch.float32)
golden = {
    "torch_version": torch.__version__,
    "input_bits": bits(x.tolist()),
    "e4m3fn": x.to(torch.float8_e4m3fn).view(torch.uint8).tolist(),
    "e5m2": x.to(torch.float8_e5m2).view(torch.uint8).tolist(),
}
os.makedirs(os.path.join(HERE, "float8"), exist_ok=True)
with open(os.path.join(HERE, "float8", "float8.json"), "w") as f:
    json.dump(golden, f, separators=(",", ":"))
print(f"{len(inputs)} values, torch {torch.__version__}")
