"""The embedded store's snapshot file, written as a stream of frames.

A compaction must not hold event requests while the whole state is encoded: at the store's
bounds that took 16 s on one core. So the state is captured first, which takes references
only (views of the duplicate filter's, touch and install queues, each app's install index and
a copy of its record list) and took 13 ms at the store's bounds. The capture is then encoded
a frame at a time, between event requests, and the store goes on changing meanwhile. Records
and installs never change once made. A touch changes only in its ``alive`` flag, and an
install index only in which record each key points at. So while the capture is open the store
lists the touches it removes and the index entries it overwrites or deletes, and the writer
reads touches and installs first, so that it soon gets ahead of the store's evictions and
those lists stop growing.

File format (version 4): the bytes ``UMGSNAP4``, then frames of a 4-byte big-endian length
and a msgpack document each: one ``Header``, any number of ``SeenFrame``, ``TouchFrame``,
``RecordFrame`` and ``InstallRefFrame``, and an ``EndFrame`` that counts the frames before it.
The first three kinds may come in any order, and every ``InstallRefFrame`` after every
``RecordFrame``.
An install whose record is in a ``RecordFrame`` names it by seq instead of repeating it, so
the record is written once and loads as one object shared by the install index and the
record list. A ``SeenFrame`` gives each duplicate-filter id with the code of its app.
Version 3 (``UMGSNAP3``) wrote each id after its app's code and a unit separator, as one
string, and gave no codes. Version 2 (``UMGSNAP2``) did the same and also wrote every
install's record in full in an ``InstallFrame``, before the records. Version 1 was a single
msgpack ``Snapshot`` document. ``read_snapshot`` reads all four.
"""

from __future__ import annotations

import asyncio
import gc
import os
import struct
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from time import perf_counter

import msgspec

from ingestion.model import InstallEntry, Record, Touch
from ingestion.store.chunked import QueueView
from ingestion.store.record_log import RecordView
from ingestion.store.shards import SHARD_MASK, SHARD_SHIFT

MAGIC = b"UMGSNAP4"
FORMAT_VERSION = 4
MAGIC_VERSION_3 = b"UMGSNAP3"
MAGIC_VERSION_2 = b"UMGSNAP2"
# Items per frame. A frame of 10,000 touches encodes in a few milliseconds, so an event
# request waits at most that long behind the snapshot.
FRAME_ITEMS = 10_000
# Installs tested between two turns of the event loop: each costs a look-up of its device keys
# in its app's index. At the store's bounds 10,000 took 9.5 ms, in process.
INSTALL_STEP_ITEMS = 5_000
# Duplicate-filter entries per frame: three list slices, so cheaper per entry than a touch.
SEEN_FRAME_ITEMS = 50_000
# Items of a list the store adds to while a capture is open, read between two turns of the
# event loop. A list read in one go held the loop for 281 ms at the store's bounds.
CATCH_UP_ITEMS = 20_000
# References dropped between two turns of the event loop once a part of a capture is written.
# Each drop reads the object's header, a cache miss in a heap of gigabytes: at the store's
# bounds 100,000 drops of records took 30 ms, so a step drops a tenth of that.
RELEASE_ITEMS = 10_000
_seq = attrgetter("seq")
# Seconds left to event requests per second spent building a frame, so a snapshot takes at most
# a tenth of a busy core instead of the whole core while requests queue. A full store encodes in
# 3.0 s in process on the benchmark machine, so its snapshot takes at least 30 s. Its segment
# fills in about 60 s at 80,000 events/s, since a segment may grow to the snapshot's size.
YIELD_RATIO = 9.0

