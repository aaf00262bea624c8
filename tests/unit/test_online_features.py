"""Online features: sliding windows, time decay, interactions, the feature cache and event windows."""

from __future__ import annotations

import inspect
import math
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import xxhash

import lakefeed as lf
from lakefeed.errors import ColumnNotFoundError, ConfigError, SchemaError
from lakefeed.transforms import online
from lakefeed.transforms.online import (
    EventWindow,
    EventWindowState,
    FeatureCache,
    InteractionFeatureBuilder,
    OnlineFeatureComputer,
    SlidingWindowAggregator,
    TimeDecayFeatureBuilder,
)
from lakefeed.transforms.online.exact import window_sums

# -- the package and the proposal's API ---------------------------------------------------------------


def test_all_is_sorted_and_resolvable() -> None:
    assert sorted(online.__all__) == online.__all__
    for name in online.__all__:
        assert getattr(online, name) is not None


@pytest.mark.parametrize(
    ("target", "parameters"),
    [
        (SlidingWindowAggregator.__init__, ["self", "window_size", "agg_functions", "step_size"]),
        (SlidingWindowAggregator.aggregate, ["self", "values"]),
        (TimeDecayFeatureBuilder.__init__, ["self", "decay_factor", "aggregation"]),
        (TimeDecayFeatureBuilder.build, ["self", "values", "timestamps", "now"]),
        (InteractionFeatureBuilder.build, ["self", "features", "interactions"]),
        (FeatureCache.__init__, ["self", "max_size", "ttl", "clock"]),
        (FeatureCache.put, ["self", "key", "value"]),
        (FeatureCache.get, ["self", "key"]),
        (OnlineFeatureComputer.compute, ["self", "data"]),
    ],
)
def test_signatures_keep_the_proposals_names(target: Any, parameters: list[str]) -> None:
    assert list(inspect.signature(target).parameters) == parameters


def test_proposal_style_calls_run_positionally() -> None:
    assert SlidingWindowAggregator(2, {"s": sum}, 1).aggregate([1, 2, 3]) == [{"s": 3}, {"s": 5}]
    assert TimeDecayFeatureBuilder(0.9, "weighted_sum").build([1.0], [5.0]) == {"weighted_sum": 1.0}
    assert InteractionFeatureBuilder().build({"a": 2, "b": 3}, [("a", "b", "sum")]) == {"a_sum_b": 5.0}
    cache = FeatureCache(10)
    cache.put("k", {"x": 1})
    assert cache.get("k") == {"x": 1}
    cache.clear()
    assert cache.get_stats()["size"] == 0
    assert all(
        isinstance(c, OnlineFeatureComputer)
        for c in (
            SlidingWindowAggregator(1, {"s": "sum"}),
            TimeDecayFeatureBuilder(0.5),
            InteractionFeatureBuilder(),
            EventWindow("k", "t", events=1).online(),
        )
    )


# -- sliding windows ------------------------------------------------------------------------------------


def test_sliding_windows_are_full_windows_only() -> None:
    agg = SlidingWindowAggregator(3, {"sum": "sum", "values": list}, step_size=2)
    out = agg.aggregate([1, 2, 3, 4, 5, 6])  # the 6 is after the last full window
    assert out == [{"sum": 6.0, "values": [1, 2, 3]}, {"sum": 12.0, "values": [3, 4, 5]}]
    assert agg.aggregate([1, 2]) == []
    assert agg.aggregate([]) == []
    assert agg.compute([1, 2]) == {}
    assert agg.compute([1, 2, 3, 4, 5, 6]) == {"sum": 15.0, "values": [4, 5, 6]}


def test_sliding_window_callables_get_the_original_values() -> None:
    agg = SlidingWindowAggregator(2, {"joined": "".join, "n": len})
    assert agg.aggregate(["a", "b", "c"]) == [{"joined": "ab", "n": 2}, {"joined": "bc", "n": 2}]


def test_sliding_window_builtins_match_pandas_rolling() -> None:
    xs = [3.0, -1.0, 4.0, 1.5, -5.0, 9.0, 2.0, 6.0]
    agg = SlidingWindowAggregator(3, {n: n for n in ("mean", "sum", "min", "max", "std", "var", "median")})
    out = agg.aggregate(np.array(xs))
    rolling = pd.Series(xs).rolling(3)
    for name, series in [
        ("mean", rolling.mean()),
        ("sum", rolling.sum()),
        ("min", rolling.min()),
        ("max", rolling.max()),
        ("std", rolling.std(ddof=0)),
        ("var", rolling.var(ddof=0)),
        ("median", rolling.median()),
    ]:
        assert [o[name] for o in out] == pytest.approx(series.iloc[2:].tolist(), rel=1e-12), name


def test_sliding_window_none_is_nan_and_count_skips_it() -> None:
    out = SlidingWindowAggregator(2, {"count": "count", "sum": "sum"}).aggregate([1.0, None, 2.0])
    assert [o["count"] for o in out] == [1, 1]
    assert all(math.isnan(o["sum"]) for o in out)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "3"])
