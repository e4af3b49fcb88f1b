"""The tracker user against a real tracker that reads the real ingestion service."""

from __future__ import annotations

import json

import httpx

from tests.integration.loadtest.conftest import run_locust
from tests.support.services import start_tracker


def test_tracker_user_works_through_day(ingestion, tmp_path):
    with start_tracker(tmp_path, ingestion_url=ingestion.url, admin_token=ingestion.admin_token) as tracker:
        # One ingestion user and one tracker user; --json prints the per-request statistics.
        run = run_locust(ingestion.url, tmp_path, "-u", "2", "-r", "2", "-t", "15s", "--tracker-host", tracker.url,
                         "--json", admin_token=ingestion.admin_token)
        customers = httpx.get(tracker.url + "/v1/customers", headers=tracker.headers).json()["items"]

    assert run.returncode == 0, run.output[-3000:]
    statistics = json.loads(run.output[run.output.index("[\n"):run.output.rindex("]") + 1])
    tracker_requests = {entry["name"]: entry for entry in statistics if entry["name"].startswith("/v1/customers")}
    assert "/v1/customers" in tracker_requests
    assert sum(entry["num_requests"] for entry in tracker_requests.values()) >= 3
    assert sum(entry["num_failures"] for entry in tracker_requests.values()) == 0
    own = [customer for customer in customers if customer["customer_id"].startswith("loadtest-")]
    assert len(own) == 1
    assert len(own[0]["app_ids"]) == 2
