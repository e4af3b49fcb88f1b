"""Prometheus exporter inside the Locust master process (port 9646 by default).

It reads Locust's runner and statistics at every scrape, so it needs no Locust web UI and no
second process. Where containersol/locust_exporter (the exporter that scrapes Locust's
/stats/requests, Grafana dashboard 11985) has a metric for the same figure, this one uses its
name, labels and unit, so its dashboards work unchanged:

- `locust_users`, `locust_running` (0 stopped, 1 spawning, 2 running), `locust_workers_count`,
  `locust_workers_running_count`, `locust_workers_hatching_count` (spawning),
  `locust_workers_missing_count`, `locust_worker_detail{id, state}` (users per worker);
- `locust_requests_fail_ratio` and `locust_requests_current_response_time_percentile_50`/`_95`
  over all requests of the last 10 s, in milliseconds (`_99` is added here);
- per `{method, name}`, including Locust's `Aggregated` row: `locust_requests_num_requests`,
  `locust_requests_num_failures`, `locust_requests_current_rps`,
  `locust_requests_current_fail_per_sec`, `locust_requests_avg_response_time`,
  `locust_requests_median_response_time`, `locust_requests_min_response_time`,
  `locust_requests_max_response_time` (milliseconds) and `locust_requests_avg_content_length`
  (bytes);
- `locust_errors{method, name, error}`: occurrences of each failure message.

The load test's own figures:

- `unmogrowp_loadtest_running`: 1 while users are spawning or running, else 0;
- `unmogrowp_loadtest_events_per_second`: events counted in the ingestion service's responses
  (accepted + duplicates + rejected) per second, over about the last 10 s;
- `unmogrowp_loadtest_events_total{outcome}`: the same events since the exporter started, by
  outcome (accepted, duplicate, rejected);
- `unmogrowp_loadtest_target_events_per_second`: the campaign's throughput target;
- `unmogrowp_loadtest_verdict{criterion}`: 1 pass, 0 fail, for throughput, p95_latency,
  success_rate and overall. While a campaign runs it judges the judged window so far; after
  the run it is the final verdict. A criterion that is not judged has no series.

Process metrics (`process_*`) describe the Locust master process itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from exporters.exposition import render
from exporters.metrics import Counter, Gauge, Registry

__all__ = ["LoadTestExporter", "LoadTestSource"]

logger = logging.getLogger(__name__)

_RUNNING_STATES = {"spawning": 1, "running": 2}
_MAX_ERROR_LABEL_CHARACTERS = 200
_PER_REQUEST = (
    ("num_requests", "num_requests", "Requests made."),
    ("num_failures", "num_failures", "Requests that failed."),
    ("current_rps", "current_rps", "Requests per second over the last 10 s."),
    ("current_fail_per_sec", "current_fail_per_sec", "Failed requests per second over the last 10 s."),
    ("avg_response_time", "avg_response_time", "Mean response time in milliseconds."),
    ("median_response_time", "median_response_time", "Median response time in milliseconds."),
    ("min_response_time", "min_response_time", "Shortest response time in milliseconds."),
    ("max_response_time", "max_response_time", "Longest response time in milliseconds."),
    ("avg_content_length", "avg_content_length", "Mean response body size in bytes."),
)


class LoadTestSource(Protocol):
    """The load test's own figures, as the exporter reads them at each scrape."""

    def events_per_second(self) -> float: ...

    def events_by_outcome(self) -> dict[str, int]: ...

    def target_events_per_second(self) -> float | None: ...

    def verdict_values(self) -> dict[str, int] | None: ...


