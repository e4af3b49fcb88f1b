"""Cost of tracing to ingestion throughput: off, 1 % sampling, and the collector down.

    python -m loadtest.bench_tracing [--duration 5] [--rounds 3] [--json]

``run`` starts one ``unmogrowp ingestion`` process per tracing setting, all at
once and on the same CPU, then loads them in turn, round after round. The
load is closed-loop: ``connections`` keep-alive connections each post one
batch of ``batch_size`` events with fresh ids, wait for the response and
post the next. Interleaving the settings within each round spreads the
machine's other load over all of them alike. The reported rate of a setting
is the median of its rounds, and its cost is the drop in rate from
``tracing off``.

Settings (``SETTINGS``):

- ``tracing off``: no OTLP endpoint.
- ``1 % sampling``: the default sampler (parentbased_traceidratio, 0.01)
  exporting over gRPC to a live OTLP receiver in this process.
- ``1 % sampling, collector down``: the same sampler, exporting to a port
  where nothing listens, so every sampled span is dropped and counted.
- ``100 % sampling, collector down``: every request sampled and dropped, the
  worst case for the export path.

After the load, ``run`` reads ``otel_spans_exported_total``,
``otel_spans_dropped_total`` and ``otel_span_queue_size`` from each service's
``/metrics`` and reports them. A reader can check that the live collector
received spans and that the spans meant for the down collector were dropped
or still wait in the bounded queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from loadtest.percentile import nearest_rank

REPOSITORY = Path(__file__).resolve().parent.parent
SETTINGS = (
    "tracing off",
    "1 % sampling",
    "1 % sampling, collector down",
    "100 % sampling, collector down",
)
ID_PLACEHOLDER = b"@@@@@@@@@@@@"
READY_TIMEOUT_S = 30.0


@dataclass
class Measurement:
    """One setting's load results over all rounds."""

    setting: str
    rates: list[float] = field(default_factory=list)  # accepted events per second, per round
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    span_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    def latency_percentile(self, q: float) -> float | None:
        return nearest_rank(self.latencies_ms, q)


# -- batches ---------------------------------------------------------------------------------

def batch_template(app_id: str, batch_size: int) -> list[bytes]:
    """Return a batch body split at its id placeholders, for ``render_batch``.

    Nine events in ten are clicks on distinct devices and every tenth is an
    install of the device clicked just before it, so each batch runs the
    attribution of its installs as well.
    """
    now = time.time()
    events = []
    for index in range(batch_size):
        device = f"{ID_PLACEHOLDER.decode()}-{index // 10:05d}"
        if index % 10 == 9:
            events.append({"event_id": f"{ID_PLACEHOLDER.decode()}-i{index}", "app_id": app_id,
                           "event_type": "install", "event_time": now, "android_id": device})
        else:
            events.append({"event_id": f"{ID_PLACEHOLDER.decode()}-c{index}", "app_id": app_id,
                           "event_type": "click", "event_time": now - 3600, "network": "bench_ads",
                           "campaign": "tracing_cost", "android_id": device})
    return json.dumps(events, separators=(",", ":")).encode().split(ID_PLACEHOLDER)


def render_batch(pieces: list[bytes], sequence: int) -> bytes:
    return f"{sequence:012x}".encode().join(pieces)


# -- services --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _unmogrowp() -> str:
    beside = Path(sys.executable).with_name("unmogrowp")
    return str(beside) if beside.exists() else (shutil.which("unmogrowp") or "unmogrowp")


def _tracing_env(setting: str, receiver_endpoint: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    if setting == "tracing off":
        return env
    env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
    if setting == "1 % sampling":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver_endpoint
    else:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    if setting.startswith("100 %"):
        env["OTEL_TRACES_SAMPLER"] = "always_on"
    return env


@dataclass
class Service:
    setting: str
    port: int
    token: str
    process: subprocess.Popen
    app_id: str = ""
    key: str = ""


@contextlib.contextmanager
def _services(workdir: Path, receiver_endpoint: str, server_cpu: int | None) -> Iterator[list[Service]]:
    services = []
    try:
        for number, setting in enumerate(SETTINGS):
            port = free_port()
            token = secrets.token_urlsafe(32)
            env = _tracing_env(setting, receiver_endpoint)
            env["UNMOGROWP_ADMIN_TOKEN"] = token
            command = [_unmogrowp(), "ingestion", "--host", "127.0.0.1", "--port", str(port),
                       "--data-dir", str(workdir / f"data-{number}"), "--log-level", "warning"]
            if server_cpu is not None:
                command = ["taskset", "-c", str(server_cpu), *command]
            log = open(workdir / f"ingestion-{number}.log", "wb")
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPOSITORY)
            log.close()
            services.append(Service(setting, port, token, process))
        for service in services:
            _wait_until_ready(service)
            service.app_id, service.key = _register_app(service)
        yield services
    finally:
        for service in services:
            service.process.terminate()
        for service in services:
            try:
                service.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()


