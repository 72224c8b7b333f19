"""The median of a short 1-D array, as ``np.median`` gives it, without its per-call cost.

An ECG's analysis takes a handful of medians of a dozen values (RR intervals, beat correlations, QRS
slopes, P-wave correlations), and reading a record one more (its leads' peak-to-peak amplitudes, in
``elvmass.io._assemble``); ``np.median`` spends ~25 us on each in bookkeeping. :func:`median_1d`
returns the same number (the middle value, or the mean of the two middle values computed as
``(a + b) / 2`` in float64, NaN when any value is NaN) from a sorted list.

    >>> median_1d([3, 1, 2, 10])
    2.5
"""

from __future__ import annotations

import math

import numpy as np

#: longer arrays go to ``np.median`` (sorting a Python list stops paying)
SHORT = 64


def median_1d(values) -> float:
    """``float(np.median(values))`` for a 1-D array or list of numbers (float32 and other non-float64
    arrays, which NumPy averages in their own type, and long ones go to ``np.median``)."""
    a = np.asarray(values).reshape(-1)
    n = a.size
    if n == 0 or n > SHORT or not (a.dtype == np.float64 or a.dtype.kind in "iu"):
        return float(np.median(a))
    s = sorted(a.tolist())
    if any(math.isnan(v) for v in s):
        return math.nan
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2.0


__all__ = ["median_1d"]
