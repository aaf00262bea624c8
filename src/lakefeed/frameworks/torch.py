"""PyTorch: batches as tensors (pinned, copied to a device without blocking)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from lakefeed._utils import import_optional

if TYPE_CHECKING:
    from lakefeed.loader import Loader

__all__ = ["TorchBatches", "to_tensors"]


def _torch() -> Any:
    return import_optional("torch", extra="torch", purpose="loader.torch()")


def to_tensors(batch: dict[str, np.ndarray], *, device: Any = None, pin_memory: bool = False) -> dict[str, Any]:
    """Turn a numpy batch into tensors: shared memory, pinned if asked, then moved to ``device``.

    Arrays of Python objects (strings) stay numpy arrays.

    Example:
        >>> import numpy as np
        >>> out = to_tensors({"features": np.ones((2, 3), np.float32), "name": np.array(["a", "b"], object)})
        >>> tuple(out["features"].shape), type(out["name"]).__name__
        ((2, 3), 'ndarray')
    """
    torch = _torch()
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if value.dtype == object:
            out[key] = value
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if pin_memory:
            tensor = tensor.pin_memory()
        if device is not None:
            tensor = tensor.to(device, non_blocking=pin_memory)
        out[key] = tensor
    return out


class TorchBatches:
    """Iterate a :class:`~lakefeed.Loader` as dicts of torch tensors.

    ``pin_memory`` defaults to True when ``device`` is a CUDA device; host-to-device copies
    are then asynchronous and overlap the model's work.
    """

    def __init__(self, loader: Loader, *, device: Any = None, pin_memory: bool | None = None) -> None:
        torch = _torch()
        self.loader = loader
        self.device = torch.device(device) if device is not None else None
        is_cuda = self.device is not None and self.device.type == "cuda"
        self.pin_memory = bool(is_cuda if pin_memory is None else pin_memory and torch.cuda.is_available())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.loader:
            yield to_tensors(batch, device=self.device, pin_memory=self.pin_memory)

    def __len__(self) -> int:
        return len(self.loader)
