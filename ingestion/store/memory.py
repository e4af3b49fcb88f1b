"""The embedded store: everything in this process, saved under ``--data-dir``.

State lives in dictionaries. Every batch is appended to a journal before it
is applied and before its response is sent. A graceful stop writes a snapshot.
A journal segment past ``journal_max_bytes`` starts a compaction: a new segment
takes the next batches, and a snapshot of the state at the switch replaces the
older segments. The state is captured while batches wait, either by copying
references to it, which this process then encodes between batches (see
``snapshot``), or by forking a child that encodes it (see ``forking``). A start loads the
snapshot and replays the segments it does not include through the same engine,
so a restarted service attributes as if it had never stopped.

Memory is bounded three ways:

* touches expire once the app's newest event time has passed their window
  plus ``late_arrival_s``; installs expire the same way after the reinstall
  window; event times, not the wall clock, drive this so a replay of old logs
  behaves like live traffic;
* the duplicate filter forgets an event id ``dedup_horizon_s`` seconds after
  it was received;
* each kind has a maximum entry count across all apps; past it the oldest
  entries are evicted and counted. An evicted touch or install leaves its
  expiry bucket at a later sweep (see ``expiry``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from collections import deque
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from itertools import repeat
from operator import attrgetter
from pathlib import Path

import msgspec

from exporters.tracing import child_span
from ingestion.engine import Outcome, attribute_batch
from ingestion.events import Event
from ingestion.model import AppSettings, InstallEntry, Record, StoredApp, Touch, TouchEntry
from ingestion.store.aged import AgedDict
from ingestion.store.chunked import ChunkedQueue, filter_in_steps
from ingestion.store.base import RecordQuery, RevenueLine, Store, StoreUnavailable
from ingestion.store.forking import ForkedCall, fork_call, fork_supported, memory_headroom_bytes, resident_bytes
from ingestion.store.expiry import ExpiryBuckets
from ingestion.store.journal import Journal, JournalError, read_frames
from ingestion.store.record_log import RecordLog
from ingestion.store.segments import delete_segments_through, list_segments, segment_path
from ingestion.store.shards import SHARD_MASK, SHARD_SHIFT, SHARDS, new_shards, shard_of, total_keys
from ingestion.store.snapshot import (
    YIELD_RATIO,
    Capture,
    CapturedApp,
    Snapshot,
    read_snapshot,
    write_atomically,
    write_atomically_between_requests,
)

logger = logging.getLogger(__name__)

HOUR = 3600
OTHER_LABEL = "_other"
MAX_REVENUE_LINES_PER_APP = 10_000
# Records a listing reads between two turns of the event loop.
LIST_SCAN_STEP = 50_000


@dataclass(frozen=True)
class MemoryLimits:
    """Bounds of the embedded store; counts are totals across all apps."""

    # A click costs about 730 bytes, an install with its record 660 and an id
    # alone 160, with 30-character ids and 60-character user agents
    # (`python -m loadtest.bench_memory`). So the defaults come to about
    # 2.3 GiB, under the 7 GB alert; longer ids and user agents cost more.
    max_touches: int = 2_000_000
    max_installs: int = 1_000_000
    max_records: int = 1_000_000
    max_dedup_entries: int = 5_000_000
    dedup_horizon_s: float = 7 * 86400
    late_arrival_s: float = 86400


# Distinct label strings each app shares between its touches. Past this many, new values are
# stored as sent: a client that sends random campaign names costs memory, never growth of the pool.
MAX_SHARED_LABELS = 10_000

# An index entry is the touch itself while its key has one, a tuple up to this many touches, and
# a list beyond. A single touch needs no container. A one-touch tuple is one more object for the
# collector to track per indexed key. At a full store, each young-generation collection traversed
# about 116,000 new tuples with them (26 ms on average) and 76,000 without (19 ms), in
# `python -m loadtest.bench_stalls`. The collector stops tracking a tuple of
# gc=False touches at its first collection, whereas it scans every list each time. Past this
# size, appending to a tuple would copy too much.
MAX_TUPLE_ENTRY = 16
TouchIndex = dict[str, "Touch | tuple[Touch, ...] | list[Touch]"]
# A touch index spread over SHARDS dicts by key hash (see shards).
ShardedIndex = list[TouchIndex]


def _index_add(index: dict, key, item) -> None:
    items = index.get(key)
    if items is None:
        index[key] = item
    elif type(items) is Touch:
        index[key] = (items, item)
    elif type(items) is tuple:
        index[key] = items + (item,) if len(items) < MAX_TUPLE_ENTRY else [*items, item]
    else:
        items.append(item)


def _remove_from_index(index: dict, key, item) -> None:
    items = index.get(key)
    if items is None:
        return
    if items is item:
        del index[key]
        return
    if type(items) is tuple:
        remaining = tuple(candidate for candidate in items if candidate is not item)
        if len(remaining) > 1:
            index[key] = remaining
        elif remaining:
            index[key] = remaining[0]
        else:
            del index[key]
        return
    if type(items) is Touch:
        # Another touch has the key, so this one is not indexed under it.
        return
    for position, candidate in enumerate(items):
        if candidate is item:
            del items[position]
            break
    if not items:
        del index[key]


_touch_alive = attrgetter("alive")
_entry_alive = attrgetter("touch.alive")
_entry_seq = attrgetter("touch.seq")
# Touches, and installs, that one batch removes by expiry at most. An hour's bucket can hold
# tens of thousands of live touches, whose removal took 122 ms in one batch in
# `python -m loadtest.bench_stalls --hours-per-batch 0.02`.
EXPIRY_STEP = 5_000
# Touch queue entries read per batch while the queue is filtered of dead entries.
ORDER_FILTER_STEP = 50_000
# No filtering of a touch queue shorter than twice this, so small stores never filter it.
ORDER_FILTER_MIN = 1024


def _drop_dead_head(order: ChunkedQueue) -> None:
    """Take the entries of expired or evicted touches from the front of a touch queue."""
    while order and not order.first().touch.alive:
        order.popleft()


def _index_get(index: TouchIndex, key) -> "tuple[Touch, ...] | list[Touch]":
    """Return the touches of ``key`` in ``index``, oldest first."""
    items = index.get(key, ())
    return (items,) if type(items) is Touch else items


class AppState:
    """One app's touches, installs, records and revenue; the engine's view."""

    def __init__(self, store: "MemoryStore", app_id: str, code: int) -> None:
        self.store = store
        self.app_id = app_id
        self.code = code
        store.states_by_code[code] = self
        self.watermark = 0.0
        # Shared label strings, see add_touch.
        self.labels: dict[str, str] = {}
        # The indexes and the install table are spread over dicts by key hash (see shards).
        self.by_click_id: ShardedIndex = new_shards()
        self.clicks_by_device_key: ShardedIndex = new_shards()
        self.clicks_by_fingerprint_key: ShardedIndex = new_shards()
        self.impressions_by_device_key: ShardedIndex = new_shards()
        self.touch_expiry: ExpiryBuckets[Touch] = ExpiryBuckets(_touch_alive)
        self.installs: list[dict[str, Record]] = new_shards()
        # The duplicate filter's ids of this app, spread over sets by hash (see shards). With
        # one set of 5,000,000 ids a full store stalled batches for 0.78 s about once a minute.
        self.seen: list[set[str]] = [set() for _ in range(SHARDS)]
        self.install_expiry: ExpiryBuckets[InstallEntry] = ExpiryBuckets(self._install_indexed)
        self.records: AgedDict[str, Record] = AgedDict()
        self.record_log = RecordLog()
        self.revenue: dict[tuple[str | None, str | None, str], list] = {}
        self._settings: AppSettings | None = None
        self.click_horizon = 0.0
        self.impression_horizon = 0.0
        self.install_horizon = 0.0

    @property
    def settings(self) -> AppSettings | None:
        return self._settings

    @settings.setter
    def settings(self, settings: AppSettings) -> None:
        # Seconds a touch is kept after its event time: its longest window plus the late-arrival allowance.
        self._settings = settings
        late = self.store.limits.late_arrival_s
        self.click_horizon = max(settings.click_window_s, settings.fingerprint_window_s) + late
        self.impression_horizon = settings.impression_window_s + late
        self.install_horizon = settings.reinstall_window_s + late

    # AppView ------------------------------------------------------------

    def mark_seen(self, event_ids: list[str], now: float) -> list[bool]:
        # Keyed by the decoded id, which a stored touch or record shares. A key of the app's code
        # and the id would be one more string per id (81 bytes for an id of 30 ASCII characters).
        shards = self.seen
        flags = []
        added = []
        for event_id in event_ids:
            shard = shards[(hash(event_id) >> SHARD_SHIFT) & SHARD_MASK]
            if event_id in shard:
                flags.append(True)
            else:
                shard.add(event_id)
                added.append(event_id)
                flags.append(False)
        store = self.store
        store.seen_order.tail.extend(added)
        store.seen_codes.tail.extend(repeat(self.code, len(added)))
        store.seen_times.tail.extend(repeat(now, len(added)))
        return flags

    def next_seq(self) -> int:
        self.store.seq += 1
        return self.store.seq

    def observe_event_time(self, event_time: float) -> None:
        if event_time > self.watermark:
            self.watermark = event_time

    def add_touch(self, touch: Touch) -> None:
        # Share one string per distinct network, campaign, ad group and creative. Each decoded
        # batch brings new copies of the same few values, which stored touches would keep.
        labels = self.labels
        if len(labels) < MAX_SHARED_LABELS:
            touch.network = labels.setdefault(touch.network, touch.network)
            if touch.campaign is not None:
                touch.campaign = labels.setdefault(touch.campaign, touch.campaign)
            if touch.adgroup is not None:
                touch.adgroup = labels.setdefault(touch.adgroup, touch.adgroup)
            if touch.creative is not None:
                touch.creative = labels.setdefault(touch.creative, touch.creative)
        if touch.is_click:
            if (click_id := touch.click_id) is not None:
                _index_add(self.by_click_id[(hash(click_id) >> SHARD_SHIFT) & SHARD_MASK], click_id, touch)
            shards = self.clicks_by_device_key
            for key in touch.device_keys:
                _index_add(shards[(hash(key) >> SHARD_SHIFT) & SHARD_MASK], key, touch)
            if (fingerprint := touch.fingerprint) is not None:
                _index_add(self.clicks_by_fingerprint_key[(hash(fingerprint) >> SHARD_SHIFT) & SHARD_MASK], fingerprint, touch)
            bucket = int((touch.time + self.click_horizon) // HOUR) + 1
        else:
            shards = self.impressions_by_device_key
            for key in touch.device_keys:
                _index_add(shards[(hash(key) >> SHARD_SHIFT) & SHARD_MASK], key, touch)
            bucket = int((touch.time + self.impression_horizon) // HOUR) + 1
        self.touch_expiry.add(bucket, touch)
        store = self.store
        store.touch_order.tail.append(TouchEntry(self.code, touch))
        store.live_touches += 1

    def clicks_by_click_id(self, click_id: str) -> Iterable[Touch]:
        return _index_get(self.by_click_id[(hash(click_id) >> SHARD_SHIFT) & SHARD_MASK], click_id)

    def clicks_by_device(self, keys: tuple[str, ...]) -> Iterable[Touch]:
        return self._union(self.clicks_by_device_key, keys)

    def clicks_by_fingerprint(self, fingerprint: str) -> Iterable[Touch]:
        return _index_get(self.clicks_by_fingerprint_key[(hash(fingerprint) >> SHARD_SHIFT) & SHARD_MASK], fingerprint)

    def impressions_by_device(self, keys: tuple[str, ...]) -> Iterable[Touch]:
        return self._union(self.impressions_by_device_key, keys)

    def first_install(self, keys: tuple[str, ...], floor: float = -math.inf) -> Record | None:
        found = None
        installs = self.installs
        for key in keys:
            record = installs[(hash(key) >> SHARD_SHIFT) & SHARD_MASK].get(key)
            if (record is not None and record.install_time >= floor
                    and (found is None or record.install_time < found.install_time)):
                found = record
        return found

    def add_install(self, keys: tuple[str, ...], record: Record) -> None:
        installs = self.installs
        capture = self.store.open_capture
        if capture is not None and capture.unindexed is not None:
            for key in keys:
                previous = installs[(hash(key) >> SHARD_SHIFT) & SHARD_MASK].get(key)
                if previous is not None and capture.install_frontier <= previous.seq <= capture.seq:
                    capture.unindexed.append((key, previous))
        for key in keys:
            installs[(hash(key) >> SHARD_SHIFT) & SHARD_MASK][key] = record
        bucket = int((record.install_time + self.install_horizon) // HOUR) + 1
        entry = InstallEntry(self.code, keys, record)
        self.install_expiry.add(bucket, entry)
        self.store.install_order.tail.append(entry)

    def add_record(self, record: Record) -> None:
        self.records[record.install_event_id] = record
        self.record_log.append(record)
        self.store.record_order.append(self)

    def add_revenue(self, network: str | None, campaign: str | None, currency: str, amount: Decimal) -> None:
        key = (network, campaign, currency)
        line = self.revenue.get(key)
        if line is None:
            if len(self.revenue) >= MAX_REVENUE_LINES_PER_APP:
                key = (OTHER_LABEL, None, currency)
                line = self.revenue.get(key)
            if line is None:
                line = self.revenue[key] = [Decimal(0), 0]
        line[0] += amount
        line[1] += 1

    # Helpers ------------------------------------------------------------

    @staticmethod
    def _union(shards: ShardedIndex, keys: tuple[str, ...]) -> Iterable[Touch]:
        if len(keys) == 1:
            key = keys[0]
            return _index_get(shards[(hash(key) >> SHARD_SHIFT) & SHARD_MASK], key)
        found: dict[int, Touch] = {}
        for key in keys:
            for touch in _index_get(shards[(hash(key) >> SHARD_SHIFT) & SHARD_MASK], key):
                found[touch.seq] = touch
        return found.values()

    def remove_touch(self, touch: Touch) -> None:
        touch.alive = False
        capture = self.store.open_capture
        if capture is not None and capture.killed is not None and capture.touch_frontier <= touch.seq <= capture.seq:
            capture.killed.append(touch)
        if touch.is_click:
            if (click_id := touch.click_id) is not None:
                _remove_from_index(self.by_click_id[(hash(click_id) >> SHARD_SHIFT) & SHARD_MASK], click_id, touch)
            shards = self.clicks_by_device_key
            for key in touch.device_keys:
                _remove_from_index(shards[(hash(key) >> SHARD_SHIFT) & SHARD_MASK], key, touch)
            if (fingerprint := touch.fingerprint) is not None:
                _remove_from_index(self.clicks_by_fingerprint_key[(hash(fingerprint) >> SHARD_SHIFT) & SHARD_MASK], fingerprint, touch)
        else:
            shards = self.impressions_by_device_key
            for key in touch.device_keys:
                _remove_from_index(shards[(hash(key) >> SHARD_SHIFT) & SHARD_MASK], key, touch)
        self.store.live_touches -= 1

    def remove_install(self, keys: tuple[str, ...], record: Record) -> bool:
        capture = self.store.open_capture
        unindexed = None
        if capture is not None and capture.install_frontier <= record.seq <= capture.seq:
            unindexed = capture.unindexed
        removed = False
        installs = self.installs
        for key in keys:
            shard = installs[(hash(key) >> SHARD_SHIFT) & SHARD_MASK]
            if shard.get(key) is record:
                del shard[key]
                removed = True
                if unindexed is not None:
                    unindexed.append((key, record))
        return removed

    def expire(self) -> tuple[int, int]:
        """Drop touches and installs whose windows the watermark has passed, up to EXPIRY_STEP of each.

        The rest wait for the next batches, in the same order after a restart. Until they are
        removed they can still match an install that arrives more than ``late_arrival_s`` after
        the watermark passed them, as they could before their hour came.
        """
        current = int(self.watermark // HOUR)
        touches = 0
        for touch in self.touch_expiry.pop_due(current):
            if touch.alive:
                self.remove_touch(touch)
                touches += 1
                if touches == EXPIRY_STEP:
                    break
        installs = 0
        for entry in self.install_expiry.pop_due(current):
            if self.remove_install(entry.keys, entry.record):
                installs += 1
                if installs == EXPIRY_STEP:
                    break
        return touches, installs

    def _install_indexed(self, entry: InstallEntry) -> bool:
        """Return whether the install index still maps one of the entry's keys to its record."""
        installs = self.installs
        record = entry.record
        for key in entry.keys:
            if installs[(hash(key) >> SHARD_SHIFT) & SHARD_MASK].get(key) is record:
                return True
        return False

    def evict_oldest_record(self) -> None:
        # An open capture reads the record log in place (see record_log).
        record = self.record_log.evict_oldest(pinned=self.store.open_capture is not None)
        self.records.discard(record.install_event_id, record)

    def live_records(self) -> list[Record]:
        return self.record_log.live()


