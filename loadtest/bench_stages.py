"""Cost per event of each stage of the ingestion path, in process, beside a baseline work tree.

    python -m loadtest.bench_stages [--baseline ../old-tree] [--batches 120] [--rounds 3] [--instructions]

The socket benchmarks measure the whole service, whose rate swings by 10 % between runs on a
shared machine. This one times the three stages that run once per event on the same
1,000-event batches of the load generator's mix:

- decode: `decode_batch` on each request body;
- validate: `validate_event` on each decoded event;
- apply: attribution into an embedded store (`MemoryStore`), duplicate filter and bounds included.

Each stage runs in a child process of its own, after the stages before it (untimed), with the
service's collector thresholds. The apply child also reports how much its resident size grew
per event. With `--baseline`, every child runs a second time against the `ingestion` package of
that work tree (for example `git worktree add ../old-tree HEAD~5`), the two sides alternating
round by round, so both meet the same machine load. The bodies are built once, in this process,
so both sides decode the same bytes.

`--instructions` also counts the instructions of each stage with valgrind's callgrind, which
repeats to within a few instructions per event whatever else the machine does. Each count is
the difference of two runs, one timing the stage on `--batches` and one on a sixth of them, so
start-up and the stages before cancel out. It takes several minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("decode", "validate", "apply")
BATCH_SIZE = 1000
# Event times of the batches, and the receipt time the children validate them against.
EVENTS_NOW = 1_800_000_000.0
RECEIPT_NOW = EVENTS_NOW + 10.0
APP_ID = "bench.stages"
COLLECTED = re.compile(rb"Collected : (\d+)")


def write_bodies(path: Path, batches: int) -> None:
    """Write `batches` bodies of the load generator's mix with fresh ids, one JSON array each."""
    from loadtest.generator import build_template

    template = build_template(APP_ID, "android", BATCH_SIZE, seed=1, now=EVENTS_NOW)
    path.write_text(json.dumps([template.render(sequence).decode() for sequence in range(batches)]))


def run_child(stage: str, bodies_path: Path, count: int) -> dict:
    """Run the stages before `stage` on every batch, then time `stage` on the first `count` of them.

    The stages before run on every batch whatever `count` is, so that the difference between two
    callgrind runs with different counts is the work of `stage` alone. Runs inside the child,
    which imports `ingestion` from the tree on its PYTHONPATH.
    """
    import gc

    from ingestion.events import decode_batch, validate_event
    from ingestion.model import AppSettings
    from ingestion.store.memory import MemoryStore

    try:
        from ingestion.main import GC_THRESHOLDS
    except ImportError:
        pass  # A tree from before the service set its own thresholds: keep Python's.
    else:
        gc.set_threshold(*GC_THRESHOLDS)
    bodies = [body.encode() for body in json.loads(bodies_path.read_text())]
    settings = AppSettings(app_id=APP_ID, platform="android")
    store = MemoryStore(Path(tempfile.mkdtemp(prefix="bench-stages-")))

    started = time.perf_counter()
    batches = []
    for body in bodies[:count] if stage == "decode" else bodies:
        decoded, errors = decode_batch(body, ndjson=False)
        if errors:
            raise SystemExit(f"a generated batch failed to decode: {errors[0]}")
        batches.append(decoded)
    seconds = time.perf_counter() - started
    events = sum(map(len, batches[:count]))
    if stage == "decode":
        return {"seconds": seconds, "events": events}

    started = time.perf_counter()
    for batch in batches[:count] if stage == "validate" else batches:
        for event in batch:
            if (problem := validate_event(event, RECEIPT_NOW, "android")) is not None:
                raise SystemExit(f"generated event {event.event_id} failed validation: {problem}")
    if stage == "validate":
        return {"seconds": time.perf_counter() - started, "events": events}

    resident_before = resident_bytes()
    started = time.perf_counter()
    for batch in batches[:count]:
        store._apply_now(settings, batch, RECEIPT_NOW)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "events": events, "resident_growth": resident_bytes() - resident_before}