def _wait_until_ready(service: Service) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"the ingestion service for {service.setting!r} exited with code "
                               f"{service.process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{service.port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the ingestion service for {service.setting!r} was not ready within {READY_TIMEOUT_S:.0f} s")


def _register_app(service: Service) -> tuple[str, str]:
    app_id = f"bench-tracing-{secrets.token_hex(4)}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{service.port}/v1/apps",
        data=json.dumps({"app_id": app_id, "platform": "android"}).encode(),
        headers={"Authorization": f"Bearer {service.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return app_id, json.load(response)["ingest_key"]


def _span_metrics(service: Service) -> dict[str, float]:
    """Return the span export totals and queue size on the service's /metrics, summed over labels."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{service.port}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("otel_spans_exported_total", "otel_spans_dropped_total", "otel_span_queue_size"):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


# -- load ------------------------------------------------------------------------------------

async def _post_loop(service: Service, pieces: list[bytes], sequence: Iterator[int], stop_at: float,
                     measurement: Measurement, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    head = (f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n"
            f"Authorization: Bearer {service.key}\r\nContent-Type: application/json\r\n").encode()
    try:
        while time.perf_counter() < stop_at:
            body = render_batch(pieces, next(sequence))
            started = time.perf_counter()
            writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            response = await reader.readexactly(length)
            measurement.latencies_ms.append((time.perf_counter() - started) * 1000)
            if not status_line.startswith(b"HTTP/1.1 200"):
                measurement.errors += 1
                measurement.first_error = measurement.first_error or (status_line + response[:200]).decode(errors="replace")
                continue
            counts[0] += json.loads(response)["accepted"]
    finally:
        writer.close()


async def _load(service: Service, pieces: list[bytes], sequence: Iterator[int], connections: int,
                duration_s: float, measurement: Measurement) -> float:
    counts = [0]
    started = time.perf_counter()
    stop_at = started + duration_s
    await asyncio.gather(*(_post_loop(service, pieces, sequence, stop_at, measurement, counts)
                           for _ in range(connections)))
    return counts[0] / (time.perf_counter() - started)


def run(
    duration_s: float = 5.0,
    rounds: int = 3,
    warmup_s: float = 2.0,
    batch_size: int = 1000,
    connections: int = 4,
    server_cpu: int | None = None,
    client_cpu: int | None = None,
) -> dict:
    """Measure ingestion throughput under each tracing setting; return the results as a dict."""
    if duration_s <= 0 or rounds < 1 or batch_size < 1 or connections < 1:
        raise ValueError("duration_s must be > 0, and rounds, batch_size and connections >= 1")
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    sys.path.insert(0, str(REPOSITORY))
    from tests.support.otlp_receiver import OtlpReceiver

    measurements = {setting: Measurement(setting) for setting in SETTINGS}
    sequence = iter(range(1, 16**12))
    with OtlpReceiver() as receiver, tempfile.TemporaryDirectory(prefix="bench-tracing-") as workdir:
        with _services(Path(workdir), receiver.grpc_endpoint, server_cpu) as services:
            templates = {service.setting: batch_template(service.app_id, batch_size) for service in services}
            for service in services:
                asyncio.run(_load(service, templates[service.setting], sequence, connections, warmup_s,
                                  Measurement(service.setting)))
            for round_number in range(rounds):
                # Rotate the order, so no setting always runs first in a round.
                shift = round_number % len(services)
                for service in services[shift:] + services[:shift]:
                    measurement = measurements[service.setting]
                    rate = asyncio.run(_load(service, templates[service.setting], sequence, connections,
                                             duration_s, measurement))
                    measurement.rates.append(rate)
            for service in services:
                measurements[service.setting].span_metrics = _span_metrics(service)
        received_spans = len(receiver.spans)

    baseline = measurements["tracing off"].median_rate
    results = []
    for setting in SETTINGS:
        measurement = measurements[setting]
        document = asdict(measurement)
        del document["latencies_ms"]
        document["median_events_per_second"] = measurement.median_rate
        document["cost_percent"] = (1 - measurement.median_rate / baseline) * 100 if baseline else None
        document["p50_ms"] = measurement.latency_percentile(0.50)
        document["p95_ms"] = measurement.latency_percentile(0.95)
        results.append(document)
    return {
        "duration_s": duration_s,
        "rounds": rounds,
        "batch_size": batch_size,
        "connections": connections,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "spans_received_by_live_collector": received_spans,
        "settings": results,
    }


# -- per-request overhead ----------------------------------------------------------------------

def _overhead_app(middleware: bool = True):
    """Return an ASGI app whose one route makes the tracing calls of POST /v1/events, and no other work."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from exporters.tracing import child_span, current_exemplar, record_batch
    from exporters.tracing_asgi import TracingMiddleware

    async def events(request) -> Response:
        with child_span("decode"):
            pass
        with child_span("attribute", {"unmogrowp.app_id": "bench", "unmogrowp.batch.size": 1000}):
            with child_span("store"):
                pass
        current_exemplar()
        record_batch(app_id="bench", batch_size=1000, accepted=1000, duplicates=0, rejected=0)
        return Response(b"{}", media_type="application/json")

    app = Starlette(routes=[Route("/v1/events", events, methods=["POST"])])
    return TracingMiddleware(app) if middleware else app


async def _call_asgi(app, count: int) -> None:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/events", "raw_path": b"/v1/events", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8081),
    }

    async def receive():
        return {"type": "http.request", "body": b"[]", "more_body": False}

    async def send(message) -> None:
        pass

    for _ in range(count):
        await app(dict(scope), receive, send)


