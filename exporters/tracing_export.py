"""Span export that counts every span it loses and never waits on the event loop.

The SDK's ``BatchSpanProcessor`` keeps ended spans in a bounded queue and
exports them from its own thread, but it only logs the spans it drops. Two
wrappers make those losses visible as metrics:

- ``BoundedSpanProcessor`` admits a sampled span only while fewer than
  ``max_queue_size`` admitted spans wait for the exporter, and counts the rest
  as dropped (``queue_full``). It admits no more spans than the SDK queue holds,
  so the SDK never drops one itself.
- ``CountingSpanExporter`` counts the spans each export delivers or loses,
  and builds the OTLP exporter in the process that uses it, so a worker forked
  after start never reuses its parent's gRPC channel.

``SpanCounters`` exposes the counts to a ``Registry`` as ``otel_spans_*``.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from exporters.tracing_settings import TracingSettings

logger = logging.getLogger(__name__)

DROP_REASONS = ("queue_full", "export_failed", "shutdown")


class SpanCounters:
    """Span export counts and the export queue's admission, safe from any thread.

    The processor admits a span with ``admit`` and the exporter releases it
    with ``release`` when it takes a batch, so ``queued`` is never below the
    length of the SDK queue and never above ``capacity``.
    """

    def __init__(self, capacity: int) -> None:
        self._lock = threading.Lock()
        self.capacity = capacity
        self.queued = 0
        self.closed = False
        self.exported = 0
        self.failed_exports = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)

    def admit(self) -> bool:
        """Reserve a queue place for one span, or count the span as dropped when the queue is full."""
        with self._lock:
            if self.closed:
                self.dropped["shutdown"] += 1
                return False
            if self.queued >= self.capacity:
                self.dropped["queue_full"] += 1
                return False
            self.queued += 1
            return True

    def release(self, count: int) -> None:
        with self._lock:
            self.queued -= count

    def close(self) -> None:
        """Admit no more spans: spans ending from now on count as dropped."""
        with self._lock:
            self.closed = True

    def drop_unexported(self) -> int:
        """Count the admitted spans the exporter never took as dropped, and return how many."""
        with self._lock:
            left = self.queued
            self.queued = 0
            self.dropped["shutdown"] += left
        return left

    def add_dropped(self, reason: str, count: int) -> None:
        with self._lock:
            self.dropped[reason] += count

    def add_exported(self, count: int) -> None:
        with self._lock:
            self.exported += count

    def add_failed_export(self, count: int) -> None:
        with self._lock:
            self.failed_exports += 1
            self.dropped["export_failed"] += count

    def reset_after_fork(self) -> None:
        # The SDK clears its queue in a forked child, and a lock held by
        # another thread at fork time would stay locked forever. The counts
        # start again from zero, so each process reports its own spans and
        # totals added across workers count each span once.
        self._lock = threading.Lock()
        self.queued = 0
        self.exported = 0
        self.failed_exports = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)

    def describe(self) -> list:
        return self._families(0, 0, 0, dict.fromkeys(DROP_REASONS, 0))

    def collect(self) -> list:
        with self._lock:
            return self._families(self.exported, self.failed_exports, self.queued, dict(self.dropped))

    def _families(self, exported: int, failed_exports: int, queued: int, dropped: dict[str, int]) -> list:
        exported_family = CounterMetricFamily(
            "otel_spans_exported_total",
            "Spans the OTLP exporter delivered to the collector.",
        )
        exported_family.add_metric((), exported)
        dropped_family = CounterMetricFamily(
            "otel_spans_dropped_total",
            "Sampled spans lost before reaching the collector, by reason: queue_full "
            "(export queue full), export_failed (the export failed after the exporter's "
            "retries) or shutdown (still queued when the service stopped).",
            labels=("reason",),
        )
        for reason in DROP_REASONS:
            dropped_family.add_metric((reason,), dropped[reason])
        failures_family = CounterMetricFamily(
            "otel_span_export_failures_total",
            "Span export requests that failed after the exporter's retries.",
        )
        failures_family.add_metric((), failed_exports)
        queue_family = GaugeMetricFamily(
            "otel_span_queue_size",
            "Sampled spans waiting in the export queue.",
        )
        queue_family.add_metric((), queued)
        capacity_family = GaugeMetricFamily(
            "otel_span_queue_capacity",
            "Spans the export queue holds at most (OTEL_BSP_MAX_QUEUE_SIZE).",
        )
        capacity_family.add_metric((), self.capacity)
        return [exported_family, dropped_family, failures_family, queue_family, capacity_family]


class CountingSpanExporter(SpanExporter):
    """Export through an OTLP exporter built per process, counting each span's fate.

    ``on_taken(count)`` is called when the batch processor hands over a batch,
    before any network call, so the caller can tell how many spans still wait.
    """

    def __init__(
        self,
        build_exporter: Callable[[], SpanExporter],
        counters: SpanCounters,
        on_taken: Callable[[int], None],
        endpoint: str,
    ) -> None:
        self._build_exporter = build_exporter
        self._counters = counters
        self._on_taken = on_taken
        self._endpoint = endpoint
        self._lock = threading.Lock()
        self._exporter: SpanExporter | None = None
        self._pid = 0
        self._closed = False
        self._failing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        count = len(spans)
        self._on_taken(count)
        exporter = self._current_exporter()
        if exporter is None:
            self._counters.add_dropped("shutdown", count)
            return SpanExportResult.FAILURE
        try:
            result = exporter.export(spans)
        except Exception:
            logger.exception("span export raised", extra={"endpoint": self._endpoint, "spans": count})
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self._counters.add_exported(count)
            if self._failing:
                self._failing = False
                logger.info("span export recovered", extra={"endpoint": self._endpoint})
        else:
            self._counters.add_failed_export(count)
            if not self._failing:
                # The SDK exporter logs each failure with its cause; this line
                # marks the start of an outage once, with what it costs.
                self._failing = True
                logger.warning(
                    "span export failing: spans are dropped and counted in otel_spans_dropped_total",
                    extra={"endpoint": self._endpoint, "spans": count},
                )
        return result

    def _current_exporter(self) -> SpanExporter | None:
        with self._lock:
            if self._closed:
                return None
            if self._exporter is None or self._pid != os.getpid():
                # A forked child drops the inherited exporter without closing
                # it: its gRPC channel belongs to the parent.
                self._exporter = self._build_exporter()
                self._pid = os.getpid()
            return self._exporter

    def shutdown(self) -> None:
        """Close the OTLP exporter, which ends the retries of an export in progress."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            exporter = self._exporter if self._pid == os.getpid() else None
        if exporter is not None:
            exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._failing = False


class BoundedSpanProcessor(SpanProcessor):
    """A ``BatchSpanProcessor`` whose queue-full and shutdown drops are counted."""

    def __init__(
        self,
        settings: TracingSettings,
        build_exporter: Callable[[], SpanExporter],
        counters: SpanCounters,
    ) -> None:
        self.counters = counters
        self.exporter = CountingSpanExporter(build_exporter, counters, counters.release, settings.endpoint)
        self._batch = BatchSpanProcessor(
            self.exporter,
            max_queue_size=settings.max_queue_size,
            schedule_delay_millis=settings.schedule_delay_ms,
            max_export_batch_size=settings.max_export_batch_size,
            export_timeout_millis=settings.export_timeout_ms,
        )
        weak_self = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reset_after_fork(weak_self))

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        if self.counters.admit():
            self._batch.on_end(span)

    def shutdown(self) -> None:
        self.counters.close()
        self._batch.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)


def _reset_after_fork(weak_processor: weakref.ref) -> None:
    processor = weak_processor()
    if processor is not None:
        processor.counters.reset_after_fork()
        processor.exporter.reset_after_fork()
