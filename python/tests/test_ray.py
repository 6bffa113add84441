"""Ray Data on a local cluster started by the test: two actors, each handed a logical GPU (CUDA_VISIBLE_DEVICES 0
or 1) by Ray, over 20 images as encoded bytes and as arrays; the results equal direct calls."""

import os

import numpy as np
import pytest

# CI (SSHFACE_REQUIRE_GPU=1) installs Ray: there a missing Ray is a failure, elsewhere a skip.
if os.environ.get("SSHFACE_REQUIRE_GPU") == "1":
    import ray
else:
    ray = pytest.importorskip("ray")

import sshface  # noqa: E402
import sshface.ray  # noqa: E402
from conftest import assert_same, crops, write_png  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    # Two logical GPUs on a machine that may have none: Ray still sets CUDA_VISIBLE_DEVICES per actor.
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=True,
             runtime_env={"env_vars": {"SSHFACE_REQUIRE_GPU": os.environ.get("SSHFACE_REQUIRE_GPU", "")}})
    yield
    ray.shutdown()


def _rows(ds):
    rows = sorted(ds.take_all(), key=lambda r: r["id"])
    return [
        sshface.Faces(np.asarray(r["boxes"], np.float32).reshape(-1, 4),
                      np.asarray(r["scores"], np.float32).reshape(-1),
                      np.asarray(r["landmarks"], np.float32).reshape(-1, 5, 2))
        for r in rows
    ]


def test_map_batches_over_bytes_and_arrays(cluster, det, tmp_path):
    imgs = crops(20)
    want = det.detect_batch(imgs)
    assert sum(len(f) for f in want) > 0, "some crops must hold faces"
    kwargs = dict(precision="f32")

    # The actors take half a CPU each, so that Ray's read and map tasks still get one of the two CPUs.
    # A column of arrays.
    ds = ray.data.from_items([{"id": i, "image": im} for i, im in enumerate(imgs)])
    out = ds.map_batches(sshface.ray.FaceDetector, fn_constructor_kwargs=kwargs,
                         concurrency=2, num_gpus=1, num_cpus=0.5, batch_size=4)
    for i, (g, w) in enumerate(zip(_rows(out), want)):
        assert_same(g, w, f"arrays row {i}")

    # A column of encoded images (PNG files read by Ray), decoded in Rust inside the actors.
    for i, im in enumerate(imgs):
        write_png(tmp_path / f"{i:02d}.png", im)
    files = ray.data.read_binary_files(str(tmp_path), include_paths=True)
    files = files.map(lambda r: {"id": int(os.path.basename(r["path"])[:2]), "bytes": r["bytes"]})
    out = files.map_batches(sshface.ray.FaceDetector,
                            fn_constructor_kwargs=dict(column="bytes", **kwargs),
                            concurrency=2, num_gpus=1, num_cpus=0.5, batch_size=4)
    for i, (g, w) in enumerate(zip(_rows(out), want)):
        assert_same(g, w, f"bytes row {i}")


def test_actor_gpu_comes_from_cuda_visible_devices(cluster):
    """Each actor sees the CUDA_VISIBLE_DEVICES Ray assigned; on a machine without that GPU the detector takes
    the best adapter and says so in chosen_by (and a RuntimeWarning in the actor's log)."""

    @ray.remote(num_gpus=1, num_cpus=0.5)
    class Probe:
        def info(self):
            import warnings

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                d = sshface.Detector()
            return os.environ.get("CUDA_VISIBLE_DEVICES"), d.adapter_info, [str(w.message) for w in caught]

    probes = [Probe.remote() for _ in range(2)]
    infos = ray.get([p.info.remote() for p in probes])
    assert sorted(v for v, _, _ in infos) == ["0", "1"]
    listed = sshface.adapters()
    nvidia = [a for a in listed if a["name"].lower().startswith("nvidia")]
    for visible, info, warned in infos:
        if nvidia:
            assert f"CUDA_VISIBLE_DEVICES={visible}" in info["chosen_by"], info
        else:
            assert any(f"CUDA_VISIBLE_DEVICES={visible}" in w for w in warned), warned
            assert info["name"] == next(a["name"] for a in listed if a["auto"]), info
