"""Run deploy/local/run-stack.sh for a test on free loopback ports.

``local_stack`` starts the real script (Prometheus and Alertmanager from
Debian's packages), waits until both are ready, yields a
``LocalStack`` and stops it with SIGTERM, which stops its children::

    with local_stack(tmp_path, targets={"ingestion": "127.0.0.1:18081"}) as stack:
        stack.query("up")
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.integration.deploy.deploy_files import DEPLOY
from tests.support.services import free_port

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


@dataclass
class LocalStack:
    process: subprocess.Popen
    prometheus_url: str
    alertmanager_url: str
    data_dir: Path
    output_path: Path

    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")

    def query(self, expression: str, **parameters: str) -> dict:
        """Run an instant query; return the JSON body, whatever its status."""
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expression, **parameters},
                             timeout=10)
        return response.json()

    def child_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"\(pid (\d+)\)", self.output())]


@contextmanager
def local_stack(tmp_path: Path, *, jobs: Sequence[str] = ("ingestion", "customer-success-tracker", "prometheus",
                                                          "alertmanager"),
                targets: Mapping[str, str] | None = None, secrets_dir: Path | None = None,
                extra_arguments: Sequence[str] = ()) -> Iterator[LocalStack]:
    prometheus_port = free_port()
    alertmanager_port = free_port()
    data_dir = tmp_path / "monitoring"
    secrets_dir = secrets_dir or tmp_path / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    command = [
        str(DEPLOY / "local" / "run-stack.sh"),
        "--prometheus-port", str(prometheus_port),
        "--alertmanager-port", str(alertmanager_port),
        "--data-dir", str(data_dir),
        "--secrets-dir", str(secrets_dir),
        "--jobs", ",".join(jobs),
        *[f"--target={job}={address}" for job, address in (targets or {}).items()],
        *extra_arguments,
    ]
    output_path = tmp_path / "run-stack.out"
    with output_path.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    stack = LocalStack(process, f"http://127.0.0.1:{prometheus_port}", f"http://127.0.0.1:{alertmanager_port}",
                       data_dir, output_path)
    try:
        _wait_ready(stack)
        yield stack
    finally:
        _stop(stack)


def _wait_ready(stack: LocalStack) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise AssertionError(f"run-stack.sh exited with {stack.process.returncode}:\n{stack.output()}")
        if "Stop with Ctrl-C." in stack.output():
            return
        time.sleep(0.2)
    raise AssertionError(f"run-stack.sh was not ready within {READY_TIMEOUT_S} s:\n{stack.output()}")


def _stop(stack: LocalStack) -> None:
    children = stack.child_pids()
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGTERM)
        try:
            stack.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stack.process.kill()
            stack.process.wait()
    # If the script could not stop its children, end them here: only pids
    # whose command line still names this stack's data folder, so a reused
    # pid of another process is left alone.
    for pid in children:
        try:
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(stack.data_dir) in command_line:
            os.kill(pid, signal.SIGKILL)
