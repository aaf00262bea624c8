"""Small helpers with no lakefeed dependencies beyond ``errors``."""

from __future__ import annotations

import importlib
from types import ModuleType

from lakefeed.errors import MissingDependencyError

__all__ = ["import_optional"]


def import_optional(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency or raise :class:`MissingDependencyError` naming the extra.

    Args:
        module: The module to import, e.g. ``"pypaimon"``.
        extra: The lakefeed extra that installs it, e.g. ``"paimon"``.
        purpose: What needs it, for the message (``"reading Paimon tables"``).

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: If the module cannot be imported.

    Example:
        >>> import_optional("json", extra="core", purpose="tests").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = (
            f"{purpose} needs the optional dependency {module!r}, which is not installed; "
            f"install it with: pip install 'lakefeed[{extra}]'"
        )
        raise MissingDependencyError(msg) from exc
