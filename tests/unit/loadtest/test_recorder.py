"""Event tallies across processes and the judged window over Locust's real statistics."""

from __future__ import annotations

import pytest
from locust.stats import RequestStats

from loadtest.recorder import EVENTS_ENDPOINT, TICK_S, WORKER_REPORT_LAG_S, CampaignRecorder, EventTally


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
    clock = Clock()
    worker = EventTally(clock=clock)
    worker.add(990, 10, 0)
    clock.now += 1
    worker.add(1000, 0, 0)
    master = EventTally(clock=clock)

    master.merge(worker.drain())

    assert (master.accepted, master.duplicates, master.rejected, master.batches) == (1990, 10, 0, 2)
    assert master.events == 2000
    assert master.events_between(1000.0, 1001.0) == pytest.approx(1000)
    assert master.events_between(1001.0, 1002.0) == pytest.approx(1000)
    assert worker.events == 0
    assert worker.batches == 0
    assert worker.by_tick == {}


def test_tally_slots_split_time():
    clock = Clock()
    tally = EventTally(clock=clock)
    for _ in range(10):
        tally.add(100, 0, 0)
        clock.now += TICK_S

    assert tally.events_between(1000.0, 1000.5) == pytest.approx(500)
    assert tally.events_between(1000.5, 1001.0) == pytest.approx(500)
    assert tally.events_between(999.0, 1000.0) == 0


def test_window_measures_only_judged_part():
    clock = Clock()
    stats, tally = RequestStats(), EventTally(clock=clock)
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
    clock = Clock()
    stats, tally = RequestStats(), EventTally(clock=clock)
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
    clock = Clock()
    stats, tally = RequestStats(), EventTally(clock=clock)
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
    clock = Clock()
    stats, tally = RequestStats(), EventTally(clock=clock)
    recorder = CampaignRecorder(stats, tally, clock=clock)
    recorder.set_judged(True)
    _send(stats, tally, 10)
    clock.now += 5
    recorder.close_with_run()

    clock.now += 3
    # A worker's final report arrives after the stop, with events from before and after it.
    tally.merge([1500, 0, 0, 2, [[round(1004 / TICK_S), 1000], [round(1006 / TICK_S), 500]], 1006.0])

    measurement = recorder.measurement()

    assert measurement.duration_s == 5
    assert measurement.events == 2000


def _distributed(clock: Clock) -> tuple[EventTally, EventTally, CampaignRecorder]:
    """Return a worker's tally, and a master's tally and its started recorder, on one clock."""
    worker = EventTally(clock=clock)
    master = EventTally(clock=clock)
    recorder = CampaignRecorder(RequestStats(), master, clock=clock, settle_s=WORKER_REPORT_LAG_S)
    recorder.run_started()
    return worker, master, recorder


def test_late_report_before_window_not_counted():
    # A worker's user sends 1,000 events every 0.5 s and the worker reports every 3 s, so the
    # master learns of the last warm-up events only after the window has opened.
    clock = Clock()
    worker, master, recorder = _distributed(clock)
    since = clock.now
    for half_second in range(1, 61):
        clock.now = 1000.0 + half_second * 0.5
        worker.add(1000, 0, 0, since=since)
        since = clock.now
        if half_second % 6 == 0:
            master.merge(worker.drain())
        if half_second == 21:
            recorder.set_judged(True)  # at 1010.5, 1.5 s after the last report
    master.merge(worker.drain())
    recorder.close_with_run()

    measurement = recorder.measurement(complete=True)

    assert measurement.duration_s == pytest.approx(19.5)
    assert measurement.events == 39_000
    assert master.events == 60_000


def test_stage_closed_window_ignores_later_events():
    clock = Clock()
    stats, tally = RequestStats(), EventTally(clock=clock)
    recorder = CampaignRecorder(stats, tally, clock=clock)
    recorder.set_judged(True)
    _send(stats, tally, 10)
    clock.now += 5
    recorder.set_judged(False)
    _send(stats, tally, 10)
    recorder.close_with_run()

    assert recorder.measurement().events == 1000


def test_no_window_without_judged_tick():
    clock = Clock()
    recorder = CampaignRecorder(RequestStats(), EventTally(clock=clock), clock=clock)
    recorder.set_judged(False)

    assert recorder.measurement() is None


