"""sshface: SSH face detection where every layer is a WGSL compute shader, on any GPU (Vulkan, Metal, DX12).

No CUDA, no onnxruntime: the detector opens a GPU through wgpu and says which (``Detector.adapter_info``), so a
GPU that is not used never goes unnoticed. The bundled retinaface-mnv2 weights are inside the package.

>>> import numpy as np, sshface
>>> det = sshface.Detector()                      # bundled retinaface-mnv2, the best GPU
>>> faces = det.detect(np.zeros((64, 64, 3), np.uint8))
>>> len(faces), faces.boxes.shape
(0, (0, 4))
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _sshface
from ._sshface import IMAGE_EXTENSIONS, GpuError, NoAdapterError, __version__

__all__ = [
    "Detector",
    "Face",
    "Faces",
    "IMAGE_EXTENSIONS",
    "GpuError",
    "NoAdapterError",
    "adapters",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]


class Face(NamedTuple):
    """One face: ``box`` (x1, y1, x2, y2) in image pixels, ``score`` in [0, 1], ``landmarks`` five (x, y) points
    (image-left eye, image-right eye, nose, image-left and image-right mouth corner) or ``None``."""

    box: Tuple[float, float, float, float]
    score: float
    landmarks: Optional[Tuple[Tuple[float, float], ...]]

    def to_dict(self) -> dict:
        """The face in the CLI's JSON shape: ``{"box": [...], "score": s, "landmarks": [[x, y], ...] or None}``."""
        lm = None if self.landmarks is None else [list(p) for p in self.landmarks]
        return {"box": list(self.box), "score": self.score, "landmarks": lm}


class Faces:
    """The faces of one image, best score first, as NumPy arrays: ``boxes`` ``[N, 4]`` float32 (x1, y1, x2, y2),
    ``scores`` ``[N]`` float32 and ``landmarks`` ``[N, 5, 2]`` float32, or ``None`` for networks without landmarks
    (ssh-vgg16). ``len()``, indexing and iteration give :class:`Face` records; ``to_list()`` gives dicts."""

    __slots__ = ("boxes", "scores", "landmarks")

    def __init__(self, boxes: np.ndarray, scores: np.ndarray, landmarks: Optional[np.ndarray]):
        self.boxes = boxes
        self.scores = scores
        self.landmarks = landmarks

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, i: int) -> Face:
        box = tuple(float(v) for v in self.boxes[i])
        lm = None
        if self.landmarks is not None:
            lm = tuple((float(x), float(y)) for x, y in self.landmarks[i])
        return Face(box, float(self.scores[i]), lm)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Face]:
        return (self[i] for i in range(len(self)))

    def to_list(self) -> List[dict]:
        """Each face as a dict in the CLI's JSON shape (``sshface detect``'s ``faces`` array)."""
        return [f.to_dict() for f in self]

    def __repr__(self) -> str:
        return f"Faces({len(self)} faces, scores={np.round(self.scores, 4).tolist()})"


def _faces(t: Any) -> Faces:
    return Faces(*t)


def adapters(backend: Optional[str] = None) -> List[dict]:
    """Every GPU adapter wgpu sees (on ``backend``, e.g. ``"vulkan"``, else the default backends): dicts with
    ``index``, ``name``, ``backend``, ``type``, ``pci_bus``, ``driver`` and ``auto`` (what ``device="auto"``
    opens). The same list and indexes as ``sshface adapters``."""
    return _sshface.adapters(backend)


