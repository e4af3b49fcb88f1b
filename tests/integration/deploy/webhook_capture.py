"""A loopback HTTP server that replaces Slack's incoming webhook in tests.

Alertmanager posts its Slack notifications to the URL in the
``slack_webhook_url`` secret file; pointing that URL here lets a test read
what would have reached Slack without any traffic leaving the host.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = "127.0.0.1"


class WebhookCapture:
    """Keeps the JSON body of every POST it receives; use as a context manager."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                length = int(self.headers.get("Content-Length", "0"))
                payload = self.rfile.read(length)
                with capture._lock:
                    capture.bodies.append(json.loads(payload or b"{}"))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_arguments) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}/slack"

    def __enter__(self) -> WebhookCapture:
        self._thread.start()
        return self

    def __exit__(self, *_exception) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float) -> list[dict]:
        """Return the bodies once ``predicate(bodies)`` holds; raise AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                bodies = list(self.bodies)
            if predicate(bodies):
                return bodies
            time.sleep(0.2)
        raise AssertionError(f"no matching webhook call within {timeout} s; received: {self.bodies}")