def test_sliding_window_rejects_bad_sizes(bad: Any) -> None:
    with pytest.raises(ConfigError, match=rf"window_size must be an int greater than 0, got {bad!r}"):
        SlidingWindowAggregator(bad, {"s": "sum"})
    with pytest.raises(ConfigError, match=rf"step_size must be an int greater than 0, got {bad!r}"):
        SlidingWindowAggregator(2, {"s": "sum"}, step_size=bad)


def test_sliding_window_rejects_bad_aggregations() -> None:
    with pytest.raises(ConfigError, match=r"agg_functions\['m'\] = 'average' is not a built-in.*'mean'"):
        SlidingWindowAggregator(2, {"m": "average"})
    with pytest.raises(ConfigError, match=r"agg_functions\['m'\] = 3 is neither a callable"):
        SlidingWindowAggregator(2, {"m": 3})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="non-empty dict"):
        SlidingWindowAggregator(2, {})
    with pytest.raises(ConfigError, match="keys are output names"):
        SlidingWindowAggregator(2, {1: "sum"})  # type: ignore[dict-item]


def test_sliding_window_builtins_need_numbers() -> None:
    with pytest.raises(SchemaError, match="built-in aggregations need numbers, got 'x'"):
        SlidingWindowAggregator(2, {"s": "sum"}).aggregate([1, "x", 3])


# -- time decay -------------------------------------------------------------------------------------------


def test_decay_by_position_weights_the_latest_value_one() -> None:
    builder = TimeDecayFeatureBuilder(0.5, "weighted_sum")
    assert builder.weights(3).tolist() == [0.25, 0.5, 1.0]
    assert builder.build([4.0, 2.0, 1.0]) == {"weighted_sum": 3.0}
    assert TimeDecayFeatureBuilder(0.5, "decayed_count").build([4.0, 2.0, 1.0]) == {"decayed_count": 1.75}


def test_decay_with_timestamps_uses_the_time_unit() -> None:
    # decay_factor 0.5 per unit: a value 2 units older than the latest weighs 0.25
    builder = TimeDecayFeatureBuilder(0.5, "weighted_sum")
    assert builder.build([8.0, 4.0], timestamps=[10.0, 12.0]) == {"weighted_sum": 6.0}
    assert builder.build([8.0, 4.0], timestamps=[12.0, 10.0]) == {"weighted_sum": 9.0}
    assert builder.build([8.0, 4.0], timestamps=[10.0, 12.0], now=13.0) == {"weighted_sum": 3.0}
    mean = TimeDecayFeatureBuilder(0.5).build([8.0, 4.0], timestamps=[10.0, 12.0])["weighted_mean"]
    assert mean == pytest.approx((0.25 * 8 + 4) / 1.25)


def test_decay_factor_one_is_the_plain_mean_and_std() -> None:
    xs = [1.0, 2.0, 6.0]
    assert TimeDecayFeatureBuilder(1.0).build(xs) == {"weighted_mean": 3.0}
    assert TimeDecayFeatureBuilder(1.0, "weighted_std").build(xs)["weighted_std"] == pytest.approx(float(np.std(xs)))


def test_decay_of_nothing() -> None:
    assert TimeDecayFeatureBuilder(0.5, "weighted_sum").build([]) == {"weighted_sum": 0.0}
    assert TimeDecayFeatureBuilder(0.5, "decayed_count").build([], timestamps=[]) == {"decayed_count": 0.0}
    assert math.isnan(TimeDecayFeatureBuilder(0.5).build([])["weighted_mean"])


def test_decay_compute_takes_values_or_a_mapping() -> None:
    builder = TimeDecayFeatureBuilder(0.5, "weighted_sum")
    assert builder.compute([1.0, 1.0]) == {"weighted_sum": 1.5}
    assert builder.compute({"values": [1.0, 1.0], "timestamps": [0.0, 2.0]}) == {"weighted_sum": 1.25}
    with pytest.raises(ConfigError, match="without 'values'"):
        builder.compute({"timestamps": [1.0]})


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.01, math.nan, math.inf, True, "0.5"])
def test_decay_factor_must_be_in_zero_one(bad: Any) -> None:
    with pytest.raises(ConfigError, match=rf"decay_factor must be in \(0, 1\], got {bad!r}"):
        TimeDecayFeatureBuilder(bad)


