"""``unmogrowp up``: the ingestion service and the tracker as child processes.

Both children get the same admin token (from ``UNMOGROWP_ADMIN_TOKEN`` or the
token file in the data folder) and their own part of the data folder. SIGINT
and SIGTERM are passed on to both; when one child exits, the other is stopped
and ``up`` exits with a failure status.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from services.config import ConfigError, default_data_dir, port_number, resolve_admin_token, token_environment
from services.logging import configure_logging

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address both services listen on")
    parser.add_argument("--ingestion-port", type=port_number, default=8081, help="TCP port of the ingestion service")
    parser.add_argument("--tracker-port", type=port_number, default=8084, help="TCP port of the tracker")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="folder for the admin token, the ingestion store and the tracker's SQLite database "
        "(environment: UNMOGROWP_DATA_DIR)",
    )


def child_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    python = [sys.executable, "-m", "services.cli"]
    ingestion_url = f"http://{args.host}:{args.ingestion_port}"
    if ":" in args.host:
        ingestion_url = f"http://[{args.host}]:{args.ingestion_port}"
    database = f"sqlite:///{(args.data_dir / 'tracker.db').resolve()}"
    return {
        "ingestion": python
        + ["ingestion", "--host", args.host, "--port", str(args.ingestion_port), "--data-dir", str(args.data_dir / "ingestion")],
        "tracker": python
        + ["tracker", "--host", args.host, "--port", str(args.tracker_port), "--database", database, "--ingestion-url", ingestion_url],
    }


def run(args: argparse.Namespace) -> int:
    configure_logging("unmogrowp-up")
    try:
        token, source = resolve_admin_token(args.data_dir)
    except ConfigError as error:
        print(f"unmogrowp up: {error}", file=sys.stderr)
        return 2
    logger.info("admin token loaded", extra={"source": source})

    for option, port in (("--ingestion-port", args.ingestion_port), ("--tracker-port", args.tracker_port)):
        problem = port_in_use(args.host, port)
        if problem is not None:
            print(f"unmogrowp up: cannot listen on {args.host}:{port} ({problem}); "
                  f"stop what uses it or choose another port with {option}", file=sys.stderr)
            return 2

    environment = dict(os.environ, **token_environment(token, source, "unmogrowp up"))
    children: dict[str, subprocess.Popen] = {}
    for name, command in child_commands(args).items():
        children[name] = subprocess.Popen(command, env=environment)
        logger.info("child started", extra={"child": name, "pid": children[name].pid})

    stop_requested = False

    def request_stop(signum, _frame) -> None:
        nonlocal stop_requested
        stop_requested = True
        logger.info("stop requested", extra={"signal": signal.Signals(signum).name})

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    exit_code = 0
    while not stop_requested:
        exited = {name: child.poll() for name, child in children.items() if child.poll() is not None}
        if exited:
            for name, code in exited.items():
                logger.error("child exited", extra={"child": name, "pid": children[name].pid, **_how_ended(code)})
            exit_code = 1
            break
        time.sleep(0.2)

    stop_children(children)
    return exit_code


def port_in_use(host: str, port: int) -> str | None:
    """Return why ``host:port`` cannot be bound, or None when it is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def stop_children(children: dict[str, subprocess.Popen]) -> None:
    """Send SIGTERM to the children still running, wait for them, and kill those that overrun."""
    running = {name: child for name, child in children.items() if child.poll() is None}
    for child in running.values():
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for name, child in running.items():
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.error("child did not stop in time; killing it", extra={"child": name, "pid": child.pid})
            child.kill()
            child.wait()
        logger.info("child stopped", extra={"child": name, **_how_ended(child.returncode)})


def _how_ended(returncode: int) -> dict:
    """Return how a child ended as log fields: its exit code, or the signal that ended it.

    Popen reports death by a signal as the negative signal number, which reads like an error
    code in a log: a child stopped by the SIGTERM sent above shows up as "signal": "SIGTERM".
    """
    if returncode < 0:
        try:
            return {"signal": signal.Signals(-returncode).name}
        except ValueError:
            return {"signal": str(-returncode)}
    return {"exit_code": returncode}
