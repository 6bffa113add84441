"""Regenerates opencv_resize.safetensors: OpenCV's float32 INTER_LINEAR resize of mean-subtracted BGR noise.

Used by tests/ops/preprocess.rs to pin reference::preprocess (and the shader) to OpenCV.
Run with opencv-python-headless and numpy: python3 tests/data/opencv_resize.py
IPP is switched off: the x86-64 wheels route float32 INTER_LINEAR through IPP, whose source coordinates
differ from OpenCV's own generic path (docs/spec/ssh-vgg16.md section 2) by up to ~1e-2 on noise.
"""
import json
import os
import struct

import cv2
import numpy as np

cv2.ipp.setUseIPP(False)
cv2.ocl.setUseOpenCL(False)

CASES = [  # (H, W), s
    ((17, 34), 2.3), ((37, 53), 0.37), ((3, 7), 1.5), ((13, 9), 2.5), ((10, 9), 0.5), ((1, 1), 3.5),
    ((10, 100), 1.04), ((10, 10), 1.04), ((1, 300), 2.3), ((3, 2000), 0.37), ((2000, 3), 0.37),
    ((40, 37), 1200 / 512),
]
MEAN = np.array([102.9801, 115.9465, 122.7717], np.float32)  # B, G, R


def main():
    rng = np.random.default_rng(1)
    tensors, meta = [], {"opencv": cv2.__version__, "numpy": np.__version__, "ipp": str(cv2.ipp.useIPP())}
    for i, ((h, w), s) in enumerate(CASES):
        rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        img = rgb[:, :, ::-1].astype(np.float32) - MEAN
        out = img if s == 1.0 else cv2.resize(img, None, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        out = np.ascontiguousarray(out.reshape(out.shape[0], out.shape[1], 3).transpose(2, 0, 1))
        tensors += [(f"rgb{i}", "U8", rgb), (f"bgr{i}", "F32", out.astype(np.float32))]
        meta[f"scale{i}"] = repr(s)
    meta["cases"] = str(len(CASES))
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, dt, a in tensors:
        b = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "opencv_resize.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


if __name__ == "__main__":
    main()
