"""Hard example mining: a fixed share of every epoch comes from the hardest rows."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Self

import numpy as np

from lakefeed.errors import ConfigError
from lakefeed.samplers._common import (
    FloatArray,
    IntArray,
    as_float_array,
    check_int,
    numeric_column,
    read_column,
)
from lakefeed.samplers.base import AdvancedSampler

if TYPE_CHECKING:
    from lakefeed.tables.base import Scan, Table

__all__ = ["HardExampleMiningSampler"]


class HardExampleMiningSampler(AdvancedSampler[int]):
    """Every epoch, a ``hard_ratio`` share of the indices come from the hardest rows.

    With ``n = num_samples`` rows and ``h = ceil(hard_ratio * n)``, one epoch is ``n``
    indices made of two parts:

    * the hard part: the hard set, i.e. the ``h`` rows with the highest difficulty score
      (ties broken at random, anew each epoch), each exactly once;
    * the uniform part: ``n - h`` distinct rows drawn uniformly from *all* rows.

    Both parts are shuffled together. So exactly ``h`` of the ``n`` indices are draws from
    the hard set, and a hard row is expected ``(2n - h) / n`` times per epoch against
    ``(n - h) / n`` for the others: about 2.4 times as often at ``hard_ratio=0.3``. In the
    output the expected share of hard-set indices is ``r + (1 - r) * r`` for ``r = h / n``
    (the uniform part lands in the hard set too).

    Why a top-``h`` set rather than sampling proportional to the scores: ranking needs no
    assumption about the scale of the scores (losses, margins, negative log-likelihoods
    all work, negative ones included), one outlier cannot take over the epoch, and the
    share of hard draws is exact rather than expected. ``hard_ratio=0`` gives a plain
    shuffle of all rows (so does ``hard_ratio=1``).

    Scores come from ``difficulty_scores``, else from calling ``difficulty_fn(i)`` for every
    row ``i`` once, here; with neither, every row is equally hard until
    :meth:`update_difficulty_scores` (the hard set is then a random one each epoch). With
    several ranks, every rank must hold the same scores (gather the losses before updating).

    Args:
        num_samples: The dataset size ``n``; also the indices drawn per epoch (>= 1).
        difficulty_scores: One finite score per row; higher means harder.
        difficulty_fn: Computes the score of row ``i``; used when ``difficulty_scores`` is None.
        hard_ratio: Share of every epoch drawn from the hard set, in ``[0, 1]``.
        seed: Seed of the random draws.
        rank: This process's rank.
        world_size: Number of ranks.
        drop_last: Cut the epoch to a multiple of ``world_size`` instead of padding it.

    Raises:
        ConfigError: ``num_samples`` is below 1, ``hard_ratio`` is outside ``[0, 1]``, or the
            scores are not ``num_samples`` finite numbers.

    Example:
        >>> from lakefeed.samplers import HardExampleMiningSampler
        >>> s = HardExampleMiningSampler(10, difficulty_scores=[0.0] * 9 + [5.0], hard_ratio=0.1, seed=0)
        >>> order = list(s)
        >>> len(order), 9 in order, s.hard_set().tolist()
        (10, True, [9])
    """

    def __init__(
        self,
        num_samples: int,
        difficulty_scores: Sequence[float] | np.ndarray | None = None,
        difficulty_fn: Callable[[int], float] | None = None,
        hard_ratio: float = 0.3,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)
        owner = type(self).__name__
        self._n = check_int("num_samples", num_samples, minimum=1, owner=owner)
        if isinstance(hard_ratio, bool) or not isinstance(hard_ratio, int | float | np.floating | np.integer):
            msg = f"{owner}: hard_ratio must be a number in [0, 1], got {hard_ratio!r}"
            raise ConfigError(msg)
        if not 0.0 <= float(hard_ratio) <= 1.0:
            msg = f"{owner}: hard_ratio must be in [0, 1] (the share of each epoch from hard rows), got {hard_ratio}"
            raise ConfigError(msg)
        self._hard_ratio = float(hard_ratio)
        # ceil(ratio * n) of the ratio as written: 0.07 * 100 is 7.000000000000001 in binary
        self._num_hard = math.ceil(Fraction(repr(self._hard_ratio)) * self._n)
        if difficulty_scores is None and difficulty_fn is not None:
            if not callable(difficulty_fn):
                msg = f"{owner}: difficulty_fn must be a function of the row index, got {difficulty_fn!r}"
                raise ConfigError(msg)
            try:
                difficulty_scores = np.fromiter((difficulty_fn(i) for i in range(self._n)), np.float64, self._n)
            except (TypeError, ValueError) as exc:
                msg = f"{owner}: difficulty_fn(i) must return a number for every row i: {exc}"
                raise ConfigError(msg) from exc
        self._scores = np.zeros(self._n) if difficulty_scores is None else self._check_scores(difficulty_scores)
        self._check_shardable()

    @classmethod
    def from_table(
        cls,
        source: Table | Scan,
        column: str,
        *,
        hard_ratio: float = 0.3,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> Self:
        """A sampler whose difficulty scores are one column of a table or scan (only it is read).

        ``num_samples`` is the number of rows. Index ``i`` is the ``i``-th row in the scan's
        order (deterministic for a pinned snapshot: a Table is read at its current snapshot;
        a Scan keeps its own snapshot and filter, so feed the data from the same scan).

        Args:
            source: A lakefeed Table or Scan.
            column: The numeric difficulty column (no nulls).
            hard_ratio: Share of every epoch drawn from the hard set, in ``[0, 1]``.
            seed: Seed of the random draws.
            rank: This process's rank.
            world_size: Number of ranks.
            drop_last: Cut the epoch to a multiple of ``world_size`` instead of padding it.

        Returns:
            The sampler.

        Raises:
            ColumnNotFoundError: The table has no column ``column``.
            SchemaError: The column is not numeric or holds nulls.
            ConfigError: As for the constructor.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> from lakefeed.samplers import HardExampleMiningSampler
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.h", pa.table({"loss": [0.1, 2.5, 0.3, 0.2]}))
            >>> s = HardExampleMiningSampler.from_table(t, "loss", hard_ratio=0.25)
            >>> len(s), s.hard_set().tolist()
            (4, [1])
        """
        owner = cls.__name__
        scores = numeric_column(read_column(source, column, owner=owner), column, owner=owner)
        return cls(
            len(scores),
            scores,
            hard_ratio=hard_ratio,
            seed=seed,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
        )

    @property
    def num_samples(self) -> int:
        """The dataset size, and the indices drawn per epoch over all ranks."""
        return self._n

    @property
    def hard_ratio(self) -> float:
        """Share of every epoch drawn from the hard set."""
        return self._hard_ratio

    @property
    def num_hard(self) -> int:
        """Size of the hard set, ``ceil(hard_ratio * num_samples)``: the hard draws per epoch."""
        return self._num_hard

    @property
    def difficulty_scores(self) -> FloatArray:
        """The current scores (a read-only float64 array)."""
        return self._scores

    def update_difficulty_scores(self, difficulty_scores: Sequence[float] | np.ndarray) -> None:
        """Replace the difficulty scores (e.g. with the per-row losses of the last epoch).

        The next iteration uses them; the order stays a pure function of
        ``(seed, epoch, rank, world_size)`` and the scores.

        Args:
            difficulty_scores: One finite score per row (``num_samples`` of them).

        Raises:
            ConfigError: The scores have the wrong length or are not finite numbers.

        Example:
            >>> from lakefeed.samplers import HardExampleMiningSampler
            >>> s = HardExampleMiningSampler(4, hard_ratio=0.5)
            >>> s.update_difficulty_scores([0.0, 3.0, 1.0, 2.0])
            >>> s.hard_set().tolist()
            [1, 3]
        """
        self._scores = self._check_scores(difficulty_scores)

    def hard_set(self) -> IntArray:
        """The rows in this epoch's hard set, in ascending order.

        Returns:
            The ``num_hard`` hardest rows (ties broken as the current epoch's draw breaks them).

        Example:
            >>> from lakefeed.samplers import HardExampleMiningSampler
            >>> HardExampleMiningSampler(3, [1.0, 9.0, 5.0], hard_ratio=0.5).hard_set().tolist()
            [1, 2]
        """
        rng = np.random.default_rng([self.seed, self.epoch])
        return np.sort(self._hard(rng))

    def _check_scores(self, scores: Sequence[float] | np.ndarray) -> FloatArray:
        owner = type(self).__name__
        array = as_float_array(scores, name="difficulty_scores", owner=owner).copy()
        if len(array) != self._n:
            msg = (
                f"{owner}: difficulty_scores has {len(array)} values but num_samples={self._n}; pass one score per row"
            )
            raise ConfigError(msg)
        array.flags.writeable = False
        return array

    def _hard(self, rng: np.random.Generator) -> IntArray:
        """The hard set, drawing the tie-breaking keys first from ``rng``."""
        ties = rng.random(self._n)
        h = self._num_hard
        if h == 0:
            return np.zeros(0, np.int64)
        return np.lexsort((ties, -self._scores))[:h].astype(np.int64)

    def _total(self) -> int:
        return self._n

    def _draw(self, rng: np.random.Generator) -> IntArray:
        hard = self._hard(rng)
        rest = rng.permutation(self._n)[: self._n - len(hard)]
        both = np.concatenate([hard, rest]).astype(np.int64)
        return both[rng.permutation(len(both))]
