"""The attribution rules, applied to one app's events in arrival order.

The engine keeps no state of its own: it reads and writes through an
``AppView`` that a store backend provides. Each install is judged against the
touches already seen, in four tiers: referrer, device-id click, fingerprint
click, device-id impression. The first tier with a candidate that passes the
click-injection checks wins. Inside a tier the latest touch wins, and ties go
to the touch that arrived last. Because the engine is deterministic,
the same events in the same order give the same records on every backend.

Touches and installs expire by event time: once the app's watermark (its latest event time)
is more than an entry's horizon (its window plus the late-arrival allowance) past the entry's
time, the entry matches nothing. The engine applies that cut itself, with the watermark as of
each event, so a result does not depend on whether the store has removed the entry yet, nor on
how the events were split into batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter
from typing import Protocol

from msgspec.structs import replace

from ingestion.events import Event, device_keys
from ingestion.model import AppSettings, Record, RejectedTouch, Touch

REASON_CTIT = "ctit_below_minimum"
REASON_AFTER_BEGIN = "click_after_install_begin"

_event_id = attrgetter("event_id")


class AppView(Protocol):
    """The engine's access to one app's state; each store backend implements it."""

    # The app's latest event time before this batch, and the seconds a click, an impression
    # and an install stay matchable past their own time.
    watermark: float
    click_horizon: float
    impression_horizon: float
    install_horizon: float

    def mark_seen(self, event_ids: list[str], now: float) -> list[bool]:
        """Return, for each id, whether it was seen before (earlier in the list too), and remember the new ones."""
        ...

    def next_seq(self) -> int: ...
    def add_touch(self, touch: Touch) -> None: ...
    def clicks_by_click_id(self, click_id: str) -> Iterable[Touch]: ...
    def clicks_by_device(self, keys: tuple[str, ...]) -> Iterable[Touch]: ...
    def clicks_by_fingerprint(self, fingerprint: str) -> Iterable[Touch]: ...
    def impressions_by_device(self, keys: tuple[str, ...]) -> Iterable[Touch]: ...
    def first_install(self, keys: tuple[str, ...], floor: float) -> Record | None:
        """Return the earliest install kept for any of the keys, leaving out installs made before `floor`."""
        ...

    def add_install(self, keys: tuple[str, ...], record: Record) -> None: ...
    def add_record(self, record: Record) -> None: ...
    def add_revenue(self, network: str | None, campaign: str | None, currency: str, amount: Decimal) -> None: ...
    def observe_event_time(self, event_time: float) -> None: ...


@dataclass
class Outcome:
    """The result of one call of ``attribute_batch``.

    ``duplicate_flags[i]`` is true when ``events[i]`` had been seen before.
    ``records`` are the attribution records made, in order. ``carried`` are
    the (network, event_type) pairs that session and in-app events carried.
    """

    duplicate_flags: list[bool]
    records: list[Record] = field(default_factory=list)
    carried: list[tuple[str | None, str]] = field(default_factory=list)


def fingerprint_of(event: Event) -> str | None:
    if event.ip is None or event.user_agent is None:
        return None
    return event.ip + "\x1f" + event.user_agent


_time_then_seq = attrgetter("time", "seq")


def _latest_first(touches: Iterable[Touch], install_time: float, window: float, floor: float) -> list[Touch]:
    """Return the live touches inside the window that ends at the install and not before `floor`, latest first."""
    earliest = max(install_time - window, floor)
    found = [touch for touch in touches if touch.alive and earliest <= touch.time <= install_time]
    if len(found) > 1:
        # Seqs are unique, so (time, seq) orders every pair: ties in time go to the later arrival.
        found.sort(key=_time_then_seq, reverse=True)
    return found


def _reinstall(app: AppSettings, view: AppView, event: Event, first: Record) -> Record:
    """Return the reinstall record: the first install's attribution, with this install's id and time."""
    return replace(
        first,
        install_event_id=event.event_id,
        app_id=app.app_id,
        status="reinstall",
        install_time=event.event_time,
        rejected_touches=(),
        seq=view.next_seq(),
    )


def _first_eligible(app: AppSettings, event: Event, candidates: list[Touch], rejected: list[RejectedTouch]) -> Touch | None:
    """Return the first candidate that passes the click-injection checks, adding each click that fails to `rejected`."""
    install_time = event.event_time
    begin = event.install_begin_time
    for touch in candidates:
        if not touch.is_click:
            return touch
        if install_time - touch.time < app.ctit_min_s:
            reason = REASON_CTIT
        elif begin is not None and touch.time > begin:
            reason = REASON_AFTER_BEGIN
        else:
            return touch
        # A click found again in a later tier keeps the reason it was first rejected for.
        if all(earlier.touch_event_id != touch.event_id for earlier in rejected):
            rejected.append(RejectedTouch(touch.event_id, reason))
    return None


def _winning_touch(app: AppSettings, view: AppView, event: Event, keys: tuple[str, ...],
                   rejected: list[RejectedTouch], watermark: float) -> tuple[Touch | None, str]:
    """Judge the tiers in order and return the winning touch and its match type."""
    install_time = event.event_time
    # Touches older than these have expired at this watermark.
    click_floor = watermark - view.click_horizon
    if event.referrer_click_id:
        candidates = _latest_first(
            view.clicks_by_click_id(event.referrer_click_id), install_time, app.click_window_s, click_floor
        )
        if candidates and (touch := _first_eligible(app, event, candidates, rejected)) is not None:
            return touch, "referrer"
    if keys:
        candidates = _latest_first(view.clicks_by_device(keys), install_time, app.click_window_s, click_floor)
        if candidates and (touch := _first_eligible(app, event, candidates, rejected)) is not None:
            return touch, "device_id"
    fingerprint = fingerprint_of(event)
    if fingerprint is not None and (event.platform != "ios" or event.att_status == "authorized"):
        candidates = _latest_first(
            view.clicks_by_fingerprint(fingerprint), install_time, app.fingerprint_window_s, click_floor
        )
        if candidates and (touch := _first_eligible(app, event, candidates, rejected)) is not None:
            return touch, "fingerprint"
    if keys:
        candidates = _latest_first(
            view.impressions_by_device(keys), install_time, app.impression_window_s,
            watermark - view.impression_horizon,
        )
        if candidates and (touch := _first_eligible(app, event, candidates, rejected)) is not None:
            return touch, "device_id"
    return None, "organic"


def _attribute_install(app: AppSettings, view: AppView, event: Event, keys: tuple[str, ...], watermark: float,
                       floor: float) -> Record:
    """Return the install's record; `floor` is the earliest install time still kept at `watermark`."""
    install_time = event.event_time
    first = view.first_install(keys, floor) if keys else None
    if first is not None and 0 <= install_time - first.install_time <= app.reinstall_window_s:
        if len(keys) > 1:
            # An identifier first seen on this reinstall (a new IDFV, say) belongs to the same
            # device: later installs and in-app events that carry only it find the first install.
            unlinked = tuple(key for key in keys if view.first_install((key,), floor) is None)
            if unlinked:
                view.add_install(unlinked, first)
        return _reinstall(app, view, event, first)

    rejected: list[RejectedTouch] = []
    touch, match_type = _winning_touch(app, view, event, keys, rejected, watermark)
    if touch is None:
        record = Record(
            install_event_id=event.event_id,
            app_id=app.app_id,
            status="organic",
            install_time=install_time,
            rejected_touches=tuple(rejected),
            seq=view.next_seq(),
        )
    else:
        record = Record(
            install_event_id=event.event_id,
            app_id=app.app_id,
            status="attributed",
            network=touch.network,
            campaign=touch.campaign,
            adgroup=touch.adgroup,
            creative=touch.creative,
            touch_event_id=touch.event_id,
            touch_type="click" if touch.is_click else "impression",
            match_type=match_type,
            install_time=install_time,
            touch_time=touch.time,
            ctit_seconds=round(install_time - touch.time, 3),
            rejected_touches=tuple(rejected),
            seq=view.next_seq(),
        )
    if keys:
        view.add_install(keys, record)
    return record


