"""Events per second of the ingestion service: embedded store against Redis at 1 and 2 workers.

    python -m loadtest.bench_scaling [--duration 20] [--workers 1,2] [--json]

``measure_scaling()`` runs, one after the other and with the same load:

1. ``unmogrowp ingestion`` with the embedded store (one worker);
2. the same with ``--store redis://...`` for each worker count, against a
   redis-server this benchmark starts on a free loopback port (no
   persistence), flushed between runs.

The load generator is ``loadtest.httpload`` in this process: closed-loop
keep-alive connections posting 1,000-event batches of generated install
funnels with fresh ids, spread over eight apps (``--apps``). Reported per run: events per second,
p50/p95/p99 latency, the CPU share of the service (all its processes), of
Redis and of the load generator, and Redis commands per event (from
``INFO commandstats``, commands that the Lua scripts call included).

``measure_redis_footprint()`` writes touches, installs and records through a
``RedisStore`` and reports ``MEMORY USAGE`` per stored item.

Nothing is pinned: with two workers, Redis and the load generator, four busy
processes share the machine's cores, and the CPU columns show how they did.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psutil
import redis

from loadtest.benchmark import _cpu_seconds, _feed, _register_apps, _request_source, _unmogrowp, free_port, running


@dataclasses.dataclass
class ScalingResult:
    """One service configuration under the same load."""

    name: str
    store: str
    workers: int
    events_per_second: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    requests: int
    errors: int
    first_error: str | None
    service_cpu_percent: float
    redis_cpu_percent: float | None
    client_cpu_percent: float
    redis_commands_per_event: float | None


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """Run a redis-server without persistence on a free loopback port."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed; install Redis 7 to measure the Redis store")
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--logfile", str(directory / "redis.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {port} did not start; see {directory / 'redis.log'}") from None
                time.sleep(0.05)
        yield port, process
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)


def _commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(entry["calls"] for name, entry in stats.items() if name not in ("cmdstat_info", "cmdstat_flushall"))


