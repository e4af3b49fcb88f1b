"""The Redis store: every worker and host shares touches, installs, records and apps.

A batch of one app takes two round trips to the node that owns the app's
slot, whatever its size:

1. a read script reserves sequence numbers, checks every event id against the
   duplicate filter, and returns the touches and first installs that the
   batch's installs, sessions and in-app events can match;
2. the attribution engine (the same one the embedded store runs) attributes
   the batch over that snapshot plus what the batch adds (``BatchView``);
3. a commit script claims the event ids and writes touches, installs,
   records and revenue, unless a concurrent commit changed what step 1 read
   or claimed one of the ids first. Then the batch is read and attributed
   again, so concurrent batches of one app behave as if applied one after the
   other (``redis_scripts`` describes the checks).

A batch is acknowledged only after its commit script returned. When the
connection drops before the reply, the commit is sent again until Redis
replies or ``commit_retry_s`` passes; the script recognises its own token,
so a commit that had gone through is not applied twice.

Entries expire with their windows, counted in event time as in the embedded
store: a commit drops index entries and touch bodies that the app's newest
event time has left behind by more than their window plus
``late_arrival_s``. Each key also has a TTL of that span in wall-clock time,
so the data of an app that stops sending goes away too. Duplicate-filter
entries live between ``dedup_horizon_s`` and 8/7 of it (``DedupBuckets``);
records and revenue live ``record_retention_s`` after they were written.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets
import time
from dataclasses import dataclass

from redis.exceptions import RedisError, ResponseError

from exporters.metrics import Counter, Registry
from ingestion.engine import Outcome, attribute_batch
from ingestion.events import Event
from ingestion.model import AppSettings, Record, StoredApp
from ingestion.store import redis_codec as codec
from ingestion.store.base import RecordQuery, RevenueLine, Store, StoreUnavailable
from ingestion.store.redis_apps import AppRegistry
from ingestion.store.redis_batch import BatchView, DedupBuckets, Digests, Horizons, ReadPlan, Snapshot
from ingestion.store.redis_client import RedisTarget, connect, parse_store_url
from ingestion.store.redis_keys import AppKeys
from ingestion.store.redis_scripts import COMMIT, READ

logger = logging.getLogger(__name__)

MAX_REVENUE_LINES_PER_APP = 10_000
RECORD_PAGE_SCAN = 500
LOG_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class RedisSettings:
    """Options of the Redis store; durations in seconds."""

    dedup_horizon_s: int = 7 * 86400
    late_arrival_s: int = 86400
    record_retention_s: int = 400 * 86400
    # Touches read per index and install: the latest ones in the window.
    # NOTE: an install whose newest 1,000 candidates in one index are all
    # rejected as click injection is attributed from those 1,000 only, where
    # the embedded store would go on to older ones.
    max_candidates: int = 1000
    app_refresh_interval_s: float = 0.5
    socket_timeout_s: float = 5.0
    connect_timeout_s: float = 2.0
    commit_retry_s: float = 15.0
    max_attempts: int = 200


class RedisStore(Store):
    """Backend on one Redis server or a Redis Cluster."""

    def __init__(self, url: str | RedisTarget, settings: RedisSettings | None = None) -> None:
        self.target = parse_store_url(url) if isinstance(url, str) else url
        self.settings = settings or RedisSettings()
        self.registry = AppRegistry(self.target.prefix)
        self.client = None
        self._initialized = False
        self._locks: dict[str, asyncio.Lock] = {}
        self._keys: dict[str, AppKeys] = {}
        self._refresher: asyncio.Task | None = None
        self._stopping = False
        self._scripts: dict[str, object] = {}
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.errors = Counter(
            "attribution_store_errors_total",
            "Failed calls to the Redis store, by operation (read, commit, apps, records, refresh).",
            ("operation",),
            registry=None,
        )
        self.retries = Counter(
            "attribution_store_batch_retries_total",
            "Batches read and attributed again, by reason: conflict (another commit claimed one of "
            "their event ids first) or stale (another commit changed what they read).",
            ("reason",),
            registry=None,
        )

    def register_metrics(self, registry: Registry) -> None:
        registry.register(self.errors)
        registry.register(self.retries)

    # Lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        self.client = connect(
            self.target, socket_timeout=settings.socket_timeout_s, connect_timeout=settings.connect_timeout_s
        )
        try:
            await self._refresh()
        except RedisError as error:
            # Start anyway: /readyz reports not ready until Redis replies, and the
            # refresh loop keeps trying, so no restart is needed.
            self._count_error("refresh", error)
        self._refresher = asyncio.create_task(self._refresh_loop(), name="redis-app-refresh")
        logger.info("redis store started", extra={"target": self.target.describe(), "prefix": self.target.prefix})

    async def stop(self) -> None:
        self._stopping = True
        timeout = self.settings.connect_timeout_s
        if self._refresher is not None:
            self._refresher.cancel()
            # asyncio.wait, not wait_for: redis-py may turn the cancellation
            # into a connection error, and wait_for would then wait for ever.
            await asyncio.wait({self._refresher}, timeout=timeout)
            self._refresher = None
        if self.client is not None:
            client, self.client = self.client, None
            closing = asyncio.ensure_future(client.aclose())
            done, _ = await asyncio.wait({closing}, timeout=timeout)
            if not done or closing.exception() is not None:
                error = closing.exception() if done else f"not closed within {timeout} s"
                logger.warning("redis connections not closed cleanly", extra={"error": str(error)})

    async def ready(self) -> bool:
        if self.client is None or not self.registry.loaded:
            return False
        try:
            await self._ensure_initialized()
            await asyncio.wait_for(self.client.ping(), self.settings.connect_timeout_s)
        except (RedisError, OSError, asyncio.TimeoutError) as error:
            self._count_error("ping", error)
            return False
        return True

    async def _ensure_initialized(self) -> None:
        if self.target.cluster and not self._initialized:
            await self.client.initialize()
            self._initialized = True

    async def _refresh(self) -> None:
        await self._ensure_initialized()
        if await self.registry.refresh(self.client):
            logger.info("apps loaded", extra={"apps": len(self.registry.apps)})

    async def _refresh_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.app_refresh_interval_s)
            try:
                await self._refresh()
            except (RedisError, OSError) as error:
                self._count_error("refresh", error)

    def _client(self):
        if self.client is None:
            raise StoreUnavailable("the Redis store is not started")
        return self.client

    # Errors -------------------------------------------------------------

    def _count_error(self, operation: str, error: BaseException, **ids) -> None:
        """Count a Redis error and log it, at most once per LOG_INTERVAL_SECONDS per operation."""
        self.errors.labels(operation).inc()
        now = time.monotonic()
        if now - self._last_log.get(operation, -math.inf) < LOG_INTERVAL_SECONDS:
            self._suppressed[operation] = self._suppressed.get(operation, 0) + 1
            return
        self._last_log[operation] = now
        suppressed = self._suppressed.pop(operation, 0)
        logger.error(
            "redis store call failed",
            extra={
                "operation": operation,
                "error": f"{type(error).__name__}: {error}",
                "target": self.target.describe(),
                "similar_errors_not_logged": suppressed,
                **ids,
            },
        )

    def _unavailable(self, operation: str, error: BaseException, **ids) -> StoreUnavailable:
        self._count_error(operation, error, **ids)
        return StoreUnavailable(f"Redis at {self.target.describe()} failed during {operation}: {type(error).__name__}: {error}")

    # Apps ---------------------------------------------------------------

    async def create_app(self, app: StoredApp) -> bool:
        try:
            await self._ensure_initialized()
            return await self.registry.create(self._client(), app)
        except RedisError as error:
            raise self._unavailable("apps", error, app_id=app.settings.app_id) from error

    async def get_app(self, app_id: str) -> StoredApp | None:
        try:
            await self._ensure_initialized()
            return await self.registry.get(self._client(), app_id)
        except RedisError as error:
            raise self._unavailable("apps", error, app_id=app_id) from error

    async def list_apps(self) -> list[StoredApp]:
        try:
            await self._ensure_initialized()
            return await self.registry.list(self._client())
        except RedisError as error:
            raise self._unavailable("apps", error) from error

    async def replace_app(self, app: StoredApp) -> None:
        try:
            await self._ensure_initialized()
            await self.registry.replace(self._client(), app)
        except RedisError as error:
            raise self._unavailable("apps", error, app_id=app.settings.app_id) from error

    async def delete_app(self, app_id: str) -> bool:
        try:
            await self._ensure_initialized()
            return await self.registry.delete(self._client(), app_id)
        except RedisError as error:
            raise self._unavailable("apps", error, app_id=app_id) from error

    def app_by_key_id(self, key_id: str) -> StoredApp | None:
        return self.registry.by_key_id.get(key_id)

    def cached_app(self, app_id: str) -> StoredApp | None:
        return self.registry.apps.get(app_id)

    async def fetch_app_by_key_id(self, key_id: str) -> StoredApp | None:
        """Read an app by its key's id from Redis, for a key issued since the last refresh."""
        try:
            await self._ensure_initialized()
            return await self.registry.fetch_by_key_id(self._client(), key_id)
        except RedisError as error:
            raise self._unavailable("apps", error) from error

    # Events -------------------------------------------------------------

    def _app_keys(self, app_id: str) -> AppKeys:
        keys = self._keys.get(app_id)
        if keys is None:
            keys = self._keys[app_id] = AppKeys(self.target.prefix, app_id)
        return keys

    def _script(self, client, text: str):
        script = self._scripts.get(text)
        if script is None or script.registered_client is not client:
            script = self._scripts[text] = client.register_script(text)
        return script

    async def apply(self, app: AppSettings, events: list[Event], now: float) -> Outcome:
        client = self._client()
        lock = self._locks.get(app.app_id)
        if lock is None:
            lock = self._locks[app.app_id] = asyncio.Lock()
        # Batches of one app from this process take turns, so they never
        # make each other read and attribute again.
        async with lock:
            return await self._apply(client, app, events, now)

    async def _apply(self, client, app: AppSettings, events: list[Event], now: float) -> Outcome:
        settings = self.settings
        keys = self._app_keys(app.app_id)
        digests = Digests()
        plan = ReadPlan(app, events, digests)
        dedup = DedupBuckets.at(now, settings.dedup_horizon_s)
        read_request = plan.request(len(events), settings.max_candidates, dedup)
        horizons = Horizons.of(app, settings.late_arrival_s)
        for attempt in range(1, settings.max_attempts + 1):
            snapshot = await self._read(client, keys, read_request)
            view = BatchView(app, plan, snapshot, digests, horizons)
            outcome = attribute_batch(app, view, events, now)
            if not view.claims:
                return outcome
            arguments = view.commit_arguments(
                token=secrets.token_hex(4),
                snapshot=snapshot,
                limit=settings.max_candidates,
                horizons=horizons,
                dedup=dedup,
                now=now,
                record_retention=settings.record_retention_s,
                max_revenue_lines=MAX_REVENUE_LINES_PER_APP,
            )
            result = await self._commit(client, keys, arguments)
            if result in (b"ok", b"done"):
                return outcome
            self.retries.labels(result.decode()).inc()
            await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * attempt)))
        raise StoreUnavailable(
            f"app {app.app_id!r}: {settings.max_attempts} attempts in a row lost to concurrent batches of the same app; "
            "retry later"
        )

    async def _read(self, client, keys: AppKeys, request: bytes) -> Snapshot:
        try:
            await self._ensure_initialized()
            reply = await self._script(client, READ)(keys=[keys.sequence], args=[request])
        except RedisError as error:
            raise self._unavailable("read", error, app_id=keys.app_id) from error
        sequence, seen, touches, installs, digest, commits, watermark = reply
        return Snapshot(sequence, seen, touches, installs, digest, commits, watermark)

    async def _commit(self, client, keys: AppKeys, arguments: list[bytes]) -> bytes:
        deadline = time.monotonic() + self.settings.commit_retry_s
        attempt = 0
        script = self._script(client, COMMIT)
        while True:
            try:
                return await script(keys=[keys.sequence], args=arguments)
            except ResponseError as error:
                # The script did not run, or failed before its first write.
                raise self._unavailable("commit", error, app_id=keys.app_id) from error
            except RedisError as error:
                # Whether the commit went through is unknown. Sending it again
                # is safe: a commit that finds its own token reports "done".
                self._count_error("commit", error, app_id=keys.app_id)
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(
                        f"Redis at {self.target.describe()} did not confirm a commit within "
                        f"{self.settings.commit_retry_s:.0f} s ({type(error).__name__}: {error}); "
                        "resending the batch is safe"
                    ) from error
                attempt += 1
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))

    # Records ------------------------------------------------------------

    async def list_records(self, query: RecordQuery) -> tuple[list[Record], int | None]:
        client = self._client()
        keys = self._app_keys(query.app_id)
        found: list[Record] = []
        low = f"({query.after_seq}" if query.after_seq else "-inf"
        try:
            while True:
                page = await client.zrangebyscore(
                    keys.record_index, low, "+inf", start=0, num=max(RECORD_PAGE_SCAN, query.limit), withscores=True
                )
                if not page:
                    return found, None
                bodies = await client.hmget(keys.records, [member for member, _ in page])
                for position, ((_, score), body) in enumerate(zip(page, bodies)):
                    if body is None:
                        continue  # past its retention
                    record = codec.decode_record(body, query.app_id, int(score))
                    if not _matches(record, query):
                        continue
                    found.append(record)
                    if len(found) == query.limit:
                        more = position + 1 < len(page) or await client.zcount(
                            keys.record_index, f"({record.seq}", "+inf"
                        ) > 0
                        return found, record.seq if more else None
                low = f"({int(page[-1][1])}"
        except RedisError as error:
            raise self._unavailable("records", error, app_id=query.app_id) from error

    async def get_record(self, app_id: str, install_event_id: str) -> Record | None:
        keys = self._app_keys(app_id)
        try:
            body = await self._client().hget(keys.records, install_event_id)
        except RedisError as error:
            raise self._unavailable("records", error, app_id=app_id) from error
        return None if body is None else codec.decode_record(body, app_id)

    async def revenue(self, app_id: str) -> list[RevenueLine]:
        keys = self._app_keys(app_id)
        client = self._client()
        try:
            amounts = await client.hgetall(keys.revenue_amounts)
            counts = await client.hgetall(keys.revenue_counts)
        except RedisError as error:
            raise self._unavailable("records", error, app_id=app_id) from error
        return [
            RevenueLine(network, campaign, currency, str(amount), events)
            for network, campaign, currency, amount, events in codec.parse_revenue(amounts, counts)
        ]


def _matches(record: Record, query: RecordQuery) -> bool:
    if query.since is not None and record.install_time < query.since:
        return False
    if query.until is not None and record.install_time >= query.until:
        return False
    if query.network is not None and record.network != query.network:
        return False
    return query.status is None or record.status == query.status
