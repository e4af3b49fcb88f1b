"""The event schema and batch decoding.

A batch is a JSON array of events, an object ``{"events": [...]}``, or NDJSON
with one event per line. ``decode_batch`` decodes the common case (every event
valid) with one typed msgspec call. When that fails, it decodes each event on
its own, so one bad event never sinks its batch and each rejection names the
field and the reason.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from decimal import Decimal
from socket import AF_INET, AF_INET6, inet_pton
from typing import Annotated, Literal

import msgspec

MAX_FUTURE_SKEW_SECONDS = 300
# Epoch seconds this large are in the year 5138, so an event time at or above it that is not
# ahead of the clock once divided by 1000 was sent in milliseconds.
MILLISECONDS_FLOOR = 1e11
MAX_PARAMS_BYTES = 4096
# Bounds of one event's revenue. Each accepted amount then has at most 21 significant digits, so
# a revenue line's sum stays exact, in decimal arithmetic's default 28 digits, below 10**19.
MAX_REVENUE = Decimal(10**12)
MAX_REVENUE_DECIMALS = 8
ZERO_ADVERTISING_ID = "00000000-0000-0000-0000-000000000000"
DEVICE_ID_FIELDS = ("idfa", "idfv", "gaid", "oaid", "android_id")
EVENT_TYPES = ("impression", "click", "install", "session", "in_app")

Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
ShortText = Annotated[str, msgspec.Meta(max_length=128)]
DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Timestamp = Annotated[dt.datetime, msgspec.Meta(tz=True)] | float
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]


class Event(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One event as clients send it; unknown fields are ignored.

    After ``validate_event`` has run, ``event_time`` and ``install_begin_time``
    are epoch seconds (float) and ``platform`` is set.
    """

    event_id: Identifier
    app_id: Identifier
    event_type: Literal["impression", "click", "install", "session", "in_app"]
    event_time: Timestamp | None = None
    platform: Literal["ios", "android", "web"] | None = None
    idfa: DeviceId | None = None
    idfv: DeviceId | None = None
    gaid: DeviceId | None = None
    oaid: DeviceId | None = None
    android_id: DeviceId | None = None
    ip: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    user_agent: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    att_status: Literal["authorized", "denied", "restricted", "not_determined"] | None = None
    network: ShortText | None = None
    campaign: ShortText | None = None
    adgroup: ShortText | None = None
    creative: ShortText | None = None
    click_id: ShortText | None = None
    referrer_click_id: ShortText | None = None
    install_begin_time: Timestamp | None = None
    event_name: ShortText | None = None
    revenue: Decimal | None = None
    currency: Currency | None = None
    params: dict | None = None


class BatchFormatError(ValueError):
    """The body is not a batch at all (HTTP 400); nothing in it is applied."""


class EventError(msgspec.Struct, omit_defaults=True):
    """The rejection of one event of a batch, as the response lists it."""

    index: int
    event_id: str | None
    error: str
    # The app id of an event rejected while decoding, when it had one, for counting it under its
    # app. The route clears it before the response, which lists only the three fields above.
    app_id: str | None = None


# Fix hints by field, appended to the decoder's reason for a bad value.
FIELD_HINTS = {
    "event_id": "send a string of 1 to 128 characters, unique per app",
    "app_id": "send the registered app's id, 1 to 128 characters",
    "event_type": "use one of impression, click, install, session, in_app",
    "event_time": "send RFC 3339 with an offset (2024-05-01T12:00:00Z) or epoch seconds as a number",
    "install_begin_time": "send RFC 3339 with an offset or epoch seconds as a number",
    "platform": "use one of ios, android, web",
    "att_status": "use one of authorized, denied, restricted, not_determined",
    "user_agent": "send at most 512 characters",
    "revenue": "send a decimal as a string (\"4.99\") or a number",
    "currency": "send an ISO 4217 code of three capital letters, such as USD",
    "params": "send a JSON object",
    "ip": "send an IPv4 or IPv6 address as text, at most 64 characters",
    **dict.fromkeys(DEVICE_ID_FIELDS, "send the device id as a string of 1 to 128 characters, or leave the field out"),
    **dict.fromkeys(
        ("network", "campaign", "adgroup", "creative", "click_id", "referrer_click_id", "event_name"),
        "send a string of at most 128 characters, or leave the field out",
    ),
}

_event_decoder = msgspec.json.Decoder(Event)
_array_decoder = msgspec.json.Decoder(list[Event])
_raw_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])


class _Envelope(msgspec.Struct):
    events: list[msgspec.Raw]


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_params_encoder = msgspec.json.Encoder()


MISSING_FIELD = "missing required field"
_MISSING_PREFIX = "Object missing required field `"


def field_and_reason(error: msgspec.ValidationError) -> tuple[str, str]:
    """Split msgspec's "Reason - at `$.field`" into the field and the reason.

    A missing field is named with the reason MISSING_FIELD. The field is empty when the error
    is about the object as a whole.
    """
    reason, _, path = str(error).partition(" - at `")
    field = path.rstrip("`").removeprefix("$").lstrip(".")
    if field.startswith("[") and "]." in field:
        field = field.split("].", 1)[1]
    if not field and reason.startswith(_MISSING_PREFIX):
        return reason[len(_MISSING_PREFIX) :].rstrip("`"), MISSING_FIELD
    return field, reason


