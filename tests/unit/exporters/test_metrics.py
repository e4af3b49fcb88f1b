"""Recording rules of the metric families: exact counts, batch steps, rejected inputs."""

import math
from decimal import Decimal

import pytest

from exporters.metrics import (
    DEFAULT_BUCKETS,
    Counter,
    Gauge,
    Histogram,
    Registry,
    histogram_quantile,
)


@pytest.fixture
def registry():
    return Registry(process_metrics=False)


def samples_of(family):
    """Return {(sample name, sorted label items): value} of one family."""
    (metric,) = family.collect()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for sample in metric.samples
    }


# -- Counter ---------------------------------------------------------------


def test_counter_counts_exactly(registry):
    counter = Counter("jobs_total", "Jobs.", ("kind",), registry=registry)
    child = counter.labels("a")

    for _ in range(100_003):
        child.inc()

    assert child.value == 100_003
    assert type(child.value) is int


def test_counter_int_amounts_stay_int(registry):
    counter = Counter("bytes_total", "Bytes.", registry=registry)

    counter.inc(2**60)
    counter.inc(1)

    assert counter.value == 2**60 + 1
    assert type(counter.value) is int


def test_counter_float_amounts_add(registry):
    counter = Counter("seconds_total", "Seconds.", registry=registry)

    counter.inc(0.5)
    counter.inc(2)

    assert counter.value == 2.5


def test_counter_zero_amount_allowed(registry):
    counter = Counter("noop_total", "Nothing.", registry=registry)

    counter.inc(0)

    assert counter.value == 0


@pytest.mark.parametrize("amount", [-1, -0.5, math.nan, math.inf, -math.inf])
def test_counter_rejects_bad_amount(registry, amount):
    counter = Counter("events_total", "Events.", ("app_id",), registry=registry)
    child = counter.labels("a")

    with pytest.raises(ValueError, match="events_total"):
        child.inc(amount)

    assert child.value == 0


def test_counter_rejects_non_number(registry):
    counter = Counter("events_total", "Events.", registry=registry)

    with pytest.raises(TypeError, match="events_total"):
        counter.inc("3")


def test_counter_accepts_decimal_amount(registry):
    counter = Counter("events_total", "Events.", registry=registry)

    counter.inc(Decimal("1.5"))

    assert counter.value == 1.5


def test_labels_positional_and_keyword(registry):
    counter = Counter("events_total", "Events.", ("app_id", "status"), registry=registry)

    positional = counter.labels("app1", "accepted")
    keyword = counter.labels(status="accepted", app_id="app1")

    assert positional is keyword


def test_labels_stored_as_strings(registry):
    counter = Counter("events_total", "Events.", ("shard",), registry=registry)

    counter.labels(3).inc()
    counter.labels("3").inc()

    assert counter.items()[0][0] == ("3",)
    assert counter.labels("3").value == 2


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (("only-one",), {}),
        (("a", "b", "c"), {}),
        ((), {"app_id": "a"}),
        ((), {"app_id": "a", "status": "s", "extra": "x"}),
        ((), {"app_id": "a", "state": "s"}),
        (("a",), {"status": "s"}),
    ],
)
def test_labels_rejects_wrong_labels(registry, args, kwargs):
    counter = Counter("events_total", "Events.", ("app_id", "status"), registry=registry)

    with pytest.raises(ValueError, match="events_total"):
        counter.labels(*args, **kwargs)


def test_labels_rejects_none(registry):
    counter = Counter("events_total", "Events.", ("app_id",), registry=registry)

    with pytest.raises(ValueError, match="app_id"):
        counter.labels(None)


def test_labelled_family_needs_labels(registry):
    counter = Counter("events_total", "Events.", ("app_id",), registry=registry)

    with pytest.raises(ValueError, match=r"\.labels"):
        counter.inc()
    with pytest.raises(ValueError, match=r"\.labels"):
        counter.value


def test_remove_and_clear(registry):
    counter = Counter("events_total", "Events.", ("app_id",), registry=registry)
    counter.labels("a").inc()
    counter.labels("b").inc()
    counter.labels("c").inc()

    assert counter.remove("a") is True
    assert counter.remove("a") is False
    assert counter.remove(app_id="b") is True
    assert [values for values, _ in counter.items()] == [("c",)]

    counter.clear()

    assert counter.items() == []
    assert counter.labels("c").value == 0