def run_overhead(requests: int = 20_000, rounds: int = 5) -> dict:
    """Time the tracing work of one request in process, without sockets, per setting.

    Each setting configures tracing from its OTEL_* variables in this process,
    then drives ``requests`` requests through ``TracingMiddleware`` and a
    route that makes the same tracing calls as POST /v1/events. The result is
    the median over rounds of microseconds per request, next to the same
    route without the middleware and with tracing off (``no middleware``).
    The SDK's export warnings are silenced while it runs.
    """
    from starlette.applications import Starlette  # noqa: F401 - fail early without Starlette

    from exporters.metrics import Registry
    from exporters.tracing import configure_tracing

    sys.path.insert(0, str(REPOSITORY))
    from tests.support.otlp_receiver import OtlpReceiver

    saved = {name: value for name, value in os.environ.items() if name.startswith("OTEL_")}
    quiet = [logging.getLogger(name) for name in ("opentelemetry", "exporters")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)
    results = {}
    try:
        with OtlpReceiver() as receiver:
            for setting in ("no middleware", *SETTINGS):
                for name in list(os.environ):
                    if name.startswith("OTEL_"):
                        del os.environ[name]
                tracing_setting = "tracing off" if setting == "no middleware" else setting
                os.environ.update({name: value for name, value in _tracing_env(tracing_setting, receiver.grpc_endpoint).items()
                                   if name.startswith("OTEL_")})
                handle = configure_tracing("bench-overhead", Registry(process_metrics=False))
                app = _overhead_app(middleware=setting != "no middleware")
                asyncio.run(_call_asgi(app, requests // 10))
                timings = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    asyncio.run(_call_asgi(app, requests))
                    timings.append((time.perf_counter() - started) / requests * 1e6)
                if handle is not None:
                    handle.shutdown(timeout_s=2.0)
                results[setting] = statistics.median(timings)
    finally:
        for name in list(os.environ):
            if name.startswith("OTEL_"):
                del os.environ[name]
        os.environ.update(saved)
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    return {"requests": requests, "rounds": rounds, "microseconds_per_request": results}


def format_table(result: dict) -> str:
    """Format the results as a Markdown table."""
    lines = [
        "| tracing | events/s (median of rounds) | cost vs. off | p50 ms | p95 ms | spans exported | spans dropped | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["settings"]:
        cost = "" if row["setting"] == "tracing off" else f"{row['cost_percent']:+.1f} %"
        spans = row["span_metrics"]
        lines.append(
            f"| {row['setting']} | {row['median_events_per_second']:,.0f} | {cost} | "
            f"{row['p50_ms']:.1f} | {row['p95_ms']:.1f} | "
            f"{spans.get('otel_spans_exported_total', 0):,.0f} | {spans.get('otel_spans_dropped_total', 0):,.0f} | "
            f"{row['errors']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per setting and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each of which loads every setting once")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load per service first")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per request")
    parser.add_argument("--connections", type=int, default=4, help="keep-alive connections, one request in flight each")
    parser.add_argument("--server-cpu", type=int, default=None, help="CPU the services are pinned to (taskset)")
    parser.add_argument("--client-cpu", type=int, default=None, help="CPU this load generator is pinned to")
    parser.add_argument("--overhead", action="store_true",
                        help="time the tracing work per request in process instead of loading services")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.overhead:
        result = run_overhead(rounds=args.rounds)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for setting, microseconds in result["microseconds_per_request"].items():
                print(f"{setting}: {microseconds:.1f} us per request")
        return 0
    result = run(args.duration, args.rounds, args.warmup, args.batch_size, args.connections,
                 args.server_cpu, args.client_cpu)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
