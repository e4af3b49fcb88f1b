"""Latency over time at a fixed rate: where a service's slow requests come from.

    python -m loadtest.bench_latency --events-per-second 80000 [--duration 60] [--fill-events 8000000]

A closed-loop benchmark (`loadtest.benchmark`) measures the most a service takes. This one sends
1,000-event batches on a fixed schedule, whatever the responses do, as clients in production
do. A request's latency runs from its scheduled send time to its response, so time spent
queued behind a stalled service counts, and a stall shows as a run of slow windows instead of
a lower rate. The service (`unmogrowp ingestion`, embedded store in a temporary folder) is
pinned to `--server-cpu` and first takes at least `--fill-events` from the closed-loop generator,
so the store is at its bounds. Reported: p50, p95, p99 and the slowest request over the run, and the
p95 of each `--window` seconds. With `--compactions` the service logs at level info, and the
report adds when each journal compaction ran, in seconds from the start of the paced load, so
slow windows can be set beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import shlex
import tempfile
import time
from datetime import datetime
from pathlib import Path

from loadtest.benchmark import (
    _feed,
    _fill,
    _pinned,
    _register_apps,
    _request_source,
    _unmogrowp,
    free_port,
    running,
)
from loadtest.options import add_batch_options, add_pinning_options, check_pinning
from loadtest.percentile import nearest_rank

# Connections of the closed-loop generator that fills the store, as in loadtest.benchmark.
FILL_CONNECTIONS = 8


@dataclasses.dataclass
class Timeline:
    """Latency in ms of each request, with its scheduled send time in seconds from the start."""

    scheduled_s: list[float]
    latencies_ms: list[float]
    errors: int

    def percentile(self, fraction: float) -> float | None:
        """Return the latency percentile (nearest rank), or None without requests."""
        return nearest_rank(self.latencies_ms, fraction)

    def window_p95(self, window_s: float) -> list[tuple[float, float]]:
        """Return (window start in seconds, p95 in ms) for each window with requests."""
        windows: dict[int, list[float]] = {}
        for scheduled, latency in zip(self.scheduled_s, self.latencies_ms):
            windows.setdefault(int(scheduled // window_s), []).append(latency)
        return [(index * window_s, nearest_rank(values, 0.95)) for index, values in sorted(windows.items())]


async def paced_load(host: str, port: int, next_request, *, batches_per_second: float, duration_s: float,
                     connections: int) -> Timeline:
    """Send batches on a fixed schedule over a pool of keep-alive connections."""
    from loadtest.httpload import HttpError, _Connection

    loop = asyncio.get_running_loop()
    idle: asyncio.Queue = asyncio.Queue()
    opened = []
    for _ in range(connections):
        _, connection = await loop.create_connection(_Connection, host, port)
        opened.append(connection)
        idle.put_nowait(connection)
    timeline = Timeline([], [], 0)
    started = time.perf_counter()

    async def send(scheduled: float) -> None:
        connection = await idle.get()
        head, body = next_request()
        try:
            status, _payload = await connection.request(head + b"Content-Length: %d\r\n\r\n" % len(body), body)
        except HttpError:
            timeline.errors += 1
            # The connection is closed. A new one keeps the pool's size, so later sends never wait
            # for a connection that cannot come back. Opening it raises when the service is gone.
            _, connection = await loop.create_connection(_Connection, host, port)
            opened.append(connection)
        else:
            timeline.scheduled_s.append(scheduled - started)
            timeline.latencies_ms.append((time.perf_counter() - scheduled) * 1000.0)
            if status != 200:
                timeline.errors += 1
        idle.put_nowait(connection)

    sends = []
    for index in range(int(batches_per_second * duration_s)):
        scheduled = started + index / batches_per_second
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sends.append(asyncio.create_task(send(scheduled)))
    try:
        await asyncio.gather(*sends)
    finally:
        for connection in opened:
            if connection.transport is not None:
                connection.transport.close()
    return timeline


def compaction_spans(log_lines, load_started: float) -> list[tuple[float, float]]:
    """Return (start, end) of each compaction the service logged, in seconds from `load_started`.

    The service logs "journal compacted" with the compaction's duration when it ends, so the
    start is the line's time less that duration. Lines that are not JSON are skipped.
    """
    spans = []
    for line in log_lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("message") != "journal compacted":
            continue
        ended = datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp() - load_started
        spans.append((ended - record["seconds"], ended))
    return spans


def format_report(timeline: Timeline, args, filled: float, compactions: list[tuple[float, float]] | None = None) -> str:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f}"

    windows = " ".join(f"{start:.0f}:{ms(p95)}" for start, p95 in timeline.window_p95(args.window))
    lines = [
        f"{len(timeline.latencies_ms)} requests at {args.events_per_second:,.0f} events/s "
        f"after {filled:,.0f} events; failed requests: {timeline.errors}",
        f"p50 {ms(timeline.percentile(0.50))} ms, p95 {ms(timeline.percentile(0.95))} ms, "
        f"p99 {ms(timeline.percentile(0.99))} ms, slowest {ms(max(timeline.latencies_ms, default=None))} ms",
        f"p95 in ms per {args.window:.0f} s window (window start: p95): {windows}",
    ]
    if compactions is not None:
        spans = ", ".join(f"{start:.1f} to {end:.1f}" for start, end in compactions) or "none logged"
        lines.append(f"compactions, in s from the start of the paced load (a stop finishes a running one): {spans}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench_latency",
        description="Send 1,000-event batches on a fixed schedule to a filled ingestion service and report latency over time.",
    )
    parser.add_argument("--events-per-second", type=float, required=True, help="events per second to send, in batches")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of paced load (default 60)")
    parser.add_argument("--window", type=float, default=2.0, help="seconds per reported window (default 2)")
    parser.add_argument("--fill-events", type=int, default=8_000_000,
                        help="events the service takes from the closed-loop generator first (default 8000000)")
    parser.add_argument("--connections", type=int, default=64,
                        help="keep-alive connections the paced sends share (default 64)")
    add_batch_options(parser)
    add_pinning_options(parser, pinned="the service", no_pinning_help="let the scheduler place the service and the load generator")
    parser.add_argument("--service-args", default="", help="extra arguments for `unmogrowp ingestion`, quoted as one string")
    parser.add_argument("--compactions", action="store_true",
                        help="run the service at log level info and report when its journal compactions ran")
    args = parser.parse_args(argv)
    if args.events_per_second <= 0 or args.duration <= 0 or args.window <= 0:
        parser.error("--events-per-second, --duration and --window must be positive")
    if args.fill_events < 0:
        parser.error(f"--fill-events must be 0 or more, got {args.fill_events}")
    check_pinning(parser, args)
    if not args.no_pinning:
        os.sched_setaffinity(0, {args.client_cpu})

    port = free_port()
    token = secrets.token_urlsafe(32)
    env = {**os.environ, "UNMOGROWP_ADMIN_TOKEN": token}
    with tempfile.TemporaryDirectory(prefix="unmogrowp-latency-") as folder:
        command = _pinned(None if args.no_pinning else args.server_cpu, [
            _unmogrowp(), "ingestion", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(Path(folder) / "data"), "--log-level", "info" if args.compactions else "warning",
            *shlex.split(args.service_args),
        ])
        log_path = Path(folder) / "ingestion.log"
        with running(command, port, env=env, log_path=log_path):
            requests = _request_source(_feed(_register_apps(port, token), args), port)
            filled = 0.0
            if args.fill_events:
                filled = _fill(port, requests, argparse.Namespace(**{**vars(args), "connections": FILL_CONNECTIONS}))
            load_started = time.time()
            timeline = asyncio.run(paced_load(
                "127.0.0.1", port, requests, batches_per_second=args.events_per_second / args.batch_size,
                duration_s=args.duration, connections=args.connections,
            ))
        # Read once the service has stopped, so a compaction its stop finished is in the log.
        compactions = compaction_spans(log_path.read_text().splitlines(), load_started) if args.compactions else None
    print(format_report(timeline, args, filled, compactions))
    return 0 if not timeline.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
