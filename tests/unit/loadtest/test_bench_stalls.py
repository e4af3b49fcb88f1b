"""The stall benchmark's causes and report."""

from __future__ import annotations

import gc
import re

from loadtest import bench_stalls
from loadtest.bench_stalls import CollectorClock, SlowBatch, main


def test_cause_names_rebuilds_and_oldest_generation():
    batch = SlowBatch(0, 120.0, 30.0, [0, 1], ["records", "installs"])

    assert batch.cause == "table rebuild: records, installs, collection of generation 1"
    assert SlowBatch(1, 40.0, 0.0, [], []).cause == "not identified"
    assert SlowBatch(2, 40.0, 0.0, [0], [], expired=12).cause == "expiry, collection of generation 0"


def test_clock_keeps_pauses_across_resets():
    clock = CollectorClock()

    for generation in (0, 1, 0):
        clock("start", {"generation": generation})
        clock("stop", {"generation": generation})
        clock.reset()

    assert sorted(clock.pauses) == [0, 1]
    assert len(clock.pauses[0]) == 2
    assert len(clock.pauses[1]) == 1
    assert clock.generations == []


def test_small_run_explains_every_slow_batch(capsys):
    thresholds = gc.get_threshold()
    try:
        # A tiny threshold marks every batch slow, so each one must get a row's cause.
        assert main(["--fill-batches", "20", "--batches", "30", "--slow-ms", "0.001"]) == 0
    finally:
        gc.set_threshold(*thresholds)

    output = capsys.readouterr().out
    assert "30 batches after 20:" in output
    rows = [line for line in output.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert sum(int(row.split("|")[2]) for row in rows) == 30


def test_moving_event_times_expire_entries(capsys, monkeypatch):
    monkeypatch.setattr(bench_stalls, "BATCHES_PER_TEMPLATE_SET", 5)
    thresholds = gc.get_threshold()
    try:
        # A day per batch: the impressions of one template set expire two sets later.
        assert main(["--fill-batches", "10", "--batches", "20", "--slow-ms", "0.001", "--hours-per-batch", "24"]) == 0
    finally:
        gc.set_threshold(*thresholds)

    output = capsys.readouterr().out
    rows = [line for line in output.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert any("expiry" in row.split("|")[1] for row in rows)
    # Event ids are forgotten 7 days after receipt, which only moving receipt times reach.
    [expired] = [line for line in output.splitlines() if line.startswith("entries expired during the timed batches:")]
    dedup = re.search(r"dedup ([\d,]+)", expired)
    assert dedup is not None
    assert int(dedup.group(1).replace(",", "")) > 0
