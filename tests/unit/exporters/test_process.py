"""Process and Python runtime metrics, checked against psutil's view of this process."""

import os
import sys
import time

import psutil
import pytest

from exporters.metrics import Registry
from exporters.process import register_process_collectors

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process_* metrics read /proc, which only Linux has"
)


def sample_values(registry):
    return {
        sample.name: sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.labels
    }


def test_process_metrics_present():
    values = sample_values(Registry())

    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "process_max_fds",
    ):
        assert name in values, name


def test_process_metrics_match_psutil():
    process = psutil.Process(os.getpid())
    values = sample_values(Registry())

    # /proc/self/stat counts start time in clock ticks, so allow one second.
    assert values["process_start_time_seconds"] == pytest.approx(process.create_time(), abs=1.0)
    assert values["process_resident_memory_bytes"] == pytest.approx(
        process.memory_info().rss, rel=0.2
    )
    assert values["process_virtual_memory_bytes"] >= values["process_resident_memory_bytes"]
    assert values["process_open_fds"] >= 3
    assert values["process_max_fds"] >= values["process_open_fds"]
    elapsed = time.time() - process.create_time()
    assert values["process_cpu_seconds_total"] <= (elapsed + 1) * (os.cpu_count() or 1)


def test_python_info_present():
    families = {family.name: family for family in Registry().collect()}

    (info,) = families["python_info"].samples
    assert info.labels["major"] == str(sys.version_info.major)
    assert info.labels["minor"] == str(sys.version_info.minor)
    assert "python_gc_collections" in families


def test_registry_without_process_metrics():
    assert list(Registry(process_metrics=False).collect()) == []


def test_process_collectors_register_once():
    registry = Registry()

    with pytest.raises(ValueError, match="already registered"):
        register_process_collectors(registry)
