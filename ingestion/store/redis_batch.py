"""One batch against Redis: what to read first, the engine's view, what to write.

``ReadPlan`` lists what attributing a batch can look at: the duplicate-filter
entries of its event ids, the touch indexes its installs search (click id,
device identifiers, fingerprint, each limited to the install's window), and
the first installs of the device identifiers of its installs, sessions and
in-app events. ``BatchView`` is the engine's ``AppView`` over that snapshot
plus what the batch itself adds, and it collects the writes for the commit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from ingestion.engine import fingerprint_of
from ingestion.events import Event, device_keys
from ingestion.model import AppSettings, Record, Touch
from ingestion.store import redis_codec as codec
from ingestion.store.redis_keys import CLICK_FINGERPRINT, CLICK_ID, DEVICE, lookup_digest

HOUR = 3600
# A commit drops stale entries from the index keys of one touch in this many.
PRUNE_EVERY = 8
OTHER_NETWORK = "_other"


@dataclass(frozen=True)
class DedupBuckets:
    """The duplicate filter's hashes a batch received at ``now`` reads and writes.

    Event ids go to one hash per receipt-time bucket of ``width`` seconds, a
    seventh of the horizon but at least an hour, so a batch checks about eight
    hashes. A hash expires ``horizon`` seconds after its bucket ends, so an id
    is remembered for between ``horizon`` and ``horizon + width`` seconds.
    """

    live: list[str]
    current: str
    # Seconds from ``now`` until the current bucket's hash expires.
    ttl: int

    @classmethod
    def at(cls, now: float, horizon: int) -> DedupBuckets:
        width = max(HOUR, math.ceil(horizon / 7))
        first = math.floor((now - horizon) / width)
        last = math.floor(now / width)
        return cls(
            live=[f"{width}:{bucket}" for bucket in range(first, last + 1)],
            current=f"{width}:{last}",
            ttl=math.ceil((last + 1) * width + horizon - now),
        )


@dataclass(frozen=True)
class Horizons:
    """Seconds an entry is kept past its event time: its window plus the late-arrival allowance."""

    click: int
    impression: int
    install: int

    @property
    def device(self) -> int:
        return max(self.click, self.impression)

    @classmethod
    def of(cls, app: AppSettings, late_arrival_s: int) -> Horizons:
        return cls(
            click=max(app.click_window_s, app.fingerprint_window_s) + late_arrival_s,
            impression=app.impression_window_s + late_arrival_s,
            install=app.reinstall_window_s + late_arrival_s,
        )


class Digests(dict):
    """Lookup digests computed once per batch."""

    def __missing__(self, value: str) -> str:
        digest = self[value] = lookup_digest(value)
        return digest


class ReadPlan:
    """Keys and time ranges that attributing ``events`` may read, as the read script's request."""

    def __init__(self, app: AppSettings, events: list[Event], digests: Digests) -> None:
        self.event_ids = list(dict.fromkeys(event.event_id for event in events))
        # index suffix -> [earliest, latest] event time the batch's installs search
        self.ranges: dict[str, list[float]] = {}
        self.installs: dict[str, None] = {}
        for event in events:
            event_type = event.event_type
            if event_type == "install":
                self._plan_install(app, event, digests)
            elif event_type == "session" or event_type == "in_app":
                for key in device_keys(event):
                    self.installs[digests[key]] = None
        self.suffixes = list(self.ranges)
        self.install_digests = list(self.installs)

    def _search(self, suffix: str, earliest: float, latest: float) -> None:
        span = self.ranges.get(suffix)
        if span is None:
            self.ranges[suffix] = [earliest, latest]
        else:
            span[0] = min(span[0], earliest)
            span[1] = max(span[1], latest)

    def _plan_install(self, app: AppSettings, event: Event, digests: Digests) -> None:
        time = event.event_time
        if event.referrer_click_id:
            self._search(f"{CLICK_ID}:{digests[event.referrer_click_id]}", time - app.click_window_s, time)
        for key in device_keys(event):
            digest = digests[key]
            self._search(f"{DEVICE}:{digest}", time - max(app.click_window_s, app.impression_window_s), time)
            self.installs[digest] = None
        fingerprint = fingerprint_of(event)
        if fingerprint is not None and (event.platform != "ios" or event.att_status == "authorized"):
            self._search(f"{CLICK_FINGERPRINT}:{digests[fingerprint]}", time - app.fingerprint_window_s, time)

    def queries(self) -> list[list]:
        return [[suffix, *self.ranges[suffix]] for suffix in self.suffixes]

    def request(self, reserve: int, limit: int, dedup: DedupBuckets) -> bytes:
        return codec.encode([reserve, self.event_ids, self.queries(), self.install_digests, limit, dedup.live])


