"""The embedded store's snapshot file, written as a stream of frames.

A compaction must not hold event requests while the whole state is encoded: at the store's
bounds that took 16 s on one core. So the state is captured first, which copies references
only (the duplicate filter's queues, the touch and install queues, each app's record list) and
takes a fraction of a second at full bounds. The capture is then encoded a frame at a time,
between event requests. Touches change after the capture only in their ``alive`` flag, so
the capture keeps the flags as they were; records and installs never change once made.
The duplicate filter is copied from its two arrival-order queues, ids and receipt times.

File format (version 2): the bytes ``UMGSNAP2``, then frames of a 4-byte big-endian length
and a msgpack document each: one ``Header``, any number of ``SeenFrame``, ``TouchFrame``,
``InstallFrame`` and ``RecordFrame``, and an ``EndFrame`` that counts the frames before it.
Version 1 was a single msgpack ``Snapshot`` document; ``read_snapshot`` reads both.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter
from pathlib import Path

import msgspec

from ingestion.model import Record, Touch

MAGIC = b"UMGSNAP2"
FORMAT_VERSION = 2
# Items per frame. A frame of 10,000 touches encodes in a few milliseconds, so an event
# request waits at most that long behind the snapshot.
FRAME_ITEMS = 10_000

_LENGTH = struct.Struct(">I")
_alive = attrgetter("alive")


class AppSnapshot(msgspec.Struct, array_like=True):
    app_id: str
    watermark: float
    touches: list[Touch]
    installs: list[tuple[tuple[str, ...], Record]]
    records: list[Record]
    revenue: list[tuple[str | None, str | None, str, Decimal, int]]
    # The prefix of this app's keys in ``Snapshot.seen``; 0 in snapshots that predate it.
    code: int = 0


class Snapshot(msgspec.Struct):
    """The whole state as one document: what ``read_snapshot`` returns, and the version 1 file."""

    version: int
    seq: int
    seen: list[tuple[str, float]]
    apps: list[AppSnapshot]
    # The last journal segment folded into this snapshot; -1 in snapshots that predate segments.
    journal_generation: int = -1


class AppHeader(msgspec.Struct, array_like=True):
    app_id: str
    code: int
    watermark: float
    revenue: list[tuple[str | None, str | None, str, Decimal, int]]


class Header(msgspec.Struct, tag="header", array_like=True):
    version: int
    seq: int
    journal_generation: int
    apps: list[AppHeader]


class SeenFrame(msgspec.Struct, tag="seen", array_like=True):
    pairs: list[tuple[str, float]]


class TouchFrame(msgspec.Struct, tag="touches", array_like=True):
    """Touches in arrival order; ``apps[i]`` is the index in ``Header.apps`` of ``touches[i]``'s app."""

    apps: list[int]
    touches: list[Touch]


class InstallFrame(msgspec.Struct, tag="installs", array_like=True):
    apps: list[int]
    installs: list[tuple[tuple[str, ...], Record]]


class RecordFrame(msgspec.Struct, tag="records", array_like=True):
    app: int
    records: list[Record]


class EndFrame(msgspec.Struct, tag="end", array_like=True):
    frames: int


Frame = Header | SeenFrame | TouchFrame | InstallFrame | RecordFrame | EndFrame
_frame_decoder = msgspec.msgpack.Decoder(Frame)


class SnapshotError(ValueError):
    """The snapshot file is damaged; the message names the file and what is wrong."""


@dataclass
class CapturedApp:
    app_id: str
    code: int
    watermark: float
    revenue: list[tuple[str | None, str | None, str, Decimal, int]]
    # The app's device-key index of installs when captured, to tell which installs were still current.
    installs_by_key: dict[str, Record]
    records: list[Record]


