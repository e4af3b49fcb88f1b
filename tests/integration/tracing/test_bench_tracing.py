"""The tracing benchmark runs end to end; its figures are not checked here."""

from __future__ import annotations

from loadtest.bench_tracing import SETTINGS, format_table, run


def test_benchmark_reports_every_setting():
    result = run(duration_s=0.5, rounds=1, warmup_s=0.2, batch_size=50, connections=2)

    rows = {row["setting"]: row for row in result["settings"]}
    assert list(rows) == list(SETTINGS)
    for setting, row in rows.items():
        assert row["errors"] == 0, f"{setting}: {row['first_error']}"
        assert row["median_events_per_second"] > 0, setting
    assert rows["tracing off"]["span_metrics"] == {}
    # Every request of the always-sampled setting ends spans that the down
    # collector never gets: they are dropped or still wait in the queue.
    down = rows["100 % sampling, collector down"]["span_metrics"]
    assert down["otel_spans_exported_total"] == 0
    assert down["otel_spans_dropped_total"] + down["otel_span_queue_size"] > 0
    assert "| tracing off |" in format_table(result)
