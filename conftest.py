"""Marks doctests that need an optional format library, so each environment runs what it can."""

from __future__ import annotations

import importlib.util

import pytest

# The feature server's modules import its extra (orjson, starlette) at import time: an
# environment without ``lakefeed[serve]`` (the Paimon one) does not collect them at all.
collect_ignore = (
    ["src/lakefeed/serving", "tests/unit/test_serving.py"]
    if importlib.util.find_spec("orjson") is None or importlib.util.find_spec("starlette") is None
    else []
)
# The Ray Data source imports Ray when loaded: without ``lakefeed[ray]`` its doctests are not collected.
if importlib.util.find_spec("ray") is None:
    collect_ignore.append("src/lakefeed/integrations/ray.py")

_NEEDS = {
    "lakefeed.tables.paimon": "paimon",
    "lakefeed.tables.delta": "delta",
    "lakefeed.tables.create_table": "delta",
    "lakefeed.frameworks.torch": "torch",
    "lakefeed.frameworks.jax": "jax",
    "lakefeed.frameworks.tensorflow": "tf",
    "lakefeed.frameworks.tf_pipeline": "tf",
    "lakefeed.frameworks.tf_builder": "tf",
    "lakefeed.frameworks.tf_distributed": "tf",
    "lakefeed.serving": "serve",
    "lakefeed.integrations": "ray",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Add the ``paimon``/``delta``/``torch`` marker to doctests of modules that need those libraries."""
    for item in items:
        if not isinstance(item, pytest.DoctestItem):
            continue
        for prefix, marker in _NEEDS.items():
            if item.name == prefix or item.name.startswith(prefix + "."):
                item.add_marker(getattr(pytest.mark, marker))
