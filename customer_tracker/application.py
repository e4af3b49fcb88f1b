"""Assemble the tracker's FastAPI app: shared operational endpoints, API routes, error bodies."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from customer_tracker.api import router
from customer_tracker.errors import IngestionUnavailable, TrackerError, Unauthorized
from customer_tracker.service import Tracker, TrackerSettings
from customer_tracker.store import Clock, utc_now
from exporters.metrics import Registry
from services.app import create_app

logger = logging.getLogger(__name__)

SERVICE_NAME = "customer-tracker"

DESCRIPTION = """
Pilot customers from kickoff to launch: onboarding phases, satisfaction surveys, support
tickets, cost savings, attribution accuracy by reconciliation and per-customer API latency,
judged against the pilot's success criteria. Writes need `Authorization: Bearer <admin token>`.
"""


def _location(error: dict) -> str:
    parts = [str(part) for part in error.get("loc", ()) if part != "body"]
    return ".".join(parts) or "body"


async def _tracker_error(_request: Request, error: TrackerError) -> JSONResponse:
    headers = {}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, IngestionUnavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return JSONResponse(error.as_body(), status_code=error.status_code, headers=headers)


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    """Return a routing error (unknown path, method not allowed) in the tracker's error shape."""
    route = f"{request.method} {request.url.path}"
    if error.status_code == 404:
        body = {"error": "not_found", "message": f"{route} is not a route of the tracker; see /docs for the API"}
    elif error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        body = {"error": "method_not_allowed", "message": f"{route} is not allowed; use {allowed or 'another method'}"}
    else:
        body = {"error": "http_error", "message": str(error.detail)}
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


def _describe(item: dict) -> tuple[str, str]:
    """Return the field and message of one validation error, with the fix for a body that is not a JSON object."""
    message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
    if item.get("type") == "json_invalid":
        # The location contains the character offset of the syntax error, not a field.
        offset = item.get("loc", ("body", "?"))[-1]
        reason = item.get("ctx", {}).get("error", "invalid JSON")
        return "body", f"not valid JSON at character {offset} ({reason}); send a JSON object"
    if tuple(item.get("loc", ())) == ("body",) and item.get("type") in ("dict_type", "model_attributes_type"):
        return "body", f"{message}; send a JSON object with Content-Type: application/json"
    return _location(item), message


async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    details = []
    for item in error.errors():
        field, message = _describe(item)
        details.append({"field": field, "message": message})
    summary = "; ".join(f"{detail['field']}: {detail['message']}" for detail in details)
    return JSONResponse(
        {"error": "invalid_input", "message": f"invalid request: {summary}", "details": details},
        status_code=422,
    )


def build_app(
    settings: TrackerSettings,
    *,
    registry: Registry | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """Build the tracker's app; the database is migrated when the app starts."""
    registry = registry or Registry()
    tracker = Tracker(settings, registry, clock=clock)
    app = create_app(
        title="UnMoGrowP customer-success tracker",
        service=SERVICE_NAME,
        registry=registry,
        readiness=tracker.readiness,
        # Stale latency figures do not make the tracker unready (it keeps serving), so the
        # poll state goes in the body only.
        readiness_details=lambda: {"ingestion_stats": tracker.monitor.describe()},
        startup=[tracker.start],
        shutdown=[tracker.stop],
        description=DESCRIPTION,
    )
    app.state.tracker = tracker

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """Liveness, at the path operators of the tracker expect."""
        return {"status": "ok", "service": SERVICE_NAME}

    app.add_exception_handler(TrackerError, _tracker_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.include_router(router)
    return app