def test_unlabelled_family_cannot_clear(registry):
    counter = Counter("events_total", "Events.", registry=registry)

    with pytest.raises(ValueError, match="no labels"):
        counter.clear()


def test_counter_total_suffix_names(registry):
    counter = Counter("attribution_events_processed_total", "Events.", registry=registry)
    counter.inc(4)

    (metric,) = counter.collect()

    assert metric.name == "attribution_events_processed"
    assert metric.samples[0].name == "attribution_events_processed_total"
    assert metric.samples[0].value == 4


def test_counter_without_total_suffix(registry):
    counter = Counter("retries", "Retries.", registry=registry)
    counter.inc()

    (metric,) = counter.collect()

    assert metric.samples[0].name == "retries_total"


def test_counter_exemplar_kept(registry):
    counter = Counter("events_total", "Events.", registry=registry)

    counter.inc(3, exemplar={"trace_id": "abc"})

    (metric,) = counter.collect()
    assert metric.samples[0].exemplar.labels == {"trace_id": "abc"}
    assert metric.samples[0].exemplar.value == 3


# -- Construction checks ---------------------------------------------------


@pytest.mark.parametrize("name", ["", "1abc", "with-dash", "with space", "é"])
def test_invalid_metric_name_rejected(registry, name):
    with pytest.raises(ValueError, match="invalid metric name"):
        Counter(name, "Doc.", registry=registry)


@pytest.mark.parametrize("labelname", ["1a", "a-b", "__reserved", ""])
def test_invalid_label_name_rejected(registry, labelname):
    with pytest.raises(ValueError, match="label name"):
        Gauge("g", "Doc.", (labelname,), registry=registry)


def test_duplicate_label_name_rejected(registry):
    with pytest.raises(ValueError, match="twice"):
        Gauge("g", "Doc.", ("a", "a"), registry=registry)


def test_histogram_le_label_rejected(registry):
    with pytest.raises(ValueError, match="reserved"):
        Histogram("h_seconds", "Doc.", ("le",), registry=registry)


def test_labelnames_string_rejected(registry):
    with pytest.raises(TypeError, match=r"\('app_id',\)"):
        Counter("events_total", "Doc.", "app_id", registry=registry)


def test_empty_documentation_rejected(registry):
    with pytest.raises(ValueError, match="documentation"):
        Gauge("g", "", registry=registry)


def test_unit_must_end_name(registry):
    Counter("cpu_seconds_total", "CPU.", registry=registry, unit="seconds")

    with pytest.raises(ValueError, match="_bytes"):
        Gauge("memory", "Memory.", registry=registry, unit="bytes")


def test_registry_rejects_duplicate_name(registry):
    Counter("events_total", "Events.", registry=registry)

    with pytest.raises(ValueError, match="already registered"):
        Gauge("events_total", "Clash.", registry=registry)
    with pytest.raises(ValueError, match="already registered"):
        Counter("events", "Clash on the family name.", registry=registry)


def test_registry_rejects_suffix_clash(registry):
    Histogram("latency_seconds", "Latency.", registry=registry)

    with pytest.raises(ValueError, match="latency_seconds_count"):
        Gauge("latency_seconds_count", "Clash.", registry=registry)


def test_registry_unregister(registry):
    gauge = Gauge("g", "Doc.", registry=registry)

    registry.unregister(gauge)
    Gauge("g", "Reused name.", registry=registry)

    with pytest.raises(KeyError):
        registry.unregister(gauge)


def test_unregistered_family_collected_through_collector(registry):
    class SnapshotCollector:
        def collect(self):
            gauge = Gauge("pilots", "Pilot customers.", registry=None)
            gauge.set(5)
            return [gauge]

    registry.register(SnapshotCollector())

    (metric,) = list(registry.collect())
    assert metric.name == "pilots"
    assert metric.samples[0].value == 5


# -- Gauge -----------------------------------------------------------------


def test_gauge_set_inc_dec(registry):
    gauge = Gauge("connections", "Open connections.", registry=registry)

    gauge.set(10)
    gauge.inc()
    gauge.inc(5)
    gauge.dec()
    gauge.dec(2)

    assert gauge.value == 13


def test_gauge_allows_negative_and_nan(registry):
    gauge = Gauge("temperature", "Temperature.", ("room",), registry=registry)

    gauge.labels("a").set(-3.5)
    gauge.labels("b").set(math.nan)

    assert gauge.labels("a").value == -3.5
    assert math.isnan(gauge.labels("b").value)


