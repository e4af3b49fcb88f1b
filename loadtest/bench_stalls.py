"""Slow batches of a full embedded store, in process, and what each one waited for.

    python -m loadtest.bench_stalls [--fill-batches 8000] [--batches 3000] [--slow-ms 30] [--hours-per-batch 0]

The paced benchmark (`loadtest.bench_latency`) shows that a full store stalls now and then. This
one names the causes. It applies `--fill-batches` 1,000-event batches of the load generator's
mix to a `MemoryStore` with its default bounds and the service's collector thresholds, then
times each of `--batches` more. For every batch slower than `--slow-ms` it reports the time the
garbage collector took during it (from `gc.callbacks`, by generation) and which of the store's
large dicts and sets changed their allocated size, which marks a rebuild of that table.

By default the batches repeat the same event times with fresh ids. The watermark then stays
put: only impressions older than their window in each template expire, and the count bounds
remove everything else. With `--hours-per-batch`, event times and receipt times move forward
by that many hours per batch, as in live traffic, so clicks, installs and event ids expire
too. The report counts the entries that expired during the timed batches, and names expiry as
a cause of a slow batch during which any expired.
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
    expired: int = 0

    @property
    def cause(self) -> str:
        causes = [f"table rebuild: {', '.join(self.rebuilt)}"] if self.rebuilt else []
        if self.expired:
            causes.append("expiry")
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


def table_sizes(state) -> dict[str, int]:
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
    sizes["duplicate filter"] = sum(map(sys.getsizeof, state.seen))
    return sizes


# Batches that share one set of templates when event times move forward.
BATCHES_PER_TEMPLATE_SET = 100


def run(fill_batches: int, batches: int, slow_ms: float,
        hours_per_batch: float = 0.0) -> tuple[list[float], list[SlowBatch], dict[int, list[float]], dict[str, int]]:
    from ingestion.events import decode_batch, validate_event
    from ingestion.main import GC_THRESHOLDS
    from ingestion.model import AppSettings
    from ingestion.store.memory import MemoryStore
    from loadtest.bench_stages import resident_bytes
    from loadtest.generator import build_template

    gc.set_threshold(*GC_THRESHOLDS)
    settings = AppSettings(app_id=APP_ID, platform="android")
    store = MemoryStore(Path(tempfile.mkdtemp(prefix="bench-stalls-")))
    # With hours_per_batch, event times start in the past and end now. The receipt time that
    # validation checks against moves with them.
    first_now = time.time() - (fill_batches + batches) * hours_per_batch * 3600
    template_sets: dict[int, list] = {}

    def templates_for(sequence: int) -> tuple[list, float]:
        if not hours_per_batch:
            if not template_sets:
                template_sets[0] = [build_template(APP_ID, "android", 1000, seed=seed) for seed in range(TEMPLATES)]
            return template_sets[0], time.time()
        number = sequence // BATCHES_PER_TEMPLATE_SET
        now = first_now + number * BATCHES_PER_TEMPLATE_SET * hours_per_batch * 3600
        if number not in template_sets:
            template_sets.clear()
            template_sets[number] = [
                build_template(APP_ID, "android", 1000, seed=TEMPLATES * number + seed, now=now) for seed in range(TEMPLATES)
            ]
        return template_sets[number], now + 1.0

    def next_batch(sequence: int):
        templates, now = templates_for(sequence)
        events, errors = decode_batch(templates[sequence % TEMPLATES].render(sequence), ndjson=False)
        if errors:
            raise SystemExit(f"a generated batch failed to decode: {errors[0]}")
        for event in events:
            if (problem := validate_event(event, now, "android")) is not None:
                raise SystemExit(f"generated event {event.event_id} failed validation: {problem}")
        return events, now

    started = time.perf_counter()
    for sequence in range(fill_batches):
        store._apply_now(settings, *next_batch(sequence))
    print(f"  filled with {fill_batches:,} batches in {time.perf_counter() - started:.0f} s; "
          f"{store.live_touches:,} touches live; resident size {resident_bytes() / 2**20:,.0f} MiB", flush=True)

    state = store.states[APP_ID]
    expired_at_start = dict(store.expired)
    clock = CollectorClock()
    gc.callbacks.append(clock)
    durations = []
    slow = []
    try:
        for index in range(batches):
            events, now = next_batch(fill_batches + index)
            before = table_sizes(state)
            expired_before = sum(store.expired.values())
            clock.reset()
            started = time.perf_counter()
            store._apply_now(settings, events, now)
            seconds = time.perf_counter() - started
            durations.append(seconds * 1000)
            if seconds * 1000 > slow_ms:
                after = table_sizes(state)
                rebuilt = [name for name, size in after.items() if before.get(name) != size]
                expired = sum(store.expired.values()) - expired_before
                slow.append(SlowBatch(index, seconds * 1000, clock.seconds * 1000, list(clock.generations), rebuilt, expired))
    finally:
        gc.callbacks.remove(clock)
    expired = {kind: count - expired_at_start.get(kind, 0) for kind, count in store.expired.items()}
    return durations, slow, clock.pauses, expired


def format_report(durations: list[float], slow: list[SlowBatch], pauses: dict[int, list[float]],
                  expired: dict[str, int], args) -> str:
    ordered = sorted(durations)
    lines = [
        f"{len(durations):,} batches after {args.fill_batches:,}: mean {sum(durations) / len(durations):.2f} ms, "
        f"p50 {ordered[len(ordered) // 2]:.1f} ms, "
        f"p99 {ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]:.1f} ms, slowest {ordered[-1]:.0f} ms",
        "collections by generation: " + (", ".join(
            f"{generation}: {len(milliseconds)} (mean {sum(milliseconds) / len(milliseconds):.1f} ms, "
            f"slowest {max(milliseconds):.1f} ms)"
            for generation, milliseconds in sorted(pauses.items())) or "none"),
        "entries expired during the timed batches: " + ", ".join(f"{kind} {count:,}" for kind, count in sorted(expired.items())),
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
    parser.add_argument("--hours-per-batch", type=float, default=0.0,
                        help="hours that event times move forward per batch, so entries also expire "
                             "(default 0: every batch repeats the same event times)")
    args = parser.parse_args(argv)
    if args.fill_batches < 0 or args.batches < 1 or args.slow_ms <= 0 or args.hours_per_batch < 0:
        parser.error("--fill-batches must be 0 or more, --batches at least 1, --slow-ms positive "
                     "and --hours-per-batch 0 or more")
    durations, slow, pauses, expired = run(args.fill_batches, args.batches, args.slow_ms, args.hours_per_batch)
    print(format_report(durations, slow, pauses, expired, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