def _measure(name: str, store: str, workers: int, options: SimpleNamespace, workdir: Path,
             redis_port: int | None = None, redis_process: subprocess.Popen | None = None) -> ScalingResult:
    from loadtest.httpload import run_load

    port = free_port()
    token = secrets.token_urlsafe(32)
    env = {**os.environ, "UNMOGROWP_ADMIN_TOKEN": token}
    data_dir = workdir / f"data-{name.replace(' ', '-')}"
    command = [
        _unmogrowp(), "ingestion", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
        "--store", store, "--workers", str(workers), "--log-level", "warning",
    ]
    client = redis.Redis(port=redis_port) if redis_port else None
    try:
        if client is not None:
            client.flushall()
        with running(command, port, env=env, log_path=workdir / f"{name.replace(' ', '-')}.log") as process:
            apps = []
            for _ in range(max(1, options.apps // 2)):
                apps += _register_apps(port, token)  # one android and one iOS app per call
            feed = _feed(apps, options)
            requests = _request_source(feed, port)
            commands_before = _commands(client) if client is not None else 0
            redis_before = _cpu_seconds(redis_process.pid) if redis_process is not None else 0.0
            service_before, client_before = _cpu_seconds(process.pid), time.process_time()
            started = time.perf_counter()
            result = asyncio.run(run_load("127.0.0.1", port, requests, connections=options.connections,
                                          warmup_s=options.warmup, duration_s=options.duration))
            wall = time.perf_counter() - started
            service_cpu = (_cpu_seconds(process.pid) - service_before) / wall * 100
            client_cpu = (time.process_time() - client_before) / wall * 100
            redis_cpu = None
            commands_per_event = None
            if client is not None:
                redis_cpu = (_cpu_seconds(redis_process.pid) - redis_before) / wall * 100
                # Commands counted over warm-up and window; events only in the window, so scale by time.
                events_in_run = result.events_per_second * (options.warmup + options.duration)
                commands_per_event = (_commands(client) - commands_before) / events_in_run if events_in_run else None
    finally:
        if client is not None:
            client.close()
    return ScalingResult(
        name=name,
        store=store.split("://")[0],
        workers=workers,
        events_per_second=result.events_per_second,
        p50_ms=result.percentile(0.50),
        p95_ms=result.percentile(0.95),
        p99_ms=result.percentile(0.99),
        requests=result.requests,
        errors=result.errors,
        first_error=result.first_error,
        service_cpu_percent=service_cpu,
        redis_cpu_percent=redis_cpu,
        client_cpu_percent=client_cpu,
        redis_commands_per_event=commands_per_event,
    )


def measure_scaling(
    *,
    duration_s: float = 20.0,
    warmup_s: float = 3.0,
    connections: int = 8,
    batch_size: int = 1000,
    templates: int = 4,
    workers: tuple[int, ...] = (1, 2),
    apps: int = 8,
) -> list[ScalingResult]:
    """Measure the embedded store and the Redis store at each worker count under the same load.

    Batches cycle over ``apps`` apps (rounded down to an even number, at
    least 2). Workers that serve batches of one app at the same time make
    each other's commits check what they read, so fewer apps cost Redis more.
    """
    options = SimpleNamespace(duration=duration_s, warmup=warmup_s, connections=connections,
                              batch_size=batch_size, templates=templates, apps=apps)
    results = []
    with tempfile.TemporaryDirectory(prefix="unmogrowp-bench-scaling-") as directory:
        workdir = Path(directory)
        results.append(_measure("embedded, 1 worker", "memory", 1, options, workdir))
        redis_dir = workdir / "redis"
        redis_dir.mkdir()
        with redis_server(redis_dir) as (port, process):
            for count in workers:
                name = f"redis, {count} worker{'s' if count > 1 else ''}"
                results.append(_measure(name, f"redis://127.0.0.1:{port}/0", count, options, workdir, port, process))
    return results


async def _write_footprint_data(url: str, touches: int, installs: int) -> None:
    import msgspec

    from ingestion.events import Event, validate_event
    from ingestion.model import AppSettings, StoredApp
    from ingestion.store.redis import RedisStore

    app = AppSettings(app_id="footprint", platform="android")
    now = time.time()
    store = RedisStore(url)
    await store.start()
    try:
        await store.create_app(StoredApp(settings=app, key_id="footprint", key_hash="0" * 64, created_at=now))
        documents = []
        for number in range(touches):
            documents.append({
                "event_id": f"click-{number:08d}", "event_type": "click", "event_time": now - 3600 + number * 0.01,
                "network": "network-a", "campaign": "campaign-b", "click_id": f"ck-{number:08d}",
                "gaid": f"00000000-0000-4000-8000-{number:012d}", "ip": f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}",
                "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36",
            })
        for number in range(installs):
            documents.append({
                "event_id": f"install-{number:08d}", "event_type": "install", "event_time": now - 60,
                "gaid": f"00000000-0000-4000-8000-{number:012d}",
            })
        for start in range(0, len(documents), 1000):
            events = []
            for document in documents[start:start + 1000]:
                event = msgspec.convert({"app_id": app.app_id, **document}, Event)
                assert validate_event(event, now, app.platform) is None
                events.append(event)
            await store.apply(app, events, now)
    finally:
        await store.stop()


def measure_redis_footprint(touches: int = 20_000, installs: int = 5_000) -> dict[str, float]:
    """Write ``touches`` clicks (click id, device id, fingerprint) and ``installs`` installs; return bytes per item.

    Sums ``MEMORY USAGE <key> SAMPLES 0`` over the keys of each kind: touch
    bodies and their three index entries per click (click id, device id,
    fingerprint), duplicate-filter entries, and installs with their records.
    """
    with tempfile.TemporaryDirectory(prefix="unmogrowp-footprint-") as directory, redis_server(Path(directory)) as (port, _):
        asyncio.run(_write_footprint_data(f"redis://127.0.0.1:{port}/0", touches, installs))
        client = redis.Redis(port=port)
        usage: dict[str, int] = {}
        try:
            for key in client.scan_iter(count=1000):
                kind = key.split(b"}:", 1)[1].split(b":", 1)[0].decode() if b"}:" in key else "apps"
                usage[kind] = usage.get(kind, 0) + int(client.memory_usage(key, samples=0) or 0)
            used_memory = client.info("memory")["used_memory"]
        finally:
            client.close()
    touch_bytes = usage.get("b", 0) + usage.get("bk", 0) + usage.get("x", 0)
    return {
        "touches": touches,
        "installs": installs,
        "bytes_per_touch": touch_bytes / touches,
        "bytes_per_touch_body": (usage.get("b", 0) + usage.get("bk", 0)) / touches,
        "bytes_per_touch_index_entries": usage.get("x", 0) / touches,
        "bytes_per_dedup_entry": usage.get("e", 0) / (touches + installs),
        "bytes_per_install": (usage.get("n", 0) + usage.get("rh", 0) + usage.get("ri", 0)) / installs,
        "used_memory_bytes": used_memory,
    }


def format_table(results: list[ScalingResult]) -> str:
    def number(value: float | None, digits: int = 1) -> str:
        return "n/a" if value is None else f"{value:,.{digits}f}"

    lines = [
        "| configuration | events/s | p50 ms | p95 ms | p99 ms | service CPU % | Redis CPU % | client CPU % | Redis commands per event | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        lines.append(
            f"| {result.name} | {result.events_per_second:,.0f} | {number(result.p50_ms)} | {number(result.p95_ms)} | "
            f"{number(result.p99_ms)} | {result.service_cpu_percent:.0f} | {number(result.redis_cpu_percent, 0)} | "
            f"{result.client_cpu_percent:.0f} | {number(result.redis_commands_per_event, 2)} | {result.errors} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench_scaling",
        description="Measure events per second of the ingestion service on the embedded store and on Redis "
        "with 1 and 2 workers, under the same load.",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per configuration (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each measurement (default 3)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections of the load generator (default 8)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per request (default 1000)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts for the Redis store (default 1,2)")
    parser.add_argument("--apps", type=int, default=8, help="apps the batches are spread over, half android, half iOS (default 8)")
    parser.add_argument("--footprint", action="store_true", help="also measure Redis memory per stored touch and install")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    try:
        workers = tuple(int(text) for text in args.workers.split(","))
    except ValueError:
        parser.error(f"--workers {args.workers!r}: give whole numbers separated by commas, such as 1,2")
    if args.duration <= 0 or args.warmup < 0 or args.connections < 1 or min(workers) < 1:
        parser.error("--duration must be positive, --warmup non-negative, --connections and --workers at least 1")

    results = measure_scaling(duration_s=args.duration, warmup_s=args.warmup, connections=args.connections,
                              batch_size=args.batch_size, workers=workers, apps=args.apps)
    footprint = measure_redis_footprint() if args.footprint else None
    if args.json:
        print(json.dumps({"results": [dataclasses.asdict(result) for result in results], "footprint": footprint,
                          "cores": psutil.cpu_count()}, indent=2))
    else:
        print(format_table(results))
        if footprint is not None:
            print()
            print(json.dumps(footprint, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
