"""Samplers: torch-compatible, seeded and epoch-aware, sharded exactly, statistically right, clear errors."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

import lakefeed as lf
from lakefeed.errors import ColumnNotFoundError, ConfigError, SchemaError
from lakefeed.samplers import (
    AdvancedSampler,
    Balanced,
    BalancedBatchSampler,
    HardExampleMiningSampler,
    Stratified,
    StratifiedSampler,
    Weighted,
    WeightedRandomSampler,
)
from lakefeed.tables.base import Scan

P_MIN = 0.001  # goodness-of-fit tests pass when p > 0.001 (fixed seeds: the outcome is deterministic)

LABELS = np.repeat([0, 1, 2], [50, 30, 17])  # 97 rows, sorted: sampler order must not follow the input order
N = len(LABELS)
WEIGHTS = np.linspace(0.0, 3.0, N)  # row 0 has weight 0
SCORES = np.random.default_rng(5).random(N)

Factory = Callable[..., AdvancedSampler[Any]]
FACTORIES: dict[str, Factory] = {
    "weighted": lambda **kw: WeightedRandomSampler(WEIGHTS, N, **kw),
    "weighted-without-replacement": lambda **kw: WeightedRandomSampler(WEIGHTS, 60, replacement=False, **kw),
    "stratified": lambda **kw: StratifiedSampler(LABELS, **kw),
    "stratified-per-class": lambda **kw: StratifiedSampler(LABELS, 40, proportional=False, **kw),
    "stratified-k-proportional": lambda **kw: StratifiedSampler(LABELS, 20, proportional=True, **kw),
    "hard-example": lambda **kw: HardExampleMiningSampler(N, SCORES, hard_ratio=0.2, **kw),
    "balanced": lambda **kw: BalancedBatchSampler(LABELS, 6, **kw),
}
NAMES = list(FACTORIES)


# -- the common contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_iterates_len_items_in_range(name: str) -> None:
    s = FACTORIES[name](seed=1)
    items = list(s)
    assert len(items) == len(s) > 0
    flat = np.asarray(items).reshape(-1)
    assert flat.min() >= 0
    assert flat.max() < N
    assert all(type(i) is int for i in flat.tolist()[:5])


@pytest.mark.parametrize("name", NAMES)
def test_order_is_a_pure_function_of_seed_and_epoch(name: str) -> None:
    make = FACTORIES[name]
    a, b = make(seed=7), make(seed=7)
    assert list(a) == list(b) == list(a)  # same inputs, same indices; iterating again changes nothing
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    assert a.epoch == 3
    epoch0, epoch1 = make(seed=7), make(seed=7)
    epoch1.set_epoch(1)
    assert list(epoch0) != list(epoch1)
    assert list(make(seed=7)) != list(make(seed=8))


@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_together_yield_the_unsharded_epoch(name: str, world_size: int, drop_last: bool) -> None:
    make = FACTORIES[name]
    whole = make(seed=3, drop_last=drop_last)
    whole.set_epoch(2)
    draw = whole.indices()
    parts = []
    for rank in range(world_size):
        s = make(seed=3, rank=rank, world_size=world_size, drop_last=drop_last)
        s.set_epoch(2)
        parts.append(s.indices())
        assert len(s) == len(parts[-1]) == len(list(s))
    per_rank = {len(p) for p in parts}
    assert len(per_rank) == 1  # every rank yields the same number (of batches, for the balanced one)
    size = per_rank.pop() * world_size
    joined = np.concatenate(parts)  # the ranks' blocks end to end
    if drop_last:
        np.testing.assert_array_equal(joined, draw[:size])
        assert size > len(draw) - world_size
    else:
        np.testing.assert_array_equal(joined, draw[np.arange(size) % len(draw)])  # padded by repeating the head
        assert set(np.concatenate(parts).reshape(-1).tolist()) == set(draw.reshape(-1).tolist())
        assert size < len(draw) + world_size


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank": 2, "world_size": 2}, r"rank=2 is not below world_size=2"),
        ({"rank": -1}, r"rank must be an int >= 0, got -1"),
        ({"world_size": 0}, r"world_size must be an int >= 1, got 0"),
        ({"world_size": 2.0}, r"world_size must be an int >= 1, got 2.0"),
        ({"rank": True}, r"rank must be an int >= 0, got the bool True"),
        ({"seed": -1}, r"seed must be an int >= 0, got -1"),
        ({"seed": "1"}, r"seed must be an int >= 0, got '1'"),
        ({"drop_last": 1}, r"drop_last must be True or False, got 1"),
        ({"drop_last": True, "world_size": 200}, r"drop_last=True over world_size=200 ranks leaves nothing"),
    ],
)
@pytest.mark.parametrize("name", ["weighted", "stratified", "hard-example", "balanced"])
def test_bad_sharding_arguments_raise_config_error(name: str, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FACTORIES[name](**kwargs)


@pytest.mark.parametrize("epoch", [-1, 1.5, None])
def test_set_epoch_validates(epoch: object) -> None:
    s = StratifiedSampler([0, 1])
    with pytest.raises(ConfigError, match=r"StratifiedSampler: epoch must be an int >= 0"):
        s.set_epoch(epoch)  # type: ignore[arg-type]


def test_numpy_integers_are_accepted_and_repr_names_the_state() -> None:
    s = WeightedRandomSampler(
        WEIGHTS,
        np.int64(10),  # type: ignore[arg-type]
        seed=np.uint32(4),  # type: ignore[arg-type]
        rank=np.int8(1),  # type: ignore[arg-type]
        world_size=np.int16(2),  # type: ignore[arg-type]
    )
    s.set_epoch(np.int32(2))  # type: ignore[arg-type]
    assert (s.seed, s.epoch, s.rank, s.world_size, s.drop_last) == (4, 2, 1, 2, False)
    assert repr(s) == "WeightedRandomSampler(total=10, seed=4, epoch=2, rank=1, world_size=2, drop_last=False)"


def test_import_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom lakefeed.samplers import BalancedBatchSampler, WeightedRandomSampler\n"
        "list(WeightedRandomSampler([1.0, 2.0], 4)); list(BalancedBatchSampler([0, 1], 2))\n"
        "print(','.join(m for m in ('torch', 'pyiceberg', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# -- WeightedRandomSampler ---------------------------------------------------------------------------


def test_weighted_frequencies_match_weights() -> None:
    weights = np.random.default_rng(1).uniform(0.1, 5.0, 50)
    weights[[3, 17]] = 0.0
    draws = 200_000
    counts = np.bincount(WeightedRandomSampler(weights, draws, seed=11).indices(), minlength=50)
    assert counts[[3, 17]].tolist() == [0, 0]  # weight 0: never drawn
    positive = weights > 0
    expected = weights[positive] / weights.sum() * draws
    assert stats.chisquare(counts[positive], expected).pvalue > P_MIN


def test_weighted_sharded_frequencies_match_weights() -> None:
    weights = np.array([1.0, 2.0, 3.0, 4.0])
    counts = np.zeros(4, np.int64)
    for rank in range(3):
        s = WeightedRandomSampler(weights, 120_000, seed=2, rank=rank, world_size=3)
        counts += np.bincount(s.indices(), minlength=4)
    assert counts.sum() == 120_000
    assert stats.chisquare(counts, weights / weights.sum() * 120_000).pvalue > P_MIN


def test_weighted_without_replacement_is_successive_sampling() -> None:
    """Ordered pairs (i, j) have probability w_i / W * w_j / (W - w_i), as torch.multinomial without replacement."""
    weights = np.array([1.0, 2.0, 3.0, 4.0, 0.0])
    s = WeightedRandomSampler(weights, 2, replacement=False, seed=5)
    pairs: Counter[tuple[int, int]] = Counter()
    epochs = 10_000
    for epoch in range(epochs):
        s.set_epoch(epoch)
        first, second = s.indices().tolist()
        pairs[first, second] += 1
    total = weights.sum()
    cells = [(i, j) for i in range(4) for j in range(4) if i != j]
    expected = [weights[i] / total * weights[j] / (total - weights[i]) * epochs for i, j in cells]
    assert sum(pairs[c] for c in cells) == epochs  # never the zero-weight row, never twice the same row
    assert stats.chisquare([pairs[c] for c in cells], expected).pvalue > P_MIN


def test_weighted_without_replacement_draws_distinct_positive_rows() -> None:
    weights = np.r_[np.zeros(500), np.ones(500)]
    idx = WeightedRandomSampler(weights, 500, replacement=False, seed=0).indices()
    np.testing.assert_array_equal(np.sort(idx), np.arange(500, 1000))


def test_weighted_million_rows_well_under_a_second() -> None:
    weights = np.random.default_rng(0).random(1_000_000)
    s = WeightedRandomSampler(weights, 1_000_000, seed=0)
    best = math.inf
    for epoch in range(3):
        s.set_epoch(epoch)
        start = time.perf_counter()
        idx = s.indices()
        best = min(best, time.perf_counter() - start)
    assert len(idx) == 1_000_000
    assert best < 0.5


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([1.0, -1.0, 2.0], r"weights\[1\] is -1.0; weights must be >= 0 \(1 are negative\)"),
        ([1.0, float("nan")], r"weights\[1\] is nan; every value must be finite"),
        ([float("inf"), 1.0], r"weights\[0\] is inf; every value must be finite"),
        ([0.0, 0.0], r"all 2 weights are 0; at least one row needs a positive weight"),
        ([], r"weights is empty"),
        ([[1.0, 2.0]], r"weights must be 1-D \(one value per row\), got shape \(1, 2\)"),
        (["a", "b"], r"weights must be a 1-D sequence of numbers"),
    ],
)
def test_bad_weights_raise_config_error(weights: list[Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        WeightedRandomSampler(weights, 3)


@pytest.mark.parametrize(
    ("num_samples", "replacement", "match"),
    [
        (0, True, r"num_samples must be an int >= 1, got 0"),
        (-5, True, r"num_samples must be an int >= 1, got -5"),
        (2.5, True, r"num_samples must be an int >= 1, got 2.5"),
        (3, False, r"num_samples=3 without replacement, but only 2 of 3 rows have a positive weight; ask for at most"),
        (2, "no", r"replacement must be True or False, got 'no'"),
    ],
)
def test_bad_num_samples_raise_config_error(num_samples: Any, replacement: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        WeightedRandomSampler([1.0, 0.0, 2.0], num_samples, replacement)


def test_weights_are_copied_and_read_only() -> None:
    weights = np.array([1.0, 2.0])
    s = WeightedRandomSampler(weights, 2)
    weights[0] = 100.0
    assert s.weights.tolist() == [1.0, 2.0]
    assert not s.weights.flags.writeable
    assert (s.num_samples, s.replacement) == (2, True)


# -- StratifiedSampler -----------------------------------------------------------------------------


def _shares(labels: np.ndarray, idx: np.ndarray, classes: int) -> np.ndarray:
    return np.bincount(labels[idx], minlength=classes) / len(idx)


def test_stratified_default_is_every_row_once_and_every_prefix_keeps_shares() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=100_000, p=[0.6, 0.3, 0.1])
    natural = np.bincount(labels) / len(labels)
    s = StratifiedSampler(labels, seed=4)
    idx = s.indices()
    np.testing.assert_array_equal(np.sort(idx), np.arange(len(labels)))
    for prefix in [1_000, 2_345, 10_000, 50_001, 100_000]:
        assert np.abs(_shares(labels, idx[:prefix], 3) - natural).max() <= 0.01  # within ±1%
    for m in range(1, 2_000):  # exact bound: less than 1 + n_classes rows off, for every prefix
        counts = np.bincount(labels[idx[:m]], minlength=3)
        assert np.abs(counts - m * natural).max() < 4


def test_stratified_ranks_keep_shares() -> None:
    labels = np.random.default_rng(1).choice(4, size=40_000, p=[0.5, 0.25, 0.15, 0.1])
    natural = np.bincount(labels) / len(labels)
    for rank in range(3):
        idx = StratifiedSampler(labels, seed=2, rank=rank, world_size=3).indices()
        assert np.abs(_shares(labels, idx, 4) - natural).max() <= 0.01
        assert np.abs(_shares(labels, idx[:1_000], 4) - natural).max() <= 0.01


def test_stratified_equal_counts_per_class() -> None:
    labels = np.array(["cat"] * 5 + ["dog"] * 100 + ["eel"] * 40)
    s = StratifiedSampler(labels, num_samples_per_class=40, proportional=False, seed=0)
    idx = s.indices()
    assert Counter(labels[idx].tolist()) == {"cat": 40, "dog": 40, "eel": 40}
    assert s.samples_per_class == {"cat": 40, "dog": 40, "eel": 40}
    assert sorted(Counter(idx[labels[idx] == "cat"].tolist()).values()) == [8] * 5  # oversampled evenly
    assert len(set(idx[labels[idx] == "dog"].tolist())) == 40  # enough rows: without replacement
    assert sorted(idx[labels[idx] == "eel"].tolist()) == list(range(105, 145))  # exactly k rows: each once
    for m in range(3, 121, 3):  # every prefix balanced
        assert max(Counter(labels[idx[:m]].tolist()).values()) - m / 3 < 2


def test_stratified_uneven_oversampling_is_floor_or_ceil() -> None:
    labels = np.array([0] * 7 + [1] * 30)
    idx = StratifiedSampler(labels, 30, proportional=False, seed=1).indices()
    assert sorted(set(Counter(idx[idx < 7].tolist()).values())) == [4, 5]  # 30 / 7 = 4.3


def test_stratified_not_proportional_without_k_matches_the_largest_class() -> None:
    s = StratifiedSampler([0] * 10 + [1] * 3, proportional=False)
    assert s.samples_per_class == {0: 10, 1: 10}
    assert len(s) == 20
    assert s.class_counts == {0: 10, 1: 3}
    assert s.classes == [0, 1]


def test_stratified_proportional_with_k_is_a_stratified_sample_of_k_times_classes() -> None:
    labels = np.repeat([0, 1, 2], [6_000, 3_000, 1_000])
    s = StratifiedSampler(labels, num_samples_per_class=1_000, proportional=True, seed=3)
    assert s.samples_per_class == {0: 1_800, 1: 900, 2: 300}
    idx = s.indices()
    assert len(idx) == len(set(idx.tolist())) == 3_000  # fewer than the class has: without replacement
    np.testing.assert_allclose(_shares(labels, idx, 3), [0.6, 0.3, 0.1])
    rounded = StratifiedSampler([0, 0, 1], num_samples_per_class=1)  # 2 rows split 2:1, largest remainder
    assert rounded.samples_per_class == {0: 1, 1: 1}


def test_stratified_string_and_bool_labels() -> None:
    assert sorted(StratifiedSampler(["b", "a", "b"])) == [0, 1, 2]
    assert StratifiedSampler([True, False, True]).classes == [False, True]


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        ([], {}, r"StratifiedSampler: labels is empty; pass one label per row"),
        ([[0, 1], [1, 0]], {}, r"labels must be 1-D \(one label per row\), got shape \(2, 2\)"),
        ([0, None, 1], {}, r"labels\[1\] is None; every row needs a label"),
        ([0.0, float("nan")], {}, r"labels\[1\] is nan; labels must be finite"),
        ([0, 1], {"num_samples_per_class": 0}, r"num_samples_per_class must be an int >= 1, got 0"),
        ([0, 1], {"proportional": "yes"}, r"proportional must be True or False, got 'yes'"),
        (
            [0] * 99 + [1],
            {"num_samples_per_class": 10},
            r"class 1 \(1 of 100 rows\) gets 0 of the 20 rows drawn per epoch; use num_samples_per_class >= 50",
        ),
    ],
)
def test_bad_stratified_input_raises_config_error(labels: list[Any], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        StratifiedSampler(labels, **kwargs)


def test_stratified_suggested_k_is_enough() -> None:
    s = StratifiedSampler([0] * 99 + [1], num_samples_per_class=50)
    assert s.samples_per_class == {0: 99, 1: 1}


# -- HardExampleMiningSampler ----------------------------------------------------------------------


def test_hard_ratio_is_honoured() -> None:
    """h = ceil(r n) draws from the top-h rows plus n - h uniform draws of which X ~ Hypergeom land there too."""
    n, ratio = 10_000, 0.3
    scores = np.random.default_rng(2).normal(size=n)
    hard = set(np.argsort(-scores)[:3_000].tolist())
    s = HardExampleMiningSampler(n, scores, hard_ratio=ratio, seed=9)
    assert s.num_hard == 3_000
    assert set(s.hard_set().tolist()) == hard
    low, high = stats.hypergeom.interval(0.999, n, 3_000, n - 3_000)  # tolerance: a 99.9% interval
    shares = []
    for epoch in range(5):
        s.set_epoch(epoch)
        idx = s.indices()
        assert len(idx) == n
        from_hard = np.isin(idx, list(hard))
        assert low <= from_hard.sum() - 3_000 <= high
        assert hard <= set(idx.tolist())  # the hard part: every hard row once per epoch
        shares.append(from_hard.mean())
    assert abs(np.mean(shares) - (ratio + (1 - ratio) * ratio)) < 0.005  # 0.51 expected


def test_hard_examples_come_from_difficulty_fn_and_updates() -> None:
    s = HardExampleMiningSampler(100, difficulty_fn=lambda i: float(i % 10 == 0), hard_ratio=0.1, seed=0)
    assert s.hard_set().tolist() == list(range(0, 100, 10))
    assert s.difficulty_scores[10] == 1.0
    s.update_difficulty_scores(np.arange(100, dtype=float))
    assert s.hard_set().tolist() == list(range(90, 100))
    assert set(range(90, 100)) <= set(s)


def test_hard_example_without_scores_is_uniform_with_random_ties() -> None:
    s = HardExampleMiningSampler(1_000, hard_ratio=0.1, seed=1)
    first = s.hard_set()
    s.set_epoch(1)
    assert len(first) == 100
    assert first.tolist() != s.hard_set().tolist()  # ties broken anew each epoch
    assert first.max() > 500


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_hard_ratio_zero_or_one_is_a_shuffle(ratio: float) -> None:
    idx = HardExampleMiningSampler(50, SCORES[:50], hard_ratio=ratio, seed=2).indices()
    np.testing.assert_array_equal(np.sort(idx), np.arange(50))


def test_hard_scores_are_validated_and_copied() -> None:
    scores = np.array([1.0, 2.0, -3.0])  # negative scores are fine: only the ranking counts
    s = HardExampleMiningSampler(3, scores, hard_ratio=0.34)
    scores[0] = 100.0
    assert s.hard_set().tolist() == [0, 1]
    assert not s.difficulty_scores.flags.writeable
    assert (s.num_samples, s.hard_ratio) == (3, 0.34)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0,), {}, r"num_samples must be an int >= 1, got 0"),
        ((-3,), {}, r"num_samples must be an int >= 1, got -3"),
        ((3,), {"hard_ratio": 1.5}, r"hard_ratio must be in \[0, 1\] .*got 1.5"),
        ((3,), {"hard_ratio": -0.1}, r"hard_ratio must be in \[0, 1\] .*got -0.1"),
        ((3,), {"hard_ratio": float("nan")}, r"hard_ratio must be in \[0, 1\] .*got nan"),
        ((3,), {"hard_ratio": "0.3"}, r"hard_ratio must be a number in \[0, 1\], got '0.3'"),
        ((3, [1.0, 2.0]), {}, r"difficulty_scores has 2 values but num_samples=3; pass one score per row"),
        ((2, [1.0, float("inf")]), {}, r"difficulty_scores\[1\] is inf; every value must be finite"),
        ((2, None, 5), {}, r"difficulty_fn must be a function of the row index, got 5"),
        ((2, None, lambda i: "hard"), {}, r"difficulty_fn\(i\) must return a number for every row i"),
        ((2, None, lambda i: float("nan")), {}, r"difficulty_scores\[0\] is nan"),
    ],
)
def test_bad_hard_example_input_raises_config_error(args: tuple[Any, ...], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        HardExampleMiningSampler(*args, **kwargs)


def test_update_difficulty_scores_checks_length() -> None:
    s = HardExampleMiningSampler(4)
    with pytest.raises(ConfigError, match=r"difficulty_scores has 3 values but num_samples=4"):
        s.update_difficulty_scores([1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match=r"difficulty_scores\[0\] is nan"):
        s.update_difficulty_scores([float("nan")] * 4)


# -- BalancedBatchSampler --------------------------------------------------------------------------


def test_balanced_batches_are_exactly_balanced() -> None:
    labels = np.repeat(["a", "b", "c"], [500, 120, 37])
    s = BalancedBatchSampler(labels, batch_size=12, seed=6)
    batches = list(s)
    assert len(batches) == len(s) == s.num_batches == 125  # ceil(500 / 4): the largest class once
    for batch in batches:
        assert len(batch) == 12
        assert Counter(labels[batch].tolist()) == {"a": 4, "b": 4, "c": 4}
    flat = np.concatenate(batches)
    assert sorted(flat[labels[flat] == "a"].tolist()) == list(range(500))  # every row of the largest class once
    assert set(Counter(flat[labels[flat] == "c"].tolist()).values()) == {13, 14}  # 500 / 37 = 13.5
    assert [labels[b].tolist() for b in batches[:3]] != [sorted(labels[b].tolist()) for b in batches[:3]]


def test_balanced_batch_size_of_the_class_count() -> None:
    s = BalancedBatchSampler([0, 1, 1, 1, 2], batch_size=3, seed=0)
    assert (s.batch_size, s.classes, len(s)) == (3, [0, 1, 2], 3)
    assert all(sorted([0, 1, 1, 1, 2][i] for i in b) == [0, 1, 2] for b in s)


@pytest.mark.parametrize(
    ("labels", "batch_size", "match"),
    [
        ([0, 1, 2], 10, r"batch_size=10 is not a multiple of the 3 classes .*; use batch_size=9 or 12"),
        ([0, 1, 2], 2, r"batch_size=2 is not a multiple of the 3 classes .*; use batch_size=3"),
        ([0, 1], 0, r"batch_size must be an int >= 1, got 0"),
        ([], 2, r"BalancedBatchSampler: labels is empty"),
        (["a", None], 2, r"labels\[1\] is None"),
    ],
)
def test_bad_balanced_input_raises_config_error(labels: list[Any], batch_size: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        BalancedBatchSampler(labels, batch_size)


# -- from_table ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    rng = np.random.default_rng(0)
    n = 2_000
    data = pa.table(
        {
            "id": pa.array(np.arange(n), pa.int64()),
            "w": pa.array(rng.uniform(0.0, 2.0, n)),
            "label": pa.array(rng.choice(["a", "b", "c"], n, p=[0.7, 0.2, 0.1])),
            "y": pa.array(rng.integers(0, 2, n), pa.int32()),
            "loss": pa.array(rng.exponential(size=n)),
            "payload": pa.array([f"row-{i}" * 4 for i in range(n)]),
        }
    )
    wh = lf.Warehouse(tmp_path_factory.mktemp("samplers"))
    t = wh.create_table("s.rows", data.slice(0, 900))
    t.append(data.slice(900))
    return t


@pytest.fixture
def columns_read(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Columns of every Scan read to Arrow while the test runs."""
    seen: list[list[str]] = []
    original = Scan.to_arrow

    def spy(self: Scan) -> pa.Table:
        seen.append(self.columns)
        return original(self)

    monkeypatch.setattr(Scan, "to_arrow", spy)
    return seen


