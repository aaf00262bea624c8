"""Online features against independent references: brute force, exact rationals, pandas.

The event-window tests check three implementations on the same generated events: the
vectorised offline path (``EventWindow.apply``), the incremental online path
(``EventWindowState``) and a brute-force reference computing each window from its definition
with exact rational arithmetic (``fractions.Fraction``). All three must agree exactly: equal
floats bit for bit (NaN with NaN), equal ints, None with None.
"""

from __future__ import annotations

import math
import random
import struct
import sys
from collections import OrderedDict
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakefeed.transforms.online import (
    EventWindow,
    FeatureCache,
    InteractionFeatureBuilder,
    SlidingWindowAggregator,
    TimeDecayFeatureBuilder,
)
from lakefeed.transforms.online.exact import scaled, unscale, window_sums

AGGS = ["count", "sum", "mean", "min", "max"]
EPOCH = datetime(1970, 1, 1)
BASE = datetime(2024, 3, 10, 12, 0, 0)


def arrow_schema(**types: Any) -> pa.Schema:
    fields: list[pa.Field[Any]] = [pa.field(name, arrow_type) for name, arrow_type in types.items()]
    return pa.schema(fields)


def same(a: object, b: object) -> bool:
    """Exactly equal: floats bit for bit (any NaN equals any NaN), other values by type and ==."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)
    return type(a) is type(b) and a == b


def exact_float(total: Fraction) -> float:
    try:
        return float(total)  # Fraction -> float is correctly rounded
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def exact_sum(values: list[float]) -> float:
    if any(math.isnan(v) for v in values) or (math.inf in values and -math.inf in values):
        return math.nan
    if math.inf in values:
        return math.inf
    if -math.inf in values:
        return -math.inf
    return exact_float(sum((Fraction(v) for v in values), Fraction(0)))


def reference_aggregates(values: list[float]) -> dict[str, Any]:
    """The aggregates of a window's values, from their definitions."""
    n = len(values)
    total = exact_sum(values)
    low = high = None
    if n:
        if any(math.isnan(v) for v in values):
            low = high = math.nan
        else:
            low, high = min(v + 0.0 for v in values), max(v + 0.0 for v in values)
    return {"count": n, "sum": total, "mean": total / n if n else None, "min": low, "max": high}


def reference_windows(
    rows: list[dict[str, Any]], exact_time: Any, window: Fraction | None, last: int | None, with_value: bool = True
) -> list[dict[str, Any]]:
    """Brute force: for every row, the events of its key with ``T - W < t <= T``, then the last N."""
    out = []
    for row in rows:
        now = exact_time(row["t"])
        events = [
            (exact_time(other["t"]), j, other["v"])
            for j, other in enumerate(rows)
            if other["k"] == row["k"]
            and (not with_value or other["v"] is not None)
            and exact_time(other["t"]) <= now
            and (window is None or now - window < exact_time(other["t"]))
        ]
        events.sort(key=lambda e: (e[0], e[1]))  # equal times: the later row is the more recent
        if last is not None:
            events = events[-last:] if events else []
        out.append(reference_aggregates([float(e[2]) if with_value else 0.0 for e in events]))
    return out


def run_online(spec: EventWindow, rows: list[dict[str, Any]], exact_time: Any, rng: random.Random) -> list[Any]:
    """Feed each key's events in time order, keys interleaved at random; ask after each group of equal times."""
    groups: dict[Any, list[list[int]]] = {}
    for i in sorted(range(len(rows)), key=lambda i: exact_time(rows[i]["t"])):  # stable: ties keep row order
        per_key = groups.setdefault(rows[i]["k"], [])
        if per_key and exact_time(rows[per_key[-1][0]]["t"]) == exact_time(rows[i]["t"]):
            per_key[-1].append(i)
        else:
            per_key.append([i])
    state = spec.online()
    answers: list[Any] = [None] * len(rows)
    pending = {k: list(v) for k, v in groups.items()}
    while pending:
        key = rng.choice(sorted(pending, key=repr))
        group = pending[key].pop(0)
        if not pending[key]:
            del pending[key]
        for i in group:
            state.update(rows[i])
        for i in group:
            answers[i] = state.get(key, as_of=rows[i]["t"])
    return answers


