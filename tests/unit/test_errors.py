"""The error tree: stable unique codes, documented in docs/errors.md, raised with context."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from lakefeed import errors

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def _classes() -> list[type]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if obj.__module__ == errors.__name__ and issubclass(obj, (errors.LakefeedError, errors.LakefeedWarning))
    ]


def test_codes_are_unique() -> None:
    codes = [c.code for c in _classes()]
    assert len(codes) == len(set(codes)), codes


def test_every_error_is_documented_with_its_code() -> None:
    text = DOCS.read_text()
    documented = dict(re.findall(r"^## `(\w+)` \(`([\w-]+)`\)", text, flags=re.M))
    expected = {c.__name__: c.code for c in _classes()}
    assert documented == expected


def test_names_end_in_error_or_warning() -> None:
    for cls in _classes():
        assert cls.__name__.endswith(("Error", "Warning")), cls


def test_all_lists_every_class() -> None:
    assert sorted(errors.__all__) == sorted(c.__name__ for c in _classes())


def test_message_carries_code_and_builtin_bases() -> None:
    exc = errors.TableNotFoundError("table a.b not found")
    assert "table-not-found" in str(exc)
    assert isinstance(exc, LookupError)
    assert isinstance(errors.SchemaError("x"), TypeError)
    assert isinstance(errors.ConfigError("x"), ValueError)
    assert isinstance(errors.MissingDependencyError("x"), ImportError)


def test_errors_module_imports_nothing() -> None:
    source = inspect.getsource(errors)
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations", "from typing import ClassVar"]


@pytest.mark.parametrize("cls", _classes())
def test_every_class_has_a_docstring(cls: type) -> None:
    assert cls.__doc__
