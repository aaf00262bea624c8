"""Balanced batches: every batch holds the same number of rows of every class."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

import numpy as np

from lakefeed.errors import ConfigError
from lakefeed.samplers._common import (
    IntArray,
    check_int,
    cycled_draw,
    encode_labels,
    label_column,
    read_column,
)
from lakefeed.samplers.base import AdvancedSampler

if TYPE_CHECKING:
    from lakefeed.tables.base import Scan, Table

__all__ = ["BalancedBatchSampler"]


class BalancedBatchSampler(AdvancedSampler[list[int]]):
    """Batches of row indices with exactly ``batch_size // n_classes`` rows of every class.

    Pass it as ``batch_sampler=`` to ``torch.utils.data.DataLoader``: it yields lists of
    indices (one per batch) and ``len()`` is the number of batches of this rank.

    One epoch has ``ceil(n_max / per_class)`` batches, where ``n_max`` is the size of the
    largest class and ``per_class = batch_size // n_classes``: enough to show every row of
    the largest class once. Each class's rows come as a sequence of freshly shuffled copies
    of the class, cut where the epoch is full; so a smaller class is oversampled, each of
    its rows appearing ``⌊m / n_c⌋`` or ``⌈m / n_c⌉`` times for ``m`` rows of it per epoch.
    Within a batch the classes are shuffled together. Batches (not indices) are sharded over
    ranks: every rank gets the same number of batches.

    Args:
        labels: One class label per row (ints, strings or bools; 1-D, not empty).
        batch_size: Rows per batch; a multiple of the number of classes.
        seed: Seed of the random draws.
        rank: This process's rank.
        world_size: Number of ranks.
        drop_last: Cut the epoch to a multiple of ``world_size`` batches instead of padding
            it by repeating batches.

    Raises:
        ConfigError: ``labels`` is empty, not 1-D or holds None/NaN, or ``batch_size`` is
            not a positive multiple of the number of classes.

    Example:
        >>> from lakefeed.samplers import BalancedBatchSampler
        >>> labels = [0, 0, 0, 0, 0, 0, 1, 1]
        >>> s = BalancedBatchSampler(labels, batch_size=4, seed=0)
        >>> batches = list(s)
        >>> len(s), [sorted(labels[i] for i in b) for b in batches]
        (3, [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]])
    """

    def __init__(
        self,
        labels: Sequence[object] | np.ndarray,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)
        owner = type(self).__name__
        self._batch_size = check_int("batch_size", batch_size, minimum=1, owner=owner)
        self._classes, self._codes, self._counts = encode_labels(labels, owner=owner)
        k = len(self._counts)
        if self._batch_size % k:
            lower = self._batch_size // k * k
            options = f"{lower} or {lower + k}" if lower else f"{k}"
            msg = (
                f"{owner}: batch_size={self._batch_size} is not a multiple of the {k} classes "
                f"(each batch holds the same number of rows of every class); use batch_size={options}"
            )
            raise ConfigError(msg)
        self._per_class = self._batch_size // k
        self._num_batches = math.ceil(int(self._counts.max()) / self._per_class)
        self._check_shardable()

    @classmethod
    def from_table(
        cls,
        source: Table | Scan,
        column: str,
        *,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> Self:
        """A batch sampler balanced over one label column of a table or scan, reading only that column.

        Index ``i`` is the ``i``-th row in the scan's order (deterministic for a pinned
        snapshot: a Table is read at its current snapshot; a Scan keeps its own snapshot and
        filter, so feed the data from the same scan).

        Args:
            source: A lakefeed Table or Scan.
            column: The label column (integers, strings or bools; no nulls).
            batch_size: Rows per batch; a multiple of the number of classes.
            seed: Seed of the random draws.
            rank: This process's rank.
            world_size: Number of ranks.
            drop_last: Cut the epoch to a multiple of ``world_size`` batches instead of padding it.

        Returns:
            The sampler.

        Raises:
            ColumnNotFoundError: The table has no column ``column``.
            SchemaError: The column holds nulls or is not a label type.
            ConfigError: As for the constructor.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> from lakefeed.samplers import BalancedBatchSampler
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.b", pa.table({"y": [1, 1, 1, 0]}))
            >>> s = BalancedBatchSampler.from_table(t, "y", batch_size=2)
            >>> len(s), all(3 in b for b in s)
            (3, True)
        """
        owner = cls.__name__
        labels = label_column(read_column(source, column, owner=owner), column, owner=owner)
        return cls(labels, batch_size, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)

    @property
    def batch_size(self) -> int:
        """Rows per batch."""
        return self._batch_size

    @property
    def classes(self) -> list[object]:
        """The distinct labels, sorted."""
        return list(self._classes.tolist())

    @property
    def num_batches(self) -> int:
        """Batches per epoch over all ranks (before padding or cutting for the ranks)."""
        return self._num_batches

    def _total(self) -> int:
        return self._num_batches

    def _draw(self, rng: np.random.Generator) -> IntArray:
        k, per, batches = len(self._counts), self._per_class, self._num_batches
        take = np.full(k, batches * per, np.int64)
        rows = cycled_draw(self._codes, self._counts, take, rng)  # grouped by class
        grid = rows.reshape(k, batches, per).transpose(1, 0, 2).reshape(batches, k * per)
        return rng.permuted(grid, axis=1)