def test_events_per_second_over_recent_seconds():
    clock = Clock()
    stats, tally = RequestStats(), EventTally(clock=clock)
    recorder = CampaignRecorder(stats, tally, clock=clock)

    assert recorder.events_per_second() == 0
    recorder.run_started()
    for _ in range(30):
        for _ in range(10):
            tally.add(200, 0, 0)
            clock.now += TICK_S

    assert recorder.events_per_second() == pytest.approx(2000)


@pytest.mark.parametrize("phase", [0.0, 0.3, 0.6, 0.9])
def test_short_window_measures_paced_user(phase):
    # One user sends a 1,000-event batch every 1/1.02 s, so a 3 s window contains 3 or 4 responses.
    clock = Clock()
    stats, tally = RequestStats(), EventTally(clock=clock)
    recorder = CampaignRecorder(stats, tally, clock=clock)
    recorder.run_started()
    since = clock.now
    clock.now += phase
    for _ in range(12):
        clock.now += 1 / 1.02
        tally.add(1000, 0, 0, since=since)
        since = clock.now
        if recorder.window_start is None and clock.now > 1003.0:
            recorder.set_judged(True)
            opened = clock.now
        if recorder.window_start is not None and clock.now >= opened + 3.0:
            break
    clock.now = opened + 3.02
    recorder.close_with_run()

    assert recorder.measurement().events_per_second == pytest.approx(1020, rel=0.02)


def test_master_rate_steady_between_reports():
    # A worker sends 2,000 events/s and reports every 3 s; the master's rate must not swing.
    clock = Clock()
    worker, master, recorder = _distributed(clock)
    recorder.set_judged(True)
    rates = []
    for tenth in range(1, 301):
        worker.add(200, 0, 0)
        clock.now = 1000.0 + tenth * TICK_S
        if tenth % 30 == 0:
            master.merge(worker.drain())
        if tenth >= 150 and tenth % 10 == 0:
            rates.append(recorder.events_per_second())

    assert min(rates) == pytest.approx(2000, rel=0.03)
    assert max(rates) == pytest.approx(2000, rel=0.03)
    assert recorder.measurement().events_per_second == pytest.approx(2000, rel=0.03)


def test_open_window_steady_for_paced_user():
    # The live verdict reads an open window: one user's batch every 1/1.02 s must not make it swing.
    clock = Clock()
    tally = EventTally(clock=clock)
    period = 1 / 1.02
    recorder = CampaignRecorder(RequestStats(), tally, clock=clock, settle_s=period)
    recorder.run_started()
    since = clock.now
    next_response = clock.now + period
    rates = []
    for tenth in range(1, 201):
        clock.now = 1000.0 + tenth * TICK_S
        if clock.now >= next_response:
            tally.add(1000, 0, 0, since=since)
            since = clock.now
            next_response += period
            if recorder.window_start is None:
                recorder.set_judged(True)
        if tenth >= 50 and (measurement := recorder.measurement()) is not None:
            rates.append(measurement.events_per_second)

    assert len(rates) > 100
    # The smoke campaign's target is 1,000 events/s: the live throughput verdict never reads fail.
    assert min(rates) >= 1000
    assert max(rates) <= 1021


def test_closed_window_read_before_last_reports():
    # The stage closes at 1020; the worker's last report of the window comes 3 s later.
    clock = Clock()
    worker, master, recorder = _distributed(clock)
    recorder.set_judged(True)
    for tenth in range(1, 201):
        clock.now = 1000.0 + tenth * TICK_S
        worker.add(200, 0, 0)
        if tenth % 30 == 0:
            master.merge(worker.drain())
    recorder.set_judged(False)
    clock.now += 1.0

    live = recorder.measurement()
    master.merge(worker.drain())
    clock.now += 3.0
    final = recorder.measurement(complete=True)

    assert live.duration_s == pytest.approx(20 - WORKER_REPORT_LAG_S + 1)
    assert live.events_per_second == pytest.approx(2000, rel=0.03)
    assert final.duration_s == pytest.approx(20)
    assert final.events_per_second == pytest.approx(2000, rel=0.01)
