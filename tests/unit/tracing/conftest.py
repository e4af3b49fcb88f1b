"""Fixtures for the tracing tests: a real OTLP receiver and tracing pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from exporters.metrics import Registry
from exporters.tracing import TracingHandle, configure_tracing
from tests.support.otlp_receiver import OtlpReceiver

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_PROPAGATORS",
)


@pytest.fixture
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every OTEL_* variable of the outer environment for this test."""
    for variable in OTEL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def start_tracing(clean_otel_env: pytest.MonkeyPatch) -> Iterator[Callable[..., tuple[TracingHandle, Registry]]]:
    """Return ``start(**variables)``: set OTEL_* variables, configure tracing, return the handle.

    Every handle is shut down when the test ends.
    """
    handles: list[TracingHandle] = []

    def start(**variables: str) -> tuple[TracingHandle, Registry]:
        for name, value in variables.items():
            clean_otel_env.setenv(name, value)
        registry = Registry(process_metrics=False)
        handle = configure_tracing("unmogrowp-test", registry)
        assert handle is not None, "tracing stayed off: the test must set an OTLP endpoint"
        handles.append(handle)
        return handle, registry

    yield start
    for handle in handles:
        handle.shutdown(timeout_s=2.0)