class JournalEntry(msgspec.Struct, array_like=True):
    app_id: str
    now: float
    events: list[Event]
    # The app's settings when the batch was applied, so a replay after a PATCH
    # attributes as the service did; None in journals written before this field.
    settings: AppSettings | None = None


class AppsFile(msgspec.Struct):
    apps: list[StoredApp]


class MemoryStore(Store):
    """All state in this process, persisted in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        limits: MemoryLimits | None = None,
        fsync_interval: float = 1.0,
        journal_max_bytes: int = 512 * 1024 * 1024,
        fork_snapshots: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.journal_max_bytes = journal_max_bytes
        # With fork, a child process writes each compaction's snapshot (see _compact).
        self.fork_snapshots = fork_snapshots and fork_supported()
        self.journal_generation = 1
        self._compaction: asyncio.Task | None = None
        # The capture whose snapshot is being written in this process, which records the touches
        # removed meanwhile; None otherwise.
        self.open_capture: Capture | None = None
        self._stopping = False
        # Bytes a failed compaction adds to journal_max_bytes before the next attempt.
        self._compaction_deferral = 0
        # Size of the last snapshot written. A segment may grow to it before a compaction, so
        # compactions write at most one snapshot byte per journal byte however large the state.
        self.snapshot_bytes = 0
        self.compaction_failures = 0
        # Seconds event requests waited at the gate for compactions, summed.
        self.compaction_pause_seconds = 0.0
        # Batches between their journal append and their application; a
        # compaction waits for none to be in flight, behind a closed gate.
        self._in_flight = 0
        self._gate = asyncio.Event()
        self._gate.set()
        self.compactions = 0
        self.limits = limits or MemoryLimits()
        self.fsync_interval = fsync_interval
        self.apps: dict[str, StoredApp] = {}
        self.apps_by_key_id: dict[str, StoredApp] = {}
        self.states: dict[str, AppState] = {}
        # The duplicate filter's ids oldest first across apps, with each one's app code and receipt
        # time in queues of the same order, for expiry and eviction. Finding a dict's first key
        # with next(iter()) scans the entries deleted before it, which made each eviction cost
        # about 100 µs once the filter was full. The queues are chunked so that a compaction's
        # capture copies chunk references, not items.
        self.seen_order = ChunkedQueue()
        self.seen_codes = ChunkedQueue()
        self.seen_times = ChunkedQueue()
        self.seq = 0
        # Touches in arrival order (TouchEntry), for evicting the oldest. Expired ones are
        # skipped when taken. Entries name their app by its code, not by its AppState.
        self.touch_order = ChunkedQueue()
        # A stepped build of touch_order without its dead entries, while one runs (see _enforce_bounds).
        self._touch_order_filter: Generator[None, None, ChunkedQueue] | None = None
        self.live_touches = 0
        self.install_order = ChunkedQueue()
        self.states_by_code: dict[int, AppState] = {}
        self.record_order: deque[AppState] = deque()
        self.evicted = {"touch": 0, "install": 0, "record": 0, "dedup": 0}
        self.expired = {"touch": 0, "install": 0, "dedup": 0}
        self.journal: Journal | None = None
        self._journal_encoder = msgspec.msgpack.Encoder()
        self._journal_decoder = msgspec.msgpack.Decoder(JournalEntry)
        self._app_codes = 0
        self._apps_lock = asyncio.Lock()

    # Paths --------------------------------------------------------------

    @property
    def apps_path(self) -> Path:
        return self.data_dir / "apps.msgpack"

    @property
    def snapshot_path(self) -> Path:
        return self.data_dir / "snapshot.msgpack"

    @property
    def journal_path(self) -> Path:
        """The journal segment that new batches go to."""
        return segment_path(self.data_dir, self.journal_generation)

    # Lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.data_dir.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(self._load)
        self.journal = Journal(self.journal_path, fsync_interval=self.fsync_interval)
        self.journal.open()

    async def stop(self) -> None:
        # No request is left to yield to, so a running snapshot finishes at full speed.
        self._stopping = True
        await self.compaction_finished()
        if self.journal is not None:
            await asyncio.to_thread(self.journal.close)
            self.journal = None
        await asyncio.to_thread(self._save_snapshot, self.journal_generation)

    async def ready(self) -> bool:
        return self.journal is not None

    def _load(self) -> None:
        started = time.monotonic()
        snapshot = None
        if self.snapshot_path.exists():
            self.snapshot_bytes = self.snapshot_path.stat().st_size
            snapshot = read_snapshot(self.snapshot_path)
            # The duplicate filter's keys start with each app's code, so every app
            # gets its saved code back, deleted apps included, before any new one is handed out.
            for saved in snapshot.apps:
                if saved.code:
                    self.states[saved.app_id] = AppState(self, saved.app_id, saved.code)
                    self._app_codes = max(self._app_codes, saved.code)
        if self.apps_path.exists():
            saved_apps = msgspec.msgpack.decode(self.apps_path.read_bytes(), type=AppsFile)
            for app in saved_apps.apps:
                self._index_app(app)
        included = -1
        if snapshot is not None:
            self._restore_snapshot(snapshot)
            included = snapshot.journal_generation
        replayed = 0
        segments = list_segments(self.data_dir)
        for generation, path in segments:
            if generation <= included:
                # A compaction's snapshot was written but the process stopped before deleting this.
                continue
            for frame in read_frames(path):
                entry = self._journal_decoder.decode(frame)
                stored = self.apps.get(entry.app_id)
                if stored is None:
                    continue
                self._apply_now(entry.settings or stored.settings, entry.events, entry.now)
                replayed += len(entry.events)
        for stored in self.apps.values():
            self.states[stored.settings.app_id].settings = stored.settings
        newest = max([included, 0, *(generation for generation, _ in segments)])
        self.journal_generation = newest + 1
        if replayed:
            # Fold the replayed segments into a snapshot so the next start is quick.
            self._save_snapshot(newest)
        elif segments:
            delete_segments_through(self.data_dir, newest)
        logger.info(
            "store loaded",
            extra={
                "apps": len(self.apps),
                "journal_events_replayed": replayed,
                "records": sum(len(state.records) for state in self.states.values()),
                "seconds": round(time.monotonic() - started, 3),
            },
        )

    def _save_snapshot(self, generation: int) -> None:
        """Write a snapshot that includes journal segments up to `generation`, then delete them."""
        self._write_snapshot(generation)
        self.snapshot_bytes = self.snapshot_path.stat().st_size
        delete_segments_through(self.data_dir, generation)
        logger.info(
            "snapshot written", extra={"path": str(self.snapshot_path), "seq": self.seq, "journal_generation": generation}
        )

    def _write_snapshot(self, generation: int) -> None:
        """Write the state as a snapshot that includes journal segments up to `generation`.

        It also runs in a forked child, so it must not log: the parent logs for it.
        """
        try:
            write_atomically(self.snapshot_path, self._capture(generation).frames())
        finally:
            # Capture.frames froze the tracked objects; give them back to the collector.
            gc.unfreeze()

    def _capture(self, generation: int) -> Capture:
        """Take references to the state as it is now, for a snapshot that includes segments up to `generation`.

        Event requests wait while it runs, so it only takes views: of the chunked queues, and
        of each app's record log, which stays pinned until the capture closes (see
        record_log). ``Capture.frames`` does the encoding later.
        """
        states = list(self.states.values())
        return Capture(
            seq=self.seq,
            journal_generation=generation,
            apps=[
                CapturedApp(
                    app_id=state.app_id,
                    code=state.code,
                    watermark=state.watermark,
                    revenue=[(n, c, cur, line[0], line[1]) for (n, c, cur), line in state.revenue.items()],
                    installs_by_key=state.installs,
                    records=state.record_log.view(),
                )
                for state in states
            ],
            app_index={state.code: position for position, state in enumerate(states)},
            seen_ids=self.seen_order.view(),
            seen_codes=self.seen_codes.view(),
            seen_times=self.seen_times.view(),
            touches=self.touch_order.view(),
            installs=self.install_order.view(),
        )

    def _restore_snapshot(self, snapshot: Snapshot) -> None:
        self.seq = snapshot.seq
        order: list[str] = []
        codes: list[int] = []
        times: list[float] = []
        states = self.states_by_code
        for code, event_id, received in snapshot.seen_entries():
            state = states.get(code)
            if state is None:
                # Only a version 1 snapshot, whose apps carry no code, can name a code that no app
                # got back. Its ids are dropped, because a later app given that code would share them.
                continue
            shard_of(state.seen, event_id).add(event_id)
            order.append(event_id)
            codes.append(code)
            times.append(received)
        self.seen_order = ChunkedQueue(order)
        self.seen_codes = ChunkedQueue(codes)
        self.seen_times = ChunkedQueue(times)
        touches: list[tuple[AppState, Touch]] = []
        installs: list[tuple[AppState, tuple[str, ...], Record]] = []
        records: list[tuple[AppState, Record]] = []
        for saved in snapshot.apps:
            state = self._state_for(saved.app_id)
            state.watermark = saved.watermark
            if state.settings is None:
                continue
            touches.extend((state, touch) for touch in saved.touches)
            installs.extend((state, keys, record) for keys, record in saved.installs)
            records.extend((state, record) for record in saved.records)
            for network, campaign, currency, amount, count in saved.revenue:
                state.revenue[(network, campaign, currency)] = [amount, count]
        # Restore in arrival order across apps, so that eviction stays oldest first and the
        # queues stay in seq order, as a capture's writer expects (see Capture.touch_frontier).
        installs.sort(key=lambda entry: entry[2].seq)
        for state, keys, record in installs:
            state.add_install(keys, record)
        records.sort(key=lambda pair: pair[1].seq)
        for state, record in records:
            state.add_record(record)
        touches.sort(key=lambda pair: pair[1].seq)
        for state, touch in touches:
            state.add_touch(touch)

    # Apps ---------------------------------------------------------------

    def _index_app(self, app: StoredApp) -> None:
        previous = self.apps.get(app.settings.app_id)
        if previous is not None:
            self.apps_by_key_id.pop(previous.key_id, None)
        self.apps[app.settings.app_id] = app
        self.apps_by_key_id[app.key_id] = app
        self._state_for(app.settings.app_id).settings = app.settings

    def _state_for(self, app_id: str) -> AppState:
        state = self.states.get(app_id)
        if state is None:
            self._app_codes += 1
            state = self.states[app_id] = AppState(self, app_id, self._app_codes)
        return state

    async def _save_apps(self) -> None:
        data = msgspec.msgpack.encode(AppsFile(apps=list(self.apps.values())))
        await asyncio.to_thread(write_atomically, self.apps_path, [data])

    async def create_app(self, app: StoredApp) -> bool:
        async with self._apps_lock:
            if app.settings.app_id in self.apps:
                return False
            self._index_app(app)
            await self._save_apps()
            return True

    async def get_app(self, app_id: str) -> StoredApp | None:
        return self.apps.get(app_id)

    async def list_apps(self) -> list[StoredApp]:
        return sorted(self.apps.values(), key=lambda app: app.settings.app_id)

    async def replace_app(self, app: StoredApp) -> None:
        async with self._apps_lock:
            self._index_app(app)
            await self._save_apps()

    async def delete_app(self, app_id: str) -> bool:
        async with self._apps_lock:
            app = self.apps.pop(app_id, None)
            if app is None:
                return False
            self.apps_by_key_id.pop(app.key_id, None)
            await self._save_apps()
            return True

    def app_by_key_id(self, key_id: str) -> StoredApp | None:
        return self.apps_by_key_id.get(key_id)

    def cached_app(self, app_id: str) -> StoredApp | None:
        return self.apps.get(app_id)

    # Events -------------------------------------------------------------

    async def apply(self, app: AppSettings, events: list[Event], now: float) -> Outcome:
        # Journal first, apply second: a failed write leaves memory untouched, so
        # the 503 that follows is safe to retry. Replaying the journal filters
        # the batch's duplicates again, so they need not be left out here. The
        # writer thread completes appends in order and each batch is applied
        # without awaiting, so memory applies batches in journal order.
        if not self._gate.is_set():
            await self._gate.wait()
        # Read after the gate: a compaction behind it may have switched to a new segment.
        journal = self.journal
        if journal is None:
            raise StoreUnavailable("the embedded store is not open")
        payload = self._journal_encoder.encode(JournalEntry(app.app_id, now, events, app))
        self._in_flight += 1
        try:
            with child_span("store", {"unmogrowp.journal.bytes": len(payload)}):
                await journal.append(payload)
            outcome = self._apply_now(app, events, now)
        except JournalError as error:
            raise StoreUnavailable(str(error)) from error
        finally:
            self._in_flight -= 1
        due = journal.bytes_written > max(self.journal_max_bytes, self.snapshot_bytes) + self._compaction_deferral
        if due and self._gate.is_set() and not self.compacting:
            await self._compact()
        return outcome

    def _snapshot_yield_ratio(self) -> float:
        return 0.0 if self._stopping else YIELD_RATIO

    @property
    def compacting(self) -> bool:
        return self._compaction is not None and not self._compaction.done()

    async def compaction_finished(self) -> None:
        """Wait until the running compaction, if any, has written its snapshot or failed."""
        if self._compaction is not None:
            await asyncio.shield(self._compaction)

    async def _compact(self) -> None:
        """Switch to a new journal segment and fold the previous ones into a snapshot.

        Batches wait at the gate until no batch is between its journal append and its
        application, and then while the segment is switched and the state is captured. This
        process captures it by copying references, or by forking the child that encodes it.
        The snapshot is encoded and written while batches go on.
        """
        self._gate.clear()
        started = time.monotonic()
        included = self.journal_generation
        previous = None
        try:
            while self._in_flight:
                await asyncio.sleep(0.001)
            previous = self._switch_segment()
            self._compaction_deferral = 0
            if self.fork_snapshots and self._fork_fits_in_memory(included):
                # The child writes the state as it is now. Batches after the gate opens go to the new segment.
                child = fork_call(partial(self._write_snapshot, included))
                self._compaction = asyncio.create_task(self._finish_compaction(child, previous, included, started))
                return
            capture = self.open_capture = self._capture(included)
            # The capture's copies of each app's install index and records contain up to millions
            # of references. While they are young, every collection of the young generations would
            # traverse them all (0.38 s for one such collection when the queues were copied too).
            # gc.freeze() moves every tracked object out of the generations in constant time, and
            # _write_captured_snapshot moves them back.
            gc.freeze()
            self._compaction = asyncio.create_task(self._write_captured_snapshot(capture, previous, included, started))
        except Exception:
            # Broad on purpose: the batch that triggered the compaction is applied and journaled,
            # so its request must not fail because the compaction did.
            self.compaction_failures += 1
            self.open_capture = None
            gc.unfreeze()
            # Retry once the current segment has grown by another journal_max_bytes, not on every batch.
            self._compaction_deferral = self.journal.bytes_written
            logger.exception(
                "journal compaction failed; the journal segments stay and are replayed on start",
                extra={"path": str(self.journal_path), "journal_generation": included},
            )
            if previous is not None:
                await asyncio.to_thread(previous.close)
        finally:
            self._gate.set()
            self.compaction_pause_seconds += time.monotonic() - started

    def _fork_fits_in_memory(self, included: int) -> bool:
        """Return whether a snapshot child could copy every page of this process and still fit.

        The child touches every object it encodes, so it may end up with a private copy of the
        whole heap, plus the encoded snapshot. Without that headroom the snapshot is written in
        this process, because an OOM kill would end the service, not only the child.
        """
        headroom = memory_headroom_bytes()
        if headroom is None:
            return True
        needed = resident_bytes() + self.snapshot_bytes
        if headroom >= needed:
            return True
        logger.warning(
            "not enough free memory for a forked snapshot; writing it in this process while event requests wait",
            extra={"headroom_bytes": headroom, "needed_bytes": needed, "journal_generation": included},
        )
        return False

    def _switch_segment(self) -> Journal:
        """Open the next journal segment for new batches and return the previous journal, still open."""
        journal = Journal(segment_path(self.data_dir, self.journal_generation + 1), fsync_interval=self.fsync_interval)
        journal.open()
        previous = self.journal
        self.journal = journal
        self.journal_generation += 1
        return previous

    async def _finish_compaction(self, child: ForkedCall, previous: Journal, included: int, started: float) -> None:
        """Close the previous segment, wait for the snapshot process, then delete the segments it includes."""
        await asyncio.to_thread(previous.close)
        error = await asyncio.to_thread(child.wait)
        if error is not None:
            self.compaction_failures += 1
            logger.error(
                "snapshot process failed; the journal segments stay and are replayed on start",
                extra={"error": error, "child_pid": child.pid, "journal_generation": included},
            )
            return
        await self._delete_included_segments(included, started, {"child_pid": child.pid})

    async def _write_captured_snapshot(self, capture: Capture, previous: Journal, included: int, started: float) -> None:
        """Close the previous segment, write the captured state, then delete the segments it includes."""
        try:
            await asyncio.to_thread(previous.close)
            await write_atomically_between_requests(self.snapshot_path, capture.frames(), self._snapshot_yield_ratio)
        except Exception:
            # Broad on purpose: encoding runs here too, and whatever fails, the segments stay.
            self.compaction_failures += 1
            logger.exception(
                "writing the snapshot failed; the journal segments stay and are replayed on start",
                extra={"path": str(self.snapshot_path), "journal_generation": included},
            )
            return
        finally:
            self.open_capture = None
            gc.unfreeze()
        await self._delete_included_segments(included, started, {})

    async def _delete_included_segments(self, included: int, started: float, ids: dict) -> None:
        try:
            self.snapshot_bytes = self.snapshot_path.stat().st_size
            await asyncio.to_thread(delete_segments_through, self.data_dir, included)
        except OSError:
            # The snapshot records which segments it includes, so a start skips them anyway.
            logger.exception("deleting compacted journal segments failed", extra={"journal_generation": included, **ids})
        self.compactions += 1
        logger.info(
            "journal compacted",
            extra={"seconds": round(time.monotonic() - started, 3), "journal_generation": included, **ids},
        )

    def _apply_now(self, app: AppSettings, events: list[Event], now: float) -> Outcome:
        state = self._state_for(app.app_id)
        state.settings = app
        # Before the batch, so an id past the horizon at this receipt time counts as new in it.
        self._forget_seen(now)
        outcome = attribute_batch(app, state, events, now)
        self._enforce_bounds(state, now)
        return outcome

    def _forget_seen(self, now: float, evict_excess: bool = False) -> None:
        """Drop the duplicate filter's ids received more than the horizon before `now`.

        With `evict_excess`, also drop the oldest ids past `max_dedup_entries`.
        """
        seen_order = self.seen_order
        seen_codes = self.seen_codes
        seen_times = self.seen_times
        horizon = now - self.limits.dedup_horizon_s
        seen_order.seal()
        seen_codes.seal()
        seen_times.seal()
        expired = 0
        while seen_times and seen_times.first() < horizon:
            seen_times.popleft()
            expired += 1
        excess = max(0, len(seen_order) - expired - self.limits.max_dedup_entries) if evict_excess else 0
        seen_times.drop(excess)
        states = self.states_by_code
        for code, event_id in zip(seen_codes.take(expired + excess), seen_order.take(expired + excess)):
            states[code].seen[(hash(event_id) >> SHARD_SHIFT) & SHARD_MASK].remove(event_id)
        self.expired["dedup"] += expired
        self.evicted["dedup"] += excess

    def _enforce_bounds(self, state: AppState, now: float) -> None:
        touches, installs = state.expire()
        self.expired["touch"] += touches
        self.expired["install"] += installs
        self._forget_seen(now, evict_excess=True)

        self.install_order.seal()
        order = self.touch_order
        order.seal()
        _drop_dead_head(order)
        if self._touch_order_filter is None and len(order) > 2 * max(self.live_touches, ORDER_FILTER_MIN):
            # Expired touches behind a long-lived one stay queued. A new queue without them is
            # built a step per batch: 4,000,000 entries took 139 ms to filter in one go.
            self._touch_order_filter = filter_in_steps(order, _entry_alive, _entry_seq, ORDER_FILTER_STEP)
        if self._touch_order_filter is not None:
            try:
                next(self._touch_order_filter)
            except StopIteration as finished:
                self.touch_order = order = finished.value
                self._touch_order_filter = None
                _drop_dead_head(order)
        # Each round takes no more entries than there are touches to evict. An entry whose touch
        # had already expired evicts nothing, so a round may leave work for the next one.
        while self.live_touches > self.limits.max_touches:
            for entry in order.take(self.live_touches - self.limits.max_touches):
                if entry.touch.alive:
                    owner = self.states_by_code[entry.code]
                    owner.remove_touch(entry.touch)
                    owner.touch_expiry.note_eviction()
                    self.evicted["touch"] += 1

        install_order = self.install_order
        for entry in install_order.take(len(install_order) - self.limits.max_installs):
            owner = self.states_by_code[entry.code]
            # Counted whether or not the index still had it: either way the entry may sit in a bucket.
            owner.install_expiry.note_eviction()
            if owner.remove_install(entry.keys, entry.record):
                self.evicted["install"] += 1
        # Evicted entries wait in their expiry buckets until a sweep drops them (see expiry).
        state.touch_expiry.sweep_step()
        state.install_expiry.sweep_step()

        while len(self.record_order) > self.limits.max_records:
            self.record_order.popleft().evict_oldest_record()
            self.evicted["record"] += 1

    # Records ------------------------------------------------------------

    async def list_records(self, query: RecordQuery) -> tuple[list[Record], int | None]:
        state = self.states.get(query.app_id)
        if state is None:
            return [], None
        log = state.record_log
        found: list[Record] = []
        after_seq = query.after_seq
        while True:
            # Positions in the log's list, read in place. They may move while the loop awaits,
            # so each step finds its start again by seq.
            items = log.items
            start = log.first_after(after_seq)
            stop = min(start + LIST_SCAN_STEP, len(items))
            for position in range(start, stop):
                record = items[position]
                if query.since is not None and record.install_time < query.since:
                    continue
                if query.until is not None and record.install_time >= query.until:
                    continue
                if query.network is not None and record.network != query.network:
                    continue
                if query.status is not None and record.status != query.status:
                    continue
                found.append(record)
                if len(found) == query.limit:
                    more = position + 1 < len(items)
                    return found, record.seq if more else None
            if stop >= len(items):
                return found, None
            after_seq = items[stop - 1].seq
            # A filter that matches few records reads the whole log: 1,000,000 records took
            # about 50 ms in one go, so event requests get the loop between steps.
            await asyncio.sleep(0)

    async def get_record(self, app_id: str, install_event_id: str) -> Record | None:
        state = self.states.get(app_id)
        return None if state is None else state.records.get(install_event_id)

    async def revenue(self, app_id: str) -> list[RevenueLine]:
        state = self.states.get(app_id)
        if state is None:
            return []
        return [
            RevenueLine(network, campaign, currency, str(line[0]), line[1])
            for (network, campaign, currency), line in state.revenue.items()
        ]

    def entry_counts(self) -> dict[str, int]:
        return {
            "touch": self.live_touches,
            "install": sum(total_keys(state.installs) for state in self.states.values()),
            "record": len(self.record_order),
            "dedup": len(self.seen_order),
        }

