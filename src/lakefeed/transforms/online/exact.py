"""Exact, correctly rounded sums: the same numbers offline (vectorised) and online (incremental).

Floating-point addition is not associative: a running sum, a pairwise sum and a difference of
prefix sums of the same values usually differ in the last bits. The event windows therefore
define the sum of a window as the *exact* sum of its values, rounded once to the nearest
float64 (ties to even). That number depends only on which values are in the window, so any
algorithm computing it gives the same bits:

* offline, :func:`window_sums` splits every value into 32-bit integer limbs on a common binary
  scale, takes prefix sums of each limb in ``int64`` (exact: fewer than 2**31 rows), gets each
  window's limb sums as differences, propagates carries and rounds once (round-to-odd to 63
  bits, then the hardware's round-to-nearest-even to 53: a correct rounding);
* online, :func:`scaled` turns a value into the exact integer ``value * 2**1074`` (every finite
  float64 is an integer multiple of ``2**-1074``), running sums are Python ints and
  :func:`unscale` rounds once with Python's correctly rounded integer division.

Non-finite values follow IEEE rules, decided from counts rather than from arithmetic: a window
holding a NaN, or both +inf and -inf, sums to NaN; one holding +inf (-inf) sums to +inf (-inf).
An exact sum beyond the float64 range rounds to +-inf; an exact zero is +0.0.
"""

from __future__ import annotations

import math

import numpy as np

from lakefeed.errors import UnsupportedOperationError

__all__ = ["SCALE_BITS", "apply_nonfinite", "scaled", "unscale", "window_counts", "window_sums"]

SCALE_BITS = 1074
"""Every finite float64 is an integer multiple of ``2**-SCALE_BITS``."""

_LIMB_BITS = 32
_LIMB_MASK = (1 << _LIMB_BITS) - 1
_MAX_ROWS = (1 << 31) - 1  # limb prefix sums stay below 2**63


def scaled(value: float) -> int:
    """The exact integer ``value * 2**1074`` of a finite float.

    Example:
        >>> scaled(0.5) == 1 << 1073
        True
    """
    numerator, denominator = value.as_integer_ratio()
    return numerator << (SCALE_BITS - (denominator.bit_length() - 1))


def unscale(total: int) -> float:
    """``total / 2**1074`` rounded once to the nearest float64 (+-inf beyond the float range).

    Example:
        >>> unscale(scaled(0.1) + scaled(0.2)) == 0.30000000000000004, unscale(scaled(1e308) * 2)
        (True, inf)
    """
    try:
        return total / (1 << SCALE_BITS)  # int / int is correctly rounded in CPython
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def apply_nonfinite(total: float, nans: int, pos_infs: int, neg_infs: int) -> float:
    """The sum of a window given the exact sum of its finite values and its non-finite counts.

    Example:
        >>> apply_nonfinite(2.0, 0, 1, 0), apply_nonfinite(2.0, 0, 1, 1)
        (inf, nan)
    """
    if nans or (pos_infs and neg_infs):
        return math.nan
    if pos_infs:
        return math.inf
    if neg_infs:
        return -math.inf
    return total


