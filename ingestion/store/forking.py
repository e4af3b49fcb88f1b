"""Running a function in a forked child process, to work on a frozen copy of the parent's memory.

After `os.fork` the child sees the parent's objects as they were at that instant, and the kernel
copies a page only when one of the two processes writes to it. The embedded store writes its
snapshot this way, as Redis does with BGSAVE: the child encodes and writes the state while the
parent goes on applying batches. The price is memory: pages that the parent changes while the
child runs exist twice, at worst the whole heap.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass

# Bytes of the child's error message that reach the parent. A pipe's buffer takes far more.
MAX_ERROR_BYTES = 4000


SNAPSHOT_MODES = ("auto", "fork", "in-process")


def fork_supported() -> bool:
    return hasattr(os, "fork")


def fork_snapshots(mode: str) -> bool:
    """Return whether compactions should write their snapshot in a forked child, for a --snapshot-mode.

    "auto" forks only when this process may run on more than one CPU. On a single CPU the child
    competes with the service for it and its copied pages add work. On a 2-core machine with the
    service pinned to one core, ingestion then ran about 20 % slower than with in-process
    snapshots (loadtest figures in docs/benchmarks.md).
    """
    if mode == "in-process" or not fork_supported():
        return False
    if mode == "fork":
        return True
    return len(os.sched_getaffinity(0)) > 1


@dataclass
class ForkedCall:
    """A child process running one function; `wait` reaps it."""

    pid: int
    error_pipe: int

    def wait(self) -> str | None:
        """Block until the child exits; return None on success, otherwise the error it reported."""
        _, status = os.waitpid(self.pid, 0)
        with os.fdopen(self.error_pipe, "rb") as pipe:
            message = pipe.read().decode("utf-8", errors="replace")
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            return None
        return message or f"the child process exited with code {code}"


def fork_call(function: Callable[[], None]) -> ForkedCall:
    """Run `function` in a forked child and return at once in the parent.

    The child never returns into the caller's code: it leaves through `os._exit`, so it runs no
    event loop, no atexit hook and no finalizer of the parent's objects. `function` must not use
    the inherited file descriptors, which the child closes, nor locks that other threads of the
    parent may have held at the fork (logging's, for one).
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            # Inherited descriptors, the listening socket among them, would stay open as long as
            # the child runs. Only the pipe stays.
            os.closerange(3, write_end)
            os.closerange(write_end + 1, os.sysconf("SC_OPEN_MAX"))
            # A collection would write to every tracked object's header and so copy its page.
            gc.disable()
            function()
            code = 0
        except BaseException as error:
            message = f"{type(error).__name__}: {error}".encode("utf-8", errors="replace")
            try:
                os.write(write_end, message[:MAX_ERROR_BYTES])
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(write_end)
    return ForkedCall(pid, read_end)
