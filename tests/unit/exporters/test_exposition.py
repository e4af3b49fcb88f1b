"""Text 0.0.4 and OpenMetrics 1.0 output, read back by prometheus_client's parsers and promtool."""

import math
import shutil
import subprocess

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporters.exposition import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    negotiate,
    render,
)
from exporters.metrics import Counter, Gauge, Histogram, Registry

OPENMETRICS_ACCEPT = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# The Accept header Prometheus 2.x sends by default.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
# The Accept header Prometheus 3.x sends with its default scrape protocols.
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)
AWKWARD_VALUE = 'quote " backslash \\ newline \n end'
AWKWARD_HELP = 'Help with "quotes", a backslash \\ and\na second line.'


@pytest.fixture
def registry():
    """Build a registry with each family type, awkward labels and an exemplar."""
    registry = Registry(process_metrics=False)
    events = Counter(
        "attribution_events_processed_total",
        "Events processed, by outcome.",
        ("app_id", "event_type", "platform", "status"),
        registry=registry,
    )
    events.labels("app1", "click", "ios", "accepted").inc(1000)
    events.labels("app1", "install", "android", "duplicate").inc(3)
    events.labels(AWKWARD_VALUE, "click", "web", "rejected").inc()

    duration = Histogram(
        "attribution_event_processing_duration_seconds",
        "Processing time of the request that carried each event.",
        ("endpoint",),
        registry=registry,
        buckets=(0.00001, 0.1, 1, 2.5, 1234567.0),
    )
    duration.labels("/v1/events").observe(
        0.05, count=999, exemplar={"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
    )
    duration.labels("/v1/events").observe(2.0)

    connections = Gauge("attribution_active_connections", "Open client connections.", registry=registry)
    connections.set(7)

    awkward = Gauge("awkward_help", AWKWARD_HELP, ("note",), registry=registry)
    awkward.labels(AWKWARD_VALUE).set(1.5)
    return registry


def text_of(registry):
    body, content_type = render(registry, None)
    assert content_type == CONTENT_TYPE_TEXT
    return body.decode("utf-8")


def openmetrics_of(registry):
    body, content_type = render(registry, OPENMETRICS_ACCEPT)
    assert content_type == CONTENT_TYPE_OPENMETRICS
    return body.decode("utf-8")


def values_by_sample(families):
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


# -- Content negotiation ---------------------------------------------------


@pytest.mark.parametrize(
    "accept, expected",
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("text/plain", False),
        ("text/plain; version=0.0.4", False),
        ("application/json", False),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text; version=1.0.0", True),
        ("application/openmetrics-text; version=0.0.1", True),
        ("Application/OpenMetrics-Text; Version=1.0.0", True),
        ("application/openmetrics-text; version=2.0.0", False),
        (PROMETHEUS_ACCEPT, True),
        (PROMETHEUS_3_ACCEPT, True),
        ("text/plain;version=1.0.0;escaping=allow-utf-8", False),
        ("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5", False),
        ("application/openmetrics-text;q=0", False),
        ("application/openmetrics-text;q=0.5,text/plain;q=0.5", True),
    ],
)
def test_negotiate(accept, expected):
    assert negotiate(accept) is expected


def test_text_content_type_default(registry):
    _, content_type = render(registry, "text/plain")

    assert content_type == "text/plain; version=0.0.4; charset=utf-8"


def test_openmetrics_content_type(registry):
    _, content_type = render(registry, PROMETHEUS_ACCEPT)

    assert content_type == "application/openmetrics-text; version=1.0.0; charset=utf-8"


# -- Text 0.0.4 ------------------------------------------------------------


def test_text_parses_with_exact_values(registry):
    values = values_by_sample(parse_text(text_of(registry)))

    accepted = (
        "attribution_events_processed_total",
        (("app_id", "app1"), ("event_type", "click"), ("platform", "ios"), ("status", "accepted")),
    )
    assert values[accepted] == 1000
    count = ("attribution_event_processing_duration_seconds_count", (("endpoint", "/v1/events"),))
    assert values[count] == 1000
    total = ("attribution_event_processing_duration_seconds_sum", (("endpoint", "/v1/events"),))
    assert values[total] == pytest.approx(0.05 * 999 + 2.0)
    assert values[("attribution_active_connections", ())] == 7


