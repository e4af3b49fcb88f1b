"""Ingestion rate over time while journal compactions run, per --snapshot-mode.

    python -m loadtest.bench_compaction [--windows 8] [--window 5] [--modes in-process,fork]

For each snapshot mode, one after the other, a fresh `unmogrowp ingestion` (embedded store in a
temporary folder) takes the benchmark's load of 1,000-event batches with fresh ids for
`windows` consecutive windows of `window` seconds each. The journal takes about 330 bytes per
event. At 130,000 events/s the default segment of 512 MiB fills in about 12 s, and later
segments grow to the snapshot's size, so a 40 s run includes one to three compactions. Reported
per mode: the events per second and p95 of every window, their mean and minimum, the
"journal compacted" lines of the service log with the seconds each compaction took, and the
seconds event requests waited at the compaction gate in all (the service's
`attribution_store_compaction_pause_seconds_total`).

The service is pinned to `--server-cpu` and the load generator to `--client-cpu`, as in
`loadtest.benchmark`. `--no-pinning` lets the service and a forked snapshot process use every
CPU (the load generator stays on its CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import statistics
import tempfile
import urllib.request
from pathlib import Path

from loadtest.benchmark import _feed, _pinned, _register_apps, _request_source, _unmogrowp, free_port, running
from loadtest.options import add_batch_options, add_pinning_options, check_pinning

PAUSE_METRIC = "attribution_store_compaction_pause_seconds_total"


@dataclasses.dataclass
class ModeResult:
    mode: str
    pinned: bool
    window_rates: list[float]
    window_p95_ms: list[float | None]
    compaction_seconds: list[float]
    # Seconds event requests waited at the compaction gate, from the service's own counter.
    pause_seconds: float | None = None

    @property
    def mean_rate(self) -> float:
        return statistics.fmean(self.window_rates)

    @property
    def min_rate(self) -> float:
        return min(self.window_rates)


def _compaction_seconds(log_path: Path) -> list[float]:
    seconds = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if document.get("message") == "journal compacted":
            seconds.append(float(document["seconds"]))
    return seconds


def _pause_seconds(port: int) -> float | None:
    """Read the service's `attribution_store_compaction_pause_seconds_total`, or None when absent."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        exposition = response.read().decode()
    for line in exposition.splitlines():
        name, _, value = line.partition(" ")
        if name == PAUSE_METRIC:
            return float(value)
    return None


def measure_mode(mode: str, args, workdir: Path) -> ModeResult:
    from loadtest.httpload import run_load

    port = free_port()
    token = secrets.token_urlsafe(32)
    env = {**os.environ, "UNMOGROWP_ADMIN_TOKEN": token}
    log_path = workdir / f"ingestion-{mode}.log"
    command = _pinned(None if args.no_pinning else args.server_cpu, [
        _unmogrowp(), "ingestion", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(workdir / f"data-{mode}"), "--log-level", "info", "--snapshot-mode", mode,
    ])
    rates: list[float] = []
    p95s: list[float | None] = []
    with running(command, port, env=env, log_path=log_path):
        feed = _feed(_register_apps(port, token), args)
        requests = _request_source(feed, port)
        for _ in range(args.windows):
            result = asyncio.run(
                run_load("127.0.0.1", port, requests, connections=args.connections, warmup_s=0.2, duration_s=args.window)
            )
            rates.append(result.events_per_second)
            p95s.append(result.percentile(0.95))
        pause = _pause_seconds(port)
    return ModeResult(mode, not args.no_pinning, rates, p95s, _compaction_seconds(log_path), pause)


def format_table(results: list[ModeResult]) -> str:
    lines = [
        "| snapshot mode | pinned | events/s per window | mean | min | p95 ms per window | compaction seconds "
        "| seconds requests waited |",
        "| --- | --- | --- | ---: | ---: | --- | --- | ---: |",
    ]
    for result in results:
        rates = " ".join(f"{rate / 1000:.0f}k" for rate in result.window_rates)
        p95s = " ".join("n/a" if value is None else f"{value:.0f}" for value in result.window_p95_ms)
        compactions = ", ".join(f"{seconds:.1f}" for seconds in result.compaction_seconds) or "none"
        lines.append(
            f"| {result.mode} | {'yes' if result.pinned else 'no'} | {rates} | {result.mean_rate:,.0f} "
            f"| {result.min_rate:,.0f} | {p95s} | {compactions} "
            f"| {'n/a' if result.pause_seconds is None else f'{result.pause_seconds:.2f}'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench_compaction",
        description="Measure the ingestion rate in consecutive windows while journal compactions run, per snapshot mode.",
    )
    parser.add_argument("--windows", type=int, default=8, help="consecutive measured windows per mode (default 8)")
    parser.add_argument("--window", type=float, default=5.0, help="seconds per window (default 5)")
    parser.add_argument("--modes", default="in-process,fork",
                        help="comma-separated --snapshot-mode values, run in this order (default in-process,fork)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections of the load generator (default 8)")
    add_batch_options(parser)
    add_pinning_options(parser, pinned="the service", no_pinning_help="let the service and its snapshot process use every CPU")
    args = parser.parse_args(argv)

    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in ("fork", "in-process")]
    if unknown:
        parser.error(f"--modes: unknown snapshot mode {unknown[0]!r}; use fork or in-process")
    check_pinning(parser, args)
    # The load generator stays on its CPU even with --no-pinning, which frees only the service.
    os.sched_setaffinity(0, {args.client_cpu})

    results = []
    with tempfile.TemporaryDirectory(prefix="unmogrowp-compaction-") as folder:
        for mode in modes:
            print(f"measuring --snapshot-mode {mode} ...", flush=True)
            results.append(measure_mode(mode, args, Path(folder)))
    print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
