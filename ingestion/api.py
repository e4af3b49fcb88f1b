"""HTTP routes of the ingestion service: apps, events, attributions, stats."""

from __future__ import annotations

import base64
import dataclasses
import binascii
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable
from operator import attrgetter
from dataclasses import dataclass

import msgspec
from msgspec import UNSET
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from exporters.tracing import child_span, current_exemplar, record_batch
from ingestion.auth import Authenticator, Principal, bearer_token, new_ingest_key
from ingestion.body import JSON_TYPES, NDJSON_TYPES, media_type, read_limited_body
from ingestion.events import (
    BatchFormatError,
    Event,
    EventError,
    decode_batch,
    field_and_reason,
    validate_event,
    with_hint,
)
from ingestion.metrics import UNKNOWN, UNREGISTERED_APP, IngestionMetrics
from ingestion.model import AppSettings, AppUpdate, StoredApp, format_time, record_to_json
from ingestion.ratelimit import RateLimits
from ingestion.stats import Books, StatsBook
from ingestion.store.base import RecordQuery, Store, StoreUnavailable

logger = logging.getLogger(__name__)

EVENTS_ENDPOINT = "/v1/events"
RETRY_AFTER_UNAVAILABLE = "5"
MAX_PAGE_SIZE = 1000
# Unknown app ids of one batch looked up in the store; the rest are judged from the local copy.
MAX_APP_LOOKUPS = 16

_app_settings_decoder = msgspec.json.Decoder(AppSettings)
_app_update_decoder = msgspec.json.Decoder(AppUpdate)
_encoder = msgspec.json.Encoder()


@dataclass
class Limits:
    max_body_bytes: int = 10 * 1024 * 1024
    max_batch_events: int = 10_000


class IngestionService:
    """The state behind the routes: store, authentication, metrics, stats."""

    def __init__(self, store: Store, admin_token: str, metrics: IngestionMetrics, *, limits: Limits, stats_window_s: int) -> None:
        self.store = store
        self.auth = Authenticator(admin_token, store)
        self.metrics = metrics
        self.limits = limits
        self.stats = StatsBook(stats_window_s)
        # The books of the other worker processes, which /v1/stats adds to this one's (stats_sharing).
        self.stats_peers: Callable[[], list[Books]] = list
        self.rate_limits = RateLimits()


def json_response(document, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(document), status_code=status_code, media_type="application/json", headers=headers)


