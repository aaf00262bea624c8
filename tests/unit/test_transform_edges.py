"""Edges of fitting and sampling: renamed columns, pandas nullable integers, extreme magnitudes,
decay far in the future, and exact hard-example counts."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import lakefeed as lf
import lakefeed.transforms as lt
from lakefeed.samplers import HardExampleMiningSampler
from lakefeed.transforms.online import TimeDecayFeatureBuilder


def test_fitting_on_a_scan_after_a_rename_reads_the_renamed_column(tmp_path: Path) -> None:
    table = lf.Warehouse(tmp_path).create_table("t.r", pa.table({"a": [1.0, 2.0, 3.0], "b": [100.0, 200.0, 300.0]}))
    for old, new in [("a", "tmp"), ("b", "a"), ("tmp", "b")]:  # swap the names: a rename makes no snapshot
        with table.pyiceberg_table.update_schema() as update:
            update.rename_column(old, new)
    table.refresh()
    from_scan = lt.MinMaxScaler(columns=["a"]).fit(table.scan())
    from_table = lt.MinMaxScaler(columns=["a"]).fit(table)
    assert from_scan.data_min_.tolist() == from_table.data_min_.tolist() == [100.0]
    assert from_scan.data_max_.tolist() == [300.0]


@pytest.mark.parametrize(
    "make", [lambda: lt.HashBucket(16, columns=["user"]), lambda: lt.OneHotEncoder(columns=["user"])]
)
def test_pandas_nullable_integers_are_integers_with_nulls(make: object) -> None:
    frame = pd.DataFrame({"user": pd.array([7, None, 3], dtype="Int64")})
    arrow = pa.table({"user": pa.array([7, None, 3], pa.int64())})
    from_pandas = make().fit(frame)  # type: ignore[operator]
    from_arrow = make().fit(arrow)  # type: ignore[operator]
    assert from_pandas.to_spec() == from_arrow.to_spec()
    expected = pa.table(from_arrow.transform(arrow))
    assert pa.table(from_arrow.transform(frame)).equals(expected)
    assert pa.table(from_pandas.transform(frame)).equals(expected)


def test_standard_scaler_with_huge_values_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    x = 1e155 + rng.standard_normal(1_000) * 1e142
    scaler = lt.StandardScaler(columns=["x"]).fit(pa.table({"x": x}))
    assert np.isfinite(scaler.var_).all()
    np.testing.assert_allclose(scaler.var_, [x.var()], rtol=1e-6)
    np.testing.assert_allclose(scaler.mean_, [x.mean()], rtol=1e-12)


@pytest.mark.parametrize("aggregation", ["weighted_mean", "weighted_std"])
def test_decay_mean_and_std_do_not_depend_on_now(aggregation: str) -> None:
    builder = TimeDecayFeatureBuilder(0.5, aggregation)
    values, times = [1.0, 2.0], [0.0, 1.0]
    at_latest = builder.build(values, times)[aggregation]
    far = builder.build(values, times, now=1_100.0)[aggregation]  # every weight relative to now underflows
    w = np.array([0.5, 1.0])
    mean = float((w * values).sum() / w.sum())
    expected = (
        mean
        if aggregation == "weighted_mean"
        else math.sqrt(float((w * (np.array(values) - mean) ** 2).sum() / w.sum()))
    )
    assert at_latest == pytest.approx(expected, rel=1e-12)
    assert far == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("ratio", [0.07, 0.14, 0.28, 0.55, 0.56, 0.1, 0.3, 1 / 3])
def test_hard_example_count_is_the_ceiling_of_the_ratio_as_written(ratio: float) -> None:
    n = 100
    sampler = HardExampleMiningSampler(n, np.arange(n, dtype=np.float64), hard_ratio=ratio, seed=0)
    assert sampler.num_hard == math.ceil(Fraction(repr(ratio)) * n)