def check_agree(spec: EventWindow, table: pa.Table, exact_time: Any, expected: list[Any], seed: int) -> None:
    rows = table.to_pylist()
    offline = spec.apply(table).to_pylist()
    online = run_online(spec, rows, exact_time, random.Random(seed))
    names = dict(zip(spec.aggs, spec.output_names, strict=True))
    for i, want in enumerate(expected):
        for agg, name in names.items():
            assert same(offline[i][name], want[agg]), (i, agg, offline[i][name], want[agg], rows)
            assert same(online[i][name], want[agg]), (i, agg, online[i][name], want[agg], rows)


special_values = st.sampled_from(
    [0.0, -0.0, 1e16, -1e16, 1.0, 0.1, -0.3, 5e-324, -5e-324, 1e308, -1e308, math.inf, -math.inf, math.nan]
)
values = st.one_of(
    st.none(),
    special_values,
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 5).map(float),
)


@st.composite
def int_time_events(draw: st.DrawFn) -> tuple[list[dict[str, Any]], Any]:
    keys = draw(st.sampled_from([["a", "b", "c"], ["only"]]))
    n = draw(st.integers(0, 25))
    rows = [{"k": draw(st.sampled_from(keys)), "t": draw(st.integers(-3, 12)), "v": draw(values)} for _ in range(n)]
    return rows, Fraction


def _windows(numbers: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, int | None]]:
    return st.one_of(
        st.tuples(numbers, st.none()),
        st.tuples(st.none(), st.integers(1, 4)),
        st.tuples(numbers, st.integers(1, 4)),
    )


@settings(max_examples=250, deadline=None)
@given(
    events=int_time_events(),
    limits=_windows(st.one_of(st.integers(1, 6), st.sampled_from([0.5, 2.5, 1e-9, 1e30]))),
    seed=st.integers(0, 2**16),
)
def test_event_windows_int_times_offline_online_reference_agree(
    events: tuple[list[dict[str, Any]], Any], limits: tuple[Any, int | None], seed: int
) -> None:
    rows, exact_time = events
    window, last = limits
    spec = EventWindow("k", "t", value="v", window=window, events=last)
    table = pa.table(
        {"k": [r["k"] for r in rows], "t": pa.array([r["t"] for r in rows], pa.int64()), "v": [r["v"] for r in rows]},
        schema=arrow_schema(k=pa.string(), t=pa.int64(), v=pa.float64()),
    )
    expected = reference_windows(rows, exact_time, None if window is None else Fraction(window), last)
    check_agree(spec, table, exact_time, expected, seed)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 25),
    data=st.data(),
    limits=_windows(st.sampled_from([0.1, 0.3, 0.2, 0.25])),
    seed=st.integers(0, 2**16),
)
def test_event_windows_float_times_are_exact_at_the_boundary(
    n: int, data: st.DataObject, limits: tuple[Any, int | None], seed: int
) -> None:
    # times k/10 are not exact binary fractions: t - 0.3 rounds, the window test must not
    rows = [
        {
            "k": data.draw(st.sampled_from([1, 2])),
            "t": data.draw(st.integers(0, 8)) / 10,
            "v": data.draw(values),
        }
        for _ in range(n)
    ]
    window, last = limits
    spec = EventWindow("k", "t", value="v", window=window, events=last, prefix="f_")
    table = pa.table(
        {"k": pa.array([r["k"] for r in rows], pa.int64()), "t": [r["t"] for r in rows], "v": [r["v"] for r in rows]},
        schema=arrow_schema(k=pa.int64(), t=pa.float64(), v=pa.float64()),
    )
    expected = reference_windows(rows, Fraction, None if window is None else Fraction(window), last)
    check_agree(spec, table, Fraction, expected, seed)


