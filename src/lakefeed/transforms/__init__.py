"""Feature transforms: fit on tables larger than memory, apply identically offline and online."""
