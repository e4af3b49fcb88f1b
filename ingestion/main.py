"""``unmogrowp ingestion``: options, wiring and start of the ingestion service."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from functools import partial
from pathlib import Path

from exporters.metrics import Counter, Registry
from ingestion.api import IngestionService, Limits, install_routes
from ingestion.metrics import IngestionMetrics
from ingestion.stats_sharing import SharedStats
from ingestion.store.base import Store
from ingestion.store.memory import MemoryLimits, MemoryStore
from ingestion.store.redis_client import StoreUrlError, is_redis_url
from services.app import create_app
from services.config import ConfigError, default_data_dir, env_default, port_number, positive_int, resolve_admin_token
from services.logging import configure_logging
from services.server import serve

logger = logging.getLogger(__name__)

SERVICE_NAME = "ingestion"

# The store keeps millions of long-lived objects. With the default collector
# thresholds (700 allocations) the engine spent about 30 % of its time in
# collections: 4.2 us per event against 2.9 us with these thresholds, applying
# 200,000 mixed events in process on one core. Touches, records and events are
# msgspec structs created with gc=False, so they form no cycles to collect.
GC_THRESHOLDS = (50_000, 20, 100)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=env_default("UNMOGROWP_INGESTION_HOST", "127.0.0.1"),
                        help="address to listen on (environment: UNMOGROWP_INGESTION_HOST)")
    parser.add_argument("--port", type=port_number, default=int(env_default("UNMOGROWP_INGESTION_PORT", "8081")),
                        help="TCP port to listen on (environment: UNMOGROWP_INGESTION_PORT)")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir() / "ingestion",
                        help="folder of the embedded store's journal, snapshot and apps; ingestion in "
                        "UNMOGROWP_DATA_DIR when that is set. The admin token file is admin-token in "
                        "UNMOGROWP_DATA_DIR, else var, whatever this option says")
    parser.add_argument("--store", default=env_default("UNMOGROWP_STORE", "memory"),
                        help="memory (embedded, kept under --data-dir), redis://HOST:PORT/DB, "
                        "or redis+cluster://HOST:PORT[,HOST:PORT...]; add ?prefix=NAME to a Redis URL to prefix "
                        "every key (default umg) (environment: UNMOGROWP_STORE)")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="worker processes behind the port; more than 1 needs a Redis store")
    parser.add_argument("--max-body-bytes", type=positive_int, default=10 * 1024 * 1024,
                        help="largest request body accepted, in bytes after gzip decompression")
    parser.add_argument("--max-batch-events", type=positive_int, default=10_000, help="most events accepted in one request")
    parser.add_argument("--dedup-horizon", type=positive_int, default=7 * 86400,
                        help="seconds an event id is remembered for duplicate detection")
    parser.add_argument("--max-dedup-entries", type=positive_int, default=MemoryLimits.max_dedup_entries,
                        help="event ids remembered across all apps; past it the oldest are forgotten")
    parser.add_argument("--max-touches", type=positive_int, default=MemoryLimits.max_touches,
                        help="clicks and impressions kept across all apps; past it the oldest are evicted")
    parser.add_argument("--max-installs", type=positive_int, default=MemoryLimits.max_installs,
                        help="installs kept for reinstall detection across all apps; past it the oldest are evicted")
    parser.add_argument("--max-records", type=positive_int, default=MemoryLimits.max_records,
                        help="attribution records kept across all apps; past it the oldest are evicted")
    parser.add_argument("--late-arrival", type=positive_int, default=86400,
                        help="seconds a touch is kept past its window, for events that arrive late")
    parser.add_argument("--fsync-interval", type=float, default=1.0,
                        help="seconds between fsync calls on the journal: what a power loss can lose")
    parser.add_argument("--journal-max-bytes", type=positive_int, default=512 * 1024 * 1024,
                        help="journal segment size in bytes past which the store starts a new segment and folds "
                        "the previous ones into a snapshot; a segment may first grow to the size of the last "
                        "snapshot")
    parser.add_argument("--snapshot-mode", choices=("in-process", "fork"), default="in-process",
                        help="how a compaction writes its snapshot: in-process (default; event requests wait "
                        "while references to the state are copied, then this process encodes it between requests "
                        "with at most a tenth of its core) or fork (a child process writes it while event requests "
                        "go on, more slowly)")
    parser.add_argument("--record-retention", type=positive_int, default=400 * 86400,
                        help="seconds a Redis store keeps attribution records and revenue after writing them")
    parser.add_argument("--stats-window", type=positive_int, default=300,
                        help="seconds of history behind the latency percentiles of /v1/stats")
    parser.add_argument("--max-networks-per-app", type=positive_int, default=100,
                        help="distinct network label values per app in metrics; later ones count as _other")
    parser.add_argument("--log-level", default=env_default("UNMOGROWP_LOG_LEVEL", "INFO"),
                        help="debug, info, warning or error")


def build_store(args: argparse.Namespace) -> Store:
    if is_redis_url(args.store):
        from ingestion.store.redis import RedisSettings, RedisStore
        from ingestion.store.redis_client import parse_store_url

        try:
            target = parse_store_url(args.store)
        except StoreUrlError as error:
            raise ConfigError(str(error)) from None
        settings = RedisSettings(
            dedup_horizon_s=args.dedup_horizon,
            late_arrival_s=args.late_arrival,
            record_retention_s=args.record_retention,
        )
        return RedisStore(target, settings)
    if args.store != "memory":
        raise ConfigError(
            f"--store {args.store!r} is not a store: use memory, redis://HOST:PORT/DB "
            "or redis+cluster://HOST:PORT[,HOST:PORT...]"
        )
    limits = MemoryLimits(
        max_touches=args.max_touches,
        max_installs=args.max_installs,
        max_records=args.max_records,
        max_dedup_entries=args.max_dedup_entries,
        dedup_horizon_s=args.dedup_horizon,
        late_arrival_s=args.late_arrival,
    )
    return MemoryStore(
        args.data_dir,
        limits=limits,
        fsync_interval=args.fsync_interval,
        journal_max_bytes=args.journal_max_bytes,
        fork_snapshots=args.snapshot_mode == "fork",
    )


def build_app(args: argparse.Namespace, admin_token: str, registry: Registry | None = None,
              stats_slot: tuple[Path, int] | None = None):
    """Build the service's app; `stats_slot` (folder, slot) shares /v1/stats with the other workers."""
    store = build_store(args)
    registry = Registry() if registry is None else registry
    metrics = IngestionMetrics(registry, store, max_networks_per_app=args.max_networks_per_app)
    register_store_metrics = getattr(store, "register_metrics", None)
    if register_store_metrics is not None:
        register_store_metrics(registry)
    service = IngestionService(
        store,
        admin_token,
        metrics,
        limits=Limits(max_body_bytes=args.max_body_bytes, max_batch_events=args.max_batch_events),
        stats_window_s=args.stats_window,
    )

    async def readiness() -> dict[str, bool]:
        return {"store": await store.ready()}

    startup, shutdown = [store.start], [store.stop]
    if stats_slot is not None:
        shared_stats = SharedStats(service.stats, *stats_slot)
        service.stats_peers = shared_stats.peers
        startup.append(shared_stats.start)
        shutdown.insert(0, shared_stats.stop)
    app = create_app(
        title="UnMoGrowP ingestion",
        service=SERVICE_NAME,
        registry=registry,
        readiness=readiness,
        startup=startup,
        shutdown=shutdown,
        description="Takes ad clicks, impressions, installs and in-app events, and attributes each install.",
    )
    install_routes(app, service)
    if hasattr(store, "fetch_app_by_key_id"):
        from ingestion.store.redis_auth import KeyLookupMiddleware

        app.add_middleware(KeyLookupMiddleware, store=store)
    return app, metrics


