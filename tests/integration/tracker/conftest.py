"""Fixtures of the tracker's integration tests: real databases, real HTTP servers on loopback.

Every test runs twice, on SQLite in a file and on PostgreSQL at 127.0.0.1:5432 in a database
created for this run (``tracker_test_<random>``) and dropped after it. The tracker runs
in-process under uvicorn on a free port with a settable clock. The ingestion service is a
small FastAPI app on another port that serves ``/v1/stats`` and ``/v1/attributions`` from
data the test sets.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request

from customer_tracker import db
from customer_tracker.application import build_app
from customer_tracker.service import TrackerSettings
from tests.support.services import free_port

POSTGRES_ADMIN_URL = os.environ.get("UNMOGROWP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN_TOKEN = "tracker-test-token-" + secrets.token_hex(8)
TABLES = (
    "reconciliation_mismatches", "reconciliation_runs", "tickets", "surveys",
    "phase_changes", "customer_apps", "customers", "ingestion_probes",
)
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


class Clock:
    """A clock that tests move by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.now += dt.timedelta(**delta)


class ServerThread:
    """Run an ASGI app under uvicorn in a thread on 127.0.0.1."""

    def __init__(self, app, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="on", loop="asyncio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} exited during start; see the log above")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start within 30 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class FakeIngestion:
    """The ingestion service's admin API with fixed data: statistics and attribution records."""

    def __init__(self, admin_token: str) -> None:
        self.admin_token = admin_token
        self.apps: dict[str, dict] = {}
        self.records: dict[str, list[dict]] = {}
        self.page_size = 2
        self.fail_with: int | None = None
        self.requests: list[str] = []
        self.app = self._build()
        self.port = free_port()
        self.server: ServerThread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_latency(self, app_id: str, p50: float, p95: float, p99: float, accepted: int = 100) -> None:
        self.apps[app_id] = {
            "events": {"accepted": accepted, "duplicate": 0, "rejected": 0},
            "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
        }

    def add_record(self, app_id: str, install_event_id: str, network: str | None, campaign: str | None = None,
                   status: str | None = None) -> None:
        self.records.setdefault(app_id, []).append({
            "install_event_id": install_event_id,
            "app_id": app_id,
            "status": status or ("organic" if network is None else "attributed"),
            "network": network,
            "campaign": campaign,
            "adgroup": None,
            "creative": None,
            "touch_event_id": None if network is None else f"click-{install_event_id}",
            "touch_type": None if network is None else "click",
            "match_type": None if network is None else "device_id",
            "install_time": "2026-03-01T10:00:00Z",
            "touch_time": None,
            "ctit_seconds": None,
            "rejected_touches": [],
        })

    def _build(self) -> FastAPI:
        app = FastAPI()

        def check(request: Request) -> None:
            self.requests.append(str(request.url))
            if request.headers.get("authorization") != f"Bearer {self.admin_token}":
                raise HTTPException(401, "unknown token")
            if self.fail_with is not None:
                raise HTTPException(self.fail_with, "failing on purpose")

        @app.get("/v1/stats")
        def stats(request: Request) -> dict:
            check(request)
            return {"generated_at": "2026-03-02T09:00:00Z", "window_seconds": 300, "apps": self.apps}

        @app.get("/v1/attributions")
        def attributions(request: Request, app_id: str, limit: int = Query(100), cursor: str | None = None) -> dict:
            check(request)
            if app_id not in self.records:
                raise HTTPException(404, f"app {app_id!r} not found")
            start = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
            size = min(limit, self.page_size)
            items = self.records[app_id][start:start + size]
            more = start + size < len(self.records[app_id])
            return {"items": items, "next_cursor": base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else None}

        return app

    def start(self) -> None:
        self.server = ServerThread(self.app, self.port).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('tracker-db') / 'tracker.db'}"
        engine = db.create_database_engine(url)
        db.migrate(engine)
        engine.dispose()
        yield url
        return

    name = f"tracker_test_{secrets.token_hex(6)}"
    admin = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + "/" + name
    engine = db.create_database_engine(url)
    db.migrate(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clean_database(database_url) -> str:
    engine = db.create_database_engine(database_url)
    with engine.begin() as connection:
        for table in TABLES:
            connection.execute(sa.text(f"DELETE FROM {table}"))
    engine.dispose()
    return database_url


@pytest.fixture
def ingestion() -> Iterator[FakeIngestion]:
    fake = FakeIngestion(ADMIN_TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


class TrackerUnderTest:
    def __init__(self, server: ServerThread, app, clock: Clock) -> None:
        self.server = server
        self.url = server.url
        self.app = app
        self.tracker = app.state.tracker
        self.clock = clock
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.client.post(path, headers=self.admin | kwargs.pop("headers", {}), **kwargs)

    def put(self, path: str, **kwargs) -> httpx.Response:
        return self.client.put(path, headers=self.admin | kwargs.pop("headers", {}), **kwargs)

    def patch(self, path: str, **kwargs) -> httpx.Response:
        return self.client.patch(path, headers=self.admin | kwargs.pop("headers", {}), **kwargs)

    def delete(self, path: str, **kwargs) -> httpx.Response:
        return self.client.delete(path, headers=self.admin | kwargs.pop("headers", {}), **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def add_customer(self, customer_id: str = "acme", **fields) -> dict:
        body = {"customer_id": customer_id, "company_name": fields.pop("company_name", "Acme Games"), **fields}
        response = self.post("/v1/customers", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def metrics(self) -> str:
        response = self.get("/metrics")
        assert response.status_code == 200
        return response.text

    def samples(self) -> dict[tuple[str, frozenset], float]:
        """Parse /metrics into {(name, labels): value}."""
        from prometheus_client.parser import text_string_to_metric_families

        result = {}
        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                result[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return result

    def sample(self, name: str, **labels: str) -> float | None:
        return self.samples().get((name, frozenset(labels.items())))


def wait_for(condition: Callable[[], object], timeout: float = 10.0, message: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def start_tracker(clean_database, ingestion, clock) -> Iterator[Callable[..., TrackerUnderTest]]:
    """Return a function that starts a tracker; every tracker started is stopped after the test."""
    started: list[TrackerUnderTest] = []

    def start(**settings) -> TrackerUnderTest:
        options = {
            "database_url": clean_database,
            "ingestion_url": ingestion.url,
            "admin_token": ADMIN_TOKEN,
            "stats_interval_seconds": 0.2,
            "metrics_refresh_seconds": 0.5,
        } | settings
        app = build_app(TrackerSettings(**options), clock=clock)
        server = ServerThread(app).start()
        under_test = TrackerUnderTest(server, app, clock)
        started.append(under_test)
        return under_test

    yield start
    for under_test in started:
        under_test.client.close()
        under_test.server.stop()


@pytest.fixture
def tracker(start_tracker) -> TrackerUnderTest:
    return start_tracker()
