"""Standard process and Python runtime metrics for a ``Registry``.

prometheus_client's collectors provide them. ``process_cpu_seconds_total``,
``process_resident_memory_bytes``, ``process_virtual_memory_bytes``,
``process_start_time_seconds``, ``process_open_fds`` and ``process_max_fds``
are read from /proc, so they are absent outside Linux. ``python_info`` is
always present, and ``python_gc_*`` on CPython.
"""

from __future__ import annotations

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

from exporters.metrics import Registry

__all__ = ["register_process_collectors"]


def register_process_collectors(registry: Registry) -> None:
    """Add the process, ``python_info`` and garbage-collector collectors to ``registry``."""
    registry.register(ProcessCollector(registry=None))
    registry.register(PlatformCollector(registry=None))
    # GCCollector registers itself, and does nothing outside CPython.
    GCCollector(registry=registry)  # type: ignore[arg-type]