def run_worker(args: argparse.Namespace, admin_token: str, context) -> None:
    """Serve as one of several worker processes; ``context`` comes from ``services.workers``."""
    from exporters.multiprocess import SlotRegistry, process_tree_rss
    from services.workers import serve_on_socket

    configure_logging(SERVICE_NAME, args.log_level)
    registry = SlotRegistry(
        context.metrics_dir,
        context.slot,
        totals={"attribution_memory_usage_bytes": partial(process_tree_rss, context.supervisor_pid)},
    )
    restarts = Counter(
        "attribution_worker_restarts_total",
        "Worker processes started to replace one that exited.",
        registry=registry,
    )
    if registry.slot.takeovers:
        restarts.inc()
    app, metrics = build_app(args, admin_token, registry=registry, stats_slot=(context.metrics_dir, context.slot))
    gc.set_threshold(*GC_THRESHOLDS)
    logger.info("worker serving", extra={"slot": context.slot, "workers": context.workers})
    serve_on_socket(app, context, on_connection_change=metrics.change_connections)


def run(args: argparse.Namespace) -> int:
    configure_logging(SERVICE_NAME, args.log_level)
    try:
        if args.workers > 1 and args.store == "memory":
            raise ConfigError(
                f"--workers {args.workers} needs a shared store: the embedded store lives in one process. "
                "Use --workers 1, or --store redis://HOST:PORT/DB"
            )
        admin_token, source = resolve_admin_token(default_data_dir())
        if args.workers > 1:
            # Each worker builds its own app; here only the options are checked.
            build_store(args)
        else:
            app, metrics = build_app(args, admin_token)
    except ConfigError as error:
        print(f"unmogrowp ingestion: {error}", file=sys.stderr)
        return 2
    logger.info("admin token loaded", extra={"source": source})
    if args.workers > 1:
        from services.workers import run_workers

        return run_workers(
            partial(run_worker, args, admin_token), workers=args.workers, host=args.host, port=args.port, name=SERVICE_NAME
        )
    gc.set_threshold(*GC_THRESHOLDS)
    serve(app, host=args.host, port=args.port, on_connection_change=metrics.change_connections)
    return 0
