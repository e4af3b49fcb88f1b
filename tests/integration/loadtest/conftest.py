"""A real ingestion service per module and a helper that runs `locust -f loadtest/` against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import RunningService, free_port, start_ingestion

REPOSITORY = Path(__file__).resolve().parents[3]
LOCUST_TIMEOUT_SECONDS = 120


@dataclass
class LocustRun:
    """A finished Locust process: exit code, output and the verdict file it wrote."""

    returncode: int
    output: str
    verdict: dict | None


def locust_command() -> list[str]:
    script = Path(sys.executable).with_name("locust")
    return [str(script)] if script.exists() else [sys.executable, "-m", "locust"]


def locust_environment(admin_token: str | None) -> dict[str, str]:
    """Return this process's environment for a Locust child, with gevent patching left on."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LOCUST_", "UNMOGROWP_"))}
    if admin_token is not None:
        env["UNMOGROWP_ADMIN_TOKEN"] = admin_token
    return env


def locust_arguments(host: str, tmp_path: Path, *arguments: str, exporter_port: int = 0) -> list[str]:
    return [
        *locust_command(), "-f", str(REPOSITORY / "loadtest"), "--headless", "--host", host,
        "--exporter-port", str(exporter_port), "--verdict-file", str(tmp_path / "verdict.json"),
        "--tracker-host", "", *arguments,
    ]


def run_locust(host: str, tmp_path: Path, *arguments: str, admin_token: str | None,
               env: dict[str, str] | None = None) -> LocustRun:
    """Run Locust headless to the end and collect what it left behind."""
    completed = subprocess.run(
        locust_arguments(host, tmp_path, *arguments),
        cwd=tmp_path,
        env={**locust_environment(admin_token), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=LOCUST_TIMEOUT_SECONDS,
        text=True,
    )
    verdict_path = tmp_path / "verdict.json"
    verdict = json.loads(verdict_path.read_text()) if verdict_path.exists() else None
    return LocustRun(completed.returncode, completed.stdout, verdict)


@pytest.fixture(scope="module")
def ingestion(tmp_path_factory) -> Iterator[RunningService]:
    with start_ingestion(tmp_path_factory.mktemp("ingestion")) as service:
        yield service


@pytest.fixture
def exporter_port() -> int:
    return free_port()
