"""Counting events across Locust processes and measuring the judged window of a campaign.

Every process counts the events in its ingestion users' responses in an `EventTally`, by
outcome and by tenths of a second of wall-clock time. A user's batch is spread evenly over the
time since that user's previous counted response, so a window of a few seconds measures a paced
user's rate, not whether one more of its responses fell inside. A worker ships its counts to
the master with each stats report (every 3 s), and the master adds them to its own tally. The `CampaignRecorder` runs in the master (or the only process). It notes the
times at which the judged window opens and closes, and snapshots Locust's statistics then.
The events of the window are those that arrived between the two times, whenever their
reports reach the master, so a worker's late report neither inflates nor shrinks it. Workers
on other hosts must keep their clocks in step with the master's (NTP), as any distributed
measurement needs.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from locust.runners import WORKER_REPORT_INTERVAL
from locust.stats import calculate_response_time_percentile, diff_response_time_dicts

from loadtest.verdict import Measurement

EVENTS_ENDPOINT = "/v1/events"
REPORT_KEY = "unmogrowp_events"
RATE_WINDOW_S = 10.0  # the same window Locust uses for its current RPS and percentiles
# Width of the time slots in which a tally counts events.
TICK_S = 0.1
# Maximum time back that one batch's events are spread over.
MAX_SPREAD_S = 60.0
# Seconds by which a master's counts of its workers' events may lag: one report interval, and
# one second for the report to arrive.
WORKER_REPORT_LAG_S = WORKER_REPORT_INTERVAL + 1.0


def settle_seconds(send_period_s: float, distributed: bool) -> float:
    """Return how long after a moment a tally has every event of it.

    A user's batch counts back to its previous response, so one send period must pass, and in
    a master also the workers' report lag.
    """
    return send_period_s + (WORKER_REPORT_LAG_S if distributed else 0.0)


class EventTally:
    """Events counted in the ingestion service's responses, by outcome and over time.

    ``by_tick`` maps the number of a TICK_S slot of wall-clock time to the events counted in it,
    a fraction where a batch was spread over several slots. It keeps one entry per slot with
    traffic: 36,000 per hour of run.
    """

    __slots__ = ("accepted", "duplicates", "rejected", "batches", "by_tick", "latest", "clock")

    def __init__(self, clock=time.time) -> None:
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self.batches = 0
        self.by_tick: dict[int, float] = {}
        # When the last counted response arrived (wall-clock seconds), or None before any.
        self.latest: float | None = None
        self.clock = clock

    @property
    def events(self) -> int:
        return self.accepted + self.duplicates + self.rejected

    def add(self, accepted: int, duplicates: int, rejected: int, since: float | None = None) -> float:
        """Count one response's events, spread evenly from `since` (wall-clock seconds) to now.

        Without `since`, or with one that is not in the past, they count at once. Returns now,
        the time they were counted up to.
        """
        self.accepted += accepted
        self.duplicates += duplicates
        self.rejected += rejected
        self.batches += 1
        events = accepted + duplicates + rejected
        now = self.clock()
        if self.latest is None or now > self.latest:
            self.latest = now
        by_tick = self.by_tick
        if since is None or since >= now:
            tick = int(now / TICK_S)
            by_tick[tick] = by_tick.get(tick, 0) + events
            return now
        since = max(since, now - MAX_SPREAD_S)
        per_second = events / (now - since)
        for tick in range(int(since / TICK_S), int(now / TICK_S) + 1):
            covered = min(now, (tick + 1) * TICK_S) - max(since, tick * TICK_S)
            if covered > 0:
                by_tick[tick] = by_tick.get(tick, 0) + per_second * covered
        return now

    def drain(self) -> list:
        """Return the counts for a worker report, as msgpack-friendly lists, and reset them."""
        counts = [self.accepted, self.duplicates, self.rejected, self.batches, list(self.by_tick.items()), self.latest]
        self.reset()
        return counts

    def merge(self, counts: list) -> None:
        """Add the counts of a worker report made by ``drain``."""
        accepted, duplicates, rejected, batches, ticks, latest = counts
        self.accepted += accepted
        self.duplicates += duplicates
        self.rejected += rejected
        self.batches += batches
        by_tick = self.by_tick
        for tick, events in ticks:
            by_tick[tick] = by_tick.get(tick, 0) + events
        if latest is not None and (self.latest is None or latest > self.latest):
            self.latest = latest

    def events_between(self, start: float, end: float) -> float:
        """Return the events counted from `start` to `end` (wall-clock seconds).

        A slot that the span covers in part counts in proportion, as if its events were spread
        evenly over it.
        """
        total = 0.0
        for tick, events in self.by_tick.items():
            covered = min(end, (tick + 1) * TICK_S) - max(start, tick * TICK_S)
            if covered > 0:
                total += events * covered / TICK_S
        return total

    def reset(self) -> None:
        self.accepted = self.duplicates = self.rejected = self.batches = 0
        self.by_tick = {}
        self.latest = None


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    time: float
    requests: int
    failures: int
    event_response_times: dict[int, int]
    event_requests: int


class CampaignRecorder:
    """The judged window of one run and the current event rate, kept in the master process.

    ``settle_s`` is how long after a moment the tally has all of its events (see
    ``settle_seconds``). The current rate and an open window are measured up to that long ago,
    so events not yet counted do not read as a drop in throughput.
    """

    def __init__(self, stats: Any, tally: EventTally, clock=time.time, settle_s: float = 0.0) -> None:
        self.stats = stats
        self.tally = tally
        self.clock = clock
        self.settle_s = settle_s
        self.run_start: float | None = None
        self.window_start: _Snapshot | None = None
        self.window_end: _Snapshot | None = None
        self.window_end_is_run_end = False
        self.judged = False
        self.awaiting_start = False

    def reset(self) -> None:
        """Forget the previous run; called by the shape just before its first tick.

        Locust clears its statistics only after that tick, when the run starts, so a window
        opened before `run_started` starts from zero rather than from the old figures.
        """
        self.run_start = None
        self.window_start = None
        self.window_end = None
        self.window_end_is_run_end = False
        self.judged = False
        self.awaiting_start = True

    def run_started(self) -> None:
        """Note that Locust cleared its statistics and the tally for the new run."""
        self.awaiting_start = False
        self.run_start = self.clock()

    def _snapshot(self) -> _Snapshot:
        if self.awaiting_start:
            return _Snapshot(self.clock(), 0, 0, {}, 0)
        total = self.stats.total
        entry = self.stats.entries.get((EVENTS_ENDPOINT, "POST"))
        return _Snapshot(
            time=self.clock(),
            requests=total.num_requests,
            failures=total.num_failures,
            event_response_times=dict(entry.response_times) if entry else {},
            event_requests=entry.num_requests if entry else 0,
        )

    def events_per_second(self) -> float:
        """Return the event rate over the last RATE_WINDOW_S seconds that the tally has complete."""
        if self.run_start is None:
            return 0.0
        end = self.clock() - self.settle_s
        start = max(end - RATE_WINDOW_S, self.run_start)
        if end - start < 1.0:
            return 0.0
        return self.tally.events_between(start, end) / (end - start)

    def set_judged(self, judged: bool) -> None:
        """Open the judged window on the first judged tick and close it on the next unjudged one."""
        if judged and self.window_start is None:
            self.window_start = self._snapshot()
        elif not judged and self.judged and self.window_end is None:
            self.window_end = self._snapshot()
        self.judged = judged

    def close_with_run(self) -> None:
        """Close the window because the run stopped, unless a stage closed it before.

        Counts that worker reports deliver after this still belong to the window, so the
        measurement takes them at the time it is computed and only the end time from here.
        """
        if self.window_start is not None and self.window_end is None:
            self.window_end = self._snapshot()
            self.window_end_is_run_end = True
        self.judged = False

    def measurement(self, complete: bool = False) -> Measurement | None:
        """Return the judged window's measurement, or None before it has lasted ``settle_s``.

        While the run goes on, the window is measured up to ``settle_s`` ago at the latest,
        because the tally may not have the events after that yet. An open window takes Locust's
        statistics as they are now. `complete` means that the run has ended and every report has
        arrived, so the whole window counts.
        """
        start = self.window_start
        if start is None:
            return None
        settled = self.clock() - self.settle_s
        if self.window_end is None:
            end = dataclasses.replace(self._snapshot(), time=settled)
            if end.time <= start.time:
                return None
        elif not complete and self.window_end.time > settled:
            # Closed a moment ago: the events of its last seconds may still be on their way.
            if settled <= start.time:
                return None
            end = dataclasses.replace(self.window_end, time=settled)
        elif self.window_end_is_run_end:
            # Stopped users send no batch that would cover the time after their last response,
            # so the window ends with the last counted events if they came before the stop.
            end_time = self.window_end.time
            latest = self.tally.latest
            if latest is not None and start.time < latest < end_time:
                end_time = latest
            end = dataclasses.replace(self._snapshot(), time=end_time)
        else:
            end = self.window_end

        response_times = diff_response_time_dicts(end.event_response_times, start.event_response_times)
        event_requests = end.event_requests - start.event_requests
        p95 = None
        if event_requests > 0:
            p95 = float(calculate_response_time_percentile(response_times, event_requests, 0.95))
        return Measurement(
            duration_s=max(end.time - start.time, 1e-9),
            events=round(self.tally.events_between(start.time, end.time)),
            requests=end.requests - start.requests,
            failures=end.failures - start.failures,
            p95_ms=p95,
        )
