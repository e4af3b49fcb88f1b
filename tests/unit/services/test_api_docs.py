"""The /docs page works offline: Swagger UI comes from the installed package."""

from __future__ import annotations

import httpx

from exporters.metrics import Registry
from services.app import create_app


async def always_ready() -> dict[str, bool]:
    return {"store": True}


def build():
    return create_app(title="Docs test", service="docs-test", registry=Registry(process_metrics=False), readiness=always_ready)


async def test_docs_page_uses_local_assets():
    transport = httpx.ASGITransport(app=build())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/docs")
        script = await client.get("/docs-assets/swagger-ui-bundle.js")
        style = await client.get("/docs-assets/swagger-ui.css")

    assert page.status_code == 200
    assert "cdn.jsdelivr.net" not in page.text
    assert "/docs-assets/swagger-ui-bundle.js" in page.text
    assert script.status_code == 200
    assert len(script.content) > 100_000
    assert style.status_code == 200


async def test_readyz_adds_details_without_deciding():
    app = create_app(
        title="Docs test", service="docs-test", registry=Registry(process_metrics=False), readiness=always_ready,
        readiness_details=lambda: {"stale": True},
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"store": True}, "stale": True}
