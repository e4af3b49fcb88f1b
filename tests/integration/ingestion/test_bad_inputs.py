"""Bad requests and bad events sent to a real ingestion service, each with its status and message."""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass

import pytest

from tests.integration.ingestion.helpers import Api, click, encode, install, session, unique


@dataclass
class Context:
    app_id: str
    key: str
    other_app_id: str
    other_key: str
    admin_token: str

    def valid(self) -> dict:
        return session(self.app_id, unique("valid"))


@pytest.fixture(scope="module")
def context(api: Api) -> Context:
    app_id, key = api.register()
    other_app_id, other_key = api.register(platform="ios")
    return Context(app_id, key, other_app_id, other_key, api.service.admin_token)


# Requests rejected whole: (case id, request options, status, words of the message).
# Each option set is a function of the context, so it can use the app's key.
WHOLE_REQUEST_CASES = [
    ("not json", lambda c: {"body": b"{not json"}, 400, "not valid JSON"),
    ("json string", lambda c: {"body": b'"events"'}, 400, "not a batch"),
    ("events not a list", lambda c: {"body": b'{"events": 5}'}, 400, '"events" array'),
    ("truncated array", lambda c: {"body": b'[{"event_id": "x"'}, 400, "not valid JSON"),
    ("empty body", lambda c: {"body": b""}, 400, "not a batch"),
    ("ndjson sent as json", lambda c: {"body": encode(c.valid()) + b"\n" + encode(c.valid()) + b"\n"}, 400,
     "body is NDJSON (one JSON object per line) sent as JSON; send it with Content-Type: application/x-ndjson"),
    ("text/plain", lambda c: {"events": [c.valid()], "content_type": "text/plain"}, 415, "Content-Type 'text/plain'"),
    ("form encoded", lambda c: {"body": b"a=b", "content_type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    ("brotli", lambda c: {"events": [c.valid()], "headers": {"Content-Encoding": "br"}}, 415, "Content-Encoding 'br'"),
    ("deflate", lambda c: {"events": [c.valid()], "headers": {"Content-Encoding": "deflate"}}, 415, "send gzip"),
    ("gzip header, plain body", lambda c: {"body": b"[]", "headers": {"Content-Encoding": "gzip"}}, 400, "not valid gzip"),
    ("truncated gzip", lambda c: {"body": gzip.compress(encode([c.valid()]))[:-12], "headers": {"Content-Encoding": "gzip"}}, 400, "truncated"),
    ("no token", lambda c: {"events": [c.valid()], "headers": {"Authorization": ""}}, 401, "missing bearer token"),
    ("basic auth", lambda c: {"events": [c.valid()], "headers": {"Authorization": "Basic dXNlcjpwYXNz"}}, 401, "missing bearer token"),
    ("unknown token", lambda c: {"events": [c.valid()], "headers": {"Authorization": "Bearer not-a-token-of-this-service"}}, 401, "unknown token"),
    ("forged ingest key", lambda c: {"events": [c.valid()], "headers": {"Authorization": "Bearer " + c.key[:-4] + "AAAA"}}, 401, "unknown token"),
]


@pytest.mark.parametrize(("options", "status", "message"), [case[1:] for case in WHOLE_REQUEST_CASES],
                         ids=[case[0] for case in WHOLE_REQUEST_CASES])
def test_request_rejected(api, context, options, status, message):
    before = api.total("attribution_events_processed_total", app_id=context.app_id)

    response = api.post_events(context.key, **options(context))

    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert api.total("attribution_events_processed_total", app_id=context.app_id) == before
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"


def too_many_events(context: Context) -> dict:
    return {"events": [session(context.app_id, f"bulk-{index}") for index in range(10_001)]}


def test_batch_one_over_limit_rejected(api, context):
    response = api.post_events(context.key, **too_many_events(context))

    assert response.status_code == 413
    assert response.json()["detail"] == "batch of 10001 events exceeds the limit of 10000; split it"
    assert api.records(context.app_id) == []


def test_batch_at_limit_accepted(api):
    app_id, key = api.register()

    result = api.send(key, [session(app_id, f"bulk-{index}") for index in range(10_000)])

    assert result == {"accepted": 10_000, "duplicates": 0, "rejected": 0, "errors": []}


def test_body_over_limit_rejected(api, context):
    body = b"[" + b" " * (10 * 1024 * 1024) + b"]"

    response = api.post_events(context.key, body=body)

    assert response.status_code == 413
    assert "exceeds the limit of 10485760 bytes" in response.json()["detail"]


def test_body_over_limit_without_length_rejected(api, context):
    def chunks():
        for _ in range(11):
            yield b" " * (1024 * 1024)

    response = api.client.post(
        "/v1/events", content=chunks(),
        headers={"Authorization": f"Bearer {context.key}", "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert "exceeds the limit of 10485760 bytes" in response.json()["detail"]


def test_gzip_bomb_rejected(api, context):
    # 64 MiB of spaces compress to about 64 KiB.
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 100_000

    response = api.post_events(context.key, body=bomb, headers={"Content-Encoding": "gzip"})

    assert response.status_code == 413
    assert "decompresses to more than the limit of 10485760 bytes" in response.json()["detail"]


# Events rejected one by one: the request returns 200 and the valid event is applied.
def bad_event(context: Context, **fields) -> dict:
    document = {"event_id": unique("bad"), "app_id": context.app_id, "event_type": "session"}
    document.update(fields)
    return {name: value for name, value in document.items() if value is not REMOVE}


REMOVE = object()
FUTURE = object()
MILLISECONDS = object()

EVENT_CASES = [
    ("event_id number", {"event_id": 5}, "event_id: Expected `str`, got `int`"),
    ("event_id empty", {"event_id": ""}, "event_id: Expected `str` of length >= 1"),
    ("event_id too long", {"event_id": "x" * 129}, "event_id: Expected `str` of length <= 128"),
    ("event_id missing", {"event_id": REMOVE}, "event_id: missing required field; send a string of 1 to 128"),
    ("app_id missing", {"app_id": REMOVE}, "app_id: missing required field; send the registered app's id"),
    ("event_type missing", {"event_type": REMOVE}, "event_type: missing required field; use one of impression"),
    ("event_type unknown", {"event_type": "purchase"}, "event_type: Invalid enum value 'purchase'"),
    ("event_time text", {"event_time": "yesterday"}, "event_time:"),
    ("event_time no offset", {"event_time": "2024-05-01T12:00:00"}, "event_time:"),
    ("event_time boolean", {"event_time": True}, "event_time:"),
    ("event_time negative", {"event_time": -5}, "event_time: must be a finite, non-negative epoch time"),
    ("event_time future", {"event_time": FUTURE}, "ahead of the server clock, more than the 300 s allowed"),
    ("platform unknown", {"platform": "windows"}, "platform: Invalid enum value 'windows'; use one of ios, android, web"),
    ("att_status unknown", {"att_status": "maybe"}, "att_status: Invalid enum value 'maybe'"),
    ("gaid number", {"gaid": 12}, "gaid: Expected `str | null`, got `int`; send the device id as a string"),
    ("idfa too long", {"idfa": "f" * 129}, "idfa: Expected `str` of length <= 128; send the device id as a string"),
    ("ip too long", {"ip": "1" * 65}, "ip: Expected `str` of length <= 64; send an IPv4 or IPv6 address as text"),
    ("ip invalid", {"ip": "999.1.2.3"}, "ip: '999.1.2.3' is not an IPv4 or IPv6 address; send the address as text"),
    ("event_time milliseconds", {"event_time": MILLISECONDS},
     "looks like epoch milliseconds; send epoch seconds (divide by 1000) or RFC 3339"),
    ("event_time far-future text", {"event_time": "9999-12-31T00:00:00Z"}, "s ahead of the server clock, more than"),
    ("user_agent too long", {"user_agent": "u" * 513}, "user_agent: Expected `str` of length <= 512"),
    ("params not object", {"params": [1, 2]}, "params: Expected `object | null`, got `array`; send a JSON object"),
    ("params too large", {"params": {"blob": "x" * 5000}}, "params: larger than 4096 bytes once encoded"),
    ("click without network", {"event_type": "click"}, "network: required on click events"),
    ("impression without network", {"event_type": "impression"}, "network: required on impression events"),
    ("network too long", {"event_type": "click", "network": "n" * 129},
     "network: Expected `str` of length <= 128; send a string of at most 128 characters"),
    ("in_app without name", {"event_type": "in_app"}, "event_name: required on in_app events"),
    ("revenue without currency", {"event_type": "in_app", "event_name": "buy", "revenue": "1.00"}, "currency: required when revenue is sent"),
    ("revenue not a number", {"event_type": "in_app", "event_name": "buy", "revenue": "lots", "currency": "USD"}, "revenue:"),
    ("revenue NaN", {"event_type": "in_app", "event_name": "buy", "revenue": "NaN", "currency": "USD"}, "revenue: must be a finite decimal"),
    ("revenue too large", {"event_type": "in_app", "event_name": "buy", "revenue": "1e400", "currency": "USD"},
     "revenue: 1E+400 is outside the accepted range; send at most 1,000,000,000,000 either way"),
    ("revenue too fine", {"event_type": "in_app", "event_name": "buy", "revenue": "1E-30", "currency": "USD"},
     "with at most 8 digits after the decimal point"),
    ("revenue past 28 digits", {"event_type": "in_app", "event_name": "buy", "revenue": "1.00000000000000000000000000001",
                                "currency": "USD"}, "with at most 8 digits after the decimal point"),
    ("currency lower case", {"event_type": "in_app", "event_name": "buy", "revenue": "1", "currency": "usd"}, "currency:"),
    ("install_begin_time text", {"event_type": "install", "install_begin_time": "soon"}, "install_begin_time:"),
    ("install_begin_time milliseconds", {"event_type": "install", "install_begin_time": 1_700_000_000_000},
     "install_begin_time: 1700000000000 looks like epoch milliseconds"),
    ("unknown app, ingest key", {"app_id": "never-registered"}, "app_id: the ingest key belongs to app"),
    ("event not object", None, "event: Expected `object`, got `int`"),
]


@pytest.mark.parametrize(("fields", "message"), [case[1:] for case in EVENT_CASES], ids=[case[0] for case in EVENT_CASES])
def test_event_rejected_batch_kept(api, context, fields, message):
    if fields is None:
        bad = 42
    else:
        if fields.get("event_time") is FUTURE:
            fields = {**fields, "event_time": time.time() + 330}
        if fields.get("event_time") is MILLISECONDS:
            fields = {**fields, "event_time": int(time.time() * 1000) - 60_000}
        bad = bad_event(context, **fields)
    valid = context.valid()

    result = api.send(context.key, [valid, bad])

    assert result["accepted"] == 1
    assert result["rejected"] == 1
    [error] = result["errors"]
    assert error["index"] == 1
    sent_id = bad.get("event_id") if isinstance(bad, dict) else None
    # The echoed id is cut to 128 characters, so an oversized id cannot inflate the response.
    assert error["event_id"] == (sent_id[:128] if isinstance(sent_id, str) else None)
    assert message in error["error"]


def test_event_of_other_app_rejected(api, context):
    foreign = session(context.other_app_id, unique("foreign"))

    result = api.send(context.key, [context.valid(), foreign])

    assert result["accepted"] == 1
    assert result["rejected"] == 1
    assert result["errors"][0]["error"] == (
        f"app_id: the ingest key belongs to app {context.app_id!r}, not {context.other_app_id!r}; "
        "send each app's events with its own key"
    )


def test_event_of_other_app_counted_for_sender(api):
    sender_id, sender_key = api.register()
    named_id, _ = api.register()

    api.send(sender_key, [session(named_id, unique("foreign"))])
    named_stats = api.client.get("/v1/stats", headers=api.admin).json()["apps"][named_id]

    assert api.total("attribution_events_processed_total", app_id=sender_id, status="rejected") == 1
    assert api.total("attribution_events_processed_total", app_id=named_id) == 0
    assert named_stats["events"] == {"accepted": 0, "duplicate": 0, "rejected": 0}


def test_unregistered_app_counted_for_sender(api):
    sender_id, sender_key = api.register()

    result = api.send(sender_key, [session("never-registered", unique("foreign"))])

    assert result["errors"][0]["error"] == (
        f"app_id: the ingest key belongs to app {sender_id!r}, not 'never-registered'; "
        "send each app's events with its own key"
    )
    assert api.total("attribution_events_processed_total", app_id=sender_id, status="rejected") == 1


def test_unregistered_app_with_admin_token(api):
    result = api.send(api.service.admin_token, [session("never-registered", unique("admin"))])

    assert result["rejected"] == 1
    assert result["errors"][0]["error"] == (
        "app_id: app 'never-registered' is not registered; register it with POST /v1/apps"
    )


def test_undecodable_admin_event_counted_for_its_app(api):
    app_id, _ = api.register()
    registered = {**session(app_id, unique("bogus")), "event_type": "bogus"}
    ghost = {**session("never-registered", unique("bogus")), "event_type": "bogus"}
    before = api.total("attribution_events_processed_total", app_id="_unregistered", status="rejected")

    # An app id one character too long must not count under the registered app it starts with.
    overlong_id, _ = api.register(app_id=unique("long").ljust(128, "x"))
    overlong = {**session(overlong_id + "x", unique("bogus")), "event_type": "bogus"}

    result = api.send(api.service.admin_token, [registered, ghost, overlong])

    assert result["rejected"] == 3
    assert [sorted(error) for error in result["errors"]] == [["error", "event_id", "index"]] * 3
    assert api.total("attribution_events_processed_total", app_id=overlong_id, status="rejected") == 0
    assert api.total("attribution_events_processed_total", app_id=app_id, status="rejected") == 1
    assert api.total("attribution_events_processed_total", app_id="_unregistered", status="rejected") - before == 2


def test_other_app_key_cannot_read_records(api, context):
    response = api.client.get(
        "/v1/attributions", params={"app_id": context.app_id}, headers={"Authorization": f"Bearer {context.other_key}"}
    )

    assert response.status_code == 403
    assert context.other_app_id in response.json()["detail"]


def test_ingest_key_cannot_register_apps(api, context):
    response = api.client.post(
        "/v1/apps", json={"app_id": unique("app"), "platform": "ios"}, headers={"Authorization": f"Bearer {context.key}"}
    )

    assert response.status_code == 403
    assert "admin token" in response.json()["detail"]


def test_future_time_within_skew_accepted(api, context):
    result = api.send(context.key, [session(context.app_id, unique("soon"), time.time() + 270)])

    assert result["accepted"] == 1


def test_many_errors_each_reported(api, context):
    batch = [context.valid(), bad_event(context, event_type="click"), 7, context.valid(), bad_event(context, ip="x")]

    result = api.send(context.key, batch)

    assert result["accepted"] == 2
    assert result["rejected"] == 3
    assert [error["index"] for error in result["errors"]] == [1, 2, 4]


def test_unknown_fields_ignored(api, context):
    result = api.send(context.key, [{**context.valid(), "colour": "blue", "nested": {"a": [1]}}])

    assert result["accepted"] == 1


# Rate limit ------------------------------------------------------------------


def test_over_rate_answered_429(api):
    app_id, key = api.register(max_events_per_second=5)
    assert api.send(key, [session(app_id, unique("s")) for _ in range(5)])["accepted"] == 5

    response = api.post_events(key, [session(app_id, unique("s")) for _ in range(5)])

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert f"app {app_id!r} is over its rate of 5 events per second" in response.json()["detail"]


def test_rate_limit_removed_by_null(api):
    app_id, key = api.register(max_events_per_second=5)

    patched = api.client.patch(f"/v1/apps/{app_id}", json={"max_events_per_second": None}, headers=api.admin)
    response = api.post_events(key, [session(app_id, unique("s")) for _ in range(50)])

    assert patched.status_code == 200
    assert patched.json()["max_events_per_second"] is None
    assert response.status_code == 200


def test_null_window_rejected_in_patch(api):
    app_id, _ = api.register()

    response = api.client.patch(f"/v1/apps/{app_id}", json={"click_window_s": None}, headers=api.admin)
    settings = api.client.get(f"/v1/apps/{app_id}", headers=api.admin).json()

    assert response.status_code == 422
    assert response.json()["detail"].startswith("click_window_s: Expected `int`, got `null`")
    assert "send whole seconds" in response.json()["detail"]
    assert settings["click_window_s"] == 604800


def test_rate_refills_after_retry_after(api):
    app_id, key = api.register(max_events_per_second=5)
    api.send(key, [session(app_id, unique("s")) for _ in range(5)])
    response = api.post_events(key, [session(app_id, unique("s"))])
    assert response.status_code == 429

    time.sleep(float(response.headers["Retry-After"]))
    retried = api.post_events(key, [session(app_id, unique("s"))])

    assert retried.status_code == 200


# Accepted forms --------------------------------------------------------------


def forms(app_id: str) -> list[tuple[str, dict]]:
    events = [session(app_id, unique("form")), click(app_id, unique("form"), time.time() - 60)]
    array = encode(events)
    envelope = encode({"events": events})
    ndjson = b"\n".join(encode(event) for event in events) + b"\n"
    return [
        ("array", {"body": array}),
        ("array with charset", {"body": array, "content_type": "application/json; charset=utf-8"}),
        ("array without content type", {"body": array, "content_type": None}),
        ("envelope", {"body": envelope}),
        ("ndjson", {"body": ndjson, "content_type": "application/x-ndjson"}),
        ("ndjson with blank lines and CRLF", {"body": ndjson.replace(b"\n", b"\r\n\r\n"), "content_type": "application/x-ndjson"}),
        ("gzip array", {"body": array, "gzipped": True}),
        ("gzip envelope", {"body": envelope, "gzipped": True}),
        ("gzip ndjson", {"body": ndjson, "content_type": "application/x-ndjson", "gzipped": True}),
    ]


FORM_NAMES = [name for name, _ in forms("x")]


@pytest.mark.parametrize("form", FORM_NAMES)
def test_body_form_accepted(api, context, form):
    options = dict(forms(context.app_id))[form]

    response = api.post_events(context.key, **options)

    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": 0, "errors": []}


def test_ndjson_bad_line_rejected_alone(api, context):
    body = encode(context.valid()) + b"\n{broken\n" + encode(context.valid()) + b"\n"

    result = api.post_events(context.key, body=body, content_type="application/x-ndjson").json()

    assert result["accepted"] == 2
    assert result["rejected"] == 1
    assert result["errors"][0]["index"] == 1
    assert "event: not valid JSON" in result["errors"][0]["error"]


def test_array_on_ndjson_line_named(api, context):
    body = encode([context.valid()]) + b"\n" + encode(context.valid()) + b"\n"

    result = api.post_events(context.key, body=body, content_type="application/x-ndjson").json()

    assert result["accepted"] == 1
    assert result["rejected"] == 1
    assert result["errors"][0]["error"] == (
        "event: a JSON array on an NDJSON line; send an array batch with Content-Type: application/json, "
        "or one JSON object per line"
    )


# Idempotency -----------------------------------------------------------------


def test_resend_counts_duplicates_exactly(api):
    app_id, key = api.register()
    now = time.time()
    batch = [
        click(app_id, "click-1", now - 100, gaid="g-1"),
        install(app_id, "install-1", now - 50, gaid="g-1"),
        session(app_id, "session-1", now - 10, gaid="g-1"),
    ]

    first = api.send(key, batch)
    second = api.send(key, batch)
    third = api.send(key, batch + [session(app_id, "session-2")])

    assert first == {"accepted": 3, "duplicates": 0, "rejected": 0, "errors": []}
    assert second == {"accepted": 0, "duplicates": 3, "rejected": 0, "errors": []}
    assert third == {"accepted": 1, "duplicates": 3, "rejected": 0, "errors": []}
    assert api.total("attribution_events_processed_total", app_id=app_id, status="accepted") == 4
    assert api.total("attribution_events_processed_total", app_id=app_id, status="duplicate") == 6
    assert api.total("attribution_installs_total", app_id=app_id) == 1
    assert len(api.records(app_id)) == 1


def test_duplicate_in_same_batch(api):
    app_id, key = api.register()

    result = api.send(key, [session(app_id, "same"), session(app_id, "same")])

    assert result == {"accepted": 1, "duplicates": 1, "rejected": 0, "errors": []}