def test_decay_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"aggregation must be one of .* got 'ewma'"):
        TimeDecayFeatureBuilder(0.5, "ewma")
    builder = TimeDecayFeatureBuilder(0.5)
    with pytest.raises(ConfigError, match="got 2 values but 1 timestamps"):
        builder.build([1.0, 2.0], timestamps=[1.0])
    with pytest.raises(ConfigError, match="timestamps must be finite"):
        builder.build([1.0], timestamps=[math.nan])
    with pytest.raises(ConfigError, match="timestamps must be numbers"):
        builder.build([1.0], timestamps=["noon"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"now=1.0 must be finite and not before the latest timestamp 2.0"):
        builder.build([1.0], timestamps=[2.0], now=1.0)
    with pytest.raises(ConfigError, match=r"now=3\.0 needs timestamps"):
        builder.build([1.0], now=3.0)
    with pytest.raises(SchemaError, match="values must be numbers, got 'x'"):
        builder.build([1.0, "x"])  # type: ignore[list-item]


# -- interactions -------------------------------------------------------------------------------------------


def test_interaction_kinds_and_names() -> None:
    out = InteractionFeatureBuilder().build(
        {"a": 6, "b": 4.0},
        [
            ("a", "b", "product"),
            ("a", "b", "sum"),
            ("a", "b", "difference"),
            ("b", "a", "difference"),
            ("a", "b", "ratio"),
        ],
    )
    assert out == {
        "a_product_b": 24.0,
        "a_sum_b": 10.0,
        "a_difference_b": 2.0,
        "b_difference_a": -2.0,
        "a_ratio_b": 1.5,
    }
    assert all(type(v) is float for v in out.values())


@pytest.mark.parametrize(("a", "b"), [(5.0, 0.0), (0.0, 0.0), (-3.0, -0.0), (0, 0)])
def test_ratio_by_zero_is_the_documented_value(a: float, b: float) -> None:
    assert InteractionFeatureBuilder().build({"a": a, "b": b}, [("a", "b", "ratio")]) == {"a_ratio_b": 0.0}
    custom = InteractionFeatureBuilder(zero_division=-1.0)
    assert custom.build({"a": a, "b": b}, [("a", "b", "ratio")]) == {"a_ratio_b": -1.0}


def test_ratio_nan_and_missing_inputs() -> None:
    builder = InteractionFeatureBuilder()
    assert math.isnan(builder.build({"a": math.nan, "b": 0.0}, [("a", "b", "ratio")])["a_ratio_b"])
    assert math.isnan(builder.build({"a": 1.0, "b": math.nan}, [("a", "b", "ratio")])["a_ratio_b"])
    assert builder.build({"a": None, "b": 2.0}, [("a", "b", "ratio"), ("a", "b", "hash_cross:8")]) == {
        "a_ratio_b": None,
        "a_hash_cross_b": None,
    }
    assert builder.build({"a": 1e308, "b": 1e-10}, [("a", "b", "ratio")]) == {"a_ratio_b": 1.7976931348623157e308}


def test_hash_cross_is_stable_and_in_range() -> None:
    builder = InteractionFeatureBuilder()
    pairs = [("city", "device", "hash_cross:1000")]
    bucket = builder.build({"city": "Oslo", "device": "ios"}, pairs)["city_hash_cross_device"]
    assert bucket == 896  # pinned: a change breaks every trained embedding table
    assert bucket == xxhash.xxh64_intdigest(b"4:Osloios") % 1000  # the documented recipe
    assert builder.build({"city": "Oslo", "device": "android"}, pairs)["city_hash_cross_device"] != bucket
    # the same category text hashes alike whatever its Python type; the pair is ordered and unambiguous
    assert online.interactions.hash_cross(7, "x", 50) == online.interactions.hash_cross(7.0, "x", 50)
    assert online.interactions.hash_cross("ab", "c", 2**61) != online.interactions.hash_cross("a", "bc", 2**61)
    values = {builder.build({"a": i, "b": "z"}, [("a", "b", "hash_cross:10")])["a_hash_cross_b"] for i in range(200)}
    assert values <= set(range(10))
    assert len(values) == 10


def test_build_batch_equals_build_per_row_for_every_input_kind() -> None:
    data: dict[str, list[Any]] = {
        "price": [10.0, 0.0, None, -2.5, math.nan],
        "qty": [3, 0, 1, 0, 2],
        "city": ["Oslo", "Rome", "Oslo", None, "Oslo"],
        "flag": [True, False, True, True, False],
    }
    spec = [
        ("price", "qty", "ratio"),
        ("price", "qty", "product"),
        ("qty", "flag", "sum"),
        ("city", "qty", "hash_cross:64"),
        ("city", "flag", "hash_cross:3"),
    ]
    table = pa.table(data)
    builder = InteractionFeatureBuilder(zero_division=7.0)
    numpy_columns: dict[str, Any] = {
        "price": np.array([10.0, 0.0, -1.0, -2.5, math.nan]),
        **{k: data[k] for k in ("qty", "city", "flag")},
    }
    for batch in (table, table.to_batches()[0], numpy_columns):
        rows = pa.table(numpy_columns).to_pylist() if batch is numpy_columns else table.to_pylist()
        expected = [builder.build(row, spec) for row in rows]
        got = builder.build_batch(batch, spec)
        assert got.schema.types == [pa.float64(), pa.float64(), pa.float64(), pa.int64(), pa.int64()]
        for want, have in zip(expected, got.to_pylist(), strict=True):
            assert list(want) == list(have)
            for name in want:
                if isinstance(want[name], float) and math.isnan(want[name]):
                    assert math.isnan(have[name])
                else:
                    assert have[name] == want[name], name
    dictionary = table.set_column(2, "city", table.column("city").dictionary_encode())
    assert repr(builder.build_batch(dictionary, spec).to_pylist()) == repr(builder.build_batch(table, spec).to_pylist())


def test_compute_uses_the_constructor_interactions() -> None:
    builder = InteractionFeatureBuilder([("a", "b", "difference")])
    assert builder.compute({"a": 1, "b": 3}) == {"a_difference_b": -2.0}
    with pytest.raises(ConfigError, match="compute\\(\\) needs interactions"):
        InteractionFeatureBuilder().compute({"a": 1})


@pytest.mark.parametrize(
    ("interactions", "match"),
    [
        ([("a", "b", "quotient")], r"unknown interaction kind 'quotient' in \('a', 'b', 'quotient'\); use one of"),
        ([("a", "b", "hash_cross:0")], r"'hash_cross:0' needs a positive bucket count, e.g. 'hash_cross:1000'"),
        ([("a", "b", "hash_cross:ten")], "'hash_cross:ten' needs a positive bucket count"),
        ([("a", "b", "hash_cross")], "unknown interaction kind 'hash_cross'"),
        ([("a", "b")], r"each interaction is \(feature_a, feature_b, kind\) of str, got \('a', 'b'\)"),
        ("a,b,sum", "interactions must be a list"),
        ([("a", "b", "sum"), ("a", "b", "sum")], r"give the feature name\(s\) \['a_sum_b'\] more than once"),
    ],
)
def test_bad_interactions_are_config_errors(interactions: Any, match: str) -> None:
    builder = InteractionFeatureBuilder()
    with pytest.raises(ConfigError, match=match):
        builder.build({"a": 1, "b": 2}, interactions)
    with pytest.raises(ConfigError, match=match):
        builder.build_batch({"a": [1], "b": [2]}, interactions)
    with pytest.raises(ConfigError, match=match):
        InteractionFeatureBuilder(interactions)


def test_interaction_input_errors() -> None:
    builder = InteractionFeatureBuilder()
    with pytest.raises(ColumnNotFoundError, match=r"no feature 'c'; features are \['a', 'b'\]"):
        builder.build({"a": 1, "b": 2}, [("a", "c", "sum")])
    with pytest.raises(ColumnNotFoundError, match=r"no column 'c'; columns are \['a', 'b'\]"):
        builder.build_batch({"a": [1], "b": [2]}, [("c", "a", "sum")])
    with pytest.raises(SchemaError, match="feature 'a' is 'x'; arithmetic interactions need numbers"):
        builder.build({"a": "x", "b": 2}, [("a", "b", "product")])
    with pytest.raises(SchemaError, match="column 'a' is string; arithmetic interactions need a numeric column"):
        builder.build_batch({"a": ["x"], "b": [2]}, [("a", "b", "product")])
    with pytest.raises(SchemaError, match=r"hash_cross needs str, int, bool or float categories, got \[1\]"):
        builder.build({"a": [1], "b": 2}, [("a", "b", "hash_cross:4")])
    with pytest.raises(ConfigError, match="zero_division must be a finite number, got inf"):
        InteractionFeatureBuilder(zero_division=math.inf)


# -- the feature cache ---------------------------------------------------------------------------------------


def test_cache_evicts_the_least_recently_used() -> None:
    cache = FeatureCache(max_size=2)
    cache.put("a", {"v": 1})
    cache.put("b", {"v": 2})
    assert cache.get("a") == {"v": 1}  # a is now more recent than b
    cache.put("c", {"v": 3})
    assert cache.get("b") is None
    assert cache.get("a") == {"v": 1}
    cache.put("a", {"v": 10})  # replacing keeps the size
    assert len(cache) == 2
    assert cache.get_stats() == {
        "hits": 2,
        "misses": 1,
        "evictions": 1,
        "expirations": 0,
        "size": 2,
        "max_size": 2,
        "hit_rate": 2 / 3,
    }
    cache.clear()
    assert len(cache) == 0
    assert cache.get_stats()["hits"] == 2  # counters outlive clear()
    assert FeatureCache().get_stats()["hit_rate"] == 0.0


def test_cache_is_not_changed_by_callers_mutating_dicts() -> None:
    cache = FeatureCache()
    original = {"x": 1}
    cache.put("k", original)
    original["x"] = 2
    got = cache.get("k")
    assert got == {"x": 1}
    assert got is not None
    got["x"] = 3
    assert cache.get("k") == {"x": 1}


def test_cache_ttl_with_an_injected_clock() -> None:
    now = [100.0]
    cache = FeatureCache(max_size=3, ttl=10, clock=lambda: now[0])
    cache.put("a", {"v": 1})
    now[0] = 105.0
    cache.put("b", {"v": 2})
    assert cache.get("a") == {"v": 1}  # a hit does not extend the life of a
    now[0] = 110.0
    assert cache.get("a") is None  # expired exactly ttl seconds after its put
    assert cache.get("b") == {"v": 2}
    cache.put("b", {"v": 3})  # a new put restarts the clock
    now[0] = 119.0
    assert cache.get("b") == {"v": 3}
    cache.put("c", {"v": 4})
    now[0] = 125.0
    stats = cache.get_stats()  # b expired at 120: dropped and counted here
    assert (stats["expirations"], stats["size"], stats["hits"], stats["misses"]) == (2, 1, 3, 1)


def test_cache_eviction_of_an_expired_entry_counts_as_expiration() -> None:
    now = [0.0]
    cache = FeatureCache(max_size=1, ttl=1.0, clock=lambda: now[0])
    cache.put("a", {})
    now[0] = 5.0
    cache.put("b", {})
    stats = cache.get_stats()
    assert (stats["evictions"], stats["expirations"]) == (0, 1)


def test_cache_from_eight_threads() -> None:
    cache = FeatureCache(max_size=50)
    errors: list[BaseException] = []
    gets_per_thread = 2_000

    def hammer(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for key in rng.integers(0, 200, size=gets_per_thread).tolist():
                if cache.get(f"k{key}") is None:
                    cache.put(f"k{key}", {"key": key, "thread": seed})
                assert len(cache) <= 50
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = cache.get_stats()
    assert stats["hits"] + stats["misses"] == 8 * gets_per_thread
    assert stats["size"] <= 50
    # every miss put one entry; each entry is either still cached, evicted or replaced a racing put
    assert stats["misses"] >= stats["size"] + stats["evictions"]
    assert stats["hit_rate"] == stats["hits"] / (8 * gets_per_thread)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, None])
