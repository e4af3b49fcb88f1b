"""Apps, touches and attribution records: the data the store keeps."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from ingestion.events import Identifier

WindowSeconds = Annotated[int, msgspec.Meta(ge=0, le=10 * 365 * 86400)]


class AppSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An app as registered with ``POST /v1/apps``; windows in seconds."""

    app_id: Identifier
    platform: Literal["ios", "android", "web"]
    click_window_s: WindowSeconds = 604800
    impression_window_s: WindowSeconds = 86400
    fingerprint_window_s: WindowSeconds = 86400
    reinstall_window_s: WindowSeconds = 7776000
    ctit_min_s: WindowSeconds = 10
    max_events_per_second: Annotated[int, msgspec.Meta(gt=0)] | None = None


class AppUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields ``PATCH /v1/apps/{app_id}`` may change; a field left out keeps its value.

    Only ``max_events_per_second`` may be null, which removes the limit. The other fields have
    no empty value, so null is invalid for them.
    """

    platform: Literal["ios", "android", "web"] | UnsetType = UNSET
    click_window_s: WindowSeconds | UnsetType = UNSET
    impression_window_s: WindowSeconds | UnsetType = UNSET
    fingerprint_window_s: WindowSeconds | UnsetType = UNSET
    reinstall_window_s: WindowSeconds | UnsetType = UNSET
    ctit_min_s: WindowSeconds | UnsetType = UNSET
    max_events_per_second: Annotated[int, msgspec.Meta(gt=0)] | None | UnsetType = UNSET


class StoredApp(msgspec.Struct, kw_only=True):
    """An app with its ingest key's id and hash; the key itself is never kept."""

    settings: AppSettings
    key_id: str
    key_hash: str
    created_at: float


class Touch(msgspec.Struct, array_like=True, gc=False):
    """A click or an impression that an install may be attributed to."""

    seq: int
    event_id: str
    is_click: bool
    time: float
    network: str
    campaign: str | None
    adgroup: str | None
    creative: str | None
    click_id: str | None
    device_keys: tuple[str, ...]
    fingerprint: str | None
    alive: bool = True


class RejectedTouch(msgspec.Struct, gc=False):
    touch_event_id: str
    reason: Literal["ctit_below_minimum", "click_after_install_begin"]


class Record(msgspec.Struct, kw_only=True, gc=False):
    """The attribution of one install, as ``/v1/attributions`` returns it."""

    install_event_id: str
    app_id: str
    status: Literal["attributed", "organic", "reinstall"]
    network: str | None = None
    campaign: str | None = None
    adgroup: str | None = None
    creative: str | None = None
    touch_event_id: str | None = None
    touch_type: Literal["click", "impression"] | None = None
    match_type: Literal["referrer", "device_id", "fingerprint"] | None = None
    install_time: float
    touch_time: float | None = None
    ctit_seconds: float | None = None
    # A tuple, not a list: the collector never tracks an empty tuple, and most records have none.
    rejected_touches: tuple[RejectedTouch, ...] = ()
    seq: int = 0


class TouchEntry(msgspec.Struct, gc=False):
    """A touch as the embedded store queues it for eviction, with its app's code.

    A tuple of the two stays tracked by the collector until its first young collection. At a
    full store such tuples were the largest share of what each young collection traversed
    (about a third). This struct is never tracked.
    """

    code: int
    touch: Touch


class InstallEntry(msgspec.Struct, gc=False):
    """An install as the embedded store queues it for expiry and eviction.

    The app's code and the device keys come with the record. As a struct created with gc=False,
    the collector never tracks it. A tuple of the same three, with an inner tuple of keys, could
    survive a young collection still tracked: at a full store about 100,000 of them made each
    middle-generation collection take 0.1 s.
    """

    code: int
    keys: tuple[str, ...]
    record: Record


def format_time(seconds: float | None) -> str | None:
    """Format epoch seconds as RFC 3339 in UTC with millisecond precision."""
    if seconds is None:
        return None
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_to_json(record: Record) -> dict:
    """Return the record as its public JSON document (RFC 3339 times)."""
    return {
        "install_event_id": record.install_event_id,
        "app_id": record.app_id,
        "status": record.status,
        "network": record.network,
        "campaign": record.campaign,
        "adgroup": record.adgroup,
        "creative": record.creative,
        "touch_event_id": record.touch_event_id,
        "touch_type": record.touch_type,
        "match_type": record.match_type,
        "install_time": format_time(record.install_time),
        "touch_time": format_time(record.touch_time),
        "ctit_seconds": record.ctit_seconds,
        "rejected_touches": [
            {"touch_event_id": rejected.touch_event_id, "reason": rejected.reason}
            for rejected in record.rejected_touches
        ],
    }
