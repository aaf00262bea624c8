"""Ragged columns: gathering and concatenating rows agrees with plain Python lists."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lakefeed.loader.convert import Ragged

rows_strategy = st.lists(st.lists(st.integers(-50, 50), max_size=6), max_size=30)


def _ragged(rows: list[list[int]]) -> Ragged:
    offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return Ragged(np.array([v for r in rows for v in r], np.int64), offsets)


def _lists(r: Ragged) -> list[list[int]]:
    return [r.values[r.offsets[i] : r.offsets[i + 1]].tolist() for i in range(len(r))]


@given(rows_strategy, st.data())
def test_gather_and_slice_match_lists(rows: list[list[int]], data: st.DataObject) -> None:
    r = _ragged(rows)
    index = data.draw(st.lists(st.integers(0, max(0, len(rows) - 1)), max_size=40)) if rows else []
    assert _lists(r[np.array(index, np.int64)]) == [rows[i] for i in index]
    lo, hi = data.draw(st.integers(0, len(rows))), data.draw(st.integers(0, len(rows)))
    assert _lists(r[lo:hi]) == rows[lo:hi]
    assert _lists(r[lo:hi:2]) == rows[lo:hi:2]


@given(st.lists(rows_strategy, min_size=1, max_size=5))
def test_concat_matches_lists(parts: list[list[list[int]]]) -> None:
    joined = Ragged.concat([_ragged(p)[1:] for p in parts])  # slices: offsets that do not start at 0
    assert _lists(joined) == [row for p in parts for row in p[1:]]
