"""Cost per recorded event of exporters.metrics against prometheus_client.

Each batch contains ``batch_size`` events spread over about ``groups`` label sets
(app_id, event_type, platform, status). Recording one event means one counter
increment on its label set and one observation of the request's processing
time on a histogram labelled by app_id and event_type, as the ingestion
service does. Five ways of recording the same batches run side by side:

- ``exporters batched``: per label set, ``inc(n)`` and ``observe(value, count=n)``;
  the batch arrives already grouped, as the attribution pass produces it.
- ``exporters batched + grouping``: the same, with the grouping of the events
  by label set (``collections.Counter``) included in the time.
- ``exporters per event``: ``inc()`` and ``observe(value)`` once per event,
  the same number of calls as prometheus_client.
- ``prometheus_client per event``: ``inc()`` and ``observe(value)`` per event.
- ``prometheus_client batched``: ``inc(n)`` per label set, but still one
  ``observe`` per event, since its histograms have no count argument.

After timing, every registry must expose the same counter values and
histogram bucket counts; ``run`` reports whether they do.

Run with ``python -m loadtest.bench_metrics`` (``--help`` lists the options).
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version

import prometheus_client
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporters.exposition import render
from exporters.metrics import DEFAULT_BUCKETS, Counter, Histogram, Registry

COUNTER_NAME = "bench_events_processed_total"
HISTOGRAM_NAME = "bench_event_processing_duration_seconds"
COUNTER_LABELS = ("app_id", "event_type", "platform", "status")
HISTOGRAM_LABELS = ("app_id", "event_type")

# A batch as the recorders see it: the request's processing time, the label
# set of every event, and the same events grouped as (label set, count).
Batch = tuple[float, list[tuple[str, ...]], list[tuple[tuple[str, ...], int]]]


def make_batches(batch_size: int, groups: int, distinct: int, seed: int) -> list[Batch]:
    """Build ``distinct`` batches of ``batch_size`` events over ``groups`` label sets."""
    rng = random.Random(seed)
    apps = [f"app{index}" for index in range(max(1, groups // 4))]
    label_sets = []
    while len(label_sets) < groups:
        label_set = (
            rng.choice(apps),
            rng.choice(("click", "impression", "install", "session", "in_app")),
            rng.choice(("ios", "android", "web")),
            rng.choices(("accepted", "duplicate", "rejected"), weights=(90, 7, 3))[0],
        )
        if label_set not in label_sets:
            label_sets.append(label_set)
    batches = []
    for _ in range(distinct):
        duration = rng.lognormvariate(-5.0, 1.0)  # median about 7 ms
        events = [rng.choice(label_sets) for _ in range(batch_size)]
        grouped = list(collections.Counter(events).items())
        batches.append((duration, events, grouped))
    return batches


# -- Recorders -------------------------------------------------------------
# Each builder returns (registry, record) where record(batch) records one batch.


def exporters_batched() -> tuple[Registry, Callable[[Batch], None]]:
    registry = Registry(process_metrics=False)
    counter = Counter(COUNTER_NAME, "Events.", COUNTER_LABELS, registry=registry)
    histogram = Histogram(HISTOGRAM_NAME, "Duration.", HISTOGRAM_LABELS, registry=registry)

    def record(batch: Batch) -> None:
        duration, _, grouped = batch
        for label_set, count in grouped:
            counter.labels(*label_set).inc(count)
            histogram.labels(label_set[0], label_set[1]).observe(duration, count)

    return registry, record


def exporters_batched_grouping() -> tuple[Registry, Callable[[Batch], None]]:
    registry = Registry(process_metrics=False)
    counter = Counter(COUNTER_NAME, "Events.", COUNTER_LABELS, registry=registry)
    histogram = Histogram(HISTOGRAM_NAME, "Duration.", HISTOGRAM_LABELS, registry=registry)

    def record(batch: Batch) -> None:
        duration, events, _ = batch
        for label_set, count in collections.Counter(events).items():
            counter.labels(*label_set).inc(count)
            histogram.labels(label_set[0], label_set[1]).observe(duration, count)

    return registry, record


def exporters_per_event() -> tuple[Registry, Callable[[Batch], None]]:
    registry = Registry(process_metrics=False)
    counter = Counter(COUNTER_NAME, "Events.", COUNTER_LABELS, registry=registry)
    histogram = Histogram(HISTOGRAM_NAME, "Duration.", HISTOGRAM_LABELS, registry=registry)

    def record(batch: Batch) -> None:
        duration, events, _ = batch
        for label_set in events:
            counter.labels(*label_set).inc()
            histogram.labels(label_set[0], label_set[1]).observe(duration)

    return registry, record


def _prometheus_client_families() -> tuple[
    prometheus_client.CollectorRegistry, prometheus_client.Counter, prometheus_client.Histogram
]:
    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter(
        COUNTER_NAME, "Events.", COUNTER_LABELS, registry=registry
    )
    histogram = prometheus_client.Histogram(
        HISTOGRAM_NAME, "Duration.", HISTOGRAM_LABELS, registry=registry, buckets=DEFAULT_BUCKETS
    )
    return registry, counter, histogram


def prometheus_client_per_event() -> tuple[
    prometheus_client.CollectorRegistry, Callable[[Batch], None]
]:
    registry, counter, histogram = _prometheus_client_families()

    def record(batch: Batch) -> None:
        duration, events, _ = batch
        for label_set in events:
            counter.labels(*label_set).inc()
            histogram.labels(label_set[0], label_set[1]).observe(duration)

    return registry, record


def prometheus_client_batched() -> tuple[
    prometheus_client.CollectorRegistry, Callable[[Batch], None]
]:
    registry, counter, histogram = _prometheus_client_families()

    def record(batch: Batch) -> None:
        duration, _, grouped = batch
        for label_set, count in grouped:
            counter.labels(*label_set).inc(count)
            child = histogram.labels(label_set[0], label_set[1])
            for _ in range(count):
                child.observe(duration)

    return registry, record


RECORDERS: dict[str, Callable[[], tuple[object, Callable[[Batch], None]]]] = {
    "exporters batched": exporters_batched,
    "exporters batched + grouping": exporters_batched_grouping,
    "exporters per event": exporters_per_event,
    "prometheus_client per event": prometheus_client_per_event,
    "prometheus_client batched": prometheus_client_batched,
}
BASELINE = "prometheus_client per event"


# -- Measurement -----------------------------------------------------------


def _exposed_counts(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return the counter and histogram bucket/count samples of a text 0.0.4 body."""
    counts = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            if sample.name.endswith(("_total", "_bucket", "_count")):
                counts[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return counts


def _exposed_sums(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    sums = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                sums[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return sums


def _exposition(registry: object) -> bytes:
    if isinstance(registry, Registry):
        return render(registry, None)[0]
    return generate_latest(registry)  # type: ignore[arg-type]


def run(
    batch_size: int = 1000,
    groups: int = 20,
    batches: int = 50,
    rounds: int = 5,
    seed: int = 1,
) -> dict:
    """Time every recorder on the same batches and compare what they expose.

    Each round records ``batches`` batches with every recorder in turn; the
    reported cost is the median over rounds of nanoseconds per event. All
    recorders see the same events, so their registries must expose the same
    counts at the end.
    """
    if batch_size < 1 or groups < 1 or batches < 1 or rounds < 1:
        raise ValueError("batch_size, groups, batches and rounds must all be >= 1")
    if groups > batch_size:
        raise ValueError(f"groups ({groups}) must not exceed batch_size ({batch_size})")
    sample = make_batches(batch_size, groups, distinct=min(batches, 16), seed=seed)
    plan = [sample[index % len(sample)] for index in range(batches)]
    events_per_round = batch_size * batches

    recorders = {name: build() for name, build in RECORDERS.items()}
    timings: dict[str, list[float]] = {name: [] for name in recorders}
    for _ in range(rounds):
        for name, (_, record) in recorders.items():
            gc.collect()
            started = time.perf_counter_ns()
            for batch in plan:
                record(batch)
            elapsed = time.perf_counter_ns() - started
            timings[name].append(elapsed / events_per_round)

    ns_per_event = {name: statistics.median(values) for name, values in timings.items()}
    baseline = ns_per_event[BASELINE]

    expositions = {name: _exposition(registry) for name, (registry, _) in recorders.items()}
    reference = _exposed_counts(expositions[BASELINE])
    reference_sums = _exposed_sums(expositions[BASELINE])
    counts_match = {name: _exposed_counts(body) == reference for name, body in expositions.items()}
    sums_match = {
        name: _sums_close(_exposed_sums(body), reference_sums)
        for name, body in expositions.items()
    }
    expected_events = events_per_round * rounds
    counter_total = sum(
        value for (sample_name, _), value in reference.items() if sample_name == COUNTER_NAME
    )

    return {
        "batch_size": batch_size,
        "groups": groups,
        "label_sets": len(sample[0][2]),
        "batches_per_round": batches,
        "rounds": rounds,
        "events_recorded_per_recorder": expected_events,
        "exposed_counter_total": counter_total,
        "ns_per_event": ns_per_event,
        "speedup_vs_baseline": {name: baseline / value for name, value in ns_per_event.items()},
        "baseline": BASELINE,
        "counts_match": counts_match,
        "sums_match": sums_match,
        "all_counts_match": all(counts_match.values()) and counter_total == expected_events,
        "python": platform.python_version(),
        "prometheus_client": version("prometheus_client"),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
    }


def _sums_close(sums: dict, reference: dict) -> bool:
    # One observe(value, count=n) and n observe(value) calls round
    # differently in the last bits, so sums agree to a relative 1e-9.
    if sums.keys() != reference.keys():
        return False
    return all(abs(sums[key] - value) <= 1e-9 * max(1.0, abs(value)) for key, value in reference.items())


def format_table(result: dict) -> str:
    """Return the result as a plain-text table."""
    lines = [
        f"{result['events_recorded_per_recorder']:,} events per recorder "
        f"({result['rounds']} rounds x {result['batches_per_round']} batches x "
        f"{result['batch_size']} events, {result['label_sets']} label sets); "
        f"Python {result['python']}, prometheus_client {result['prometheus_client']}",
        "",
        f"{'recorder':<32} {'ns/event':>10} {'times cheaper than baseline':>28} {'counts':>7}",
    ]
    for name, value in result["ns_per_event"].items():
        speedup = result["speedup_vs_baseline"][name]
        same = "same" if result["counts_match"][name] and result["sums_match"][name] else "DIFFER"
        lines.append(f"{name:<32} {value:>10.1f} {speedup:>27.1f}x {same:>7}")
    lines.append("")
    lines.append(f"baseline: {result['baseline']}")
    lines.append(
        f"exposed counter total {result['exposed_counter_total']:,.0f}; "
        f"all counts match: {result['all_counts_match']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench_metrics",
        description="Compare the cost per recorded event of exporters.metrics and prometheus_client.",
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch (default 1000)")
    parser.add_argument("--groups", type=int, default=20, help="label sets per batch (default 20)")
    parser.add_argument("--batches", type=int, default=50, help="batches per round (default 50)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported (default 5)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the batches (default 1)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    result = run(args.batch_size, args.groups, args.batches, args.rounds, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
    return 0 if result["all_counts_match"] else 1


if __name__ == "__main__":
    sys.exit(main())