class LoadTestExporter:
    """Metric families refreshed from a Locust environment at every scrape."""

    def __init__(self, environment: Any, source: LoadTestSource, *, process_metrics: bool = True) -> None:
        self.environment = environment
        self.source = source
        self.registry = Registry(process_metrics=process_metrics)
        self._server: Any = None
        self._counted: dict[str, int] = {}

        registry = self.registry
        self.users = Gauge("locust_users", "The current number of users.", registry=registry)
        self.state = Gauge(
            "locust_running", "The current state of the run (0 = stopped, 1 = spawning, 2 = running).",
            registry=registry,
        )
        self.workers = Gauge("locust_workers_count", "The current number of workers.", registry=registry)
        self.workers_running = Gauge(
            "locust_workers_running_count", "The current number of running workers.", registry=registry
        )
        self.workers_hatching = Gauge(
            "locust_workers_hatching_count", "The current number of spawning workers.", registry=registry
        )
        self.workers_missing = Gauge(
            "locust_workers_missing_count", "The current number of missing workers.", registry=registry
        )
        self.worker_detail = Gauge(
            "locust_worker_detail", "The users of each worker, labelled by its state.", ("id", "state"),
            registry=registry,
        )
        self.fail_ratio = Gauge("locust_requests_fail_ratio", "Share of requests that failed.", registry=registry)
        self.current_percentiles = {
            percentile: Gauge(
                f"locust_requests_current_response_time_percentile_{percentile}",
                f"The {percentile}th percentile response time of all requests of the last 10 s, in milliseconds.",
                registry=registry,
            )
            for percentile in (50, 95, 99)
        }
        self.per_request = {
            attribute: Gauge(f"locust_requests_{suffix}", help_text, ("method", "name"), registry=registry)
            for attribute, suffix, help_text in _PER_REQUEST
        }
        self.errors = Gauge(
            "locust_errors", "Occurrences of each failure.", ("method", "name", "error"), registry=registry
        )

        self.running = Gauge(
            "unmogrowp_loadtest_running", "1 while a load test is spawning or running users, else 0.",
            registry=registry,
        )
        self.events_per_second = Gauge(
            "unmogrowp_loadtest_events_per_second",
            "Events per second in the ingestion service's responses (accepted, duplicates and rejected), over the last 10 s.",
            registry=registry,
        )
        self.events_total = Counter(
            "unmogrowp_loadtest_events_total",
            "Events in the ingestion service's responses since the exporter started, by outcome.",
            ("outcome",),
            registry=registry,
        )
        self.target = Gauge(
            "unmogrowp_loadtest_target_events_per_second",
            "The throughput target of the campaign, in events per second.",
            registry=registry,
        )
        self.verdict = Gauge(
            "unmogrowp_loadtest_verdict",
            "Verdict per criterion (throughput, p95_latency, success_rate, overall): 1 pass, 0 fail.",
            ("criterion",),
            registry=registry,
        )

    # -- reading Locust ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Copy the current figures of the runner and the source into the families."""
        runner = self.environment.runner
        state = getattr(runner, "state", "stopped")
        self.users.set(getattr(runner, "user_count", 0) or 0)
        self.state.set(_RUNNING_STATES.get(state, 0))
        self.running.set(1 if state in _RUNNING_STATES else 0)
        self._refresh_workers(runner)
        if runner is not None:
            self._refresh_requests(runner.stats)

        self.events_per_second.set(self.source.events_per_second())
        for outcome, total in self.source.events_by_outcome().items():
            # The source's totals restart with each run; the counter keeps adding the increases.
            previous = self._counted.get(outcome, 0)
            increase = total - previous if total >= previous else total
            if increase:
                self.events_total.labels(outcome).inc(increase)
            else:
                self.events_total.labels(outcome)
            self._counted[outcome] = total

        target = self.source.target_events_per_second()
        self.target.set(target or 0)

        self.verdict.clear()
        for criterion, value in (self.source.verdict_values() or {}).items():
            self.verdict.labels(criterion).set(value)

    def _refresh_workers(self, runner: Any) -> None:
        self.worker_detail.clear()
        clients = getattr(runner, "clients", None)
        if clients is None:
            for gauge in (self.workers, self.workers_running, self.workers_hatching, self.workers_missing):
                gauge.set(0)
            return
        workers = list(clients.values())
        self.workers.set(len(workers))
        self.workers_running.set(sum(1 for worker in workers if worker.state == "running"))
        self.workers_hatching.set(sum(1 for worker in workers if worker.state == "spawning"))
        self.workers_missing.set(sum(1 for worker in workers if worker.state == "missing"))
        for worker in workers:
            self.worker_detail.labels(worker.id, worker.state).set(worker.user_count)

    def _refresh_requests(self, stats: Any) -> None:
        total = stats.total
        self.fail_ratio.set(total.fail_ratio)
        for percentile, gauge in self.current_percentiles.items():
            gauge.set(total.get_current_response_time_percentile(percentile / 100) or 0)

        for gauge in self.per_request.values():
            gauge.clear()
        for entry in [*stats.entries.values(), total]:
            labels = (entry.method or "", entry.name)
            for attribute, gauge in self.per_request.items():
                gauge.labels(*labels).set(getattr(entry, attribute) or 0)

        # Imported here: importing Locust monkey-patches a process, and this module must stay
        # importable without that (the Locust process has imported it long before).
        from locust.stats import StatsError

        self.errors.clear()
        for error in stats.errors.values():
            message = StatsError.parse_error(error.error)[:_MAX_ERROR_LABEL_CHARACTERS]
            self.errors.labels(error.method or "", error.name, message).set(error.occurrences)

    # -- serving -------------------------------------------------------------------------------

    def render(self, accept_header: str | None) -> tuple[bytes, str]:
        """Refresh, then return (body, content type) in the format the Accept header prefers."""
        self.refresh()
        return render(self.registry, accept_header)

    def wsgi_app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            try:
                body, content_type = self.render(environ.get("HTTP_ACCEPT"))
            except Exception:
                logger.exception("load-test exporter failed to render /metrics")
                start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"rendering the metrics failed; see the Locust log\n"]
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found; metrics are served at /metrics\n"]

    def start(self, host: str, port: int) -> None:
        """Serve /metrics on host:port from a greenlet of the Locust process."""
        from gevent.pywsgi import WSGIServer

        self._server = WSGIServer((host, port), self.wsgi_app, log=None, error_log=logger)
        self._server.start()
        logger.info("load-test exporter listening on http://%s:%d/metrics", host, self._server.server_port)

    @property
    def port(self) -> int | None:
        return None if self._server is None else self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None