_LENGTH = struct.Struct(">I")
# Between the app code and the event id of a duplicate-filter key in versions 1 to 3.
KEY_SEPARATOR = "\x1f"


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
    # (id, receipt time) of each duplicate-filter entry, oldest first. Each id is its app's code,
    # a unit separator and the event id when ``seen_codes`` is None, as version 1 to 3 wrote it.
    seen: list[tuple[str, float]]
    apps: list[AppSnapshot]
    # The last journal segment folded into this snapshot; -1 in snapshots that predate segments.
    journal_generation: int = -1
    # The app code of each entry of ``seen``, from version 4 on.
    seen_codes: list[int] | None = None

    def seen_entries(self) -> Iterator[tuple[int, str, float]]:
        """Yield (app code, event id, receipt time) for each duplicate-filter entry, oldest first."""
        if self.seen_codes is not None:
            for code, (event_id, received) in zip(self.seen_codes, self.seen):
                yield code, event_id, received
            return
        for key, received in self.seen:
            code, separator, event_id = key.partition(KEY_SEPARATOR)
            if not separator or not code.isdigit():
                raise SnapshotError(
                    f"snapshot duplicate-filter entry {key!r} does not start with an app code; restore the "
                    "snapshot from a backup, or move it away to start without its state"
                )
            yield int(code), event_id, received


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
    """Duplicate-filter ids oldest first, the receipt time of each, and the code of its app.

    Versions 2 and 3 wrote no codes: each id there starts with its app's code and ``KEY_SEPARATOR``.
    """

    ids: list[str]
    times: list[float]
    codes: list[int] | None = None


class TouchFrame(msgspec.Struct, tag="touches", array_like=True):
    """Touches in arrival order; ``apps[i]`` is the index in ``Header.apps`` of ``touches[i]``'s app."""

    apps: list[int]
    touches: list[Touch]


class InstallFrame(msgspec.Struct, tag="installs", array_like=True):
    """Installs with their records in full: version 2 only."""

    apps: list[int]
    installs: list[tuple[tuple[str, ...], Record]]


class InstallRefFrame(msgspec.Struct, tag="install-refs", array_like=True):
    """Installs in arrival order: ``apps[i]`` is the app of the install with device keys ``keys[i]``.

    ``records[i]`` is the seq of a record in one of the app's ``RecordFrame``s, which come
    first, or the record in full when the app's record list had already evicted it.
    """

    apps: list[int]
    keys: list[tuple[str, ...]]
    records: list[int | Record]


class RecordFrame(msgspec.Struct, tag="records", array_like=True):
    app: int
    records: list[Record]


class EndFrame(msgspec.Struct, tag="end", array_like=True):
    frames: int


Frame = Header | SeenFrame | TouchFrame | InstallFrame | InstallRefFrame | RecordFrame | EndFrame
_frame_decoder = msgspec.msgpack.Decoder(Frame)


class SnapshotError(ValueError):
    """The snapshot file is damaged; the message names the file and what is wrong."""


@dataclass
class CapturedApp:
    app_id: str
    code: int
    watermark: float
    revenue: list[tuple[str | None, str | None, str, Decimal, int]]
    # The app's device-key index of installs, the store's own dicts (spread by key hash, see
    # shards): the store goes on changing them, and lists in Capture.unindexed each entry it
    # overwrites or deletes meanwhile.
    installs_by_key: list[dict[str, Record]]
    # The app's live records oldest first: a list, or a view of the store's record log.
    records: list[Record] | RecordView


