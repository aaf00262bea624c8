"""Paimon reads: a scan stays on its snapshot, and split row counts are exact only when they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import lakefeed as lf

pytestmark = pytest.mark.paimon
pytest.importorskip("pypaimon")


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(tuple(r.values()) for r in table.to_pylist())


@pytest.mark.parametrize("primary_key", [["id"], None], ids=["pk", "append"])
def test_scan_of_the_current_snapshot_ignores_later_commits(tmp_path: Path, primary_key: list[str] | None) -> None:
    uri = f"paimon://{tmp_path}/db.t"
    data = pa.table({"id": pa.array([1, 2], pa.int64()), "v": pa.array([10, 20], pa.int64())})
    t = lf.create_table(uri, data, primary_key=primary_key)
    scan = t.scan()
    narrow = t.scan(columns=["v"])
    lf.open_table(uri).append(pa.table({"id": pa.array([1, 3], pa.int64()), "v": pa.array([99, 30], pa.int64())}))
    assert _rows(scan.to_arrow()) == [(1, 10), (2, 20)]
    assert scan.count() == 2
    assert sum(b.num_rows for b in scan.to_batches()) == 2
    assert sum(task.num_rows for task in scan.tasks()) == 2
    loader = lf.Loader(narrow, batch_size=1, columns=["v"], shuffle=False)
    assert len(loader) == 2
    assert sorted(v for batch in loader for v in batch["v"].tolist()) == [10, 20]
    t.append(pa.table({"id": pa.array([4], pa.int64()), "v": pa.array([40], pa.int64())}))  # own write
    assert scan.count() == 2
    assert t.scan().count() == (3 if primary_key else 4) + 1


def _record_delete_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make pypaimon's writer record a file's -D/-U rows in its metadata, as Paimon's Java writer does."""
    import pyarrow.parquet as pq
    from pypaimon.write.writer.data_writer import DataWriter

    original = DataWriter._create_data_file_meta

    def create(self: Any, file_name: str, file_path: str, *args: Any, **kwargs: Any) -> Any:
        meta = original(self, file_name, file_path, *args, **kwargs)
        kinds = pq.read_table(file_path, columns=["_VALUE_KIND"]).column(0).to_pylist()
        meta.delete_row_count = sum(k in (1, 3) for k in kinds)
        return meta

    monkeypatch.setattr(DataWriter, "_create_data_file_meta", create)


def test_single_file_split_with_delete_rows_is_not_an_exact_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakefeed.tables.paimon import PaimonTable, create_paimon_table

    _record_delete_rows(monkeypatch)
    fields: list[pa.Field[Any]] = [pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.int64())]
    schema = pa.schema([*fields, pa.field("op", pa.string())])
    t = create_paimon_table(str(tmp_path), "db.k", schema, primary_key=["id"], options={"rowkind.field": "op"})
    assert isinstance(t, PaimonTable)
    t.append(pa.table({"id": [1, 2, 3], "v": [10, 20, 30], "op": ["+I", "-D", "+I"]}, schema=schema))
    builder = t.paimon_table.new_read_builder()
    expected = builder.new_read().to_arrow(builder.new_scan().plan().splits())
    assert expected.column("id").to_pylist() == [1, 3]  # pypaimon drops the retracted key
    scan = t.scan()
    assert [len(p.files) for p in scan.parts()] == [1]
    assert scan.count() == 2
    loader = lf.Loader(scan, batch_size=1, columns=["id"], shuffle=False)
    assert len(loader) == 2
    assert sorted(i for batch in loader for i in batch["id"].tolist()) == [1, 3]
    assert _rows(scan.to_arrow()) == _rows(expected)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (lf.col("f") != 2.0, [1]),  # NaN != 2.0 is true; min/max statistics leave NaN out
        (lf.col("g") == 0.1, [0]),  # a float32 column compared at its own width
        (lf.col("g") <= 0.1, [0]),
    ],
    ids=["nan-not-equal", "float32-equal", "float32-at-most"],
)
@pytest.mark.parametrize("primary_key", [["id"], None], ids=["pk", "append"])
def test_pushed_down_filters_keep_every_row_the_exact_filter_keeps(
    tmp_path: Path, expr: lf.Expr, expected: list[int], primary_key: list[str] | None
) -> None:
    data = pa.table(
        {
            "id": pa.array([0, 1], pa.int64()),
            "f": pa.array([2.0, float("nan")], pa.float64()),
            "g": pa.array([0.1, 0.5], pa.float32()),
        }
    )
    table = lf.create_table(f"paimon://{tmp_path}/db.edge", data, primary_key=primary_key)
    if primary_key:  # a second commit: the splits need merging, and pypaimon reads them with the predicate
        table.upsert(data)
    assert sorted(table.scan(columns=["id"], filter=expr).to_arrow().column("id").to_pylist()) == expected
