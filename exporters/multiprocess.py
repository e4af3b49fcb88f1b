"""Metrics of every worker process in one scrape of any of them.

Each worker owns one slot: a memory-mapped file ``slot-<index>.bin`` in a
folder that the supervisor creates for one run of the service and deletes at
its end. Every series of a counter, gauge or histogram family has a fixed
place in its worker's slot. The worker writes a series' new values there as
part of recording them, which is a plain store into shared memory, with no
lock and no system call. A scrape reads all slots and adds them up, so it counts
everything that any worker recorded before the scrape, whether or not that
worker still runs.

A restarted worker gets the slot of the one it replaces and starts its
counters and histograms from the values found there, so no total goes back.
Gauges start from zero, because they describe the live process, and the
supervisor zeroes a dead worker's gauges before starting its replacement.

The slot count is the worker count, fixed for a run, and files are named
by slot rather than by process id. So, unlike prometheus_client's
multiprocess mode (one file per process id and metric type, kept after the
process exits), restarts add no files, a scrape reads as many files as
there are workers, and no file of an earlier run is ever read.

Layout of a slot file, native byte order, every field 8-byte aligned::

    header (64 bytes): magic "UMGSLOT1", end of the series table (u64),
                       owner pid (u64), takeovers (u64), owner start time (f64)
    series entries, from byte 64 to the end offset:
        key length (u32), CRC-32 of the key (u32), value count (u32), 0 (u32),
        key (MessagePack [type, family name, label values]), zero-padded to 8,
        values (f64 each): 1 for a counter or gauge, bucket counts then sum
        for a histogram

The owner writes a new entry completely before it moves the end offset, and
readers stop at the first entry whose CRC does not match, so a reader never
takes a half-written key.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from exporters.metrics import (
    Counter,
    CounterChild,
    Gauge,
    GaugeChild,
    Histogram,
    HistogramChild,
    Registry,
    _Family,
)

logger = logging.getLogger(__name__)

MAGIC = b"UMGSLOT1"
HEADER_BYTES = 64
INITIAL_BYTES = 1 << 20
_END = 8
_PID = 16
_TAKEOVERS = 24
_STARTED = 32
_ENTRY_HEAD = struct.Struct("=IIII")
_U64 = struct.Struct("=Q")
_F64 = struct.Struct("=d")
_pack_value = _F64.pack_into

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"

# (metric type, family name, label values)
SeriesKey = tuple[str, str, tuple[str, ...]]

_key_encoder = msgspec.msgpack.Encoder()
_key_decoder = msgspec.msgpack.Decoder(tuple[str, str, tuple[str, ...]])


def slot_path(directory: Path, index: int) -> Path:
    return directory / f"slot-{index}.bin"


def _padded(length: int) -> int:
    return (length + 7) & ~7


def _series_key(kind: str, name: str, labels: tuple[str, ...]) -> bytes:
    return _key_encoder.encode((kind, name, labels))


def _parse_entries(buffer, start: int, end: int) -> Iterator[tuple[int, bytes, int, int]]:
    """Yield (entry offset, key, value offset, value count) from ``start`` to ``end``.

    Stops at the first entry that is cut off or whose CRC does not match.
    """
    position = start
    while position + _ENTRY_HEAD.size <= end:
        key_length, checksum, count, _ = _ENTRY_HEAD.unpack_from(buffer, position)
        key_start = position + _ENTRY_HEAD.size
        values = key_start + _padded(key_length)
        following = values + 8 * count
        if following > end or count == 0:
            return
        key = bytes(buffer[key_start : key_start + key_length])
        if zlib.crc32(key) != checksum:
            return
        yield position, key, values, count
        position = following


class SlotWriter:
    """The owner's side of one slot file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        size = os.fstat(self._descriptor).st_size
        if size < INITIAL_BYTES:
            os.ftruncate(self._descriptor, INITIAL_BYTES)
            size = INITIAL_BYTES
        self.buffer = mmap.mmap(self._descriptor, size)
        # series key -> (value offset, values found when this owner took over)
        self.existing: dict[bytes, tuple[int, list[float]]] = {}
        takeovers = 0
        if self.buffer[:8] == MAGIC:
            end = _U64.unpack_from(self.buffer, _END)[0]
            position = HEADER_BYTES
            for entry, key, values, count in _parse_entries(self.buffer, HEADER_BYTES, min(end, size)):
                found = list(struct.unpack_from(f"={count}d", self.buffer, values))
                self.existing[key] = (values, found)
                position = values + 8 * count
            self.end = position
            takeovers = _U64.unpack_from(self.buffer, _TAKEOVERS)[0] + 1
        else:
            self.buffer[:HEADER_BYTES] = bytes(HEADER_BYTES)
            self.end = HEADER_BYTES
        _U64.pack_into(self.buffer, _END, self.end)
        _U64.pack_into(self.buffer, _PID, os.getpid())
        _U64.pack_into(self.buffer, _TAKEOVERS, takeovers)
        _F64.pack_into(self.buffer, _STARTED, time.time())
        self.buffer[:8] = MAGIC
        self.takeovers = takeovers

    def allocate(self, key: bytes, count: int) -> tuple[int, list[float] | None]:
        """Return the offset of the series' values and the values it had, if any."""
        found = self.existing.pop(key, None)
        if found is not None and len(found[1]) == count:
            return found
        values = self.end + _ENTRY_HEAD.size + _padded(len(key))
        following = values + 8 * count
        if following > len(self.buffer):
            self._grow(following)
        buffer = self.buffer
        _ENTRY_HEAD.pack_into(buffer, self.end, len(key), zlib.crc32(key), count, 0)
        start = self.end + _ENTRY_HEAD.size
        buffer[start : start + len(key)] = key
        buffer[values:following] = bytes(following - values)
        # Publish the entry only once it is complete.
        self.end = following
        _U64.pack_into(buffer, _END, following)
        return values, None

    def _grow(self, needed: int) -> None:
        size = len(self.buffer)
        while size < needed:
            size *= 2
        os.ftruncate(self._descriptor, size)
        old = self.buffer
        self.buffer = mmap.mmap(self._descriptor, size)
        old.close()

    def close(self) -> None:
        self.buffer.close()
        os.close(self._descriptor)


