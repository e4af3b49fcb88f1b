"""HTTP client of the ingestion service's admin API: statistics and attribution records.

It uses one ``httpx.AsyncClient`` whose transport opens a client span per call and sends the
W3C ``traceparent`` header when tracing is on. With tracing off the calls go out unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from customer_tracker.errors import IngestionFailed, IngestionUnavailable
from exporters.tracing_httpx import TracingAsyncTransport

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
ATTRIBUTION_PAGE_SIZE = 1000
# A stop for a service whose cursor never ends the list.
MAX_ATTRIBUTION_PAGES = 10_000


class IngestionClient:
    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=timeout_seconds,
            transport=TracingAsyncTransport(transport),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return await self._client.get(path, params=params)
        except httpx.TimeoutException:
            raise IngestionUnavailable(
                f"the ingestion service at {self.base_url} timed out on GET {path}: check that it runs, "
                "then retry"
            ) from None
        except httpx.TransportError as error:
            raise IngestionUnavailable(
                f"the ingestion service at {self.base_url} is unreachable on GET {path} "
                f"({type(error).__name__}: {error}): start it or fix --ingestion-url, then retry"
            ) from None

    def _failure(self, response: httpx.Response) -> IngestionFailed:
        path = response.request.url.path
        if response.status_code == 401:
            return IngestionFailed(
                f"the ingestion service at {self.base_url} rejected the tracker's admin token on GET {path}: "
                "start both services with the same UNMOGROWP_ADMIN_TOKEN"
            )
        excerpt = response.text[:200].replace("\n", " ")
        return IngestionFailed(
            f"the ingestion service at {self.base_url} returned HTTP {response.status_code} on GET {path}: {excerpt}"
        )

    @staticmethod
    def _json_object(response: httpx.Response, what: str) -> dict:
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise IngestionFailed(f"the ingestion service returned {what} that is not a JSON object")
        return document

    async def get_stats(self) -> dict:
        """Return the body of ``GET /v1/stats``: per app, event counts and latency percentiles."""
        response = await self._get("/v1/stats")
        if response.status_code != 200:
            raise self._failure(response)
        document = self._json_object(response, "statistics")
        if not isinstance(document.get("apps"), dict):
            raise IngestionFailed("the ingestion service returned statistics without an 'apps' object")
        return document

    async def iter_attributions(self, app_id: str) -> AsyncIterator[dict]:
        """Yield every attribution record of ``app_id``, following the cursor page by page.

        An app that the ingestion service does not know (404) has no records.
        """
        cursor: str | None = None
        for _page in range(MAX_ATTRIBUTION_PAGES):
            params: dict[str, Any] = {"app_id": app_id, "limit": ATTRIBUTION_PAGE_SIZE}
            if cursor is not None:
                params["cursor"] = cursor
            response = await self._get("/v1/attributions", params)
            if response.status_code == 404:
                logger.warning("app unknown to the ingestion service", extra={"app_id": app_id})
                return
            if response.status_code != 200:
                raise self._failure(response)
            document = self._json_object(response, "an attribution page")
            items = document.get("items")
            if not isinstance(items, list):
                raise IngestionFailed("the ingestion service returned an attribution page without an 'items' list")
            for item in items:
                if isinstance(item, dict):
                    yield item
            cursor = document.get("next_cursor")
            if not cursor:
                return
        raise IngestionFailed(
            f"the attribution list of app {app_id!r} did not end after {MAX_ATTRIBUTION_PAGES} pages"
        )