def _seconds(moment: Any) -> Fraction:
    if isinstance(moment, pd.Timestamp):
        return Fraction(moment.value, 10**9)
    if isinstance(moment, datetime):
        return Fraction((moment - EPOCH) // timedelta(microseconds=1), 10**6)
    return Fraction((moment - date(1970, 1, 1)).days * 86400)


@settings(max_examples=120, deadline=None)
@given(
    unit=st.sampled_from(["s", "ms", "us", "ns"]),
    n=st.integers(0, 20),
    data=st.data(),
    limits=_windows(
        st.one_of(
            st.sampled_from([timedelta(seconds=2), timedelta(milliseconds=2500), timedelta(microseconds=1)]),
            st.sampled_from([1, 3, 1.5, 0.25]),
        )
    ),
    seed=st.integers(0, 2**16),
)
def test_event_windows_timestamps_agree_in_every_unit(
    unit: str, n: int, data: st.DataObject, limits: tuple[Any, int | None], seed: int
) -> None:
    step = {"s": timedelta(seconds=1), "ms": timedelta(milliseconds=500), "us": timedelta(microseconds=250_000)}
    tick = step.get(unit, timedelta(milliseconds=250))
    rows = [
        {
            "k": data.draw(st.sampled_from("xy")),
            "t": BASE + data.draw(st.integers(0, 12)) * tick,
            "v": data.draw(values),
        }
        for _ in range(n)
    ]
    window, last = limits
    spec = EventWindow("k", "t", value="v", window=window, events=last)
    table = pa.table(
        {
            "k": [r["k"] for r in rows],
            "t": pa.array([r["t"] for r in rows], pa.timestamp(cast(Any, unit))),
            "v": [r["v"] for r in rows],
        },
        schema=arrow_schema(k=pa.string(), t=pa.timestamp(cast(Any, unit)), v=pa.float64()),
    )
    width = None if window is None else _seconds(EPOCH + window) if isinstance(window, timedelta) else Fraction(window)
    expected = reference_windows(rows, _seconds, width, last)
    check_agree(spec, table, _seconds, expected, seed)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 20),
    data=st.data(),
    window=st.sampled_from([timedelta(days=1), timedelta(hours=36), timedelta(days=3)]),
    seed=st.integers(0, 2**16),
)
def test_event_windows_dates_and_count_only(n: int, data: st.DataObject, window: timedelta, seed: int) -> None:
    rows = [
        {
            "k": data.draw(st.sampled_from("pq")),
            "t": date(2024, 1, 1) + timedelta(days=data.draw(st.integers(0, 8))),
            "v": None,
        }
        for _ in range(n)
    ]
    spec = EventWindow("k", "t", window=window)  # no value: count only, every row is an event
    assert spec.output_names == ["count"]
    table = pa.table(
        {"k": [r["k"] for r in rows], "t": pa.array([r["t"] for r in rows], pa.date32())},
        schema=arrow_schema(k=pa.string(), t=pa.date32()),
    )
    expected = reference_windows(rows, _seconds, _seconds(EPOCH + window), None, with_value=False)
    offline = spec.apply(table).column("count").to_pylist()
    online = run_online(spec, table.to_pylist(), _seconds, random.Random(seed))
    assert offline == [e["count"] for e in expected]
    assert [o["count"] for o in online] == offline


finite_or_not = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=300, deadline=None)
@given(xs=st.lists(finite_or_not, max_size=30), data=st.data())
def test_window_sums_are_the_correctly_rounded_exact_sums(xs: list[float], data: st.DataObject) -> None:
    n = len(xs)
    bounds = data.draw(st.lists(st.tuples(st.integers(0, n), st.integers(0, n)), min_size=1, max_size=10))
    lo = np.array([min(a, b) for a, b in bounds], dtype=np.int64)
    hi = np.array([max(a, b) for a, b in bounds], dtype=np.int64)
    got = window_sums(np.array(xs, dtype=np.float64), lo, hi).tolist()
    for (a, b), value in zip(zip(lo.tolist(), hi.tolist(), strict=True), got, strict=True):
        assert same(value, exact_sum(xs[a:b]) + 0.0), (xs[a:b], value)


