"""Start the project's services as real processes on loopback for a test.

``start_ingestion`` and ``start_tracker`` are context managers: they run
``unmogrowp ingestion`` or ``unmogrowp tracker`` on a free port of 127.0.0.1
with a fresh admin token, wait until ``GET /readyz`` returns 200, yield a
``RunningService``, and stop the process with SIGTERM on exit::

    with start_ingestion(tmp_path, workers=2) as service:
        httpx.get(service.url + "/metrics")

Keyword options become command-line flags: ``data_dir=path`` gives
``--data-dir path``, ``True`` gives a bare flag, and ``None`` or ``False``
leaves the flag out.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
POLL_INTERVAL_SECONDS = 0.1
LOG_TAIL_CHARACTERS = 4000


@dataclass
class RunningService:
    """A service process started for a test."""

    name: str
    url: str
    host: str
    port: int
    admin_token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    command: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        """Return the Authorization header with the admin token."""
        return {"Authorization": f"Bearer {self.admin_token}"}

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit; return the exit status.

        After a graceful shutdown on SIGTERM the status is -15, because uvicorn
        (0.29 and later) raises the captured signal again once it has stopped.
        Raises RuntimeError, after killing the process, when it is still
        running STOP_TIMEOUT_SECONDS after SIGTERM.
        """
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(
                f"{self.name} did not stop within {STOP_TIMEOUT_SECONDS} s of {sig.name}; it was killed. "
                f"Log tail:\n{self.log_text()[-LOG_TAIL_CHARACTERS:]}"
            ) from None


# Ports free_port has returned in this test run.
_returned_ports: set[int] = set()


def _probe_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago on ``host`` and that no earlier call returned.

    The kernel may offer a port again once its probe socket is closed. So two ports taken before
    either is bound could be the same, and a monitoring-stack test once started node-exporter and
    Prometheus on one port.
    """
    for _ in range(100):
        port = _probe_port(host)
        if port not in _returned_ports:
            _returned_ports.add(port)
            return port
    raise RuntimeError(f"no free port on {host} that this test run has not used yet after 100 tries")


def unmogrowp_command() -> list[str]:
    """Return the installed ``unmogrowp`` script of this interpreter, else ``python -m services.cli``."""
    script = Path(sys.executable).parent / "unmogrowp"
    if script.exists():
        return [str(script)]
    found = shutil.which("unmogrowp")
    if found:
        return [found]
    return [sys.executable, "-m", "services.cli"]


def option_flags(options: Mapping[str, Any]) -> list[str]:
    """Turn keyword options into flags: ``data_dir=x`` -> ``--data-dir x``."""
    flags: list[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif isinstance(value, (list, tuple)):
            for item in value:
                flags += [flag, str(item)]
        else:
            flags += [flag, str(value)]
    return flags


@contextmanager
def start_service(
    name: str,
    subcommand: list[str],
    tmp_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    admin_token: str | None = None,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/readyz",
    ready_timeout: float = READY_TIMEOUT_SECONDS,
    options: Mapping[str, Any] | None = None,
) -> Iterator[RunningService]:
    """Run ``unmogrowp <subcommand> --host H --port P <options>`` until the block ends.

    The process runs in ``tmp_path`` with ``UNMOGROWP_ADMIN_TOKEN`` set and its
    output in ``tmp_path/<name>-<port>.log``.
    """
    port = port or free_port(host)
    admin_token = admin_token or secrets.token_urlsafe(32)
    command = unmogrowp_command() + subcommand + ["--host", host, "--port", str(port)] + option_flags(options or {})
    process_env = dict(os.environ)
    process_env["UNMOGROWP_ADMIN_TOKEN"] = admin_token
    process_env.update(env or {})

    log_path = tmp_path / f"{name}-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=process_env, stdout=log, stderr=subprocess.STDOUT)
    url_host = f"[{host}]" if ":" in host else host
    service = RunningService(
        name=name,
        url=f"http://{url_host}:{port}",
        host=host,
        port=port,
        admin_token=admin_token,
        process=process,
        log_path=log_path,
        command=command,
    )
    try:
        _wait_until_ready(service, ready_path, ready_timeout)
        yield service
    finally:
        service.stop()


@contextmanager
def start_ingestion(tmp_path: Path, **options: Any) -> Iterator[RunningService]:
    """Run the ingestion service; ``data_dir`` defaults to ``tmp_path/ingestion-data``.

    ``host``, ``port``, ``admin_token``, ``env`` and ``ready_timeout`` are passed
    to ``start_service``; every other option becomes a flag of ``unmogrowp ingestion``.
    """
    options.setdefault("data_dir", tmp_path / "ingestion-data")
    service_arguments = _pop_service_arguments(options)
    with start_service("ingestion", ["ingestion"], tmp_path, options=options, **service_arguments) as service:
        yield service


@contextmanager
def start_tracker(
    tmp_path: Path, *, ingestion_url: str | None = None, **options: Any
) -> Iterator[RunningService]:
    """Run the customer-success tracker; ``database`` defaults to SQLite in ``tmp_path``.

    Pass the ingestion service's ``admin_token`` too when the tracker reads its records.
    """
    options.setdefault("database", f"sqlite:///{tmp_path / 'tracker.db'}")
    options["ingestion_url"] = ingestion_url
    service_arguments = _pop_service_arguments(options)
    with start_service("tracker", ["tracker"], tmp_path, options=options, **service_arguments) as service:
        yield service


def _pop_service_arguments(options: dict[str, Any]) -> dict[str, Any]:
    names = ("host", "port", "admin_token", "env", "ready_path", "ready_timeout")
    return {name: options.pop(name) for name in names if name in options}


def _wait_until_ready(service: RunningService, ready_path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_problem = "no response yet"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise RuntimeError(
                    f"{service.name} exited with status {service.process.returncode} before it was ready: "
                    f"{' '.join(service.command)}\nLog tail:\n{service.log_text()[-LOG_TAIL_CHARACTERS:]}"
                )
            try:
                response = client.get(service.url + ready_path)
            except httpx.TransportError as error:
                last_problem = repr(error)
            else:
                if response.status_code == 200:
                    return
                last_problem = f"{ready_path} returned {response.status_code}"
            time.sleep(POLL_INTERVAL_SECONDS)
    raise RuntimeError(
        f"{service.name} was not ready within {timeout} s ({last_problem}); "
        f"log tail:\n{service.log_text()[-LOG_TAIL_CHARACTERS:]}"
    )
