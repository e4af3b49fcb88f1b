"""A small client of a running ingestion service, for the tests in this folder."""

from __future__ import annotations

import gzip
import itertools
import subprocess
import time
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from tests.support.services import RunningService, start_ingestion

PROMTOOL = "/usr/bin/promtool"
_counter = itertools.count()


@contextmanager
def run_ingestion(directory: Path, **options):
    """Start ``unmogrowp ingestion`` with its data and every stray file under ``directory``."""
    env = {"UNMOGROWP_DATA_DIR": str(directory)}
    with start_ingestion(directory, env=env, **options) as service:
        yield service


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:8]}"


def encode(document) -> bytes:
    return msgspec.json.encode(document)


class Api:
    """Calls of one service; ``admin`` requests use the admin token."""

    def __init__(self, service: RunningService) -> None:
        self.service = service
        self.client = httpx.Client(base_url=service.url, timeout=60)
        self.admin = {"Authorization": f"Bearer {service.admin_token}"}

    def close(self) -> None:
        self.client.close()

    def register(self, platform: str = "android", app_id: str | None = None, **settings) -> tuple[str, str]:
        """Register an app and return (app_id, ingest key)."""
        app_id = app_id or unique("app")
        response = self.client.post("/v1/apps", json={"app_id": app_id, "platform": platform, **settings}, headers=self.admin)
        assert response.status_code == 201, response.text
        return app_id, response.json()["ingest_key"]

    def post_events(
        self,
        key: str,
        events: Iterable[dict] | None = None,
        *,
        body: bytes | None = None,
        content_type: str | None = "application/json",
        gzipped: bool = False,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        if body is None:
            body = encode(list(events or []))
        request_headers = {"Authorization": f"Bearer {key}"}
        if content_type is not None:
            request_headers["Content-Type"] = content_type
        if gzipped:
            body = gzip.compress(body)
            request_headers["Content-Encoding"] = "gzip"
        request_headers.update(headers or {})
        return self.client.post("/v1/events", content=body, headers=request_headers)

    def send(self, key: str, events: Iterable[dict]) -> dict:
        """Post events and return the 200 response's document."""
        response = self.post_events(key, events)
        assert response.status_code == 200, response.text
        return response.json()

    def record(self, app_id: str, install_event_id: str) -> dict:
        response = self.client.get(f"/v1/attributions/{app_id}/{install_event_id}", headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()

    def records(self, app_id: str, **params) -> list[dict]:
        """Read every page of GET /v1/attributions."""
        items: list[dict] = []
        query = {"app_id": app_id, **params}
        while True:
            response = self.client.get("/v1/attributions", params=query, headers=self.admin)
            assert response.status_code == 200, response.text
            page = response.json()
            items += page["items"]
            if not page["next_cursor"]:
                return items
            query["cursor"] = page["next_cursor"]

    def metrics_text(self, accept: str | None = None) -> str:
        headers = {"Accept": accept} if accept else {}
        response = self.client.get("/metrics", headers=headers)
        assert response.status_code == 200, response.text
        return response.text

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Return (labels, value) of every sample named ``name`` on /metrics."""
        found = []
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name:
                    found.append((sample.labels, sample.value))
        return found

    def total(self, name: str, **labels: str) -> float:
        """Sum the samples named ``name`` whose labels include ``labels``."""
        return sum(
            value for sample_labels, value in self.samples(name)
            if all(sample_labels.get(key) == wanted for key, wanted in labels.items())
        )


def click(app_id: str, event_id: str, event_time: float, **fields) -> dict:
    return {"event_id": event_id, "app_id": app_id, "event_type": "click", "event_time": event_time,
            "network": fields.pop("network", "adnet"), **fields}


def install(app_id: str, event_id: str, event_time: float, **fields) -> dict:
    return {"event_id": event_id, "app_id": app_id, "event_type": "install", "event_time": event_time, **fields}


def session(app_id: str, event_id: str, event_time: float | None = None, **fields) -> dict:
    document = {"event_id": event_id, "app_id": app_id, "event_type": "session", **fields}
    if event_time is not None:
        document["event_time"] = event_time
    return document


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    """Run ``promtool check metrics`` on an exposition."""
    return subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)


def wait_for(condition, timeout: float = 10.0, interval: float = 0.1):
    """Call ``condition`` until it returns something true; return that, or the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