def test_from_table_reads_only_the_column(table: lf.Table, columns_read: list[list[str]]) -> None:
    data = table.to_arrow()
    columns_read.clear()
    w = WeightedRandomSampler.from_table(table, "w", num_samples=5_000, seed=1)
    s = StratifiedSampler.from_table(table, "label", seed=1)
    b = BalancedBatchSampler.from_table(table, "y", batch_size=4)
    h = HardExampleMiningSampler.from_table(table, "loss", hard_ratio=0.1)
    assert columns_read == [["w"], ["label"], ["y"], ["loss"]]
    np.testing.assert_array_equal(w.weights, data.column("w").to_numpy())
    assert s.class_counts == dict(Counter(data.column("label").to_pylist()))
    assert b.classes == [0, 1]
    assert h.num_samples == 2_000
    np.testing.assert_array_equal(h.hard_set(), np.sort(np.argsort(-data.column("loss").to_numpy())[:200]))


def test_from_table_defaults_num_samples_to_the_rows(table: lf.Table) -> None:
    assert len(WeightedRandomSampler.from_table(table, "w")) == 2_000
    s = WeightedRandomSampler.from_table(table, "w", num_samples=10, replacement=False, rank=1, world_size=2)
    assert len(s) == 5


def test_from_scan_keeps_filter_and_row_order_but_reads_only_the_column(
    table: lf.Table, columns_read: list[list[str]]
) -> None:
    scan = table.scan(columns=["id", "payload", "y"], filter=lf.col("id") >= 1_500)
    rows = scan.to_arrow()
    everything = table.to_arrow().to_pydict()
    columns_read.clear()
    s = StratifiedSampler.from_table(scan, "label", seed=2)
    assert columns_read == [["label"]]  # narrowed, although the scan projects other columns
    columns = (everything["id"], everything["label"], everything["loss"])
    by_id = {i: (label, loss) for i, label, loss in zip(*columns, strict=True)}
    ids = rows.column("id").to_pylist()
    assert s.class_counts == dict(Counter(by_id[i][0] for i in ids))
    assert sorted(s) == list(range(500))  # indices are positions in the scan
    h = HardExampleMiningSampler.from_table(scan, "loss")
    assert h.difficulty_scores.tolist() == [by_id[i][1] for i in ids]  # row i of the scan, in the scan's order
    assert columns_read == [["label"], ["loss"]]
    columns_read.clear()
    b = BalancedBatchSampler.from_table(table.scan(columns=["y"]), "y", batch_size=2)
    assert columns_read == [["y"]]
    assert b.num_batches == max(Counter(everything["y"]).values())


