"""`import lakefeed` stays light: no framework, service client or format library is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lakefeed as lf
from lakefeed.errors import MissingDependencyError

HEAVY = ["torch", "tensorflow", "jax", "ray", "redis", "fastapi", "pypaimon", "deltalake", "pyiceberg", "pandas"]


def _imported_after(code: str) -> list[str]:
    script = f"import sys\n{code}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_lakefeed_imports_no_heavy_module() -> None:
    assert _imported_after("import lakefeed") == []


def test_building_filters_imports_nothing_heavy() -> None:
    assert _imported_after("import lakefeed as lf; f = (lf.col('a') > 1) & lf.col('b').isin(['x'])") == []


def test_all_is_sorted_and_resolvable() -> None:
    assert sorted(lf.__all__) == lf.__all__
    for name in lf.__all__:
        assert getattr(lf, name) is not None


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = lf.nope  # type: ignore[attr-defined]


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setitem(sys.modules, "pypaimon", None)  # makes `import pypaimon` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'lakefeed\[paimon\]'"):
        lf.open_table(f"paimon://{tmp_path}/db.t")
    monkeypatch.setitem(sys.modules, "deltalake", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'lakefeed\[delta\]'"):
        lf.open_table(f"delta://{tmp_path}/t")


def test_samplers_and_transforms_are_attributes_and_stay_light() -> None:
    assert lf.transforms.Pipeline is not None
    assert lf.samplers.Weighted("w").column == "w"
    code = "import lakefeed as lf; lf.transforms.StandardScaler; lf.samplers.Balanced; import lakefeed.transforms.cache"
    assert _imported_after(code) == []
