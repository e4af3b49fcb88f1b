"""The tracker's Prometheus metrics, rendered from the latest status snapshot.

The snapshot is rebuilt from the database after each write of this process and on a
schedule (for writes of other replicas and for the passing days), never during a scrape,
so a scrape does not block on the database. Every scrape renders only the customers of
the snapshot, so a deleted customer's series are gone from the next scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily

from customer_tracker.latency import PERCENTILES, LatencyMonitor
from customer_tracker.scoring import PHASES, SATISFACTION_SURVEY_COUNT
from customer_tracker.status import CustomerStatus
from exporters.metrics import Counter, Registry


def _families() -> dict[str, GaugeMetricFamily]:
    specs = [
        ("customer_satisfaction_score", f"Satisfaction in percent (0-100): mean of the customer's latest {SATISFACTION_SURVEY_COUNT} surveys.",
         ["customer_id", "company_name"]),
        ("attribution_accuracy_percent", "Share of the customer's reference installs whose attribution matched, "
         "in percent, from the latest reconciliation run.", ["customer_id"]),
        ("customer_api_latency_ms", "Event processing latency percentile of the customer's apps, in milliseconds: "
         "the maximum over its apps in the ingestion statistics window.", ["customer_id", "percentile"]),
        ("customer_cost_savings_percent", "Saving of the customer's monthly attribution cost against its previous "
         "platform, in percent.", ["customer_id"]),
        ("total_pilot_customers", "Customers in the pilot programme.", []),
        ("successful_pilot_customers", "Pilot customers that meet every success criterion.", []),
        ("customer_onboarding_phase", "1 for the customer's current onboarding phase, 0 for the others.",
         ["customer_id", "phase"]),
        ("customer_time_to_launch_seconds", "Time from kickoff (midnight UTC) to the first move into launch or live, "
         "in seconds; before launch, the time elapsed so far.", ["customer_id"]),
        ("customer_launched", "1 once the customer has reached the launch or live phase, else 0.", ["customer_id"]),
        ("customer_open_support_tickets", "Open support tickets of the customer.", ["customer_id"]),
        ("customer_health_score", "Weighted health score of the customer, 0-100.", ["customer_id"]),
        ("customer_uptime_percent", "Share of successful polls of the ingestion service since the customer's "
         "kickoff (at most 30 days back), in percent.", ["customer_id"]),
        ("customer_pilot_criterion_met", "1 when the success criterion is met, 0 when it is not or has no figure.",
         ["customer_id", "criterion", "kind"]),
        ("tracker_ingestion_up", "1 when the last poll of the ingestion service's statistics succeeded, else 0.", []),
        ("tracker_ingestion_stats_stale", "1 when the latency figures are stale because polls of the ingestion "
         "service fail or are overdue, else 0.", []),
        ("tracker_ingestion_stats_age_seconds", "Seconds since the last successful poll of the ingestion service's "
         "statistics; absent before the first.", []),
    ]
    return {name: GaugeMetricFamily(name, documentation, labels=labels) for name, documentation, labels in specs}


class TrackerCollector:
    """Renders the customer gauges from ``snapshot()`` and the poll state of ``monitor``."""

    def __init__(self, snapshot: Callable[[], Sequence[CustomerStatus]], monitor: LatencyMonitor) -> None:
        self._snapshot = snapshot
        self._monitor = monitor

    def describe(self) -> list[GaugeMetricFamily]:
        return list(_families().values())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = _families()

        def add(name: str, labels: list[str], value: float) -> None:
            families[name].add_metric(labels, value)

        statuses = list(self._snapshot())
        pilots = [status for status in statuses if status.facts.pilot]
        add("total_pilot_customers", [], len(pilots))
        add("successful_pilot_customers", [], sum(1 for status in pilots if status.successful))

        for status in statuses:
            facts = status.facts
            customer_id = facts.customer_id
            if status.satisfaction is not None:
                add("customer_satisfaction_score", [customer_id, facts.company_name], float(status.satisfaction))
            if status.accuracy is not None:
                add("attribution_accuracy_percent", [customer_id], float(status.accuracy))
            if status.latency.milliseconds is not None:
                for percentile in PERCENTILES:
                    add("customer_api_latency_ms", [customer_id, percentile], status.latency.milliseconds[percentile])
            if status.cost_savings is not None:
                add("customer_cost_savings_percent", [customer_id], float(status.cost_savings))
            for phase in PHASES:
                add("customer_onboarding_phase", [customer_id, phase], 1 if facts.phase == phase else 0)
            add("customer_time_to_launch_seconds", [customer_id], status.launch.seconds)
            add("customer_launched", [customer_id], 1 if status.launch.launched else 0)
            add("customer_open_support_tickets", [customer_id], facts.open_tickets)
            add("customer_health_score", [customer_id], status.health_score)
            if status.uptime is not None:
                add("customer_uptime_percent", [customer_id], float(status.uptime))
            for criterion in status.criteria:
                add("customer_pilot_criterion_met", [customer_id, criterion.name, criterion.kind], 1 if criterion.met else 0)

        monitor = self._monitor
        add("tracker_ingestion_up", [], 1 if monitor.last_attempt_at is not None and monitor.last_error is None else 0)
        add("tracker_ingestion_stats_stale", [], 1 if monitor.stale else 0)
        age = monitor.age_seconds()
        if age is not None:
            add("tracker_ingestion_stats_age_seconds", [], age)
        yield from families.values()


class ReconciliationMetrics:
    """Counters of reconciliation runs, registered beside the collector."""

    def __init__(self, registry: Registry) -> None:
        self.runs = Counter(
            "tracker_reconciliations_total",
            "Reconciliation requests by result: recorded, rejected (bad input) or failed (ingestion service).",
            ("result",),
            registry=registry,
        )
        for result in ("recorded", "rejected", "failed"):
            self.runs.labels(result)
