"""Every route returns 503 with Retry-After when the store is unreachable."""

from __future__ import annotations

import argparse

import httpx

from ingestion.main import add_arguments, build_app
from ingestion.store.base import StoreUnavailable

TOKEN = "t" * 32


async def test_app_routes_answer_503(tmp_path, monkeypatch):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    app, _metrics = build_app(parser.parse_args(["--data-dir", str(tmp_path)]), TOKEN)
    store = app.state.ingestion.store

    async def unreachable(*_args, **_kwargs):
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(store, "list_apps", unreachable)
    monkeypatch.setattr(store, "get_app", unreachable)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        listing = await client.get("/v1/apps", headers=headers)
        record = await client.get("/v1/attributions/some-app/some-install", headers=headers)

    for response in (listing, record):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "unavailable" in response.json()["detail"]
