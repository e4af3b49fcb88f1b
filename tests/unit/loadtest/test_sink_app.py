"""The sink app counts the events of each batch without decoding them."""

from __future__ import annotations

import asyncio

import msgspec

from loadtest.bare_app import sink
from loadtest.generator import build_template


def call(body: bytes, content_type: bytes = b"application/json", path: str = "/v1/events") -> tuple[int, dict]:
    """Send one request through the ASGI app and return its status and decoded body."""
    scope = {"type": "http", "path": path, "method": "POST", "headers": [(b"content-type", content_type)]}
    # The body arrives in two messages, as a large request does.
    messages = [{"type": "http.request", "body": body[:10], "more_body": True},
                {"type": "http.request", "body": body[10:], "more_body": False}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(sink(scope, receive, send))
    return sent[0]["status"], msgspec.json.decode(sent[1]["body"])


def test_array_batch_counted():
    template = build_template("app.sink", "android", 1000, seed=3)

    status, document = call(template.render(7))

    assert status == 200
    assert document["accepted"] == template.event_count == 1000


def test_ndjson_lines_counted():
    template = build_template("app.sink", "ios", 50, seed=4, batch_format="ndjson")

    status, document = call(template.render(1), b"application/x-ndjson")

    assert status == 200
    assert document["accepted"] == 50


def test_escaped_key_in_value_not_counted():
    body = msgspec.json.encode([{"event_id": "a", "params": {"note": '"event_id"'}}, {"event_id": "b"}])

    assert call(body)[1]["accepted"] == 2


def test_unknown_path_not_found():
    status, document = call(b"[]", path="/v1/other")

    assert status == 404
    assert "POST /v1/events" in document["detail"]
