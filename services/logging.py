"""JSON log lines for the services.

Each line is one JSON object with ``time``, ``level``, ``service``, ``logger``
and ``message``, the ``trace_id`` and ``span_id`` of the current OpenTelemetry
span when one is recording, and any ``extra`` fields the call passed.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _current_trace_ids() -> tuple[str | None, str | None]:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return None, None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        seconds = record.created
        fraction = int((seconds % 1) * 1000)
        document: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_id, span_id = _current_trace_ids()
        if trace_id is not None:
            document["trace_id"] = trace_id
            document["span_id"] = span_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record of the process to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request at INFO; a poller would write a line every few seconds forever.
    logging.getLogger("httpx").setLevel(logging.WARNING)
