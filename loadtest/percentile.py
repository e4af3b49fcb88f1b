"""Latency percentiles by the nearest-rank method, shared by the benchmarks' own load generators.

The p-th percentile of n values is the value at rank ceil(p * n) in ascending order: the
smallest value that at least a fraction p of the values do not exceed. It is always one of the
measured values, so a report never shows a latency that no request had.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# fraction * count in floating point can land a hair above a whole number (0.07 * 100 gives
# 7.000000000000001), which would move ceil() one rank up.
_ROUNDING_SLACK = 1e-9


def nearest_rank(values: Iterable[float], fraction: float) -> float | None:
    """Return the `fraction` percentile of `values` (0 < fraction <= 1), or None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = math.ceil(fraction * len(ordered) - _ROUNDING_SLACK)
    return ordered[min(len(ordered), max(1, rank)) - 1]
