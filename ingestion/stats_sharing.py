"""``/v1/stats`` across worker processes: each worker saves its book where the others read it.

Every worker keeps the counts and latency histograms of the requests it served (``stats``).
Once a second, when its book has changed, it writes the book to ``stats-<slot>.msgpack`` in the
folder of the metrics slots, by a write to a temporary file and a rename, so a reader never sees
half a file. ``/v1/stats`` adds the files of the other slots to its own book, so every worker
returns the whole service's figures, the others' at most about a second old.

A worker that replaces a dead one starts from the file of its slot, as its metrics do, so no
count goes back. The supervisor deletes the folder at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import msgspec

from ingestion.stats import Books, StatsBook

logger = logging.getLogger(__name__)

SAVE_INTERVAL_S = 1.0
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Books).decode


def stats_path(directory: Path, slot: int) -> Path:
    return directory / f"stats-{slot}.msgpack"


class SharedStats:
    """One worker's side: saves its book, takes over its slot's file, and reads the other slots' files."""

    def __init__(self, book: StatsBook, directory: Path, slot: int, interval_s: float = SAVE_INTERVAL_S) -> None:
        self.book = book
        self.directory = directory
        self.slot = slot
        self.path = stats_path(directory, slot)
        self.interval_s = interval_s
        self._saved_version = -1
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.take_over()
        self._task = asyncio.create_task(self._save_periodically(), name="stats-saver")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.save()

    def take_over(self) -> None:
        """Start the book from the file a previous worker of this slot left, if any."""
        try:
            books = _decode(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, msgspec.DecodeError) as error:
            logger.warning("stats of the previous worker unreadable; starting from zero",
                           extra={"path": str(self.path), "slot": self.slot, "error": str(error)})
            return
        self.book.apps = books
        self.book.version += 1
        logger.info("stats taken over", extra={"path": str(self.path), "slot": self.slot, "apps": len(books)})

    def save(self) -> None:
        """Write the book if it changed since the last save; log and keep serving when the write fails."""
        version = self.book.version
        if version == self._saved_version:
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            temporary.write_bytes(_encode(self.book.apps))
            os.replace(temporary, self.path)
        except OSError as error:
            logger.warning("saving stats for the other workers failed; retrying in a second",
                           extra={"path": str(self.path), "slot": self.slot, "error": str(error)})
            return
        self._saved_version = version

    def peers(self) -> list[Books]:
        """Return the books the other workers saved last; an unreadable one is left out and logged."""
        books = []
        for path in sorted(self.directory.glob("stats-*.msgpack")):
            if path == self.path:
                continue
            try:
                books.append(_decode(path.read_bytes()))
            except FileNotFoundError:
                continue
            except (OSError, msgspec.DecodeError) as error:
                logger.warning("stats of another worker unreadable, left out of this response",
                               extra={"path": str(path), "error": str(error)})
        return books

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.save()
