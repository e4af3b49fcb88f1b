"""httpx transports that trace outgoing requests and carry the W3C trace context.

Each request gets a client span (named after the method, as the HTTP semantic
conventions name a client span without a URL template) that is a child of
the current span, and its ``traceparent`` header names that span, so the
server it calls continues the same trace. When tracing is off the request
goes out unchanged.

    client = httpx.AsyncClient(transport=TracingAsyncTransport())
"""

from __future__ import annotations

import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from exporters import tracing


def _start_client_span(request: httpx.Request) -> Span | None:
    tracer = tracing.current_tracer()
    if tracer is None:
        return None
    method = request.method
    span = tracer.start_span(method, kind=SpanKind.CLIENT)
    if span.is_recording():
        url = request.url
        span.set_attributes(
            {
                "http.request.method": method,
                "server.address": url.host,
                "server.port": url.port or (443 if url.scheme == "https" else 80),
                "url.scheme": url.scheme,
                "url.path": url.path,
            }
        )
    # Injects even for an unsampled span, so the server keeps the same
    # sampling decision under a parent-based sampler.
    propagate.inject(request.headers, context=trace.set_span_in_context(span))
    return span


def _end_client_span(span: Span, response: httpx.Response | None, error: Exception | None) -> None:
    if span.is_recording():
        if error is not None:
            span.record_exception(error)
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
        elif response is not None:
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_attribute("error.type", str(response.status_code))
                span.set_status(StatusCode.ERROR, f"HTTP {response.status_code}")
    span.end()


class TracingAsyncTransport(httpx.AsyncBaseTransport):
    """Wrap an async transport (by default ``httpx.AsyncHTTPTransport()``) with client spans."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        span = _start_client_span(request)
        if span is None:
            return await self._transport.handle_async_request(request)
        try:
            response = await self._transport.handle_async_request(request)
        except Exception as error:
            _end_client_span(span, None, error)
            raise
        _end_client_span(span, response, None)
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()


class TracingTransport(httpx.BaseTransport):
    """Wrap a sync transport (by default ``httpx.HTTPTransport()``) with client spans."""

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self._transport = transport if transport is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        span = _start_client_span(request)
        if span is None:
            return self._transport.handle_request(request)
        try:
            response = self._transport.handle_request(request)
        except Exception as error:
            _end_client_span(span, None, error)
            raise
        _end_client_span(span, response, None)
        return response

    def close(self) -> None:
        self._transport.close()