@settings(max_examples=300, deadline=None)
@given(xs=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=30))
def test_online_exact_sum_matches_rationals(xs: list[float]) -> None:
    assert same(unscale(sum((scaled(x) for x in xs), 0)), exact_sum(xs) + 0.0)


# -- interactions: the batch path equals the dict path bit for bit ---------------------------------

numbers = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**60), 2**60), st.just(0.0), st.just(-0.0)
)
categories = st.one_of(st.none(), st.sampled_from(["red", "blue", "", "ü", "1"]))


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(numbers, numbers, categories, st.integers(-3, 3) | st.integers(-(2**62), 2**62) | st.none()),
        max_size=20,
    ),
    zero=st.sampled_from([0.0, -1.0, 1e9]),
)
def test_interaction_batch_equals_rows(rows: list[tuple[Any, Any, Any, Any]], zero: float) -> None:
    # one column type per column: Arrow float64 for numbers (ints converted as the dict path does)
    cols = {
        "x": [None if r[0] is None else float(r[0]) for r in rows],
        "y": [None if r[1] is None else float(r[1]) for r in rows],
        "c": [r[2] for r in rows],
        "i": [r[3] for r in rows],
    }
    table = pa.table(cols, schema=arrow_schema(x=pa.float64(), y=pa.float64(), c=pa.string(), i=pa.int64()))
    spec = [
        (a, b, k) for k in ("product", "sum", "difference", "ratio") for a, b in (("x", "y"), ("y", "x"), ("x", "i"))
    ]
    spec += [("c", "i", "hash_cross:97"), ("i", "c", "hash_cross:5"), ("c", "c", "hash_cross:1000")]
    builder = InteractionFeatureBuilder(zero_division=zero)
    batch = builder.build_batch(table, spec).to_pylist()
    for row, got in zip(table.to_pylist(), batch, strict=True):
        want = builder.build(row, spec)
        assert list(got) == list(want)
        for name in want:
            assert same(got[name], want[name]), (name, row, got[name], want[name])


@settings(max_examples=200, deadline=None)
@given(a=st.floats(allow_nan=False, allow_infinity=False), b=st.floats(allow_nan=False, allow_infinity=False))
def test_safe_ratio_is_finite_for_finite_inputs(a: float, b: float) -> None:
    out = InteractionFeatureBuilder().build({"a": a, "b": b}, [("a", "b", "ratio")])["a_ratio_b"]
    assert math.isfinite(out)
    if b == 0:
        assert out == 0.0
    elif math.isfinite(a / b):
        assert same(out, a / b)
    else:
        assert out == math.copysign(sys.float_info.max, a / b)


# -- sliding windows and decay against references ----------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    xs=st.lists(st.floats(-1e6, 1e6), max_size=40),
    size=st.integers(1, 8),
    step=st.integers(1, 4),
)
def test_sliding_windows_match_brute_force_and_pandas(xs: list[float], size: int, step: int) -> None:
    names = ["sum", "mean", "min", "max", "std", "var", "count", "median", "first", "last"]
    agg = SlidingWindowAggregator(size, {n: n for n in names} | {"py_sum": sum, "n": len}, step_size=step)
    out = agg.aggregate(xs)
    starts = list(range(0, len(xs) - size + 1, step))
    assert len(out) == len(starts) == agg.num_windows(len(xs))
    for start, got in zip(starts, out, strict=True):
        window = xs[start : start + size]
        assert (got["py_sum"], got["n"], got["count"]) == (sum(window), size, size)
        assert (got["min"], got["max"]) == (min(window), max(window))
        assert (got["first"], got["last"]) == (window[0], window[-1])
        assert got["sum"] == pytest.approx(math.fsum(window), rel=1e-9, abs=1e-6)
        assert got["mean"] == pytest.approx(math.fsum(window) / size, rel=1e-9, abs=1e-6)
        assert got["median"] == pytest.approx(float(np.median(window)))
        # std/var against numpy's two passes over the window: pandas' running rolling variance
        # drifts after large values (0.0011 for [0, 0, 0] right after 188015.0)
        scale = max(1.0, *map(abs, window))
        assert got["std"] == pytest.approx(float(np.std(window)), rel=1e-9, abs=1e-9 * scale)
        assert got["var"] == pytest.approx(float(np.var(window)), rel=1e-9, abs=1e-9 * scale**2)
    if out:
        rolling = pd.Series(xs).rolling(size)
        for name, series in {
            "mean": rolling.mean(),
            "sum": rolling.sum(),
            "min": rolling.min(),
            "max": rolling.max(),
            "median": rolling.median(),
        }.items():
            expected = series.iloc[size - 1 :: step].tolist()
            assert [o[name] for o in out] == pytest.approx(expected, rel=1e-6, abs=1e-3), name


