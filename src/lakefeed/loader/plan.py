"""The epoch plan: which rows each rank reads, in which blocks, in which order.

Everything here is a pure function of the task row counts and (seed, epoch, rank,
world_size), so an epoch can be replanned anywhere (a resumed job, a DataLoader worker) and
give the same batches. No data is read.

An epoch:

1. Orders the scan tasks. Shuffled, the order is a random permutation drawn from
   (seed, epoch) whose rank correlation with table order is small (the first of the draws
   below a bound), so a table sorted by time or label is not fed in (reverse) order.
2. Lays the tasks end to end and cuts that sequence into ``world_size`` contiguous ranges,
   one per rank. Uneven ranges are padded by repeating the range's first rows (default: no
   row is lost) or cut to the shortest (``"drop"``): every rank has the same row count, so
   the same number of batches, and DDP never waits on a rank that ran out.
3. Splits a rank's range into ``lanes`` equal contiguous lanes, each cut into slices; block
   ``b`` takes one slice of every lane, so one block mixes rows from far-apart parts of the
   table. Shuffled, each lane starts at its own random slice and wraps around, so a row's
   place in its lane says nothing about when it comes. A shuffled block is permuted as a
   whole with a generator seeded by (seed, epoch, rank, block).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["EpochPlan", "Slice", "decorrelated_order", "pearson", "plan_epoch"]


@dataclass(frozen=True)
class Slice:
    """Rows ``[start, stop)`` of task ``task`` (offsets within the task's rows)."""

    task: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        """Rows in the slice."""
        return self.stop - self.start


@dataclass(frozen=True)
class EpochPlan:
    """One rank's epoch: its blocks as lists of task slices."""

    blocks: tuple[tuple[Slice, ...], ...]
    rows: int
    """Rows this rank reads in the epoch (the same on every rank)."""
    draws: tuple[int, ...] | None = None
    """With a sampling strategy: rows drawn from each block (whole batches)."""

    def block_rows(self, b: int) -> int:
        """Rows in block ``b``."""
        return sum(s.rows for s in self.blocks[b])

    def block_output(self, b: int) -> int:
        """Rows block ``b`` yields: its rows, or its draws when sampling."""
        return self.draws[b] if self.draws is not None else self.block_rows(b)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two vectors (nan when one has no spread).

    Elementwise sums, not ``np.corrcoef``: that is a BLAS product, and OpenBLAS's threads then
    spin for a while on cores the loader's decoding threads need.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    x = x - x.mean()
    y = y - y.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sum(x * y) / np.sqrt(np.sum(x * x) * np.sum(y * y)))


def _spearman_of_order(order: np.ndarray) -> float:
    k = len(order)
    if k < 2:
        return 0.0
    return pearson(np.arange(k, dtype=np.float64), order)


def decorrelated_order(k: int, rng: np.random.Generator, *, tries: int = 64) -> np.ndarray:
    """A random permutation of ``range(k)`` with small rank correlation to the identity.

    Draws up to ``tries`` permutations and keeps the first whose correlation with table order
    is below ``1 / (2 k)`` (else the least correlated), so that even with few tasks the
    position of a row in the epoch says little about its position in the table.

    Example:
        >>> order = decorrelated_order(16, np.random.default_rng(0))
        >>> sorted(order.tolist()) == list(range(16)), bool(abs(np.corrcoef(np.arange(16), order)[0, 1]) < 0.1)
        (True, True)
    """
    if k <= 2:
        return rng.permutation(k)
    bound = 1.0 / (2 * k)
    best, best_rho = rng.permutation(k), 2.0
    for _ in range(tries):
        candidate = rng.permutation(k)
        rho = abs(_spearman_of_order(candidate))
        if rho < best_rho:
            best, best_rho = candidate, rho
        if rho <= bound:
            break
    return best


