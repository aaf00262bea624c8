"""Errors and warnings raised by lakefeed.

Every failure a user can cause raises a subclass of :class:`LakefeedError`. Each class has a
stable ``code`` (listed in ``docs/errors.md``) and a message that names the object, the
offending value and the fix. Errors from the libraries lakefeed builds on (pyiceberg,
pypaimon, deltalake, pyarrow) are translated at the boundary with ``raise ... from exc``.

The tree::

    LakefeedError
    ├── ConfigError (ValueError)
    │   └── UnsupportedOperationError (NotImplementedError)
    ├── MissingDependencyError (ImportError)
    ├── NotFoundError (LookupError)
    │   ├── TableNotFoundError
    │   ├── NamespaceNotFoundError
    │   ├── SnapshotNotFoundError
    │   ├── ColumnNotFoundError
    │   └── DataFileNotFoundError
    ├── TableExistsError
    ├── CatalogError
    ├── SchemaError (TypeError)
    │   └── FilterTypeError
    ├── FilterError (ValueError)
    ├── ResumeStateError (ValueError)
    ├── NotFittedError (ValueError)
    ├── UnknownCategoryError (ValueError)
    ├── CommitError
    │   └── CommitConflictError
    └── OnlineStoreError
        └── OnlineStoreUnavailableError
            └── OnlineWriteUnknownError

    LakefeedWarning (UserWarning)
    ├── PerformanceWarning
    └── UnstableWarning

This module imports nothing from lakefeed or from third parties.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CatalogError",
    "ColumnNotFoundError",
    "CommitConflictError",
    "CommitError",
    "ConfigError",
    "DataFileNotFoundError",
    "FilterError",
    "FilterTypeError",
    "LakefeedError",
    "LakefeedWarning",
    "MissingDependencyError",
    "NamespaceNotFoundError",
    "NotFittedError",
    "NotFoundError",
    "OnlineStoreError",
    "OnlineStoreUnavailableError",
    "OnlineWriteUnknownError",
    "PerformanceWarning",
    "ResumeStateError",
    "SchemaError",
    "SnapshotNotFoundError",
    "TableExistsError",
    "TableNotFoundError",
    "UnknownCategoryError",
    "UnstableWarning",
    "UnsupportedOperationError",
]

DOCS_URL = "https://lakefeed.dev/errors"


class LakefeedError(Exception):
    """Root of every error lakefeed raises on purpose.

    Example:
        >>> import lakefeed as lf
        >>> try:
        ...     lf.col("a") > object()
        ... except lf.LakefeedError as exc:
        ...     print(exc.code)
        filter
    """

    code: ClassVar[str] = "lakefeed"

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} [{self.code}: {DOCS_URL}#{self.code}]"


class ConfigError(LakefeedError, ValueError):
    """An argument or configuration value is invalid."""

    code: ClassVar[str] = "config"


class UnsupportedOperationError(ConfigError, NotImplementedError):
    """The operation is valid in general but not for this table format or feature."""

    code: ClassVar[str] = "unsupported-operation"


class MissingDependencyError(LakefeedError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    code: ClassVar[str] = "missing-dependency"


class NotFoundError(LakefeedError, LookupError):
    """Something that was named does not exist."""

    code: ClassVar[str] = "not-found"


class TableNotFoundError(NotFoundError):
    """No table with that name or at that location."""

    code: ClassVar[str] = "table-not-found"


class NamespaceNotFoundError(NotFoundError):
    """No namespace with that name in the catalog."""

    code: ClassVar[str] = "namespace-not-found"


class SnapshotNotFoundError(NotFoundError):
    """No snapshot with that id, or none at or before that time."""

    code: ClassVar[str] = "snapshot-not-found"


class ColumnNotFoundError(NotFoundError):
    """A column named in a projection, filter, key or partition does not exist."""

    code: ClassVar[str] = "column-not-found"


class DataFileNotFoundError(NotFoundError):
    """A data file the table's metadata refers to is missing from storage."""

    code: ClassVar[str] = "data-file-not-found"


class TableExistsError(LakefeedError):
    """A table with that name already exists."""

    code: ClassVar[str] = "table-exists"


class CatalogError(LakefeedError):
    """The catalog cannot be reached or refused an operation."""

    code: ClassVar[str] = "catalog"


class SchemaError(LakefeedError, TypeError):
    """Data does not fit a table's schema, or a type is not what an operation needs."""

    code: ClassVar[str] = "schema"


class FilterTypeError(SchemaError):
    """A filter compares a column with a value of an incompatible type."""

    code: ClassVar[str] = "filter-type"


class FilterError(LakefeedError, ValueError):
    """A filter expression is malformed (for example a bare Python value used as a filter)."""

    code: ClassVar[str] = "filter"


class ResumeStateError(LakefeedError, ValueError):
    """A loader state cannot be resumed here: it comes from another table, snapshot or configuration."""

    code: ClassVar[str] = "resume-state"


class NotFittedError(LakefeedError, ValueError):
    """A transformer or pipeline was used before ``fit`` (or restored from an unfitted spec)."""

    code: ClassVar[str] = "not-fitted"


class UnknownCategoryError(LakefeedError, ValueError):
    """An encoder fitted with ``handle_unknown="error"`` met a category it did not see in fit."""

    code: ClassVar[str] = "unknown-category"


class CommitError(LakefeedError):
    """A write could not be committed; the table is left at its previous snapshot."""

    code: ClassVar[str] = "commit"


class CommitConflictError(CommitError):
    """Another writer committed first; retry the write on the new snapshot."""

    code: ClassVar[str] = "commit-conflict"


class OnlineStoreError(LakefeedError):
    """The online store refused an operation or holds data lakefeed cannot read."""

    code: ClassVar[str] = "online-store"


class OnlineStoreUnavailableError(OnlineStoreError):
    """The online store cannot be reached (e.g. Redis is down); calls work again once it is back."""

    code: ClassVar[str] = "online-store-unavailable"


class OnlineWriteUnknownError(OnlineStoreUnavailableError):
    """The connection was lost after a write was sent, and whether the online store applied it is unknown.

    Raised only when the store could not be asked afterwards either (a lost reply is otherwise
    resolved: the write counts as done or as not done). Writing the same rows again is safe: the
    store keeps the latest row per key.
    """

    code: ClassVar[str] = "online-write-unknown"


class LakefeedWarning(UserWarning):
    """Root of the warnings lakefeed emits."""

    code: ClassVar[str] = "warning"


class PerformanceWarning(LakefeedWarning):
    """The operation works but is much slower or larger than it needs to be."""

    code: ClassVar[str] = "performance"


class UnstableWarning(LakefeedWarning):
    """The API used may change without a deprecation period."""

    code: ClassVar[str] = "unstable"
