"""Span export: every span counted, bounded shutdown with the collector down, forked workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from exporters.exposition import render
from exporters.tracing import current_tracer
from tests.support.services import free_port

PROTOCOLS = ["grpc", "http/protobuf"]


def end_spans(count: int, name: str = "work") -> None:
    tracer = current_tracer()
    for index in range(count):
        tracer.start_span(name, attributes={"index": index}).end()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_delivered_spans_counted(start_tracing, receiver, protocol):
    handle, registry = start_tracing(**receiver.otel_environment(protocol))
    end_spans(20)
    assert handle.shutdown(timeout_s=5.0)

    assert len(receiver.spans) == 20
    assert handle.counters.exported == 20
    assert handle.counters.dropped == {"queue_full": 0, "export_failed": 0, "shutdown": 0}
    assert {span.transport for span in receiver.spans} == {"grpc" if protocol == "grpc" else "http"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_collector_down_drops_counted_and_shutdown_bounded(start_tracing, protocol):
    dead_endpoint = f"http://127.0.0.1:{free_port()}"
    handle, registry = start_tracing(
        OTEL_EXPORTER_OTLP_ENDPOINT=dead_endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_TRACES_SAMPLER="always_on",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_BSP_MAX_QUEUE_SIZE="8",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4",
        # Long enough that the exporter is still retrying when shutdown begins.
        OTEL_EXPORTER_OTLP_TIMEOUT="30",
    )
    end_spans(100)
    counters = handle.counters
    assert counters.dropped["queue_full"] >= 100 - 8 - 2 * 4
    assert counters.queued <= 8

    # The exporter is in its retry backoff, which on its own would last up to 30 s.
    started = time.monotonic()
    finished = handle.shutdown(timeout_s=2.0)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"shutdown took {elapsed:.1f} s with a 2 s deadline"
    assert finished

    assert counters.exported == 0
    assert sum(counters.dropped.values()) == 100, counters.dropped
    assert counters.dropped["export_failed"] >= 4
    assert counters.failed_exports >= 1
    assert counters.queued == 0

    text = render(registry, "application/openmetrics-text")[0].decode()
    assert f'otel_spans_dropped_total{{reason="queue_full"}} {counters.dropped["queue_full"]}.0' in text
    assert "otel_spans_exported_total 0.0" in text
    assert "otel_span_queue_capacity 8.0" in text


def test_spans_after_shutdown_counted(start_tracing, receiver):
    handle, registry = start_tracing(**receiver.otel_environment("grpc"))
    tracer = current_tracer()
    assert handle.shutdown(timeout_s=2.0)
    assert current_tracer() is None
    tracer.start_span("late").end()
    assert handle.counters.dropped["shutdown"] == 1
    assert handle.shutdown(timeout_s=2.0), "a second shutdown returns at once"


def test_sampler_ratio_zero_exports_nothing(start_tracing, receiver):
    handle, registry = start_tracing(
        **receiver.otel_environment("grpc", OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    )
    end_spans(50)
    assert handle.shutdown(timeout_s=2.0)
    assert receiver.spans == []
    assert handle.counters.exported == 0


def test_default_sampler_keeps_about_one_percent(start_tracing, receiver):
    variables = receiver.otel_environment("grpc")
    del variables["OTEL_TRACES_SAMPLER"]
    handle, registry = start_tracing(**variables)
    end_spans(20_000)
    assert handle.shutdown(timeout_s=5.0)
    kept = handle.counters.exported + sum(handle.counters.dropped.values())
    # 1 % of 20,000 is 200; the binomial standard deviation is about 14.
    assert 120 <= kept <= 280, kept


def test_headers_sent_to_collector(start_tracing, receiver):
    handle, registry = start_tracing(
        **receiver.otel_environment("http/protobuf", OTEL_EXPORTER_OTLP_HEADERS="x-tenant=unmogrowp")
    )
    end_spans(1)
    assert handle.shutdown(timeout_s=2.0)
    [span] = receiver.spans
    assert span.headers["x-tenant"] == "unmogrowp"


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from exporters.metrics import Registry
    from exporters.tracing import configure_tracing, current_tracer

    handle = configure_tracing("fork-test", Registry(process_metrics=False))
    tracer = current_tracer()
    tracer.start_span("parent-before-fork").end()
    assert handle.force_flush(5.0)

    children = []
    for number in range(2):
        pid = os.fork()
        if pid == 0:
            tracer.start_span(f"child-{number}", attributes={"pid": os.getpid()}).end()
            finished = handle.shutdown(5.0)
            os._exit(0 if finished and handle.counters.exported == 1 else 3)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, f"child {pid} failed: {status}"

    tracer.start_span("parent-after-fork").end()
    sys.exit(0 if handle.shutdown(5.0) else 4)
    """
)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forked_workers_export_their_spans(clean_otel_env, receiver, tmp_path, protocol):
    script = tmp_path / "fork_workers.py"
    script.write_text(FORK_SCRIPT)
    env = dict(os.environ)
    env.update(receiver.otel_environment(protocol))
    completed = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    spans = {span.name: span for span in receiver.spans}
    assert set(spans) == {"parent-before-fork", "child-0", "child-1", "parent-after-fork"}
    child_pids = {spans["child-0"].attributes["pid"], spans["child-1"].attributes["pid"]}
    assert len(child_pids) == 2
    instance_ids = {span.resource["service.instance.id"] for span in spans.values()}
    # The SDK gives each forked process its own service.instance.id.
    assert len(instance_ids) == 3