class SlotReader:
    """Reads the series of every slot file in a folder; keeps each file's parsed table."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # path -> (inode, mmap, parsed end, [(key, value offset, value count)])
        self._files: dict[str, tuple[int, mmap.mmap, int, list[tuple[bytes, int, int]]]] = {}

    def totals(self) -> dict[SeriesKey, list[float]]:
        """Return the element-wise sum of every series' values across slots."""
        totals: dict[SeriesKey, list[float]] = {}
        for path in sorted(self.directory.glob("slot-*.bin")):
            try:
                found = self.values(path)
            except (OSError, ValueError) as error:
                logger.warning("metrics slot unreadable, left out of this scrape", extra={"path": str(path), "error": str(error)})
                continue
            for key, values in found.items():
                total = totals.get(key)
                if total is None:
                    totals[key] = values
                elif len(total) == len(values):
                    for position, value in enumerate(values):
                        total[position] += value
        return totals

    def values(self, path: Path) -> dict[SeriesKey, list[float]]:
        """Return the values of every series in one slot file."""
        series, buffer = self._series(path)
        return {
            _key_decoder.decode(key): list(struct.unpack_from(f"={count}d", buffer, values))
            for key, values, count in series
        }

    def _series(self, path: Path) -> tuple[list[tuple[bytes, int, int]], mmap.mmap]:
        stat = path.stat()
        cached = self._files.get(str(path))
        if cached is not None and (cached[0] != stat.st_ino or len(cached[1]) != stat.st_size):
            cached[1].close()
            cached = None
        if cached is None:
            with open(path, "rb") as handle:
                buffer = mmap.mmap(handle.fileno(), stat.st_size, access=mmap.ACCESS_READ)
            cached = (stat.st_ino, buffer, HEADER_BYTES, [])
        inode, buffer, parsed, series = cached
        if buffer[:8] != MAGIC:
            raise ValueError("not a metrics slot file")
        end = min(_U64.unpack_from(buffer, _END)[0], len(buffer))
        for _, key, values, count in _parse_entries(buffer, parsed, end):
            series.append((key, values, count))
            parsed = values + 8 * count
        self._files[str(path)] = (inode, buffer, parsed, series)
        return series, buffer


