"""Samplers: weighted, stratified, hard-example and balanced-batch index streams.

Each sampler is an iterable with ``len()`` that works as ``sampler=`` (the balanced one as
``batch_sampler=``) of ``torch.utils.data.DataLoader`` without lakefeed importing torch. The
order is a pure function of ``(seed, epoch, rank, world_size)``; call ``set_epoch`` every
epoch. Every rank yields the same number of indices, and the ranks together yield the
unsharded epoch. ``from_table`` builds a sampler from one column of a table or scan (reading
only that column); the indices are row positions in the scan's order.

The strategies (:class:`Weighted`, :class:`Stratified`, :class:`Balanced`) are value objects
that tell the streaming loader how to sample.

Example:
    >>> from lakefeed.samplers import WeightedRandomSampler
    >>> weights = [1.0] * 9 + [10.0]  # the last row is rare but important
    >>> sampler = WeightedRandomSampler(weights, num_samples=1000, seed=0)
    >>> len(sampler), 450 < list(sampler).count(9) < 600  # expected 10/19 of 1000
    (1000, True)
"""

from __future__ import annotations

from lakefeed.samplers.balanced import BalancedBatchSampler
from lakefeed.samplers.base import AdvancedSampler
from lakefeed.samplers.hard_example import HardExampleMiningSampler
from lakefeed.samplers.strategies import Balanced, SamplingStrategy, Stratified, Weighted
from lakefeed.samplers.stratified import StratifiedSampler
from lakefeed.samplers.weighted import WeightedRandomSampler

__all__ = [
    "AdvancedSampler",
    "Balanced",
    "BalancedBatchSampler",
    "HardExampleMiningSampler",
    "SamplingStrategy",
    "Stratified",
    "StratifiedSampler",
    "Weighted",
    "WeightedRandomSampler",
]
