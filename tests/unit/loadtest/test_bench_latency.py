"""The latency benchmark's percentiles, windows, compaction spans, report and option checks."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

import pytest

from loadtest.bench_latency import Timeline, compaction_spans, format_report, main


def test_percentiles_by_nearest_rank():
    timeline = Timeline([0.0] * 20, [float(value) for value in range(1, 21)], 0)

    # Ranks ceil(0.5 * 20) = 10 and ceil(0.95 * 20) = 19.
    assert timeline.percentile(0.50) == 10.0
    assert timeline.percentile(0.95) == 19.0
    assert Timeline([], [], 0).percentile(0.95) is None


def test_window_p95_groups_by_send_time():
    # A stall at 2 s: every request scheduled in that window waited.
    timeline = Timeline([0.1, 0.5, 2.2, 2.9, 4.0], [10.0, 12.0, 800.0, 600.0, 11.0], 0)

    assert timeline.window_p95(2.0) == [(0.0, 12.0), (2.0, 800.0), (4.0, 11.0)]


def test_report_names_rate_fill_and_windows():
    timeline = Timeline([0.1, 2.2], [10.0, 800.0], 1)
    args = argparse.Namespace(events_per_second=80_000.0, fill_events=8_000_000, window=2.0)

    lines = format_report(timeline, args, filled=8_040_000).splitlines()

    assert lines[0] == "2 requests at 80,000 events/s after 8,040,000 events; failed requests: 1"
    assert lines[1] == "p50 10 ms, p95 800 ms, p99 800 ms, slowest 800 ms"
    assert lines[2] == "p95 in ms per 2 s window (window start: p95): 0:10 2:800"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--events-per-second", "0"], "must be positive"),
        (["--events-per-second", "1000", "--fill-events", "-5"], "--fill-events must be 0 or more, got -5"),
    ],
)
def test_invalid_options_rejected(capsys, arguments, message):
    with pytest.raises(SystemExit):
        main(arguments)

    assert message in capsys.readouterr().err


def test_compaction_spans_from_log_lines():
    started = datetime(2026, 12, 5, 11, 0, 0, tzinfo=timezone.utc).timestamp()
    lines = [
        "INFO:     Started server process [1]",
        '{"time":"2026-12-05T11:00:10.500Z","level":"info","message":"journal compacted","seconds":12.5}',
        '{"time":"2026-12-05T11:00:11.000Z","level":"info","message":"snapshot written"}',
        '["not", "a record"]',
        '{"time":"2026-12-05T11:01:05.000Z","level":"info","message":"journal compacted","seconds":5.0}',
    ]

    assert compaction_spans(lines, started) == [(-2.0, 10.5), (60.0, 65.0)]


def test_report_lists_compactions_when_asked():
    timeline = Timeline([0.1], [10.0], 0)
    args = argparse.Namespace(events_per_second=1000.0, fill_events=0, window=2.0)

    assert format_report(timeline, args, 0, [(-2.0, 10.5)]).splitlines()[-1] == (
        "compactions, in s from the start of the paced load (a stop finishes a running one): -2.0 to 10.5")
    assert format_report(timeline, args, 0, []).endswith("one): none logged")
    assert "compactions" not in format_report(timeline, args, 0)