def reset_gauges(path: Path) -> int:
    """Set every gauge series of a dead worker's slot to 0; return how many there were.

    Call only while no process owns the slot.
    """
    with open(path, "r+b") as handle:
        size = os.fstat(handle.fileno()).st_size
        buffer = mmap.mmap(handle.fileno(), size)
        try:
            if buffer[:8] != MAGIC:
                return 0
            end = min(_U64.unpack_from(buffer, _END)[0], size)
            reset = 0
            for _, key, values, count in _parse_entries(buffer, HEADER_BYTES, end):
                if _key_decoder.decode(key)[0] == GAUGE:
                    buffer[values : values + 8 * count] = bytes(8 * count)
                    reset += 1
            return reset
        finally:
            buffer.close()


# ---------------------------------------------------------------------------
# Children that write through to the slot


class SlotCounterChild(CounterChild):
    __slots__ = ("_slot", "_offset")

    def inc(self, amount: int | float = 1, exemplar=None) -> None:
        CounterChild.inc(self, amount, exemplar)
        _pack_value(self._slot.buffer, self._offset, self.value)


class SlotGaugeChild(GaugeChild):
    __slots__ = ("_slot", "_offset")

    def set(self, value: int | float) -> None:
        GaugeChild.set(self, value)
        _pack_value(self._slot.buffer, self._offset, self._value)

    def inc(self, amount: int | float = 1) -> None:
        GaugeChild.inc(self, amount)
        _pack_value(self._slot.buffer, self._offset, self._value)

    def dec(self, amount: int | float = 1) -> None:
        GaugeChild.dec(self, amount)
        _pack_value(self._slot.buffer, self._offset, self._value)


class SlotHistogramChild(HistogramChild):
    __slots__ = ("_slot", "_offset", "_layout")

    def observe(self, value: float, count: int = 1, exemplar=None) -> None:
        HistogramChild.observe(self, value, count, exemplar)
        self._layout.pack_into(self._slot.buffer, self._offset, *self._counts, self.sum)


# ---------------------------------------------------------------------------
# The registry


