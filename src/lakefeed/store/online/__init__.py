"""Online stores: the latest feature values per key, for serving (SQLite embedded, Redis in production).

Example:
    >>> import os, tempfile
    >>> from lakefeed.store.online import open_online_store
    >>> with open_online_store(os.path.join(tempfile.mkdtemp(), "online.db")) as store:
    ...     store.groups()
    []
"""

from __future__ import annotations

import os

from lakefeed.config import RedisOnlineConfig, SqliteOnlineConfig
from lakefeed.errors import ConfigError
from lakefeed.store.online.base import EntityKey, KeyValue, OnlineGroup, OnlineStore
from lakefeed.store.online.redis import RedisOnlineStore
from lakefeed.store.online.sqlite import SqliteOnlineStore

__all__ = [
    "EntityKey",
    "KeyValue",
    "OnlineGroup",
    "OnlineStore",
    "RedisOnlineStore",
    "SqliteOnlineStore",
    "open_online_store",
]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_online_store(target: str | os.PathLike[str] | SqliteOnlineConfig | RedisOnlineConfig) -> OnlineStore:
    """Open an online store from a path, a URI or a config.

    Args:
        target: A file path or ``sqlite:///path`` (SQLAlchemy style: ``sqlite:////abs/path``) for
            SQLite; ``redis://``, ``rediss://`` or ``unix://`` for Redis; or a config model.

    Returns:
        The store (close it, or use it as a context manager).

    Raises:
        ConfigError: An unknown URI scheme.
        MissingDependencyError: A Redis URI without redis-py installed.

    Example:
        >>> import os, tempfile
        >>> store = open_online_store("sqlite:///" + os.path.join(tempfile.mkdtemp(), "online.db"))
        >>> type(store).__name__
        'SqliteOnlineStore'
        >>> store.close()
    """
    if isinstance(target, SqliteOnlineConfig):
        return SqliteOnlineStore(target.path, timeout_s=target.timeout_s)
    if isinstance(target, RedisOnlineConfig):
        return RedisOnlineStore(target)
    if isinstance(target, os.PathLike):
        return SqliteOnlineStore(target)
    if not isinstance(target, str):
        msg = f"open_online_store needs a path, a URI or an online store config, got {type(target).__name__}"
        raise ConfigError(msg)
    if target.startswith(_REDIS_SCHEMES):
        return RedisOnlineStore(RedisOnlineConfig(url=target))
    if target.startswith("sqlite:///"):
        return SqliteOnlineStore(target.removeprefix("sqlite:///"))
    if "://" in target:
        scheme = target.split("://", 1)[0]
        msg = f"unknown online store URI scheme {scheme!r} in {target!r}; use a path, sqlite:///..., redis://..."
        raise ConfigError(msg)
    return SqliteOnlineStore(target)
