"""The Python API against the independent reference's golden detections and against itself (layouts, threads, GIL,
errors). Runs on whatever adapter wgpu finds (lavapipe in CI)."""

import os
import shutil
import subprocess
import json
import threading
import time
import warnings

import numpy as np
import pytest

import sshface
from conftest import DATA, NAMES, assert_faces_match, assert_same, crops, golden


@pytest.mark.parametrize("name", NAMES)
def test_golden_arrays(det, name):
    rgb, want = golden(name)
    faces = det.detect(rgb)
    assert_faces_match(name, faces, want, 0.05, 1e-4)
    assert faces.boxes.dtype == np.float32 and faces.boxes.shape == (len(faces), 4)
    assert faces.landmarks.shape == (len(faces), 5, 2)


def test_golden_files_decoded_in_rust(det):
    paths = [DATA / f"{n}.png" for n in ("astronaut", "camera")] + [DATA / "grace_hopper.jpg"]
    got = det.detect_paths(paths, threads=3)
    for name, faces in zip(("astronaut", "camera"), got):
        assert_faces_match(name, faces, golden(name)[1], 0.05, 1e-4)
    # JPEG decoders differ by ±1 per pixel: the Rust tests' loose tolerances.
    assert_faces_match("grace_hopper.jpg", got[2], golden("grace_hopper")[1], 0.5, 1e-3)
    blobs = [p.read_bytes() for p in paths]
    for a, b in zip(det.detect_bytes(blobs), got):
        assert_same(a, b)


def test_same_as_the_cli(det, tmp_path):
    """The Rust CLI on the same files gives the same faces, to the last bit of its JSON."""
    exe = os.environ.get("SSHFACE_BIN")
    if not exe:
        pytest.skip("SSHFACE_BIN (the sshface binary) not set")
    paths = [str(DATA / "astronaut.png"), str(DATA / "grace_hopper.jpg")]
    out = subprocess.run(
        [exe, "detect", "--precision", "f32", "--format", "jsonl", *paths],
        check=True, capture_output=True, text=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    for row, faces in zip(rows, det.detect_paths(paths)):
        want = row["faces"]
        assert len(want) == len(faces)
        for w, f in zip(want, faces.to_list()):
            assert np.float32(w["score"]) == np.float32(f["score"])
            np.testing.assert_array_equal(np.float32(w["box"]), np.float32(f["box"]))
            np.testing.assert_array_equal(np.float32(w["landmarks"]), np.float32(f["landmarks"]))


def test_records_and_to_list(det):
    rgb, _ = golden("astronaut")
    faces = det.detect(rgb)
    assert len(faces) == 1
    face = list(faces)[0]
    assert face == faces[0]
    assert face.box == tuple(float(v) for v in faces.boxes[0])
    assert len(face.landmarks) == 5
    d = faces.to_list()[0]
    assert set(d) == {"box", "score", "landmarks"}
    assert d["score"] == float(faces.scores[0]) and len(d["landmarks"]) == 5
    assert "1 faces" in repr(faces)
    top = det.detect(golden("grace_hopper")[0], score=0.01, max_faces=2)
    assert len(top) <= 2


def test_strided_rgba_and_gray_arrays(det):
    rgb = np.ascontiguousarray(golden("grace_hopper")[0][:288, 96:352])  # the face, 256 x 288
    ref = det.detect(rgb)
    assert len(ref) == 1
    # A BGR array viewed as RGB: negative stride on the channel axis.
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    assert_same(det.detect(bgr[..., ::-1]), ref, "bgr[..., ::-1]")
    # A flipped view and a strided crop equal their contiguous copies.
    flipped = rgb[:, ::-1]
    assert not flipped.flags.c_contiguous
    assert_same(det.detect(flipped), det.detect(np.ascontiguousarray(flipped)), "flip")
    crop = rgb[10:280:2, 5:250:3]
    assert_same(det.detect(crop), det.detect(np.ascontiguousarray(crop)), "strided crop")
    # Fortran order.
    assert_same(det.detect(np.asfortranarray(rgb)), ref, "fortran")
    # RGBA drops alpha.
    alpha = np.full(rgb.shape[:2] + (1,), 77, np.uint8)
    assert_same(det.detect(np.concatenate([rgb, alpha], axis=2)), ref, "rgba")
    # Grayscale [H, W] and [H, W, 1] repeat into three channels.
    gray = rgb[..., 1]
    rep = np.repeat(gray[..., None], 3, axis=2)
    assert_same(det.detect(gray), det.detect(rep), "gray")
    assert_same(det.detect(gray[..., None]), det.detect(rep), "gray [H, W, 1]")


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((32, 32, 3), np.float32), ["uint8", "float32", "[H, W, 3]"]),
        (np.zeros((32, 32, 2), np.uint8), ["[32, 32, 2]", "[H, W, 3]"]),
        (np.zeros((2, 32, 32, 3), np.uint8), ["[2, 32, 32, 3]"]),
        (np.zeros((32,), np.uint8), ["[32]"]),
        (np.zeros((0, 32, 3), np.uint8), ["empty", "0"]),
        ([[0, 1], [2, 3]], ["list", "numpy uint8 array"]),
    ],
)
def test_bad_arrays_raise_value_error(det, bad, words):
    with pytest.raises(ValueError) as e:
        det.detect(bad)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    with pytest.raises(ValueError, match=r"images\[1\]"):
        det.detect_batch([np.zeros((32, 32, 3), np.uint8), bad])


