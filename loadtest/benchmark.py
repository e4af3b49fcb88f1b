"""Benchmark: the ingestion service against the bare ceiling, Locust's own rate, the metrics core.

    python -m loadtest.benchmark [--duration 30] [--output docs/benchmarks.md]

In one run, on this machine:

1. The bare ceiling (`loadtest.bare_app` on uvicorn with uvloop and httptools, which only
   decodes the batches with msgspec) runs pinned to the server core with `taskset`.
2. The full ingestion service (`unmogrowp ingestion`, one worker, embedded store in a
   temporary folder) runs pinned to the same core after it, measured twice: fresh, and again
   once it has taken at least `--fill-events` events (8,000,000 by default: with the generator's mix
   of events, every bound of the embedded store reaches its default maximum by about 6,500,000).
   A store grows slower to update as it fills, so the second figure is the rate the service
   sustains.
   The asyncio load generator (`loadtest.httpload`) on the client core posts the same kind of
   1,000-event batches with fresh ids to each. Reported: events per second, p50/p95/p99
   latency and the service's ratio to the ceiling.
3. One Locust process (`locust -f loadtest/`, unpaced users) on the client core against the
   sink app (`loadtest.bare_app:sink`, which counts events without decoding them): how many
   events per second the load-test kit itself generates.
4. A Locust `steady` campaign at 80 % of the service's sustained maximum, against a new service
   that first takes at least as many events: its throughput and p95.
5. The metrics core against prometheus_client (`loadtest.bench_metrics.run()`).

Results go to docs/benchmarks.md with a chart in docs/benchmarks.png. Keep the machine quiet
while it runs: other processes on either core distort every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

from loadtest.options import add_batch_options, add_pinning_options, check_pinning

REPOSITORY = Path(__file__).resolve().parent.parent
# Maximum and minimum seconds per load run while filling a service. Each run's events count
# towards --fill-events.
FILL_WINDOW_S = 5.0
FILL_PROBE_S = 0.2


# -- machine ----------------------------------------------------------------------------------

def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or platform.processor() elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of a process and its live children."""
    import psutil

    try:
        process = psutil.Process(pid)
        total = sum(process.cpu_times()[:2])
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
        return total
    except psutil.Error:
        return 0.0


def _wait_until_healthy(port: int, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before /healthz responded; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} timed out: /healthz did not respond within {timeout_s:.0f} s")