class Snapshot(msgspec.Struct):
    """The read script's reply."""

    sequence: int
    seen: list[int]
    touches: list[list[bytes]]
    installs: list[bytes | None]
    digest: bytes
    commits: int
    # The app's watermark as stored (a decimal string), empty before its first batch.
    watermark: bytes = b""


class BatchView:
    """The engine's ``AppView`` over a snapshot, collecting the batch's writes."""

    def __init__(self, app: AppSettings, plan: ReadPlan, snapshot: Snapshot, digests: Digests, horizons: Horizons) -> None:
        self.app = app
        self.click_horizon = horizons.click
        self.impression_horizon = horizons.impression
        self.install_horizon = horizons.install
        self.plan = plan
        self.digests = digests
        self.sequence = snapshot.sequence
        self.stored_seen = {event_id for event_id, flag in zip(plan.event_ids, snapshot.seen) if flag}
        self.batch_seen: set[str] = set()
        self.stored_touches: dict[str, list[Touch]] = {
            suffix: [codec.decode_touch(body) for body in bodies]
            for suffix, bodies in zip(plan.suffixes, snapshot.touches)
        }
        self.stored_installs: dict[str, Record | None] = {
            digest: None if body is None else codec.decode_record(body, app.app_id)
            for digest, body in zip(plan.install_digests, snapshot.installs)
        }
        self.added_touches: dict[str, list[Touch]] = {}
        self.added_installs: dict[str, Record] = {}
        # Writes for the commit.
        self.claims: list[str] = []
        self.touches: list[Touch] = []
        self.records: list[Record] = []
        self.revenue: list[tuple[str | None, str | None, str, Decimal]] = []
        self.watermark = float(snapshot.watermark) if snapshot.watermark else 0.0

    # AppView ------------------------------------------------------------

    def mark_seen(self, event_ids: list[str], now: float) -> list[bool]:
        flags = []
        for event_id in event_ids:
            if event_id in self.stored_seen or event_id in self.batch_seen:
                flags.append(True)
            else:
                self.batch_seen.add(event_id)
                self.claims.append(event_id)
                flags.append(False)
        return flags

    def next_seq(self) -> int:
        self.sequence += 1
        return self.sequence

    def observe_event_time(self, event_time: float) -> None:
        if event_time > self.watermark:
            self.watermark = event_time

    def add_touch(self, touch: Touch) -> None:
        for suffix in self._suffixes_of(touch):
            self.added_touches.setdefault(suffix, []).append(touch)
        self.touches.append(touch)

    def clicks_by_click_id(self, click_id: str) -> Iterable[Touch]:
        return self._candidates(f"{CLICK_ID}:{self.digests[click_id]}")

    def clicks_by_device(self, keys: tuple[str, ...]) -> Iterable[Touch]:
        return [touch for touch in self._union(DEVICE, keys) if touch.is_click]

    def clicks_by_fingerprint(self, fingerprint: str) -> Iterable[Touch]:
        return self._candidates(f"{CLICK_FINGERPRINT}:{self.digests[fingerprint]}")

    def impressions_by_device(self, keys: tuple[str, ...]) -> Iterable[Touch]:
        return [touch for touch in self._union(DEVICE, keys) if not touch.is_click]

    def first_install(self, keys: tuple[str, ...], floor: float = -math.inf) -> Record | None:
        found = None
        for key in keys:
            digest = self.digests[key]
            record = self.added_installs.get(digest)
            if record is None:
                if digest not in self.stored_installs:
                    raise RuntimeError(f"install of device key digest {digest} was not read before attribution")
                record = self.stored_installs[digest]
            if (record is not None and record.install_time >= floor
                    and (found is None or record.install_time < found.install_time)):
                found = record
        return found

    def add_install(self, keys: tuple[str, ...], record: Record) -> None:
        for key in keys:
            self.added_installs[self.digests[key]] = record

    def add_record(self, record: Record) -> None:
        self.records.append(record)

    def add_revenue(self, network: str | None, campaign: str | None, currency: str, amount: Decimal) -> None:
        self.revenue.append((network, campaign, currency, amount))

    # Helpers ------------------------------------------------------------

    def _suffixes_of(self, touch: Touch) -> list[str]:
        digests = self.digests
        if not touch.is_click:
            return [f"{DEVICE}:{digests[key]}" for key in touch.device_keys]
        suffixes = [f"{DEVICE}:{digests[key]}" for key in touch.device_keys]
        if touch.click_id is not None:
            suffixes.append(f"{CLICK_ID}:{digests[touch.click_id]}")
        if touch.fingerprint is not None:
            suffixes.append(f"{CLICK_FINGERPRINT}:{digests[touch.fingerprint]}")
        return suffixes

    def _candidates(self, suffix: str) -> list[Touch]:
        stored = self.stored_touches.get(suffix)
        if stored is None:
            raise RuntimeError(f"touch index {suffix} was not read before attribution")
        added = self.added_touches.get(suffix)
        return stored + added if added else stored

    def _union(self, kind: str, keys: tuple[str, ...]) -> Iterable[Touch]:
        if len(keys) == 1:
            return self._candidates(f"{kind}:{self.digests[keys[0]]}")
        found: dict[int, Touch] = {}
        for key in keys:
            for touch in self._candidates(f"{kind}:{self.digests[key]}"):
                found[touch.seq] = touch
        return found.values()

    # Commit -------------------------------------------------------------

    def commit_arguments(
        self,
        *,
        token: str,
        snapshot: Snapshot,
        limit: int,
        horizons: Horizons,
        dedup: DedupBuckets,
        now: float,
        record_retention: int,
        max_revenue_lines: int,
    ) -> list[bytes]:
        """Return ARGV of the commit script: the request, then the bodies it refers to."""
        bodies: list[bytes] = []

        def body_index(body: bytes) -> int:
            bodies.append(body)
            return len(bodies) + 1  # ARGV[1] is the request, so bodies start at ARGV[2]

        touches = []
        for touch in self.touches:
            horizon = horizons.click if touch.is_click else horizons.impression
            bucket = int((touch.time + horizon) // HOUR) + 1
            # A device key contains clicks and impressions, so it keeps both kinds' horizon.
            indexes = [
                [suffix, horizons.device if suffix[0] == DEVICE else horizon] for suffix in self._suffixes_of(touch)
            ]
            touches.append([
                str(bucket), str(touch.seq), body_index(codec.encode_touch(touch)), horizon, touch.time,
                touch.seq % PRUNE_EVERY == 0, indexes,
            ])
        installs = [
            [digest, body_index(codec.encode_record(record)), horizons.install]
            for digest, record in self.added_installs.items()
        ]
        records = [[record.install_event_id, body_index(codec.encode_record(record))] for record in self.records]
        revenue = []
        for network, campaign, currency, amount in self.revenue:
            line = [_revenue_line(network, campaign, currency), _revenue_line(OTHER_NETWORK, None, currency)]
            for exponent, coefficient in codec.split_amount(amount):
                line += [exponent, str(coefficient)]
            revenue.append(line)
        request = codec.encode([
            token, [dedup.live, dedup.current, dedup.ttl], self.claims, snapshot.digest.decode(),
            self.plan.queries(), self.plan.install_digests, limit,
            touches, installs, records, revenue,
            self.watermark, math.floor(now * 1000), record_retention, max_revenue_lines, snapshot.commits,
        ])
        return [request, *bodies]


def _revenue_line(network: str | None, campaign: str | None, currency: str) -> str:
    # JSON, not MessagePack: the line is a hash field that Lua joins with text.
    return json.dumps([network, campaign, currency], separators=(",", ":"))