@pytest.fixture(scope="module")
def table_with_nulls(tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    data = pa.table({"w": pa.array([1.0, None, 2.0]), "label": pa.array(["a", None, "b"]), "v": [[1], [2], [3]]})
    return lf.Warehouse(tmp_path_factory.mktemp("nulls")).create_table("s.nulls", data)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda t: WeightedRandomSampler.from_table(t, "w"), r"column 'w' of table s.nulls has 1 null value"),
        (lambda t: StratifiedSampler.from_table(t, "label"), r"column 'label' of table s.nulls has 1 null value"),
        (lambda t: BalancedBatchSampler.from_table(t, "label", batch_size=2), r"column 'label' .* 1 null value"),
        (lambda t: HardExampleMiningSampler.from_table(t, "w"), r"column 'w' .* 1 null value"),
        (lambda t: WeightedRandomSampler.from_table(t, "v"), r"column 'v' is list<.*>, expected a number column"),
        (lambda t: StratifiedSampler.from_table(t, "v"), r"column 'v' is list<.*>, expected class labels"),
    ],
)
def test_from_table_bad_column_raises_schema_error(
    table_with_nulls: lf.Table, build: Callable[[lf.Table], object], match: str
) -> None:
    with pytest.raises(SchemaError, match=match):
        build(table_with_nulls)


