"""Prometheus text 0.0.4 and OpenMetrics 1.0 output of a ``Registry``.

The formatting (escaping of label values and help text, ``le`` bounds, the
``_total`` suffix, exemplars) is prometheus_client's own: ``render`` picks the
format from the scraper's Accept header and calls that library's encoder.
"""

from __future__ import annotations

from prometheus_client.exposition import generate_latest as _generate_text
from prometheus_client.openmetrics.exposition import generate_latest as _generate_openmetrics

from exporters.metrics import Collector

__all__ = ["CONTENT_TYPE_OPENMETRICS", "CONTENT_TYPE_TEXT", "negotiate", "render"]

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

_OPENMETRICS = "application/openmetrics-text"
# Media ranges served as text 0.0.4. Anything else (no Accept header, or
# only types this module cannot produce) also gets text 0.0.4, the format
# every Prometheus version reads, rather than a 406.
_TEXT_RANGES = frozenset({"text/plain", "text/*", "*/*"})


def negotiate(accept_header: str | None) -> bool:
    """Return True when ``accept_header`` prefers OpenMetrics over text 0.0.4.

    The media range with the highest ``q`` wins; on equal ``q`` the earlier
    one wins. OpenMetrics is only chosen when the header names
    ``application/openmetrics-text`` with a version of 1.x, 0.0.1 or none,
    since this module writes OpenMetrics 1.0.0.
    """
    if not accept_header:
        return False
    best_q = 0.0
    openmetrics = False
    for media_range in accept_header.split(","):
        media_type, _, parameters = media_range.partition(";")
        media_type = media_type.strip().lower()
        if media_type != _OPENMETRICS and media_type not in _TEXT_RANGES:
            continue
        q = 1.0
        version = ""
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            key = key.strip().lower()
            value = value.strip().strip('"')
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            elif key == "version":
                version = value
        if media_type == _OPENMETRICS and not _readable_openmetrics_version(version):
            continue
        if q > best_q:
            best_q = q
            openmetrics = media_type == _OPENMETRICS
    return openmetrics


def _readable_openmetrics_version(version: str) -> bool:
    # Prometheus requests version=0.0.1 as well as 1.0.0. Both name the
    # same text format, but 2.x would need a different one.
    return version == "" or version == "0.0.1" or version.split(".")[0] == "1"


def render(registry: Collector, accept_header: str | None) -> tuple[bytes, str]:
    """Return ``(body, content type)`` for a scrape with this Accept header.

    The body is OpenMetrics 1.0 (with exemplars, ending in ``# EOF``) when
    ``negotiate`` prefers it, else Prometheus text 0.0.4 (no exemplars).
    """
    if negotiate(accept_header):
        return _generate_openmetrics(registry), CONTENT_TYPE_OPENMETRICS
    return _generate_text(registry), CONTENT_TYPE_TEXT
