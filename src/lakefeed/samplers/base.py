"""The sampler base class, and how one epoch's draw is sharded over ranks.

A sampler's draw for one epoch depends only on ``(seed, epoch)``; the draw is then padded
by repeating its head (as :class:`torch.utils.data.distributed.DistributedSampler` pads), or
cut with ``drop_last=True``, to a multiple of ``world_size``, and rank ``r`` takes the
``r``-th of ``world_size`` equal contiguous blocks. So the order a rank sees is a pure
function of ``(seed, epoch, rank, world_size)``, every rank yields the same number of
items, and the ranks' blocks laid end to end are the unsharded draw. Contiguous blocks
(rather than torch's stride) keep what holds for every window of the draw, such as the
stratified sampler's class shares, true for every prefix of every rank.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Generic, TypeVar, cast

import numpy as np

from lakefeed.errors import ConfigError
from lakefeed.samplers._common import IntArray, check_int

__all__ = ["AdvancedSampler"]

T_co = TypeVar("T_co", covariant=True)


class AdvancedSampler(ABC, Generic[T_co]):
    """Base of lakefeed's samplers: seeded, epoch-aware and sharded over ranks.

    A sampler is an iterable with ``len()``, so it can be passed as ``sampler=`` (or, for
    :class:`BalancedBatchSampler`, ``batch_sampler=``) to ``torch.utils.data.DataLoader``;
    lakefeed itself never imports torch. The order is a pure function of
    ``(seed, epoch, rank, world_size)`` (and the sampler's data): iterating twice gives the
    same indices. Call :meth:`set_epoch` at the start of every epoch, as with torch's
    ``DistributedSampler``, to get a new order.

    Each epoch's draw is made once for all ranks and then sharded: padded by repeating its
    head to a multiple of ``world_size`` (or, with ``drop_last=True``, cut to one), and rank
    ``r`` yields the ``r``-th of ``world_size`` equal contiguous blocks of it.

    Args:
        seed: Seed of the random draws (an int >= 0).
        rank: This process's rank, ``0 <= rank < world_size``.
        world_size: Number of ranks sharing the epoch.
        drop_last: Cut the draw to a multiple of ``world_size`` instead of padding it.

    Raises:
        ConfigError: ``seed``, ``rank`` or ``world_size`` is invalid.

    Example:
        >>> import numpy as np
        >>> from lakefeed.samplers import AdvancedSampler
        >>> class Every(AdvancedSampler[int]):
        ...     def _total(self) -> int:
        ...         return 5
        ...     def _draw(self, rng: np.random.Generator) -> np.ndarray:
        ...         return rng.permutation(5)
        >>> s = Every(seed=1, rank=1, world_size=2)
        >>> both = list(Every(seed=1, rank=0, world_size=2)) + list(s)  # 5 padded to 6
        >>> len(s), list(s) == list(s), len(both), sorted(set(both))
        (3, True, 6, [0, 1, 2, 3, 4])
    """

    def __init__(self, *, seed: int = 0, rank: int = 0, world_size: int = 1, drop_last: bool = False) -> None:
        owner = type(self).__name__
        self._seed = check_int("seed", seed, minimum=0, owner=owner)
        self._world_size = check_int("world_size", world_size, minimum=1, owner=owner)
        self._rank = check_int("rank", rank, minimum=0, owner=owner)
        if self._rank >= self._world_size:
            msg = (
                f"{owner}: rank={self._rank} is not below world_size={self._world_size}; "
                f"ranks count from 0 to world_size - 1"
            )
            raise ConfigError(msg)
        if not isinstance(drop_last, bool):
            msg = f"{owner}: drop_last must be True or False, got {drop_last!r}"
            raise ConfigError(msg)
        self._drop_last = drop_last
        self._epoch = 0

    # -- what a sampler provides ----------------------------------------------------------------

    @abstractmethod
    def _total(self) -> int:
        """Length of one epoch's unsharded draw (its first axis)."""

    @abstractmethod
    def _draw(self, rng: np.random.Generator) -> IntArray:
        """One epoch's unsharded draw; axis 0 is what is sharded over ranks."""

    # -- the public contract --------------------------------------------------------------------

    @property
    def seed(self) -> int:
        """Seed of the random draws."""
        return self._seed

    @property
    def epoch(self) -> int:
        """The epoch whose order :meth:`__iter__` yields (0 until :meth:`set_epoch`)."""
        return self._epoch

    @property
    def rank(self) -> int:
        """This process's rank."""
        return self._rank

    @property
    def world_size(self) -> int:
        """Number of ranks sharing each epoch."""
        return self._world_size

    @property
    def drop_last(self) -> bool:
        """Whether the draw is cut (True) or padded (False) to a multiple of ``world_size``."""
        return self._drop_last

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields.

        Args:
            epoch: The epoch number (an int >= 0); each epoch has its own order.

        Raises:
            ConfigError: ``epoch`` is not an int >= 0.

        Example:
            >>> from lakefeed.samplers import StratifiedSampler
            >>> s = StratifiedSampler([0, 1] * 50, seed=3)
            >>> first = list(s)
            >>> s.set_epoch(1)
            >>> list(s) != first, sorted(s) == sorted(first)
            (True, True)
        """
        self._epoch = check_int("epoch", epoch, minimum=0, owner=type(self).__name__)

    def indices(self) -> IntArray:
        """This rank's share of the current epoch's draw, as a numpy array.

        Returns:
            The indices :meth:`__iter__` yields (for a batch sampler, one row per batch).

        Example:
            >>> from lakefeed.samplers import WeightedRandomSampler
            >>> s = WeightedRandomSampler([0.0, 1.0, 1.0], num_samples=4, seed=0)
            >>> s.indices().shape, bool((s.indices() > 0).all())
            ((4,), True)
        """
        rng = np.random.default_rng([self._seed, self._epoch])
        return _shard(self._draw(rng), self._rank, self._world_size, drop_last=self._drop_last)

    def __iter__(self) -> Iterator[T_co]:
        return iter(cast("list[T_co]", self.indices().tolist()))

    def __len__(self) -> int:
        return _shard_size(self._total(), self._world_size, drop_last=self._drop_last)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(total={self._total()}, seed={self._seed}, epoch={self._epoch}, "
            f"rank={self._rank}, world_size={self._world_size}, drop_last={self._drop_last})"
        )

    def _check_shardable(self) -> None:
        """Called by subclasses once ``_total()`` is known: every rank must get something."""
        if self._drop_last and self._total() < self._world_size:
            msg = (
                f"{type(self).__name__}: drop_last=True over world_size={self._world_size} ranks leaves "
                f"nothing, the epoch has only {self._total()}; use drop_last=False (pads by repetition)"
            )
            raise ConfigError(msg)


def _shard_size(total: int, world_size: int, *, drop_last: bool) -> int:
    """Items each rank gets from a draw of ``total``."""
    return total // world_size if drop_last else -(-total // world_size)


def _shard(draw: IntArray, rank: int, world_size: int, *, drop_last: bool) -> IntArray:
    """Rank ``rank``'s contiguous block of ``draw`` (padded by repeating its head, or cut)."""
    per_rank = _shard_size(len(draw), world_size, drop_last=drop_last)
    start, stop = rank * per_rank, (rank + 1) * per_rank
    if stop > len(draw):  # the padding: the head again (wrapping as often as needed)
        return draw[np.arange(start, stop) % len(draw)]
    return draw[start:stop]