def attribute_batch(app: AppSettings, view: AppView, events: list[Event], now: float) -> Outcome:
    """Apply one app's valid events in order: deduplicate, index touches, attribute installs.

    Every event must have passed ``validate_event``; the caller has checked
    that each belongs to ``app``.
    """
    if not events:
        return Outcome(duplicate_flags=[])
    flags = view.mark_seen(list(map(_event_id, events)), now)
    outcome = Outcome(duplicate_flags=flags)
    # Bound once per batch: the loop below runs once per event.
    add_touch = view.add_touch
    next_seq = view.next_seq
    # The app's watermark as of each event, for the expiry cut (see the module's doc), and the
    # earliest install time still kept at that watermark.
    watermark = view.watermark
    install_horizon = view.install_horizon
    install_floor = watermark - install_horizon
    for event, duplicate in zip(events, flags):
        if duplicate:
            continue
        event_time = event.event_time
        if event_time > watermark:
            watermark = event_time
            install_floor = watermark - install_horizon
        event_type = event.event_type

        if event_type == "click" or event_type == "impression":
            is_click = event_type == "click"
            # Only clicks are matched by fingerprint, so impressions keep none: at about 200 bytes
            # each, they would be the largest string of a stored impression.
            fingerprint = None
            if is_click and event.ip is not None and event.user_agent is not None:
                fingerprint = event.ip + "\x1f" + event.user_agent
            add_touch(
                Touch(
                    next_seq(),
                    event.event_id,
                    is_click,
                    event_time,
                    event.network,
                    event.campaign,
                    event.adgroup,
                    event.creative,
                    event.click_id,
                    device_keys(event),
                    fingerprint,
                )
            )
        elif event_type == "install":
            record = _attribute_install(app, view, event, device_keys(event), watermark, install_floor)
            view.add_record(record)
            outcome.records.append(record)
        else:
            keys = device_keys(event)
            install = view.first_install(keys, install_floor) if keys else None
            network = install.network if install is not None else None
            campaign = install.campaign if install is not None else None
            outcome.carried.append((network, event_type))
            if event_type == "in_app" and event.revenue is not None:
                view.add_revenue(network, campaign, event.currency, event.revenue)
    # Only the batch's latest event time matters to the view's watermark.
    view.observe_event_time(watermark)
    return outcome
