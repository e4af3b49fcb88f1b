"""Size, write and load time of a full embedded store's snapshot, beside a baseline work tree.

    python -m loadtest.bench_snapshot [--baseline ../old-tree] [--fill-batches 8000]

A child process applies `--fill-batches` 1,000-event batches of the load generator's mix to a
`MemoryStore` with its default bounds, then writes its snapshot as a compaction does (capture,
then every frame). A second, fresh child reads that file and restores it into an empty store,
as a start does. Reported per tree: the file's size and the seconds to write (encoding, writing
and syncing the file, capture included), read and restore it. Event requests wait while the
state is captured, so the capture's time is given too. The service builds one chunk of the file per turn
of its event loop, so the report also gives the seconds spent building chunks, the longest
single build (the longest an event request waits behind a compaction) and how many took over
10 ms. Also how much the loading process's resident size grew from before the read to after
the restore, and how many distinct `Record` objects the restored install index and record list
hold together. With `--baseline`, both
children run again against the `ingestion` package of that tree, so two snapshot formats are
compared on the same machine in one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadtest.bench_stages import CHILD_CODE, resident_bytes, child_env

APP_ID = "bench.snapshot"
TEMPLATES = 4
SNAPSHOT_NAME = "bench-snapshot.bin"


def _settings():
    from ingestion.model import AppSettings

    return AppSettings(app_id=APP_ID, platform="android")


def write_child(folder: Path, fill_batches: int) -> dict:
    """Fill a store in `folder` and write its snapshot there."""
    from ingestion.events import decode_batch, validate_event
    from ingestion.main import GC_THRESHOLDS
    from ingestion.store.memory import MemoryStore
    from loadtest.generator import build_template

    gc.set_threshold(*GC_THRESHOLDS)
    templates = [build_template(APP_ID, "android", 1000, seed=seed) for seed in range(TEMPLATES)]
    settings = _settings()
    store = MemoryStore(folder / "store")
    for sequence in range(fill_batches):
        events, errors = decode_batch(templates[sequence % TEMPLATES].render(sequence), ndjson=False)
        now = time.time()
        if errors or any(validate_event(event, now, "android") is not None for event in events):
            raise SystemExit("a generated batch failed to decode or validate")
        store._apply_now(settings, events, now)
    path = folder / SNAPSHOT_NAME
    started = time.perf_counter()
    try:
        capture = store._capture(0)
        captured = time.perf_counter()
        steps = write_timing_steps(path, capture.frames())
    finally:
        gc.unfreeze()
    return {
        "capture_ms": (captured - started) * 1000,
        "write_seconds": time.perf_counter() - started,
        "bytes": path.stat().st_size,
        "longest_step_ms": max(steps) * 1000,
        "steps_over_10_ms": sum(step > 0.010 for step in steps),
        "step_seconds": sum(steps),
    }


def write_timing_steps(path: Path, chunks) -> list[float]:
    """Write and sync the chunks as a compaction does, returning the seconds each one took to build.

    In process, the service builds one chunk per turn of its event loop, so the longest build is
    the longest a compaction makes event requests wait.
    """
    steps = []
    iterator = iter(chunks)
    with open(path, "wb") as handle:
        while True:
            started = time.perf_counter()
            chunk = next(iterator, None)
            if chunk is None:
                break
            steps.append(time.perf_counter() - started)
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    return steps


def load_child(folder: Path) -> dict:
    """Read the snapshot in `folder` and restore it into an empty store."""
    from ingestion.main import GC_THRESHOLDS
    from ingestion.store.memory import MemoryStore
    from ingestion.store.snapshot import read_snapshot

    gc.set_threshold(*GC_THRESHOLDS)
    resident_before = resident_bytes()
    started = time.perf_counter()
    snapshot = read_snapshot(folder / SNAPSHOT_NAME)
    read_seconds = time.perf_counter() - started
    store = MemoryStore(folder / "restored")
    store._state_for(APP_ID).settings = _settings()
    started = time.perf_counter()
    store._restore_snapshot(snapshot)
    restore_seconds = time.perf_counter() - started
    del snapshot
    gc.collect()
    state = store.states[APP_ID]
    live_records = state.live_records()
    records = {id(record) for record in live_records}
    # A baseline tree older than ingestion.store.shards keeps the install index in one dict.
    install_shards = state.installs if isinstance(state.installs, list) else [state.installs]
    records.update(id(record) for shard in install_shards for record in shard.values())
    return {
        "read_seconds": read_seconds,
        "restore_seconds": restore_seconds,
        "resident_growth": resident_bytes() - resident_before,
        "distinct_records": len(records),
        "records": len(live_records),
        "installs": sum(map(len, install_shards)),
    }


def run_child(tree: Path, *arguments: str) -> dict:
    command = [sys.executable, "-c", CHILD_CODE, str(Path(__file__).resolve()), "--child", *arguments]
    result = subprocess.run(command, env=child_env(tree), cwd=tree, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the {arguments[0]} child failed in {tree}:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def measure(tree: Path, fill_batches: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
    try:
        figures = run_child(tree, "write", str(folder), str(fill_batches))
        figures.update(run_child(tree, "load", str(folder)))
        return figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(figures: dict[str, dict], fill_batches: int) -> str:
    sides = list(figures)
    lines = [
        f"Snapshot of a store filled with {fill_batches:,} batches of 1,000 events.",
        "",
        "| figure | " + " | ".join(sides) + (" | ratio" if len(sides) == 2 else "") + " |",
        "| --- | " + " | ".join("---:" for _ in sides) + (" | ---:" if len(sides) == 2 else "") + " |",
    ]
    rows = [
        ("snapshot MB", "bytes", 1e-6, "{:,.0f}"),
        ("capture ms (event requests wait)", "capture_ms", 1, "{:.0f}"),
        ("write s", "write_seconds", 1, "{:.1f}"),
        ("encoding steps on the event loop, s", "step_seconds", 1, "{:.2f}"),
        ("longest step ms", "longest_step_ms", 1, "{:.1f}"),
        ("steps over 10 ms", "steps_over_10_ms", 1, "{:,.0f}"),
        ("read s", "read_seconds", 1, "{:.1f}"),
        ("restore s", "restore_seconds", 1, "{:.1f}"),
        ("resident MB grown by loading", "resident_growth", 1e-6, "{:,.0f}"),
        ("records in the record list", "records", 1, "{:,.0f}"),
        ("device keys in the install index", "installs", 1, "{:,.0f}"),
        ("distinct Record objects in both", "distinct_records", 1, "{:,.0f}"),
    ]
    for label, key, scale, form in rows:
        values = [figures[side][key] * scale for side in sides]
        line = f"| {label} | " + " | ".join(form.format(value) for value in values)
        if len(sides) == 2:
            line += f" | {values[0] / values[1]:.2f}" if values[1] else " | "
        lines.append(line + " |")
    if len(sides) == 2:
        lines += ["", f"Ratios are {sides[0]} over {sides[1]}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        stage, folder, *rest = argv[1:]
        figures = write_child(Path(folder), int(rest[0])) if stage == "write" else load_child(Path(folder))
        print(json.dumps(figures))
        return 0
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_snapshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a second work tree to measure side by side, such as an older commit")
    parser.add_argument("--fill-batches", type=int, default=8000,
                        help="1,000-event batches applied before the snapshot (default 8000, past every default bound)")
    args = parser.parse_args(argv)
    if args.fill_batches < 1:
        parser.error("--fill-batches must be at least 1")
    # Imported here, not at the top: a child loads this file with an older tree first on its path.
    from loadtest.trees import trees_to_measure

    trees = trees_to_measure(parser, args.baseline, "ingestion/store/snapshot.py")
    figures = {}
    for side, tree in trees.items():
        figures[side] = measure(tree, args.fill_batches)
        print(f"  {side} measured", flush=True)
    print(report(figures, args.fill_batches))
    return 0


if __name__ == "__main__":
    sys.exit(main())
