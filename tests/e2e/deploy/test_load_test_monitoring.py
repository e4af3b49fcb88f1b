"""The load-test exporter under the local Prometheus, during and after a real Locust campaign.

A smoke campaign (1,000 events/s target, 20 s) runs `locust -f loadtest/`
headless against an ingestion service on loopback, with its exporter on a
free port that the local stack scrapes as job "loadtest-exporter". While it
runs, every query of the Load Testing Validation dashboard evaluates and
returns data (cAdvisor does not run here). After the run the exporter stops:
its target goes down and ServiceDown, shortened to 6 s here, still does not
fire for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.deploy.stack_checks import dashboard_expressions, query_result, wait_until
from tests.integration.deploy.deploy_files import REPOSITORY, alerting_rules, binary
from tests.integration.deploy.local_stack import LocalStack, local_stack
from tests.integration.deploy.promql import metric_names, with_variables
from tests.support.services import RunningService, free_port, start_ingestion

pytestmark = pytest.mark.e2e

CAMPAIGN_SECONDS = 20
LINGER_SECONDS = 5
# Only present when the campaign has failed requests.
STATE_DEPENDENT_QUERIES = {"locust_errors"}


@dataclass
class Campaign:
    ingestion: RunningService
    stack: LocalStack
    locust: subprocess.Popen
    output_path: Path


def locust_command() -> list[str]:
    script = Path(sys.executable).with_name("locust")
    return [str(script)] if script.exists() else [sys.executable, "-m", "locust"]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Iterator[Campaign]:
    binary("prometheus")
    tmp_path = tmp_path_factory.mktemp("load-test-monitoring")
    exporter_port = free_port()
    with start_ingestion(tmp_path) as ingestion, local_stack(
        tmp_path,
        jobs=("ingestion", "loadtest-exporter", "prometheus", "alertmanager"),
        targets={"ingestion": f"127.0.0.1:{ingestion.port}", "loadtest-exporter": f"127.0.0.1:{exporter_port}"},
        extra_arguments=["--with-node-exporter", "--node-exporter-port", str(free_port()),
                         "--scrape-interval", "2s", "--evaluation-interval", "1s", "--alert-for", "ServiceDown=6s"],
    ) as stack:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("LOCUST_", "UNMOGROWP_"))}
        env["UNMOGROWP_ADMIN_TOKEN"] = ingestion.admin_token
        output_path = tmp_path / "locust.out"
        with output_path.open("wb") as output:
            locust = subprocess.Popen(
                [*locust_command(), "-f", str(REPOSITORY / "loadtest"), "--headless", "--host", ingestion.url,
                 "--campaign", "smoke", "--campaign-duration", f"{CAMPAIGN_SECONDS}s", "--tracker-host", "",
                 "--exporter-port", str(exporter_port), "--exporter-linger", f"{LINGER_SECONDS}s"],
                cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        try:
            yield Campaign(ingestion, stack, locust, output_path)
        finally:
            if locust.poll() is None:
                locust.terminate()
                try:
                    locust.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    locust.kill()
                    locust.wait()


def test_load_test_panels_return_data_while_running(campaign):
    wait_until(lambda: query_result(campaign.stack, 'unmogrowp_loadtest_verdict{criterion="throughput"}'), 30,
               f"a judged campaign; Locust output:\n{campaign.output_path.read_text(errors='replace')}")
    # A rate needs two samples after the first events.
    time.sleep(5)
    without_data = []
    checked = 0
    for dashboard, title, expression in dashboard_expressions("load-testing-validation.json"):
        query = with_variables(expression)
        result = query_result(campaign.stack, query)
        names = metric_names(query)
        if names & STATE_DEPENDENT_QUERIES or any(name.startswith("container_") for name in names):
            continue
        checked += 1
        if not result:
            without_data.append(f"{title}: {query}")
    assert without_data == []
    assert checked >= 20


def test_load_test_alert_expressions_evaluate(campaign):
    for rule in alerting_rules():
        if rule["alert"] in {"EventThroughputBelowTarget", "LoadTestThroughputFailure"}:
            query_result(campaign.stack, rule["expr"])
    # The smoke campaign meets its 1,000 events/s target: neither alert's condition holds.
    assert query_result(campaign.stack, 'unmogrowp_loadtest_verdict{criterion="throughput"} == 0') == []


def test_finished_campaign_leaves_no_alert(campaign):
    output = campaign.output_path
    campaign.locust.wait(timeout=CAMPAIGN_SECONDS + LINGER_SECONDS + 60)
    assert "Load test verdict (smoke): PASS" in output.read_text(errors="replace")

    def exporter_down():
        targets = httpx.get(f"{campaign.stack.prometheus_url}/api/v1/targets", timeout=10).json()
        health = {target["labels"]["job"]: target["health"] for target in targets["data"]["activeTargets"]}
        return health.get("loadtest-exporter") == "down"

    wait_until(exporter_down, 30, "the load-test exporter's target down")
    # Longer than ServiceDown's 6 s here, plus an evaluation and a push to Alertmanager.
    time.sleep(10)
    assert query_result(campaign.stack, "ALERTS") == []
    assert httpx.get(f"{campaign.stack.alertmanager_url}/api/v2/alerts", timeout=10).json() == []
