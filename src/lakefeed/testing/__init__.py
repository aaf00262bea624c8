"""Public test helpers: comparing tables and rows (bit for bit), hypothesis strategies for filters."""

from lakefeed.testing.compare import assert_rows_identical, assert_tables_equal, identical, sort_rows
from lakefeed.testing.strategies import filters

__all__ = ["assert_rows_identical", "assert_tables_equal", "filters", "identical", "sort_rows"]