def test_cache_rejects_bad_max_size(bad: Any) -> None:
    with pytest.raises(ConfigError, match=rf"max_size must be an int greater than 0, got {bad!r}"):
        FeatureCache(bad)


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, "60", True])
def test_cache_rejects_bad_ttl(bad: Any) -> None:
    with pytest.raises(ConfigError, match=rf"ttl must be a positive number of seconds or None .*got {bad!r}"):
        FeatureCache(ttl=bad)


def test_cache_values_must_be_dicts() -> None:
    with pytest.raises(SchemaError, match="values are feature dicts, got list for key 'k'"):
        FeatureCache().put("k", [1, 2])  # type: ignore[arg-type]


# -- event windows ---------------------------------------------------------------------------------------------

CLICKS = pa.table(
    {
        "user": ["a", "a", "b", "a", "a", "a"],
        "ts": [0, 5, 6, 10, 10, 15],
        "amount": [1.0, 2.0, 4.0, 8.0, None, 16.0],
    }
)


def test_event_window_bounds_exclude_the_start_and_include_the_end_and_ties() -> None:
    spec = EventWindow("user", "ts", value="amount", window=10, prefix="")
    out = spec.apply(CLICKS).to_pydict()
    # row 3 (t=10): window (0, 10] drops the event at 0 exactly 10 before; the null row at 10 is no event
    assert out["count"] == [1, 2, 1, 2, 2, 2]
    assert out["sum"] == [1.0, 3.0, 4.0, 10.0, 10.0, 24.0]
    assert out["mean"] == [1.0, 1.5, 4.0, 5.0, 5.0, 12.0]
    assert out["min"] == [1.0, 1.0, 4.0, 2.0, 2.0, 8.0]
    assert out["max"] == [1.0, 2.0, 4.0, 8.0, 8.0, 16.0]
    assert out["user"] == CLICKS.column("user").to_pylist()