@dataclass
class Capture:
    """References to the state at one moment, cheap to take, encoded later by ``frames``.

    ``touches`` and ``installs`` are views of the store's arrival-order queues. Each entry names
    its app by code, and ``app_index`` maps each code to the app's position in ``apps``. The
    queues also contain entries that had expired before the capture. A touch is written when it
    is alive or in ``killed``, where the store adds each touch it removes while the capture is
    open. An install is written when its app's index pointed at it when captured: when the
    index points at it now, or when the store listed it in ``unindexed``.
    """

    seq: int
    journal_generation: int
    apps: list[CapturedApp]
    app_index: dict[int, int]
    # The duplicate filter's ids oldest first, the code of each one's app, and its receipt time.
    seen_ids: QueueView
    seen_codes: QueueView
    seen_times: QueueView
    # TouchEntry and InstallEntry items, in arrival order.
    touches: QueueView
    installs: QueueView
    # Touches the store removed while the capture was open; None once the touch frames are written.
    killed: list[Touch] | None = field(default_factory=list)
    # (device key, record) for each install index entry that the store overwrote or deleted
    # while the capture was open; None once the current installs are known.
    unindexed: list[tuple[str, Record]] | None = field(default_factory=list)
    # The writer has read every queued touch, and tested every queued install, whose seq is
    # below these, so the store need not list them, nor any with a seq past ``seq``, which the
    # capture does not hold. Both queues are in seq order (seqs are given in arrival order,
    # and a restore sorts by seq). The store evicts oldest first and the writer reads oldest
    # first, so once the writer is ahead the two lists stop growing.
    touch_frontier: int = 0
    install_frontier: int = 0

    def frames(self) -> Iterator[bytes]:
        """Yield the file's bytes: the magic, then one length-prefixed frame at a time.

        Empty chunks give the event loop a turn during work that writes nothing.
        """
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
        # Touches and installs first, a step of each in turn. The store lists what it removes
        # of them until the writer has read past it, so both must be read early and at once.
        current: list[InstallEntry] = []
        for touch_chunk, install_chunk in zip_longest(self._touch_frames(framed), self._select_installs(current)):
            if touch_chunk is not None:
                yield touch_chunk
            if install_chunk is not None:
                yield install_chunk
        for ids, times, codes in zip(
            self.seen_ids.slices(SEEN_FRAME_ITEMS),
            self.seen_times.slices(SEEN_FRAME_ITEMS),
            self.seen_codes.slices(SEEN_FRAME_ITEMS),
        ):
            yield framed(SeenFrame(ids, times, codes))
        yield from _release(self.seen_ids)
        yield from _release(self.seen_codes)
        yield from _release(self.seen_times)
        for position, app in enumerate(self.apps):
            for start in range(0, len(app.records), FRAME_ITEMS):
                yield framed(RecordFrame(position, app.records[start : start + FRAME_ITEMS]))
        yield from self._install_frames(framed, current)
        yield from _release(current)
        for app in self.apps:
            yield from _release(app.records)
        yield framed(EndFrame(count))

    def _touch_frames(self, framed) -> Iterator[bytes]:
        app_index = self.app_index
        killed = self.killed
        killed_seqs: set[int] = set()
        killed_seen = 0
        for frame_touches in self.touches.slices(FRAME_ITEMS):
            # The store goes on adding to killed while the frames are written.
            killed_seen = yield from _catch_up(killed, killed_seen, killed_seqs, _seq)
            positions = []
            touches = []
            for entry in frame_touches:
                touch = entry.touch
                if not touch.alive:
                    if touch.seq not in killed_seqs:
                        continue
                    # Expired or evicted after the capture: it was alive when captured.
                    touch = msgspec.structs.replace(touch, alive=True)
                positions.append(app_index[entry.code])
                touches.append(touch)
            self.touch_frontier = frame_touches[-1].touch.seq + 1
            if touches:
                yield framed(TouchFrame(positions, touches))
        self.killed = None
        yield from _release(killed)
        yield from _release(killed_seqs)
        yield from _release(self.touches)

    def _select_installs(self, current: list[InstallEntry]) -> Iterator[bytes]:
        """Append to ``current`` the install queue's entries that were current at the capture.

        An install was current when one of its device keys pointed at it then. A key is only
        ever pointed at a new record, never back at an earlier one, so that is when one of its
        keys points at it now or was listed in ``unindexed``.
        """
        unindexed = self.unindexed
        dropped: set[tuple[str, int]] = set()
        dropped_seen = 0
        indexes = [app.installs_by_key for app in self.apps]
        app_index = self.app_index
        for step_installs in self.installs.slices(INSTALL_STEP_ITEMS):
            # The store goes on adding to unindexed between these steps.
            dropped_seen = yield from _catch_up(unindexed, dropped_seen, dropped, _key_and_seq)
            for entry in step_installs:
                record = entry.record
                index = indexes[app_index[entry.code]]
                for key in entry.keys:
                    if index[(hash(key) >> SHARD_SHIFT) & SHARD_MASK].get(key) is record or (key, record.seq) in dropped:
                        current.append(entry)
                        break
            self.install_frontier = step_installs[-1].record.seq + 1
            # Keep the growing list out of the young generations (see _keep_from_collector).
            _keep_from_collector()
            yield b""
        self.unindexed = None
        yield from _release(unindexed)
        yield from _release(dropped)
        yield from _release(self.installs)

    def _install_frames(self, framed, current: list[InstallEntry]) -> Iterator[bytes]:
        app_index = self.app_index
        # An app's records are in seq order and the oldest leave first, so an install's record
        # was written in a RecordFrame exactly when its seq is at least the first written one.
        first_written = [app.records[0].seq if app.records else None for app in self.apps]
        for start in range(0, len(current), FRAME_ITEMS):
            positions = []
            keys = []
            records: list[int | Record] = []
            for entry in current[start : start + FRAME_ITEMS]:
                position = app_index[entry.code]
                positions.append(position)
                keys.append(entry.keys)
                seq = entry.record.seq
                first = first_written[position]
                records.append(seq if first is not None and seq >= first else entry.record)
            yield framed(InstallRefFrame(positions, keys, records))


