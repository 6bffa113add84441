"""Type stubs of the Rust extension module; the public API is the package `sshface` (see its docstrings)."""

from os import PathLike
from typing import List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str
IMAGE_EXTENSIONS: List[str]  # the extensions `sshface detect` takes from a folder (jpg, png, ...)

class GpuError(RuntimeError):
    """A GPU or device failure: no usable adapter, device creation, a GPU validation or out-of-memory error."""

class NoAdapterError(GpuError):
    """No GPU adapter matches the request (or none is installed)."""

_Arrays = Tuple[
    npt.NDArray[np.float32],  # boxes [N, 4]
    npt.NDArray[np.float32],  # scores [N]
    Optional[npt.NDArray[np.float32]],  # landmarks [N, 5, 2] or None
]

def adapters(backend: Optional[str] = None) -> List[dict]: ...

class Detector:
    def __init__(
        self,
        model: str = "retinaface-mnv2",
        weights: Optional[Union[str, PathLike[str]]] = None,
        score: Optional[float] = None,
        nms: Optional[float] = None,
        precision: str = "auto",
        device: Optional[Union[str, int]] = None,
        adapter: Optional[str] = None,
        backend: Optional[str] = None,
        strict_device: bool = False,
        gpu_timeout: Optional[float] = None,
    ) -> None: ...
    def detect_arrays(
        self,
        images: List[npt.NDArray[np.uint8]],
        score: Optional[float] = None,
        nms: Optional[float] = None,
        max_faces: Optional[int] = None,
        batch_size: int = 8,
    ) -> List[_Arrays]: ...
    def detect_encoded(
        self,
        items: List[Union[bytes, str]],
        labels: Optional[List[str]] = None,
        score: Optional[float] = None,
        nms: Optional[float] = None,
        max_faces: Optional[int] = None,
        batch_size: int = 8,
        threads: int = 0,
    ) -> Tuple[List[Union[_Arrays, Exception]], List[str]]: ...
    @property
    def model(self) -> str: ...
    @property
    def has_landmarks(self) -> bool: ...
    @property
    def adapter_info(self) -> dict: ...
    @property
    def selection_warning(self) -> Optional[str]: ...
