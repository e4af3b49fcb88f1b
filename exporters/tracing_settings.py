"""Tracing settings read from the standard ``OTEL_*`` environment variables.

``read_settings`` checks every variable once at start and raises
``TracingConfigError`` naming the variable, the invalid value and the fix, so
a typo stops the service instead of silently turning tracing off. It returns
None when tracing is off: ``OTEL_SDK_DISABLED=true``, ``OTEL_TRACES_EXPORTER=none``
or no OTLP endpoint configured.

The OTLP exporters of the SDK read the headers, timeout, compression and
certificate variables again themselves. This module checks them and resolves
the endpoint and protocol.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# The documented default: 1 % of new traces are sampled when OTEL_TRACES_SAMPLER
# is unset. Requests that carry a sampled ``traceparent`` are always traced
# because the default sampler is parent-based.
DEFAULT_SAMPLE_RATIO = 0.01
DEFAULT_SAMPLER = "parentbased_traceidratio"

# Defaults of the OpenTelemetry specification for the batch span processor.
DEFAULT_MAX_QUEUE_SIZE = 2048
DEFAULT_SCHEDULE_DELAY_MS = 5000
DEFAULT_MAX_EXPORT_BATCH_SIZE = 512
DEFAULT_EXPORT_TIMEOUT_MS = 30000

PROTOCOL_GRPC = "grpc"
PROTOCOL_HTTP_PROTOBUF = "http/protobuf"

SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)
RATIO_SAMPLERS = frozenset({"traceidratio", "parentbased_traceidratio"})


class TracingConfigError(ValueError):
    """An invalid ``OTEL_*`` variable. The message names the variable and the fix."""


@dataclass(frozen=True)
class TracingSettings:
    """Checked tracing settings. The OTLP exporter also reads some variables itself."""

    endpoint: str  # the URL spans are sent to: for HTTP, ending in /v1/traces
    protocol: str
    sampler: str
    sample_ratio: float | None
    max_queue_size: int
    schedule_delay_ms: int
    max_export_batch_size: int
    export_timeout_ms: int


def read_settings(environ: Mapping[str, str]) -> TracingSettings | None:
    """Return the tracing settings in ``environ``, or None when tracing is off."""
    if _value(environ, "OTEL_SDK_DISABLED").lower() == "true":
        return None

    exporter = _value(environ, "OTEL_TRACES_EXPORTER").lower()
    if exporter == "none":
        return None
    if exporter not in ("", "otlp"):
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={exporter!r} is not supported: set it to 'otlp' "
            "(the default) or 'none' to turn tracing off"
        )

    endpoint_variable = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    endpoint = _value(environ, endpoint_variable)
    if not endpoint:
        endpoint_variable = "OTEL_EXPORTER_OTLP_ENDPOINT"
        endpoint = _value(environ, endpoint_variable)
    if not endpoint:
        return None
    _check_endpoint(endpoint_variable, endpoint)

    protocol_variable = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    protocol = _value(environ, protocol_variable)
    if not protocol:
        protocol_variable = "OTEL_EXPORTER_OTLP_PROTOCOL"
        protocol = _value(environ, protocol_variable) or PROTOCOL_GRPC
    protocol = protocol.lower()
    if protocol not in (PROTOCOL_GRPC, PROTOCOL_HTTP_PROTOBUF):
        hint = " (the Python OTLP exporter has no JSON encoding)" if protocol == "http/json" else ""
        raise TracingConfigError(
            f"{protocol_variable}={protocol!r} is not supported{hint}: set it to "
            f"'{PROTOCOL_GRPC}' (port 4317) or '{PROTOCOL_HTTP_PROTOBUF}' (port 4318)"
        )

    if protocol == PROTOCOL_HTTP_PROTOBUF and endpoint_variable == "OTEL_EXPORTER_OTLP_ENDPOINT":
        # The base endpoint names the collector, so the signal's path is
        # added, as the SDK's own HTTP exporter does (version 1.45).
        endpoint = endpoint.rstrip("/") + "/v1/traces"

    for variable in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        _positive_number(environ, variable)

    sampler, ratio = _sampler(environ)
    max_queue_size = _positive_int(environ, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_MAX_QUEUE_SIZE)
    max_export_batch_size = _positive_int(
        environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", DEFAULT_MAX_EXPORT_BATCH_SIZE
    )
    if max_export_batch_size > max_queue_size:
        raise TracingConfigError(
            f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE={max_export_batch_size} is larger than "
            f"OTEL_BSP_MAX_QUEUE_SIZE={max_queue_size}: a batch is taken from the queue, "
            "so lower the batch size or raise the queue size"
        )
    return TracingSettings(
        endpoint=endpoint,
        protocol=protocol,
        sampler=sampler,
        sample_ratio=ratio,
        max_queue_size=max_queue_size,
        schedule_delay_ms=_positive_int(environ, "OTEL_BSP_SCHEDULE_DELAY", DEFAULT_SCHEDULE_DELAY_MS),
        max_export_batch_size=max_export_batch_size,
        export_timeout_ms=_positive_int(environ, "OTEL_BSP_EXPORT_TIMEOUT", DEFAULT_EXPORT_TIMEOUT_MS),
    )


def _value(environ: Mapping[str, str], variable: str) -> str:
    return environ.get(variable, "").strip()


def _check_endpoint(variable: str, endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TracingConfigError(
            f"{variable}={endpoint!r} is not an http:// or https:// URL with a host: "
            "write it like http://127.0.0.1:4317 (gRPC) or http://127.0.0.1:4318 (HTTP)"
        )
    try:
        parts.port
    except ValueError:
        raise TracingConfigError(
            f"{variable}={endpoint!r} has an invalid port: use a number from 1 to 65535"
        ) from None


def _sampler(environ: Mapping[str, str]) -> tuple[str, float | None]:
    sampler = _value(environ, "OTEL_TRACES_SAMPLER").lower() or DEFAULT_SAMPLER
    if sampler not in SAMPLERS:
        raise TracingConfigError(
            f"OTEL_TRACES_SAMPLER={sampler!r} is not a built-in sampler: use one of "
            f"{', '.join(sorted(SAMPLERS))}"
        )
    if sampler not in RATIO_SAMPLERS:
        return sampler, None

    text = _value(environ, "OTEL_TRACES_SAMPLER_ARG")
    if not text:
        # A ratio sampler chosen explicitly samples everything without a
        # ratio, as the SDK does. This service's own default sampler uses 1 %.
        explicit = bool(_value(environ, "OTEL_TRACES_SAMPLER"))
        return sampler, 1.0 if explicit else DEFAULT_SAMPLE_RATIO
    try:
        ratio = float(text)
    except ValueError:
        ratio = math.nan
    if not 0.0 <= ratio <= 1.0:
        raise TracingConfigError(
            f"OTEL_TRACES_SAMPLER_ARG={text!r} is not a sampling ratio: use a number "
            "from 0 to 1, for example 0.01 to sample 1 % of new traces"
        )
    return sampler, ratio


def _positive_int(environ: Mapping[str, str], variable: str, default: int) -> int:
    text = _value(environ, variable)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise TracingConfigError(
            f"{variable}={text!r} is invalid: use a whole number above zero "
            f"(the default is {default})"
        )
    return value


def _positive_number(environ: Mapping[str, str], variable: str) -> None:
    text = _value(environ, variable)
    if not text:
        return
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < math.inf:
        raise TracingConfigError(
            f"{variable}={text!r} is invalid: use a number of seconds above zero, "
            "for example 10 (the Python OTLP exporters read this variable in seconds)"
        )