def test_gauge_rejects_non_number(registry):
    gauge = Gauge("g", "Doc.", registry=registry)

    with pytest.raises(TypeError, match="'g'"):
        gauge.set("high")


def test_gauge_function_read_at_collect(registry):
    gauge = Gauge("queue_depth", "Queue depth.", registry=registry)
    depth = [3]
    gauge.set_function(lambda: depth[0])

    depth[0] = 7

    assert samples_of(gauge) == {("queue_depth", ()): 7}


def test_gauge_set_replaces_function(registry):
    gauge = Gauge("queue_depth", "Queue depth.", registry=registry)
    gauge.set_function(lambda: 3)

    with pytest.raises(ValueError, match="function"):
        gauge.inc()

    gauge.set(1)
    gauge.inc()

    assert gauge.value == 2


def test_gauge_failing_function_left_out(registry, caplog):
    gauge = Gauge("health", "Health.", ("service",), registry=registry)
    gauge.labels("ok").set(1)
    gauge.labels("broken").set_function(lambda: 1 / 0)

    values = samples_of(gauge)

    assert values == {("health", (("service", "ok"),)): 1}
    assert "gauge function failed" in caplog.text


# -- Histogram -------------------------------------------------------------


def test_histogram_batch_equals_single_observes(registry):
    batch = Histogram("batch_seconds", "Doc.", ("endpoint",), registry=registry)
    single = Histogram("single_seconds", "Doc.", ("endpoint",), registry=registry)
    # Binary fractions, so that the sums are exact either way.
    observations = [(0.0, 5), (0.0009765625, 7), (0.1, 1), (0.5, 50), (3.0, 11), (42.0, 2)]

    for value, count in observations:
        batch.labels("/v1/events").observe(value, count=count)
        for _ in range(count):
            single.labels("/v1/events").observe(value)

    batch_samples = {
        (name.replace("batch", "single"), labels): value
        for (name, labels), value in samples_of(batch).items()
    }
    assert batch_samples == samples_of(single)
    assert batch.labels("/v1/events").count == 76


def test_histogram_batch_sum_within_rounding(registry):
    batch = Histogram("batch_seconds", "Doc.", registry=registry)
    single = Histogram("single_seconds", "Doc.", registry=registry)

    batch.observe(0.0999, count=1000)
    for _ in range(1000):
        single.observe(0.0999)

    assert batch.labels().buckets() == single.labels().buckets()
    assert batch.sum == pytest.approx(single.sum, rel=1e-12)


def test_histogram_bucket_placement(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry, buckets=(0.1, 1.0))

    histogram.observe(0.1)
    histogram.observe(0.10000001)
    histogram.observe(1.0, count=2)
    histogram.observe(1.5)

    assert histogram.labels().buckets() == [(0.1, 1), (1.0, 4), (math.inf, 5)]
    assert histogram.count == 5
    assert histogram.sum == pytest.approx(0.1 + 0.10000001 + 2.0 + 1.5)


def test_histogram_count_matches_inf_bucket(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry)
    histogram.observe(0.2, count=40)
    histogram.observe(100.0, count=2)

    values = samples_of(histogram)

    assert values[("h_seconds_count", ())] == 42
    assert values[("h_seconds_bucket", (("le", "+Inf"),))] == 42
    assert values[("h_seconds_sum", ())] == pytest.approx(208.0)


@pytest.mark.parametrize("value", [math.nan, -0.001, -1, math.inf, -math.inf])
def test_histogram_rejects_bad_value(registry, value):
    histogram = Histogram("h_seconds", "Doc.", registry=registry)

    with pytest.raises(ValueError, match="h_seconds"):
        histogram.observe(value)

    assert histogram.count == 0
    assert histogram.sum == 0


@pytest.mark.parametrize("count", [0, -1])
def test_histogram_rejects_count_below_one(registry, count):
    histogram = Histogram("h_seconds", "Doc.", registry=registry)

    with pytest.raises(ValueError, match="count"):
        histogram.observe(0.1, count=count)

    assert histogram.count == 0


@pytest.mark.parametrize("count", [1.5, 2.0, True, "3"])
def test_histogram_rejects_non_int_count(registry, count):
    histogram = Histogram("h_seconds", "Doc.", registry=registry)

    with pytest.raises(TypeError, match="count"):
        histogram.observe(0.1, count=count)

    assert histogram.count == 0


