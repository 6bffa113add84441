"""Shared fixtures: the repository's golden images (tests/data, outputs of the independent TF reference) and one
detector pinned to f32 like the Rust golden tests."""

import json
import os
import pathlib
import struct
import zlib

import numpy as np
import pytest
from safetensors.numpy import load_file

import sshface

DATA = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data"
NAMES = ["astronaut", "camera", "grace_hopper"]


@pytest.fixture(scope="session")
def det():
    """The bundled detector at f32. Without any adapter the GPU tests skip, except where CI sets
    SSHFACE_REQUIRE_GPU=1: there that is a failure."""
    try:
        return sshface.Detector(precision="f32")
    except sshface.NoAdapterError as e:
        if os.environ.get("SSHFACE_REQUIRE_GPU") == "1":
            raise
        pytest.skip(f"no GPU adapter: {e}")


def golden(name):
    """(input_rgb [H, W, 3] uint8, the reference's detections as (boxes [N, 4], scores [N], landmarks [N, 5, 2]))."""
    rgb = load_file(str(DATA / f"{name}.heads.safetensors"))["input_rgb"]
    dets = json.loads((DATA / f"{name}.retinaface.json").read_text())["detections"]
    boxes = np.array([d["box"] for d in dets], np.float32).reshape(-1, 4)
    scores = np.array([d["score"] for d in dets], np.float32)
    lms = np.array([d["landmarks"] for d in dets], np.float32).reshape(-1, 5, 2)
    return rgb, (boxes, scores, lms)


def assert_faces_match(case, got, want, px, score):
    """The Rust tests' tolerances: boxes and landmarks within `px` pixels, scores within `score`."""
    boxes, scores, lms = want
    assert len(got) == len(scores), f"{case}: {len(got)} faces, expected {len(scores)}: {got!r}"
    np.testing.assert_allclose(got.boxes, boxes, rtol=0, atol=px, err_msg=f"{case}: boxes")
    np.testing.assert_allclose(got.scores, scores, rtol=0, atol=score, err_msg=f"{case}: scores")
    np.testing.assert_allclose(got.landmarks, lms, rtol=0, atol=px, err_msg=f"{case}: landmarks")


def assert_same(a, b, case=""):
    """Two results of the same pixels: identical."""
    assert len(a) == len(b), f"{case}: {len(a)} vs {len(b)} faces"
    np.testing.assert_array_equal(a.boxes, b.boxes, err_msg=case)
    np.testing.assert_array_equal(a.scores, b.scores, err_msg=case)
    if a.landmarks is None or b.landmarks is None:
        assert a.landmarks is None and b.landmarks is None, case
    else:
        np.testing.assert_array_equal(a.landmarks, b.landmarks, err_msg=case)


def write_png(path, rgb):
    """A minimal RGB PNG writer (stdlib zlib), so the tests need no imaging library."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    pathlib.Path(path).write_bytes(png)


def crops(n):
    """`n` distinct small images (48 to 200 px a side) cut from the golden images, faces in some of them."""
    imgs = [golden(name)[0] for name in NAMES]
    out = []
    for k in range(n):
        img = imgs[k % len(imgs)]
        h, w, _ = img.shape
        ch, cw = 48 + (k * 29) % 153, 64 + (k * 41) % 137
        y, x = (k * 37) % (h - ch + 1), (k * 53) % (w - cw + 1)
        out.append(np.ascontiguousarray(img[y : y + ch, x : x + cw]))
    return out
