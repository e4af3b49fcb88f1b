"""Fixtures that open embedded stores on temporary folders; see helpers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ingestion.model import AppSettings
from ingestion.store.memory import MemoryLimits, MemoryStore
from tests.unit.ingestion.helpers import APP_ID, Harness, open_store, register


@pytest.fixture
async def make_harness(tmp_path: Path):
    """Return an async factory: ``await make_harness(platform="ios", click_window_s=60)``."""
    stores: list[MemoryStore] = []

    async def factory(*, limits: MemoryLimits | None = None, data_dir: Path | None = None, **settings) -> Harness:
        settings.setdefault("app_id", APP_ID)
        settings.setdefault("platform", "android")
        app = AppSettings(**settings)
        store = await open_store(data_dir or tmp_path / f"store-{len(stores)}", limits)
        stores.append(store)
        await register(store, app)
        return Harness(store, app)

    yield factory
    for store in stores:
        if store.journal is not None:
            await store.stop()


@pytest.fixture
async def harness(make_harness) -> AsyncIterator[Harness]:
    """An android app with the default windows."""
    yield await make_harness()
