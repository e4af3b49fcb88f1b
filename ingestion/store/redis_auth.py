"""Load an ingest key issued on another worker before the route checks it.

Routes look keys up in the store's local copy of the apps, without I/O. That
copy lags other workers by up to one refresh interval, so a client that
registers an app on one worker and sends its first batch to another would
get 401 for an unknown key. This middleware reads such a key from Redis first.
A key that Redis does not know either is remembered for ``MISS_SECONDS``, so
a client repeating a wrong key costs one Redis lookup per interval, not one
per request.
"""

from __future__ import annotations

import logging
import time

from ingestion.auth import KEY_PREFIX
from ingestion.store.base import StoreUnavailable

logger = logging.getLogger(__name__)

MISS_SECONDS = 1.0
MAX_REMEMBERED_MISSES = 10_000
_BEARER = b"bearer "
_PREFIX = KEY_PREFIX.encode()


def _key_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            if value[:7].lower() != _BEARER:
                return None
            token = value[7:].strip()
            if not token.startswith(_PREFIX):
                return None
            key_id, separator, _ = token[len(_PREFIX):].partition(b"_")
            return key_id.decode("latin-1") if separator and key_id else None
    return None


class KeyLookupMiddleware:
    """ASGI middleware that fills the store's app copy on an ingest-key miss."""

    def __init__(self, app, *, store) -> None:
        self.app = app
        self.store = store
        self.misses: dict[str, float] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            key_id = _key_id(scope["headers"])
            if key_id is not None and self.store.app_by_key_id(key_id) is None:
                await self._lookup(key_id)
        await self.app(scope, receive, send)

    async def _lookup(self, key_id: str) -> None:
        now = time.monotonic()
        missed_at = self.misses.get(key_id)
        if missed_at is not None and now - missed_at < MISS_SECONDS:
            return
        try:
            found = await self.store.fetch_app_by_key_id(key_id)
        except StoreUnavailable:
            # The store counted and logged the error, and the route returns 401 for this key.
            return
        if found is not None:
            self.misses.pop(key_id, None)
            return
        if len(self.misses) >= MAX_REMEMBERED_MISSES:
            self.misses.clear()
        self.misses[key_id] = now
