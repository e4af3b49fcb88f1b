"""Slow batches of a full embedded store, in process, and what each one waited for.

    python -m loadtest.bench_stalls [--fill-batches 8000] [--batches 3000] [--slow-ms 30]

The paced benchmark (`loadtest.bench_latency`) shows that a full store stalls now and then. This
one names the causes. It applies `--fill-batches` 1,000-event batches of the load generator's
mix to a `MemoryStore` with its default bounds and the service's collector thresholds, then
times each of `--batches` more. For every batch slower than `--slow-ms` it reports the time the
garbage collector took during it (from `gc.callbacks`, by generation) and which of the store's
large dicts and sets changed their allocated size, which marks a rebuild of that table.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gc
import sys
import tempfile
import time
from pathlib import Path

APP_ID = "bench.stalls"
TEMPLATES = 4


@dataclasses.dataclass
class SlowBatch:
    index: int
    milliseconds: float
    collector_ms: float
    generations: list[int]
    rebuilt: list[str]

    @property
    def cause(self) -> str:
        causes = [f"table rebuild: {', '.join(self.rebuilt)}"] if self.rebuilt else []
        if self.generations:
            causes.append(f"collection of generation {max(self.generations)}")
        return ", ".join(causes) or "not identified"


class CollectorClock:
    """Time the collector spends, and the generations it collects, between two resets.

    ``pauses`` keeps the milliseconds of every collection by generation, across resets.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.generations: list[int] = []
        self.pauses: dict[int, list[float]] = collections.defaultdict(list)
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            seconds = time.perf_counter() - self._started
            self.seconds += seconds
            self.generations.append(info["generation"])
            self.pauses[info["generation"]].append(seconds * 1000)

    def reset(self) -> None:
        self.seconds = 0.0
        self.generations = []


def table_sizes(store, state) -> dict[str, int]:
    """Return the allocated size of each dict of the app's state and of the duplicate filter.

    sys.getsizeof of a dict or set changes only when its table is reallocated. Of a table kept
    in parts by age, only the newest part grows, so its size stands for the table's; it also
    changes when a new part starts.
    """
    from ingestion.store.aged import AgedDict

    sizes = {name: sys.getsizeof(value) for name, value in vars(state).items() if isinstance(value, dict)}
    # A table spread over dicts by key hash (ingestion.store.shards): any shard's rebuild counts.
    sizes.update(
        (name, sum(map(sys.getsizeof, value)))
        for name, value in vars(state).items()
        if isinstance(value, list) and value and isinstance(value[0], dict)
    )
    sizes.update(
        (name, sys.getsizeof(value.parts[-1])) for name, value in vars(state).items() if isinstance(value, AgedDict)
    )
    sizes["duplicate filter"] = sum(map(sys.getsizeof, store.seen_shards))
    return sizes


def run(fill_batches: int, batches: int, slow_ms: float) -> tuple[list[float], list[SlowBatch], dict[int, list[float]]]:
    from ingestion.events import decode_batch, validate_event
    from ingestion.main import GC_THRESHOLDS
    from ingestion.model import AppSettings
    from ingestion.store.memory import MemoryStore
    from loadtest.generator import build_template

    gc.set_threshold(*GC_THRESHOLDS)
    templates = [build_template(APP_ID, "android", 1000, seed=seed) for seed in range(TEMPLATES)]
    settings = AppSettings(app_id=APP_ID, platform="android")
    store = MemoryStore(Path(tempfile.mkdtemp(prefix="bench-stalls-")))

    def next_batch(sequence: int):
        events, errors = decode_batch(templates[sequence % TEMPLATES].render(sequence), ndjson=False)
        if errors:
            raise SystemExit(f"a generated batch failed to decode: {errors[0]}")
        now = time.time()
        for event in events:
            if (problem := validate_event(event, now, "android")) is not None:
                raise SystemExit(f"generated event {event.event_id} failed validation: {problem}")
        return events, now

    started = time.perf_counter()
    for sequence in range(fill_batches):
        store._apply_now(settings, *next_batch(sequence))
    print(f"  filled with {fill_batches:,} batches in {time.perf_counter() - started:.0f} s; "
          f"{store.live_touches:,} touches live", flush=True)

    state = store.states[APP_ID]
    clock = CollectorClock()
    gc.callbacks.append(clock)
    durations = []
    slow = []
    try:
        for index in range(batches):
            events, now = next_batch(fill_batches + index)
            before = table_sizes(store, state)
            clock.reset()
            started = time.perf_counter()
            store._apply_now(settings, events, now)
            seconds = time.perf_counter() - started
            durations.append(seconds * 1000)
            if seconds * 1000 > slow_ms:
                after = table_sizes(store, state)
                rebuilt = [name for name, size in after.items() if before.get(name) != size]
                slow.append(SlowBatch(index, seconds * 1000, clock.seconds * 1000, list(clock.generations), rebuilt))
    finally:
        gc.callbacks.remove(clock)
    return durations, slow, clock.pauses


def format_report(durations: list[float], slow: list[SlowBatch], pauses: dict[int, list[float]], args) -> str:
    ordered = sorted(durations)
    lines = [
        f"{len(durations):,} batches after {args.fill_batches:,}: mean {sum(durations) / len(durations):.2f} ms, "
        f"p50 {ordered[len(ordered) // 2]:.1f} ms, "
        f"p99 {ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]:.1f} ms, slowest {ordered[-1]:.0f} ms",
        "collections by generation: " + (", ".join(
            f"{generation}: {len(milliseconds)} (mean {sum(milliseconds) / len(milliseconds):.1f} ms, "
            f"slowest {max(milliseconds):.1f} ms)"
            for generation, milliseconds in sorted(pauses.items())) or "none"),
        "",
        f"| cause of batches over {args.slow_ms:g} ms | batches | slowest ms | collector ms in the slowest |",
        "| --- | ---: | ---: | ---: |",
    ]
    by_cause: dict[str, list[SlowBatch]] = collections.defaultdict(list)
    for batch in slow:
        by_cause[batch.cause].append(batch)
    for cause, members in sorted(by_cause.items(), key=lambda item: -max(batch.milliseconds for batch in item[1])):
        slowest = max(members, key=lambda batch: batch.milliseconds)
        lines.append(f"| {cause} | {len(members)} | {slowest.milliseconds:.0f} | {slowest.collector_ms:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_stalls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fill-batches", type=int, default=8000,
                        help="1,000-event batches applied first, untimed (default 8000, past every default bound)")
    parser.add_argument("--batches", type=int, default=3000, help="batches timed after the fill (default 3000)")
    parser.add_argument("--slow-ms", type=float, default=30.0, help="batches slower than this are explained (default 30)")
    args = parser.parse_args(argv)
    if args.fill_batches < 0 or args.batches < 1 or args.slow_ms <= 0:
        parser.error("--fill-batches must be 0 or more, --batches at least 1 and --slow-ms positive")
    durations, slow, pauses = run(args.fill_batches, args.batches, args.slow_ms)
    print(format_report(durations, slow, pauses, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
