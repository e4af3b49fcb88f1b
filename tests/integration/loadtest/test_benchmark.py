"""The benchmark command end to end, with durations far too short for real figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.loadtest.conftest import REPOSITORY, locust_environment


def test_benchmark_writes_report(tmp_path):
    report = tmp_path / "benchmarks.md"
    figures = tmp_path / "benchmarks.json"
    # The Locust runs last duration + warm-up, 2 s, so that their judged window opens at the
    # second tick of the shape, once every user runs.
    command = [
        sys.executable, "-m", "loadtest.benchmark", "--duration", "1", "--warmup", "1", "--no-pinning",
        "--connections", "2", "--locust-users", "2", "--metrics-rounds", "1", "--fill-events", "3000",
        "--output", str(report), "--json", str(figures),
    ]
    env = {**locust_environment(None), "PYTHONPATH": str(REPOSITORY) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    completed = subprocess.run(command, cwd=REPOSITORY, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=600)

    assert completed.returncode == 0, completed.stdout[-3000:]
    document = json.loads(figures.read_text())
    servers = {server["name"]: server for server in document["servers"]}
    assert set(servers) == {"bare ceiling", "ingestion service", "ingestion service after 3,000+ events"}
    for server in servers.values():
        assert server["events_per_second"] > 0
        assert server["errors"] == 0
        assert server["p50_ms"] <= server["p95_ms"] <= server["p99_ms"]
    locust = {run["name"].split(" ")[1]: run for run in document["locust"]}
    assert locust["generator"]["events_per_second"] > 0
    assert locust["generator"]["exit_code"] == 0
    assert locust["steady"]["p95_ms"] is not None
    assert document["metrics"]["all_counts_match"] is True

    text = report.read_text()
    assert "| bare ceiling |" in text
    assert "| ingestion service |" in text
    assert "| ingestion service after 3,000+ events |" in text
    assert "again after at least 3,000 events, and the campaign's service given as many first" in text
    assert document["context"]["cpu"] in text
    assert "## Metrics core against prometheus_client" in text
    assert "![throughput and latency](benchmarks.png)" in text
    assert Path(tmp_path / "benchmarks.png").read_bytes().startswith(b"\x89PNG")


def test_latency_benchmark_reports_windows():
    command = [
        sys.executable, "-m", "loadtest.bench_latency", "--events-per-second", "4000", "--duration", "3",
        "--fill-events", "3000", "--connections", "4", "--no-pinning",
    ]
    env = {**locust_environment(None), "PYTHONPATH": str(REPOSITORY) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    completed = subprocess.run(command, cwd=REPOSITORY, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=300)

    assert completed.returncode == 0, completed.stdout[-3000:]
    assert "12 requests at 4,000 events/s after " in completed.stdout
    assert " events; failed requests: 0" in completed.stdout
    assert "p95 in ms per 2 s window (window start: p95): 0:" in completed.stdout


def test_latency_benchmark_places_compactions():
    # A 64 KiB journal limit makes the service compact during the 3 s of paced load.
    command = [
        sys.executable, "-m", "loadtest.bench_latency", "--events-per-second", "4000", "--duration", "3",
        "--fill-events", "0", "--connections", "4", "--no-pinning", "--compactions",
        "--service-args", "--journal-max-bytes 65536",
    ]
    env = {**locust_environment(None), "PYTHONPATH": str(REPOSITORY) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    completed = subprocess.run(command, cwd=REPOSITORY, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=300)

    assert completed.returncode == 0, completed.stdout[-3000:]
    [line] = [line for line in completed.stdout.splitlines() if line.startswith("compactions, in s from")]
    spans = line.split(": ", 1)[1].split(", ")
    assert spans != ["none logged"]
    for span in spans:
        start, end = (float(value) for value in span.split(" to "))
        assert -1.0 < start <= end < 30.0
