"""Delta tables with column mapping: name mode is read through physical names, the rest refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakefeed as lf
from lakefeed.errors import UnsupportedOperationError

pytestmark = pytest.mark.delta
pytest.importorskip("deltalake")


def _field(name: str, type_: Any, column_id: int, physical: str) -> dict[str, Any]:
    meta = {"delta.columnMapping.id": column_id, "delta.columnMapping.physicalName": physical}
    return {"name": name, "type": type_, "nullable": True, "metadata": meta}


def _mapped_table(root: Path, *, mode: str = "name", nested_physical: str = "q") -> str:
    """A Delta table (reader version 2, as Spark writes it) whose files store physical column names."""
    (root / "_delta_log").mkdir(parents=True)
    inner = pa.struct([(nested_physical, pa.int64())])
    data = pa.table(
        {
            "col-1a": pa.array([1, 2, 3], pa.int64()),
            "col-2b": ["x", "y", "z"],
            "col-3c": pa.array([{nested_physical: 7}, None, {nested_physical: 9}], inner),
        }
    )
    pq.write_table(data, root / "part-0.parquet")
    struct = {"type": "struct", "fields": [_field("q", "long", 4, nested_physical)]}
    fields = [
        _field("id", "long", 1, "col-1a"),
        _field("name", "string", 2, "col-2b"),
        _field("st", struct, 3, "col-3c"),
    ]
    stats = {
        "numRecords": 3,
        "minValues": {"col-1a": 1, "col-2b": "x"},
        "maxValues": {"col-1a": 3, "col-2b": "z"},
        "nullCount": {"col-1a": 0, "col-2b": 0},
    }
    configuration = {"delta.columnMapping.mode": mode, "delta.columnMapping.maxColumnId": "4"}
    log = [
        {"protocol": {"minReaderVersion": 2, "minWriterVersion": 5}},
        {
            "metaData": {
                "id": "0a0a0a0a-0000-0000-0000-000000000000",
                "format": {"provider": "parquet", "options": {}},
                "schemaString": json.dumps({"type": "struct", "fields": fields}),
                "partitionColumns": [],
                "configuration": configuration,
                "createdTime": 1700000000000,
            }
        },
        {
            "add": {
                "path": "part-0.parquet",
                "partitionValues": {},
                "size": (root / "part-0.parquet").stat().st_size,
                "modificationTime": 1700000000000,
                "dataChange": True,
                "stats": json.dumps(stats),
            }
        },
        {"commitInfo": {"timestamp": 1700000000000, "operation": "WRITE"}},
    ]
    (root / "_delta_log" / "00000000000000000000.json").write_text("\n".join(json.dumps(x) for x in log) + "\n")
    return f"delta://{root}"


def test_name_mode_reads_columns_by_physical_name(tmp_path: Path) -> None:
    t = lf.open_table(_mapped_table(tmp_path / "t"))
    assert t.schema.names == ["id", "name", "st"]
    assert t.scan().to_arrow().to_pylist() == [
        {"id": 1, "name": "x", "st": {"q": 7}},
        {"id": 2, "name": "y", "st": None},
        {"id": 3, "name": "z", "st": {"q": 9}},
    ]
    assert t.scan(columns=["name"], filter=lf.col("id") == 2).to_arrow().to_pylist() == [{"name": "y"}]
    assert t.scan(filter=lf.col("id") > 5).count() == 0  # pruned by the physical-name statistics
    assert t.scan(filter=lf.col("name") >= "y").count() == 2
    with pytest.raises(UnsupportedOperationError, match="column mapping"):
        t.append(pa.table({"id": [4], "name": ["w"]}))


@pytest.mark.parametrize(("mode", "nested"), [("id", "q"), ("name", "col-4d")], ids=["id-mode", "nested-rename"])
def test_column_mapping_lakefeed_cannot_read_is_refused(tmp_path: Path, mode: str, nested: str) -> None:
    uri = _mapped_table(tmp_path / "t", mode=mode, nested_physical=nested)
    with pytest.raises(UnsupportedOperationError, match=r"Delta table .*column mapping"):
        lf.open_table(uri)
