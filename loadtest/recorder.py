"""Counting events across Locust processes and measuring the judged window of a campaign.

Every process counts the events in its ingestion users' responses in an `EventTally`. A
worker ships its counts to the master with each stats report (every 3 s), and the master adds
them to its own tally, so in a distributed run the master's figures trail the workers' by up
to one report interval. The `CampaignRecorder` runs in the master (or the only process): it
samples the tally once per second for the current rate, and snapshots Locust's statistics when
the judged window opens and closes.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any

from locust.stats import calculate_response_time_percentile, diff_response_time_dicts

from loadtest.verdict import Measurement

EVENTS_ENDPOINT = "/v1/events"
REPORT_KEY = "unmogrowp_events"
RATE_WINDOW_S = 10.0  # the same window Locust uses for its current RPS and percentiles


class EventTally:
    """Events counted in the ingestion service's responses, by outcome."""

    __slots__ = ("accepted", "duplicates", "rejected", "batches")

    def __init__(self) -> None:
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self.batches = 0

    @property
    def events(self) -> int:
        return self.accepted + self.duplicates + self.rejected

    def add(self, accepted: int, duplicates: int, rejected: int) -> None:
        self.accepted += accepted
        self.duplicates += duplicates
        self.rejected += rejected
        self.batches += 1

    def drain(self) -> list[int]:
        """Return the counts as a list for a worker report and reset them."""
        counts = [self.accepted, self.duplicates, self.rejected, self.batches]
        self.reset()
        return counts

    def merge(self, counts: list[int]) -> None:
        accepted, duplicates, rejected, batches = counts
        self.accepted += accepted
        self.duplicates += duplicates
        self.rejected += rejected
        self.batches += batches

    def reset(self) -> None:
        self.accepted = self.duplicates = self.rejected = self.batches = 0


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    time: float
    events: int
    requests: int
    failures: int
    event_response_times: dict[int, int]
    event_requests: int


class CampaignRecorder:
    """Rate samples and judged-window snapshots of one run, kept in the master process."""

    def __init__(self, stats: Any, tally: EventTally, clock=time.monotonic) -> None:
        self.stats = stats
        self.tally = tally
        self.clock = clock
        self.samples: collections.deque[tuple[float, int]] = collections.deque()
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
        self.samples.clear()
        self.window_start = None
        self.window_end = None
        self.window_end_is_run_end = False
        self.judged = False
        self.awaiting_start = True

    def run_started(self) -> None:
        """Note that Locust cleared its statistics and the tally for the new run."""
        self.awaiting_start = False

    def _snapshot(self) -> _Snapshot:
        if self.awaiting_start:
            return _Snapshot(self.clock(), 0, 0, 0, {}, 0)
        total = self.stats.total
        entry = self.stats.entries.get((EVENTS_ENDPOINT, "POST"))
        return _Snapshot(
            time=self.clock(),
            events=self.tally.events,
            requests=total.num_requests,
            failures=total.num_failures,
            event_response_times=dict(entry.response_times) if entry else {},
            event_requests=entry.num_requests if entry else 0,
        )

    def sample(self) -> None:
        """Record the current event count; called once per second."""
        now = self.clock()
        self.samples.append((now, self.tally.events))
        while self.samples and self.samples[0][0] < now - RATE_WINDOW_S - 1:
            self.samples.popleft()

    def events_per_second(self) -> float:
        """Return the event rate over about the last 10 s of samples."""
        if len(self.samples) < 2:
            return 0.0
        now = self.samples[-1][0]
        oldest = next((sample for sample in self.samples if sample[0] >= now - RATE_WINDOW_S), self.samples[0])
        elapsed = now - oldest[0]
        if elapsed <= 0:
            return 0.0
        return (self.samples[-1][1] - oldest[1]) / elapsed

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

    def measurement(self) -> Measurement | None:
        """Return the judged window's measurement; an open window is measured up to now."""
        start = self.window_start
        if start is None:
            return None
        if self.window_end is None:
            end = self._snapshot()
        elif self.window_end_is_run_end:
            end = dataclasses.replace(self._snapshot(), time=self.window_end.time)
        else:
            end = self.window_end

        response_times = diff_response_time_dicts(end.event_response_times, start.event_response_times)
        event_requests = end.event_requests - start.event_requests
        p95 = None
        if event_requests > 0:
            p95 = float(calculate_response_time_percentile(response_times, event_requests, 0.95))
        return Measurement(
            duration_s=max(end.time - start.time, 1e-9),
            events=end.events - start.events,
            requests=end.requests - start.requests,
            failures=end.failures - start.failures,
            p95_ms=p95,
        )
