"""Sampling strategies in the streaming loader: which rows each block hands out, and how many.

The loader reads the strategy's column once, up front (one narrow column of the scan), and
then, per epoch:

- gives each block a number of *whole batches* proportional to its weight (the sum of its
  rows' sampling weights; largest-remainder rounding, so the epoch has exactly ``len(loader)``
  full batches), and
- draws that many rows from the block, with replacement, by weight.

So a row's expected count in an epoch is proportional to its weight, as in a global weighted
draw, while the loader still streams in bounded memory, and the draws are a pure function of
(seed, epoch, rank, world_size): resume and sharding work as without sampling. Each rank
samples within its own shard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lakefeed.errors import ConfigError, SchemaError
from lakefeed.samplers.strategies import Balanced, Stratified, Weighted

if TYPE_CHECKING:
    import pyarrow as pa

    from lakefeed.loader.plan import EpochPlan

__all__ = ["RowSampler", "SamplingStrategy", "check_column_type"]

SamplingStrategy = Weighted | Stratified | Balanced


def check_column_type(strategy: SamplingStrategy, field_type: pa.DataType, table: str) -> None:
    """Refuse a column of the wrong type before anything is read."""
    import pyarrow as pa

    numeric = pa.types.is_integer(field_type) or pa.types.is_floating(field_type)
    if isinstance(strategy, Weighted) and not numeric:
        msg = (
            f"sampling=Weighted({strategy.column!r}) over {table}: the column is {field_type}, weights must be numbers"
        )
        raise SchemaError(msg)
    categorical = (
        pa.types.is_integer(field_type)
        or pa.types.is_string(field_type)
        or pa.types.is_large_string(field_type)
        or pa.types.is_boolean(field_type)
        or pa.types.is_dictionary(field_type)
    )
    if not isinstance(strategy, Weighted) and not categorical:
        msg = (
            f"sampling={type(strategy).__name__}({strategy.column!r}) over {table}: the column is {field_type}; "
            "class labels must be integers, strings or booleans"
        )
        raise SchemaError(msg)


class RowSampler:
    """A strategy bound to one table's column: per-row weights (or classes) in the loader's row order.

    Args:
        strategy: The strategy.
        values: The strategy's column, every row of the scan in the loader's task order.
        batch_size: The loader's batch size.
        table: The table's name (for messages).

    Raises:
        SchemaError: Nulls in the column.
        ConfigError: Negative, NaN or infinite weights, all-zero weights, a class named in
            ``shares`` with no rows, or (``Balanced``) a batch size that is not a multiple of
            the number of classes.
    """

    def __init__(self, strategy: SamplingStrategy, values: pa.ChunkedArray[Any], batch_size: int, table: str) -> None:
        import pyarrow.compute as pc

        self.strategy = strategy
        self.batch_size = batch_size
        name = f"sampling column {strategy.column!r} of {table}"
        if values.null_count:
            msg = f"{name} has {values.null_count} null(s); fill them or filter those rows out"
            raise SchemaError(msg)
        self.codes: np.ndarray | None = None
        self.classes: list[Any] = []
        if isinstance(strategy, Weighted):
            w = np.asarray(values.to_numpy(), dtype=np.float64)
            bad = ~np.isfinite(w) | (w < 0)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                msg = (
                    f"{name} has {int(bad.sum())} negative/NaN/infinite weight(s) (e.g. {w[first]!r}); use weights >= 0"
                )
                raise ConfigError(msg)
            if len(w) and not w.any():  # an empty table yields no batch: nothing to draw
                msg = f"{name}: every weight is 0, nothing can be drawn; give some rows a positive weight"
                raise ConfigError(msg)
            self.weights = w
            return
        encoded: Any = pc.dictionary_encode(values).combine_chunks()
        codes = np.asarray(encoded.indices.to_numpy(), dtype=np.int64)
        self.classes = encoded.dictionary.to_pylist()
        counts = np.bincount(codes, minlength=len(self.classes)).astype(np.float64)
        self.codes = codes
        if isinstance(strategy, Balanced):
            k = len(self.classes)
            if len(codes) and (k == 0 or batch_size % k):
                msg = (
                    f"sampling=Balanced({strategy.column!r}): batch_size {batch_size} is not a multiple of the "
                    f"{k} classes {self.classes[:10]}; use a batch size divisible by {k}"
                )
                raise ConfigError(msg)
            self.weights = np.ones(len(codes))
            return
        fractions = strategy.fractions()
        if fractions is None:  # natural shares: every row alike
            self.weights = np.ones(len(codes))
            return
        share = np.zeros(len(self.classes))
        for label, fraction in fractions.items():
            matches = [i for i, c in enumerate(self.classes) if c == label and type(c) is type(label)]
            if not matches and len(codes):  # an empty table yields no batch: nothing to check
                msg = f"{name}: class {label!r} in shares has no rows; classes are {self.classes[:20]}"
                raise ConfigError(msg)
            if matches:
                share[matches[0]] = fraction
        per_row = np.divide(share, counts, out=np.zeros_like(share), where=counts > 0)
        self.weights = per_row[codes]

    def _block_weight(self, rows: np.ndarray) -> float:
        if isinstance(self.strategy, Balanced):
            codes = self.codes if self.codes is not None else np.zeros(0, dtype=np.int64)
            present = np.bincount(codes[rows], minlength=len(self.classes))
            return float(len(rows)) if len(rows) and bool(np.all(present > 0)) else 0.0
        return float(self.weights[rows].sum())

    def apportion(self, plan: EpochPlan, offsets: list[int], batches: int) -> tuple[int, ...]:
        """Rows each block of ``plan`` draws: whole batches, ``batches`` in all, by block weight.

        Raises:
            ConfigError: No block can be drawn from (``Balanced``: no block holds every class).
        """
        weights = np.array(
            [
                self._block_weight(
                    np.concatenate([np.arange(offsets[s.task] + s.start, offsets[s.task] + s.stop) for s in blk])
                )
                for blk in plan.blocks
            ]
        )
        total = weights.sum()
        if batches and total <= 0:
            if isinstance(self.strategy, Balanced):
                msg = (
                    f"sampling=Balanced({self.strategy.column!r}): no block holds all classes {self.classes[:10]}; "
                    "raise shuffle_buffer (more rows per block) or use cache='memory'"
                )
            else:
                msg = f"sampling over {self.strategy.column!r}: this rank's rows all have weight 0"
            raise ConfigError(msg)
        if not batches:
            return tuple(0 for _ in plan.blocks)
        quota = batches * weights / total
        units = np.floor(quota).astype(np.int64)
        short = batches - int(units.sum())
        if short:
            order = np.argsort(-(quota - units), kind="stable")  # largest remainders first, ties by block
            units[order[:short]] += 1
        return tuple(int(u) * self.batch_size for u in units)

    def draw(self, rng: np.random.Generator, row_index: Any, count: int) -> np.ndarray:
        """``count`` positions into a block whose rows are ``row_index``, drawn with replacement."""
        row_index = np.asarray(row_index)
        if count == 0:
            return np.empty(0, dtype=np.int64)
        if isinstance(self.strategy, Balanced) and self.codes is not None:
            k = len(self.classes)
            per = self.batch_size // k
            n_batches = count // self.batch_size
            codes = self.codes[row_index]
            picks = np.empty((n_batches, k, per), dtype=np.int64)
            for c in range(k):
                members = np.flatnonzero(codes == c)
                picks[:, c, :] = members[rng.integers(0, len(members), size=(n_batches, per))]
            return np.asarray(rng.permuted(picks.reshape(n_batches, self.batch_size), axis=1).ravel())
        p = self.weights[row_index]
        cdf = np.cumsum(p)
        drawn: np.ndarray = np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right")
        return drawn.clip(0, len(p) - 1).astype(np.int64)
