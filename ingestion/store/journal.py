"""Append-only journal of accepted batches, written by a background thread.

The event loop hands each encoded batch to the writer thread and awaits a
future that resolves once the bytes are written to the file. So a process
that is killed (SIGKILL) after answering a request has already handed that
request's events to the kernel, and they survive. The thread calls fsync at
most every ``fsync_interval`` seconds, so a power loss or kernel crash can
lose up to that much acknowledged data.

Each frame is a 4-byte big-endian length followed by that many bytes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
_STOP = object()


class JournalError(OSError):
    """The journal could not be written."""


class Journal:
    def __init__(self, path: Path, *, fsync_interval: float = 1.0) -> None:
        self.path = path
        self.fsync_interval = fsync_interval
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._file = None
        self.bytes_written = 0

    def open(self) -> None:
        self._file = open(self.path, "ab", buffering=0)
        self.bytes_written = self._file.tell()
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    async def append(self, payload: bytes) -> None:
        """Write one frame; return once the kernel has it."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((payload, loop, future))
        await future

    def close(self) -> None:
        """Write what is queued, fsync, and stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None
        self._file.close()
        self._file = None

    def _run(self) -> None:
        last_sync = time.monotonic()
        dirty = False
        while True:
            timeout = self.fsync_interval if dirty else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            pending = []
            stop = False
            while item is not None:
                if item is _STOP:
                    stop = True
                else:
                    pending.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if pending:
                self._write(pending)
                dirty = True
            if dirty and (stop or time.monotonic() - last_sync >= self.fsync_interval):
                try:
                    os.fsync(self._file.fileno())
                except OSError:
                    logger.exception("journal fsync failed", extra={"path": str(self.path)})
                last_sync = time.monotonic()
                dirty = False
            if stop:
                return

    def _write(self, pending: list) -> None:
        chunks = []
        for payload, _loop, _future in pending:
            chunks.append(_LENGTH.pack(len(payload)))
            chunks.append(payload)
        data = b"".join(chunks)
        error: Exception | None = None
        try:
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                view = view[written:]
            self.bytes_written += len(data)
        except OSError as exc:
            logger.exception("journal write failed", extra={"path": str(self.path), "frames": len(pending)})
            error = JournalError(f"journal write to {self.path} failed: {exc}")
        for _payload, loop, future in pending:
            loop.call_soon_threadsafe(_settle, future, error)


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def read_frames(path: Path) -> Iterator[bytes]:
    """Yield the journal's frames; stop at a frame cut short by a crash."""
    if not path.exists():
        return
    with open(path, "rb") as handle:
        while True:
            header = handle.read(_LENGTH.size)
            if not header:
                return
            if len(header) < _LENGTH.size:
                logger.warning("journal ends with a partial frame header; ignoring it", extra={"path": str(path)})
                return
            (length,) = _LENGTH.unpack(header)
            payload = handle.read(length)
            if len(payload) < length:
                logger.warning("journal ends with a partial frame; ignoring it", extra={"path": str(path)})
                return
            yield payload
