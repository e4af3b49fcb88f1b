"""Outgoing httpx calls carry the trace context and get client spans."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request

from exporters.metrics import Registry
from exporters.tracing import configure_tracing, current_tracer
from exporters.tracing_asgi import TracingMiddleware
from exporters.tracing_httpx import TracingAsyncTransport, TracingTransport


def parse_traceparent(value: str) -> tuple[str, str, bool]:
    """Return (trace id, parent span id, sampled) of a W3C traceparent value."""
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00"
    return trace_id, span_id, bool(int(flags, 16) & 0x01)


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/attributions")
    async def attributions(request: Request) -> dict:
        return {"traceparent": request.headers.get("traceparent")}

    @app.get("/v1/missing")
    async def missing(request: Request) -> dict:
        from fastapi import HTTPException

        raise HTTPException(404, "no such record")

    app.add_middleware(TracingMiddleware)
    return app


async def test_trace_continues_across_services(start_tracing, receiver):
    handle, registry = start_tracing(**receiver.otel_environment("grpc"))
    transport = TracingAsyncTransport(httpx.ASGITransport(app=echo_app()))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingestion.test:8081") as client:
        with current_tracer().start_as_current_span("reconcile") as job:
            response = await client.get("/v1/attributions", params={"app_id": "app-1"})
            missing = await client.get("/v1/missing")
    assert response.status_code == 200
    assert missing.status_code == 404

    spans = receiver.wait_for_spans(lambda spans: len(spans) >= 5)
    job_id = format(job.get_span_context().span_id, "016x")
    trace_id = format(job.get_span_context().trace_id, "032x")
    clients = [span for span in spans if span.kind == "SPAN_KIND_CLIENT"]
    servers = {span.name: span for span in spans if span.kind == "SPAN_KIND_SERVER"}
    assert {span.trace_id for span in spans} == {trace_id}
    assert [span.name for span in clients] == ["GET", "GET"]
    assert all(span.parent_span_id == job_id for span in clients)

    first_client = next(span for span in clients if span.attributes["url.path"] == "/v1/attributions")
    assert first_client.attributes["server.address"] == "ingestion.test"
    assert first_client.attributes["server.port"] == 8081
    assert first_client.attributes["http.response.status_code"] == 200
    assert servers["GET /v1/attributions"].parent_span_id == first_client.span_id
    assert parse_traceparent(response.json()["traceparent"]) == (trace_id, first_client.span_id, True)

    second_client = next(span for span in clients if span.attributes["url.path"] == "/v1/missing")
    assert second_client.status_code == "STATUS_CODE_ERROR"
    assert second_client.attributes["error.type"] == "404"


async def test_connection_error_recorded(start_tracing, receiver):
    from tests.support.services import free_port

    handle, registry = start_tracing(**receiver.otel_environment("grpc"))
    async with httpx.AsyncClient(transport=TracingAsyncTransport()) as client:
        try:
            await client.get(f"http://127.0.0.1:{free_port()}/v1/stats")
        except httpx.ConnectError:
            pass
        else:
            raise AssertionError("the request to a closed port did not fail")
    [span] = receiver.wait_for_spans(lambda spans: len(spans) >= 1)
    assert span.kind == "SPAN_KIND_CLIENT"
    assert span.status_code == "STATUS_CODE_ERROR"
    assert span.attributes["error.type"] == "ConnectError"
    assert "exception" in span.event_names


def test_sync_transport_injects_traceparent(start_tracing, receiver):
    handle, registry = start_tracing(**receiver.otel_environment("grpc"))
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(200)

    with httpx.Client(transport=TracingTransport(httpx.MockTransport(handler))) as client:
        client.post("http://127.0.0.1:8081/v1/events", json=[])
    [span] = receiver.wait_for_spans(lambda spans: len(spans) >= 1)
    assert [parse_traceparent(value) for value in seen] == [(span.trace_id, span.span_id, True)]
    assert span.name == "POST"


async def test_tracing_off_sends_request_unchanged(clean_otel_env):
    assert configure_tracing("unmogrowp-test", Registry(process_metrics=False)) is None
    transport = TracingAsyncTransport(httpx.ASGITransport(app=echo_app()))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingestion.test") as client:
        response = await client.get("/v1/attributions")
    assert response.json() == {"traceparent": None}
