"""Ray Data: :class:`FaceDetector`, a callable class for ``Dataset.map_batches``.

>>> import ray, sshface.ray
>>> ds = ray.data.read_binary_files("photos/", include_paths=True)
>>> ds = ds.map_batches(sshface.ray.FaceDetector, fn_constructor_kwargs={"column": "bytes"},
...                     concurrency=4, num_gpus=1, batch_size=32)
>>> ds.select_columns(["path", "scores"]).take(2)

Each actor builds its own :class:`sshface.Detector` in its constructor (nothing GPU-side is pickled) on the GPU
Ray assigned it: Ray sets ``CUDA_VISIBLE_DEVICES`` per actor and ``device="auto"`` maps it to a wgpu adapter, as
``sshface detect --device auto`` does. The detector releases the GIL while it decodes and while the GPU works.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

import numpy as np

from . import Detector, Faces

__all__ = ["FaceDetector"]


def _objects(items: List[Any]) -> np.ndarray:
    """A 1-D object array of per-row values (NumPy would otherwise try to stack equal-shaped arrays)."""
    out = np.empty(len(items), dtype=object)
    for i, v in enumerate(items):
        out[i] = v
    return out


class FaceDetector:
    """Adds face columns to each batch: ``boxes`` (per row a ``[N, 4]`` float32 array, x1, y1, x2, y2 in image
    pixels), ``scores`` (``[N]``) and, for models with landmarks, ``landmarks`` (``[N, 5, 2]``).

    Args:
        column: the input column: encoded images (``bytes``, e.g. ``read_binary_files``' ``"bytes"``) or uint8
            arrays ``[H, W, 3]``/``[H, W, 4]``/``[H, W]`` (e.g. ``read_images``' ``"image"``). ``None``:
            ``"image"`` when the batch has it, else ``"bytes"``.
        on_error: for undecodable bytes, ``"raise"`` or ``"none"`` (empty results for that row and a warning).
        batch_size: GPU batch of equal-size images within a Ray batch.
        max_faces: keep at most this many faces per image, best first.
        **detector: the keyword arguments of :class:`sshface.Detector` (model, weights, score, nms, precision,
            device, adapter, backend, strict_device).
    """

    def __init__(
        self,
        column: Optional[str] = None,
        *,
        on_error: str = "raise",
        batch_size: int = 8,
        max_faces: Optional[int] = None,
        **detector: Any,
    ) -> None:
        self.column = column
        self.on_error = on_error
        self.batch_size = batch_size
        self.max_faces = max_faces
        self.detector = Detector(**detector)

    def _input(self, batch: Any) -> str:
        if self.column is not None:
            if self.column not in batch:
                raise ValueError(
                    f"sshface.ray.FaceDetector: the batch has no column {self.column!r} "
                    f"(columns: {sorted(batch.keys())})"
                )
            return self.column
        for name in ("image", "bytes"):
            if name in batch:
                return name
        raise ValueError(
            "sshface.ray.FaceDetector: no 'image' or 'bytes' column in the batch "
            f"(columns: {sorted(batch.keys())}); pass column=..."
        )

    def _detect(self, values: List[Any]) -> List[Faces]:
        empty = Faces(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0, 5, 2), np.float32) if self._landmarks else None,
        )
        if values and isinstance(values[0], (bytes, bytearray, memoryview)):
            res = self.detector.detect_bytes(
                [bytes(v) for v in values],
                batch_size=self.batch_size,
                max_faces=self.max_faces,
                on_error=self.on_error,
            )
            return [empty if f is None else f for f in res]
        return self.detector.detect_batch(
            [np.asarray(v) for v in values], batch_size=self.batch_size, max_faces=self.max_faces
        )

    @property
    def _landmarks(self) -> bool:
        return self.detector._native.has_landmarks

    def __call__(self, batch: Union[Dict[str, np.ndarray], Any]) -> Union[Dict[str, np.ndarray], Any]:
        column = self._input(batch)
        values = list(batch[column])
        faces = self._detect(values)
        cols = {
            "boxes": [f.boxes for f in faces],
            "scores": [f.scores for f in faces],
        }
        if self._landmarks:
            cols["landmarks"] = [f.landmarks for f in faces]
        if isinstance(batch, dict):
            out = dict(batch)
            for k, v in cols.items():
                out[k] = _objects(v)
            return out
        # A pandas DataFrame (batch_format="pandas").
        out = batch.copy()
        for k, v in cols.items():
            out[k] = v
        return out
