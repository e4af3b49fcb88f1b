"""Resident memory that the embedded store keeps per event of each kind, for sizing its maxima.

    python -m loadtest.bench_memory [--baseline ../old-tree] [--events 200000] [--rounds 3]

For each kind of event, a child process decodes, validates and applies `--events` events of
that kind to a `MemoryStore` whose maxima are above that count. It applies them in 1,000-event
batches, as the service does, and reports how much its resident size grew per event:

- click: a touch with a fingerprint (ip and user agent), indexed by device id;
- impression: a touch without a fingerprint, indexed by device id;
- install: an organic record, its entry in the install table and its reinstall expiry;
- session: only the event id, in the duplicate filter.

Each kind's figure includes the event's duplicate-filter entry. Every event has its own
30-character `gaid`, event id and, where it has them, ip and 60-character user agent, so no
string is shared between events but the app's labels (network, campaign, ad group, creative).
Longer ids and user agents cost more; repeated user agents cost less.

From these figures the report estimates the store at given maxima (the service's defaults
unless `--max-touches` and the other maxima options set them): every touch a click, every
install with its record, and the duplicate filter's other entries ids only. With `--baseline`, every child
also runs against the `ingestion` package of that work tree, the two sides alternating kind by
kind, and the report gives the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from loadtest.bench_stages import CHILD_CODE, child_env, resident_bytes

KINDS = ("click", "impression", "install", "session")
BATCH_SIZE = 1000
APP_ID = "bench.memory"
# Event times of the batches, and the receipt time they are validated against.
EVENTS_NOW = 1_800_000_000.0
RECEIPT_NOW = EVENTS_NOW + 10.0
NETWORKS = ("network_a", "network_b", "network_c")
CAMPAIGNS = ("spring_sale", "new_levels_launch", "retargeting_q3", "brand_video")


def event(kind: str, number: int) -> dict:
    """Return event `number` of `kind`: its own 30-character ids, and for clicks and installs its own ip and user agent."""
    document = {
        "event_id": f"{kind[:3]}-{number:026d}",
        "app_id": APP_ID,
        "event_type": kind,
        "event_time": EVENTS_NOW - (number % 3600),
        "gaid": f"{number:09x}-5a1e-4c0d-9f00-{kind[:5]:>5}",
    }
    if kind in ("click", "install"):
        document["ip"] = f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
        document["user_agent"] = f"Mozilla/5.0 (Linux; Android 14; Pixel {number:07d}) Mobile Safari"
    if kind in ("click", "impression"):
        document["network"] = NETWORKS[number % len(NETWORKS)]
        document["campaign"] = CAMPAIGNS[number % len(CAMPAIGNS)]
        document["adgroup"] = f"adgroup_{number % 8}"
        document["creative"] = f"creative_{number % 16}"
    return document


def run_child(kind: str, count: int) -> dict:
    """Apply `count` events of `kind` to a fresh store; return the resident growth. Runs inside the child."""
    import gc

    from ingestion.events import decode_batch, validate_event
    from ingestion.model import AppSettings
    from ingestion.store.memory import MemoryLimits, MemoryStore

    try:
        from ingestion.main import GC_THRESHOLDS
    except ImportError:
        pass  # A tree from before the service set its own thresholds: keep Python's.
    else:
        gc.set_threshold(*GC_THRESHOLDS)
    settings = AppSettings(app_id=APP_ID, platform="android")
    above = count + 1
    limits = MemoryLimits(max_touches=above, max_installs=above, max_records=above, max_dedup_entries=above)
    store = MemoryStore(Path(tempfile.mkdtemp(prefix="bench-memory-")), limits=limits)
    # One batch first, untimed, so that the tables and code paths exist before the measurement.
    total = count + BATCH_SIZE
    batches = [range(start, min(start + BATCH_SIZE, total)) for start in range(0, total, BATCH_SIZE)]
    resident_before = 0
    for position, numbers in enumerate(batches):
        if position == 1:
            gc.collect()
            resident_before = resident_bytes()
        body = json.dumps([event(kind, number) for number in numbers]).encode()
        decoded, errors = decode_batch(body, ndjson=False)
        if errors:
            raise SystemExit(f"a {kind} batch failed to decode: {errors[0]}")
        for item in decoded:
            if (problem := validate_event(item, RECEIPT_NOW, "android")) is not None:
                raise SystemExit(f"{kind} event {item.event_id} failed validation: {problem}")
        store._apply_now(settings, decoded, RECEIPT_NOW)
    del body, decoded
    gc.collect()
    return {"resident_growth": resident_bytes() - resident_before, "events": count}


def measure_kind(tree: Path, kind: str, count: int) -> float:
    """Return the resident bytes per event of `kind` that the store of `tree` keeps."""
    command = [sys.executable, "-c", CHILD_CODE, str(Path(__file__).resolve()), "--child", kind, str(count)]
    result = subprocess.run(command, env=child_env(tree), cwd=tree, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the {kind} child failed in {tree}:\n{result.stderr.strip()}")
    figures = json.loads(result.stdout)
    return figures["resident_growth"] / figures["events"]


def estimate(per_event: dict[str, float], maxima: dict[str, int]) -> float:
    """Return the bytes of a store at `maxima`: clicks for touches, installs, and ids only for the rest of the filter."""
    ids_only = max(0, maxima["dedup_entries"] - maxima["touches"] - maxima["installs"])
    return (maxima["touches"] * per_event["click"] + maxima["installs"] * per_event["install"]
            + ids_only * per_event["session"])


def report(figures: dict[str, dict[str, list[float]]], args, maxima: dict[str, int]) -> str:
    sides = list(figures)
    medians = {side: {kind: statistics.median(figures[side][kind]) for kind in KINDS} for side in sides}
    header = ["kind", *(f"{side} bytes/event" for side in sides)] + (["ratio"] if len(sides) == 2 else [])
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for kind in KINDS:
        cells = [kind, *(f"{medians[side][kind]:,.0f}" for side in sides)]
        if len(sides) == 2:
            cells.append(f"{medians[sides[0]][kind] / medians[sides[1]][kind]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Median of {args.rounds} rounds of {args.events:,} events per kind"
                 + (f"; ratios are {sides[0]} over {sides[1]}." if len(sides) == 2 else "."))
    for side in sides:
        total = estimate(medians[side], maxima)
        lines.append(
            f"A store at {maxima['touches']:,} touches, {maxima['installs']:,} installs and records and "
            f"{maxima['dedup_entries']:,} duplicate-filter entries, {side}: about {total / 2**30:.1f} GiB."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["--child"]:
        print(json.dumps(run_child(arguments[1], int(arguments[2]))))
        return 0

    from ingestion.store.memory import MemoryLimits

    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a second work tree to measure side by side, such as an older commit")
    parser.add_argument("--events", type=int, default=200_000, help="events of each kind per child (default 200,000)")
    parser.add_argument("--rounds", type=int, default=3, help="children per kind and side; the median is reported (default 3)")
    defaults = MemoryLimits()
    parser.add_argument("--max-touches", type=int, default=defaults.max_touches, help="touches for the estimate")
    parser.add_argument("--max-installs", type=int, default=defaults.max_installs,
                        help="installs and records for the estimate")
    parser.add_argument("--max-dedup-entries", type=int, default=defaults.max_dedup_entries,
                        help="duplicate-filter entries for the estimate")
    args = parser.parse_args(arguments)
    if args.events < BATCH_SIZE or args.rounds < 1:
        parser.error(f"--events must be at least {BATCH_SIZE:,} and --rounds at least 1")
    # Imported here, not at the top: a child loads this file with an older tree first on its path.
    from loadtest.trees import trees_to_measure

    trees = trees_to_measure(parser, args.baseline, "ingestion/store/memory.py")
    maxima = {"touches": args.max_touches, "installs": args.max_installs, "dedup_entries": args.max_dedup_entries}

    figures = {side: {kind: [] for kind in KINDS} for side in trees}
    for round_number in range(1, args.rounds + 1):
        for kind in KINDS:
            for side, tree in trees.items():
                figures[side][kind].append(measure_kind(tree, kind, args.events))
        print(f"  round {round_number} of {args.rounds} done", flush=True)
    print(report(figures, args, maxima))
    return 0


if __name__ == "__main__":
    sys.exit(main())