def test_text_counter_lines(registry):
    text = text_of(registry)

    assert "# TYPE attribution_events_processed_total counter\n" in text
    assert (
        'attribution_events_processed_total{app_id="app1",event_type="click",'
        'platform="ios",status="accepted"} 1000.0\n'
    ) in text


def test_text_escapes_label_values(registry):
    text = text_of(registry)

    assert 'app_id="quote \\" backslash \\\\ newline \\n end"' in text


def test_text_label_values_round_trip(registry):
    values = values_by_sample(parse_text(text_of(registry)))

    assert values[("awkward_help", (("note", AWKWARD_VALUE),))] == 1.5


def test_text_escapes_help(registry):
    text = text_of(registry)

    # Text 0.0.4 escapes only backslash and newline in help text.
    assert '# HELP awkward_help Help with "quotes", a backslash \\\\ and\\na second line.\n' in text
    (family,) = [f for f in parse_text(text) if f.name == "awkward_help"]
    assert family.documentation == AWKWARD_HELP


def test_text_bucket_bounds(registry):
    text = text_of(registry)
    bounds = [
        line.split('le="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("attribution_event_processing_duration_seconds_bucket")
    ]

    assert bounds == ["1e-05", "0.1", "1.0", "2.5", "1.234567e+06", "+Inf"]


def test_text_buckets_cumulative(registry):
    values = values_by_sample(parse_text(text_of(registry)))
    bucket = "attribution_event_processing_duration_seconds_bucket"

    def at(le):
        return values[(bucket, (("endpoint", "/v1/events"), ("le", le)))]

    assert at("1e-05") == 0
    assert at("0.1") == 999
    assert at("1.0") == 999
    assert at("2.5") == 1000
    assert at("+Inf") == 1000


def test_text_has_no_exemplars(registry):
    text = text_of(registry)

    assert "trace_id" not in text
    assert " # {" not in text


def test_text_has_no_created(registry):
    assert "_created" not in text_of(registry)


# -- OpenMetrics 1.0 -------------------------------------------------------


def test_openmetrics_parses_with_exact_values(registry):
    families = list(parse_openmetrics(openmetrics_of(registry)))
    values = values_by_sample(families)

    duplicate = (
        "attribution_events_processed_total",
        (("app_id", "app1"), ("event_type", "install"), ("platform", "android"), ("status", "duplicate")),
    )
    assert values[duplicate] == 3
    count = ("attribution_event_processing_duration_seconds_count", (("endpoint", "/v1/events"),))
    assert values[count] == 1000
    assert values[("awkward_help", (("note", AWKWARD_VALUE),))] == 1.5


def test_openmetrics_counter_family_name(registry):
    text = openmetrics_of(registry)

    assert "# TYPE attribution_events_processed counter\n" in text
    assert "attribution_events_processed_total{" in text
    families = {family.name: family for family in parse_openmetrics(text)}
    assert families["attribution_events_processed"].type == "counter"


def test_openmetrics_ends_with_eof(registry):
    assert openmetrics_of(registry).endswith("# EOF\n")


def test_openmetrics_help_round_trip(registry):
    families = {family.name: family for family in parse_openmetrics(openmetrics_of(registry))}

    assert families["awkward_help"].documentation == AWKWARD_HELP


def test_openmetrics_exemplar(registry):
    families = {family.name: family for family in parse_openmetrics(openmetrics_of(registry))}
    samples = families["attribution_event_processing_duration_seconds"].samples
    exemplars = {
        sample.labels["le"]: sample.exemplar for sample in samples if sample.name.endswith("_bucket")
    }

    exemplar = exemplars["0.1"]
    assert exemplar.labels == {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
    }
    assert exemplar.value == 0.05
    assert exemplar.timestamp is not None
    assert exemplars["1.0"] is None


def test_openmetrics_counter_exemplar():
    registry = Registry(process_metrics=False)
    counter = Counter("jobs_total", "Jobs.", registry=registry)
    counter.inc(2, exemplar={"trace_id": "abc"})

    (family,) = parse_openmetrics(openmetrics_of(registry))

    assert family.samples[0].exemplar.labels == {"trace_id": "abc"}
    assert family.samples[0].exemplar.value == 2


def test_openmetrics_has_no_created(registry):
    assert "_created" not in openmetrics_of(registry)


def test_openmetrics_unit_line():
    registry = Registry(process_metrics=False)
    Gauge("memory_bytes", "Memory.", registry=registry, unit="bytes").set(1)

    text = openmetrics_of(registry)

    assert "# UNIT memory_bytes bytes\n" in text
    assert "UNIT" not in text_of(registry)


def test_empty_registry_renders():
    registry = Registry(process_metrics=False)

    assert openmetrics_of(registry) == "# EOF\n"
    assert text_of(registry) == ""


def test_labelled_family_without_children_renders():
    registry = Registry(process_metrics=False)
    Histogram("idle_seconds", "Nothing observed yet.", ("endpoint",), registry=registry)

    assert list(parse_openmetrics(openmetrics_of(registry)))[0].samples == []
    assert "idle_seconds" in text_of(registry)


def test_large_counter_exact():
    registry = Registry(process_metrics=False)
    counter = Counter("big_total", "Big.", registry=registry)
    counter.inc(123_456_789_012)

    (family,) = parse_text(text_of(registry))

    assert family.samples[0].value == 123_456_789_012


def test_gauge_nan_and_infinities():
    registry = Registry(process_metrics=False)
    gauge = Gauge("g", "Doc.", ("case",), registry=registry)
    gauge.labels("nan").set(math.nan)
    gauge.labels("inf").set(math.inf)
    gauge.labels("minus").set(-math.inf)

    text = text_of(registry)

    assert 'g{case="nan"} NaN\n' in text
    assert 'g{case="inf"} +Inf\n' in text
    assert 'g{case="minus"} -Inf\n' in text


# -- promtool --------------------------------------------------------------


def promtool_or_skip():
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed: apt-get install -y prometheus provides it")
    return path


def test_promtool_accepts_text(registry):
    promtool = promtool_or_skip()
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=render(registry, None)[0],
        capture_output=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_promtool_accepts_process_metrics():
    promtool = promtool_or_skip()
    registry = Registry()
    Counter("jobs_total", "Jobs.", registry=registry).inc()

    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=render(registry, None)[0],
        capture_output=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_promtool_rejects_broken_text():
    promtool = promtool_or_skip()

    # Guards the two tests above: promtool must fail on a malformed line.
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=b'# HELP x_total X.\n# TYPE x_total counter\nx_total{a="b} 1\n',
        capture_output=True,
        timeout=60,
    )

    assert result.returncode != 0


def test_created_series_on_request():
    registry = Registry(process_metrics=False)
    counter = Counter("jobs_total", "Jobs.", ("kind",), registry=registry, created=True)
    histogram = Histogram("job_seconds", "Job time.", registry=registry, created=True)
    counter.labels("a").inc()
    histogram.observe(0.2)

    openmetrics = {
        (sample.name, tuple(sample.labels.items())): sample.value
        for family in parse_openmetrics(openmetrics_of(registry))
        for sample in family.samples
    }
    text = text_of(registry)

    assert openmetrics[("jobs_created", (("kind", "a"),))] == counter.labels("a").created
    assert openmetrics[("job_seconds_created", ())] == histogram.labels().created
    assert 'jobs_created{kind="a"}' in text
    assert "job_seconds_created " in text


def test_promtool_accepts_created_series():
    promtool = promtool_or_skip()
    registry = Registry(process_metrics=False)
    Counter("jobs_total", "Jobs.", ("kind",), registry=registry, created=True).labels("a").inc()
    Histogram("job_seconds", "Job time.", registry=registry, created=True).observe(0.2)

    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=render(registry, None)[0],
        capture_output=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