def window_counts(mask: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """How many of ``mask[lo[i]:hi[i]]`` are true, for each ``i`` (int64).

    Example:
        >>> window_counts(np.array([True, False, True]), np.array([0, 1]), np.array([3, 3])).tolist()
        [2, 1]
    """
    prefix = np.zeros(len(mask) + 1, dtype=np.int64)
    np.cumsum(mask, dtype=np.int64, out=prefix[1:])
    result: np.ndarray = prefix[hi] - prefix[lo]
    return result


def window_sums(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The correctly rounded exact sum of ``values[lo[i]:hi[i]]`` for each ``i``.

    Args:
        values: float64 values (NaN and +-inf allowed; see the module docstring).
        lo: Window starts, int64, ``0 <= lo <= hi``.
        hi: Window ends (exclusive), int64, ``hi <= len(values)``.

    Returns:
        float64 sums, one per window; an empty window sums to 0.0.

    Raises:
        UnsupportedOperationError: With 2**31 values or more.

    Example:
        >>> v = np.array([1e16, 1.0, -1e16, 0.5])
        >>> window_sums(v, np.array([0, 1]), np.array([3, 4])).tolist()  # float64 adds 1e16 + 1.0 to 1e16
        [1.0, -9999999999999998.0]
    """
    x = np.ascontiguousarray(values, dtype=np.float64)
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    if len(x) > _MAX_ROWS:
        msg = f"exact window sums handle at most {_MAX_ROWS} values at once, got {len(x)}; split the input by key"
        raise UnsupportedOperationError(msg)
    finite = np.isfinite(x)
    result = _finite_sums(np.where(finite, x, 0.0), lo, hi)
    if not finite.all():
        nans = window_counts(np.isnan(x), lo, hi)
        pos = window_counts(x == np.inf, lo, hi)
        neg = window_counts(x == -np.inf, lo, hi)
        result[pos > 0] = np.inf
        result[neg > 0] = -np.inf
        result[(nans > 0) | ((pos > 0) & (neg > 0))] = np.nan
    return result


def _finite_sums(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Exact sums of finite values as limbs, rounded once (the module docstring has the plan)."""
    fraction, exponent = np.frexp(x)
    mantissa = (fraction * 2.0**53).astype(np.int64)  # exact: |mantissa| < 2**53
    nonzero = mantissa != 0
    if not nonzero.any():
        return np.zeros(len(lo), dtype=np.float64)
    magnitude = np.abs(mantissa).astype(np.uint64)
    power = exponent.astype(np.int64) - 53
    # drop trailing zero bits so the common scale (the lowest set bit of any value) is as high as it can be
    lowest = magnitude & (~magnitude + np.uint64(1))
    trailing = np.where(nonzero, np.frexp(lowest.astype(np.float64))[1].astype(np.int64) - 1, 0)
    magnitude >>= trailing.astype(np.uint64)
    power += trailing
    base = int(power[nonzero].min())
    shift = np.where(nonzero, power - base, 0)
    limbs = (int(shift.max()) + 53) // _LIMB_BITS + 1
    negative = mantissa < 0

    sums = np.empty((limbs, len(lo)), dtype=np.int64)
    prefix = np.zeros(len(x) + 1, dtype=np.int64)
    for limb in range(limbs):
        offset = _LIMB_BITS * limb - shift  # where limb's lowest bit sits in the (unshifted) magnitude
        right = np.right_shift(magnitude, np.clip(offset, 0, 63).astype(np.uint64))
        left = np.left_shift(magnitude, np.clip(-offset, 0, 63).astype(np.uint64))
        part = np.where(offset >= 0, right, left) & np.uint64(_LIMB_MASK)
        part[(offset >= 64) | (offset <= -_LIMB_BITS)] = 0
        signed = part.astype(np.int64)
        np.cumsum(np.where(negative, -signed, signed), out=prefix[1:])
        sums[limb] = prefix[hi] - prefix[lo]

    # digits in [0, 2**32) plus a signed top digit; its sign is the sign of the sum
    sign_negative = _carry(sums)[limbs] < 0
    digits = _carry(np.where(sign_negative, -sums, sums)).astype(np.uint64)
    magnitude_sum = _round_digits(digits, base)
    result: np.ndarray = np.where(sign_negative, -magnitude_sum, magnitude_sum)
    return result


def _carry(sums: np.ndarray) -> np.ndarray:
    """Normalise limb sums to digits in ``[0, 2**32)`` and one more (signed) top digit."""
    digits = np.empty((sums.shape[0] + 1, sums.shape[1]), dtype=np.int64)
    carry = np.zeros(sums.shape[1], dtype=np.int64)
    for limb in range(sums.shape[0]):
        total = sums[limb] + carry
        digits[limb] = total & _LIMB_MASK
        carry = total >> _LIMB_BITS  # floor division: keeps the digit non-negative
    digits[-1] = carry
    return digits


def _round_digits(digits: np.ndarray, base: int) -> np.ndarray:
    """Round ``sum(digits[k] * 2**(32 k)) * 2**base`` (non-negative) once to float64."""
    count, width = digits.shape
    present = digits != 0
    top_index = count - 1 - np.argmax(present[::-1], axis=0)
    columns = np.arange(width)
    top = digits[top_index, columns]
    next1 = np.where(top_index >= 1, digits[np.maximum(top_index - 1, 0), columns], np.uint64(0))
    next2 = np.where(top_index >= 2, digits[np.maximum(top_index - 2, 0), columns], np.uint64(0))
    below = np.cumsum(present, axis=0)
    sticky = (top_index >= 3) & (below[np.maximum(top_index - 3, 0), columns] > 0)

    bits = np.frexp(np.maximum(top, np.uint64(1)).astype(np.float64))[1].astype(np.uint64)  # bit length, 1..32
    head = (
        np.left_shift(top, np.uint64(64) - bits)
        | np.left_shift(next1, np.uint64(32) - bits)
        | np.right_shift(next2, bits)
    )
    sticky |= (next2 & (np.left_shift(np.uint64(1), bits) - np.uint64(1))) != 0
    # round to odd at 63 bits (>= 53 + 2), then the int64 -> float64 conversion rounds to nearest even
    odd = np.right_shift(head, np.uint64(1)) | (head & np.uint64(1)) | sticky.astype(np.uint64)
    scale = _LIMB_BITS * top_index.astype(np.int64) + bits.astype(np.int64) - 63 + base
    with np.errstate(over="ignore"):
        result: np.ndarray = np.ldexp(odd.astype(np.int64).astype(np.float64), scale)
    result[~present.any(axis=0)] = 0.0
    return result
