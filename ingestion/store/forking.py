"""Running a function in a forked child process, to work on a frozen copy of the parent's memory.

After `os.fork` the child has the parent's objects as they were at that instant, and the kernel
copies a page only when one of the two processes writes to it. The embedded store writes its
snapshot this way, as Redis does with BGSAVE: the child encodes and writes the state while the
parent goes on applying batches. The price is memory: every page that either process writes
to while the child runs exists twice. Python writes to an object whenever it takes a reference,
so a child that encodes the whole state may copy the whole heap.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Bytes of the child's error message that reach the parent. A pipe's buffer takes far more.
MAX_ERROR_BYTES = 4000


def fork_supported() -> bool:
    return hasattr(os, "fork")


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


def memory_headroom_bytes(
    cgroup: Path = Path("/sys/fs/cgroup"), meminfo: Path = Path("/proc/meminfo")
) -> int | None:
    """Return how many more bytes this process tree may use before it runs out of memory.

    That is the cgroup v2 limit minus the cgroup's usage when a limit is set (in a container),
    otherwise the kernel's MemAvailable estimate, and None when neither can be read.
    """
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            return int(limit) - int((cgroup / "memory.current").read_text().strip())
    except (OSError, ValueError):
        pass
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def resident_bytes() -> int:
    """Return this process's resident memory in bytes (0 where /proc is missing)."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


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