@dataclass
class Capture:
    """References to the state at one moment, cheap to take, encoded later by ``frames``.

    ``touches`` and ``installs`` are the store's arrival-order queues, whose entries start with
    the owning app's code; ``app_index`` maps each code to the app's position in ``apps``.
    """

    seq: int
    journal_generation: int
    apps: list[CapturedApp]
    app_index: dict[int, int]
    # The duplicate filter's ids oldest first, and the receipt time of each.
    seen_ids: list[str]
    seen_times: list[float]
    touches: list[tuple]
    touch_alive: list[bool]
    installs: list[tuple]

    def frames(self) -> Iterator[bytes]:
        """Yield the file's bytes: the magic, then one length-prefixed frame at a time."""
        yield MAGIC
        encoder = msgspec.msgpack.Encoder()
        count = 0

        def framed(document) -> bytes:
            nonlocal count
            count += 1
            payload = encoder.encode(document)
            return _LENGTH.pack(len(payload)) + payload

        headers = [AppHeader(app.app_id, app.code, app.watermark, app.revenue) for app in self.apps]
        yield framed(Header(FORMAT_VERSION, self.seq, self.journal_generation, headers))
        pairs = zip(self.seen_ids, self.seen_times)
        while chunk := list(itertools.islice(pairs, FRAME_ITEMS)):
            yield framed(SeenFrame(chunk))
        yield from self._touch_frames(framed)
        yield from self._install_frames(framed)
        for position, app in enumerate(self.apps):
            for start in range(0, len(app.records), FRAME_ITEMS):
                yield framed(RecordFrame(position, app.records[start : start + FRAME_ITEMS]))
        yield framed(EndFrame(count))

    def _touch_frames(self, framed) -> Iterator[bytes]:
        app_index = self.app_index
        live = itertools.compress(self.touches, self.touch_alive)
        while chunk := list(itertools.islice(live, FRAME_ITEMS)):
            touches = []
            for _code, touch in chunk:
                if not touch.alive:
                    # Expired or evicted after the capture: it was alive when captured.
                    touch = msgspec.structs.replace(touch, alive=True)
                touches.append(touch)
            yield framed(TouchFrame([app_index[code] for code, _touch in chunk], touches))

    def _install_frames(self, framed) -> Iterator[bytes]:
        app_index = self.app_index
        apps = self.apps
        entries = iter(self.installs)
        while chunk := list(itertools.islice(entries, FRAME_ITEMS)):
            positions = []
            installs = []
            for code, keys, record in chunk:
                position = app_index[code]
                current = apps[position].installs_by_key
                # An install is current while one of its device keys still points at it.
                if any(current.get(key) is record for key in keys):
                    positions.append(position)
                    installs.append((keys, record))
            if installs:
                yield framed(InstallFrame(positions, installs))


def read_snapshot(path: Path) -> Snapshot:
    """Read a snapshot file of either version into one ``Snapshot``."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        try:
            return msgspec.msgpack.decode(data, type=Snapshot)
        except msgspec.DecodeError as error:
            raise SnapshotError(f"snapshot {path} is damaged ({error}); restore it from a backup or move it away") from None
    return _assemble(path, _read_frames(path, memoryview(data)[len(MAGIC) :]))


def _read_frames(path: Path, view: memoryview) -> Iterator[Frame]:
    offset = 0
    while offset < len(view):
        if offset + _LENGTH.size > len(view):
            raise SnapshotError(f"snapshot {path} ends inside a frame header; it was cut short")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if offset + length > len(view):
            raise SnapshotError(f"snapshot {path} ends inside a frame; it was cut short")
        try:
            yield _frame_decoder.decode(view[offset : offset + length])
        except msgspec.DecodeError as error:
            raise SnapshotError(f"snapshot {path} has a damaged frame at byte {offset + len(MAGIC)}: {error}") from None
        offset += length


def _assemble(path: Path, frames: Iterator[Frame]) -> Snapshot:
    header = next(frames, None)
    if not isinstance(header, Header):
        raise SnapshotError(f"snapshot {path} does not start with its header frame")
    apps = [AppSnapshot(app.app_id, app.watermark, [], [], [], app.revenue, app.code) for app in header.apps]
    seen: list[tuple[str, float]] = []
    count = 1
    for frame in frames:
        if isinstance(frame, EndFrame):
            if frame.frames != count:
                raise SnapshotError(f"snapshot {path} has {count} frames where its end frame counts {frame.frames}")
            return Snapshot(header.version, header.seq, seen, apps, header.journal_generation)
        count += 1
        if isinstance(frame, SeenFrame):
            seen.extend(frame.pairs)
        elif isinstance(frame, TouchFrame):
            for position, touch in zip(frame.apps, frame.touches):
                apps[position].touches.append(touch)
        elif isinstance(frame, InstallFrame):
            for position, install in zip(frame.apps, frame.installs):
                apps[position].installs.append(install)
        elif isinstance(frame, RecordFrame):
            apps[frame.app].records.extend(frame.records)
        else:
            raise SnapshotError(f"snapshot {path} has a second header frame")
    raise SnapshotError(f"snapshot {path} has no end frame; it was cut short")


def write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Write the chunks to a temporary file, sync it, and rename it over ``path``."""
    temporary = _temporary(path)
    with open(temporary, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
        _sync(handle)
    _replace(temporary, path)


async def write_atomically_between_requests(path: Path, chunks: Iterable[bytes]) -> None:
    """Like ``write_atomically``, but build each chunk on the event loop and write it in a thread.

    Event requests run between two chunks, so a large snapshot never holds them for long.
    """
    temporary = _temporary(path)
    handle = await asyncio.to_thread(open, temporary, "wb")
    try:
        for chunk in chunks:
            await asyncio.to_thread(handle.write, chunk)
        await asyncio.to_thread(_sync, handle)
    finally:
        await asyncio.to_thread(handle.close)
    await asyncio.to_thread(_replace, temporary, path)


def _temporary(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".tmp")


def _sync(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _replace(temporary: Path, path: Path) -> None:
    os.replace(temporary, path)
    # The rename is durable only once the folder is synced. Without this, a power
    # loss after the journal was emptied could bring back the previous snapshot.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
