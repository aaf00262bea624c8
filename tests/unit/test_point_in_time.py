"""Point-in-time joins: the rule on hand-made cases, types, sources, the report and every error."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import ColumnNotFoundError, ConfigError, SchemaError
from lakefeed.store.offline import FeatureSource, GroupReport, point_in_time_join
from lakefeed.tables.base import ReadPlan, TablePart

T0 = datetime(2024, 3, 1)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def history(**columns: Any) -> pa.Table:
    base: dict[str, Any] = {"user_id": [1, 1, 1, 2], "ts": [at(0), at(2), at(4), at(1)], "clicks": [10, 20, 40, 7]}
    base.update(columns)
    return pa.table(base)


def spine(**columns: Any) -> pa.Table:
    base: dict[str, Any] = {
        "user_id": [1, 1, 1, 2, 3, 1],
        "ts": [at(-1), at(2), at(3), at(5), at(5), at(9)],
        "label": [0, 1, 0, 1, 1, 0],
    }
    base.update(columns)
    return pa.table(base)


def join(spine_table: pa.Table, *sources: FeatureSource, **kwargs: Any) -> pa.Table:
    return point_in_time_join(spine_table, list(sources), spine_time=kwargs.pop("spine_time", "ts"), **kwargs).table


def clicks(spine_table: pa.Table, hist: pa.Table, **kwargs: Any) -> list[Any]:
    src = FeatureSource("g", hist, keys=["user_id"], event_time="ts", features=["clicks"], **kwargs)
    return join(spine_table, src).column("clicks").to_pylist()


# -- the rule -----------------------------------------------------------------------------------


def test_latest_row_at_or_before_the_spine_time() -> None:
    # before any row -> null; equal time counts; between rows -> the earlier; unknown key -> null
    assert clicks(spine(), history()) == [None, 20, 20, 7, None, 40]


def test_spine_columns_kept_and_features_appended() -> None:
    s = spine(extra=pa.array([["a"], [], None, ["b", "c"], ["d"], []], pa.list_(pa.string())))
    s = s.replace_schema_metadata({"origin": "test"})
    out = join(s, FeatureSource("g", history(), keys=["user_id"], event_time="ts"))
    assert out.select(s.column_names).equals(s)
    assert out.column_names == [*s.column_names, "clicks"]
    assert out.schema.metadata == {b"origin": b"test"}


def test_ttl_boundary_is_exclusive() -> None:
    """A row exactly ``ttl`` old has expired; one microsecond younger it is valid."""
    hist = pa.table({"user_id": [1], "ts": [at(0)], "clicks": [5]})
    s = pa.table({"user_id": [1, 1, 1], "ts": [at(2), at(2) - timedelta(microseconds=1), at(0)]})
    src = FeatureSource("g", hist, keys=["user_id"], event_time="ts", ttl=timedelta(hours=2))
    result = point_in_time_join(s, [src], spine_time="ts")
    assert result.table.column("clicks").to_pylist() == [None, 5, 5]
    assert result.report["g"] == GroupReport("g", spine_rows=3, matched=2, without_features=1, expired=1)


def test_ttl_on_the_newest_row_only() -> None:
    """If the newest row at or before ts is too old, every older one is older still: null."""
    hist = pa.table({"user_id": [1, 1], "ts": [at(0), at(10)], "clicks": [1, 2]})
    s = pa.table({"user_id": [1, 1, 1], "ts": [at(1), at(12), at(30)]})
    assert clicks(s, hist, ttl=timedelta(hours=3)) == [1, 2, None]


def test_ttl_finer_than_the_time_unit_is_exact() -> None:
    """Seconds times, a 1.5 s TTL: ages 0 and 1 s qualify, 2 s does not."""
    hist = pa.table({"user_id": [1], "ts": pa.array([100], pa.timestamp("s")), "clicks": [5]})
    s = pa.table({"user_id": [1, 1, 1], "ts": pa.array([100, 101, 102], pa.timestamp("s"))})
    assert clicks(s, hist, ttl=timedelta(seconds=1, microseconds=500_000)) == [5, 5, None]


def test_integer_times_take_an_integer_ttl() -> None:
    hist = pa.table({"user_id": [1, 1], "ts": pa.array([10, 20], pa.int32()), "clicks": [1, 2]})
    s = pa.table({"user_id": [1, 1, 1, 1], "ts": [9, 12, 22, 25]})
    assert clicks(s, hist, ttl=5) == [None, 1, 2, None]


def test_ties_broken_by_created_time_then_write_order_then_row_order() -> None:
    hist = pa.table(
        {
            "user_id": [1, 1, 1, 1, 2, 2, 3, 3],
            "ts": [at(1)] * 8,
            "created": [at(5), at(7), at(7), None, None, None, at(1), at(1)],
            "seq": [9, 1, 2, 9, None, None, 3, None],
            "clicks": [1, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    s = pa.table({"user_id": [1, 2, 3], "ts": [at(2)] * 3})
    # 1: created 7 beats 5 and null; among created 7, seq 2 wins. 2: all null -> the later row.
    # 3: seq 3 beats a null seq.
    assert clicks(s, hist, created_time="created", write_order="seq") == [3, 6, 7]
    # without created time / write order: the later row in the source order
    assert clicks(s, hist.drop_columns(["created", "seq"])) == [4, 6, 8]


def test_created_time_is_only_a_tie_break() -> None:
    """A newer event time wins over a newer created time, and created time is not compared with ts."""
    hist = pa.table({"user_id": [1, 1], "ts": [at(1), at(2)], "created": [at(100), at(50)], "clicks": [1, 2]})
    s = pa.table({"user_id": [1], "ts": [at(3)]})
    assert clicks(s, hist, created_time="created") == [2]


def test_late_rows_in_any_order() -> None:
    hist = history().take([3, 2, 0, 1])
    assert clicks(spine(), hist) == [None, 20, 20, 7, None, 40]


def test_null_feature_values_count_as_found() -> None:
    hist = pa.table({"user_id": [1, 1], "ts": [at(0), at(5)], "clicks": [3, None]})
    s = pa.table({"user_id": [1, 1], "ts": [at(1), at(6)]})
    result = point_in_time_join(s, [FeatureSource("g", hist, keys=["user_id"], event_time="ts")], spine_time="ts")
    assert result.table.column("clicks").to_pylist() == [3, None]
    assert result.report["g"].matched == 2
    assert result.report["g"].without_features == 0


def test_null_keys_and_null_times_never_match() -> None:
    hist = pa.table({"user_id": [None, 1, 1], "ts": [at(0), None, at(0)], "clicks": [1, 2, 3]})
    s = pa.table({"user_id": [None, 1, 1], "ts": [at(1), None, at(1)]})
    result = point_in_time_join(s, [FeatureSource("g", hist, keys=["user_id"], event_time="ts")], spine_time="ts")
    assert result.table.column("clicks").to_pylist() == [None, None, 3]
    assert result.report["g"].without_features == 2


def test_shuffled_spine_with_duplicates_keeps_its_order() -> None:
    s = spine().take([5, 1, 1, 3, 0, 5, 2, 4, 1])
    out = join(s, FeatureSource("g", history(), keys=["user_id"], event_time="ts"))
    assert out.column("label").to_pylist() == s.column("label").to_pylist()
    assert out.column("clicks").to_pylist() == [40, 20, 20, 7, None, 40, 20, None, 20]


def test_composite_keys_named_differently_in_the_spine() -> None:
    hist = pa.table(
        {
            "uid": pa.array([1, 1, 2], pa.int32()),
            "shop": pa.array(["a", "b", "a"], pa.large_string()),
            "t": [at(0), at(0), at(0)],
            "spend": [1.5, 2.5, 3.5],
        }
    )
    s = pa.table({"user_id": [1, 1, 2, 2], "shop_id": ["b", "a", "a", "b"], "ts": [at(1)] * 4})
    src = FeatureSource("spend", hist, keys=["uid", "shop"], event_time="t")
    out = join(s, src, spine_keys={"spend": ["user_id", "shop_id"]})
    assert out.column("spend").to_pylist() == [2.5, 1.5, 3.5, None]


def test_group_without_keys_joins_on_time_only() -> None:
    hist = pa.table({"day": [date(2024, 1, 1), date(2024, 1, 3)], "index": [100.0, 110.0]})
    s = pa.table({"user_id": [1, 2, 3], "day": [date(2023, 12, 31), date(2024, 1, 2), date(2024, 1, 9)]})
    out = join(s, FeatureSource("market", hist, keys=[], event_time="day"), spine_time="day")
    assert out.column("index").to_pylist() == [None, 100.0, 110.0]


def test_several_sources_with_output_names_and_a_report_each() -> None:
    users = FeatureSource("users", history(), keys=["user_id"], event_time="ts", output_names={"clicks": "u_clicks"})
    items = FeatureSource(
        "items",
        pa.table({"item": ["x", "y"], "ts": [at(0), at(0)], "clicks": [100, 200]}),
        keys=["item"],
        event_time="ts",
        output_names={"clicks": "i_clicks"},
    )
    s = spine(item=["x", "y", "z", "x", "y", None])
    result = point_in_time_join(s, [users, items], spine_time="ts")
    assert result.table.column_names[-2:] == ["u_clicks", "i_clicks"]
    assert result.table.column("i_clicks").to_pylist() == [None, 200, None, 100, 200, None]
    assert list(result.report) == ["users", "items"]
    assert result.report["users"] == GroupReport("users", 6, matched=4, without_features=2, expired=0)
    assert result.report["items"] == GroupReport("items", 6, matched=3, without_features=3, expired=0)


def test_features_default_to_every_other_column() -> None:
    hist = history(created=[at(0)] * 4, seq=[1, 2, 3, 4], views=[5, 6, 7, 8])
    src = FeatureSource("g", hist, keys=["user_id"], event_time="ts", created_time="created", write_order="seq")
    assert src.feature_columns == ("clicks", "views")
    assert join(spine(), src).column_names[-2:] == ["clicks", "views"]


def test_the_event_time_can_be_a_feature_under_another_name() -> None:
    src = FeatureSource(
        "g", history(), keys=["user_id"], event_time="ts", features=["ts"], output_names={"ts": "clicks_at"}
    )
    assert join(spine(), src).column("clicks_at").to_pylist() == [None, at(2), at(2), at(1), None, at(4)]


def test_feature_types_come_back_exactly_and_nullable() -> None:
    schema = pa.schema(
        [
            pa.field("user_id", pa.int64(), nullable=False),
            pa.field("ts", pa.timestamp("us"), nullable=False),
            pa.field("tags", pa.large_list(pa.string()), nullable=False),
            pa.field("city", pa.dictionary(pa.int32(), pa.string())),
            pa.field("score", pa.float16()),
            pa.field("amount", pa.decimal128(12, 3), metadata={"unit": "EUR"}),
            pa.field("at", pa.timestamp("ns", tz="Europe/Paris")),
        ]
    )
    hist = pa.table(
        {
            "user_id": [1],
            "ts": [at(0)],
            "tags": [["a"]],
            "city": pa.array(["Oslo"]).dictionary_encode().cast(pa.dictionary(pa.int32(), pa.string())),
            "score": pa.array([1.5], pa.float32()).cast(pa.float16()),
            "amount": pa.array([Decimal("1.5")], pa.decimal128(12, 3)),
            "at": pa.array([1], pa.int64()).cast(pa.timestamp("ns", tz="Europe/Paris")),
        },
        schema=schema,
    )
    out = join(
        pa.table({"user_id": [1, 2], "ts": [at(1), at(1)]}), FeatureSource("g", hist, keys=["user_id"], event_time="ts")
    )
    for name in ("tags", "city", "score", "amount", "at"):
        assert out.schema.field(name) == schema.field(name).with_nullable(True), name
    assert out.schema.field("amount").metadata == {b"unit": b"EUR"}
    assert out.column("tags").to_pylist() == [["a"], None]


def test_empty_spine_and_empty_history() -> None:
    empty_spine = spine().slice(0, 0)
    result = point_in_time_join(
        empty_spine, [FeatureSource("g", history(), keys=["user_id"], event_time="ts")], spine_time="ts"
    )
    assert result.table.num_rows == 0
    assert result.table.column_names == [*empty_spine.column_names, "clicks"]
    assert result.report["g"] == GroupReport("g", 0, 0, 0, 0)
    assert clicks(spine(), history().slice(0, 0)) == [None] * 6


def test_no_sources_returns_the_spine() -> None:
    result = point_in_time_join(spine(), [], spine_time="ts")
    assert result.table.equals(spine())
    assert result.report == {}


# -- types --------------------------------------------------------------------------------------


def test_timestamp_units_are_widened() -> None:
    hist = history(ts=pa.array([at(0), at(2), at(4), at(1)], pa.timestamp("s")))
    s = spine(ts=pa.array([at(-1), at(2) - timedelta(microseconds=1), at(3), at(5), at(5), at(9)], pa.timestamp("ns")))
    assert clicks(s, hist) == [None, 10, 20, 7, None, 40]


def test_zoned_times_compare_as_instants() -> None:
    hist = history(ts=pa.array([at(0), at(2), at(4), at(1)], pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")))
    # 02:30 in Paris (UTC+1 in March) is 01:30 UTC: the 02:00 UTC row is still in the future
    s = pa.table({"user_id": [1, 1], "ts": pa.array([at(1.5), at(3.5)], pa.timestamp("us"))})
    s = s.set_column(1, "ts", pa.compute.assume_timezone(s.column("ts"), "Europe/Paris"))
    assert clicks(s, hist) == [10, 20]


def test_dates_and_a_date_spine_against_timestamps() -> None:
    hist = pa.table({"user_id": [1, 1], "ts": [date(2024, 1, 1), date(2024, 1, 5)], "clicks": [1, 2]})
    s = pa.table(
        {"user_id": [1, 1, 1], "ts": pa.array([date(2024, 1, 4), date(2024, 1, 5), date(2024, 1, 9)], pa.date64())}
    )
    assert clicks(s, hist, ttl=timedelta(days=4)) == [1, 2, None]
    # a date is midnight of that day when compared with naive timestamps
    hist_ts = pa.table({"user_id": [1, 1], "ts": [datetime(2024, 1, 4), datetime(2024, 1, 4, 12)], "clicks": [1, 2]})
    assert clicks(s, hist_ts) == [1, 2, 2]


def test_key_types_of_one_family_match() -> None:
    hist = pa.table(
        {
            "user_id": pa.array(["a", "b"]).dictionary_encode(),
            "ts": [at(0), at(0)],
            "clicks": [1, 2],
        }
    )
    s = pa.table({"user_id": pa.array(["b", "a", "c"], pa.large_string()), "ts": [at(1)] * 3})
    assert clicks(s, hist) == [2, 1, None]
    hist_u = pa.table({"user_id": pa.array([2**63 + 5, 7], pa.uint64()), "ts": [at(0)] * 2, "clicks": [1, 2]})
    s_i = pa.table({"user_id": pa.array([7, -1], pa.int8()), "ts": [at(1)] * 2})
    assert clicks(s_i, hist_u) == [2, None]


# -- sources ------------------------------------------------------------------------------------


def test_reader_and_record_batch_sources() -> None:
    hist = history(extra=["x"] * 4)
    reader = pa.RecordBatchReader.from_batches(hist.schema, hist.to_batches(max_chunksize=1))
    assert clicks(spine(), reader) == [None, 20, 20, 7, None, 40]  # type: ignore[arg-type]
    assert clicks(spine(), hist.to_batches()[0]) == [None, 20, 20, 7, None, 40]  # type: ignore[arg-type]


def test_scan_source_reads_its_snapshot_and_filter_and_only_the_needed_columns(tmp_path: Path) -> None:
    wh = lf.Warehouse(tmp_path / "home")
    table = wh.create_table("fs.h", history(region=["eu", "us", "eu", "eu"], unused=["x"] * 4))
    pinned = table.scan(columns=["user_id"], filter=lf.col("region") == "eu")
    table.append(pa.table({"user_id": [1], "ts": [at(5)], "clicks": [99], "region": ["eu"], "unused": ["y"]}))
    src = FeatureSource("g", pinned, keys=["user_id"], event_time="ts", features=["clicks"])
    # the filter drops the 20-clicks row, the snapshot the appended row
    assert join(spine(), src).column("clicks").to_pylist() == [None, 10, 10, 7, None, 40]
    current = FeatureSource("g", table.scan(), keys=["user_id"], event_time="ts", features=["clicks"])
    assert join(spine(), current).column("clicks").to_pylist() == [None, 20, 20, 7, None, 99]


class _LoggedPart(TablePart):
    """A part over in-memory rows that logs the columns of each read; ``lose`` drops rows from feature reads."""

    def __init__(self, name: str, rows: pa.Table, log: list[tuple[str, tuple[str, ...]]], *, lose: int = 0) -> None:
        self.path = name
        self.num_rows = rows.num_rows
        self.estimated_bytes = 1 << 40  # every part a task of its own
        self.exact_rows = False
        self._rows, self._log, self._lose = rows, log, lose

    def read(self, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        self._log.append((self.path, tuple(plan.columns)))
        rows = self._rows.slice(self._lose if "clicks" in plan.columns else 0)
        for batch in rows.select(plan.read_columns).to_batches(max_chunksize=2):
            out = plan.finish(batch, filtered=False)
            if out.num_rows:
                yield out


def logged_scan(tmp_path: Path, hist: pa.Table, log: list[tuple[str, tuple[str, ...]]], **kwargs: Any) -> lf.Scan:
    table = lf.Warehouse(tmp_path / "home").create_table("fs.logged", hist)
    parts: list[TablePart] = [
        _LoggedPart(f"p{i}", hist.slice(i * 3, 3), log, **(kwargs if i == 1 else {})) for i in range(3)
    ]
    return lf.Scan(table, snapshot_id=None, table_schema=hist.schema, columns=None, filter=None, parts=lambda _: parts)


def test_scan_source_reads_join_columns_first_then_features_of_winning_tasks_only(tmp_path: Path) -> None:
    hist = pa.table(
        {
            "user_id": [1, 1, 2, 3, 3, 3, 4, 4, 5],
            "ts": [at(h) for h in (0, 1, 0, 0, 1, 2, 0, 3, 1)],
            "clicks": list(range(9)),
            "text": [f"t{i}" for i in range(9)],
        }
    )
    s = pa.table({"user_id": [4, 1, 9, 1, 4, 5, None], "ts": [at(5), at(0), at(5), at(9), at(1), at(0), at(5)]})
    log: list[tuple[str, tuple[str, ...]]] = []
    src = FeatureSource("g", logged_scan(tmp_path, hist, log), keys=["user_id"], event_time="ts")
    for threads in (1, 2):
        log.clear()
        result = point_in_time_join(s, [src], spine_time="ts", threads=threads)
        assert result.table.column("clicks").to_pylist() == [7, 0, None, 1, 6, None, None]
        assert result.table.column("text").to_pylist() == ["t7", "t0", None, "t1", "t6", None, None]
        # every part gives its join columns; only p0 and p2 hold winning rows, so p1's features stay unread
        assert sorted(log) == [
            ("p0", ("clicks", "text")),
            ("p0", ("user_id", "ts")),
            ("p1", ("user_id", "ts")),
            ("p2", ("clicks", "text")),
            ("p2", ("user_id", "ts")),
        ]
        arrow = point_in_time_join(s, [FeatureSource("g", hist, keys=["user_id"], event_time="ts")], spine_time="ts")
        assert result.table.equals(arrow.table)
        assert result.report == arrow.report


def test_scan_source_whose_reads_disagree_is_an_internal_error(tmp_path: Path) -> None:
    hist = pa.table({"user_id": list(range(9)), "ts": [at(0)] * 9, "clicks": list(range(9))})
    log: list[tuple[str, tuple[str, ...]]] = []
    src = FeatureSource("g", logged_scan(tmp_path, hist, log, lose=1), keys=["user_id"], event_time="ts")
    with pytest.raises(
        RuntimeError, match=r"internal error: task 1 .* gave 3 rows when its join columns were read and 2"
    ):
        point_in_time_join(pa.table({"user_id": [4], "ts": [at(1)]}), [src], spine_time="ts")
    # a task without a winning row is not read again, so it cannot disagree
    assert point_in_time_join(pa.table({"user_id": [7], "ts": [at(1)]}), [src], spine_time="ts").table.column(
        "clicks"
    ).to_pylist() == [7]


def test_scan_source_needs_its_columns_in_the_table(tmp_path: Path) -> None:
    table = lf.Warehouse(tmp_path / "home").create_table("fs.h", history())
    with pytest.raises(ColumnNotFoundError, match=r"feature source 'g' has no column\(s\) \['views'\]"):
        FeatureSource("g", table.scan(), keys=["user_id"], event_time="ts", features=["views"])


# -- errors -------------------------------------------------------------------------------------


def src_of(hist: pa.Table | None = None, **kwargs: Any) -> FeatureSource:
    kwargs.setdefault("keys", ["user_id"])
    kwargs.setdefault("event_time", "ts")
    return FeatureSource(kwargs.pop("name", "g"), history() if hist is None else hist, **kwargs)


def test_mixing_naive_and_aware_times_is_a_schema_error() -> None:
    s = spine(ts=pa.array([at(0)] * 6, pa.timestamp("us", tz="UTC")))
    with pytest.raises(
        SchemaError, match=r"spine time 'ts' is timestamp\[us, tz=UTC\].*event time 'ts' of feature group 'g'.*naive"
    ):
        join(s, src_of())
    with pytest.raises(SchemaError, match="cannot mix time-zone-aware and naive"):
        join(
            pa.table({"user_id": [1], "d": [date(2024, 1, 1)]}),
            src_of(history(ts=pa.array([at(0)] * 4, pa.timestamp("us", tz="UTC")))),
            spine_time="d",
        )


def test_incomparable_time_types_name_both_columns() -> None:
    s = spine(when=[1, 2, 3, 4, 5, 6])
    with pytest.raises(
        SchemaError, match=r"spine time 'when' is int64, event time 'ts' of feature group 'g' is timestamp\[us\]"
    ):
        join(s, src_of(), spine_time="when")
    with pytest.raises(SchemaError, match="time column 'when' must be a timestamp, a date or an integer"):
        join(spine(when=["x"] * 6), src_of(), spine_time="when")


def test_lossy_time_cast_is_a_schema_error() -> None:
    s = spine(ts=pa.array([2**62] * 6, pa.int64()).cast(pa.timestamp("s")))
    with pytest.raises(SchemaError, match=r"spine time 'ts' \(timestamp\[s\]\) cannot be converted to timestamp\[us\]"):
        join(s, src_of())


def test_key_type_errors() -> None:
    with pytest.raises(
        SchemaError, match=r"spine key 'user_id' \(string\) and key 'user_id' of feature group 'g' \(int64\)"
    ):
        join(spine(user_id=["1"] * 6), src_of())
    with pytest.raises(SchemaError, match="keys must be integers, strings, binary, booleans or dates"):
        join(spine(user_id=[1.0] * 6), src_of(history(user_id=[1.0] * 4)))


def test_order_column_type_error() -> None:
    with pytest.raises(SchemaError, match="created_time column 'created' of feature group 'g' is string"):
        join(spine(), src_of(history(created=["x"] * 4), created_time="created"))


def test_output_name_clashes_are_config_errors() -> None:
    with pytest.raises(
        ConfigError,
        match=(
            r"feature 'label' of feature group 'g' would be written to column 'label', which spine column 'label' "
            r"already uses; rename it with output_names=\{'label': 'g__label'\}"
        ),
    ):
        join(spine(), src_of(history(label=[1] * 4)))
    with pytest.raises(ConfigError, match="column 'clicks', which feature 'clicks' of feature group 'a' already uses"):
        join(spine(), src_of(name="a"), src_of(name="b"))
    with pytest.raises(ConfigError, match=r"several features write column\(s\) \['x'\]"):
        src_of(history(views=[1] * 4), output_names={"clicks": "x", "views": "x"})
    with pytest.raises(ConfigError, match=r"renames \['nope'\], which are not among its features \['clicks'\]"):
        src_of(output_names={"nope": "x"})
    with pytest.raises(ConfigError, match=r"output_names gives invalid column name\(s\) \[''\]"):
        src_of(output_names={"clicks": ""})
    with pytest.raises(ConfigError, match="output_names must map feature -> column name"):
        src_of(output_names=["clicks"])


def test_source_argument_errors() -> None:
    with pytest.raises(ConfigError, match="needs a non-empty name"):
        src_of(name="")
    with pytest.raises(ConfigError, match=r"data must be a pyarrow Table.*got dict"):
        FeatureSource("g", {"user_id": [1]}, keys=["user_id"], event_time="ts")  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError,
        match=r"keys of feature source 'g' must be a list of column names, got 'user_id'; write \['user_id'\]",
    ):
        src_of(keys="user_id")
    with pytest.raises(ConfigError, match="features of feature source 'g' names a column twice"):
        src_of(features=["clicks", "clicks"])
    with pytest.raises(
        ColumnNotFoundError, match=r"feature source 'g' has no column\(s\) \['views'\]; its columns are"
    ):
        src_of(features=["views"])
    with pytest.raises(ConfigError, match="created_time must be a column name, got 3"):
        src_of(created_time=3)
    with pytest.raises(ConfigError, match=r"ttl must be positive, got datetime\.timedelta\(0\)"):
        src_of(ttl=timedelta(0))
    with pytest.raises(ConfigError, match="ttl must be positive, got -1"):
        src_of(ttl=-1)
    with pytest.raises(ConfigError, match="ttl must be a timedelta"):
        src_of(ttl=True)


def test_ttl_kind_must_fit_the_time_kind() -> None:
    with pytest.raises(
        ConfigError, match="feature group 'g' has timestamp event times, so its ttl must be a timedelta, got 5"
    ):
        join(spine(), src_of(ttl=5))
    ints = history(ts=[1, 2, 3, 4])
    with pytest.raises(ConfigError, match="has integer event times, so its ttl must be an int"):
        join(spine(ts=[1] * 6), src_of(ints, ttl=timedelta(days=1)))


def test_join_argument_errors() -> None:
    with pytest.raises(ConfigError, match="spine must be a pyarrow Table, got dict"):
        point_in_time_join({"ts": []}, [src_of()], spine_time="ts")  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"sources must be a list of FeatureSource, got FeatureSource; write \[source\]"
    ):
        point_in_time_join(spine(), src_of(), spine_time="ts")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sources must be FeatureSource objects, got str"):
        point_in_time_join(spine(), ["g"], spine_time="ts")  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"feature source name\(s\) \['g'\] appear more than once"):
        point_in_time_join(spine(), [src_of(), src_of(output_names={"clicks": "c2"})], spine_time="ts")
    with pytest.raises(ColumnNotFoundError, match="the spine has no time column 'when'"):
        point_in_time_join(spine(), [src_of()], spine_time="when")
    with pytest.raises(
        ColumnNotFoundError, match=r"the spine has no key column\(s\) \['user_id'\] for feature source 'g'"
    ):
        point_in_time_join(spine().drop_columns(["user_id"]), [src_of()], spine_time="ts")
    with pytest.raises(ConfigError, match=r"spine_keys names feature source\(s\) \['other'\]"):
        point_in_time_join(spine(), [src_of()], spine_time="ts", spine_keys={"other": ["user_id"]})
    with pytest.raises(
        ConfigError,
        match=r"spine_keys\['g'\] = \['user_id', 'label'\] must name one spine column per group key \['user_id'\]",
    ):
        point_in_time_join(spine(), [src_of()], spine_time="ts", spine_keys={"g": ["user_id", "label"]})
    with pytest.raises(ConfigError, match="spine_keys must map a source name to spine columns"):
        point_in_time_join(spine(), [src_of()], spine_time="ts", spine_keys=["user_id"])  # type: ignore[arg-type]
    doubled = pa.Table.from_arrays([spine().column(0), spine().column(1), spine().column(1)], ["user_id", "ts", "ts"])
    with pytest.raises(ConfigError, match=r"the spine has several columns named \['ts'\]"):
        point_in_time_join(doubled, [src_of()], spine_time="ts")
    with pytest.raises(ConfigError, match="memory_limit='lots' is not accepted by DuckDB"):
        point_in_time_join(spine(), [src_of()], spine_time="ts", memory_limit="lots")
    with pytest.raises(ConfigError, match="threads must be a positive int or None"):
        point_in_time_join(spine(), [src_of()], spine_time="ts", threads=0)
