"""The scaling benchmark's Redis memory figures, on a small data set and a redis-server of its own."""

from __future__ import annotations

from loadtest.bench_scaling import ScalingResult, format_table, measure_redis_footprint


def test_footprint_counts_every_kind():
    footprint = measure_redis_footprint(touches=300, installs=100)

    assert footprint["touches"] == 300
    assert footprint["bytes_per_touch_body"] > 0
    assert footprint["bytes_per_touch_index_entries"] > 0
    assert footprint["bytes_per_touch"] == footprint["bytes_per_touch_body"] + footprint["bytes_per_touch_index_entries"]
    assert footprint["bytes_per_dedup_entry"] > 0
    assert footprint["bytes_per_install"] > 0


def test_table_row_per_configuration():
    results = [
        ScalingResult("embedded, 1 worker", "memory", 1, 1000.0, 1.0, 2.0, 3.0, 10, 0, None, 90.0, None, 5.0, None),
        ScalingResult("redis, 2 workers", "redis", 2, 2000.0, 1.0, 2.0, 3.0, 20, 1, "HTTP 503", 150.0, 40.0, 5.0, 2.5),
    ]

    lines = format_table(results).splitlines()

    assert len(lines) == 4
    assert lines[2].startswith("| embedded, 1 worker | 1,000 |")
    assert "| n/a |" in lines[2]
    assert lines[3].startswith("| redis, 2 workers | 2,000 |")
    assert lines[3].endswith("| 2.50 | 1 |")