def test_event_window_ties_count_as_simultaneous() -> None:
    table = pa.table({"k": [1, 1, 1], "t": [5, 5, 7], "v": [1.0, 2.0, 4.0]})
    out = EventWindow("k", "t", value="v", window=100, aggs=["sum"]).apply(table)
    assert out.column("v_sum").to_pylist() == [3.0, 3.0, 7.0]  # both events at 5 are in both rows' windows
    # the last N: among equal times the later row is the more recent
    last = EventWindow("k", "t", value="v", events=1, aggs=["sum"]).apply(table)
    assert last.column("v_sum").to_pylist() == [2.0, 2.0, 4.0]
    both = EventWindow("k", "t", value="v", window=2, events=2, aggs=["count"]).apply(table)
    assert both.column("v_count").to_pylist() == [2, 2, 1]


def test_empty_windows_have_count_zero_sum_zero_and_null_rest() -> None:
    table = pa.table({"k": ["x", "y"], "t": [1, 2], "v": pa.array([None, 3.0], pa.float64())})
    out = EventWindow("k", "t", value="v", window=5, prefix="").apply(table).to_pylist()
    assert out[0] == {"k": "x", "t": 1, "count": 0, "sum": 0.0, "mean": None, "min": None, "max": None}
    assert EventWindow("k", "t", value="v", window=5).online().get("nobody") == {
        "v_count": 0,
        "v_sum": 0.0,
        "v_mean": None,
        "v_min": None,
        "v_max": None,
    }


