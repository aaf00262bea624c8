"""Stratified sampling: every prefix of an epoch keeps the class shares asked for."""

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

__all__ = ["StratifiedSampler"]


class StratifiedSampler(AdvancedSampler[int]):
    """Row indices drawn class by class, interleaved so that every prefix keeps the shares.

    How many rows of each class one epoch holds:

    * ``proportional=True``, ``num_samples_per_class=None`` (default): every row exactly
      once, so the epoch keeps the labels' natural class shares.
    * ``proportional=False``, ``num_samples_per_class=k``: ``k`` rows of every class.
    * ``proportional=False``, ``num_samples_per_class=None``: as many rows of every class as
      the largest class has (every row of the largest class once, the others oversampled).
    * ``proportional=True``, ``num_samples_per_class=k``: ``k × n_classes`` rows in total,
      split over the classes in their natural shares (largest-remainder rounding), i.e. a
      stratified sample that averages ``k`` rows per class. Every class must get at least
      one row, otherwise a ConfigError says how large ``k`` must be.

    A class asked for no more rows than it has is drawn without replacement. A class asked
    for more is oversampled by cycling through freshly shuffled copies of it: each of its
    rows appears ``⌊k_c / n_c⌋`` or ``⌈k_c / n_c⌉`` times (never missing one, unlike drawing
    with replacement).

    The order interleaves the classes: the ``j``-th of the ``k_c`` rows drawn from class
    ``c`` is placed at the random position key ``(j + u) / k_c`` with ``u`` uniform in
    ``[0, 1)``. So any prefix of the epoch holds, for every class, its exact share of the
    prefix to within one row plus the number of classes. A window of the epoch is the
    difference of two prefixes, so each rank's block, and every prefix of it, keeps the
    shares to within twice that.

    Args:
        labels: One class label per row (ints, strings or bools; 1-D, not empty).
        num_samples_per_class: See above (an int >= 1, or None).
        proportional: Keep the natural class shares (True) or give every class the same
            number of rows (False).
        seed: Seed of the random draws.
        rank: This process's rank.
        world_size: Number of ranks.
        drop_last: Cut the epoch to a multiple of ``world_size`` instead of padding it.

    Raises:
        ConfigError: ``labels`` is empty, not 1-D or holds None/NaN; ``num_samples_per_class``
            is below 1; or with ``proportional=True`` a class would get zero rows.

    Example:
        >>> from lakefeed.samplers import StratifiedSampler
        >>> labels = ["a"] * 6 + ["b"] * 2
        >>> s = StratifiedSampler(labels, seed=0)
        >>> order = list(s)
        >>> sorted(order) == list(range(8)), [labels[i] for i in order[:4]].count("b")
        (True, 1)
        >>> even = StratifiedSampler(labels, num_samples_per_class=3, proportional=False, seed=0)
        >>> [labels[i] for i in even].count("b")
        3
    """

    def __init__(
        self,
        labels: Sequence[object] | np.ndarray,
        num_samples_per_class: int | None = None,
        proportional: bool = True,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)
        owner = type(self).__name__
        if not isinstance(proportional, bool):
            msg = f"{owner}: proportional must be True or False, got {proportional!r}"
            raise ConfigError(msg)
        per_class = (
            None
            if num_samples_per_class is None
            else check_int("num_samples_per_class", num_samples_per_class, minimum=1, owner=owner)
        )
        self._classes, self._codes, self._counts = encode_labels(labels, owner=owner)
        self._proportional = proportional
        self._num_samples_per_class = per_class
        self._take = self._allocate(per_class, proportional)
        self._check_shardable()

    @classmethod
    def from_table(
        cls,
        source: Table | Scan,
        column: str,
        *,
        num_samples_per_class: int | None = None,
        proportional: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> Self:
        """A sampler stratified by one label column of a table or scan, reading only that column.

        Index ``i`` is the ``i``-th row in the scan's order (deterministic for a pinned
        snapshot: a Table is read at its current snapshot; a Scan keeps its own snapshot and
        filter, so feed the data from the same scan).

        Args:
            source: A lakefeed Table or Scan.
            column: The label column (integers, strings or bools; no nulls).
            num_samples_per_class: As for the constructor.
            proportional: As for the constructor.
            seed: Seed of the random draws.
            rank: This process's rank.
            world_size: Number of ranks.
            drop_last: Cut the epoch to a multiple of ``world_size`` instead of padding it.

        Returns:
            The sampler.

        Raises:
            ColumnNotFoundError: The table has no column ``column``.
            SchemaError: The column holds nulls or is not a label type.
            ConfigError: As for the constructor.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> from lakefeed.samplers import StratifiedSampler
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.s", pa.table({"label": ["x", "y", "x", "x"]}))
            >>> s = StratifiedSampler.from_table(t, "label")
            >>> len(s), s.classes
            (4, ['x', 'y'])
        """
        owner = cls.__name__
        labels = label_column(read_column(source, column, owner=owner), column, owner=owner)
        return cls(
            labels,
            num_samples_per_class,
            proportional,
            seed=seed,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
        )

    @property
    def classes(self) -> list[object]:
        """The distinct labels, sorted."""
        return list(self._classes.tolist())

    @property
    def class_counts(self) -> dict[object, int]:
        """Rows of each class in the labels."""
        return dict(zip(self._classes.tolist(), self._counts.tolist(), strict=True))

    @property
    def samples_per_class(self) -> dict[object, int]:
        """Rows of each class drawn per epoch (over all ranks)."""
        return dict(zip(self._classes.tolist(), self._take.tolist(), strict=True))

    def _allocate(self, per_class: int | None, proportional: bool) -> IntArray:
        counts = self._counts
        if not proportional:
            return np.full(len(counts), int(counts.max()) if per_class is None else per_class, np.int64)
        if per_class is None:
            return counts.copy()
        n, total = int(counts.sum()), per_class * len(counts)
        quota = counts * (total / n)
        take: IntArray = np.floor(quota).astype(np.int64)
        short = total - int(take.sum())
        if short:
            take[np.argsort(-(quota - take), kind="stable")[:short]] += 1
        empty = np.flatnonzero(take == 0)
        if empty.size:
            c = int(empty[0])
            need = math.ceil(n / (len(counts) * int(counts.min())))
            msg = (
                f"{type(self).__name__}: with proportional=True and num_samples_per_class={per_class}, class "
                f"{self._classes.tolist()[c]!r} ({counts[c]} of {n} rows) gets 0 of the {total} rows drawn per epoch; "
                f"use num_samples_per_class >= {need} or proportional=False"
            )
            raise ConfigError(msg)
        return take

    def _total(self) -> int:
        return int(self._take.sum())

    def _draw(self, rng: np.random.Generator) -> IntArray:
        rows = cycled_draw(self._codes, self._counts, self._take, rng)  # grouped by class
        klass = np.repeat(np.arange(len(self._take)), self._take)
        starts = np.zeros(len(self._take), np.int64)
        np.cumsum(self._take[:-1], out=starts[1:])
        position = np.arange(len(rows), dtype=np.int64) - starts[klass]
        keys = (position + rng.random(len(rows))) / self._take[klass]
        return rows[np.argsort(keys, kind="stable")]