@contextlib.contextmanager
def running(command: list[str], port: int, env: dict | None = None, log_path: Path | None = None) -> Iterator[subprocess.Popen]:
    """Start a server process, wait for /healthz, and stop it (SIGTERM, then SIGKILL) afterwards."""
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPOSITORY)
    try:
        _wait_until_healthy(port, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path:
            log.close()


def display_command(command: list[str]) -> str:
    """Return a command as the report shows it, so that a reader can run it from the repository.

    Paths inside the repository become relative, and the random port and temporary data folder
    of the run become PORT and DATA_DIR.
    """
    displayed = []
    previous = None
    for argument in command:
        if previous == "--port":
            argument = "PORT"
        elif previous == "--data-dir":
            argument = "DATA_DIR"
        elif previous == "--host" and argument.startswith("http://127.0.0.1:"):
            argument = "http://127.0.0.1:PORT"
        elif argument.startswith("/") and Path(argument).is_relative_to(REPOSITORY):
            argument = str(Path(argument).relative_to(REPOSITORY))
        displayed.append(argument)
        previous = argument
    return shlex.join(displayed)


def _pinned(cpu: int | None, command: list[str]) -> list[str]:
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


# -- measurements -----------------------------------------------------------------------------

@dataclasses.dataclass
class ServerResult:
    name: str
    command: str
    events_per_second: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    requests: int
    errors: int
    first_error: str | None
    server_cpu_percent: float
    client_cpu_percent: float


def _measure(name: str, command: list[str], port: int, feed, args, env=None, log_path=None) -> ServerResult:
    with running(command, port, env=env, log_path=log_path) as process:
        return _measure_running(name, command, process, port, _request_source(feed, port), args)


def _measure_running(name: str, command: list[str], process: subprocess.Popen, port: int, requests, args) -> ServerResult:
    from loadtest.httpload import run_load

    server_before, client_before = _cpu_seconds(process.pid), time.process_time()
    wall_before = time.perf_counter()
    result = asyncio.run(
        run_load("127.0.0.1", port, requests, connections=args.connections,
                 warmup_s=args.warmup, duration_s=args.duration)
    )
    wall = time.perf_counter() - wall_before
    server_cpu = (_cpu_seconds(process.pid) - server_before) / wall * 100
    client_cpu = (time.process_time() - client_before) / wall * 100
    return ServerResult(
        name=name,
        command=display_command(command),
        events_per_second=result.events_per_second,
        p50_ms=result.percentile(0.50),
        p95_ms=result.percentile(0.95),
        p99_ms=result.percentile(0.99),
        requests=result.requests,
        errors=result.errors,
        first_error=result.first_error,
        server_cpu_percent=server_cpu,
        client_cpu_percent=client_cpu,
    )


def _request_source(feed, port: int):
    heads = {
        app.app_id: (
            f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: {app.headers['Authorization']}\r\nContent-Type: {app.headers['Content-Type']}\r\n"
            "Accept-Encoding: identity\r\n"
        ).encode()
        for app in feed.apps
    }

    def next_request() -> tuple[bytes, bytes]:
        app, _, _, body = feed.next_batch()
        return heads[app.app_id], body

    return next_request


def _feed(apps: list[tuple[str, str, str]], args):
    """Build an IngestionFeed for (app_id, platform, ingest key) triples."""
    from loadtest.apps import AppFeed, IngestionFeed, _headers
    from loadtest.generator import TemplatePool, build_template

    feeds = []
    for app_id, platform_name, key in apps:
        templates = [build_template(app_id, platform_name, args.batch_size) for _ in range(args.templates)]
        feeds.append(AppFeed(app_id, platform_name, _headers(key, templates[0].content_type), TemplatePool(templates)))
    return IngestionFeed(feeds)


def _register_apps(port: int, token: str) -> list[tuple[str, str, str]]:
    apps = []
    for platform_name in ("android", "ios"):
        app_id = f"bench-{platform_name}-{secrets.token_hex(4)}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/apps",
            data=json.dumps({"app_id": app_id, "platform": platform_name}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            apps.append((app_id, platform_name, json.load(response)["ingest_key"]))
    return apps


def measure_bare(args, workdir: Path) -> ServerResult:
    port = free_port()
    command = _pinned(args.server_cpu, [
        sys.executable, "-m", "uvicorn", "loadtest.bare_app:app", "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1", "--port", str(port),
    ])
    feed = _feed([("bench-bare-android", "android", "unused"), ("bench-bare-ios", "ios", "unused")], args)
    return _measure("bare ceiling", command, port, feed, args, log_path=workdir / "bare.log")


def measure_service(args, workdir: Path) -> list[ServerResult]:
    """Measure a fresh service, then, after `--fill-events`, the same service again."""
    port = free_port()
    token = secrets.token_urlsafe(32)
    env = {**os.environ, "UNMOGROWP_ADMIN_TOKEN": token}
    data_dir = workdir / "ingestion-data"
    command = _pinned(args.server_cpu, [
        _unmogrowp(), "ingestion", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
        "--log-level", "warning", *shlex.split(args.service_args),
    ])
    with running(command, port, env=env, log_path=workdir / "ingestion.log") as process:
        requests = _request_source(_feed(_register_apps(port, token), args), port)
        results = [_measure_running("ingestion service", command, process, port, requests, args)]
        if args.fill_events:
            sent = results[0].events_per_second * args.duration
            _fill(port, requests, args, already_sent=sent)
            results.append(_measure_running(
                f"ingestion service after {args.fill_events:,}+ events", command, process, port, requests, args))
    return results


def _fill(port: int, requests, args, already_sent: float = 0.0) -> float:
    """Send batches until the service has taken at least `--fill-events` events; return how many.

    Each load run lasts long enough for the events still missing at the last run's rate, from
    FILL_PROBE_S to FILL_WINDOW_S, so the total passes the target by at most one short run.
    """
    from loadtest.httpload import run_load

    sent = already_sent
    started = time.perf_counter()
    window = FILL_PROBE_S
    while sent < args.fill_events:
        result = asyncio.run(
            run_load("127.0.0.1", port, requests, connections=args.connections, warmup_s=0.0, duration_s=window)
        )
        if result.errors or not result.events:
            raise RuntimeError(f"filling the service failed after {sent:,.0f} events: {result.first_error}")
        sent += result.events
        window = min(FILL_WINDOW_S, max(FILL_PROBE_S, (args.fill_events - sent) / result.events_per_second))
    print(f"  the service has taken {sent:,.0f} events; filling took {time.perf_counter() - started:.0f} s", flush=True)
    return sent


def _unmogrowp() -> str:
    beside = Path(sys.executable).with_name("unmogrowp")
    return str(beside) if beside.exists() else (shutil.which("unmogrowp") or "unmogrowp")


def _locust() -> list[str]:
    beside = Path(sys.executable).with_name("locust")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "locust"]


def _run_locust(arguments: list[str], env: dict, cpu: int | None, verdict_path: Path, log_path: Path,
                timeout_s: float) -> tuple[dict | None, float, int]:
    """Run Locust headless; return (verdict document, its CPU percent, exit code)."""
    command = _pinned(cpu, [*_locust(), "-f", str(REPOSITORY / "loadtest"), "--headless",
                            "--exporter-port", "0", "--tracker-host", "", "--verdict-file", str(verdict_path),
                            *arguments])
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPOSITORY)
        started = time.perf_counter()
        cpu_samples = []
        while process.poll() is None:
            if time.perf_counter() - started > timeout_s:
                process.kill()
                break
            cpu_samples.append((time.perf_counter(), _cpu_seconds(process.pid)))
            time.sleep(0.5)
        process.wait()
    # CPU share over the busy middle of the run (the second quarter to the third quarter).
    cpu_percent = 0.0
    if len(cpu_samples) >= 8:
        (t0, c0), (t1, c1) = cpu_samples[len(cpu_samples) // 4], cpu_samples[3 * len(cpu_samples) // 4]
        cpu_percent = (c1 - c0) / (t1 - t0) * 100 if t1 > t0 else 0.0
    document = json.loads(verdict_path.read_text()) if verdict_path.exists() else None
    return document, cpu_percent, process.returncode


@dataclasses.dataclass
class LocustResult:
    name: str
    command: str
    events_per_second: float | None
    p95_ms: float | None
    passed: bool | None
    exit_code: int
    cpu_percent: float


def measure_locust_generator(args, workdir: Path) -> LocustResult:
    port = free_port()
    # The sink, not the bare app: the bare app's decoding, not Locust, would set the rate.
    server = _pinned(args.server_cpu, [
        sys.executable, "-m", "uvicorn", "loadtest.bare_app:sink", "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1", "--port", str(port),
    ])
    users = str(args.locust_users)
    arguments = ["--host", f"http://127.0.0.1:{port}", "-u", users, "-r", users,
                 "-t", f"{int(args.duration + args.warmup)}s", "--user-batch-rate", "0",
                 "--batch-size", str(args.batch_size)]
    env = {key: value for key, value in os.environ.items() if key != "UNMOGROWP_ADMIN_TOKEN"}
    env.update(UNMOGROWP_INGEST_KEY="unused", UNMOGROWP_LOADTEST_APP_ID="bench-locust")
    verdict_path = workdir / "locust-generator.json"
    with running(server, port, log_path=workdir / "sink-locust.log"):
        document, cpu, code = _run_locust(arguments, env, args.client_cpu, verdict_path,
                                          workdir / "locust-generator.log", args.duration * 3 + 60)
    measurement = (document or {}).get("measurement") or {}
    return LocustResult("Locust generator (1 process) against the sink app", "locust -f loadtest/ " + display_command(arguments),
                        measurement.get("events_per_second"), measurement.get("p95_ms"),
                        (document or {}).get("passed"), code, cpu)


def measure_locust_campaign(args, workdir: Path, target: float) -> LocustResult:
    port = free_port()
    token = secrets.token_urlsafe(32)
    env = {**os.environ, "UNMOGROWP_ADMIN_TOKEN": token}
    server = _pinned(args.server_cpu, [
        _unmogrowp(), "ingestion", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(workdir / "campaign-data"), "--log-level", "warning", *shlex.split(args.service_args),
    ])
    duration = int(args.duration + args.warmup) * 2
    arguments = ["--host", f"http://127.0.0.1:{port}", "--campaign", "steady", "--campaign-duration", f"{duration}s",
                 "--target-events-per-second", f"{target:.0f}", "--user-batch-rate", str(args.locust_user_rate),
                 "--batch-size", str(args.batch_size)]
    verdict_path = workdir / "locust-campaign.json"
    with running(server, port, env=env, log_path=workdir / "ingestion-campaign.log"):
        if args.fill_events:
            _fill(port, _request_source(_feed(_register_apps(port, token), args), port), args)
        document, cpu, code = _run_locust(arguments, env, args.client_cpu, verdict_path,
                                          workdir / "locust-campaign.log", duration * 3 + 60)
    measurement = (document or {}).get("measurement") or {}
    against = f"the service after {args.fill_events:,}+ events" if args.fill_events else "a fresh service"
    return LocustResult(f"Locust steady campaign at {target:,.0f} events/s against {against}",
                        "locust -f loadtest/ " + display_command(arguments),
                        measurement.get("events_per_second"), measurement.get("p95_ms"),
                        (document or {}).get("passed"), code, cpu)


# -- report -----------------------------------------------------------------------------------

def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


_COLOURS = ["#8c8c8c", "#2f6db5", "#1b3f6e", "#d08a2c"]


def write_chart(path: Path, servers: list[ServerResult], locust: list[LocustResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = [result.name for result in servers] + ["Locust generator"] * any(
        result.name.startswith("Locust generator") for result in locust)
    rates = [result.events_per_second / 1e6 for result in servers] + [
        (result.events_per_second or 0) / 1e6 for result in locust if result.name.startswith("Locust generator")]
    positions = list(range(len(names)))
    bars = throughput.bar(positions, rates, color=_COLOURS[: len(names)])
    # Long server names would overlap under their bars.
    throughput.set_xticks(positions, [textwrap.fill(name, 16) for name in names])
    throughput.axhline(1.0, color="#b03a2e", linestyle="--", linewidth=1, label="target 1 M events/s")
    throughput.bar_label(bars, labels=[f"{rate:.2f} M" for rate in rates])
    throughput.set_ylabel("million events per second (one core)")
    throughput.set_title("Throughput, 1,000-event batches")
    throughput.legend(loc="upper center")

    percentiles = ("p50", "p95", "p99")
    width = 0.8 / max(1, len(servers))
    for index, result in enumerate(servers):
        values = [result.p50_ms or 0, result.p95_ms or 0, result.p99_ms or 0]
        positions = [position + index * width for position in range(len(percentiles))]
        latency.bar(positions, values, width=width, label=result.name, color=_COLOURS[index])
    latency.axhline(100, color="#b03a2e", linestyle="--", linewidth=1, label="p95 target 100 ms")
    latency.set_xticks([position + width * (len(servers) - 1) / 2 for position in range(len(percentiles))],
                       percentiles)
    latency.set_ylabel("request latency (ms)")
    latency.set_title("Latency at the maximum rate")
    latency.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


KEPT_SECTIONS_MARKER = "<!-- Sections below come from their own commands; a rerun of loadtest.benchmark keeps them. -->"


def write_report(path: Path, chart: Path, context: dict, servers: list[ServerResult],
                 locust: list[LocustResult], metrics: dict | None, tracing_table: str | None = None) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Measured by `python -m loadtest.benchmark`; rerun it on a quiet machine to refresh this page.",
        "",
        "| | |",
        "| --- | --- |",
        f"| command | `{context['command']}` |",
        f"| date | {context['date']} |",
        f"| machine | {context['cpu']}, {context['cores']} cores, Linux {context['kernel']} |",
        f"| software | Python {context['python']}, uvicorn {context['uvicorn']}, uvloop {context['uvloop']}, "
        f"httptools {context['httptools']}, msgspec {context['msgspec']}, Locust {context['locust']} |",
        f"| load | {context['connections']} keep-alive connections, {context['batch_size']}-event batches with fresh ids, "
        f"{context['warmup']:.0f} s warm-up then {context['duration']:.0f} s measured per server"
        + (f"; the service measured fresh and again after at least {context['fill_events']:,} events, and the "
           f"campaign's service given as many first" if context.get("fill_events") else "")
        + " |",
        f"| pinning | servers on CPU {context['server_cpu']}, load generator on CPU {context['client_cpu']} (`taskset`) |",
        "",
        "## Ingestion against the bare ceiling",
        "",
        "| server | events/s | p50 ms | p95 ms | p99 ms | ratio to ceiling | server CPU % | generator CPU % | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ceiling = servers[0].events_per_second if servers else 0
    for result in servers:
        ratio = result.events_per_second / ceiling if ceiling else 0
        lines.append(
            f"| {result.name} | {_rate(result.events_per_second)} | {_ms(result.p50_ms)} | {_ms(result.p95_ms)} | "
            f"{_ms(result.p99_ms)} | {ratio:.2f} | {result.server_cpu_percent:.0f} | {result.client_cpu_percent:.0f} | "
            f"{result.errors} |"
        )
    lines += ["", "Server commands (PORT is a free port chosen for the run, DATA_DIR a temporary folder):", ""]
    lines += [f"- {result.name}: `{result.command}`" for result in servers]
    errors = [result for result in servers if result.first_error]
    if errors:
        lines += ["", "First errors:", ""]
        lines += [f"- {result.name}: {result.first_error}" for result in errors]
    lines += ["", f"![throughput and latency]({chart.name})", ""]

    if locust:
        lines += [
            "## Locust",
            "",
            "| run | events/s | p95 ms | verdict | exit code | Locust CPU % |",
            "| --- | ---: | ---: | --- | ---: | ---: |",
        ]
        for result in locust:
            verdict = {True: "pass", False: "fail", None: "none"}[result.passed]
            lines.append(f"| {result.name} | {_rate(result.events_per_second)} | {_ms(result.p95_ms)} | {verdict} | "
                         f"{result.exit_code} | {result.cpu_percent:.0f} |")
        generator = next((result for result in locust if result.name.startswith("Locust generator")), None)
        if generator is not None and generator.events_per_second and generator.cpu_percent > 0:
            estimate = generator.events_per_second / (generator.cpu_percent / 100)
            lines += ["", f"One Locust process sent {generator.events_per_second:,.0f} events/s while using "
                      f"{generator.cpu_percent:.0f} % of its core. At a full core that extrapolates to about "
                      f"{estimate:,.0f} events/s (an estimate, assuming the cost per request stays the same)."]
        lines += ["", "Commands (PORT is the port of the server each run loaded):", ""]
        lines += [f"- `{result.command}`" for result in locust]
        lines.append("")

    if metrics is not None:
        lines += [
            "## Metrics core against prometheus_client",
            "",
            f"Cost per recorded event, {metrics['events_recorded_per_recorder']:,} events per recorder "
            f"({metrics['batch_size']}-event batches over {metrics['label_sets']} label sets), median of "
            f"{metrics['rounds']} rounds; prometheus_client {metrics['prometheus_client']}.",
            "",
            "| recorder | ns per event | times cheaper than the baseline | same exposed counts |",
            "| --- | ---: | ---: | --- |",
        ]
        for name, value in metrics["ns_per_event"].items():
            same = metrics["counts_match"][name] and metrics["sums_match"][name]
            lines.append(f"| {name} | {value:.1f} | {metrics['speedup_vs_baseline'][name]:.1f} | {'yes' if same else 'NO'} |")
        lines += ["", f"Baseline: {metrics['baseline']}.", ""]

    if tracing_table is not None:
        lines += [
            "## Cost of tracing",
            "",
            "Four ingestion services, one per setting, all pinned to the server CPU and loaded in turn, "
            "the order rotating each round (`loadtest.bench_tracing.run`); the cost is the change in "
            "the median rate against tracing off.",
            "",
            tracing_table,
            "",
        ]

    # Sections measured by other commands follow the marker and survive a rerun.
    kept = ""
    if path.exists():
        previous = path.read_text()
        if KEPT_SECTIONS_MARKER in previous:
            kept = previous[previous.index(KEPT_SECTIONS_MARKER):]
    path.write_text("\n".join(lines) + ("\n" + kept if kept else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.benchmark",
        description="Measure the ingestion service against the bare ceiling, Locust's own rate and the "
        "metrics core, and write docs/benchmarks.md with a chart.",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per server (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds before each measurement (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections of the load generator (default 8)")
    add_batch_options(parser)
    add_pinning_options(parser, pinned="each server", no_pinning_help="let the scheduler place servers and load generators")
    parser.add_argument("--fill-events", type=int, default=8_000_000,
                        help="events each ingestion service takes at least before its second measurement and before the campaign, "
                             "so both meet a store at its bounds; 0 measures a fresh service only (default 8000000)")
    parser.add_argument("--service-args", default="", help="extra arguments for `unmogrowp ingestion`, quoted as one string")
    parser.add_argument("--locust-users", type=int, default=16, help="unpaced Locust users against the sink app (default 16)")
    parser.add_argument("--locust-user-rate", type=float, default=10.0,
                        help="batches per second per Locust user in the 80 %% campaign (default 10)")
    parser.add_argument("--skip-locust", action="store_true", help="leave out both Locust runs")
    parser.add_argument("--skip-metrics", action="store_true", help="leave out the metrics-core comparison")
    parser.add_argument("--metrics-rounds", type=int, default=5, help="rounds of the metrics-core comparison (default 5)")
    parser.add_argument("--skip-tracing", action="store_true", help="leave out the tracing-cost comparison")
    parser.add_argument("--tracing-rounds", type=int, default=3,
                        help="rounds of the tracing-cost comparison, each loading every setting for --duration / 3 s (default 3)")
    parser.add_argument("--output", type=Path, default=REPOSITORY / "docs" / "benchmarks.md", help="report file (default docs/benchmarks.md)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure as JSON to this file")
    args = parser.parse_args(argv)

    if args.duration <= 0 or args.warmup < 0 or args.connections < 1:
        parser.error("--duration must be positive, --warmup non-negative and --connections at least 1")
    if args.fill_events < 0:
        parser.error(f"--fill-events must be 0 or more, got {args.fill_events}")
    check_pinning(parser, args)
    if args.no_pinning:
        args.server_cpu = args.client_cpu = None
    else:
        # Pinning this process pins the in-process load generator; servers get their own taskset.
        os.sched_setaffinity(0, {args.client_cpu})

    chart = args.output.with_suffix(".png")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    context = {
        "command": shlex.join(["python", "-m", "loadtest.benchmark", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **{name: version(name) for name in ("uvicorn", "uvloop", "httptools", "msgspec", "locust")},
        "connections": args.connections,
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "duration": args.duration,
        "fill_events": args.fill_events,
        "server_cpu": args.server_cpu if args.server_cpu is not None else "any",
        "client_cpu": args.client_cpu if args.client_cpu is not None else "any",
    }

    with tempfile.TemporaryDirectory(prefix="unmogrowp-bench-") as directory:
        workdir = Path(directory)
        print("measuring the bare ceiling ...", flush=True)
        bare = measure_bare(args, workdir)
        print(f"  {bare.events_per_second:,.0f} events/s, p95 {_ms(bare.p95_ms)} ms", flush=True)
        print("measuring the ingestion service ...", flush=True)
        services = measure_service(args, workdir)
        for service in services:
            print(f"  {service.name}: {service.events_per_second:,.0f} events/s, p95 {_ms(service.p95_ms)} ms, "
                  f"{service.events_per_second / bare.events_per_second if bare.events_per_second else 0:.2f} "
                  "of the ceiling", flush=True)
        servers = [bare, *services]
        # The campaign's target comes from the sustained rate: the last measurement.
        service = services[-1]

        locust: list[LocustResult] = []
        if not args.skip_locust:
            print("measuring one Locust process against the sink app ...", flush=True)
            locust.append(measure_locust_generator(args, workdir))
            print(f"  {_rate(locust[-1].events_per_second)} events/s at {locust[-1].cpu_percent:.0f} % CPU", flush=True)
            target = 0.8 * service.events_per_second
            if target > 0:
                print(f"running a Locust steady campaign at {target:,.0f} events/s against the service ...", flush=True)
                locust.append(measure_locust_campaign(args, workdir, target))
                print(f"  {_rate(locust[-1].events_per_second)} events/s, p95 {_ms(locust[-1].p95_ms)} ms", flush=True)

        metrics = None
        if not args.skip_metrics:
            from loadtest import bench_metrics

            print("comparing the metrics core with prometheus_client ...", flush=True)
            metrics = bench_metrics.run(batch_size=args.batch_size, rounds=args.metrics_rounds)

        tracing = None
        if not args.skip_tracing:
            from loadtest import bench_tracing

            print("measuring the cost of tracing ...", flush=True)
            tracing = bench_tracing.run(
                duration_s=max(1.0, args.duration / 3), rounds=args.tracing_rounds, warmup_s=min(args.warmup, 2.0),
                batch_size=args.batch_size, server_cpu=args.server_cpu, client_cpu=args.client_cpu,
            )
            tracing["table"] = bench_tracing.format_table(tracing)

    write_chart(chart, servers, locust)
    write_report(args.output, chart, context, servers, locust, metrics, tracing["table"] if tracing else None)
    if args.json is not None:
        args.json.write_text(json.dumps({
            "context": context,
            "servers": [dataclasses.asdict(result) for result in servers],
            "locust": [dataclasses.asdict(result) for result in locust],
            "metrics": metrics,
            "tracing": tracing,
        }, indent=2, default=str))
    print(f"wrote {args.output} and {chart}")
    return 0 if not any(result.errors for result in servers) else 1


if __name__ == "__main__":
    sys.exit(main())
