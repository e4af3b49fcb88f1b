"""Event tallies across processes and the judged window over Locust's real statistics."""

from __future__ import annotations

import pytest
from locust.stats import RequestStats

from loadtest.recorder import EVENTS_ENDPOINT, CampaignRecorder, EventTally


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _send(stats: RequestStats, tally: EventTally, response_time_ms: int, events: int = 1000, failed: bool = False):
    stats.log_request("POST", EVENTS_ENDPOINT, response_time_ms, 60)
    if failed:
        stats.log_error("POST", EVENTS_ENDPOINT, "HTTP 503")
    else:
        tally.add(events, 0, 0)


def test_tally_drain_and_merge():
    worker = EventTally()
    worker.add(990, 10, 0)
    worker.add(1000, 0, 0)
    master = EventTally()

    master.merge(worker.drain())

    assert (master.accepted, master.duplicates, master.rejected, master.batches) == (1990, 10, 0, 2)
    assert master.events == 2000
    assert worker.events == 0
    assert worker.batches == 0


def test_window_measures_only_judged_part():
    stats, tally, clock = RequestStats(), EventTally(), Clock()
    recorder = CampaignRecorder(stats, tally, clock=clock)
    recorder.reset()
    recorder.run_started()
    _send(stats, tally, 500)  # warm-up, not judged
    recorder.set_judged(False)

    clock.now += 10
    recorder.set_judged(True)
    for response_time in range(1, 101):
        _send(stats, tally, response_time)
    clock.now += 20
    recorder.set_judged(False)
    _send(stats, tally, 900)  # recovery, not judged

    measurement = recorder.measurement()

    assert measurement.duration_s == 20
    assert measurement.events == 100_000
    assert measurement.events_per_second == 5000
    assert measurement.requests == 100
    assert measurement.failures == 0
    # Locust's percentile of 1..100 ms is the value with at most 5 % of requests above it: 96.
    assert measurement.p95_ms == 96


def test_window_counts_failures():
    stats, tally, clock = RequestStats(), EventTally(), Clock()
    recorder = CampaignRecorder(stats, tally, clock=clock)
    recorder.set_judged(True)
    for index in range(10):
        _send(stats, tally, 10, failed=index < 2)
    clock.now += 1

    measurement = recorder.measurement()

    assert measurement.requests == 10
    assert measurement.failures == 2
    assert measurement.success_ratio == pytest.approx(0.8)
    assert measurement.events == 8000


def test_window_opened_before_start_counts_from_zero():
    stats, tally, clock = RequestStats(), EventTally(), Clock()
    _send(stats, tally, 10)  # figures of a previous run
    recorder = CampaignRecorder(stats, tally, clock=clock)
    recorder.reset()

    recorder.set_judged(True)  # the first tick comes before Locust clears its statistics
    stats.clear_all()
    tally.reset()
    recorder.run_started()
    _send(stats, tally, 20)
    clock.now += 2

    measurement = recorder.measurement()

    assert measurement.requests == 1
    assert measurement.events == 1000
    assert measurement.p95_ms == 20


def test_run_end_window_takes_late_reports():
    stats, tally, clock = RequestStats(), EventTally(), Clock()
    recorder = CampaignRecorder(stats, tally, clock=clock)
    recorder.set_judged(True)
    _send(stats, tally, 10)
    clock.now += 5
    recorder.close_with_run()

    clock.now += 3
    tally.merge([1000, 0, 0, 1])  # a worker's final report arrives after the stop

    measurement = recorder.measurement()

    assert measurement.duration_s == 5
    assert measurement.events == 2000


def test_stage_closed_window_ignores_later_events():
    stats, tally, clock = RequestStats(), EventTally(), Clock()
    recorder = CampaignRecorder(stats, tally, clock=clock)
    recorder.set_judged(True)
    _send(stats, tally, 10)
    clock.now += 5
    recorder.set_judged(False)
    _send(stats, tally, 10)
    recorder.close_with_run()

    assert recorder.measurement().events == 1000


def test_no_window_without_judged_tick():
    recorder = CampaignRecorder(RequestStats(), EventTally(), clock=Clock())
    recorder.set_judged(False)

    assert recorder.measurement() is None


def test_events_per_second_over_recent_samples():
    stats, tally, clock = RequestStats(), EventTally(), Clock()
    recorder = CampaignRecorder(stats, tally, clock=clock)

    assert recorder.events_per_second() == 0
    for _ in range(30):
        tally.add(2000, 0, 0)
        clock.now += 1
        recorder.sample()

    assert recorder.events_per_second() == pytest.approx(2000)
    assert len(recorder.samples) <= 12
