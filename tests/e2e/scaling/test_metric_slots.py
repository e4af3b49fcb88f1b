"""Metric slots shared by processes: sums, takeover, growth, damaged files, dead workers' gauges.

Each test uses real slot files in a temporary folder; one test writes from a
second process, as a worker does.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from exporters.exposition import render
from exporters.metrics import Counter, Gauge, Histogram
from exporters.multiprocess import INITIAL_BYTES, SlotReader, SlotRegistry, reset_gauges, slot_path


def families(registry: SlotRegistry):
    events = Counter("events_total", "Events.", ("app_id",), registry=registry)
    duration = Histogram("duration_seconds", "Duration.", ("endpoint",), registry=registry, buckets=(0.1, 1.0))
    connections = Gauge("connections", "Open connections.", registry=registry)
    return events, duration, connections


def exposed(registry: SlotRegistry) -> dict[tuple[str, tuple], float]:
    body, _ = render(registry, None)
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def record_in_other_process(directory: Path, slot: int, count: int) -> None:
    registry = SlotRegistry(directory, slot, process_metrics=False)
    events, duration, connections = families(registry)
    for _ in range(count):
        events.labels("app-1").inc()
    duration.labels("/v1/events").observe(0.5, count=count)
    connections.inc(3)
    registry.close()


def test_scrape_sums_processes(tmp_path):
    registry = SlotRegistry(tmp_path, 0, process_metrics=False)
    events, duration, connections = families(registry)
    events.labels("app-1").inc(5)
    events.labels("app-2").inc(2)
    duration.labels("/v1/events").observe(0.05, count=5)
    connections.inc()

    child = multiprocessing.get_context("spawn").Process(target=record_in_other_process, args=(tmp_path, 1, 7))
    child.start()
    child.join(60)
    samples = exposed(registry)

    assert child.exitcode == 0
    assert samples[("events_total", (("app_id", "app-1"),))] == 12
    assert samples[("events_total", (("app_id", "app-2"),))] == 2
    assert samples[("duration_seconds_bucket", (("endpoint", "/v1/events"), ("le", "0.1")))] == 5
    assert samples[("duration_seconds_bucket", (("endpoint", "/v1/events"), ("le", "1.0")))] == 12
    assert samples[("duration_seconds_count", (("endpoint", "/v1/events"),))] == 12
    assert samples[("duration_seconds_sum", (("endpoint", "/v1/events"),))] == 0.05 * 5 + 0.5 * 7
    assert samples[("connections", ())] == 4


def test_takeover_continues_counters(tmp_path):
    first = SlotRegistry(tmp_path, 0, process_metrics=False)
    events, duration, connections = families(first)
    events.labels("app-1").inc(5)
    duration.labels("/v1/events").observe(2.0)
    connections.inc(9)
    first.close()

    second = SlotRegistry(tmp_path, 0, process_metrics=False)
    events, duration, connections = families(second)
    events.labels("app-1").inc()
    samples = exposed(second)

    assert second.slot.takeovers == 1
    assert events.labels("app-1").value == 6
    assert samples[("events_total", (("app_id", "app-1"),))] == 6
    assert samples[("duration_seconds_count", (("endpoint", "/v1/events"),))] == 1
    assert samples[("connections", ())] == 0


def test_slot_file_grows(tmp_path):
    registry = SlotRegistry(tmp_path, 0, process_metrics=False)
    events, _, _ = families(registry)
    for number in range(20_000):
        events.labels(f"app-{number:05d}").inc(number)

    totals = SlotReader(tmp_path).totals()

    assert slot_path(tmp_path, 0).stat().st_size > INITIAL_BYTES
    assert len([key for key in totals if key[1] == "events_total"]) == 20_000
    assert totals[("counter", "events_total", ("app-19999",))] == [19_999]
    assert exposed(registry)[("events_total", (("app_id", "app-12345"),))] == 12_345


def test_reader_stops_at_damaged_entry(tmp_path):
    registry = SlotRegistry(tmp_path, 0, process_metrics=False)
    events, _, _ = families(registry)
    events.labels("first").inc(1)
    events.labels("second").inc(2)
    registry.close()
    path = slot_path(tmp_path, 0)
    data = bytearray(path.read_bytes())
    position = data.index(b"second")
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))

    totals = SlotReader(tmp_path).totals()

    assert totals[("counter", "events_total", ("first",))] == [1]
    assert not any(key[2] == ("second",) for key in totals)


def test_reset_gauges_of_dead_worker(tmp_path):
    registry = SlotRegistry(tmp_path, 0, process_metrics=False)
    events, _, connections = families(registry)
    events.labels("app-1").inc(4)
    connections.inc(7)
    registry.close()

    reset = reset_gauges(slot_path(tmp_path, 0))
    totals = SlotReader(tmp_path).totals()

    assert reset == 1
    assert totals[("gauge", "connections", ())] == [0]
    assert totals[("counter", "events_total", ("app-1",))] == [4]
