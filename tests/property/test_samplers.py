"""Sampler invariants for arbitrary labels, weights, seeds, epochs and rank layouts."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lakefeed.samplers import (
    AdvancedSampler,
    BalancedBatchSampler,
    HardExampleMiningSampler,
    StratifiedSampler,
    WeightedRandomSampler,
)

labels_st = st.lists(st.integers(0, 4), min_size=1, max_size=80)
weights_st = st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 7.5]), min_size=1, max_size=60).filter(any)
seeds = st.integers(0, 2**32)
epochs = st.integers(0, 1_000)
world_sizes = st.integers(1, 9)


def _check_sharding(make: Any, world_size: int, drop_last: bool, epoch: int) -> np.ndarray:
    """The ranks' blocks end to end are the unsharded draw, padded by repetition or cut; returns the draw."""
    whole: AdvancedSampler[Any] = make(drop_last=drop_last)
    whole.set_epoch(epoch)
    draw = whole.indices()
    parts = []
    for rank in range(world_size):
        s: AdvancedSampler[Any] = make(rank=rank, world_size=world_size, drop_last=drop_last)
        s.set_epoch(epoch)
        parts.append(s.indices())
        assert len(parts[-1]) == len(s)
        assert np.asarray(list(s)).reshape(parts[-1].shape).tolist() == parts[-1].tolist()
    assert len({len(p) for p in parts}) == 1
    joined = np.concatenate(parts)
    expected = draw[: len(joined)] if drop_last else draw[np.arange(len(joined)) % len(draw)]
    np.testing.assert_array_equal(joined, expected)
    return draw


def _world(data: st.DataObject, total: int) -> tuple[int, bool]:
    world_size = data.draw(world_sizes)
    drop_last = data.draw(st.booleans()) if total >= world_size else False
    return world_size, drop_last


@settings(max_examples=60, deadline=None)
@given(labels=labels_st, seed=seeds, epoch=epochs, data=st.data())
def test_stratified_default_is_a_share_keeping_permutation(
    labels: list[int], seed: int, epoch: int, data: st.DataObject
) -> None:
    world_size, drop_last = _world(data, len(labels))

    def make(**kw: Any) -> StratifiedSampler:
        return StratifiedSampler(labels, seed=seed, **kw)

    draw = _check_sharding(make, world_size, drop_last, epoch)
    np.testing.assert_array_equal(np.sort(draw), np.arange(len(labels)))
    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    shares = counts / len(y)
    for m in range(1, len(draw) + 1):  # every prefix: fewer than 1 + n_classes rows off any class's share
        got = np.array([np.count_nonzero(y[draw[:m]] == c) for c in classes])
        assert np.abs(got - m * shares).max() < 1 + len(classes)


@settings(max_examples=60, deadline=None)
@given(labels=labels_st, k=st.integers(1, 30), seed=seeds, epoch=epochs, data=st.data())
def test_stratified_per_class_draws_k_of_each_class_evenly(
    labels: list[int], k: int, seed: int, epoch: int, data: st.DataObject
) -> None:
    world_size, drop_last = _world(data, k * len(set(labels)))

    def make(**kw: Any) -> StratifiedSampler:
        return StratifiedSampler(labels, k, proportional=False, seed=seed, **kw)

    draw = _check_sharding(make, world_size, drop_last, epoch)
    y = np.asarray(labels)
    assert Counter(y[draw].tolist()) == dict.fromkeys(set(labels), k)
    for c in set(labels):
        rows = np.flatnonzero(y == c)
        times = Counter(draw[y[draw] == c].tolist())
        if k >= len(rows):  # oversampled: every row floor(k / n_c) or ceil(k / n_c) times
            assert set(times) == set(rows.tolist())
            assert max(times.values()) - min(times.values()) <= 1
        else:  # without replacement
            assert max(times.values()) == 1


@settings(max_examples=60, deadline=None)
@given(labels=labels_st, per_class=st.integers(1, 4), seed=seeds, epoch=epochs, data=st.data())
def test_balanced_batches_hold_per_class_of_every_class(
    labels: list[int], per_class: int, seed: int, epoch: int, data: st.DataObject
) -> None:
    n_classes = len(set(labels))
    world_size, drop_last = _world(data, -(-max(Counter(labels).values()) // per_class))

    def make(**kw: Any) -> BalancedBatchSampler:
        return BalancedBatchSampler(labels, per_class * n_classes, seed=seed, **kw)

    draw = _check_sharding(make, world_size, drop_last, epoch)
    y = np.asarray(labels)
    largest = max(Counter(labels).values())
    assert len(draw) == -(-largest // per_class)
    for batch in draw:
        assert Counter(y[batch].tolist()) == dict.fromkeys(set(labels), per_class)
    for c in set(labels):  # every row of every class appears, as evenly as the cycles allow
        times = Counter(draw.reshape(-1)[y[draw.reshape(-1)] == c].tolist())
        assert set(times) == set(np.flatnonzero(y == c).tolist())
        assert max(times.values()) - min(times.values()) <= 1


@settings(max_examples=60, deadline=None)
@given(weights=weights_st, seed=seeds, epoch=epochs, replacement=st.booleans(), data=st.data())
def test_weighted_draws_only_positive_rows(
    weights: list[float], seed: int, epoch: int, replacement: bool, data: st.DataObject
) -> None:
    positive = np.flatnonzero(np.asarray(weights) > 0)
    num_samples = data.draw(st.integers(1, len(positive) if not replacement else 100))
    world_size, drop_last = _world(data, num_samples)

    def make(**kw: Any) -> WeightedRandomSampler:
        return WeightedRandomSampler(weights, num_samples, replacement, seed=seed, **kw)

    draw = _check_sharding(make, world_size, drop_last, epoch)
    assert len(draw) == num_samples
    assert set(draw.tolist()) <= set(positive.tolist())
    if not replacement:
        assert len(set(draw.tolist())) == num_samples


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.floats(-5, 5), min_size=1, max_size=60),
    ratio=st.floats(0, 1),
    seed=seeds,
    epoch=epochs,
    data=st.data(),
)
def test_hard_example_epoch_is_hard_set_plus_uniform_part(
    scores: list[float], ratio: float, seed: int, epoch: int, data: st.DataObject
) -> None:
    n = len(scores)
    world_size, drop_last = _world(data, n)

    def make(**kw: Any) -> HardExampleMiningSampler:
        return HardExampleMiningSampler(n, scores, hard_ratio=ratio, seed=seed, **kw)

    draw = _check_sharding(make, world_size, drop_last, epoch)
    s = make()
    s.set_epoch(epoch)
    hard = s.hard_set()
    assert len(draw) == n
    assert len(hard) == s.num_hard == math.ceil(ratio * n)
    rest = set(range(n)) - set(hard.tolist())
    if len(hard) and rest:  # the hard set is the top by score
        assert min(scores[i] for i in hard) >= max(scores[i] for i in rest)
    times = Counter(draw.tolist())
    in_hard = set(hard.tolist())
    uniform = {i: times[i] - (i in in_hard) for i in range(n)}  # what the uniform part drew
    assert set(uniform.values()) <= {0, 1}  # each hard row once, plus n - h distinct rows
    assert sum(uniform.values()) == n - len(hard)