def test_event_window_sums_are_exact_where_prefix_sums_are_not() -> None:
    values = [1e20, 1.0, 1.0]
    table = pa.table({"k": [0] * 3, "t": [0, 1, 2], "v": values})
    out = EventWindow("k", "t", value="v", events=2, aggs=["sum"]).apply(table).column("v_sum").to_pylist()
    assert out == [1e20, 1e20, 2.0]
    prefix = np.concatenate([[0.0], np.cumsum(values)])
    assert prefix[3] - prefix[1] == 0.0  # the float prefix-sum trick loses both 1.0s
    assert window_sums(np.array([1e16, 1.0, -1e16, 1.0]), np.array([0]), np.array([4])).tolist() == [2.0]


def test_float_time_windows_compare_exactly_not_after_rounding() -> None:
    # 0.5 - 0.1 rounds to 0.4, but exactly it is a little below 0.4: the event at 0.4 is inside
    table = pa.table({"k": [1, 1], "t": [0.4, 0.5], "v": [1.0, 1.0]})
    spec = EventWindow("k", "t", value="v", window=0.1, aggs=["count"])
    assert spec.apply(table).column("v_count").to_pylist() == [1, 2]
    state = spec.online()
    for row in table.to_pylist():
        state.update(row)
    assert state.get(1) == {"v_count": 2}
    # 0.8 - 0.3 rounds to 0.5, but exactly it is a little above 0.5: the event at 0.5 is outside
    table = pa.table({"k": [1, 1], "t": [0.5, 0.8], "v": [1.0, 1.0]})
    assert EventWindow("k", "t", value="v", window=0.3, aggs=["count"]).apply(table)["v_count"].to_pylist() == [1, 1]


def test_event_windows_on_timestamps_with_timedelta_or_seconds() -> None:
    start = datetime(2024, 5, 1, 8, 0)
    times = [start, start + timedelta(days=6), start + timedelta(days=7), start + timedelta(days=7, seconds=1)]
    for unit in ("s", "ms", "us", "ns"):
        table = pa.table({"u": [1, 1, 1, 1], "ts": pa.array(times, pa.timestamp(unit, tz="UTC")), "x": [1, 2, 3, 4]})
        for window in (timedelta(days=7), 7 * 86400):
            out = EventWindow("u", "ts", value="x", window=window, aggs=["count", "sum"]).apply(table)
            assert out.column("x_count").to_pylist() == [1, 2, 2, 3], (unit, window)
            assert out.column("x_sum").to_pylist() == [1.0, 3.0, 5.0, 9.0]
    state = EventWindow("u", "ts", value="x", window=timedelta(days=7), aggs=["count"]).online()
    for t, x in zip(times, [1, 2, 3, 4], strict=True):
        state.update({"u": 1, "ts": t.replace(tzinfo=UTC), "x": x})
    assert state.get(1) == {"x_count": 3}
    assert state.get(1, as_of=start + timedelta(days=13, hours=1)) == {"x_count": 2}  # naive: UTC


def test_event_windows_on_dates_and_from_a_dict_of_columns() -> None:
    days = [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 4)]
    out = EventWindow("k", "d", value="v", window=timedelta(days=2), aggs=["count"]).apply(
        {"k": ["a", "a", "a"], "d": days, "v": [1, 2, 3]}
    )
    assert out.column("v_count").to_pylist() == [1, 2, 1]