class SlotRegistry(Registry):
    """A ``Registry`` whose families write to this worker's slot and whose scrape adds up all slots.

    ``totals`` maps a gauge family's name to a function that returns its value
    for the whole service, such as the resident memory of all workers. Such a
    gauge is exposed with that value instead of a sum over slots.
    """

    def __init__(
        self,
        directory: Path,
        index: int,
        *,
        process_metrics: bool = True,
        totals: dict[str, Callable[[], float]] | None = None,
    ) -> None:
        self.directory = directory
        self.index = index
        self.slot = SlotWriter(slot_path(directory, index))
        self.reader = SlotReader(directory)
        self.totals = dict(totals or {})
        self._mirrored: dict[int, str] = {}
        super().__init__(process_metrics=process_metrics)
        logger.info(
            "metrics slot opened",
            extra={"slot": index, "path": str(self.slot.path), "takeovers": self.slot.takeovers,
                   "series_found": len(self.slot.existing)},
        )

    def register(self, collector) -> None:
        super().register(collector)
        if isinstance(collector, Counter):
            self._mirror(collector, COUNTER)
        elif isinstance(collector, Histogram):
            self._mirror(collector, HISTOGRAM)
        elif isinstance(collector, Gauge):
            self._mirror(collector, GAUGE)

    def _mirror(self, family, kind: str) -> None:
        """Make every child of ``family``, present and future, write through to the slot."""
        self._mirrored[id(family)] = kind
        make_child = self._child_factory(family, kind)

        def add_child(values: tuple[Any, ...]):
            key = family._key(values)
            child = family._children.get(key)
            if child is None:
                child = family._children[key] = make_child(key, None)
            return child

        family._add_child = add_child
        for key, child in list(family._children.items()):
            mirrored = make_child(key, child)
            family._children[key] = mirrored
            if family._default is child:
                family._default = mirrored
        # Take over the series an earlier owner of this slot recorded.
        for series_key in list(self.slot.existing):
            found_kind, name, labels = _key_decoder.decode(series_key)
            if found_kind == kind and name == family.name and labels and labels not in family._children:
                family._children[labels] = make_child(labels, None)

    def _child_factory(self, family, kind: str):
        slot = self.slot

        def make_child(key: tuple[str, ...], previous):
            series_key = _series_key(kind, family.name, key)
            if kind == HISTOGRAM:
                bounds = len(family.upper_bounds)
                offset, found = slot.allocate(series_key, bounds + 1)
                child = SlotHistogramChild(family)
                child._layout = struct.Struct(f"={bounds + 1}d")
                if previous is not None:
                    child._counts = list(previous._counts)
                    child.sum = previous.sum
                if found is not None:
                    child._counts = [count + int(stored) for count, stored in zip(child._counts, found)]
                    child.sum += found[-1]
                child._slot, child._offset = slot, offset
                child._layout.pack_into(slot.buffer, offset, *child._counts, child.sum)
                return child
            offset, found = slot.allocate(series_key, 1)
            if kind == COUNTER:
                child = SlotCounterChild(family)
                if previous is not None:
                    child.value = previous.value
                    child.exemplar = previous.exemplar
                if found is not None:
                    stored = found[0]
                    child.value += int(stored) if stored.is_integer() else stored
                child._slot, child._offset = slot, offset
                _pack_value(slot.buffer, offset, child.value)
                return child
            child = SlotGaugeChild(family)
            if previous is not None:
                child._value = previous._value
                child._function = previous._function
            child._slot, child._offset = slot, offset
            # A gauge describes the live process, so an earlier owner's value is dropped.
            _pack_value(slot.buffer, offset, child._value)
            return child

        return make_child

    def collect(self):
        totals = self.reader.totals()
        for collector in list(self._collectors):
            kind = self._mirrored.get(id(collector))
            if kind is None:
                for item in collector.collect():
                    if isinstance(item, _Family):
                        yield from item.collect()
                    else:
                        yield item
                continue
            yield self._aggregate(collector, kind, totals)

    def _aggregate(self, family, kind: str, totals):
        labelnames = family.labelnames
        series = sorted(
            (labels, values) for (found_kind, name, labels), values in totals.items()
            if found_kind == kind and name == family.name
        )
        if kind == COUNTER:
            metric = CounterMetricFamily(family.name, family.documentation, labels=labelnames, unit=family.unit)
            for labels, values in series:
                own = family._children.get(labels)
                value = values[0]
                metric.add_metric(labels, int(value) if value.is_integer() else value,
                                  exemplar=getattr(own, "exemplar", None))
            return metric
        if kind == HISTOGRAM:
            metric = HistogramMetricFamily(family.name, family.documentation, labels=labelnames, unit=family.unit)
            for labels, values in series:
                cumulative = 0
                buckets = []
                for bound_label, count in zip(family._bound_labels, values[:-1]):
                    cumulative += int(count)
                    buckets.append((bound_label, cumulative))
                metric.add_metric(labels, buckets, values[-1])
            return metric
        metric = GaugeMetricFamily(family.name, family.documentation, labels=labelnames, unit=family.unit)
        total = self.totals.get(family.name)
        if total is not None:
            metric.add_metric((), total())
            return metric
        for labels, values in series:
            own = family._children.get(labels)
            if own is not None and own._function is not None:
                metric.add_metric(labels, own.value)
            else:
                metric.add_metric(labels, values[0])
        return metric

    def close(self) -> None:
        self.slot.close()


def process_tree_rss(root_pid: int) -> int:
    """Return the resident memory of a process and all its descendants, in bytes."""
    root = psutil.Process(root_pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total
