"""`locust -f loadtest/` as a real process against a real ingestion service on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest.verdict import VERDICT_FAILED_EXIT_CODE
from tests.integration.loadtest.conftest import (
    LOCUST_TIMEOUT_SECONDS,
    REPOSITORY,
    locust_arguments,
    locust_command,
    locust_environment,
    run_locust,
)
from tests.support.services import free_port


def _loadtest_apps(service) -> list[dict]:
    response = httpx.get(service.url + "/v1/apps", headers=service.headers)
    response.raise_for_status()
    return [app for app in response.json()["items"] if app["app_id"].startswith("loadtest-")]


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    response.raise_for_status()
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_smoke_campaign_passes(ingestion, tmp_path):
    apps_before = len(_loadtest_apps(ingestion))

    run = run_locust(ingestion.url, tmp_path, "--campaign", "smoke", "--campaign-duration", "4s",
                     admin_token=ingestion.admin_token)

    assert run.returncode == 0, run.output[-3000:]
    assert "Load test verdict (smoke): PASS" in run.output
    assert run.verdict["passed"] is True
    assert run.verdict["measurement"]["events"] > 0
    assert run.verdict["measurement"]["failures"] == 0
    assert len(_loadtest_apps(ingestion)) == apps_before + 2


def test_impossible_target_fails(ingestion, tmp_path):
    run = run_locust(ingestion.url, tmp_path, "--campaign", "smoke", "--campaign-duration", "3s",
                     "--target-events-per-second", "1e9", "--peak-users", "1", admin_token=ingestion.admin_token)

    assert run.returncode == VERDICT_FAILED_EXIT_CODE, run.output[-3000:]
    assert "Load test verdict (smoke): FAIL" in run.output
    assert run.verdict["passed"] is False
    assert run.verdict["criteria"]["throughput"]["passed"] is False
    assert run.verdict["criteria"]["success_rate"]["passed"] is True


def test_latency_criterion_can_fail(ingestion, tmp_path):
    run = run_locust(ingestion.url, tmp_path, "--campaign", "smoke", "--campaign-duration", "3s",
                     "--max-p95-ms", "0.001", admin_token=ingestion.admin_token)

    assert run.returncode == VERDICT_FAILED_EXIT_CODE, run.output[-3000:]
    assert run.verdict["criteria"]["p95_latency"]["passed"] is False
    assert run.verdict["criteria"]["throughput"]["passed"] is True


def test_run_without_campaign_follows_options(ingestion, tmp_path):
    run = run_locust(ingestion.url, tmp_path, "-u", "3", "-r", "3", "-t", "4s",
                     admin_token=ingestion.admin_token)

    assert run.returncode == 0, run.output[-3000:]
    assert "Load test verdict (run without a campaign): PASS" in run.output
    assert run.verdict["criteria"]["throughput"]["passed"] is None
    assert run.verdict["measurement"]["events_per_second"] > 0


def test_missing_credentials_end_run(ingestion, tmp_path):
    started = time.monotonic()

    run = run_locust(ingestion.url, tmp_path, "--campaign", "smoke", "--campaign-duration", "30s", admin_token=None)

    assert run.returncode == VERDICT_FAILED_EXIT_CODE
    assert "UNMOGROWP_ADMIN_TOKEN is not set" in run.output
    assert run.verdict["criteria"]["success_rate"]["passed"] is False
    assert time.monotonic() - started < 25


def test_unreachable_host_named_in_setup_error(tmp_path):
    host = f"http://127.0.0.1:{free_port()}"

    run = run_locust(host, tmp_path, "--campaign", "smoke", "--campaign-duration", "30s", admin_token="t" * 32)

    assert run.returncode == VERDICT_FAILED_EXIT_CODE
    assert f"POST /v1/apps got no response from --host '{host}'" in run.output
    assert "--host starts with http:// or https://" in run.output


def test_invalid_option_exits_with_message(ingestion, tmp_path):
    run = run_locust(ingestion.url, tmp_path, "--campaign", "steady", "--batch-size", "0",
                     admin_token=ingestion.admin_token)

    assert run.returncode == 2
    assert "--batch-size: must be between 1 and 10000 events" in run.output


def test_distributed_processes_share_verdict(ingestion, tmp_path):
    apps_before = len(_loadtest_apps(ingestion))

    run = run_locust(ingestion.url, tmp_path, "--campaign", "smoke", "--campaign-duration", "6s",
                     "--peak-users", "2", "--processes", "2", admin_token=ingestion.admin_token)

    assert run.returncode == 0, run.output[-3000:]
    assert run.verdict["passed"] is True
    # Each worker process registers its own two apps.
    assert len(_loadtest_apps(ingestion)) == apps_before + 4
    # Counts reach the master from both workers. The smoke target of 1,000 events/s is spread
    # over the 2 users, one per worker, so one worker's counts alone would be about half.
    measurement = run.verdict["measurement"]
    assert measurement["events"] >= 0.75 * 1000 * measurement["duration_s"]


def test_worker_elsewhere_ignores_verdict_folder(ingestion, tmp_path):
    # The master's relative --verdict-file reaches the worker, whose folder has no out/.
    master_dir, worker_dir = tmp_path / "master", tmp_path / "worker"
    (master_dir / "out").mkdir(parents=True)
    worker_dir.mkdir()
    port = free_port()
    environment = locust_environment(ingestion.admin_token)
    worker = subprocess.Popen(
        [*locust_command(), "-f", str(REPOSITORY / "loadtest"), "--worker", "--master-host", "127.0.0.1",
         "--master-port", str(port)],
        cwd=worker_dir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        master = subprocess.run(
            locust_arguments(ingestion.url, master_dir, "--campaign", "smoke", "--campaign-duration", "6s",
                             "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                             "--expect-workers", "1", "--verdict-file", "out/verdict.json"),
            cwd=master_dir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=LOCUST_TIMEOUT_SECONDS,
        )
        worker_output, _ = worker.communicate(timeout=30)
    finally:
        worker.kill()

    assert master.returncode == 0, master.stdout[-3000:]
    assert json.loads((master_dir / "out" / "verdict.json").read_text())["passed"] is True
    assert "invalid load-test option" not in worker_output


def test_taken_exporter_port_stops_forked_workers(ingestion, tmp_path, exporter_port):
    holder = socket.create_server(("127.0.0.1", exporter_port))
    try:
        started = time.monotonic()
        run = subprocess.run(
            locust_arguments(ingestion.url, tmp_path, "--campaign", "smoke", "--processes", "2",
                             exporter_port=exporter_port),
            cwd=tmp_path, env=locust_environment(ingestion.admin_token),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=LOCUST_TIMEOUT_SECONDS,
        )
        elapsed = time.monotonic() - started
    finally:
        holder.close()
    marker = str(tmp_path / "verdict.json")
    left = [process.pid for process in psutil.process_iter(["cmdline"]) if marker in (process.info["cmdline"] or [])]

    assert run.returncode == 2
    assert "free the port or pass --exporter-port" in run.stdout
    assert "Traceback" not in run.stdout
    # The output pipe closes only once the forked workers have exited too.
    assert elapsed < 30
    assert left == []


def test_exporter_serves_campaign(ingestion, tmp_path, exporter_port):
    arguments = locust_arguments(ingestion.url, tmp_path, "--campaign", "smoke", "--campaign-duration", "6s",
                                 "--exporter-linger", "4s", exporter_port=exporter_port)
    process = subprocess.Popen(arguments, cwd=tmp_path, env=locust_environment(ingestion.admin_token),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        running = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and running is None:
            try:
                samples = _scrape(exporter_port)
            except httpx.TransportError:
                samples = {}
            if samples.get(("unmogrowp_loadtest_running", ())) == 1 and samples.get(
                    ("unmogrowp_loadtest_events_per_second", ()), 0) > 0:
                running = samples
            time.sleep(0.5)

        assert running is not None, "the exporter never reported a running campaign with events"
        assert running[("locust_users", ())] >= 1
        assert running[("locust_running", ())] == 2
        assert running[("unmogrowp_loadtest_target_events_per_second", ())] == 1000
        assert running[("unmogrowp_loadtest_events_total", (("outcome", "accepted"),))] > 0
        assert running[("locust_requests_num_requests", (("method", "POST"), ("name", "/v1/events")))] > 0
        assert ("locust_requests_current_response_time_percentile_95", ()) in running
        # Mid-run the verdict is provisional: the first seconds may not reach the target yet.
        assert running[("unmogrowp_loadtest_verdict", (("criterion", "overall"),))] in (0, 1)

        final = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and final is None:
            samples = _scrape(exporter_port)
            if samples.get(("unmogrowp_loadtest_running", ())) == 0:
                final = samples
            time.sleep(0.5)

        assert final is not None, "the exporter never reported the end of the run"
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    # The exporter's final verdict is the run's verdict, criterion by criterion. Whether a
    # 6-second campaign keeps its p95 under 100 ms depends on what else the machine runs, so
    # the p95 criterion is only checked for agreement.
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    for criterion, result in verdict["criteria"].items():
        assert final[("unmogrowp_loadtest_verdict", (("criterion", criterion),))] == int(result["passed"]), criterion
    assert final[("unmogrowp_loadtest_verdict", (("criterion", "overall"),))] == int(verdict["passed"])
    assert verdict["criteria"]["success_rate"]["passed"] is True
    assert verdict["criteria"]["throughput"]["passed"] is True
    assert process.returncode == (0 if verdict["passed"] else VERDICT_FAILED_EXIT_CODE), output[-3000:]


@pytest.mark.parametrize("batch_format", ["object", "ndjson"])
def test_other_batch_formats_accepted(ingestion, tmp_path, batch_format):
    run = run_locust(ingestion.url, tmp_path, "--campaign", "smoke", "--campaign-duration", "3s",
                     "--batch-format", batch_format, "--batch-size", "200", "--traceparent",
                     admin_token=ingestion.admin_token)

    assert run.returncode == 0, run.output[-3000:]
    assert run.verdict["measurement"]["failures"] == 0
