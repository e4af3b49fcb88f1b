"""A pilot from replay to Prometheus: both services under ``unmogrowp up``, the tracker's CLI,
promtool, and the operations guide's queries against a real Prometheus.

Two pilots take part. ``replay-games`` owns the apps of a replayed TalkingData-format sample
and uploads the file's own attribution as its reference. ``control-apps`` owns an app fed
with a few clicks and installs that the service attributes by device id, and uploads the
service's own records. The control pilot meets every success criterion and ``replay-games``
misses satisfaction, so the success rate is 50 %.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import time
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.services import free_port, unmogrowp_command
from tests.support.talkingdata_sample import write_sample

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                       reason="prometheus and promtool not installed: apt-get install -y prometheus provides them"),
]

READY_SECONDS = 60
DATA_SECONDS = 60
CONTROL_APP = "e2e-control"
CONTROL_INSTALLS = 5


def _wait(condition, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except httpx.TransportError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            tail = "" if log is None else "\n" + log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{what} not reached within {timeout} s{tail}")
        time.sleep(0.3)


@pytest.fixture
def stack(tmp_path):
    """Run ``unmogrowp up`` on free ports with a fresh data folder; yield its URLs and token."""
    token = secrets.token_urlsafe(32)
    ingestion_port, tracker_port = free_port(), free_port()
    env = dict(os.environ, UNMOGROWP_ADMIN_TOKEN=token, UNMOGROWP_TRACKER_STATS_INTERVAL="1",
               UNMOGROWP_TRACKER_METRICS_REFRESH="1")
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            unmogrowp_command() + ["up", "--host", "127.0.0.1", "--ingestion-port", str(ingestion_port),
                                   "--tracker-port", str(tracker_port), "--data-dir", str(tmp_path / "data")],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    urls = {"ingestion": f"http://127.0.0.1:{ingestion_port}", "tracker": f"http://127.0.0.1:{tracker_port}"}
    try:
        for url in urls.values():
            _wait(lambda url=url: httpx.get(url + "/readyz", timeout=2).status_code == 200,
                  READY_SECONDS, f"{url}/readyz", log_path)
        yield {**urls, "token": token, "env": env, "log": log_path, "tmp": tmp_path}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run(stack, *arguments: str) -> subprocess.CompletedProcess:
    result = subprocess.run(unmogrowp_command() + list(arguments), capture_output=True, text=True,
                            env=stack["env"], timeout=300, cwd=stack["tmp"])
    assert result.returncode == 0, f"unmogrowp {' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _customers(stack, *arguments: str) -> subprocess.CompletedProcess:
    return _run(stack, "customers", "--url", stack["tracker"], *arguments)


def _feed_control_app(stack) -> str:
    """Register the control app, send clicks and installs sharing a device id, return its reference CSV."""
    admin = {"Authorization": f"Bearer {stack['token']}"}
    with httpx.Client(base_url=stack["ingestion"], timeout=30) as client:
        registered = client.post("/v1/apps", json={"app_id": CONTROL_APP, "platform": "android"}, headers=admin)
        assert registered.status_code == 201, registered.text
        key = registered.json()["ingest_key"]
        now = int(time.time())
        events = []
        for number in range(CONTROL_INSTALLS):
            device = f"0000{number:04d}-1111-2222-3333-444455556666"
            events.append({"event_id": f"click-{number}", "app_id": CONTROL_APP, "event_type": "click",
                           "event_time": now - 600, "gaid": device, "network": "ControlNet", "campaign": "e2e"})
            events.append({"event_id": f"install-{number}", "app_id": CONTROL_APP, "event_type": "install",
                           "event_time": now - 300, "gaid": device})
        posted = client.post("/v1/events", json=events, headers={"Authorization": f"Bearer {key}"})
        assert posted.status_code == 200, posted.text
        assert posted.json()["accepted"] == 2 * CONTROL_INSTALLS, posted.text
        records = client.get("/v1/attributions", params={"app_id": CONTROL_APP, "limit": 100}, headers=admin).json()
    assert len(records["items"]) == CONTROL_INSTALLS
    assert {record["network"] for record in records["items"]} == {"ControlNet"}
    lines = ["install_event_id,network,campaign"]
    lines += [f"{record['install_event_id']},{record['network']},{record['campaign']}" for record in records["items"]]
    return "\n".join(lines) + "\n"


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def _prometheus_value(client: httpx.Client, promql: str) -> float:
    def one_value():
        result = client.get("/api/v1/query", params={"query": promql}).json()["data"]["result"]
        if len(result) == 1 and math.isfinite(float(result[0]["value"][1])):
            return float(result[0]["value"][1])
        return None

    return _wait(one_value, DATA_SECONDS, f"one finite value of {promql}")


def test_pilot_from_replay_to_prometheus(stack, tmp_path):
    sample = write_sample(tmp_path / "sample.csv")
    replay = _run(stack, "replay", "talkingdata", str(sample.path), "--url", stack["ingestion"], "--json")
    assert json.loads(replay.stdout)["file"]["rows"] == sample.clicks
    control_reference = _feed_control_app(stack)

    # The pilot that owns the replayed apps walks through onboarding with the CLI.
    app_options = [option for app in sample.apps for option in ("--app", app)]
    _customers(stack, "add", "replay-games", "--company", "Replay Games", *app_options,
               "--previous-monthly-cost", "1000.00", "--monthly-cost", "600.00")
    for phase in ("setup", "launch"):
        _customers(stack, "phase", "replay-games", phase)
    _customers(stack, "survey", "replay-games", "--csat", "4")
    _customers(stack, "ticket", "open", "replay-games", "--title", "Postbacks arrive late")
    reference = tmp_path / "reference.csv"
    reference.write_text(sample.reference_csv())
    run = json.loads(_customers(stack, "--json", "reconcile", "replay-games", str(reference)).stdout)

    matched = sum(1 for expected in sample.expected.values()
                  if expected.network is not None and expected.network.casefold() == expected.file_network.casefold())
    expected_accuracy = (Decimal(matched) * 100 / len(sample.expected)).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)
    assert run["compared"] == len(sample.expected)
    assert run["matched"] == matched
    assert run["accuracy_percent"] == float(expected_accuracy)
    assert 0 < matched < len(sample.expected), "the sample must hold installs the service attributes otherwise"

    # The control pilot meets every criterion.
    _customers(stack, "add", "control-apps", "--company", "Control Apps", "--app", CONTROL_APP,
               "--previous-monthly-cost", "2000", "--monthly-cost", "1200")
    for phase in ("setup", "launch", "live"):
        _customers(stack, "phase", "control-apps", phase)
    _customers(stack, "survey", "control-apps", "--score", "95")
    control_reference_path = tmp_path / "control.csv"
    control_reference_path.write_text(control_reference)
    control_run = json.loads(_customers(stack, "--json", "reconcile", "control-apps", str(control_reference_path)).stdout)
    assert control_run["accuracy_percent"] == 100.0

    tracker = httpx.Client(base_url=stack["tracker"], timeout=30)

    def latest_statuses():
        statuses = {customer: tracker.get(f"/v1/customers/{customer}/status").json()
                    for customer in ("replay-games", "control-apps")}
        fresh = all(status["api_latency_ms"]["p95"] is not None and not status["api_latency_ms"]["stale"]
                    for status in statuses.values())
        return statuses if fresh and statuses["control-apps"]["successful_pilot"] else None

    statuses = _wait(latest_statuses, DATA_SECONDS, "latency of both pilots and the control pilot's success",
                     stack["log"])
    replay_status = statuses["replay-games"]
    failed = {c["name"] for c in replay_status["success_criteria"]["criteria"] if not c["met"]}
    assert "satisfaction" in failed
    stats = httpx.get(stack["ingestion"] + "/v1/stats", headers={"Authorization": f"Bearer {stack['token']}"}).json()
    replay_p95 = max(stats["apps"][app]["latency_ms"]["p95"] for app in sample.apps
                     if stats["apps"][app]["latency_ms"]["p95"] is not None)
    assert replay_status["api_latency_ms"]["p95"] == replay_p95

    text = tracker.get("/metrics").text
    samples = _samples(text)

    def value(name, **labels):
        return samples.get((name, frozenset(labels.items())))

    assert value("customer_satisfaction_score", customer_id="replay-games", company_name="Replay Games") == 80
    assert value("customer_satisfaction_score", customer_id="control-apps", company_name="Control Apps") == 95
    assert value("customer_cost_savings_percent", customer_id="replay-games") == 40
    assert value("attribution_accuracy_percent", customer_id="replay-games") == run["accuracy_percent"]
    assert value("customer_api_latency_ms", customer_id="replay-games", percentile="p95") == replay_p95
    assert value("total_pilot_customers") == 2
    assert value("successful_pilot_customers") == 1
    assert value("customer_health_score", customer_id="replay-games") == replay_status["health_score"]
    assert value("customer_onboarding_phase", customer_id="replay-games", phase="launch") == 1
    assert value("customer_open_support_tickets", customer_id="replay-games") == 1
    assert value("tracker_ingestion_up") == 1

    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    problems = set(checked.stderr.decode().splitlines() + checked.stdout.decode().splitlines()) - {""}
    # customer_api_latency_ms is a fixed name that dashboards and alerts use; promtool only lints its unit.
    assert problems <= {"customer_api_latency_ms metric names should not contain abbreviated units"}, problems

    _query_with_prometheus(stack, tmp_path)


def _query_with_prometheus(stack, tmp_path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    tracker_target = stack["tracker"].removeprefix("http://")
    ingestion_target = stack["ingestion"].removeprefix("http://")
    (directory / "prometheus.yml").write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: customer-success-tracker\n"
        f"    static_configs: [{{targets: ['{tracker_target}']}}]\n"
        "  - job_name: ingestion\n"
        f"    static_configs: [{{targets: ['{ingestion_target}']}}]\n"
    )
    port = free_port()
    log_path = directory / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        _wait(lambda: client.get("/-/ready").status_code == 200, READY_SECONDS, "Prometheus ready", log_path)
        assert _prometheus_value(client, "avg(customer_satisfaction_score)") == pytest.approx(87.5)
        assert _prometheus_value(client, "(successful_pilot_customers / total_pilot_customers) * 100") == pytest.approx(50)
        assert _prometheus_value(client, 'up{job="customer-success-tracker"}') == 1
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)
