"""The ingestion service's metric families.

Label values come from registered apps, fixed vocabularies, or a bounded set
of network names per app, so no client can grow the label set: events of
unregistered apps count under ``app_id="_unregistered"`` and network names
past ``max_networks_per_app`` count under ``network="_other"``.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from operator import attrgetter

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from exporters.metrics import Counter, Gauge, Histogram, Registry
from ingestion.store.base import Store

UNREGISTERED_APP = "_unregistered"
OTHER_NETWORK = "_other"
ORGANIC_NETWORK = "organic"
UNKNOWN = "unknown"
NONE_LABEL = "none"

_install_key = attrgetter("network", "match_type", "status")
_reason = attrgetter("reason")

PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


class NetworkLabels:
    """The network label values one app may use: the first ``limit`` seen, then ``_other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.allowed: dict[str, set[str]] = {}

    def label(self, app_id: str, network: str | None) -> str:
        if network is None:
            return ORGANIC_NETWORK
        allowed = self.allowed.setdefault(app_id, set())
        if network in allowed:
            return network
        if len(allowed) < self.limit:
            allowed.add(network)
            return network
        return OTHER_NETWORK

    def forget(self, app_id: str) -> None:
        self.allowed.pop(app_id, None)


class StoreCollector:
    """Entry counts, expirations and evictions of the store, read at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self):
        entries = GaugeMetricFamily(
            "attribution_store_entries", "Entries the ingestion store holds, by kind.", labels=["kind"]
        )
        for kind, count in sorted(self.store.entry_counts().items()):
            entries.add_metric([kind], count)
        yield entries
        for name, attribute, text in (
            ("attribution_store_evictions", "evicted", "Entries evicted because a store maximum was reached, by kind."),
            ("attribution_store_expirations", "expired", "Entries dropped because their window or horizon passed, by kind."),
        ):
            family = CounterMetricFamily(name, text, labels=["kind"])
            for kind, count in sorted(getattr(self.store, attribute, {}).items()):
                family.add_metric([kind], count)
            yield family
        # Only the embedded store compacts a journal; other stores export none of these.
        if hasattr(self.store, "compaction_pause_seconds"):
            compactions = CounterMetricFamily(
                "attribution_store_compactions",
                "Journal compactions of the embedded store, by outcome (succeeded, failed).",
                labels=["outcome"],
            )
            compactions.add_metric(["failed"], self.store.compaction_failures)
            compactions.add_metric(["succeeded"], self.store.compactions)
            yield compactions
            yield CounterMetricFamily(
                "attribution_store_compaction_pause_seconds",
                "Seconds event requests waited while compactions captured the embedded store's state.",
                value=self.store.compaction_pause_seconds,
            )


class IngestionMetrics:
    """Every metric family the ingestion service exports, in one registry."""

    def __init__(self, registry: Registry, store: Store, *, max_networks_per_app: int = 100) -> None:
        self.registry = registry
        self.networks = NetworkLabels(max_networks_per_app)
        self.events = Counter(
            "attribution_events_processed_total",
            "Events received, by app, event type, platform and outcome (accepted, duplicate, rejected).",
            ("app_id", "event_type", "platform", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "attribution_event_processing_duration_seconds",
            "Processing time of the request that carried each event, one observation per event, in seconds.",
            ("endpoint",),
            registry=registry,
            buckets=PROCESSING_BUCKETS,
        )
        self.installs = Counter(
            "attribution_installs_total",
            "Installs judged, by app, network, match type and status (attributed, organic, reinstall).",
            ("app_id", "network", "match_type", "status"),
            registry=registry,
        )
        self.carried = Counter(
            "attribution_carried_events_total",
            "Session and in-app events, by app, event type and the network their device's install carried.",
            ("app_id", "event_type", "network"),
            registry=registry,
        )
        self.rejected_touches = Counter(
            "attribution_rejected_touches_total",
            "Matched clicks rejected as click injection, by app and reason.",
            ("app_id", "reason"),
            registry=registry,
        )
        self.active_connections = Gauge(
            "attribution_active_connections", "Open client connections.", registry=registry
        )
        self.memory = Gauge(
            "attribution_memory_usage_bytes", "Resident memory of the ingestion service, in bytes.", registry=registry
        )
        process = psutil.Process(os.getpid())
        self.memory.set_function(lambda: process.memory_info().rss)
        registry.register(StoreCollector(store))

    def change_connections(self, delta: int) -> None:
        self.active_connections.inc(delta)

    def record_events(self, tally: Tally) -> None:
        """Add a batch's (app_id, event_type, platform, status) counts."""
        labels = self.events.labels
        for key, count in tally.items():
            labels(*key).inc(count)

    def record_installs(self, app_id: str, records) -> None:
        # Counted by C-level iteration first, so the network label is looked up once per distinct
        # (network, match type, status), not once per install.
        label = self.networks.label
        for (network, match_type, status), count in Tally(map(_install_key, records)).items():
            self.installs.labels(app_id, label(app_id, network), match_type or NONE_LABEL, status).inc(count)
        rejected: Tally = Tally()
        for record in records:
            if record.rejected_touches:
                rejected.update(map(_reason, record.rejected_touches))
        for reason, count in rejected.items():
            self.rejected_touches.labels(app_id, reason).inc(count)

    def record_carried(self, app_id: str, carried) -> None:
        """Add a batch's (network, event_type) pairs of session and in-app events."""
        label = self.networks.label
        for (network, event_type), count in Tally(carried).items():
            self.carried.labels(app_id, event_type, label(app_id, network)).inc(count)
