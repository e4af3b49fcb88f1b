"""A real OTLP trace receiver for tests: gRPC and HTTP on free loopback ports.

``OtlpReceiver`` serves the OTLP ``TraceService`` over gRPC (the service
definition of ``opentelemetry-proto``, served by ``grpcio``) and
``POST /v1/traces`` over HTTP (protobuf body, gzip accepted), and keeps every
span it receives as a ``ReceivedSpan``::

    with OtlpReceiver() as receiver:
        env = receiver.otel_environment("grpc")
        ...
        spans = receiver.wait_for_spans(lambda spans: len(spans) >= 3)

``stop`` closes both servers, so exporters pointed at them fail as they would
with a collector that is down.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

LOOPBACK = "127.0.0.1"
MAX_HTTP_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver decoded it, with ids in lowercase hex."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str  # SPAN_KIND_SERVER, SPAN_KIND_INTERNAL, ...
    attributes: dict[str, Any]
    status_code: str  # STATUS_CODE_UNSET, STATUS_CODE_OK or STATUS_CODE_ERROR
    status_message: str
    event_names: tuple[str, ...]
    resource: dict[str, Any]
    transport: str  # "grpc" or "http"
    headers: dict[str, str] = field(default_factory=dict)


def any_value(value: AnyValue) -> Any:
    """Return the Python value of an OTLP ``AnyValue``."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return key_values(value.kvlist_value.values)
    return getattr(value, which)


def key_values(pairs: list[KeyValue]) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs}


def decode_request(
    request: trace_service_pb2.ExportTraceServiceRequest, transport: str, headers: dict[str, str]
) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = key_values(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=Span.SpanKind.Name(span.kind),
                        attributes=key_values(span.attributes),
                        status_code=Status.StatusCode.Name(span.status.code),
                        status_message=span.status.message,
                        event_names=tuple(event.name for event in span.events),
                        resource=resource,
                        transport=transport,
                        headers=headers,
                    )
                )
    return spans


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(self, request, context):  # noqa: N802 - the gRPC method name
        headers = {key: value for key, value in context.invocation_metadata() if not key.endswith("-bin")}
        self.receiver._add(decode_request(request, "grpc", headers))
        return trace_service_pb2.ExportTraceServiceResponse()


class _HttpHandler(BaseHTTPRequestHandler):
    receiver: OtlpReceiver  # set on the subclass made per receiver

    def do_POST(self) -> None:  # noqa: N802 - the http.server method name
        if self.path.split("?")[0] != "/v1/traces":
            self._reply(404, b"only /v1/traces is served", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_HTTP_BODY_BYTES:
            self._reply(413, b"body too large", "text/plain")
            return
        body = self.rfile.read(length)
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
        except (OSError, zlib.error, ValueError) as error:
            self._reply(400, f"invalid OTLP body: {error}".encode(), "text/plain")
            return
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type != "application/x-protobuf":
            self._reply(415, b"send Content-Type: application/x-protobuf", "text/plain")
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        self.receiver._add(decode_request(request, "http", headers))
        response = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self._reply(200, response, "application/x-protobuf")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server signature
        pass


class OtlpReceiver:
    """OTLP trace receiver on 127.0.0.1: gRPC and HTTP, each on a free port."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._spans: list[ReceivedSpan] = []
        self.export_requests = 0
        self._grpc_server: grpc.Server | None = None
        self._http_server: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self.grpc_port = 0
        self.http_port = 0

    @property
    def grpc_endpoint(self) -> str:
        """The value for ``OTEL_EXPORTER_OTLP_ENDPOINT`` with the gRPC protocol."""
        return f"http://{LOOPBACK}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """The value for ``OTEL_EXPORTER_OTLP_ENDPOINT`` with ``http/protobuf``."""
        return f"http://{LOOPBACK}:{self.http_port}"

    def otel_environment(self, protocol: str = "grpc", **more: str) -> dict[str, str]:
        """Return OTEL_* variables that send every span here within 50 ms.

        ``protocol`` is ``grpc`` or ``http/protobuf``, and ``more`` adds or
        replaces variables.
        """
        endpoint = self.grpc_endpoint if protocol == "grpc" else self.http_endpoint
        variables = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_TRACES_SAMPLER": "always_on",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        variables.update(more)
        return variables

    def start(self) -> OtlpReceiver:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), server)
        self.grpc_port = server.add_insecure_port(f"{LOOPBACK}:0")
        server.start()
        self._grpc_server = server

        handler = type("OtlpHttpHandler", (_HttpHandler,), {"receiver": self})
        self._http_server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._http_server.daemon_threads = True
        self.http_port = self._http_server.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http_server.serve_forever, name="otlp-http-receiver", daemon=True
        )
        self._http_thread.start()
        return self

    def stop(self) -> None:
        """Close both servers; exports to them fail from now on."""
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=None).wait(5)
            self._grpc_server = None
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _add(self, spans: list[ReceivedSpan]) -> None:
        with self._changed:
            self._spans.extend(spans)
            self.export_requests += 1
            self._changed.notify_all()

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()

    def wait_for_spans(
        self, condition: Callable[[list[ReceivedSpan]], bool], timeout: float = 15.0
    ) -> list[ReceivedSpan]:
        """Wait until ``condition(spans)`` is true and return the spans, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(list(self._spans)):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [span.name for span in self._spans]
                    raise TimeoutError(
                        f"the OTLP receiver did not get the expected spans within {timeout} s; "
                        f"it has {len(names)}: {names}"
                    )
                self._changed.wait(left)
            return list(self._spans)

    def spans_of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]
