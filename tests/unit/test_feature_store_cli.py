"""The skew check and the feature-store commands: `lakefeed fg list|show|insert`, `materialize`, `check-skew`."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import lakefeed as lf
from lakefeed.cli import app
from lakefeed.errors import ConfigError
from lakefeed.store.definitions import WRITE_COLUMN
from lakefeed.store.skew import check_skew

T0 = datetime(2026, 2, 1)
SCHEMA = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64()), ("ctr", pa.float64())])
runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    fs = lf.FeatureStore(tmp_path / "home")
    group = fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=SCHEMA)
    group.insert(
        {
            "user_id": list(range(40)) * 2,
            "ts": [T0] * 40 + [T0 + timedelta(hours=1)] * 40,
            "clicks": list(range(80)),
            "ctr": [i / 100 for i in range(80)],
        }
    )
    fs.create_feature_view("v", ["users.*"])
    fs.close()
    return tmp_path / "home"


def test_a_consistent_store_has_no_skew(home: Path) -> None:
    fs = lf.FeatureStore(home)
    report = check_skew(fs.feature_view("v"), sample=25, now=T0 + timedelta(days=1))
    assert report.checked == 25
    assert report.consistent, report.mismatches


@pytest.mark.parametrize("user", [0, 7, 23, 39])
def test_a_corrupted_online_value_is_found(home: Path, user: int) -> None:
    fs = lf.FeatureStore(home)
    # behind the store's back: a newer write of one user with another value, same event time
    bad = pa.table(
        {
            "user_id": [user],
            "ts": pa.array([T0 + timedelta(hours=1)], pa.timestamp("us")),
            "clicks": [-1],
            "ctr": [(40 + user) / 100],
            WRITE_COLUMN: pa.array([1 << 40], pa.int64()),
        }
    )
    fs.online_store.write_batch("users", bad)
    # a sample as large as the group checks each of its 40 entities once, whatever the seed
    for seed in range(3):
        report = check_skew(fs.feature_view("v"), sample=40, seed=seed, now=T0 + timedelta(days=1))
        assert report.checked == 40
        assert [(m.entity["user_id"], m.feature, m.online, m.offline) for m in report.mismatches] == [
            (user, "clicks", -1, 40 + user)
        ]
    report = check_skew(fs.feature_view("v"), sample=200, now=T0 + timedelta(days=1))
    assert report.checked == 40
    assert [(m.entity["user_id"], m.feature, m.online, m.offline) for m in report.mismatches][:1] == [
        (user, "clicks", -1, 40 + user)
    ]
    assert {m.feature for m in report.mismatches} == {"clicks"}
    with pytest.raises(ConfigError, match="positive"):
        check_skew(fs.feature_view("v"), sample=0)


def test_feature_store_commands(home: Path, tmp_path: Path) -> None:
    listed = runner.invoke(app, ["fg", "list", "--home", str(home)], catch_exceptions=False)
    assert listed.exit_code == 0
    assert "users" in listed.output
    assert "80" in listed.output
    shown = runner.invoke(app, ["fg", "show", "users", "--home", str(home)], catch_exceptions=False)
    assert "['clicks', 'ctr']" in shown.output
    path = tmp_path / "more.parquet"
    pq.write_table(
        pa.table({"user_id": [100], "ts": pa.array([T0], pa.timestamp("us")), "clicks": [5], "ctr": [0.5]}), path
    )
    inserted = runner.invoke(app, ["fg", "insert", "users", str(path), "--home", str(home)], catch_exceptions=False)
    assert "inserted 1 rows into users" in inserted.output
    done = runner.invoke(app, ["materialize", "users", "--home", str(home)], catch_exceptions=False)
    assert "0 rows from 0 insert(s)" in done.output  # inserts wrote online already
    skew = runner.invoke(app, ["check-skew", "v", "--sample", "50", "--home", str(home)], catch_exceptions=False)
    assert skew.exit_code == 0
    assert "0 mismatch(es)" in skew.output
    fs = lf.FeatureStore(home)
    fs.online_store.write_batch(
        "users",
        pa.table(
            {
                "user_id": [100],
                "ts": pa.array([T0], pa.timestamp("us")),
                "clicks": [6],
                "ctr": [0.5],
                WRITE_COLUMN: pa.array([1 << 40], pa.int64()),
            }
        ),
    )
    skew = runner.invoke(app, ["check-skew", "v", "--sample", "500", "--home", str(home)], catch_exceptions=False)
    assert skew.exit_code == 1
    assert "online 6, offline 5" in skew.output


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.parquet", None, "cannot read"),
        ("rows.parquet", b"not parquet at all", "cannot read"),
        ("rows.txt", b"a,b\n1,2\n", "give a .parquet or .csv file"),
    ],
)
def test_fg_insert_of_a_bad_file_is_a_clear_error(
    home: Path, tmp_path: Path, name: str, content: bytes | None, match: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = runner.invoke(app, ["fg", "insert", "users", str(path), "--home", str(home)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert match in str(result.exception)


def test_a_home_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    a_file = tmp_path / "rows.parquet"
    a_file.write_bytes(b"x")
    result = runner.invoke(app, ["fg", "list", "--home", str(a_file)])
    assert isinstance(result.exception, ConfigError)
    assert "is a file; give a folder" in str(result.exception)
