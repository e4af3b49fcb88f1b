"""An HTTP client for the ingestion service: apps, event batches, attribution records.

One ``httpx.Client`` keeps its connection alive across requests. Batches that
come back with 429 or 503, or that fail in transit, are sent again after the
server's ``Retry-After`` or an exponential backoff. That is safe because the
service reports an event it has already applied as a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

RETRY_STATUSES = (429, 503)
DEFAULT_MAX_ATTEMPTS = 8
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
ATTRIBUTION_PAGE_SIZE = 1000


class IngestionError(RuntimeError):
    """A failed request to the ingestion service; the message names the request and the fix."""


@dataclass(slots=True)
class BatchResult:
    """The service's verdict on one batch of events."""

    accepted: int
    duplicates: int
    rejected: int
    errors: list[dict[str, Any]] = field(default_factory=list)


class IngestionClient:
    """Sends apps and events to one ingestion service and reads its attribution records."""

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout: float = 60.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_attempts = max_attempts
        self.retries = 0
        self.requests = 0
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> IngestionClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def register_app(self, app_id: str, platform: str) -> bool:
        """Register an app; return True when created, False when it was already registered."""
        response = self._request("POST", "/v1/apps", json={"app_id": app_id, "platform": platform})
        if response.status_code == 201:
            return True
        if response.status_code == 409:
            return False
        raise self._error(response, f"registering app {app_id!r}")

    def post_events(self, events: list[dict[str, Any]]) -> BatchResult:
        """Send one batch as a JSON array and return the counts the service reports."""
        body = orjson.dumps(events)
        response = self._request(
            "POST", "/v1/events", content=body, headers={"Content-Type": "application/json"}
        )
        if response.status_code != 200:
            hint = ""
            if response.status_code == 413:
                hint = ": lower --batch-size"
            raise self._error(response, f"sending a batch of {len(events)} events", hint)
        payload = response.json()
        return BatchResult(
            accepted=int(payload["accepted"]),
            duplicates=int(payload["duplicates"]),
            rejected=int(payload["rejected"]),
            errors=list(payload.get("errors") or []),
        )

    def iter_attributions(self, app_id: str) -> Iterator[dict[str, Any]]:
        """Yield every attribution record of an app, following ``next_cursor`` page by page."""
        params: dict[str, Any] = {"app_id": app_id, "limit": ATTRIBUTION_PAGE_SIZE}
        while True:
            response = self._request("GET", "/v1/attributions", params=params)
            if response.status_code != 200:
                raise self._error(response, f"reading the attribution records of app {app_id!r}")
            page = response.json()
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return
            params["cursor"] = cursor

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request, again after a 429, a 503 or a transport error, up to max_attempts times."""
        attempt = 1
        while True:
            self.requests += 1
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                if attempt >= self.max_attempts:
                    raise IngestionError(
                        f"{method} {self.base_url}{path} failed after {attempt} attempts: {error!r}; "
                        "check that the ingestion service runs at this URL (--url)"
                    ) from error
                delay = _backoff_seconds(attempt)
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.max_attempts:
                    return response
                delay = _retry_after_seconds(response, attempt)
            self.retries += 1
            self._sleep(delay)
            attempt += 1

    def _error(self, response: httpx.Response, action: str, hint: str = "") -> IngestionError:
        failure = f"{action} failed: {response.request.method} {response.request.url.path} returned {response.status_code}"
        if response.status_code == 401:
            # The service's own 401 message also offers an ingest key, which the replay never uses.
            return IngestionError(
                f"{failure}: the service rejected the admin token; set UNMOGROWP_ADMIN_TOKEN or "
                "--admin-token-file to the token the service was started with"
            )
        return IngestionError(f"{failure} {_error_detail(response)}{hint}")


def _backoff_seconds(attempt: int) -> float:
    return min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1))


def _retry_after_seconds(response: httpx.Response, attempt: int) -> float:
    """Use Retry-After when it is a number of seconds, else the exponential backoff."""
    header = response.headers.get("Retry-After", "")
    try:
        seconds = float(header)
    except ValueError:
        return _backoff_seconds(attempt)
    return min(MAX_BACKOFF_SECONDS, max(0.0, seconds))


def _error_detail(response: httpx.Response) -> str:
    """Return the service's error message, cut to 500 characters."""
    text = response.text.strip()
    try:
        payload = response.json()
    except ValueError:
        return text[:500]
    if isinstance(payload, dict):
        for key in ("error", "detail", "message"):
            if key in payload:
                detail = payload[key]
                return (detail if isinstance(detail, str) else orjson.dumps(detail).decode())[:500]
    return text[:500]