class Detector:
    """A face detector on one GPU. Build it once (it compiles its shaders and uploads the weights) and call it
    from as many threads as you like: every call releases the GIL while it decodes and while the GPU works, and
    calls on images of the same size share one plan, taking turns on it.

    Args:
        model: ``"retinaface-mnv2"`` (bundled weights, 5 landmarks) or ``"ssh-vgg16"`` (needs ``weights``).
        weights: a ``.safetensors`` file from ``sshface convert``; ``None``: the bundled retinaface-mnv2 weights.
        score: keep faces scoring above this (0.5).
        nms: NMS IoU threshold; ``None``: the model's (0.4 retinaface-mnv2, 0.3 ssh-vgg16).
        precision: ``"auto"``, ``"f32"``, ``"f16"`` or ``"f16-coop"`` (tensor cores through cooperative matrices).
        device: ``"auto"``: the GPU a scheduler assigned in ``CUDA_VISIBLE_DEVICES`` (Ray, Slurm, Kubernetes;
            also ``ROCR_VISIBLE_DEVICES``, ``HIP_VISIBLE_DEVICES``, ``ZE_AFFINITY_MASK``), mapped to wgpu's
            adapters as ``sshface detect --device auto`` does, else the best adapter; or an index of
            :func:`adapters`. When the assigned GPU is not visible to wgpu (no Vulkan driver for it, or Ray's
            logical GPUs on a machine without one) the best adapter is used with a ``RuntimeWarning`` — unless
            ``strict_device=True``, which raises :class:`NoAdapterError` as the CLI does.
        adapter: a case-insensitive substring of the adapter name.
        backend: ``"vulkan"``, ``"metal"``, ``"dx12"`` or ``"gl"`` (default: ``WGPU_BACKEND``, else all).
        gpu_timeout: seconds a GPU submit may take before :class:`GpuError` (``None``: 600 on GPUs, 3600 on
            software adapters, as ``sshface detect --gpu-timeout``). After a timeout or a lost device the detector
            keeps raising ``GpuError``: build a new one.

    Raises:
        ValueError: bad options or weights. NoAdapterError / GpuError (RuntimeError): no usable GPU.
    """

    def __init__(
        self,
        model: str = "retinaface-mnv2",
        weights: Optional[PathLike] = None,
        score: Optional[float] = 0.5,
        nms: Optional[float] = None,
        precision: str = "auto",
        device: Union[str, int] = "auto",
        adapter: Optional[str] = None,
        backend: Optional[str] = None,
        *,
        strict_device: bool = False,
        gpu_timeout: Optional[float] = None,
    ) -> None:
        self._native = _sshface.Detector(
            model=model,
            weights=None if weights is None else os.fspath(weights),
            score=score,
            nms=nms,
            precision=precision,
            device=device,
            adapter=adapter,
            backend=backend,
            strict_device=strict_device,
            gpu_timeout=gpu_timeout,
        )
        warning = self._native.selection_warning
        if warning:
            warnings.warn(f"sshface: {warning}", RuntimeWarning, stacklevel=2)

    @property
    def model(self) -> str:
        """The network: ``"retinaface-mnv2"`` or ``"ssh-vgg16"``."""
        return self._native.model

    @property
    def adapter_info(self) -> dict:
        """The adapter in use: ``name``, ``backend``, ``type``, ``pci_bus``, ``driver``, ``chosen_by`` (why this
        one), ``precision`` (what runs) and ``describe`` (the CLI's stderr line)."""
        return self._native.adapter_info

    def detect(
        self,
        image: np.ndarray,
        *,
        score: Optional[float] = None,
        nms: Optional[float] = None,
        max_faces: Optional[int] = None,
    ) -> Faces:
        """Faces in one image: a NumPy ``uint8`` array ``[H, W, 3]`` RGB (any strides: crops, flips and
        ``bgr[..., ::-1]`` work), ``[H, W, 4]`` RGBA or ``[H, W]`` grayscale. ``score``/``nms`` override the
        detector's thresholds for this call; ``max_faces`` keeps the best-scoring ones.

        Raises ``ValueError`` naming the expected dtype and shape for anything else."""
        return self.detect_batch([image], score=score, nms=nms, max_faces=max_faces)[0]

    def detect_batch(
        self,
        images: Sequence[np.ndarray],
        *,
        score: Optional[float] = None,
        nms: Optional[float] = None,
        max_faces: Optional[int] = None,
        batch_size: int = 8,
    ) -> List[Faces]:
        """Faces in each image (arrays as for :meth:`detect`), in input order. Images of equal size run as GPU
        batches of up to ``batch_size``; each image gets exactly its single-image result."""
        out = self._native.detect_arrays(list(images), score, nms, max_faces, batch_size)
        return [_faces(t) for t in out]

    def detect_paths(
        self,
        paths: Iterable[PathLike],
        *,
        score: Optional[float] = None,
        nms: Optional[float] = None,
        max_faces: Optional[int] = None,
        batch_size: int = 8,
        threads: int = 0,
        on_error: str = "raise",
    ) -> List[Optional[Faces]]:
        """Decodes image files in Rust on ``threads`` threads (0: up to 8), without the GIL and a window ahead of
        the GPU, and detects faces in each (EXIF orientation applied; coordinates in the oriented image). A
        truncated JPEG or PNG is detected on what decoded, with a ``RuntimeWarning`` naming it.

        ``on_error="raise"``: an unreadable file raises ``ValueError`` naming it (``OSError`` when it cannot be
        opened), after the others were processed; ``"none"``: its entry is ``None`` and a ``RuntimeWarning``
        names it, every other result is kept."""
        items = [os.fspath(p) for p in paths]
        return self._encoded(items, None, score, nms, max_faces, batch_size, threads, on_error)

    def detect_bytes(
        self,
        blobs: Iterable[bytes],
        labels: Optional[Sequence[str]] = None,
        *,
        score: Optional[float] = None,
        nms: Optional[float] = None,
        max_faces: Optional[int] = None,
        batch_size: int = 8,
        threads: int = 0,
        on_error: str = "raise",
    ) -> List[Optional[Faces]]:
        """As :meth:`detect_paths` for encoded images in memory (JPEG, PNG, WebP, BMP, TIFF, GIF bytes);
        ``labels`` name them in errors."""
        items = [bytes(b) for b in blobs]
        names = None if labels is None else [str(x) for x in labels]
        return self._encoded(items, names, score, nms, max_faces, batch_size, threads, on_error)

    def _encoded(self, items, labels, score, nms, max_faces, batch_size, threads, on_error):
        if on_error not in ("raise", "none"):
            raise ValueError(f"on_error={on_error!r}: expected 'raise' or 'none'")
        res, partial = self._native.detect_encoded(items, labels, score, nms, max_faces, batch_size, threads)
        for w in partial:
            warnings.warn(f"sshface: warning: {w}", RuntimeWarning, stacklevel=3)
        out: List[Optional[Faces]] = []
        for r in res:
            if isinstance(r, BaseException):
                if on_error == "raise":
                    raise r
                warnings.warn(f"sshface: {r}", RuntimeWarning, stacklevel=3)
                out.append(None)
            else:
                out.append(_faces(r))
        return out

    def __repr__(self) -> str:
        info = self.adapter_info
        return f"sshface.Detector({self.model!r}, adapter={info['name']!r}, precision={info['precision']!r})"

