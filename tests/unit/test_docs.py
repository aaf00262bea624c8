"""Every ```python block of the user guides runs, in order, in an empty folder."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDES = [
    "tables.md",
    "loader.md",
    "features.md",
    "feature-store.md",
    pytest.param("tf-distributed.md", marks=pytest.mark.tf),  # every block needs TensorFlow
    pytest.param("scale-out.md", marks=pytest.mark.ray),  # every block needs Ray
]


def _blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_runs(guide: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKEFEED_HOME", str(tmp_path / "default-home"))
    namespace: dict[str, object] = {}
    ran = 0
    for block in _blocks((DOCS / guide).read_text()):
        needs = re.findall(r"^# needs: (\w+)", block, flags=re.M)
        modules = {
            "paimon": "pypaimon",
            "delta": "deltalake",
            "torch": "torch",
            "jax": "jax",
            "tf": "tensorflow",
            "redis": "redis",
            "postgres": "psycopg",
            "serve": "starlette",
            "ray": "ray",
        }
        if any(importlib.util.find_spec(modules[n]) is None for n in needs):
            continue
        if "delta://" in block and importlib.util.find_spec("deltalake") is None:
            continue
        exec(compile(block, f"{guide}:block{ran}", "exec"), namespace)
        ran += 1
    assert ran >= 5
    assert os.getcwd() == str(tmp_path)
