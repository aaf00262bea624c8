"""Where things are: lakefeed's home folder, URIs and the pyarrow filesystems behind them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["filesystem_and_path", "is_uri", "resolve_home", "to_uri"]

HOME_ENV = "LAKEFEED_HOME"


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    """The embedded home folder: the argument, else ``$LAKEFEED_HOME``, else ``~/.lakefeed``.

    Example:
        >>> resolve_home("/tmp/x").as_posix()
        '/tmp/x'
    """
    if home is not None:
        return Path(home).expanduser().absolute()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().absolute()
    return Path.home() / ".lakefeed"


def is_uri(location: str) -> bool:
    """Whether ``location`` carries a scheme (``s3://``, ``file://``), as opposed to a local path.

    Example:
        >>> is_uri("s3://bucket/key"), is_uri("/tmp/x"), is_uri("C:/x")
        (True, False, False)
    """
    scheme = urlparse(location).scheme
    return len(scheme) > 1


def to_uri(location: str | os.PathLike[str]) -> str:
    """A URI for a local path or URI (local paths become absolute ``file://`` URIs).

    Example:
        >>> to_uri("/tmp/wh")
        'file:///tmp/wh'
    """
    text = os.fspath(location)
    if is_uri(text):
        return text
    return Path(text).expanduser().absolute().as_uri()


def filesystem_and_path(location: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the path within it for a local path or a URI.

    Example:
        >>> fs, path = filesystem_and_path("file:///tmp/data")
        >>> type(fs).__name__, path
        ('LocalFileSystem', '/tmp/data')
    """
    import pyarrow.fs as pafs

    text = os.fspath(location)
    if not is_uri(text):
        return pafs.LocalFileSystem(), str(Path(text).expanduser().absolute())
    parsed = urlparse(text)
    if parsed.scheme == "file":
        return pafs.LocalFileSystem(), unquote(parsed.path)
    fs, path = pafs.FileSystem.from_uri(text)
    return fs, path