def _key_and_seq(unindexed: tuple[str, Record]) -> tuple[str, int]:
    return unindexed[0], unindexed[1].seq


def _catch_up(log: list, done: int, into: set, key: Callable) -> Generator[bytes, None, int]:
    """Add ``key`` of each item of ``log`` past ``done`` to ``into``; return how many items are in.

    The store appends to ``log`` between two turns of the event loop. The items there when
    this starts go in at most CATCH_UP_ITEMS per turn. Those added meanwhile go in at the end,
    in the same turn as the caller's next step, so the caller sees every item and this ends
    however fast the store appends.
    """
    present = len(log)
    while done < present:
        end = min(present, done + CATCH_UP_ITEMS)
        into.update(map(key, log[done:end]))
        done = end
        # Keep the growing set out of the young generations (see _keep_from_collector).
        _keep_from_collector()
        yield b""
    into.update(map(key, log[done:]))
    return len(log)


def _keep_from_collector() -> None:
    """Move every tracked object, the frames' large containers among them, out of the collector.

    A young container of millions of references is traversed by every collection of the young
    generations until it ages. gc.freeze() takes constant time; the writer's caller calls
    gc.unfreeze() once the snapshot is written, so nothing stays out for good.
    """
    gc.freeze()


def _release(container: list | set | dict | QueueView | RecordView) -> Iterator[bytes]:
    """Empty a large container a chunk at a time, yielding empty chunks in between.

    Dropping a capture's containers at once would free millions of references in one go (and
    the last references of touches removed meanwhile), stalling requests for tenths of a second.
    """
    if isinstance(container, QueueView):
        for _ in container.release():
            yield b""
        return
    if isinstance(container, RecordView):
        for _ in container.release(RELEASE_ITEMS):
            yield b""
        return
    if isinstance(container, list):
        while container:
            del container[-RELEASE_ITEMS:]
            yield b""
        return
    pop = container.popitem if isinstance(container, dict) else container.pop
    while container:
        for _ in range(min(RELEASE_ITEMS, len(container))):
            pop()
        yield b""


def read_snapshot(path: Path) -> Snapshot:
    """Read a snapshot file of either version into one ``Snapshot``."""
    data = path.read_bytes()
    if not data.startswith((MAGIC, MAGIC_VERSION_3, MAGIC_VERSION_2)):
        try:
            return msgspec.msgpack.decode(data, type=Snapshot)
        except msgspec.DecodeError as error:
            raise _damaged(path, f"is damaged ({error})") from None
    return _assemble(path, _read_frames(path, memoryview(data)[len(MAGIC) :]))


def _damaged(path: Path, problem: str) -> SnapshotError:
    return SnapshotError(
        f"snapshot {path} {problem}; restore it from a backup, or move it away to start without its "
        "state (the journal segments it does not include are still replayed)"
    )


