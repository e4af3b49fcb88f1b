"""OpenTelemetry tracing for the services, set up from the ``OTEL_*`` variables.

``configure_tracing`` starts tracing for the process and returns a
``TracingHandle`` to stop it, or None when tracing is off (see
``exporters.tracing_settings`` for the variables and their checks). Spans
leave through a batch processor thread, never from the event loop, and the
spans lost on the way are counted in ``otel_spans_dropped_total``.

The helpers below are what request code calls, once per batch and never per
event. Each is cheap when tracing is off or the request is not sampled:

- ``child_span("decode")`` opens a child span of the request's span.
- ``record_batch(...)`` puts the batch's app and counts on the request's span
  and on its access-log line.
- ``current_exemplar()`` returns the trace and span ids a histogram keeps as
  an exemplar.

``exporters.tracing_asgi.TracingMiddleware`` opens the request's span, and
``exporters.tracing_httpx`` carries the trace context on outgoing calls.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import random
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Span, StatusCode, Tracer

from exporters.tracing_export import BoundedSpanProcessor, SpanCounters
from exporters.tracing_settings import (
    DEFAULT_SAMPLE_RATIO,
    PROTOCOL_GRPC,
    TracingConfigError,
    TracingSettings,
    read_settings,
)

__all__ = [
    "DEFAULT_SAMPLE_RATIO",
    "DEFAULT_SHUTDOWN_TIMEOUT_S",
    "TracingConfigError",
    "TracingHandle",
    "child_span",
    "configure_tracing",
    "current_exemplar",
    "current_tracer",
    "random_traceparent",
    "record_batch",
    "record_error",
]

logger = logging.getLogger(__name__)

TRACER_NAME = "unmogrowp"
DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0
# Share of the shutdown deadline given to delivering queued spans before the
# exporter is closed, which stops its retries and backoff sleeps.
FLUSH_SHARE_OF_SHUTDOWN = 0.8

ATTRIBUTE_APP_ID = "unmogrowp.app_id"
ATTRIBUTE_BATCH_SIZE = "unmogrowp.batch.size"
ATTRIBUTE_ACCEPTED = "unmogrowp.batch.accepted"
ATTRIBUTE_DUPLICATES = "unmogrowp.batch.duplicates"
ATTRIBUTE_REJECTED = "unmogrowp.batch.rejected"

# The tracer of the running TracingHandle, or None while tracing is off. The
# middleware and helpers read it on every request, so it is a module global
# rather than a lookup through the global TracerProvider.
_tracer: Tracer | None = None
_NO_SPAN = contextlib.nullcontext()


@dataclass(slots=True)
class RequestRecord:
    """The outcome of one request, filled in by request code for its span and access log."""

    span: Span | None = None
    app_id: str | None = None
    batch_size: int | None = None
    accepted: int | None = None
    duplicates: int | None = None
    rejected: int | None = None


# Set by the middleware for the duration of a request. Request code fills in
# the record it points to, so the middleware reads the values even when the
# endpoint ran in a copied context (a thread pool, for example).
current_request: ContextVar[RequestRecord | None] = ContextVar("unmogrowp_request", default=None)


class TracingHandle:
    """The tracing of one process: stop it with ``shutdown`` or ``aclose``."""

    def __init__(
        self,
        settings: TracingSettings,
        provider: TracerProvider,
        processor: BoundedSpanProcessor,
        counters: SpanCounters,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.processor = processor
        self.counters = counters
        self.tracer = provider.get_tracer(TRACER_NAME)
        self._lock = threading.Lock()
        self._stopped = False

    def shutdown(self, timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
        """Deliver queued spans and stop, within ``timeout_s`` seconds.

        Blocks the calling thread: from the event loop, use ``aclose``.
        Returns False when spans were still being exported at the deadline.
        Those spans are abandoned with the daemon thread that exports them. Repeated calls
        return True at once.
        """
        global _tracer
        with self._lock:
            if self._stopped:
                return True
            self._stopped = True
        if _tracer is self.tracer:
            _tracer = None

        deadline = time.monotonic() + timeout_s
        stopper = threading.Thread(target=self.provider.shutdown, name="otel-shutdown", daemon=True)
        stopper.start()
        stopper.join(timeout_s * FLUSH_SHARE_OF_SHUTDOWN)
        if stopper.is_alive():
            # The collector is slow or down: closing the exporter ends its
            # retries, so the queued spans are dropped and counted.
            self.processor.exporter.shutdown()
            stopper.join(max(0.0, deadline - time.monotonic()))
        finished = not stopper.is_alive()
        dropped = self.counters.drop_unexported()
        extra = {
            "exported_spans": self.counters.exported,
            "dropped_spans": sum(self.counters.dropped.values()),
            "unexported_at_stop": dropped,
            "timeout_s": timeout_s,
        }
        if finished:
            logger.info("tracing stopped", extra=extra)
        else:
            logger.warning("tracing stopped before the span export finished", extra=extra)
        return finished

    async def aclose(self, timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
        """Run ``shutdown`` in a thread, so the event loop goes on meanwhile."""
        return await asyncio.to_thread(self.shutdown, timeout_s)

    def force_flush(self, timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
        """Export the queued spans now, and return False if that took over ``timeout_s``."""
        flusher = threading.Thread(target=self.provider.force_flush, name="otel-flush", daemon=True)
        flusher.start()
        flusher.join(timeout_s)
        return not flusher.is_alive()


def configure_tracing(service_name: str, registry: Any | None) -> TracingHandle | None:
    """Start tracing from the ``OTEL_*`` variables, or return None when tracing is off.

    ``service_name`` is used when neither ``OTEL_SERVICE_NAME`` nor
    ``OTEL_RESOURCE_ATTRIBUTES`` names the service. ``registry`` (an
    ``exporters.metrics.Registry``) receives the ``otel_spans_*`` metrics.
    Raises ``TracingConfigError`` when a variable is invalid.
    """
    global _tracer
    settings = read_settings(os.environ)
    if settings is None:
        logger.info(
            "tracing off: set OTEL_EXPORTER_OTLP_ENDPOINT to export traces",
            extra={"service_name": service_name},
        )
        return None

    counters = SpanCounters(settings.max_queue_size)
    processor = BoundedSpanProcessor(settings, _exporter_factory(settings), counters)
    provider = TracerProvider(
        sampler=build_sampler(settings),
        resource=_resource(service_name),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(processor)
    if registry is not None:
        registry.register(counters)

    # NOTE: the provider is deliberately not made the global one. FastAPI
    # 0.165 traces every request itself once a global provider is set (its
    # native telemetry), which would add a second server span per request
    # and its per-operation spans. Libraries asking the OpenTelemetry API
    # for a tracer get a no-op one.
    handle = TracingHandle(settings, provider, processor, counters)
    _tracer = handle.tracer
    atexit.register(handle.shutdown)
    logger.info(
        "tracing on",
        extra={
            "service_name": provider.resource.attributes.get(SERVICE_NAME),
            "endpoint": settings.endpoint,
            "protocol": settings.protocol,
            "sampler": settings.sampler,
            "sample_ratio": settings.sample_ratio,
            "max_queue_size": settings.max_queue_size,
        },
    )
    return handle


def build_sampler(settings: TracingSettings) -> Sampler:
    """Return the sampler ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG`` name."""
    name = settings.sampler
    if name == "always_on":
        return ALWAYS_ON
    if name == "always_off":
        return ALWAYS_OFF
    if name == "traceidratio":
        return TraceIdRatioBased(settings.sample_ratio)
    if name == "parentbased_always_on":
        return ParentBased(ALWAYS_ON)
    if name == "parentbased_always_off":
        return ParentBased(ALWAYS_OFF)
    return ParentBased(TraceIdRatioBased(settings.sample_ratio))


def _resource(service_name: str) -> Resource:
    named_in_environment = bool(os.environ.get("OTEL_SERVICE_NAME", "").strip()) or (
        "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").replace(" ", "")
    )
    # Resource.create lets the attributes given here win over the environment.
    return Resource.create({} if named_in_environment else {SERVICE_NAME: service_name})


def _exporter_factory(settings: TracingSettings):
    """Import the OTLP exporter module now and return a function that builds the exporter."""
    if settings.protocol == PROTOCOL_GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    def build() -> SpanExporter:
        # Headers, timeout, compression and certificates come from the
        # OTEL_EXPORTER_OTLP_* variables, which the exporter reads itself.
        return OTLPSpanExporter(endpoint=settings.endpoint)

    return build


def current_tracer() -> Tracer | None:
    """Return the running tracer, or None while tracing is off."""
    return _tracer


def child_span(name: str, attributes: dict[str, Any] | None = None):
    """Return a context manager that opens a child span of the current span.

    It yields the span, or None (and costs almost nothing) when tracing is off
    or the current request is not sampled. An exception leaving the block is
    recorded on the span, which then has the error status.
    """
    tracer = _tracer
    if tracer is None:
        return _NO_SPAN
    # Inside a request, the request's span decides: reading it is cheaper
    # than looking the current span up in the OpenTelemetry context.
    request = current_request.get()
    parent = request.span if request is not None and request.span is not None else trace.get_current_span()
    if not parent.is_recording():
        return _NO_SPAN
    return tracer.start_as_current_span(name, attributes=attributes)


def record_batch(
    *,
    app_id: str | None = None,
    batch_size: int | None = None,
    accepted: int | None = None,
    duplicates: int | None = None,
    rejected: int | None = None,
) -> None:
    """Record a batch's app and counts on the request's span and access-log line."""
    request = current_request.get()
    if request is not None:
        request.app_id = app_id if app_id is not None else request.app_id
        request.batch_size = batch_size if batch_size is not None else request.batch_size
        request.accepted = accepted if accepted is not None else request.accepted
        request.duplicates = duplicates if duplicates is not None else request.duplicates
        request.rejected = rejected if rejected is not None else request.rejected
        span = request.span
    else:
        span = trace.get_current_span()
    if span is None or not span.is_recording():
        return
    attributes = {
        ATTRIBUTE_APP_ID: app_id,
        ATTRIBUTE_BATCH_SIZE: batch_size,
        ATTRIBUTE_ACCEPTED: accepted,
        ATTRIBUTE_DUPLICATES: duplicates,
        ATTRIBUTE_REJECTED: rejected,
    }
    span.set_attributes({key: value for key, value in attributes.items() if value is not None})


def record_error(error: BaseException, description: str | None = None) -> None:
    """Record a handled error on the request's span and give it the error status."""
    request = current_request.get()
    span = request.span if request is not None and request.span is not None else trace.get_current_span()
    if not span.is_recording():
        return
    span.record_exception(error)
    span.set_status(StatusCode.ERROR, description or f"{type(error).__name__}: {error}")


def current_exemplar() -> dict[str, str] | None:
    """Return ``{"trace_id", "span_id"}`` of the current span if it is sampled, else None."""
    context = trace.get_current_span().get_span_context()
    if not context.trace_flags.sampled or not context.is_valid:
        return None
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


def random_traceparent(sampled: bool = True) -> str:
    """Return a new W3C ``traceparent`` header value, for clients that start traces."""
    trace_id = random.getrandbits(128) or 1
    span_id = random.getrandbits(64) or 1
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"