def with_hint(field: str, reason: str, hints: dict[str, str]) -> str:
    """Return "field: reason", followed by the fix that `hints` gives for the field's top-level name."""
    hint = hints.get(field.split(".", 1)[0].split("[", 1)[0])
    return f"{field}: {reason}" + (f"; {hint}" if hint else "")


def describe_decode_error(error: msgspec.ValidationError) -> str:
    """Turn msgspec's "Reason - at `$.field`" into "field: reason; fix"."""
    field, reason = field_and_reason(error)
    if not field:
        return f"event: {reason}; send a JSON object with event_id, app_id and event_type"
    return with_hint(field, reason, FIELD_HINTS)


def _ids_of(raw: bytes) -> tuple[str | None, str | None]:
    """Return the event id (cut to 128 characters) and app id (when at most 128) of an undecodable event, where they are strings."""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None, None
    if not isinstance(value, dict):
        return None, None
    event_id, app_id = value.get("event_id"), value.get("app_id")
    # The event id is only echoed, so cutting it is harmless. The app id is looked up, and a
    # cut one could name another app.
    return (
        event_id[:128] if isinstance(event_id, str) else None,
        app_id if isinstance(app_id, str) and len(app_id) <= 128 else None,
    )


def _decode_each(raw_events: list[msgspec.Raw] | list[bytes], ndjson: bool = False) -> tuple[list[Event | None], list[EventError]]:
    events: list[Event | None] = []
    errors: list[EventError] = []
    for index, raw in enumerate(raw_events):
        try:
            events.append(_event_decoder.decode(raw))
        except msgspec.ValidationError as error:
            events.append(None)
            message = describe_decode_error(error)
            if ndjson and bytes(raw).lstrip().startswith(b"["):
                message = ("event: a JSON array on an NDJSON line; send an array batch with "
                           "Content-Type: application/json, or one JSON object per line")
            event_id, app_id = _ids_of(bytes(raw))
            errors.append(EventError(index, event_id, message, app_id))
        except msgspec.DecodeError as error:
            events.append(None)
            errors.append(EventError(index, None, f"event: not valid JSON ({error}); send one JSON object per line"))
    return events, errors


def decode_batch(body: bytes, *, ndjson: bool) -> tuple[list[Event | None], list[EventError]]:
    """Decode a request body into events, with ``None`` where an event is invalid.

    Raises ``BatchFormatError`` when the body is not a batch in any of the
    three forms.
    """
    if ndjson:
        lines = [line for line in body.split(b"\n") if line.strip()]
        return _decode_each(lines, ndjson=True)

    stripped = body.lstrip()
    if stripped.startswith(b"["):
        try:
            return list(_array_decoder.decode(body)), []
        except msgspec.ValidationError:
            pass
        except msgspec.DecodeError as error:
            raise BatchFormatError(f"body is not valid JSON: {error}") from None
        try:
            raw_events = _raw_array_decoder.decode(body)
        except msgspec.DecodeError as error:
            raise BatchFormatError(f"body is not a JSON array of events: {error}") from None
        return _decode_each(raw_events)

    if stripped.startswith(b"{"):
        try:
            envelope = _envelope_decoder.decode(body)
        except msgspec.ValidationError as error:
            if _looks_like_ndjson(stripped):
                raise BatchFormatError(
                    "body is NDJSON (one JSON object per line) sent as JSON; "
                    "send it with Content-Type: application/x-ndjson"
                ) from None
            raise BatchFormatError(
                f"body is a JSON object without a valid \"events\" array ({error}); "
                "send {\"events\": [...]}, a JSON array, or NDJSON"
            ) from None
        except msgspec.DecodeError as error:
            raise BatchFormatError(f"body is not valid JSON: {error}") from None
        return _decode_each(envelope.events)

    raise BatchFormatError(
        "body is not a batch: send a JSON array of events, {\"events\": [...]}, "
        "or NDJSON with Content-Type: application/x-ndjson"
    )


def _looks_like_ndjson(body: bytes) -> bool:
    """Return whether the body has two or more lines and each is a whole JSON object."""
    lines = [line.strip() for line in body.split(b"\n") if line.strip()]
    return len(lines) > 1 and all(line.startswith(b"{") and line.endswith(b"}") for line in lines)


def _to_epoch(value: dt.datetime | float) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


def is_ip_address(text: str) -> bool:
    """Return True for IPv4 dotted-quad or IPv6 text (inet_pton is ~20x faster than ipaddress)."""
    try:
        inet_pton(AF_INET, text)
        return True
    except OSError:
        pass
    try:
        inet_pton(AF_INET6, text)
        return True
    except OSError:
        return False


