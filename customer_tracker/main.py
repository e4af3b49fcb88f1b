"""``unmogrowp tracker``: run the customer-success tracker."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from urllib.parse import urlsplit

from customer_tracker.db import DatabaseUrlError, describe_url, normalize_url
from customer_tracker.latency import DEFAULT_POLL_INTERVAL_SECONDS
from customer_tracker.service import DEFAULT_METRICS_REFRESH_SECONDS, TrackerSettings
from services.config import ConfigError, default_data_dir, port_number, resolve_admin_token

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8084
DEFAULT_INGESTION_URL = "http://127.0.0.1:8081"
DATABASE_ENV = "UNMOGROWP_TRACKER_DATABASE"
INGESTION_URL_ENV = "UNMOGROWP_INGESTION_URL"
STATS_INTERVAL_ENV = "UNMOGROWP_TRACKER_STATS_INTERVAL"
METRICS_REFRESH_ENV = "UNMOGROWP_TRACKER_METRICS_REFRESH"


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected seconds above 0 and at most 86400, got {text}")
    return value


def default_database_url() -> str:
    """Return the URL of the SQLite file tracker.db in the data folder, where `unmogrowp up` keeps it too."""
    return f"sqlite:///{default_data_dir() / 'tracker.db'}"


def http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL with a host, got {text!r}")
    return text.rstrip("/")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The interval defaults are strings, so argparse checks a value from the environment with
    # the option's type and names the option when it is invalid.
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="TCP port to listen on")
    parser.add_argument(
        "--database",
        default=os.environ.get(DATABASE_ENV) or default_database_url(),
        metavar="URL",
        help="database URL: sqlite:///PATH (relative to the working folder; the folder is created) or "
        f"postgresql://USER[:PASSWORD]@HOST:PORT/DB; without one, tracker.db in UNMOGROWP_DATA_DIR, else var "
        f"(environment: {DATABASE_ENV})",
    )
    parser.add_argument(
        "--ingestion-url",
        type=http_url,
        default=os.environ.get(INGESTION_URL_ENV, DEFAULT_INGESTION_URL),
        metavar="URL",
        help=f"base URL of the ingestion service, read for statistics and attribution records "
        f"(environment: {INGESTION_URL_ENV})",
    )
    parser.add_argument(
        "--stats-interval",
        type=positive_seconds,
        default=os.environ.get(STATS_INTERVAL_ENV, f"{DEFAULT_POLL_INTERVAL_SECONDS:g}"),
        metavar="SECONDS",
        help="seconds between polls of the ingestion service's /v1/stats for per-customer latency and uptime "
        f"(environment: {STATS_INTERVAL_ENV})",
    )
    parser.add_argument(
        "--metrics-refresh",
        type=positive_seconds,
        default=os.environ.get(METRICS_REFRESH_ENV, f"{DEFAULT_METRICS_REFRESH_SECONDS:g}"),
        metavar="SECONDS",
        help="seconds between rebuilds of the customer metrics from the database (writes of this process "
        f"show at once; this catches writes of other replicas) (environment: {METRICS_REFRESH_ENV})",
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="lowest level of log lines written to stderr")


def run(args: argparse.Namespace) -> int:
    from services.logging import configure_logging
    from services.server import serve

    from customer_tracker.application import build_app

    configure_logging("customer-tracker", args.log_level)
    try:
        url = normalize_url(args.database)
        token, source = resolve_admin_token(default_data_dir())
        settings = TrackerSettings(
            database_url=args.database,
            ingestion_url=args.ingestion_url,
            admin_token=token,
            stats_interval_seconds=args.stats_interval,
            metrics_refresh_seconds=args.metrics_refresh,
        )
        app = build_app(settings)
    except (ConfigError, DatabaseUrlError) as error:
        print(f"unmogrowp tracker: {error}", file=sys.stderr)
        return 2
    logger.info(
        "tracker starting",
        extra={"database": describe_url(url), "ingestion_url": args.ingestion_url, "admin_token_source": source},
    )
    serve(app, host=args.host, port=args.port)
    return 0
