"""How the supervisor logs children it stops: by the signal that ended them, or their exit code."""

from __future__ import annotations

import logging
import subprocess
import sys

from services.supervisor import stop_children

# Exits with status 0 on SIGTERM, as a service with a graceful shutdown does; prints once ready.
GRACEFUL = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "print('ready', flush=True)\n"
    "time.sleep(30)\n"
)
# Keeps the default SIGTERM action, so the signal ends it.
PLAIN = "import time\nprint('ready', flush=True)\ntime.sleep(30)\n"


def start(code: str) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    return child


def test_stop_logs_signal_or_exit_code(caplog):
    children = {"plain": start(PLAIN), "graceful": start(GRACEFUL)}

    with caplog.at_level(logging.INFO, logger="services.supervisor"):
        stop_children(children)

    stopped = {record.child: record for record in caplog.records if record.message == "child stopped"}
    assert stopped["plain"].signal == "SIGTERM"
    assert not hasattr(stopped["plain"], "exit_code")
    assert stopped["graceful"].exit_code == 0
    assert not hasattr(stopped["graceful"], "signal")


def test_exited_child_not_logged_as_stopped(caplog):
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    children = {"exited": exited, "plain": start(PLAIN)}

    with caplog.at_level(logging.INFO, logger="services.supervisor"):
        stop_children(children)

    stopped = [record.child for record in caplog.records if record.message == "child stopped"]
    assert stopped == ["plain"]
