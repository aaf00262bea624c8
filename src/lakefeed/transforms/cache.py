"""A thread-safe LRU cache of feature dicts with an optional time to live: :class:`FeatureCache`."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from lakefeed.errors import ConfigError, SchemaError

__all__ = ["FeatureCache"]

_OWNER = "FeatureCache"


class FeatureCache:
    """Feature dicts by key, least recently used evicted first, optionally expiring after ``ttl`` seconds.

    ``put`` stores a shallow copy of the dict and ``get`` returns a fresh shallow copy, so
    callers cannot change what is cached by mutating either (values inside, such as lists or
    arrays, are shared: treat them as read-only). A ``get`` hit makes the key the most recently
    used; it does not extend its life: an entry expires ``ttl`` seconds after its ``put``.
    Expired entries count as misses and are dropped when met (by ``get``, by eviction, and
    all at once by :meth:`get_stats`). Every method holds one lock: safe from many threads.

    Args:
        max_size: The most entries kept (> 0).
        ttl: Seconds an entry lives after ``put``; None for no expiry.
        clock: Returns the current time in seconds (monotonic); inject one in tests.

    Raises:
        ConfigError: For a bad ``max_size`` or ``ttl``.

    Example:
        >>> cache = FeatureCache(max_size=2)
        >>> cache.put("u1", {"clicks_7d": 3})
        >>> cache.put("u2", {"clicks_7d": 5})
        >>> cache.get("u1"), cache.get("nope")
        ({'clicks_7d': 3}, None)
        >>> cache.put("u3", {"clicks_7d": 1})  # evicts u2, the least recently used
        >>> cache.get("u2") is None, cache.get_stats()["evictions"]
        (True, 1)
    """

    def __init__(
        self, max_size: int = 10000, ttl: float | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0:
            msg = f"{_OWNER}: max_size must be an int greater than 0, got {max_size!r}; e.g. max_size=10000"
            raise ConfigError(msg)
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or not (0 < ttl < math.inf)):
            msg = f"{_OWNER}: ttl must be a positive number of seconds or None (no expiry), got {ttl!r}"
            raise ConfigError(msg)
        self.max_size = max_size
        self.ttl = None if ttl is None else float(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()
        self._hits = self._misses = self._evictions = self._expirations = 0

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store (a shallow copy of) ``value`` under ``key``, replacing and refreshing any previous entry.

        Raises:
            SchemaError: If ``value`` is not a mapping.
        """
        if not isinstance(value, Mapping):
            msg = f"{_OWNER}: values are feature dicts, got {type(value).__name__} for key {key!r}"
            raise SchemaError(msg)
        stored = dict(value)
        with self._lock:
            expires = math.inf if self.ttl is None else self._clock() + self.ttl
            self._entries[key] = (stored, expires)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                _, (_, old_expiry) = self._entries.popitem(last=False)
                if old_expiry <= self._clock():
                    self._expirations += 1
                else:
                    self._evictions += 1

    def get(self, key: str) -> dict[str, Any] | None:
        """A copy of the dict stored under ``key``, or None if absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
                return None
            value, expires = entry
            if expires <= self._clock():
                del self._entries[key]
                self._expirations += 1
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return dict(value)

    def clear(self) -> None:
        """Remove every entry; the counters keep counting (they describe the cache's lifetime)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get_stats(self) -> dict[str, Any]:
        """Counters and size, after dropping expired entries.

        Returns:
            ``hits``, ``misses``, ``evictions`` (entries pushed out by ``max_size``),
            ``expirations`` (entries dropped for their age), ``size``, ``max_size`` and
            ``hit_rate`` (``hits / (hits + misses)``, 0.0 before any ``get``).
        """
        with self._lock:
            if self.ttl is not None:
                now = self._clock()
                expired = [k for k, (_, expires) in self._entries.items() if expires <= now]
                for k in expired:
                    del self._entries[k]
                self._expirations += len(expired)
            lookups = self._hits + self._misses
            return {
                "hits": self._hits,
                "misses": self._misses,
                "evictions": self._evictions,
                "expirations": self._expirations,
                "size": len(self._entries),
                "max_size": self.max_size,
                "hit_rate": self._hits / lookups if lookups else 0.0,
            }

    def __repr__(self) -> str:
        return f"FeatureCache(max_size={self.max_size}, ttl={self.ttl}, size={len(self)})"
