"""Public test helpers: comparing tables and hypothesis strategies for filters."""

from lakefeed.testing.compare import assert_tables_equal, sort_rows
from lakefeed.testing.strategies import filters

__all__ = ["assert_tables_equal", "filters", "sort_rows"]
