"""Framework-free loading: shuffled, sharded, resumable numpy batches from any lakefeed table."""

from lakefeed.loader.loader import Loader
from lakefeed.loader.support import LoaderStats

__all__ = ["Loader", "LoaderStats"]