def _principal(request: Request) -> Principal:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise HTTPException(401, "missing bearer token: send Authorization: Bearer <ingest key or admin token>",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = request.app.state.ingestion.auth.identify(token)
    if principal is None:
        raise HTTPException(401, "unknown token: use the ingest key returned when the app was registered, or the admin token",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


def _require_admin(request: Request) -> None:
    if not _principal(request).is_admin:
        raise HTTPException(403, "this operation needs the admin token, not an ingest key")


def _app_document(app: StoredApp) -> dict:
    document = msgspec.to_builtins(app.settings)
    document["created_at"] = format_time(app.created_at)
    return document


async def _decode_json_body(request: Request, decoder: msgspec.json.Decoder, max_bytes: int = 64 * 1024):
    body = await read_limited_body(request, max_bytes)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as error:
        raise HTTPException(422, _describe_field_error(error)) from None
    except msgspec.DecodeError as error:
        raise HTTPException(400, f"body is not valid JSON: {error}") from None


# Fix hints by app settings field, appended to the decoder's reason for a bad value.
_WINDOW_HINT = "send whole seconds from 0 to 315360000 (ten years)"
APP_FIELD_HINTS = {
    "app_id": "send 1 to 128 characters",
    "platform": "use one of ios, android, web",
    "max_events_per_second": "send a whole number above 0, or null or nothing for no limit",
    **dict.fromkeys(
        ("click_window_s", "impression_window_s", "fingerprint_window_s", "reinstall_window_s", "ctit_min_s"),
        _WINDOW_HINT,
    ),
}
_SETTABLE_FIELDS = ", ".join(name for name in APP_FIELD_HINTS if name != "app_id")


def _describe_field_error(error: msgspec.ValidationError) -> str:
    """Turn msgspec's "Reason - at `$.field`" into "field: reason; fix" for app settings."""
    field, reason = field_and_reason(error)
    if field:
        return with_hint(field, reason, APP_FIELD_HINTS)
    if reason.startswith("Object contains unknown field"):
        return f"{reason}; the settings are app_id (at registration only) and {_SETTABLE_FIELDS}"
    return reason


router = APIRouter()


@router.post("/v1/apps", status_code=201, tags=["apps"], summary="Register an app and issue its ingest key")
async def create_app(request: Request) -> Response:
    """Register an app. The response contains its ingest key, shown this one time only."""
    _require_admin(request)
    service: IngestionService = request.app.state.ingestion
    settings = await _decode_json_body(request, _app_settings_decoder)
    key, key_id, key_hash = new_ingest_key()
    stored = StoredApp(settings=settings, key_id=key_id, key_hash=key_hash, created_at=time.time())
    if not await service.store.create_app(stored):
        raise HTTPException(409, f"app_id: app {settings.app_id!r} is already registered; choose another id or PATCH it")
    logger.info("app registered", extra={"app_id": settings.app_id, "key_id": key_id})
    return json_response({"app": _app_document(stored), "ingest_key": key}, 201)


@router.get("/v1/apps", tags=["apps"], summary="List registered apps")
async def list_apps(request: Request) -> Response:
    _require_admin(request)
    apps = await request.app.state.ingestion.store.list_apps()
    return json_response({"items": [_app_document(app) for app in apps], "next_cursor": None})


async def _visible_app(request: Request, app_id: str) -> StoredApp:
    principal = _principal(request)
    if not principal.is_admin and principal.app_id != app_id:
        raise HTTPException(403, f"this ingest key belongs to app {principal.app_id!r}, not {app_id!r}")
    app = await request.app.state.ingestion.store.get_app(app_id)
    if app is None:
        raise HTTPException(404, f"app {app_id!r} is not registered")
    return app


@router.get("/v1/apps/{app_id}", tags=["apps"], summary="Show one app")
async def get_app(request: Request, app_id: str) -> Response:
    return json_response(_app_document(await _visible_app(request, app_id)))


@router.patch("/v1/apps/{app_id}", tags=["apps"], summary="Change an app's platform, windows or rate")
async def update_app(request: Request, app_id: str) -> Response:
    _require_admin(request)
    service: IngestionService = request.app.state.ingestion
    app = await service.store.get_app(app_id)
    if app is None:
        raise HTTPException(404, f"app {app_id!r} is not registered")
    update = await _decode_json_body(request, _app_update_decoder)
    changes = {name: value for name, value in msgspec.structs.asdict(update).items() if value is not UNSET}
    settings = msgspec.structs.replace(app.settings, **changes)
    updated = msgspec.structs.replace(app, settings=settings)
    await service.store.replace_app(updated)
    logger.info("app updated", extra={"app_id": app_id, "fields": sorted(changes)})
    return json_response(_app_document(updated))


@router.delete("/v1/apps/{app_id}", status_code=204, tags=["apps"], summary="Delete an app and revoke its key")
async def delete_app(request: Request, app_id: str) -> Response:
    _require_admin(request)
    service: IngestionService = request.app.state.ingestion
    if not await service.store.delete_app(app_id):
        raise HTTPException(404, f"app {app_id!r} is not registered")
    service.stats.forget(app_id)
    logger.info("app deleted", extra={"app_id": app_id})
    return Response(status_code=204)


EVENTS_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


@router.post(EVENTS_ENDPOINT, tags=["events"], summary="Send a batch of events", openapi_extra=EVENTS_OPENAPI)
async def post_events(request: Request) -> Response:
    """Judge each event on its own, apply the valid ones, and return why the others were rejected."""
    started = time.perf_counter()
    service: IngestionService = request.app.state.ingestion
    principal = _principal(request)

    kind = media_type(request)
    if kind in NDJSON_TYPES:
        ndjson = True
    elif kind in JSON_TYPES:
        ndjson = False
    else:
        raise HTTPException(415, f"Content-Type {kind!r} is not supported; send application/json or application/x-ndjson")
    with child_span("decode"):
        body = await read_limited_body(request, service.limits.max_body_bytes)
        try:
            events, errors = decode_batch(body, ndjson=ndjson)
        except BatchFormatError as error:
            raise HTTPException(400, str(error)) from None
    if len(events) > service.limits.max_batch_events:
        raise HTTPException(
            413, f"batch of {len(events)} events exceeds the limit of {service.limits.max_batch_events}; split it"
        )

    now = time.time()
    tally: Tally = Tally()
    rejected_by_app: Tally = Tally()
    for error in errors:
        # An ingest key's events count under its app. With the admin token, an event counts under
        # the app it names when that app is in this worker's cache of registered apps, so no
        # client can grow the label set.
        app_id = principal.app_id
        if app_id is None:
            named = error.app_id
            app_id = named if named is not None and service.store.cached_app(named) is not None else UNREGISTERED_APP
        error.app_id = None
        tally[(app_id, UNKNOWN, UNKNOWN, "rejected")] += 1
        rejected_by_app[app_id] += 1

    store = service.store
    # Judge each distinct app id once per batch, not once per event.
    verdicts: dict[str, tuple[AppSettings | None, str | None, str]] = {}
    lookups = 0
    for app_id in {event.app_id for event in events if event is not None}:
        if store.cached_app(app_id) is None and lookups < MAX_APP_LOOKUPS:
            # A shared store's local copy may not have an app that another worker registered a moment ago.
            lookups += 1
            await _lookup_app(store, app_id)
        verdicts[app_id] = _judge_app(store, principal, app_id)

    groups = _group_valid_events(events, verdicts, now, Rejections(errors, tally, rejected_by_app))

    for app_id, (settings, accepted_events) in groups.items():
        wait = service.rate_limits.wait_seconds(app_id, settings.max_events_per_second, len(accepted_events))
        if wait:
            raise HTTPException(
                429,
                f"app {app_id!r} is over its rate of {settings.max_events_per_second} events per second; "
                f"retry after {wait:.0f} s",
                headers={"Retry-After": f"{wait:.0f}"},
            )

    accepted_total = 0
    duplicates_total = 0
    per_app_counts: dict[str, tuple[int, int]] = {}
    for app_id, (settings, app_events) in groups.items():
        try:
            with child_span("attribute", {"unmogrowp.app_id": app_id, "unmogrowp.batch.size": len(app_events)}):
                outcome = await store.apply(settings, app_events, now)
        except StoreUnavailable as error:
            logger.error("store unavailable", extra={"app_id": app_id, "events": len(app_events), "error": str(error)})
            raise HTTPException(
                503, f"the event store is unavailable ({error}); retry later, retries are safe",
                headers={"Retry-After": RETRY_AFTER_UNAVAILABLE},
            ) from None
        # Counted by C-level iteration: (event_type, platform, is_duplicate) -> events.
        by_kind = Tally(zip(map(_event_type, app_events), map(_platform, app_events), outcome.duplicate_flags))
        duplicates = 0
        for (event_type, platform, duplicate), count in by_kind.items():
            if duplicate:
                duplicates += count
            tally[(app_id, event_type, platform, "duplicate" if duplicate else "accepted")] += count
        accepted = len(app_events) - duplicates
        accepted_total += accepted
        duplicates_total += duplicates
        per_app_counts[app_id] = (accepted, duplicates)
        if outcome.records:
            service.metrics.record_installs(app_id, outcome.records)
        if outcome.carried:
            service.metrics.record_carried(app_id, outcome.carried)

    metrics = service.metrics
    metrics.record_events(tally)
    elapsed = time.perf_counter() - started
    total_events = len(events)
    if total_events:
        metrics.duration.labels(EVENTS_ENDPOINT).observe(elapsed, count=total_events, exemplar=current_exemplar())
    latency_ms = elapsed * 1000.0
    for app_id, (accepted, duplicates) in per_app_counts.items():
        stored = store.cached_app(app_id)
        registered_at = stored.created_at if stored is not None else 0.0
        service.stats.record(app_id, registered_at, accepted, duplicates, rejected_by_app.pop(app_id, 0), latency_ms, now)
    for app_id, rejected in rejected_by_app.items():
        if app_id != UNREGISTERED_APP and (stored := store.cached_app(app_id)) is not None:
            service.stats.record(app_id, stored.created_at, 0, 0, rejected, latency_ms, now)

    errors.sort(key=lambda error: error.index)
    record_batch(
        # An admin token may send several apps' events: then no single app is named.
        app_id=principal.app_id or (next(iter(groups)) if len(groups) == 1 else None),
        batch_size=total_events,
        accepted=accepted_total,
        duplicates=duplicates_total,
        rejected=len(errors),
    )
    return json_response(
        {"accepted": accepted_total, "duplicates": duplicates_total, "rejected": len(errors), "errors": errors}
    )


_event_type = attrgetter("event_type")
_platform = attrgetter("platform")


@dataclass
class Rejections:
    """The rejected events of one batch: response errors, event counts and per-app rejection counts."""

    errors: list[EventError]
    tally: Tally
    by_app: Tally

    def add(self, index: int, event: Event, label: str, message: str) -> None:
        self.errors.append(EventError(index, event.event_id, message))
        self.tally[(label, event.event_type, event.platform or UNKNOWN, "rejected")] += 1
        self.by_app[label] += 1


def _group_valid_events(
    events: list[Event | None],
    verdicts: dict[str, tuple[AppSettings | None, str | None, str]],
    now: float,
    rejections: Rejections,
) -> dict[str, tuple[AppSettings, list[Event]]]:
    """Validate the decoded events and group the valid ones by app label, in batch order."""
    if len(verdicts) == 1 and not rejections.errors:
        # The usual batch: one app, every event decoded. Validate in one pass and keep the list.
        ((settings, message, label),) = verdicts.values()
        if message is None:
            platform = settings.platform
            messages = [validate_event(event, now, platform) for event in events]
            if not any(messages):
                return {label: (settings, events)} if events else {}

    groups: dict[str, tuple[AppSettings, list[Event]]] = {}
    for index, event in enumerate(events):
        if event is None:
            continue
        settings, message, label = verdicts[event.app_id]
        if message is None:
            # Validation normalizes in place and returns the same result when repeated, so an
            # event that the one-pass branch above already validated may be validated again.
            message = validate_event(event, now, settings.platform)
            if message is None:
                group = groups.get(label)
                if group is None:
                    group = groups[label] = (settings, [])
                group[1].append(event)
                continue
        rejections.add(index, event, label, message)
    return groups


async def _lookup_app(store: Store, app_id: str) -> None:
    # StoreUnavailable reaches _store_unavailable, which returns 503.
    await store.get_app(app_id)


def _judge_app(store: Store, principal: Principal, app_id: str) -> tuple[AppSettings | None, str | None, str]:
    """Return the app's settings, why its events are rejected (or None), and their metric label."""
    if principal.app_id is not None and principal.app_id != app_id:
        message = (
            f"app_id: the ingest key belongs to app {principal.app_id!r}, not {app_id!r}; "
            "send each app's events with its own key"
        )
        # Count it for the sender, so one app's mistakes never show in another app's figures. Judged
        # before registration, so a key gets the same message whether or not the other app exists.
        return None, message, principal.app_id
    stored = store.cached_app(app_id)
    if stored is None:
        return None, f"app_id: app {app_id!r} is not registered; register it with POST /v1/apps", UNREGISTERED_APP
    return stored.settings, None, app_id


def _parse_time(name: str, text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        import datetime as dt

        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(400, f"{name}: {text!r} is not a time; send RFC 3339 with an offset or epoch seconds") from None
    if moment.tzinfo is None:
        raise HTTPException(400, f"{name}: {text!r} has no offset; add Z or +HH:MM")
    return moment.timestamp()


def _encode_cursor(app_id: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{seq}:{app_id}".encode()).decode().rstrip("=")


def _decode_cursor(app_id: str, cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        seq_text, _, cursor_app = text.partition(":")
        seq = int(seq_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HTTPException(400, "cursor: not a cursor of this service; pass back next_cursor from the previous page") from None
    if cursor_app != app_id:
        raise HTTPException(400, "cursor: belongs to another app_id; keep app_id the same while paging")
    return seq


@router.get("/v1/attributions", tags=["attributions"], summary="List attribution records")
async def list_attributions(
    request: Request,
    app_id: str | None = Query(None, description="app whose records to list; defaults to the ingest key's app"),
    since: str | None = Query(None, description="install_time at or after this (RFC 3339 or epoch seconds)"),
    until: str | None = Query(None, description="install_time before this (RFC 3339 or epoch seconds)"),
    network: str | None = Query(None),
    status: str | None = Query(None, description="attributed, organic or reinstall"),
    limit: int = Query(100, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> Response:
    principal = _principal(request)
    if app_id is None:
        if principal.is_admin:
            raise HTTPException(400, "app_id: missing; the admin token needs app_id=<app> to list records")
        app_id = principal.app_id
    await _visible_app(request, app_id)
    if status is not None and status not in ("attributed", "organic", "reinstall"):
        raise HTTPException(400, f"status: {status!r} is not one of attributed, organic, reinstall")
    query = RecordQuery(
        app_id=app_id,
        since=_parse_time("since", since),
        until=_parse_time("until", until),
        network=network,
        status=status,
        limit=limit,
        after_seq=_decode_cursor(app_id, cursor),
    )
    records, next_seq = await request.app.state.ingestion.store.list_records(query)
    return json_response({
        "items": [record_to_json(record) for record in records],
        "next_cursor": None if next_seq is None else _encode_cursor(app_id, next_seq),
    })


@router.get("/v1/attributions/{app_id}/{install_event_id}", tags=["attributions"], summary="Show one install's attribution")
async def get_attribution(request: Request, app_id: str, install_event_id: str) -> Response:
    await _visible_app(request, app_id)
    record = await request.app.state.ingestion.store.get_record(app_id, install_event_id)
    if record is None:
        raise HTTPException(404, f"no attribution record for install {install_event_id!r} of app {app_id!r}")
    return json_response(record_to_json(record))


@router.get("/v1/stats", tags=["stats"], summary="Per-app event counts and processing-latency percentiles")
async def stats(request: Request) -> Response:
    _require_admin(request)
    service: IngestionService = request.app.state.ingestion
    now = time.time()
    registered = [(app.settings.app_id, app.created_at) for app in await service.store.list_apps()]
    apps = service.stats.document(registered, now, service.stats_peers())
    for app_id, document in apps.items():
        document["revenue"] = [dataclasses.asdict(line) for line in await service.store.revenue(app_id)]
    return json_response({"generated_at": format_time(now), "window_seconds": service.stats.window_seconds, "apps": apps})


async def _invalid_parameters(request: Request, error: RequestValidationError) -> Response:
    """Return 400 with one plain message naming each invalid query or path parameter.

    400, not FastAPI's usual 422, so that every invalid parameter of ``/v1/attributions`` gets the
    same status, whether FastAPI or the route found it.
    """
    problems = []
    for problem in error.errors():
        name = ".".join(str(part) for part in problem.get("loc", ())[1:]) or "request"
        problems.append(f"{name}: {problem.get('msg', 'invalid value')}")
    message = "; ".join(problems)
    if any(problem.startswith("limit:") for problem in problems):
        message += f"; send limit from 1 to {MAX_PAGE_SIZE}"
    return json_response({"detail": message}, 400)


async def _store_unavailable(request: Request, error: StoreUnavailable) -> Response:
    """Return 503 with Retry-After from any route whose store call failed."""
    logger.error(
        "store unavailable",
        extra={"path": request.url.path, "path_params": dict(request.path_params), "error": str(error)},
    )
    return json_response(
        {"detail": f"the event store is unavailable ({error}); retry later, retries are safe"},
        503,
        headers={"Retry-After": RETRY_AFTER_UNAVAILABLE},
    )


def install_routes(app: FastAPI, service: IngestionService) -> None:
    app.state.ingestion = service
    app.include_router(router)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(RequestValidationError, _invalid_parameters)
    schema = msgspec.json.schema_components([Event], ref_template="#/components/schemas/{name}")[1]

    original_openapi = app.openapi

    def openapi_with_event_schema():
        document = original_openapi()
        document.setdefault("components", {}).setdefault("schemas", {}).update(schema)
        return document

    app.openapi = openapi_with_event_schema
