"""The tracker's running state: database, ingestion poller, status snapshot, reconciliation.

The API routes call into one ``Tracker``; database work runs in Starlette's thread pool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from customer_tracker import db, reconcile
from customer_tracker.errors import Conflict, TrackerError
from customer_tracker.ingestion_client import IngestionClient
from customer_tracker.latency import DEFAULT_POLL_INTERVAL_SECONDS, LatencyMonitor
from customer_tracker.metrics import ReconciliationMetrics, TrackerCollector
from customer_tracker.status import CustomerStatus, evaluate, status_document
from customer_tracker.store import Clock, Store, utc_now
from exporters.metrics import Registry

logger = logging.getLogger(__name__)

DEFAULT_METRICS_REFRESH_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class TrackerSettings:
    database_url: str
    ingestion_url: str
    admin_token: str
    stats_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS
    metrics_refresh_seconds: float = DEFAULT_METRICS_REFRESH_SECONDS


class Tracker:
    def __init__(self, settings: TrackerSettings, registry: Registry, *, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.engine = db.create_database_engine(settings.database_url)
        self.store = Store(db.session_factory(self.engine), clock)
        self.client = IngestionClient(settings.ingestion_url, settings.admin_token)
        self.monitor = LatencyMonitor(
            self.client,
            interval_seconds=settings.stats_interval_seconds,
            record_probe=self._record_probe,
            on_poll=self.refresh,
            clock=clock,
        )
        self.statuses: tuple[CustomerStatus, ...] = ()
        self._refresh_lock = threading.Lock()
        self._refresh_task: asyncio.Task | None = None
        registry.register(TrackerCollector(lambda: self.statuses, self.monitor))
        self.reconciliation_metrics = ReconciliationMetrics(registry)

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        url = db.describe_url(self.engine.url)
        await run_in_threadpool(db.migrate, self.engine)
        logger.info("database schema is current", extra={"database": url, "revision": db.head_revision()})
        await self.refresh()
        self.monitor.start()
        self._refresh_task = asyncio.create_task(self._refresh_periodically(), name="metrics-refresh")

    async def stop(self) -> None:
        await self.monitor.stop()
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            try:
                await self._refresh_task
            except asyncio.CancelledError:
                pass
        await self.client.aclose()
        await run_in_threadpool(self.engine.dispose)

    async def readiness(self) -> dict[str, bool]:
        try:
            await run_in_threadpool(self.store.ping)
        except Exception as error:
            logger.warning("database check failed", extra={"error": f"{type(error).__name__}: {error}"})
            return {"database": False}
        return {"database": True}

    async def _record_probe(self, ok: bool, error: str | None) -> None:
        await run_in_threadpool(self.store.record_probe, ok, error)

    # -- status snapshot ----------------------------------------------------

    def refresh_now(self) -> None:
        """Rebuild the status snapshot from the database; call it after every write."""
        with self._refresh_lock:
            facts = self.store.load_facts()
            now = self.clock()
            self.statuses = tuple(
                evaluate(item, self.monitor.customer_latency(item.app_ids), now) for item in facts
            )

    async def refresh(self) -> None:
        try:
            await run_in_threadpool(self.refresh_now)
        except Exception:
            logger.exception("refreshing the status snapshot failed; metrics show the previous one")

    async def _refresh_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.metrics_refresh_seconds)
            await self.refresh()

    def write(self, operation: Callable, *args):
        """Run a store write, then refresh the snapshot so the next scrape shows it."""
        result = operation(*args)
        try:
            self.refresh_now()
        except Exception:
            logger.exception("refreshing the status snapshot after a write failed")
        return result

    def customer_status(self, customer_id: str) -> dict:
        facts = self.store.load_facts(customer_id)[0]
        status = evaluate(facts, self.monitor.customer_latency(facts.app_ids), self.clock())
        return status_document(status)

    def summary(self) -> dict:
        """Return the pilot counts and one line per customer, from a fresh read of the database."""
        facts = self.store.load_facts()
        now = self.clock()
        statuses = [evaluate(item, self.monitor.customer_latency(item.app_ids), now) for item in facts]
        pilots = [status for status in statuses if status.facts.pilot]
        return {
            "total_pilot_customers": len(pilots),
            "successful_pilot_customers": sum(1 for status in pilots if status.successful),
            "ingestion_stats": self.monitor.describe(),
            "customers": [
                {
                    "customer_id": status.facts.customer_id,
                    "company_name": status.facts.company_name,
                    "pilot": status.facts.pilot,
                    "phase": status.facts.phase,
                    "days_to_launch": status.launch.days,
                    "launch_colour": status.launch.colour,
                    "open_tickets": status.facts.open_tickets,
                    "satisfaction_percent": None if status.satisfaction is None else float(status.satisfaction),
                    "health_score": status.health_score,
                    "successful_pilot": status.successful,
                }
                for status in statuses
            ],
        }

    # -- reconciliation -----------------------------------------------------

    async def reconcile(self, customer_id: str, body: bytes, content_type: str):
        """Compare the uploaded reference with the ingestion service's records and keep the run."""
        try:
            rows, source_format = await run_in_threadpool(reconcile.parse_reference, body, content_type)
            app_ids = await run_in_threadpool(self.store.customer_app_ids, customer_id)
            if not app_ids:
                raise Conflict(
                    f"customer {customer_id!r} has no apps, so there are no records to compare: add its app_ids "
                    f"with PATCH /v1/customers/{customer_id}",
                    field="app_ids",
                )
            reconcile.check_apps(rows, app_ids, customer_id)
        except TrackerError:
            self.reconciliation_metrics.runs.labels("rejected").inc()
            raise
        try:
            install_ids = {row.install_event_id for row in rows}
            index = await reconcile.index_records(app_ids, install_ids, self.client.iter_attributions)
        except TrackerError as error:
            self.reconciliation_metrics.runs.labels("failed").inc()
            logger.warning("reconciliation failed", extra={"customer_id": customer_id, "error": error.message})
            raise
        outcome = await run_in_threadpool(reconcile.compare, rows, index)
        run = await run_in_threadpool(
            self.write,
            lambda: self.store.save_reconciliation(
                customer_id,
                source_format=source_format,
                compared=outcome.compared,
                matched=outcome.matched,
                accuracy_percent=outcome.accuracy_percent,
                mismatches=outcome.mismatches,
            ),
        )
        self.reconciliation_metrics.runs.labels("recorded").inc()
        logger.info(
            "reconciliation recorded",
            extra={
                "customer_id": customer_id, "run_id": run.id, "compared": outcome.compared,
                "matched": outcome.matched, "accuracy_percent": str(outcome.accuracy_percent),
            },
        )
        return run, outcome
