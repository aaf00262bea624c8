"""JAX: batches as jax arrays, placed on a device (or sharded) with ``jax.device_put``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from lakefeed._utils import import_optional

if TYPE_CHECKING:
    from lakefeed.loader import Loader

__all__ = ["JaxBatches", "to_jax"]


def _jax() -> Any:
    return import_optional("jax", extra="jax", purpose="loader.jax()")


def to_jax(batch: dict[str, Any], *, device: Any = None) -> dict[str, Any]:
    """Put each numeric array of a numpy batch on ``device`` (a ``jax.Device`` or ``Sharding``).

    Arrays of Python objects (strings) stay numpy arrays; a ``(values, offsets)`` pair of a
    variable-length list column becomes a pair of jax arrays.

    Example:
        >>> import numpy as np
        >>> out = to_jax({"features": np.ones((2, 3), np.float32)})
        >>> out["features"].shape, str(out["features"].dtype)
        ((2, 3), 'float32')
    """
    jax = _jax()

    def put(v: np.ndarray) -> Any:
        return v if v.dtype == object else jax.device_put(v, device)

    return {k: tuple(put(a) for a in v) if isinstance(v, tuple) else put(v) for k, v in batch.items()}


class JaxBatches:
    """Iterate a :class:`~lakefeed.Loader` as dicts of jax arrays.

    The transfer of batch ``i + 1`` is started (in a thread of the loader's, see
    :meth:`~lakefeed.Loader.iterate`) before batch ``i`` is handed over, so it overlaps the step
    that consumes batch ``i`` (``jax.device_put`` is asynchronous). The loader counts a batch
    only when it is handed over, so ``state_dict()`` stays an exact resume point.
    """

    def __init__(self, loader: Loader, *, device: Any = None) -> None:
        _jax()
        self.loader = loader
        self.device = device

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.loader.iterate(self._put, ahead=1)

    def _put(self, batch: dict[str, Any]) -> dict[str, Any]:
        return to_jax(batch, device=self.device)

    def __len__(self) -> int:
        return len(self.loader)