def test_from_table_names_missing_columns_and_bad_sources(table: lf.Table) -> None:
    with pytest.raises(ColumnNotFoundError, match=r"no column\(s\) \['nope'\]"):
        StratifiedSampler.from_table(table, "nope")
    with pytest.raises(ColumnNotFoundError, match=r"no column\(s\) \['nope'\]"):
        StratifiedSampler.from_table(table.scan(columns=["y"]), "nope")
    with pytest.raises(ConfigError, match=r"expected a lakefeed Table or Scan, got list"):
        StratifiedSampler.from_table([1, 2], "y")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"column must be a column name \(str\), got \['y'\]"):
        StratifiedSampler.from_table(table, ["y"])  # type: ignore[arg-type]


def test_from_table_dictionary_labels(tmp_path_factory: pytest.TempPathFactory) -> None:
    data = pa.table({"label": pa.array(["x", "y", "x", "x"]).dictionary_encode()})
    from lakefeed.samplers._common import label_column

    assert label_column(data.column("label").combine_chunks(), "label", owner="T").tolist() == ["x", "y", "x", "x"]


# -- strategies ------------------------------------------------------------------------------------


def test_strategies_are_frozen_validated_values() -> None:
    shares = {"fraud": 1, "normal": 9}
    s = Stratified("label", shares=shares)
    shares["fraud"] = 100
    assert s.shares == {"fraud": 1, "normal": 9}  # copied
    assert s.fractions() == {"fraud": 0.1, "normal": 0.9}
    assert s == Stratified("label", {"normal": 9, "fraud": 1})
    assert len({s, Stratified("label", {"normal": 9, "fraud": 1}), Stratified("label")}) == 2
    assert Stratified("label").fractions() is None
    with pytest.raises(TypeError):
        s.shares["fraud"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        s.column = "other"  # type: ignore[misc]
    assert Weighted("w") == Weighted("w", replacement=True) != Weighted("w", replacement=False)
    assert hash(Balanced("y")) == hash(Balanced("y"))
    with pytest.raises(TypeError):
        Weighted("w", False)  # type: ignore[call-arg]  # no positional bool


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Weighted(""), r"Weighted: column must be a non-empty column name \(str\), got ''"),
        (lambda: Weighted("w", replacement=1), r"Weighted: replacement must be True or False, got 1"),  # type: ignore[arg-type]
        (lambda: Balanced(3), r"Balanced: column must be a non-empty column name \(str\), got 3"),  # type: ignore[arg-type]
        (lambda: Stratified("y", shares={}), r"Stratified: shares is empty"),
        (lambda: Stratified("y", shares=[("a", 1)]), r"shares must be a dict of label -> share, got list"),  # type: ignore[arg-type]
        (lambda: Stratified("y", shares={"a": 1, "b": 0}), r"shares\['b'\] is 0, which requests zero rows"),
        (lambda: Stratified("y", shares={"a": -1}), r"shares\['a'\] is -1, which requests zero rows"),
        (lambda: Stratified("y", shares={"a": float("nan")}), r"shares\['a'\] is nan; a share is a finite number > 0"),
        (lambda: Stratified("y", shares={"a": True}), r"shares\['a'\] is True; a share is a finite number > 0"),
        (lambda: Stratified("y", shares={1.5: 1}), r"label 1.5 in shares is float; labels are str or int"),  # type: ignore[arg-type]
    ],
)
def test_bad_strategies_raise_config_error(build: Callable[[], object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()


# -- torch -----------------------------------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize("name", [n for n in NAMES if n != "balanced"])
def test_works_as_torch_dataloader_sampler(name: str) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    dataset = TensorDataset(torch.arange(N), torch.as_tensor(LABELS))
    sampler = FACTORIES[name](seed=4, rank=1, world_size=2)
    sampler.set_epoch(1)
    loader = DataLoader(dataset, sampler=sampler, batch_size=8)
    assert len(loader) == math.ceil(len(sampler) / 8)
    got = torch.cat([ids for ids, _ in loader]).numpy()
    np.testing.assert_array_equal(got, sampler.indices())


@pytest.mark.torch
def test_balanced_works_as_torch_batch_sampler() -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    dataset = TensorDataset(torch.arange(N), torch.as_tensor(LABELS))
    sampler = BalancedBatchSampler(LABELS, 6, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler)
    assert len(loader) == len(sampler) == 25
    for ids, labels in loader:
        assert ids.shape == (6,)
        assert torch.bincount(labels, minlength=3).tolist() == [2, 2, 2]


@pytest.mark.torch
def test_weighted_frequencies_match_torch() -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import WeightedRandomSampler as TorchWeighted

    weights = [1.0, 0.5, 3.0, 0.0, 2.0, 8.0]
    draws = 200_000
    theirs = np.bincount(list(TorchWeighted(weights, draws, generator=torch.Generator().manual_seed(0))), minlength=6)
    ours = np.bincount(WeightedRandomSampler(weights, draws, seed=0).indices(), minlength=6)
    assert ours[3] == theirs[3] == 0
    keep = [0, 1, 2, 4, 5]
    assert stats.chi2_contingency(np.stack([ours[keep], theirs[keep]])).pvalue > P_MIN
