"""An embedded store on a temporary folder, and a compact way to feed it events.

Event times are fixed epoch seconds around ``T`` and every batch is applied
with the receipt time ``NOW``, far after them, so no test depends on the
wall clock.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from ingestion.engine import Outcome
from ingestion.events import Event, validate_event
from ingestion.model import AppSettings, Record, StoredApp, record_to_json
from ingestion.store.memory import MemoryLimits, MemoryStore

T = 1_700_000_000.0
NOW = 1_800_000_000.0
APP_ID = "app.test"


def event(event_type: str, event_id: str, event_time: float, **fields) -> dict:
    """Return an event document; clicks and impressions get a network unless one is given."""
    document = {"event_id": event_id, "event_type": event_type, "event_time": event_time}
    if event_type in ("click", "impression"):
        document.setdefault("network", "net-" + event_id)
    document.update(fields)
    return document


class Harness:
    """One registered app on a started ``MemoryStore``."""

    def __init__(self, store: MemoryStore, settings: AppSettings) -> None:
        self.store = store
        self.settings = settings

    async def send(self, *documents: dict, now: float = NOW, settings: AppSettings | None = None) -> Outcome:
        """Validate the documents as the API does and apply them as one batch."""
        settings = settings or self.settings
        events = []
        for document in documents:
            parsed = msgspec.convert({"app_id": settings.app_id, **document}, Event)
            problem = validate_event(parsed, now, settings.platform)
            assert problem is None, f"{document}: {problem}"
            events.append(parsed)
        return await self.store.apply(settings, events, now)

    async def record(self, install_event_id: str, app_id: str | None = None) -> dict:
        found: Record | None = await self.store.get_record(app_id or self.settings.app_id, install_event_id)
        assert found is not None, f"no record for install {install_event_id}"
        return record_to_json(found)


async def open_store(data_dir: Path, limits: MemoryLimits | None = None) -> MemoryStore:
    store = MemoryStore(data_dir, limits=limits, fsync_interval=0.05)
    await store.start()
    return store


async def register(store: MemoryStore, settings: AppSettings) -> None:
    created = await store.create_app(StoredApp(settings=settings, key_id=settings.app_id, key_hash="0" * 64, created_at=T))
    assert created
