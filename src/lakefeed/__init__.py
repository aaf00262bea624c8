"""lakefeed: the lakehouse-native ML data layer.

Example:
    >>> import lakefeed as lf, pyarrow as pa, tempfile
    >>> wh = lf.Warehouse(tempfile.mkdtemp())
    >>> t = wh.create_table("shop.clicks", pa.table({"user_id": [1, 2, 3], "clicked": [1, 0, 1]}))
    >>> t.scan(filter=lf.col("clicked") == 1).count()
    2
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from lakefeed import errors
from lakefeed.errors import (
    ColumnNotFoundError,
    LakefeedError,
    LakefeedWarning,
    MissingDependencyError,
    SchemaError,
    SnapshotNotFoundError,
    TableNotFoundError,
)
from lakefeed.expr import Expr, col, parse_filter

if TYPE_CHECKING:
    from lakefeed import ray, samplers, transforms
    from lakefeed.frameworks.torch import torch_dataset
    from lakefeed.loader import Loader
    from lakefeed.store import FeatureStore
    from lakefeed.tables import Scan, ScanTask, Snapshot, Table, Warehouse, create_table, open_table

try:
    __version__ = version("lakefeed")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ColumnNotFoundError",
    "Expr",
    "FeatureStore",
    "LakefeedError",
    "LakefeedWarning",
    "Loader",
    "MissingDependencyError",
    "Scan",
    "ScanTask",
    "SchemaError",
    "Snapshot",
    "SnapshotNotFoundError",
    "Table",
    "TableNotFoundError",
    "Warehouse",
    "__version__",
    "col",
    "create_table",
    "errors",
    "open_table",
    "parse_filter",
    "ray",
    "samplers",
    "torch_dataset",
    "transforms",
]

_LAZY = {
    "FeatureStore": "lakefeed.store",
    "Loader": "lakefeed.loader",
    "Scan": "lakefeed.tables",
    "ScanTask": "lakefeed.tables",
    "Snapshot": "lakefeed.tables",
    "Table": "lakefeed.tables",
    "Warehouse": "lakefeed.tables",
    "create_table": "lakefeed.tables",
    "open_table": "lakefeed.tables",
    "torch_dataset": "lakefeed.frameworks.torch",
}


_SUBMODULES = {"ray", "samplers", "transforms"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _SUBMODULES:  # lf.samplers.Weighted(...), lf.transforms.Pipeline([...])
        submodule = importlib.import_module(f"lakefeed.{name}")
        globals()[name] = submodule
        return submodule
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'lakefeed' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
