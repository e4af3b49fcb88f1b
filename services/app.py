"""The ASGI application every service starts from.

``create_app`` returns a FastAPI app that already serves ``/metrics``,
``/healthz`` and ``/readyz``, records request counts and durations, and runs
the service's start and stop hooks in its lifespan. uvicorn runs the lifespan
shutdown on SIGTERM and SIGINT after in-flight requests finish, so the stop
hooks are where a service flushes what it has acknowledged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from exporters.exposition import render
from exporters.metrics import Counter, Histogram, Registry
from exporters.tracing import TracingConfigError, configure_tracing
from exporters.tracing_asgi import TracingMiddleware
from services.config import ConfigError

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]
ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
# Extra facts for the /readyz body that do not decide readiness (a stale figure, say).
ReadinessDetails = Callable[[], dict[str, object]]

REQUEST_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "unmatched"


class RequestMetricsMiddleware:
    """Count requests and time them by route template, method and status.

    The route label is the template (``/v1/apps/{app_id}``), never the raw
    path, so a client cannot grow the label set by requesting new paths.
    """

    def __init__(self, app, *, service: str, registry: Registry) -> None:
        self.app = app
        self.service = service
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by route template, method and status code.",
            ("service", "method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from receiving a request to sending the end of its response, in seconds.",
            ("service", "method", "route"),
            registry=registry,
            buckets=REQUEST_DURATION_BUCKETS,
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status_code = 500

        async def send_and_record_status(message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            method = scope["method"] if template != UNMATCHED_ROUTE else "other"
            elapsed = time.perf_counter() - started
            self.requests.labels(self.service, method, template, str(status_code)).inc()
            self.duration.labels(self.service, method, template).observe(elapsed)


DOCS_ASSETS_PATH = "/docs-assets"


def mount_api_docs(app: FastAPI) -> None:
    """Serve the Swagger UI page at /docs from the installed swagger-ui-bundle, not from a CDN.

    FastAPI's default page loads its scripts from cdn.jsdelivr.net, so it is blank on a
    machine without internet access.
    """
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title}: API",
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon-32x32.png",
        )


def create_app(
    *,
    title: str,
    service: str,
    registry: Registry,
    readiness: ReadinessCheck,
    readiness_details: ReadinessDetails | None = None,
    startup: Iterable[Hook] = (),
    shutdown: Iterable[Hook] = (),
    description: str = "",
    version: str = "0.1.0",
) -> FastAPI:
    """Build the FastAPI app of one service with its operational endpoints."""
    startup_hooks = list(startup)
    shutdown_hooks = list(shutdown)
    try:
        tracing = configure_tracing(service, registry)
    except TracingConfigError as error:
        raise ConfigError(str(error)) from None
    if tracing is not None:
        # Last, so spans of the other stop hooks are still exported.
        shutdown_hooks.append(tracing.aclose)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        for hook in startup_hooks:
            await hook()
        logger.info("service started", extra={"event": "start"})
        try:
            yield
        finally:
            logger.info("service stopping", extra={"event": "stop"})
            for hook in shutdown_hooks:
                try:
                    await hook()
                except Exception:
                    logger.exception("stop hook failed", extra={"hook": getattr(hook, "__qualname__", str(hook))})
            logger.info("service stopped", extra={"event": "stopped"})

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan, docs_url=None, redoc_url=None)
    mount_api_docs(app)
    app.state.registry = registry

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        body, content_type = render(registry, request.headers.get("accept"))
        return Response(content=body, media_type=content_type)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process runs and its event loop responds."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """Readiness: every store the service depends on responds."""
        checks = await readiness()
        ready = all(checks.values())
        body: dict[str, object] = {"ready": ready, "checks": checks}
        if readiness_details is not None:
            body.update(readiness_details())
        return JSONResponse(body, status_code=200 if ready else 503)

    app.add_middleware(RequestMetricsMiddleware, service=service, registry=registry)
    # Added last, so it is the outermost middleware and its span covers the request.
    app.add_middleware(TracingMiddleware, registry=registry)
    return app
