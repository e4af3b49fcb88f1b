"""Several worker processes behind one port, and a supervisor that replaces any that exits.

The supervisor binds the listening socket once and starts ``workers``
processes (``multiprocessing`` spawn) that all accept from that socket, so
the kernel hands each new connection to whichever worker accepts first.
While a worker restarts, connections wait in the socket's backlog instead of
being refused.

Each worker has a fixed slot number, from 0 to ``workers - 1``, and a
replacement takes the slot of the worker it replaces. ``exporters.multiprocess``
keeps each slot's metrics in a file of a folder that lives as long as the
supervisor, so totals survive restarts. SIGTERM or SIGINT to the supervisor
stops every worker gracefully (in-flight requests finish) and removes the
folder.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

import uvicorn

from exporters.multiprocess import reset_gauges, slot_path
from services.server import connection_counting_protocol

logger = logging.getLogger(__name__)

# Below the 30 s that orchestrators usually grant (Kubernetes'
# terminationGracePeriodSeconds), so a stuck worker is killed here first.
STOP_TIMEOUT_SECONDS = 25
QUICK_EXIT_SECONDS = 5.0
MAX_RESTART_DELAY_SECONDS = 30.0
SHARED_MEMORY = Path("/dev/shm")


@dataclass(frozen=True)
class WorkerContext:
    """Settings a worker process receives from the supervisor."""

    slot: int
    workers: int
    sock: socket.socket
    metrics_dir: Path
    supervisor_pid: int


def bind_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """Bind and listen on ``host:port``; raise OSError naming the address when that fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"cannot listen on {host}:{port}: {error.strerror}; choose another --port or --host") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def metrics_directory() -> Path:
    """Create the folder of the workers' metric slots, in shared memory when the system has it."""
    parent = SHARED_MEMORY if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="unmogrowp-metrics-", dir=parent))


def _worker_main(target: Callable[[WorkerContext], None], context: WorkerContext) -> None:
    target(context)


class Supervisor:
    """Starts the workers, replaces those that exit, and stops them all on SIGTERM or SIGINT."""

    def __init__(self, target: Callable[[WorkerContext], None], *, workers: int, sock: socket.socket, name: str) -> None:
        self.target = target
        self.workers = workers
        self.sock = sock
        self.name = name
        self.metrics_dir = metrics_directory()
        self.context = multiprocessing.get_context("spawn")
        self.processes: dict[int, multiprocessing.process.BaseProcess] = {}
        self.started_at: dict[int, float] = {}
        self.quick_exits: dict[int, int] = {}
        self.restart_at: dict[int, float] = {}
        self.stop_requested = False

    def _start(self, slot: int) -> None:
        context = WorkerContext(slot, self.workers, self.sock, self.metrics_dir, os.getpid())
        process = self.context.Process(target=_worker_main, args=(self.target, context), name=f"{self.name}-worker-{slot}")
        process.start()
        self.processes[slot] = process
        self.started_at[slot] = time.monotonic()
        logger.info("worker started", extra={"slot": slot, "pid": process.pid})

    def _request_stop(self, signum, _frame) -> None:
        self.stop_requested = True
        logger.info("stop requested", extra={"signal": signal.Signals(signum).name})

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        logger.info("supervisor started", extra={"workers": self.workers, "metrics_dir": str(self.metrics_dir)})
        try:
            for slot in range(self.workers):
                self._start(slot)
            while not self.stop_requested:
                self._watch()
        finally:
            self._stop_all()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            self.sock.close()
        return 0

    def _watch(self) -> None:
        sentinels = {process.sentinel: slot for slot, process in self.processes.items() if process is not None}
        ready = wait(list(sentinels), timeout=0.5) if sentinels else []
        if not sentinels:
            time.sleep(0.2)
        if self.stop_requested:
            return
        now = time.monotonic()
        for sentinel in ready:
            slot = sentinels[sentinel]
            process = self.processes[slot]
            process.join()
            lived = now - self.started_at[slot]
            quick = lived < QUICK_EXIT_SECONDS
            self.quick_exits[slot] = self.quick_exits.get(slot, 0) + 1 if quick else 0
            delay = 0.0 if not quick else min(MAX_RESTART_DELAY_SECONDS, 0.5 * 2 ** (self.quick_exits[slot] - 1))
            logger.error(
                "worker exited; starting a replacement",
                extra={"slot": slot, "pid": process.pid, "exit_code": process.exitcode,
                       "seconds_alive": round(lived, 1), "restart_delay_s": delay},
            )
            self.processes[slot] = None
            self.restart_at[slot] = now + delay
            path = slot_path(self.metrics_dir, slot)
            if path.exists():
                reset_gauges(path)
        for slot, when in list(self.restart_at.items()):
            if when <= now:
                del self.restart_at[slot]
                self._start(slot)

    def _stop_all(self) -> None:
        running = [process for process in self.processes.values() if process is not None and process.is_alive()]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.error("worker did not stop in time; killing it", extra={"pid": process.pid})
                process.kill()
                process.join()
            logger.info("worker stopped", extra={"pid": process.pid, "exit_code": process.exitcode})


def run_workers(target: Callable[[WorkerContext], None], *, workers: int, host: str, port: int, name: str) -> int:
    """Serve with ``workers`` processes on ``host:port`` until SIGTERM or SIGINT; return the exit status."""
    sock = bind_socket(host, port)
    logger.info("listening", extra={"host": host, "port": port, "workers": workers})
    return Supervisor(target, workers=workers, sock=sock, name=name).run()


def serve_on_socket(app, context: WorkerContext, *, on_connection_change: Callable[[int], None] | None = None,
                    graceful_shutdown_seconds: int = 15) -> None:
    """Run ``app`` on uvicorn in this worker, accepting from the supervisor's socket.

    The worker stops gracefully on SIGTERM or SIGINT, and also when the
    supervisor is gone, so no orphan keeps the port: then, if the graceful
    stop takes more than STOP_TIMEOUT_SECONDS, the worker exits at once.
    """
    http_protocol: str | type = "httptools"
    if on_connection_change is not None:
        http_protocol = connection_counting_protocol(on_connection_change)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=http_protocol,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=graceful_shutdown_seconds,
    )
    server = uvicorn.Server(config)

    def watch_supervisor() -> None:
        # uvicorn checks should_exit about every 0.1 s, so setting it from
        # this thread starts the same graceful shutdown as SIGTERM. No one is
        # left to kill a worker whose shutdown hangs, so it ends itself.
        while os.getppid() == context.supervisor_pid:
            time.sleep(1.0)
        logger.error("supervisor is gone; stopping", extra={"slot": context.slot})
        server.should_exit = True
        time.sleep(STOP_TIMEOUT_SECONDS)
        logger.error("worker did not stop in time after its supervisor was gone; exiting", extra={"slot": context.slot})
        os._exit(1)

    threading.Thread(target=watch_supervisor, name="supervisor-watch", daemon=True).start()
    server.run(sockets=[context.sock])
