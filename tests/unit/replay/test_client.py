"""The replay's HTTP client against a scripted HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ingestion.replay.client import IngestionClient, IngestionError

TOKEN = "test-admin-token-0123456789"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class ScriptedServer:
    """Returns the queued responses in order and records every request."""

    url: str = ""
    responses: deque = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)

    def reply(self, status: int, body: object = None, headers: dict[str, str] | None = None) -> None:
        self.responses.append((status, body, headers or {}))


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the ingestion service speaks

        def log_message(self, *args: object) -> None:
            pass

        def handle_request(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            scripted.seen.append(
                Seen(self.command, parts.path, parse_qs(parts.query), dict(self.headers), self.rfile.read(length),
                     self.client_address[1])
            )
            status, body, headers = scripted.responses.popleft()
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = handle_request

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    scripted.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield scripted
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(server: ScriptedServer, sleeps: list[float]) -> Iterator[IngestionClient]:
    with IngestionClient(server.url, TOKEN, timeout=5, max_attempts=3, sleep=sleeps.append) as client:
        yield client


BATCH_OK = {"accepted": 2, "duplicates": 1, "rejected": 1, "errors": [{"index": 2, "event_id": "e3", "error": "bad"}]}


def test_post_events_sends_json_array_with_token(server, client):
    server.reply(200, BATCH_OK)

    result = client.post_events([{"event_id": "e1"}, {"event_id": "e2"}, {"event_id": "e3"}])

    assert (result.accepted, result.duplicates, result.rejected) == (2, 1, 1)
    assert result.errors == [{"index": 2, "event_id": "e3", "error": "bad"}]
    request = server.seen[0]
    assert (request.method, request.path) == ("POST", "/v1/events")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == [{"event_id": "e1"}, {"event_id": "e2"}, {"event_id": "e3"}]


def test_retry_after_429(server, client, sleeps):
    server.reply(429, {"error": "rate limited"}, {"Retry-After": "2"})
    server.reply(200, BATCH_OK)

    result = client.post_events([{"event_id": "e1"}])

    assert result.accepted == 2
    assert sleeps == [2.0]
    assert client.retries == 1
    assert server.seen[0].body == server.seen[1].body


def test_backoff_after_503_without_retry_after(server, client, sleeps):
    server.reply(503, {"error": "store unreachable"})
    server.reply(503, {"error": "store unreachable"}, {"Retry-After": "soon"})
    server.reply(200, BATCH_OK)

    client.post_events([{"event_id": "e1"}])

    assert sleeps == [0.5, 1.0]
    assert client.retries == 2


def test_gives_up_after_max_attempts(server, client):
    for _ in range(3):
        server.reply(503, {"error": "store unreachable"}, {"Retry-After": "0"})

    with pytest.raises(IngestionError) as caught:
        client.post_events([{"event_id": "e1"}])

    assert "503" in str(caught.value)
    assert "store unreachable" in str(caught.value)
    assert len(server.seen) == 3


def test_unauthorized_names_token_source(server, client):
    server.reply(401, {"error": "unknown token"})

    with pytest.raises(IngestionError) as caught:
        client.post_events([{"event_id": "e1"}])

    message = str(caught.value)
    assert "401" in message
    assert "UNMOGROWP_ADMIN_TOKEN" in message
    assert TOKEN not in message


def test_too_large_suggests_batch_size(server, client):
    server.reply(413, {"error": "more than 10000 events"})

    with pytest.raises(IngestionError) as caught:
        client.post_events([{"event_id": "e1"}])

    assert "--batch-size" in str(caught.value)


def test_register_app_created_or_existing(server, client):
    server.reply(201, {"app": {"app_id": "talkingdata-1"}, "ingest_key": "secret-key"})
    server.reply(409, {"error": "app talkingdata-1 exists"})

    assert client.register_app("talkingdata-1", "android") is True
    assert client.register_app("talkingdata-1", "android") is False
    assert json.loads(server.seen[0].body) == {"app_id": "talkingdata-1", "platform": "android"}


def test_register_app_error_shows_detail(server, client):
    server.reply(400, {"detail": "platform: expected ios, android or web"})

    with pytest.raises(IngestionError) as caught:
        client.register_app("talkingdata-1", "android")

    assert "registering app 'talkingdata-1'" in str(caught.value)
    assert "platform: expected ios, android or web" in str(caught.value)


def test_attributions_follow_cursor(server, client):
    server.reply(200, {"items": [{"install_event_id": "a"}, {"install_event_id": "b"}], "next_cursor": "page-2"})
    server.reply(200, {"items": [{"install_event_id": "c"}], "next_cursor": None})

    items = list(client.iter_attributions("talkingdata-1"))

    assert [item["install_event_id"] for item in items] == ["a", "b", "c"]
    assert server.seen[0].query == {"app_id": ["talkingdata-1"], "limit": ["1000"]}
    assert server.seen[1].query == {"app_id": ["talkingdata-1"], "limit": ["1000"], "cursor": ["page-2"]}


def test_connection_kept_alive(server, client):
    for _ in range(3):
        server.reply(200, BATCH_OK)

    for _ in range(3):
        client.post_events([{"event_id": "e1"}])

    assert len({request.client_port for request in server.seen}) == 1