def _cut(pieces: Sequence[Slice], prefix: Sequence[int], lo: int, hi: int) -> list[Slice]:
    """The slices covering positions ``[lo, hi)`` of the sequence made of ``pieces``."""
    out: list[Slice] = []
    if hi <= lo:
        return out
    i = bisect.bisect_right(prefix, lo) - 1
    while lo < hi and i < len(pieces):
        piece = pieces[i]
        offset = lo - prefix[i]
        take = min(piece.rows - offset, hi - lo)
        if take > 0:
            out.append(Slice(piece.task, piece.start + offset, piece.start + offset + take))
            lo += take
        i += 1
    return out


def _rotations(
    counts: Sequence[int],
    mine: Sequence[Slice],
    mine_prefix: Sequence[int],
    lane_bounds: Sequence[int],
    lane_share: int,
    lane_slices: Sequence[int],
    rng: np.random.Generator,
    *,
    tries: int = 64,
) -> list[int]:
    """Where each lane starts: random, redrawn until the epoch order says little about table order.

    With few, large tasks a lane holds only a few of them, and chance alone can leave the
    rows' output positions correlated with their table positions (|rho| of 0.3 with 16 files
    in 3 lanes). Each draw of starting slices is scored by the row-weighted correlation
    between the mean table position of a slice's rows and the block it lands in. Of the draws
    below ``0.01`` the one whose first block needs the fewest rows decoded is kept (the first
    batch comes sooner), else the least correlated of ``tries``.
    """
    if not mine or not lane_slices:
        return []
    lanes = len(lane_slices)
    task_first = np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.float64))])
    base = np.array([task_first[s.task] + s.start for s in mine], dtype=np.float64)  # table row of each piece
    rows = np.array([s.rows for s in mine], dtype=np.float64)
    prefix = np.asarray(mine_prefix, dtype=np.int64)
    # integral[i]: the sum of the table positions of the rows before piece i (in epoch order)
    integral = np.concatenate([[0.0], np.cumsum(rows * base + rows * (rows - 1) / 2)])

    def position_sum(x: np.ndarray) -> np.ndarray:
        i = np.minimum(np.searchsorted(prefix, x, side="right") - 1, len(mine) - 1)
        m = (x - prefix[i]).astype(np.float64)
        return integral[i] + m * base[i] + m * (m - 1) / 2

    lane_of = np.repeat(np.arange(lanes), lane_slices)
    k = np.concatenate([np.arange(n) for n in lane_slices])
    lo = np.asarray(lane_bounds[:-1], dtype=np.int64)[lane_of] + k * lane_share
    hi = np.minimum(np.asarray(lane_bounds[1:], dtype=np.int64)[lane_of], lo + lane_share)
    weight = (hi - lo).astype(np.float64)
    where = (position_sum(hi) - position_sum(lo)) / np.maximum(weight, 1)  # mean table position of each slice
    # What the first block waits for: a task decodes from its first row, so a slice is ready
    # once its task(s) decoded up to its last row.
    piece_start = np.array([s.start for s in mine], dtype=np.int64)
    ends = np.concatenate([[0], np.cumsum(piece_start + np.array([s.rows for s in mine], dtype=np.int64))])
    first_piece = np.searchsorted(prefix, lo, side="right") - 1
    last_piece = np.searchsorted(prefix, hi - 1, side="right") - 1
    wait = ends[last_piece] - ends[first_piece] + piece_start[last_piece] + (hi - prefix[last_piece])
    sizes = np.asarray(lane_slices, dtype=np.int64)
    lane_first = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # index of each lane's slice 0
    best, best_key = [0] * lanes, (2, 2.0, 0)
    for _ in range(tries):
        shifts = rng.integers(0, sizes)
        block = ((k - shifts[lane_of]) % sizes[lane_of]).astype(np.float64)
        rho = abs(_weighted_corr(where, block, weight))
        # decorrelated enough: then the draw whose first block is ready soonest
        key = (0, 0.0, int(wait[lane_first + shifts].sum())) if rho <= 0.01 else (1, rho, 0)
        if key < best_key:
            best, best_key = [int(v) for v in shifts], key
    return best


