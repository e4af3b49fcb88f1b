"""Nearest-rank percentiles, as the benchmarks' own load generators compute them."""

from __future__ import annotations

import pytest

from loadtest.bench_latency import Timeline
from loadtest.httpload import LoadResult
from loadtest.percentile import nearest_rank

HUNDRED = [float(value) for value in range(100, 0, -1)]


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.50, 50.0), (0.95, 95.0), (0.99, 99.0), (1.0, 100.0), (0.07, 7.0), (0.001, 1.0)],
)
def test_rank_of_hundred_values(fraction, expected):
    assert nearest_rank(HUNDRED, fraction) == expected


def test_rank_between_values_rounds_up():
    assert nearest_rank([3.0, 1.0, 2.0], 0.5) == 2.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 0.6) == 3.0


def test_single_and_no_values():
    assert nearest_rank([7.0], 0.95) == 7.0
    assert nearest_rank([], 0.95) is None


def test_benchmarks_agree():
    load = LoadResult(events=0, requests=100, errors=0, first_error=None, seconds=1.0, latencies_ms=list(HUNDRED))
    timeline = Timeline(scheduled_s=[0.0] * 100, latencies_ms=list(HUNDRED), errors=0)

    assert load.percentile(0.95) == 95.0
    assert timeline.percentile(0.95) == 95.0