@settings(max_examples=150, deadline=None)
@given(xs=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=30), alpha=st.floats(0.01, 0.99))
def test_decay_by_position_is_pandas_ewm(xs: list[float], alpha: float) -> None:
    series = pd.Series(xs).ewm(alpha=alpha, adjust=True)
    mean = TimeDecayFeatureBuilder(1 - alpha).build(xs)["weighted_mean"]
    std = TimeDecayFeatureBuilder(1 - alpha, "weighted_std").build(xs)["weighted_std"]
    assert mean == pytest.approx(series.mean().iloc[-1], rel=1e-9, abs=1e-9)
    assert std == pytest.approx(series.std(bias=True).iloc[-1], rel=1e-6, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(
    points=st.lists(st.tuples(st.floats(0, 1e4), st.floats(-1e3, 1e3)), min_size=1, max_size=30),
    halflife=st.floats(0.5, 1e3),
)
def test_decay_with_timestamps_is_pandas_ewm_with_times(points: list[tuple[float, float]], halflife: float) -> None:
    points = sorted(points)
    times, xs = [p[0] for p in points], [p[1] for p in points]
    stamps = pd.to_datetime(times, unit="s")
    ewm = pd.Series(xs).ewm(halflife=pd.Timedelta(seconds=halflife), times=stamps)  # type: ignore[arg-type]
    expected = ewm.mean().iloc[-1]
    builder = TimeDecayFeatureBuilder(0.5 ** (1 / halflife))
    assert builder.build(xs, timestamps=times)["weighted_mean"] == pytest.approx(expected, rel=1e-6, abs=1e-6)
    shuffled = list(zip(times, xs, strict=True))
    random.Random(0).shuffle(shuffled)  # timestamps, not positions, decide the weights
    again = builder.build([p[1] for p in shuffled], timestamps=[p[0] for p in shuffled])["weighted_mean"]
    assert again == pytest.approx(expected, rel=1e-6, abs=1e-6)


# -- the cache against a model -----------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 4),
    ops=st.lists(
        st.tuples(st.sampled_from(["put", "get", "tick"]), st.sampled_from("abcdef"), st.integers(0, 3)), max_size=60
    ),
)
def test_cache_matches_an_lru_model(size: int, ops: list[tuple[str, str, int]]) -> None:
    now = [0.0]
    cache = FeatureCache(size, ttl=5.0, clock=lambda: now[0])
    model: OrderedDict[str, tuple[dict[str, int], float]] = OrderedDict()
    hits = misses = 0
    for op, key, number in ops:
        if op == "tick":
            now[0] += number
        elif op == "put":
            cache.put(key, {"v": number})
            model[key] = ({"v": number}, now[0] + 5.0)
            model.move_to_end(key)
            while len(model) > size:
                model.popitem(last=False)
        else:
            entry = model.get(key)
            if entry is not None and entry[1] <= now[0]:
                del model[key]
                entry = None
            if entry is None:
                misses += 1
            else:
                hits += 1
                model.move_to_end(key)
            assert cache.get(key) == (None if entry is None else entry[0])
    stats = cache.get_stats()
    live = sum(1 for _, expires in model.values() if expires > now[0])
    assert (stats["hits"], stats["misses"], stats["size"]) == (hits, misses, live)
    assert stats["size"] <= size
