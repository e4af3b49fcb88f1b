"""The bare ceiling: an ASGI app that only decodes event batches with msgspec and counts them.

It serves `POST /v1/events` like the ingestion service (same body formats, same response
shape) without authentication, validation, attribution, storage or metrics. Its throughput on
uvicorn with uvloop and httptools is therefore the ceiling that a Python service on that stack
can reach for the same batches. Run it with:

    uvicorn loadtest.bare_app:app --loop uvloop --http httptools --no-access-log --port 18089

`loadtest.bare_app:sink` serves the same route but counts the events of each batch without
decoding them. The benchmark measures one Locust process against it, so that the figure is the
generator's rate, not the rate at which one core decodes.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Annotated, Literal

import msgspec


Text = Annotated[str, msgspec.Meta(max_length=128)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Timestamp = Annotated[datetime.datetime, msgspec.Meta(tz=True)] | float


class Event(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """An event with the field types and limits of the public event format.

    Decoding into it costs what decoding costs the ingestion service, whose own struct has
    the same types; the app does nothing else with the events.
    """

    event_id: Identifier
    app_id: Identifier
    event_type: Literal["impression", "click", "install", "session", "in_app"]
    event_time: Timestamp | None = None
    platform: Literal["ios", "android", "web"] | None = None
    idfa: Identifier | None = None
    idfv: Identifier | None = None
    gaid: Identifier | None = None
    oaid: Identifier | None = None
    android_id: Identifier | None = None
    ip: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    user_agent: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    att_status: Literal["authorized", "denied", "restricted", "not_determined"] | None = None
    network: Text | None = None
    campaign: Text | None = None
    adgroup: Text | None = None
    creative: Text | None = None
    click_id: Text | None = None
    referrer_click_id: Text | None = None
    install_begin_time: Timestamp | None = None
    event_name: Text | None = None
    revenue: decimal.Decimal | None = None
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | None = None
    params: dict | None = None


class EventsObject(msgspec.Struct):
    events: list[Event]


_decode_array = msgspec.json.Decoder(list[Event]).decode
_decode_object = msgspec.json.Decoder(EventsObject).decode
_decode_line = msgspec.json.Decoder(Event).decode
_encode = msgspec.json.Encoder().encode

_JSON_HEADERS = [(b"content-type", b"application/json")]


def decode_batch(body: bytes, ndjson: bool) -> list[Event]:
    """Decode a JSON array, a {"events": [...]} object or NDJSON into events."""
    if ndjson:
        return [_decode_line(line) for line in body.splitlines() if line.strip()]
    if body.lstrip()[:1] == b"{":
        return _decode_object(body).events
    return _decode_array(body)


async def _send(send, status: int, document: dict) -> None:
    body = _encode(document)
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _is_ndjson(scope) -> bool:
    return any(name == b"content-type" and b"ndjson" in value for name, value in scope["headers"])


async def _route(scope, receive, send) -> bool:
    """Respond to lifespan, health and unknown requests, and return True for a POST of events."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return False
    if scope["type"] != "http":
        return False
    if scope["path"] == "/healthz":
        await _send(send, 200, {"status": "ok"})
        return False
    if scope["path"] != "/v1/events" or scope["method"] != "POST":
        await _send(send, 404, {"detail": "only POST /v1/events and GET /healthz exist here"})
        return False
    return True


async def app(scope, receive, send) -> None:
    if not await _route(scope, receive, send):
        return
    body = await _read_body(receive)
    ndjson = _is_ndjson(scope)
    try:
        events = decode_batch(body, ndjson)
    except msgspec.DecodeError as error:
        await _send(send, 400, {"detail": f"body is not a batch of events: {error}"})
        return
    await _send(send, 200, {"accepted": len(events), "duplicates": 0, "rejected": 0, "errors": []})


async def sink(scope, receive, send) -> None:
    """Read each batch and count its events without decoding them.

    Each event of the load generator's batches has one ``"event_id"`` key, and a JSON string
    cannot contain those bytes unescaped, so ``bytes.count`` gives the exact count for them.
    """
    if not await _route(scope, receive, send):
        return
    body = await _read_body(receive)
    if _is_ndjson(scope):
        events = sum(1 for line in body.split(b"\n") if line.strip())
    else:
        events = body.count(b'"event_id"')
    await _send(send, 200, {"accepted": events, "duplicates": 0, "rejected": 0, "errors": []})