def _weighted_corr(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    total = w.sum()
    if total <= 0 or len(a) < 2:
        return 0.0
    da, db = a - (w * a).sum() / total, b - (w * b).sum() / total
    var = (w * da * da).sum() * (w * db * db).sum()
    return float((w * da * db).sum() / np.sqrt(var)) if var > 0 else 0.0


def plan_epoch(
    counts: Sequence[int],
    *,
    seed: int,
    epoch: int,
    rank: int,
    world_size: int,
    shuffle: bool,
    block_rows: int,
    lanes: int,
    uneven: str = "pad",
) -> EpochPlan:
    """Plan one rank's epoch over tasks with the given row counts.

    Example:
        >>> p = plan_epoch([5, 5, 5], seed=0, epoch=0, rank=1, world_size=2, shuffle=False, block_rows=4, lanes=1)
        >>> p.rows, [[(s.task, s.start, s.stop) for s in b] for b in p.blocks]
        (8, [[(1, 2, 5), (2, 0, 1)], [(2, 1, 5)]])
    """
    k = len(counts)
    total = int(sum(counts))
    order = decorrelated_order(k, np.random.default_rng([seed, epoch, 0x5EED])) if shuffle else np.arange(k)
    pieces = [Slice(int(t), 0, int(counts[int(t)])) for t in order if counts[int(t)] > 0]
    prefix = [0]
    for p in pieces:
        prefix.append(prefix[-1] + p.rows)
    if uneven == "drop":
        per_rank = total // world_size
        lo, hi = rank * per_rank, (rank + 1) * per_rank
        mine = _cut(pieces, prefix, lo, hi)
    else:
        per_rank = -(-total // world_size) if total else 0
        lo, hi = rank * total // world_size, (rank + 1) * total // world_size
        mine = _cut(pieces, prefix, lo, hi)
        missing = per_rank - (hi - lo)
        while missing > 0:  # repeat the range's own first rows (or the epoch's, if it is empty)
            source = mine if mine else _cut(pieces, prefix, 0, min(total, per_rank))
            source_prefix = [0]
            for s in source:
                source_prefix.append(source_prefix[-1] + s.rows)
            extra = _cut(source, source_prefix, 0, min(missing, source_prefix[-1]))
            mine = mine + extra
            missing -= sum(s.rows for s in extra)
    rows = sum(s.rows for s in mine)
    mine_prefix = [0]
    for s in mine:
        mine_prefix.append(mine_prefix[-1] + s.rows)
    lanes = max(1, min(lanes, rows // max(block_rows, 1) or 1))
    lane_bounds = [rows * j // lanes for j in range(lanes + 1)]
    lane_share = max(1, block_rows // lanes)
    lane_slices = [-(-(lane_bounds[j + 1] - lane_bounds[j]) // lane_share) for j in range(lanes)]
    rotation = np.random.default_rng([seed, epoch, rank, world_size, 0x1A4E])
    shifts = _rotations(counts, mine, mine_prefix, lane_bounds, lane_share, lane_slices, rotation) if shuffle else []
    shifts = shifts or [0] * lanes
    blocks: list[tuple[Slice, ...]] = []
    for b in range(max(lane_slices, default=0)):
        block: list[Slice] = []
        for j in range(lanes):
            if b >= lane_slices[j]:
                continue
            k = (b + shifts[j]) % lane_slices[j]  # each lane starts at its own random slice
            lo_j = lane_bounds[j] + k * lane_share
            hi_j = min(lane_bounds[j + 1], lo_j + lane_share)
            block.extend(_cut(mine, mine_prefix, lo_j, hi_j))
        if block:
            blocks.append(tuple(block))
    return EpochPlan(blocks=tuple(blocks), rows=rows)