def resident_bytes() -> int:
    """Return the resident size of this process in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# The child loads this file by path: the tree under test may be an older one without it, and
# running it as a script would put loadtest/ itself first on the module path.
CHILD_CODE = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('bench_stages_child', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "sys.exit(module.main(sys.argv[2:]))\n"
)


def child_command(stage: str, bodies_path: Path, count: int) -> list[str]:
    return [sys.executable, "-c", CHILD_CODE, str(Path(__file__).resolve()), "--child", stage, str(bodies_path), str(count)]


def child_env(tree: Path) -> dict[str, str]:
    # The tree first on the path, so its `ingestion` wins over the installed one; a fixed hash
    # seed, so callgrind counts repeat.
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}


def time_stage(tree: Path, stage: str, bodies_path: Path, count: int) -> dict:
    result = subprocess.run(
        child_command(stage, bodies_path, count), env=child_env(tree), cwd=tree,
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"the {stage} stage failed in {tree}:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def count_instructions(tree: Path, stage: str, bodies_path: Path, count: int) -> int:
    """Return the instructions callgrind counted for the whole child process."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               *child_command(stage, bodies_path, count)]
    result = subprocess.run(command, env=child_env(tree), cwd=tree, capture_output=True, check=False)
    found = COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"callgrind failed on the {stage} stage in {tree}:\n{result.stderr.decode()[-2000:]}")
    return int(found.group(1))


def measure(trees: dict[str, Path], args, bodies_path: Path) -> dict:
    """Return {side: {stage: {"ns": [...], "resident_growth": [...], "instructions": n}}}."""
    figures = {side: {stage: {"ns": [], "resident_growth": []} for stage in STAGES} for side in trees}
    for round_number in range(1, args.rounds + 1):
        for stage in STAGES:
            for side, tree in trees.items():
                result = time_stage(tree, stage, bodies_path, args.batches)
                entry = figures[side][stage]
                entry["ns"].append(result["seconds"] / result["events"] * 1e9)
                if "resident_growth" in result:
                    entry["resident_growth"].append(result["resident_growth"] / result["events"])
        print(f"  round {round_number} of {args.rounds} done", flush=True)
    if args.instructions:
        fewer = max(1, args.batches // 6)
        for stage in STAGES:
            for side, tree in trees.items():
                difference = (count_instructions(tree, stage, bodies_path, args.batches)
                              - count_instructions(tree, stage, bodies_path, fewer))
                figures[side][stage]["instructions"] = difference / ((args.batches - fewer) * BATCH_SIZE)
            print(f"  instructions of {stage} counted", flush=True)
    return figures


def report(figures: dict, args) -> str:
    sides = list(figures)
    header = ["stage"]
    for side in sides:
        header += [f"{side} ns/event"] + ([f"{side} instructions/event"] if args.instructions else [])
    if len(sides) == 2:
        header += ["time ratio"] + (["instruction ratio"] if args.instructions else [])
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for stage in STAGES:
        cells = [stage]
        for side in sides:
            entry = figures[side][stage]
            cells.append(f"{min(entry['ns']):,.0f}")
            if args.instructions:
                cells.append(f"{entry['instructions']:,.0f}")
        if len(sides) == 2:
            new, old = (figures[side][stage] for side in sides)
            cells.append(f"{min(new['ns']) / min(old['ns']):.2f}")
            if args.instructions:
                cells.append(f"{new['instructions'] / old['instructions']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Best of {args.rounds} rounds of {args.batches:,} batches of {BATCH_SIZE:,} events; ratios are "
                 f"{sides[0]} over {sides[-1]}." if len(sides) == 2 else
                 f"Best of {args.rounds} rounds of {args.batches:,} batches of {BATCH_SIZE:,} events.")
    for side in sides:
        growth = figures[side]["apply"]["resident_growth"]
        lines.append(f"Resident size grown per applied event, {side}: {statistics.median(growth):,.0f} bytes "
                     f"(median of rounds).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["--child"]:
        stage, bodies_path, count = arguments[1], Path(arguments[2]), int(arguments[3])
        print(json.dumps(run_child(stage, bodies_path, count)))
        return 0

    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_stages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a second work tree to measure side by side, such as an older commit")
    parser.add_argument("--batches", type=int, default=120, help="1,000-event batches per stage and child (default 120)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the best one is reported (default 3)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with valgrind's callgrind")
    args = parser.parse_args(arguments)
    if args.batches < 6 or args.rounds < 1:
        parser.error("--batches must be at least 6 and --rounds at least 1")
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind; install it (apt-get install valgrind) or leave the option out")
    # Imported here, not at the top: a child loads this file with an older tree first on its path.
    from loadtest.trees import trees_to_measure

    trees = trees_to_measure(parser, args.baseline, "ingestion/events.py")

    with tempfile.TemporaryDirectory(prefix="bench-stages-") as directory:
        bodies_path = Path(directory) / "bodies.json"
        write_bodies(bodies_path, args.batches)
        figures = measure(trees, args, bodies_path)
    print(report(figures, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