def test_event_window_reads_only_its_columns_from_tables_and_scans(
    warehouse: lf.Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = CLICKS.append_column("note", pa.array(["x"] * 6))
    table = warehouse.create_table("shop.clicks", data)
    spec = EventWindow("user", "ts", value="amount", window=10, aggs=["sum"])
    expected = spec.apply(CLICKS)
    assert spec.apply(table).equals(expected)
    scan = table.scan(filter=lf.col("user") == "a")
    seen: list[Any] = []
    original = type(table).scan

    def spy(self: Any, columns: Any = None, filter: Any = None, snapshot: Any = None) -> Any:
        seen.append(columns)
        return original(self, columns=columns, filter=filter, snapshot=snapshot)

    monkeypatch.setattr(type(table), "scan", spy)
    out = spec.apply(scan)
    assert seen == [["user", "ts", "amount"]]
    assert out.column("amount_sum").to_pylist() == [1.0, 3.0, 10.0, 10.0, 24.0]
    spec.apply(table)
    assert seen[-1] == ["user", "ts", "amount"]


def test_event_window_over_a_scan_keeps_its_snapshot(warehouse: lf.Warehouse) -> None:
    table = warehouse.create_table("shop.pinned", CLICKS)
    scan = table.scan()
    table.append(pa.table({"user": ["a"], "ts": [11], "amount": [100.0]}))
    spec = EventWindow("user", "ts", value="amount", window=10, aggs=["sum"])
    assert spec.apply(scan).column("amount_sum").to_pylist() == spec.apply(CLICKS).column("amount_sum").to_pylist()
    assert spec.apply(table).num_rows == 7


def test_online_state_matches_offline_and_evicts() -> None:
    spec = EventWindow("user", "ts", value="amount", window=10, events=3)
    state = spec.online()
    offline = spec.apply(CLICKS).to_pylist()
    for row, want in zip(CLICKS.to_pylist(), offline, strict=True):
        state.update(row)
        assert state.get(row["user"], as_of=row["ts"]) == {k: want[k] for k in spec.output_names}
    assert len(state) == 2
    assert "a" in state
    assert state.get("a", as_of=30) == {
        k: v for k, v in zip(spec.output_names, [0, 0.0, None, None, None], strict=True)
    }


def test_online_compute_updates_then_reads() -> None:
    state = EventWindow("k", "t", value="v", window=3, aggs=["sum"]).online()
    assert state.compute({"k": "a", "t": 1, "v": 2.0}) == {"v_sum": 2.0}
    assert state.compute({"k": "a", "t": 2, "v": 3.0}) == {"v_sum": 5.0}
    assert state.compute({"k": "a", "t": 4, "v": None}) == {"v_sum": 3.0}  # no event, but still answered


def test_online_long_streams_compact_their_state() -> None:
    spec = EventWindow("k", "t", value="v", events=5, aggs=["sum", "min", "max"])
    state = spec.online()
    xs = np.random.default_rng(3).normal(size=2_000).tolist()
    for t, x in enumerate(xs):
        state.update({"k": 0, "t": t, "v": x})
    got = state.get(0)
    assert got == {
        "v_sum": spec.apply({"k": [0] * 2000, "t": list(range(2000)), "v": xs}).column("v_sum")[-1].as_py(),
        "v_min": min(xs[-5:]),
        "v_max": max(xs[-5:]),
    }
    inner = state._keys[0]
    assert len(inner.times) < 200


def test_online_rejects_out_of_order_events_and_past_queries() -> None:
    state = EventWindow("k", "t", value="v", window=5).online()
    state.update({"k": "a", "t": 10, "v": 1.0})
    state.update({"k": "a", "t": 10, "v": 2.0})  # equal times are fine
    state.update({"k": "b", "t": 3, "v": 1.0})  # other keys have their own order
    with pytest.raises(ConfigError, match=r"out-of-order event for key 'a': time 9 is before the key's latest event"):
        state.update({"k": "a", "t": 9, "v": 1.0})
    with pytest.raises(ConfigError, match=r"as_of=9 is before the latest event \(or expire time\) of key 'a'"):
        state.get("a", as_of=9)
    assert state.get("a")["v_count"] == 2  # the rejected event changed nothing


def test_online_expire_drops_old_keys_and_refuses_older_events() -> None:
    state = EventWindow("k", "t", value="v", window=5, aggs=["count"]).online()
    state.update({"k": "old", "t": 1, "v": 1.0})
    state.update({"k": "new", "t": 9, "v": 1.0})
    assert state.expire(8) == 1
    assert "old" not in state
    assert state.get("old") == {"v_count": 0}
    assert state.get("new") == {"v_count": 1}
    with pytest.raises(ConfigError, match="is before the time 8 given to expire"):
        state.update({"k": "old", "t": 7, "v": 1.0})
    with pytest.raises(ConfigError, match="before the latest event"):
        state.get("old", as_of=7)
    assert EventWindow("k", "t", events=2).online().expire(100) == 0  # count windows never expire


def test_online_event_errors() -> None:
    state = EventWindow("k", "t", value="v", window=5).online()
    with pytest.raises(ColumnNotFoundError, match=r"event has no field\(s\) \['v'\]; it has \['k', 't'\]"):
        state.update({"k": 1, "t": 1})
    with pytest.raises(SchemaError, match="event key 'k' is None"):
        state.update({"k": None, "t": 1, "v": 1.0})
    with pytest.raises(SchemaError, match="event value 'v' is '3'; expected a number"):
        state.update({"k": 1, "t": 1, "v": "3"})
    with pytest.raises(SchemaError, match="event time 't' is 'noon'; expected a datetime, date, int or float"):
        state.update({"k": 1, "t": "noon", "v": 1.0})
    with pytest.raises(SchemaError, match="every event needs a finite time"):
        state.update({"k": 1, "t": math.nan, "v": 1.0})
    state.update({"k": 1, "t": 1, "v": 1.0})
    with pytest.raises(SchemaError, match=r"but earlier times were numbers"):
        state.update({"k": 1, "t": datetime(2024, 1, 1), "v": 1.0})
    with pytest.raises(SchemaError, match=r"as_of is .*\(dates\), but earlier times were numbers"):
        state.get(1, as_of=date(2024, 1, 1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "give window= .*events= .*or both"),
        ({"window": 0}, "window must be a positive timedelta or number, got 0"),
        ({"window": -timedelta(days=1)}, r"window must be positive, got datetime.timedelta\(days=-1\)"),
        ({"window": math.inf}, "window must be a positive timedelta or number, got inf"),
        ({"window": "7d"}, "got '7d'; pass a positive timedelta"),
        ({"window": 2**60}, "larger than 2\\*\\*53"),
        ({"events": 0}, "events must be an int greater than 0, got 0"),
        ({"events": 2.0}, "events must be an int greater than 0, got 2.0"),
        ({"window": 5, "aggs": ["sum", "p99"]}, r"aggs must name each of .* got \['sum', 'p99'\]"),
        ({"window": 5, "aggs": []}, "aggs must name each"),
        ({"window": 5, "aggs": ["sum", "sum"]}, "aggs must name each"),
        ({"window": 5, "value": None, "aggs": ["sum"]}, r"aggs \['sum'\] need a value column"),
        ({"window": 5, "value": ""}, "value must be a column name"),
        ({"window": 5, "prefix": 3}, "prefix must be a str"),
        ({"window": 5, "aggs": ["count"], "prefix": "", "value": "v"}, None),
    ],
)
def test_event_window_spec_errors(kwargs: dict[str, Any], match: str | None) -> None:
    arguments = {"value": "v", **kwargs}
    if match is None:
        assert EventWindow("k", "t", **arguments).output_names == ["count"]
        return
    with pytest.raises(ConfigError, match=match):
        EventWindow("k", "t", **arguments)