def _read_frames(path: Path, view: memoryview) -> Iterator[Frame]:
    offset = 0
    while offset < len(view):
        if offset + _LENGTH.size > len(view):
            raise _damaged(path, "ends inside a frame header, so it was cut short")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if offset + length > len(view):
            raise _damaged(path, "ends inside a frame, so it was cut short")
        try:
            yield _frame_decoder.decode(view[offset : offset + length])
        except msgspec.DecodeError as error:
            raise _damaged(path, f"has a damaged frame at byte {offset + len(MAGIC)} ({error})") from None
        offset += length


def _assemble(path: Path, frames: Iterator[Frame]) -> Snapshot:
    header = next(frames, None)
    if not isinstance(header, Header):
        raise _damaged(path, "does not start with its header frame")
    apps = [AppSnapshot(app.app_id, app.watermark, [], [], [], app.revenue, app.code) for app in header.apps]
    seen: list[tuple[str, float]] = []
    seen_codes: list[int] | None = [] if header.version >= 4 else None
    # Each app's records by seq, built at the first InstallRefFrame, once every RecordFrame is read.
    records_by_seq: list[dict[int, Record]] | None = None
    count = 1
    for frame in frames:
        if isinstance(frame, EndFrame):
            if frame.frames != count:
                raise _damaged(path, f"has {count} frames where its end frame counts {frame.frames}")
            return Snapshot(header.version, header.seq, seen, apps, header.journal_generation, seen_codes)
        count += 1
        if isinstance(frame, SeenFrame):
            if (frame.codes is None) != (seen_codes is None) or len(frame.times) != len(frame.ids):
                raise _damaged(path, f"has a duplicate-filter frame unlike those of version {header.version}")
            if seen_codes is not None:
                if len(frame.codes) != len(frame.ids):
                    raise _damaged(path, f"has a duplicate-filter frame unlike those of version {header.version}")
                seen_codes.extend(frame.codes)
            seen.extend(zip(frame.ids, frame.times))
        elif isinstance(frame, TouchFrame):
            for position, touch in zip(frame.apps, frame.touches):
                apps[position].touches.append(touch)
        elif isinstance(frame, InstallFrame):
            for position, install in zip(frame.apps, frame.installs):
                apps[position].installs.append(install)
        elif isinstance(frame, InstallRefFrame):
            if records_by_seq is None:
                records_by_seq = [{record.seq: record for record in app.records} for app in apps]
            for position, keys, record in zip(frame.apps, frame.keys, frame.records):
                if type(record) is int:
                    found = records_by_seq[position].get(record)
                    if found is None:
                        raise _damaged(path, f"names record seq {record} of app {apps[position].app_id!r}, "
                                             "which none of its record frames contains")
                    record = found
                apps[position].installs.append((keys, record))
        elif isinstance(frame, RecordFrame):
            apps[frame.app].records.extend(frame.records)
        else:
            raise _damaged(path, "has a second header frame")
    raise _damaged(path, "has no end frame, so it was cut short")


def write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Write the chunks to a temporary file, sync it, and rename it over ``path``."""
    temporary = _temporary(path)
    with open(temporary, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
        _sync(handle)
    _replace(temporary, path)


async def write_atomically_between_requests(
    path: Path, chunks: Iterable[bytes], yield_ratio: Callable[[], float] = lambda: YIELD_RATIO
) -> None:
    """Like ``write_atomically``, but build each chunk on the event loop and write it in a thread.

    After each chunk the loop is left to event requests for ``yield_ratio()`` times as long as
    the chunk took to build. So a snapshot never keeps them waiting for long, and it takes at
    most 1 / (1 + ratio) of a busy core. The ratio is read per chunk, so a stopping store can set it to 0.
    """
    temporary = _temporary(path)
    handle = await asyncio.to_thread(open, temporary, "wb")
    try:
        iterator = iter(chunks)
        while True:
            started = perf_counter()
            chunk = next(iterator, None)
            if chunk is None:
                break
            built = perf_counter() - started
            await asyncio.to_thread(handle.write, chunk)
            await asyncio.sleep(built * yield_ratio())
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
