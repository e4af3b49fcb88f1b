"""Stopping the worker processes that `--processes` forked, when the master quits before the run.

With `--processes N`, Locust forks N workers before the master reads the kit's settings. When
the master then exits, its clean-up at exit (`kill_workers` in locust/main.py, as of Locust
2.47) takes a worker that is still running off its list without signalling it. Such a worker
runs on until its heartbeat from the master times out, 60 s later.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import NoReturn

import psutil

STOP_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.05


def stop_forked_workers(options) -> None:
    """Send SIGTERM to this process's children when `--processes` forked them, and wait until they exit.

    The children are left unreaped, so Locust's clean-up at exit still collects their exit
    status: reaping them here would make its `os.waitpid` calls fail.
    """
    if not getattr(options, "processes", None):
        return
    pids = [child.pid for child in psutil.Process().children()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + STOP_TIMEOUT_S
    running = set(pids)
    while running and time.monotonic() < deadline:
        for pid in list(running):
            try:
                # WNOWAIT reports an exited child without reaping it.
                exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                exited = True
            if exited is not None:
                running.discard(pid)
        time.sleep(POLL_INTERVAL_S)


def exit_before_run(options, code: int = 2) -> NoReturn:
    """Stop the workers that `--processes` forked, if any, and exit with `code`."""
    stop_forked_workers(options)
    sys.exit(code)