def test_unreadable_files(det, tmp_path):
    good = DATA / "astronaut.png"
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    missing = tmp_path / "missing.png"
    with pytest.raises(ValueError, match="junk.jpg"):
        det.detect_paths([good, junk])
    with pytest.raises(OSError, match="missing.png"):
        det.detect_paths([missing, good])
    with pytest.warns(RuntimeWarning, match="junk.jpg"):
        got = det.detect_paths([good, junk, missing, good], on_error="none")
    assert got[1] is None and got[2] is None
    assert len(got[0]) == 1 and len(got[3]) == 1
    with pytest.raises(ValueError, match="blob-7"):
        det.detect_bytes([b"\x89PNG\r\n\x1a\n truncated"], labels=["blob-7"])
    # A PNG cut in its image data: detected on the rows that decoded, with a warning naming it.
    cut = tmp_path / "cut.png"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) * 3 // 4])
    with pytest.warns(RuntimeWarning, match="cut.png"):
        (partial,) = det.detect_paths([cut])
    assert partial is not None
    with pytest.raises(ValueError, match="on_error"):
        det.detect_paths([good], on_error="ignore")


def test_batches_equal_single_calls(det):
    imgs = crops(7)
    single = [det.detect(im) for im in imgs]
    for bs in (1, 3, 8):
        for a, b in zip(det.detect_batch(imgs, batch_size=bs), single):
            assert_same(a, b, f"batch_size {bs}")


def test_eight_threads_share_one_detector(det):
    imgs = crops(12)
    want = [det.detect(im) for im in imgs]
    got = [None] * (8 * len(imgs))
    errors = []

    def work(t):
        try:
            for k in range(len(imgs)):
                i = (k + 5 * t) % len(imgs)
                got[t * len(imgs) + i] = det.detect(imgs[i])
        except Exception as e:  # reported below with the thread's number
            errors.append((t, e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for t in range(8):
        for i in range(len(imgs)):
            assert_same(got[t * len(imgs) + i], want[i], f"thread {t} image {i}")


def test_gil_is_released_during_detect(det):
    rgb, _ = golden("astronaut")
    det.detect(rgb)  # the plan is compiled: what follows is decoding-free GPU work
    ticks = 0
    stop = threading.Event()

    def spin():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    old = os.sys.getswitchinterval()
    os.sys.setswitchinterval(1.0)  # held GIL: the spinner would get one slice per second at most
    try:
        t.start()
        time.sleep(0.05)
        before = ticks
        start = time.perf_counter()
        det.detect(rgb)
        took = time.perf_counter() - start
        during = ticks - before
    finally:
        stop.set()
        t.join()
        os.sys.setswitchinterval(old)
    # With the GIL released the spinner runs all through the call (millions of ticks per second).
    assert during > 10_000, f"{during} ticks in {took:.2f} s"


def test_device_choice_and_scheduler_variables(monkeypatch):
    listed = sshface.adapters()
    if not listed:
        pytest.skip("no adapter")
    assert [a["index"] for a in listed] == list(range(len(listed)))
    assert sum(a["auto"] for a in listed) == 1
    det0 = sshface.Detector(device=0)
    assert det0.adapter_info["name"] == listed[0]["name"]
    assert det0.adapter_info["chosen_by"] == "--device 0"
    with pytest.raises(ValueError, match="device"):
        sshface.Detector(device="gpu0")
    with pytest.raises(ValueError, match="adapters"):
        sshface.Detector(device=len(listed) + 5)
    if any(a["type"] != "Cpu" and a["name"].lower().startswith("nvidia") for a in listed):
        pytest.skip("an NVIDIA adapter is present: CUDA_VISIBLE_DEVICES=1 would map to it")
    # Ray's logical GPUs on a machine without an NVIDIA adapter: the best adapter, with a warning naming the variable.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with pytest.warns(RuntimeWarning, match="CUDA_VISIBLE_DEVICES=1"):
        lenient = sshface.Detector()
    assert "CUDA_VISIBLE_DEVICES=1" in lenient.adapter_info["chosen_by"]
    with pytest.raises(sshface.NoAdapterError, match="CUDA_VISIBLE_DEVICES=1"):
        sshface.Detector(strict_device=True)
    assert issubclass(sshface.NoAdapterError, sshface.GpuError)
    assert issubclass(sshface.GpuError, RuntimeError)


def test_options_errors():
    with pytest.raises(ValueError, match="unknown model"):
        sshface.Detector(model="yolo")
    with pytest.raises(ValueError, match="precision"):
        sshface.Detector(precision="f8")
    with pytest.raises(ValueError, match="backend"):
        sshface.Detector(backend="cuda")
    with pytest.raises(ValueError, match="ssh-vgg16"):
        sshface.Detector(model="ssh-vgg16")
    with pytest.raises(ValueError, match="gpu_timeout"):
        sshface.Detector(gpu_timeout=0)
    with pytest.raises(OSError, match="nowhere.safetensors"):
        sshface.Detector(weights="/nowhere.safetensors")


def test_score_threshold_out_of_range(det):
    with pytest.raises(ValueError, match="score threshold"):
        det.detect(np.zeros((32, 32, 3), np.uint8), score=1.5)
