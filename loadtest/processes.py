"""Stopping the worker processes that `--processes` forked, when the master quits before the run.

With `--processes N`, Locust forks N workers before the master reads the kit's settings. When
the master then exits, its clean-up at exit (`kill_workers` in locust/main.py, as of Locust
2.47) takes a worker that is still running off its list without signalling it. Such a worker
runs on until its heartbeat from the master times out, 60 s later.
"""

from __future__ import annotations

import signal

import psutil

STOP_TIMEOUT_S = 5.0


def stop_forked_workers(options) -> None:
    """Send SIGINT to this process's children when `--processes` forked them, and wait for them."""
    if not getattr(options, "processes", None):
        return
    children = psutil.Process().children()
    for child in children:
        try:
            child.send_signal(signal.SIGINT)
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(children, timeout=STOP_TIMEOUT_S)
