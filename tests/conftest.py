"""Shared fixtures: one data set, written as a table in every format, plus service checks."""

from __future__ import annotations

import importlib.util
import os
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakefeed as lf

REQUIRE_SERVICES = os.environ.get("LAKEFEED_REQUIRE_SERVICES") == "1"
REDIS_URL = os.environ.get("LAKEFEED_TEST_REDIS", "redis://127.0.0.1:6379/0")
POSTGRES_URI = os.environ.get("LAKEFEED_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        ("i", pa.int32()),
        ("f", pa.float64()),
        ("s", pa.string()),
        ("b", pa.bool_()),
        ("d", pa.date32()),
        ("ts", pa.timestamp("us")),
        pa.field("cat", pa.string(), nullable=False),
    ]
)


def make_data(n: int = 300, seed: int = 7) -> pa.Table:
    rng = random.Random(seed)

    def maybe(value: object, p: float = 0.15) -> object:
        return None if rng.random() < p else value

    rows = {
        "id": list(range(n)),
        "i": [maybe(rng.randint(-20, 120)) for _ in range(n)],
        "f": [maybe(round(rng.uniform(-40, 140), 3)) for _ in range(n)],
        "s": [maybe(rng.choice(["a", "b", "c", "x", "xy", "z", ""])) for _ in range(n)],
        "b": [maybe(rng.random() < 0.5) for _ in range(n)],
        "d": [maybe(date(2024, 1, 1) + timedelta(days=rng.randint(-20, 60))) for _ in range(n)],
        "ts": [maybe(datetime(2024, 1, 1) + timedelta(hours=rng.randint(0, 24 * 80))) for _ in range(n)],
        "cat": [rng.choice(["red", "green", "blue"]) for _ in range(n)],
    }
    return pa.table(rows, schema=SCHEMA)


DATA = make_data()
HAS_PAIMON = importlib.util.find_spec("pypaimon") is not None
HAS_DELTA = importlib.util.find_spec("deltalake") is not None


