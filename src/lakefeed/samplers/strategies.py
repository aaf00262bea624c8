"""Sampling strategies for the streaming :class:`~lakefeed.Loader`: small validated value objects.

The samplers in this package work on indices of a table read up front; a strategy instead
tells the loader how to sample rows while it streams them. A strategy only names a column
and its options; the loader checks the column against the table when it is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import Any

from lakefeed.errors import ConfigError

__all__ = ["Balanced", "SamplingStrategy", "Stratified", "Weighted"]

Label = str | int
"""A class label as a strategy names it (bools count as ints)."""


def _check_column(owner: str, column: object) -> None:
    if not isinstance(column, str) or not column:
        msg = f"{owner}: column must be a non-empty column name (str), got {column!r}"
        raise ConfigError(msg)


@dataclass(frozen=True)
class Weighted:
    """Sample rows with probability proportional to a weight column.

    Args:
        column: The numeric weight column (non-negative, not all zero).
        replacement: Draw with replacement (a row may repeat within an epoch) or without.

    Raises:
        ConfigError: ``column`` is not a non-empty string or ``replacement`` is not a bool.

    Example:
        >>> from lakefeed.samplers import Weighted
        >>> Weighted("w", replacement=False)
        Weighted(column='w', replacement=False)
        >>> Weighted("w") == Weighted("w", replacement=True)
        True
    """

    column: str
    _: KW_ONLY
    replacement: bool = True

    def __post_init__(self) -> None:
        _check_column("Weighted", self.column)
        if not isinstance(self.replacement, bool):
            msg = f"Weighted: replacement must be True or False, got {self.replacement!r}"
            raise ConfigError(msg)


@dataclass(frozen=True)
class Stratified:
    """Sample rows so that the classes of a label column keep given shares.

    Args:
        column: The label column.
        shares: Relative share of each class (normalised by their sum), e.g.
            ``{"fraud": 1, "normal": 9}``; None keeps the classes' natural shares. A class
            not named is not sampled; to drop a class, filter the scan instead of giving it 0.

    Raises:
        ConfigError: ``column`` is not a non-empty string, ``shares`` is empty, names a label
            that is not a str or int, or gives a class a share that is not a finite number > 0.

    Example:
        >>> from lakefeed.samplers import Stratified
        >>> s = Stratified("label", shares={"fraud": 1, "normal": 3})
        >>> s
        Stratified(column='label', shares={'fraud': 1, 'normal': 3})
        >>> s.fractions()
        {'fraud': 0.25, 'normal': 0.75}
        >>> Stratified("label").shares is None
        True
    """

    column: str
    shares: Mapping[str, float] | Mapping[int, float] | None = field(default=None)

    def __post_init__(self) -> None:
        _check_column("Stratified", self.column)
        if self.shares is None:
            return
        if not isinstance(self.shares, Mapping):
            msg = f"Stratified: shares must be a dict of label -> share, got {type(self.shares).__name__}"
            raise ConfigError(msg)
        if not self.shares:
            msg = "Stratified: shares is empty; name at least one class, or pass shares=None for natural shares"
            raise ConfigError(msg)
        for label, share in self.shares.items():
            if not isinstance(label, str | int):
                msg = f"Stratified: label {label!r} in shares is {type(label).__name__}; labels are str or int"
                raise ConfigError(msg)
            if isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share):
                msg = f"Stratified: shares[{label!r}] is {share!r}; a share is a finite number > 0"
                raise ConfigError(msg)
            if share <= 0:
                msg = (
                    f"Stratified: shares[{label!r}] is {share}, which requests zero rows of that class; "
                    f"give it a share > 0 or drop its rows with a filter"
                )
                raise ConfigError(msg)
        object.__setattr__(self, "shares", MappingProxyType(dict(self.shares)))

    def fractions(self) -> dict[Label, float] | None:
        """The shares normalised to sum to 1 (None for natural shares).

        Returns:
            Each class's fraction of the sampled rows.

        Example:
            >>> from lakefeed.samplers import Stratified
            >>> Stratified("y", shares={0: 2, 1: 2}).fractions()
            {0: 0.5, 1: 0.5}
        """
        if self.shares is None:
            return None
        total = math.fsum(self.shares.values())
        return {label: share / total for label, share in self.shares.items()}

    def __hash__(self) -> int:
        shares = None if self.shares is None else frozenset(self.shares.items())
        return hash((type(self), self.column, shares))

    def __reduce__(self) -> tuple[Any, ...]:
        # the shares are kept in a read-only proxy, which does not pickle: rebuilt from a dict
        return (type(self), (self.column, None if self.shares is None else dict(self.shares)))

    def __repr__(self) -> str:
        shares = None if self.shares is None else dict(self.shares)
        return f"Stratified(column={self.column!r}, shares={shares!r})"


@dataclass(frozen=True)
class Balanced:
    """Sample rows so that every batch holds the same number of rows of every class.

    Args:
        column: The label column; the loader's batch size must be a multiple of its number
            of classes.

    Raises:
        ConfigError: ``column`` is not a non-empty string.

    Example:
        >>> from lakefeed.samplers import Balanced
        >>> Balanced("label")
        Balanced(column='label')
    """

    column: str

    def __post_init__(self) -> None:
        _check_column("Balanced", self.column)


SamplingStrategy = Weighted | Stratified | Balanced
"""Any of the strategies the loader accepts."""
