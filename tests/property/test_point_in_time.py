"""The point-in-time join against a brute-force oracle on generated histories and spines.

The oracle works on exact integer nanoseconds (or the integers themselves) from the
definition: for each spine row and group, the candidates are the rows with equal, non-null keys
and event time <= the spine time; the newest wins if ``spine - event < ttl``; ties go to the
greatest (created time, write order, position), nulls lowest. Generated data are made to
collide: few entities, times on a coarse grid (exact ties, TTL edges exactly on the boundary,
sub-tick TTLs), late rows (random order), duplicate rows, null keys, times and features.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from unittest.mock import patch

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lakefeed as lf
from lakefeed.store import _pit_gather
from lakefeed.store.offline import FeatureSource, point_in_time_join
from lakefeed.tables.base import TablePart
from lakefeed.tables.iceberg import IcebergTable, _IcebergFilePart

DAY_NS = 86_400 * 10**9
UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


@dataclass(frozen=True)
class TimeMode:
    """Spine and event time types, the grids (ns) their values lie on, and the TTL grid."""

    name: str
    spine_type: pa.DataType
    event_type: pa.DataType
    spine_grid: int
    event_grid: int
    spine_points: int
    event_points: int
    ttl_grid: int  # TTLs are k * ttl_grid + offset
    ttl_offsets: tuple[int, ...]


MODES = [
    TimeMode("int", pa.int64(), pa.int32(), 1, 1, 14, 12, 1, (0,)),
    TimeMode("s_vs_ms", pa.timestamp("ms"), pa.timestamp("s"), 5 * 10**8, 10**9, 26, 12, 5 * 10**8, (0, -1000, 1000)),
    TimeMode(
        "zoned_us_vs_ns",
        pa.timestamp("us", tz="UTC"),
        pa.timestamp("ns", tz="Asia/Kolkata"),
        1000,
        1500,
        30,
        20,
        1000,
        (0, 1000),
    ),
    TimeMode("date", pa.date32(), pa.date32(), DAY_NS, DAY_NS, 14, 12, DAY_NS, (0, DAY_NS // 2, -1000)),
    TimeMode("date_vs_ts", pa.date32(), pa.timestamp("s"), DAY_NS, DAY_NS // 4, 7, 28, DAY_NS // 4, (0, 1000)),
    TimeMode("ts_vs_date64", pa.timestamp("ms"), pa.date64(), DAY_NS // 4, DAY_NS, 28, 7, DAY_NS // 4, (0, -1000)),
]


def arrow_times(ns: list[int | None], t: pa.DataType) -> pa.Array[Any]:
    """Exact ns values as an Arrow column of type ``t`` (each value is a whole number of its unit)."""
    if pa.types.is_integer(t):
        return pa.array(ns, t)
    if pa.types.is_date32(t):
        return pa.array([None if v is None else v // DAY_NS for v in ns], pa.int32()).cast(t)
    if pa.types.is_date64(t):
        return pa.array([None if v is None else v // 10**6 for v in ns], pa.int64()).cast(t)
    unit = UNIT_NS[cast(pa.TimestampType, t).unit]
    return pa.array([None if v is None else v // unit for v in ns], pa.int64()).cast(t)


# -- the group layouts: how a group's keys are named and typed, and which spine columns they match --

KEY_LAYOUTS: dict[str, Any] = {
    # same names as the spine
    "id": {"keys": ["id"], "types": [pa.int32()], "spine": ["id"]},
    # composite key named differently from the spine: spine_keys maps it
    "user_region": {"keys": ["user", "reg"], "types": [pa.int64(), pa.large_string()], "spine": ["id", "region"]},
    # a dictionary-encoded string key
    "name": {"keys": ["name"], "types": [pa.dictionary(pa.int8(), pa.string())], "spine": ["name"]},
}
# None is one value in seven, so most rows have full keys
IDS = [0, 1, 2, 0, 1, 2, None]
REGIONS = ["eu", "us", "eu", "us", "eu", "us", None]
NAMES = ["ann", "bob", "", "ann", "bob", "", None]
SPINE_DOMAINS: dict[str, list[Any]] = {"id": IDS, "region": REGIONS, "name": NAMES}


@dataclass
class GroupCase:
    name: str
    layout: str
    rows: list[dict[str, Any]]  # keys (by group key name), t (ns), c, w, v; position = index
    created: bool
    write_order: bool
    ttl_ns: int | None
    container: str
    chunks: int


@dataclass
class Case:
    mode: TimeMode
    spine: list[dict[str, Any]]  # id, region, name, t (ns), label
    groups: list[GroupCase]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    mode = draw(st.sampled_from(MODES))
    spine_row = st.fixed_dictionaries(
        {
            "id": st.sampled_from(IDS),
            "region": st.sampled_from(REGIONS),
            "name": st.sampled_from(NAMES),
            "t": st.one_of(
                st.integers(0, mode.spine_points).map(lambda n: n * mode.spine_grid),
                st.just(None),
            ),
        }
    )
    spine = draw(st.lists(spine_row, min_size=1, max_size=40))
    # duplicate spine rows, then shuffle
    if spine:
        spine += draw(st.lists(st.sampled_from(spine), max_size=10))
    spine = draw(st.permutations(spine)) if spine else spine
    spine = [{**row, "label": i} for i, row in enumerate(spine)]

    groups = []
    layouts = draw(st.lists(st.sampled_from(sorted(KEY_LAYOUTS)), min_size=1, max_size=3))
    for g, layout in enumerate(layouts):
        spec = KEY_LAYOUTS[layout]
        domains = [SPINE_DOMAINS[c] for c in spec["spine"]]
        created, write_order = draw(st.booleans()), draw(st.booleans())
        row = st.fixed_dictionaries(
            {
                # mostly keys the spine has, so that most spine rows find candidates
                "keys": st.one_of(
                    st.sampled_from([tuple(r[c] for c in spec["spine"]) for r in spine]),
                    st.tuples(*(st.sampled_from(d) for d in domains)),
                ),
                "t": st.sampled_from([*range(mode.event_points + 1), None]).map(
                    lambda n: None if n is None else n * mode.event_grid
                ),
                "c": st.one_of(st.integers(0, 2), st.none()) if created else st.none(),
                "w": st.one_of(st.integers(0, 2), st.none()) if write_order else st.none(),
                "v": st.one_of(st.integers(-5, 5), st.none()),
            }
        )
        rows = draw(st.lists(row, min_size=int(draw(st.integers(0, 9)) > 0), max_size=40))
        if rows:  # exact duplicates (same keys, time, created time, write order, values)
            rows += draw(st.lists(st.sampled_from(rows), max_size=8))
            rows = draw(st.permutations(rows))
        ttl_ns = None
        if draw(st.booleans()):
            k = draw(st.integers(1, 6))
            ttl_ns = k * mode.ttl_grid + draw(st.sampled_from(mode.ttl_offsets))
        groups.append(
            GroupCase(
                name=f"g{g}_{layout}",
                layout=layout,
                rows=list(rows),
                created=created,
                write_order=write_order,
                ttl_ns=ttl_ns,
                container=draw(st.sampled_from(["table", "reader", "batch"])),
                chunks=draw(st.integers(1, 3)),
            )
        )
    return Case(mode, spine, groups)


# -- building Arrow inputs ----------------------------------------------------------------------


def spine_table(case: Case) -> pa.Table:
    rows = case.spine
    return pa.table(
        {
            "id": pa.array([r["id"] for r in rows], pa.int64()),
            "region": pa.array([r["region"] for r in rows], pa.string()),
            "name": pa.array([r["name"] for r in rows], pa.string()),
            "ts": arrow_times([r["t"] for r in rows], case.mode.spine_type),
            "label": pa.array([r["label"] for r in rows], pa.int64()),
        }
    )


def source(case: Case, group: GroupCase) -> FeatureSource:
    spec = KEY_LAYOUTS[group.layout]
    rows = group.rows
    columns: dict[str, pa.Array[Any]] = {}
    for j, (key, key_type) in enumerate(zip(spec["keys"], spec["types"], strict=True)):
        values = [r["keys"][j] for r in rows]
        if pa.types.is_dictionary(key_type):
            columns[key] = pa.array(values, key_type.value_type).dictionary_encode().cast(key_type)
        else:
            columns[key] = pa.array(values, key_type)
    columns["event_ts"] = arrow_times([r["t"] for r in rows], case.mode.event_type)
    columns["uid"] = pa.array(range(len(rows)), pa.int64())  # identifies the winning row
    columns["v"] = pa.array([r["v"] for r in rows], pa.int16())
    if group.created:
        columns["created"] = pa.array([r["c"] for r in rows], pa.int64()).cast(pa.timestamp("us"))
    if group.write_order:
        columns["seq"] = pa.array([r["w"] for r in rows], pa.int64())
    table = pa.table(columns)
    size = max(1, -(-len(rows) // group.chunks))
    batches = table.to_batches(max_chunksize=size)
    data: Any
    if group.container == "table":
        data = pa.Table.from_batches(batches, schema=table.schema)
    elif group.container == "reader":
        data = pa.RecordBatchReader.from_batches(table.schema, batches)
    else:
        data = table.combine_chunks().to_batches()[0] if rows else pa.RecordBatch.from_pylist([], schema=table.schema)
    ttl: timedelta | int | None = None
    if group.ttl_ns is not None:
        ttl = group.ttl_ns if case.mode.name == "int" else timedelta(microseconds=group.ttl_ns // 1000)
    return FeatureSource(
        group.name,
        data,
        keys=spec["keys"],
        event_time="event_ts",
        features=["uid", "v"],
        created_time="created" if group.created else None,
        write_order="seq" if group.write_order else None,
        ttl=ttl,
        output_names={"uid": f"{group.name}.uid", "v": f"{group.name}.v"},
    )


# -- the oracle ---------------------------------------------------------------------------------


def oracle(case: Case, group: GroupCase) -> tuple[list[tuple[int | None, int | None]], int, int]:
    """Per spine row (uid, v) of the winning row, or (None, None); plus matched and expired counts."""
    spine_cols = KEY_LAYOUTS[group.layout]["spine"]
    out: list[tuple[int | None, int | None]] = []
    matched = expired = 0
    for srow in case.spine:
        keys = tuple(srow[c] for c in spine_cols)
        ts = srow["t"]
        if ts is None or any(k is None for k in keys):
            out.append((None, None))
            continue
        candidates = [
            (pos, h) for pos, h in enumerate(group.rows) if h["keys"] == keys and h["t"] is not None and h["t"] <= ts
        ]
        if not candidates:
            out.append((None, None))
            continue
        newest = max(h["t"] for _, h in candidates)
        if group.ttl_ns is not None and not (ts - newest < group.ttl_ns):
            expired += 1
            out.append((None, None))
            continue

        def rank(item: tuple[int, dict[str, Any]]) -> tuple[bool, int, bool, int, int]:
            pos, h = item
            return (h["c"] is not None, h["c"] or 0, h["w"] is not None, h["w"] or 0, pos)

        pos, winner = max((item for item in candidates if item[1]["t"] == newest), key=rank)
        matched += 1
        out.append((pos, winner["v"]))
    return out, matched, expired


@settings(max_examples=300, deadline=None)
@given(case=cases())
def test_join_equals_brute_force_oracle(case: Case) -> None:
    spine = spine_table(case)
    sources = [source(case, g) for g in case.groups]
    spine_keys = {g.name: KEY_LAYOUTS[g.layout]["spine"] for g in case.groups if g.layout == "user_region"}
    result = point_in_time_join(spine, sources, spine_time="ts", spine_keys=spine_keys, threads=1)
    table = result.table
    # every spine row exactly once, in order, spine columns untouched
    assert table.num_rows == spine.num_rows
    assert table.select(spine.column_names).equals(spine)
    assert table.column_names == [*spine.column_names, *(f"{g.name}.{f}" for g in case.groups for f in ("uid", "v"))]
    for group in case.groups:
        expected, matched, expired = oracle(case, group)
        got = list(
            zip(table.column(f"{group.name}.uid").to_pylist(), table.column(f"{group.name}.v").to_pylist(), strict=True)
        )
        assert got == expected, group
        assert table.schema.field(f"{group.name}.v").type == pa.int16()
        event(f"mode {case.mode.name}")
        event("a group with matches" if matched else "a group without matches")
        if expired:
            event("a group with expired rows")
        report = result.report[group.name]
        assert (report.spine_rows, report.matched, report.expired) == (spine.num_rows, matched, expired)
        assert report.without_features == spine.num_rows - matched


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_spine=st.integers(0, 300), n_hist=st.integers(0, 600))
def test_larger_random_joins_equal_the_oracle(seed: int, n_spine: int, n_hist: int) -> None:
    """Bigger inputs than the shrinking strategy above reaches (many rows per key and time)."""
    rng = random.Random(seed)
    mode = MODES[1]
    spine = [
        {"id": rng.choice(IDS), "region": rng.choice(REGIONS), "name": "ann", "t": rng.randint(0, 26) * mode.spine_grid}
        for _ in range(n_spine)
    ]
    spine = [{**row, "label": i} for i, row in enumerate(spine)]
    rows = [
        {
            "keys": (rng.choice(IDS), rng.choice(REGIONS)),
            "t": rng.randint(0, 12) * mode.event_grid,
            "c": rng.choice([0, 1, None]),
            "w": rng.choice([0, 1, 2, None]),
            "v": rng.randint(-3, 3),
        }
        for _ in range(n_hist)
    ]
    group = GroupCase("g", "user_region", rows, True, True, 3 * 10**9 + 1000, "table", 4)
    case = Case(mode, spine, [group])
    result = point_in_time_join(
        spine_table(case), [source(case, group)], spine_time="ts", spine_keys={"g": ["id", "region"]}
    )
    expected, matched, _ = oracle(case, group)
    assert (
        list(zip(result.table.column("g.uid").to_pylist(), result.table.column("g.v").to_pylist(), strict=True))
        == expected
    )
    assert result.report["g"].matched == matched


# -- a lakefeed scan as the source: two reads (join columns, then features) agree with one -------

H0 = datetime(2024, 3, 1)


def _scan_history(n: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            "user_id": pa.array([rng.choice([*range(12), None]) for _ in range(n)], pa.int64()),
            "ts": pa.array([H0 + timedelta(hours=rng.randint(0, 30)) for _ in range(n)], pa.timestamp("us")),
            "created": pa.array(
                [rng.choice([H0 + timedelta(minutes=rng.randint(0, 3)), None]) for _ in range(n)], pa.timestamp("us")
            ),
            "seq": pa.array([rng.choice([0, 1, None]) for _ in range(n)], pa.int64()),
            "uid": pa.array(range(seed * 1000, seed * 1000 + n), pa.int64()),
            "clicks": pa.array([rng.choice([*range(6), None]) for _ in range(n)], pa.int32()),
            "text": pa.array([rng.choice(["", None, "x" * rng.randint(1, 200)]) for _ in range(n)], pa.string()),
            "region": pa.array([rng.choice(["eu", "us"]) for _ in range(n)], pa.string()),
        }
    )


@pytest.fixture(scope="module")
def iceberg_history(tmp_path_factory: pytest.TempPathFactory) -> tuple[IcebergTable, int]:
    """Three files of row groups of 16 rows, then a delete that rewrites them; with the snapshot before it."""
    wh = lf.Warehouse(tmp_path_factory.mktemp("pit") / "home")
    table = wh.create_table("fs.hist", _scan_history(120, 1), properties={"write.parquet.row-group-limit": "16"})
    table.append(_scan_history(70, 2))
    table.append(_scan_history(90, 3))
    before = table.snapshot_id
    assert before is not None
    table.delete(lf.col("clicks") == 3)
    assert len({p.path for p in table.scan().parts()}) >= 3
    assert len(table.scan().parts()) > 10
    return table, before


def _pyiceberg_scan(
    table: IcebergTable, snapshot_id: int, columns: list[str] | None, filter: lf.Expr | None
) -> lf.Scan:
    """The scan read by pyiceberg, one part per file, as files with delete files are (rows known only once read)."""
    ice = table.pyiceberg_table
    parts: list[TablePart] = [
        _IcebergFilePart(table, t, snapshot_id, ice.schema()) for t in ice.scan(snapshot_id=snapshot_id).plan_files()
    ]
    return lf.Scan(
        table,
        snapshot_id=snapshot_id,
        table_schema=table.scan().plan.table_schema,
        columns=columns,
        filter=filter,
        parts=lambda _: parts,
    )


FILTERS = [None, lf.col("region") == "eu", lf.col("clicks") > 1, lf.col("user_id") >= 100]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spine_rows=st.lists(
        st.tuples(st.sampled_from([*range(14), None]), st.sampled_from([*range(-2, 35), None])), min_size=1, max_size=60
    ),
    filter_at=st.sampled_from(range(len(FILTERS))),
    before_delete=st.booleans(),
    narrow=st.booleans(),
    by_pyiceberg=st.booleans(),
    features=st.sampled_from([None, ["text", "clicks"], ["uid"], []]),
    created=st.booleans(),
    write_order=st.booleans(),
    ttl_hours=st.one_of(st.none(), st.integers(1, 12)),
    threads=st.sampled_from([1, 2]),
    task_bytes=st.sampled_from([1, 3000, 1 << 26]),
)
def test_scan_source_equals_its_arrow_table(
    iceberg_history: tuple[IcebergTable, int],
    spine_rows: list[tuple[int | None, int | None]],
    filter_at: int,
    before_delete: bool,
    narrow: bool,
    by_pyiceberg: bool,
    features: list[str] | None,
    created: bool,
    write_order: bool,
    ttl_hours: int | None,
    threads: int,
    task_bytes: int,
) -> None:
    """A scan (several files, row groups and tasks, a rewrite by delete, a filter) joins as its ``to_arrow()``."""
    table, before = iceberg_history
    snapshot = before if before_delete else table.snapshot_id
    assert snapshot is not None
    filter = FILTERS[filter_at]
    columns = ["user_id"] if narrow else None  # the join reads the columns it needs whatever the scan projects
    if by_pyiceberg:
        scan = _pyiceberg_scan(table, snapshot, columns, filter)
    else:
        scan = table.scan(columns=columns, filter=filter, snapshot=snapshot)
    whole = table.scan(filter=filter, snapshot=snapshot).to_arrow()
    spine = pa.table(
        {
            "user_id": pa.array([u for u, _ in spine_rows], pa.int64()),
            "ts": pa.array([None if h is None else H0 + timedelta(hours=h) for _, h in spine_rows], pa.timestamp("us")),
        }
    )

    def join(data: Any) -> Any:
        source = FeatureSource(
            "g",
            data,
            keys=["user_id"],
            event_time="ts",
            features=features,
            created_time="created" if created else None,
            write_order="seq" if write_order else None,
            ttl=None if ttl_hours is None else timedelta(hours=ttl_hours),
        )
        return point_in_time_join(spine, [source], spine_time="ts", threads=threads)

    with patch.object(_pit_gather, "TASK_BYTES", task_bytes):
        two_phase = join(scan)
    one_phase = join(whole)
    assert two_phase.table.equals(one_phase.table)
    assert two_phase.report == one_phase.report
    event("some spine rows matched" if two_phase.report["g"].matched else "no spine row matched")
    event(f"{len(scan.tasks(task_bytes))} tasks" if task_bytes < 1 << 26 else "default tasks")
