"""Ray for lakefeed tables: Ray Data :func:`read` / :func:`write`, and loaders for Ray Train workers.

:func:`read` gives a table as a streaming ``ray.data.Dataset`` and :func:`write` appends one back;
:func:`train_loader` / :func:`save_loader_state` / :func:`load_loader_state` shard and resume a
:class:`lakefeed.Loader` inside Ray Train workers (:mod:`lakefeed.integrations.ray_train`).

``import lakefeed.ray`` (or ``lf.ray``) works without Ray; Ray is imported on first use of a
name here, which raises :class:`~lakefeed.errors.MissingDependencyError` naming
``pip install 'lakefeed[ray]'`` when Ray is not installed. The implementation lives in
:mod:`lakefeed.integrations.ray`; see ``docs/scale-out.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakefeed.integrations.ray import LakefeedDatasink, LakefeedDatasource, read, write
    from lakefeed.integrations.ray_train import load_loader_state, save_loader_state, train_loader

__all__ = [
    "LakefeedDatasink",
    "LakefeedDatasource",
    "load_loader_state",
    "read",
    "save_loader_state",
    "train_loader",
    "write",
]

_EXPORTS = {
    "LakefeedDatasink": "lakefeed.integrations.ray",
    "LakefeedDatasource": "lakefeed.integrations.ray",
    "read": "lakefeed.integrations.ray",
    "write": "lakefeed.integrations.ray",
    "train_loader": "lakefeed.integrations.ray_train",
    "save_loader_state": "lakefeed.integrations.ray_train",
    "load_loader_state": "lakefeed.integrations.ray_train",
}
"""Public name -> the module that defines it (imported on first use)."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'lakefeed.ray' has no attribute {name!r}"
        raise AttributeError(msg)
    # not cached here: while Ray is missing, every use raises MissingDependencyError again
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
