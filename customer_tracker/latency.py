"""Per-customer API latency from the ingestion service's ``/v1/stats``, polled on a schedule.

Each poll replaces the per-app percentiles and is recorded as a probe, whose share of
successes is the uptime a pilot is judged on. When a poll fails the last figures are kept
and marked stale, and the tracker keeps serving. Failed polls in the first
STARTUP_GRACE_SECONDS after the tracker starts, before any poll succeeded, are not recorded:
``unmogrowp up`` starts both services together, so the first polls may come before the
ingestion service listens.

A customer's percentile is the maximum of that percentile over its apps that had events in
the statistics window. A true combined percentile would need each app's full latency
distribution, which ``/v1/stats`` does not return. The maximum is an upper bound of the
combined percentile, so a pilot never looks faster than its slowest app.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable, Iterable

from customer_tracker.errors import TrackerError
from customer_tracker.ingestion_client import IngestionClient

logger = logging.getLogger(__name__)

PERCENTILES = ("p50", "p95", "p99")
DEFAULT_POLL_INTERVAL_SECONDS = 15.0
# Figures are stale when the last poll failed or the last success is older than this many intervals.
STALE_AFTER_INTERVALS = 3
# While the service stays unreachable, one warning is logged every this many failed polls.
FAILURE_LOG_EVERY = 20
STARTUP_GRACE_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class AppLatency:
    events: int
    milliseconds: dict[str, float]  # percentile name -> latency in ms


@dataclasses.dataclass(frozen=True)
class CustomerLatency:
    """A customer's latency percentiles in ms, with the apps and poll they come from."""

    milliseconds: dict[str, float] | None
    apps_counted: tuple[str, ...]
    as_of: dt.datetime | None
    window_seconds: int | None
    stale: bool


def parse_app_stats(apps: dict) -> dict[str, AppLatency]:
    """Read the per-app part of ``/v1/stats``; apps without usable percentiles are left out."""
    parsed: dict[str, AppLatency] = {}
    for app_id, entry in apps.items():
        if not isinstance(entry, dict):
            continue
        counts = entry.get("events") or {}
        events = 0
        if isinstance(counts, dict):
            events = sum(int(value) for value in counts.values() if isinstance(value, (int, float)))
        latency = entry.get("latency_ms") or {}
        milliseconds = {}
        for name in PERCENTILES:
            value = latency.get(name) if isinstance(latency, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
                milliseconds[name] = float(value)
        if len(milliseconds) == len(PERCENTILES):
            parsed[str(app_id)] = AppLatency(events=events, milliseconds=milliseconds)
    return parsed


def combine_app_latency(apps: dict[str, AppLatency], app_ids: Iterable[str]) -> tuple[dict[str, float] | None, tuple[str, ...]]:
    """Return the maximum of each percentile over the given apps that had events."""
    counted = tuple(sorted(app_id for app_id in set(app_ids) if app_id in apps and apps[app_id].events > 0))
    if not counted:
        return None, ()
    combined = {name: max(apps[app_id].milliseconds[name] for app_id in counted) for name in PERCENTILES}
    return combined, counted


class LatencyMonitor:
    """Polls ``/v1/stats`` every ``interval_seconds`` and keeps the latest per-app figures."""

    def __init__(
        self,
        client: IngestionClient,
        *,
        interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
        record_probe: Callable[[bool, str | None], Awaitable[None]] | None = None,
        on_poll: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.client = client
        self.interval_seconds = interval_seconds
        self._record_probe = record_probe
        self._on_poll = on_poll
        self._clock = clock
        self.apps: dict[str, AppLatency] = {}
        self.window_seconds: int | None = None
        self.last_success_at: dt.datetime | None = None
        self.last_attempt_at: dt.datetime | None = None
        self.last_error: str | None = None
        self.consecutive_failures = 0
        self.started_at = clock()
        self._task: asyncio.Task | None = None

    @property
    def stale(self) -> bool:
        if self.last_success_at is None or self.last_error is not None:
            return True
        return self.age_seconds() > STALE_AFTER_INTERVALS * self.interval_seconds

    def age_seconds(self) -> float | None:
        """Return the seconds since the last successful poll, or None before the first."""
        if self.last_success_at is None:
            return None
        return max((self._clock() - self.last_success_at).total_seconds(), 0.0)

    async def poll_once(self) -> bool:
        """Fetch the statistics once; return whether it worked."""
        self.last_attempt_at = self._clock()
        try:
            document = await self.client.get_stats()
        except TrackerError as error:
            self._note_failure(error.message)
        else:
            self.apps = parse_app_stats(document["apps"])
            window = document.get("window_seconds")
            self.window_seconds = window if isinstance(window, int) else None
            self.last_success_at = self._clock()
            if self.last_error is not None:
                logger.info("ingestion statistics reachable again", extra={"failed_polls": self.consecutive_failures})
            self.last_error = None
            self.consecutive_failures = 0
        ok = self.last_error is None
        if self._record_probe is not None and (ok or not self._starting_up()):
            try:
                await self._record_probe(ok, self.last_error)
            except Exception:
                logger.exception("recording the ingestion poll failed")
        if self._on_poll is not None:
            await self._on_poll()
        return ok

    def _starting_up(self) -> bool:
        """Return whether no poll has succeeded yet within STARTUP_GRACE_SECONDS of the start."""
        if self.last_success_at is not None:
            return False
        return (self._clock() - self.started_at).total_seconds() < STARTUP_GRACE_SECONDS

    def _note_failure(self, message: str) -> None:
        self.consecutive_failures += 1
        self.last_error = message
        if self.consecutive_failures == 1 or self.consecutive_failures % FAILURE_LOG_EVERY == 0:
            logger.warning(
                "polling ingestion statistics failed; latency figures are stale",
                extra={"error": message, "failed_polls": self.consecutive_failures},
            )

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:
                logger.exception("ingestion statistics poll crashed; retrying at the next interval")
            await asyncio.sleep(self.interval_seconds)

    def start(self) -> None:
        self.started_at = self._clock()
        self._task = asyncio.create_task(self.run(), name="ingestion-stats-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def customer_latency(self, app_ids: Iterable[str]) -> CustomerLatency:
        milliseconds, counted = combine_app_latency(self.apps, app_ids)
        return CustomerLatency(
            milliseconds=milliseconds,
            apps_counted=counted,
            as_of=self.last_success_at,
            window_seconds=self.window_seconds,
            stale=self.stale,
        )

    def describe(self) -> dict:
        """Return the poll state for ``/readyz`` and the status page."""
        age = self.age_seconds()
        return {
            "url": f"{self.client.base_url}/v1/stats",
            "stale": self.stale,
            "last_success_at": None if self.last_success_at is None else self.last_success_at.isoformat(),
            "age_seconds": None if age is None else round(age, 3),
            "poll_interval_seconds": self.interval_seconds,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
        }