def validate_event(event: Event, now: float, default_platform: str) -> str | None:
    """Check the rules the schema cannot express and normalize the event.

    Returns the error message, or ``None`` when the event is valid; a valid
    event has epoch-second times, a platform, and no all-zero advertising ids.
    """
    event_type = event.event_type
    event_time = event.event_time
    if event_time is None:
        event.event_time = now
    else:
        sent_as_number = type(event_time) is float
        if not sent_as_number:
            event_time = _to_epoch(event_time)
        # One chained comparison for the common case; NaN and infinities fail it too.
        if not 0.0 <= event_time <= now + MAX_FUTURE_SKEW_SECONDS:
            # The event keeps the time as sent: a batch's events may be validated twice.
            return _event_time_error(event_time, now, sent_as_number)
        if not sent_as_number:
            event.event_time = event_time
    if event.platform is None:
        event.platform = default_platform

    if event_type == "impression" or event_type == "click":
        if not event.network:
            return f"network: required on {event_type} events; send the ad network's name"
    elif event_type == "install":
        begin = event.install_begin_time
        if begin is not None:
            begin_sent_as_number = type(begin) is float
            begin = _to_epoch(begin)
            if not math.isfinite(begin) or begin < 0:
                return "install_begin_time: must be a finite, non-negative epoch time"
            if begin_sent_as_number and begin >= MILLISECONDS_FLOOR:
                return (
                    f"install_begin_time: {begin:.0f} looks like epoch milliseconds; "
                    "send epoch seconds (divide by 1000) or RFC 3339"
                )
            event.install_begin_time = begin
    elif event_type == "in_app":
        if not event.event_name:
            return "event_name: required on in_app events; send the in-app event's name, such as purchase"
        revenue = event.revenue
        if revenue is not None:
            if not revenue.is_finite():
                return "revenue: must be a finite decimal; send a value such as \"4.99\""
            if revenue.copy_abs() > MAX_REVENUE or _decimal_places(revenue) > MAX_REVENUE_DECIMALS:
                return (
                    f"revenue: {revenue} is outside the accepted range; send at most {MAX_REVENUE:,} "
                    f"either way, with at most {MAX_REVENUE_DECIMALS} digits after the decimal point"
                )
            if event.currency is None:
                return "currency: required when revenue is sent; send an ISO 4217 code such as USD"

    # Identifiers are compared in lower case: networks and SDKs disagree on the
    # case of the same IDFA or GAID.
    value = event.gaid
    if value is not None:
        value = event.gaid = value.lower()
        if value == ZERO_ADVERTISING_ID:
            event.gaid = None
    value = event.idfa
    if value is not None:
        value = event.idfa = value.lower()
        if value == ZERO_ADVERTISING_ID:
            event.idfa = None
    if event.android_id is not None:
        event.android_id = event.android_id.lower()
    if event.idfv is not None:
        event.idfv = event.idfv.lower()
    if event.oaid is not None:
        event.oaid = event.oaid.lower()
    value = event.ip
    if value is not None:
        # IPv4 is tried inline first, because this runs once per event.
        try:
            inet_pton(AF_INET, value)
        except OSError:
            if not is_ip_address(value):
                return f"ip: {value!r} is not an IPv4 or IPv6 address; send the address as text, such as 203.0.113.7"
    if event.params is not None and len(_params_encoder.encode(event.params)) > MAX_PARAMS_BYTES:
        return f"params: larger than {MAX_PARAMS_BYTES} bytes once encoded; send fewer or shorter values"
    return None


def _decimal_places(value: Decimal) -> int:
    """Return the digits after the decimal point, trailing zeros left out, without rounding.

    `Decimal.normalize` would round to the context's 28 digits first, so a value with more
    digits than that would pass a check of its rounded form.
    """
    _, digits, exponent = value.as_tuple()
    significant = "".join(map(str, digits)).rstrip("0")
    if not significant:
        return 0
    return max(0, -(exponent + len(digits) - len(significant)))


def _event_time_error(seconds: float, now: float, sent_as_number: bool) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "event_time: must be a finite, non-negative epoch time; send RFC 3339 or epoch seconds"
    if sent_as_number and seconds >= MILLISECONDS_FLOOR and seconds / 1000 <= now + MAX_FUTURE_SKEW_SECONDS:
        return f"event_time: {seconds:.0f} looks like epoch milliseconds; send epoch seconds (divide by 1000) or RFC 3339"
    return (
        f"event_time: {seconds - now:.0f} s ahead of the server clock, more than the "
        f"{MAX_FUTURE_SKEW_SECONDS} s allowed; check the sending device's clock"
    )


def device_keys(event: Event) -> tuple[str, ...]:
    """Return the event's device identifiers, each prefixed with its kind."""
    keys = []
    if event.idfa is not None:
        keys.append("idfa:" + event.idfa)
    if event.idfv is not None:
        keys.append("idfv:" + event.idfv)
    if event.gaid is not None:
        keys.append("gaid:" + event.gaid)
    if event.oaid is not None:
        keys.append("oaid:" + event.oaid)
    if event.android_id is not None:
        keys.append("android_id:" + event.android_id)
    return tuple(keys)


def receipt_time() -> float:
    return time.time()