def test_histogram_accepts_int_and_decimal_value(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry)

    histogram.observe(1)
    histogram.observe(Decimal("0.5"), count=2)

    assert histogram.count == 3
    assert histogram.sum == 2.0


def test_histogram_buckets_sorted_with_inf(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry, buckets=[5, 0.1, 1])

    assert histogram.upper_bounds == (0.1, 1.0, 5.0, math.inf)


def test_histogram_explicit_inf_not_doubled(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry, buckets=[1, math.inf])

    assert histogram.upper_bounds == (1.0, math.inf)


@pytest.mark.parametrize(
    "buckets, message",
    [
        ([], "at least one"),
        ([math.inf], "at least one"),
        ([0.1, 0.1], "twice"),
        ([-1, 1], "negative"),
        ([math.nan], "NaN"),
    ],
)
def test_histogram_rejects_bad_buckets(registry, buckets, message):
    with pytest.raises(ValueError, match=message):
        Histogram("h_seconds", "Doc.", registry=registry, buckets=buckets)


def test_default_buckets_include_100ms():
    assert 0.1 in DEFAULT_BUCKETS
    assert list(DEFAULT_BUCKETS) == sorted(DEFAULT_BUCKETS)


def test_histogram_exemplar_latest_per_bucket(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry, buckets=(0.1, 1.0))

    histogram.observe(0.05, count=3, exemplar={"trace_id": "first"})
    histogram.observe(0.07, exemplar={"trace_id": "second"})
    histogram.observe(0.5, exemplar={"trace_id": "third", "span_id": "s"})

    (metric,) = histogram.collect()
    exemplars = {
        sample.labels["le"]: sample.exemplar
        for sample in metric.samples
        if sample.name.endswith("_bucket")
    }
    assert exemplars["0.1"].labels == {"trace_id": "second"}
    assert exemplars["0.1"].value == 0.07
    assert exemplars["1.0"].labels == {"trace_id": "third", "span_id": "s"}
    assert exemplars["+Inf"] is None


def test_exemplar_too_long_rejected(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry)

    with pytest.raises(ValueError, match="128"):
        histogram.observe(0.1, exemplar={"trace_id": "x" * 121})


def test_exemplar_bad_labels_rejected(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry)

    with pytest.raises(ValueError, match="exemplar label name"):
        histogram.observe(0.1, exemplar={"trace-id": "x"})
    with pytest.raises(TypeError, match="string"):
        histogram.observe(0.1, exemplar={"trace_id": 12})
    with pytest.raises(TypeError, match="dict"):
        histogram.observe(0.1, exemplar=["trace_id"])


# -- Quantiles -------------------------------------------------------------


def test_quantile_interpolates_like_promql(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry, buckets=(0.1, 0.2, 0.4))
    histogram.observe(0.05, count=50)
    histogram.observe(0.15, count=30)
    histogram.observe(0.3, count=20)

    # Rank 50 of 100 is the top of the first bucket [0, 0.1].
    assert histogram.quantile(0.5) == pytest.approx(0.1)
    # Rank 95 is 15 of the 20 observations into (0.2, 0.4].
    assert histogram.quantile(0.95) == pytest.approx(0.2 + 0.2 * 15 / 20)
    # Rank 25 is half way into the first bucket.
    assert histogram.quantile(0.25) == pytest.approx(0.05)


def test_quantile_in_inf_bucket_returns_top_bound(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry, buckets=(0.1, 1.0))
    histogram.observe(50.0, count=10)

    assert histogram.quantile(0.99) == 1.0


def test_quantile_without_observations_is_nan(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry)

    assert math.isnan(histogram.quantile(0.5))


def test_quantile_rejects_out_of_range(registry):
    histogram = Histogram("h_seconds", "Doc.", registry=registry)

    with pytest.raises(ValueError, match="between 0 and 1"):
        histogram.quantile(1.5)


def test_histogram_quantile_function():
    buckets = [(1.0, 10), (2.0, 20), (math.inf, 20)]

    assert histogram_quantile(0.5, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.75, buckets) == pytest.approx(1.5)
    assert histogram_quantile(0.0, buckets) == 0.0
    assert math.isnan(histogram_quantile(0.5, [(math.inf, 3)]))
