"""Reading and checking the OTEL_* variables."""

from __future__ import annotations

import pytest

from exporters.tracing_settings import DEFAULT_SAMPLE_RATIO, TracingConfigError, read_settings

GRPC = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "  "},
        {**GRPC, "OTEL_SDK_DISABLED": "true"},
        {**GRPC, "OTEL_SDK_DISABLED": "TRUE"},
        {**GRPC, "OTEL_TRACES_EXPORTER": "none"},
    ],
    ids=["no-endpoint", "blank-endpoint", "sdk-disabled", "sdk-disabled-upper", "exporter-none"],
)
def test_tracing_off(environ):
    assert read_settings(environ) is None


def test_sdk_disabled_false_keeps_tracing_on():
    assert read_settings({**GRPC, "OTEL_SDK_DISABLED": "false"}) is not None


def test_defaults_with_grpc_endpoint():
    settings = read_settings(GRPC)
    assert settings.protocol == "grpc"
    assert settings.endpoint == "http://127.0.0.1:4317"
    assert settings.sampler == "parentbased_traceidratio"
    assert settings.sample_ratio == DEFAULT_SAMPLE_RATIO == 0.01
    assert settings.max_queue_size == 2048
    assert settings.max_export_batch_size == 512
    assert settings.schedule_delay_ms == 5000


def test_http_base_endpoint_gets_traces_path():
    settings = read_settings(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    )
    assert settings.protocol == "http/protobuf"
    assert settings.endpoint == "http://127.0.0.1:4318/v1/traces"


def test_traces_endpoint_used_as_written():
    settings = read_settings(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/custom/traces",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        }
    )
    assert settings.endpoint == "http://127.0.0.1:4318/custom/traces"
    assert settings.protocol == "http/protobuf"


def test_sampler_argument_without_sampler_sets_default_ratio():
    settings = read_settings({**GRPC, "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    assert settings.sampler == "parentbased_traceidratio"
    assert settings.sample_ratio == 0.25


def test_explicit_ratio_sampler_without_argument_samples_all():
    settings = read_settings({**GRPC, "OTEL_TRACES_SAMPLER": "traceidratio"})
    assert settings.sample_ratio == 1.0


def test_always_on_sampler_has_no_ratio():
    settings = read_settings({**GRPC, "OTEL_TRACES_SAMPLER": "ALWAYS_ON"})
    assert settings.sampler == "always_on"
    assert settings.sample_ratio is None


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://collector"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:99999"}, "invalid port"),
        ({**GRPC, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "no JSON encoding"),
        ({**GRPC, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
        ({**GRPC, "OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({**GRPC, "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER="),
        ({**GRPC, "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({**GRPC, "OTEL_TRACES_SAMPLER_ARG": "one percent"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({**GRPC, "OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
        ({**GRPC, "OTEL_BSP_SCHEDULE_DELAY": "soon"}, "OTEL_BSP_SCHEDULE_DELAY"),
        ({**GRPC, "OTEL_BSP_MAX_QUEUE_SIZE": "10", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "20"}, "larger than"),
        ({**GRPC, "OTEL_EXPORTER_OTLP_TIMEOUT": "-1"}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
        ({**GRPC, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "nan"}, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"),
    ],
)
def test_invalid_variable_named_in_error(environ, names):
    with pytest.raises(TracingConfigError, match=names):
        read_settings(environ)