def test_event_window_output_may_not_replace_key_or_time() -> None:
    with pytest.raises(ConfigError, match=r"output column\(s\) \['count'\] would replace the key or time column"):
        EventWindow("count", "t", events=3)


def test_event_window_offline_input_errors() -> None:
    spec = EventWindow("k", "t", value="v", window=5)
    with pytest.raises(
        ColumnNotFoundError, match=r"no column\(s\) \['v'\] in the input table; columns are \['k', 't'\]"
    ):
        spec.apply(pa.table({"k": [1], "t": [1]}))
    with pytest.raises(SchemaError, match=r"value column 'v' is string, expected an integer or float column"):
        spec.apply(pa.table({"k": [1], "t": [1], "v": ["x"]}))
    with pytest.raises(SchemaError, match="time column 't' is string; expected a timestamp, date, integer or float"):
        spec.apply(pa.table({"k": [1], "t": ["2024-01-01"], "v": [1.0]}))
    with pytest.raises(SchemaError, match=r"time column 't' has 1 null\(s\)"):
        spec.apply(pa.table({"k": [1, 1], "t": [1, None], "v": [1.0, 2.0]}))
    with pytest.raises(SchemaError, match="time column 't' holds NaN or infinite values"):
        spec.apply(pa.table({"k": [1], "t": [math.nan], "v": [1.0]}))
    with pytest.raises(SchemaError, match=r"key column 'k' has 1 null\(s\)"):
        spec.apply(pa.table({"k": [1, None], "t": [1, 2], "v": [1.0, 2.0]}))
    with pytest.raises(SchemaError, match="cannot read list"):
        spec.apply([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(ColumnNotFoundError, match=r"no column\(s\) \['v'\] in the input mapping"):
        spec.apply({"k": [1], "t": [1]})


def test_event_window_rejects_keys_and_times_it_cannot_order(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = EventWindow("k", "t", value="v", window=5)
    with pytest.raises(SchemaError, match=r"key column 'k' is list<item: int64>, which cannot be grouped"):
        spec.apply(pa.table({"k": [[1], [2]], "t": [1, 2], "v": [1.0, 2.0]}))
    with pytest.raises(SchemaError, match=r"time column 't' holds values of 2\*\*63 or more"):
        spec.apply(pa.table({"k": [1], "t": pa.array([2**63], pa.uint64()), "v": [1.0]}))
    with pytest.raises(ConfigError, match="key must be a column name"):
        EventWindow(1, "t", events=1)  # type: ignore[arg-type]
    monkeypatch.setattr(online.exact, "_MAX_ROWS", 2)
    with pytest.raises(lf.errors.UnsupportedOperationError, match="at most 2 values at once, got 3; split the input"):
        spec.apply(pa.table({"k": [1, 1, 1], "t": [1, 2, 3], "v": [1.0, 2.0, 3.0]}))


def test_event_window_state_type() -> None:
    assert isinstance(EventWindow("k", "t", events=1).online(), EventWindowState)
