"""ASGI middleware: one server span per request, and its access-log line.

``TracingMiddleware`` is a plain ASGI middleware (no ``BaseHTTPMiddleware``,
so no extra task or body copy per request). For each HTTP request it

- continues the trace of an incoming W3C ``traceparent`` (through the
  propagators of ``OTEL_PROPAGATORS``, by default trace context and baggage),
  or starts a new one that the sampler keeps or not;
- names the span after the method and the route template, such as
  ``POST /v1/events``, never after the raw path, so span names stay few;
- records exceptions and 5xx responses on the span as errors;
- logs one access-log line for each sampled request and each request that
  failed or rejected events, rate-limited by ``AccessLog``.

Install it outermost, so that the span covers the other middleware. When
tracing is off it only writes the access-log lines of failed requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode

from exporters import tracing
from exporters.tracing_access_log import AccessLog

# Scrapes and probes: no span, and an access-log line only when they fail.
UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz", "/health"})
UNMATCHED_ROUTE = "unmatched"
MAX_LOGGED_PATH_CHARACTERS = 256


class _AsgiHeaderGetter(Getter):
    """Read header values from an ASGI scope's ``headers`` list."""

    def get(self, carrier, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for header, value in carrier if header == name]
        return values or None

    def keys(self, carrier) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


_getter = _AsgiHeaderGetter()


class TracingMiddleware:
    """Open a server span per request and write its rate-limited access-log line."""

    def __init__(
        self,
        app,
        *,
        registry=None,
        access_log: AccessLog | None = None,
        untraced_paths: Iterable[str] = UNTRACED_PATHS,
    ) -> None:
        self.app = app
        self.access_log = access_log if access_log is not None else AccessLog(registry)
        self.untraced_paths = frozenset(untraced_paths)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        request = tracing.RequestRecord()
        request_token = tracing.current_request.set(request)
        status_code = 0

        async def send_and_record_status(message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        tracer = tracing.current_tracer()
        span = None
        context_token = None
        if tracer is not None and scope["path"] not in self.untraced_paths:
            parent = propagate.extract(scope["headers"], getter=_getter)
            span = tracer.start_span(scope["method"], context=parent, kind=SpanKind.SERVER)
            request.span = span
            context_token = context.attach(trace.set_span_in_context(span, parent))

        failure: Exception | None = None
        try:
            await self.app(scope, receive, send_and_record_status)
        except Exception as error:
            failure = error
            raise
        finally:
            try:
                self._finish(scope, request, status_code, failure, time.perf_counter() - started)
            finally:
                if span is not None:
                    span.end()
                if context_token is not None:
                    context.detach(context_token)
                tracing.current_request.reset(request_token)

    def _finish(self, scope, request: tracing.RequestRecord, status_code: int, failure, elapsed: float) -> None:
        if failure is not None and status_code == 0:
            status_code = 500
        method = scope["method"]
        template = getattr(scope.get("route"), "path", None)
        span = request.span
        sampled = span is not None and span.is_recording()
        if sampled:
            _describe_server_span(span, scope, method, template, status_code, failure)

        if failure is not None or status_code >= 500:
            kind, level, message = "server_error", logging.ERROR, "request failed"
        elif status_code >= 400:
            kind, level, message = "client_error", logging.WARNING, "request rejected"
        elif request.rejected:
            kind, level, message = "rejected_events", logging.WARNING, "batch had rejected events"
        elif sampled:
            kind, level, message = "sampled", logging.INFO, "request traced"
        else:
            return

        fields = {
            "method": method,
            "route": template or UNMATCHED_ROUTE,
            "path": scope["path"][:MAX_LOGGED_PATH_CHARACTERS],
            "status": status_code,
            "duration_ms": round(elapsed * 1000, 3),
            "sampled": sampled,
        }
        for name in ("app_id", "batch_size", "accepted", "duplicates", "rejected"):
            value = getattr(request, name)
            if value is not None:
                fields[name] = value
        if failure is not None:
            fields["error"] = f"{type(failure).__name__}: {failure}"
        # The request's span is still the current one here, so the log
        # formatter adds its trace_id and span_id to the line.
        self.access_log.emit(kind, level, message, fields)


def _describe_server_span(span, scope, method: str, template: str | None, status_code: int, failure) -> None:
    span.update_name(f"{method} {template}" if template else method)
    attributes = {
        "http.request.method": method,
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
        "http.response.status_code": status_code,
    }
    if template:
        attributes["http.route"] = template
    server = scope.get("server")
    if server and server[1] is not None:
        attributes["server.port"] = server[1]
    span.set_attributes(attributes)
    if failure is not None:
        span.record_exception(failure)
        span.set_attribute("error.type", type(failure).__qualname__)
        span.set_status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}")
    elif status_code >= 500:
        span.set_attribute("error.type", str(status_code))
        if span.status.status_code is StatusCode.UNSET:
            # Keeps the description of an error that request code recorded.
            span.set_status(StatusCode.ERROR, f"HTTP {status_code}")
