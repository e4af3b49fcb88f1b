"""Reading /v1/stats and combining the apps of a customer."""

from customer_tracker.latency import AppLatency, combine_app_latency, parse_app_stats


def test_parse_skips_apps_without_percentiles():
    apps = parse_app_stats({
        "full": {"events": {"accepted": 5, "duplicate": 1, "rejected": 2}, "latency_ms": {"p50": 1, "p95": 2.5, "p99": 3}},
        "idle": {"events": {"accepted": 0}, "latency_ms": {"p50": None, "p95": None, "p99": None}},
        "partial": {"events": {"accepted": 5}, "latency_ms": {"p50": 1, "p95": 2}},
        "negative": {"events": {"accepted": 5}, "latency_ms": {"p50": -1, "p95": 2, "p99": 3}},
        "boolean": {"events": {"accepted": 5}, "latency_ms": {"p50": True, "p95": 2, "p99": 3}},
        "broken": "not an object",
    })
    assert apps == {"full": AppLatency(events=8, milliseconds={"p50": 1.0, "p95": 2.5, "p99": 3.0})}


def test_combine_takes_max_of_active_apps():
    apps = {
        "a": AppLatency(events=10, milliseconds={"p50": 1, "p95": 50, "p99": 70}),
        "b": AppLatency(events=3, milliseconds={"p50": 4, "p95": 20, "p99": 90}),
        "quiet": AppLatency(events=0, milliseconds={"p50": 400, "p95": 500, "p99": 600}),
    }
    combined, counted = combine_app_latency(apps, ["b", "a", "quiet", "unknown"])
    assert combined == {"p50": 4, "p95": 50, "p99": 90}
    assert counted == ("a", "b")


def test_combine_without_data():
    assert combine_app_latency({}, ["a"]) == (None, ())