def _chunks(table: pa.Table, k: int = 3) -> list[pa.Table]:
    size = -(-table.num_rows // k)
    return [table.slice(i * size, size) for i in range(k)]


def _stale(table: pa.Table) -> pa.Table:
    """Older values for the first 200 rows plus 20 rows that a delete must remove."""
    import pyarrow.compute as pc

    head = table.slice(0, 200)
    head = head.set_column(head.schema.get_field_index("f"), "f", pc.add(head.column("f"), 1000.0))
    extra = make_data(20, seed=99)
    extra = extra.set_column(0, pa.field("id", pa.int64(), nullable=False), pa.array(range(10_000, 10_020), pa.int64()))
    return pa.concat_tables([head, extra])


def table_of_files(
    wh: lf.Warehouse, name: str, parts: Sequence[pa.Table], *, row_group_rows: int | None = None
) -> lf.Table:
    """An Iceberg table created from ``parts[0]`` with each later part appended: one data file per part."""
    properties = {} if row_group_rows is None else {"write.parquet.row-group-limit": str(row_group_rows)}
    table = wh.create_table(name, parts[0], properties=properties)
    for part in parts[1:]:
        table.append(part)
    return table


UNEVEN_SIZES = [3_000, 517, 8_200, 1_333, 4_950]
"""Rows of each file of :func:`uneven_table`."""


def uneven_table(folder: Path) -> lf.Table:
    """An Iceberg table sorted by ``id`` in files of uneven sizes: ``id``, ``x``, ``z``, ``flag``, ``y``, ``name``."""
    parts = []
    for start, size in zip(np.cumsum([0, *UNEVEN_SIZES[:-1]]), UNEVEN_SIZES, strict=True):
        ids = np.arange(start, start + size)
        parts.append(
            pa.table(
                {
                    "id": pa.array(ids, pa.int64()),
                    "x": pa.array(ids * 0.5, pa.float64()),
                    "z": pa.array(ids % 7, pa.int32()),
                    "flag": pa.array(ids % 2 == 0),
                    "y": pa.array(ids % 3, pa.int64()),
                    "name": pa.array([f"n{i}" for i in ids]),
                }
            )
        )
    return table_of_files(lf.Warehouse(folder), "l.sorted", parts, row_group_rows=1000)


def build_table(kind: str, root: Path, data: pa.Table = DATA) -> lf.Table:
    """Write ``data`` as a table of the given kind so that reading it back must give ``data``."""
    if kind == "iceberg":
        wh = lf.Warehouse(root / "home")
        chunks = _chunks(data)
        t = wh.create_table("ns.t", chunks[0], partition_by=["cat"])
        for c in chunks[1:]:
            t.append(c)
        return t
    if kind == "iceberg_pk":
        wh = lf.Warehouse(root / "home")
        t = wh.create_table("ns.pk", _stale(data), primary_key=["id"], partition_by=["bucket(4, id)"])
        t.upsert(data)
        t.delete(lf.col("id") >= 10_000)
        return t
    if kind == "delta":
        chunks = _chunks(data)
        t = lf.create_table(f"delta://{root}/delta", chunks[0], primary_key=["id"], partition_by=["cat"])
        for c in chunks[1:]:
            t.append(c)
        return t
    if kind == "delta_pk":
        t = lf.create_table(f"delta://{root}/delta_pk", _stale(data), primary_key=["id"])
        t.upsert(data)
        t.delete(lf.col("id") >= 10_000)
        return t
    if kind == "paimon":
        chunks = _chunks(data)
        t = lf.create_table(f"paimon://{root}/paimon/db.t", chunks[0], partition_by=["cat"])
        for c in chunks[1:]:
            t.append(c)
        return t
    if kind == "paimon_pk":
        stale = _stale(data).filter(pa.compute.less(pa.compute.field("id"), 10_000))
        t = lf.create_table(f"paimon://{root}/paimon/db.pk", stale, primary_key=["id"], partition_by=[])
        t.upsert(data)
        return t
    if kind == "parquet":
        base = root / "parquet"
        for cat in ("red", "green", "blue"):
            part = data.filter(pa.compute.equal(data.column("cat"), cat)).drop_columns(["cat"])
            folder = base / f"cat={cat}"
            folder.mkdir(parents=True)
            for j, chunk in enumerate(_chunks(part, 2)):
                pq.write_table(chunk, folder / f"part-{j}.parquet", row_group_size=40)
        return lf.open_table(f"parquet://{base}")
    raise ValueError(kind)


def _param(kind: str) -> object:
    marks = []
    if kind.startswith("paimon"):
        marks.append(pytest.mark.paimon)
    if kind.startswith("delta"):
        marks.append(pytest.mark.delta)
    return pytest.param(kind, marks=marks, id=kind)


KINDS = ["iceberg", "iceberg_pk", "delta", "delta_pk", "paimon", "paimon_pk", "parquet"]
ALL_KINDS = [_param(k) for k in KINDS]
WRITABLE_KINDS = [_param(k) for k in ("iceberg", "delta", "paimon")]


@pytest.fixture(scope="session", params=ALL_KINDS)
def any_table(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    """The shared data set as a table of each kind (read-only: do not write to it)."""
    return build_table(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture
def warehouse(tmp_path: Path) -> lf.Warehouse:
    return lf.Warehouse(tmp_path / "home")


@pytest.fixture
def table_factory(tmp_path: Path) -> Callable[[str, pa.Table], lf.Table]:
    def make(kind: str, data: pa.Table = DATA) -> lf.Table:
        return build_table(kind, tmp_path / uuid.uuid4().hex, data)

    return make


def _postgres_available() -> str | None:
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(POSTGRES_URI)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def postgres_uri() -> str:
    problem = _postgres_available()
    if problem is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL at {POSTGRES_URI} is required (LAKEFEED_REQUIRE_SERVICES=1) but: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    return POSTGRES_URI


def _redis_problem() -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:  # any failure to import or connect
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    problem = _redis_problem()
    if problem is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis at {REDIS_URL} is required (LAKEFEED_REQUIRE_SERVICES=1) but: {problem}")
        pytest.skip(f"Redis not reachable: {problem}")
    return REDIS_URL
