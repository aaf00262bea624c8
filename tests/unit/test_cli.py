"""The `lakefeed` command, run in-process with typer's runner against a real warehouse."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

import lakefeed as lf
from lakefeed.cli import app, synthetic_clicks

runner = CliRunner()


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_quickstart_builds_changes_and_scans(tmp_path: Path) -> None:
    out = _run("quickstart", "--home", str(tmp_path), "--rows", "20000")
    assert "generated 20,000 click events" in out
    table = lf.Warehouse(tmp_path).table("quickstart.clicks")
    ops = [s.operation for s in table.snapshots()]
    assert ops[0] == "append"
    assert "overwrite" in ops
    data = synthetic_clicks(20_000)
    web = sum(1 for d in data.column("device").to_pylist() if d == "web")
    assert table.scan().count() == 20_000 - web
    assert table.scan(filter=lf.col("device") == "web").count() == 0
    raw, _, rest = out.partition("9. feature group")
    if importlib.util.find_spec("torch") is not None:
        losses = [float(v) for v in re.findall(r"loss (\d\.\d+)", raw)]
        assert len(losses) >= 5
        assert losses[-1] < 0.8 * losses[0]  # the model learns the label from f0..f2
        assert "rows/s through the loader" in raw
        # step 10 trains again, on the saved point-in-time training dataset
        pit_losses = [float(v) for v in re.findall(r"loss (\d\.\d+)", rest)]
        assert len(pit_losses) >= 5
        assert pit_losses[-1] < pit_losses[0]
    else:  # the Paimon environment has no torch
        assert out.count("training skipped: torch is not installed") == 2
    # the feature store: a group of daily user aggregates, point-in-time training data, serving
    flat = " ".join(out.split())  # rich wraps long lines
    assert "feature group user_daily" in flat
    joined = re.search(r"training data: ([\d,]+) spine rows in [\d.]+ s, ([\d,]+) with features", flat)
    assert joined is not None
    assert 0 < int(joined.group(2).replace(",", "")) < int(joined.group(1).replace(",", ""))
    assert "saved as training dataset quickstart_ctr_v1" in flat
    with lf.FeatureStore(tmp_path) as fs:
        dataset = fs.training_dataset("quickstart_ctr_v1")
        assert dataset.read().num_rows == int(joined.group(1).replace(",", ""))
    assert "11. online vector of user" in flat
    if importlib.util.find_spec("uvicorn") is not None:
        assert '"features":{"user_id":' in out.replace("\n", "")
    else:
        assert "HTTP serving skipped" in flat
    match = re.search(r"time travel: ([\d,]+) rows at the first snapshot, ([\d,]+) now", out)
    assert match is not None
    assert match.groups() == ("20,000", f"{20_000 - web:,}")
    # quickstart can be run again: it replaces its own table
    _run("quickstart", "--home", str(tmp_path), "--rows", "1000")
    assert lf.Warehouse(tmp_path).table("quickstart.clicks").scan(snapshot=None).count() <= 1000


def test_tables_list_show_and_scan(tmp_path: Path) -> None:
    wh = lf.Warehouse(tmp_path)
    wh.create_table("shop.items", pa.table({"id": [1, 2, 3], "price": [1.5, 20.0, None]}), primary_key=["id"])
    out = _run("tables", "list", "--home", str(tmp_path))
    assert "shop.items" in out
    assert "iceberg" in out
    out = _run("tables", "show", "shop.items", "--home", str(tmp_path))
    assert "primary key: ['id']" in out
    assert "price" in out
    assert "rows: 3" in out
    out = _run("scan", "shop.items", "--home", str(tmp_path), "--filter", "price > 10", "--columns", "id")
    assert "first 1 rows" in out
    assert "│ 2  │" in out


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from lakefeed.cli import main

    argv = sys.argv
    sys.argv = ["lakefeed", "scan", "nope.nope", "--home", str(tmp_path)]
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        sys.argv = argv
    assert info.value.code == 2
    assert "TableNotFoundError" in capsys.readouterr().out
