"""The verdict: throughput >= target, p95 < max, success ratio > min, judged both ways."""

from __future__ import annotations

import pytest

from loadtest.verdict import VERDICT_FAILED_EXIT_CODE, Criteria, Measurement, judge

CRITERIA = Criteria(target_events_per_second=1_000_000, max_p95_ms=100.0, min_success_ratio=0.999)


def _measurement(events_per_second=1_200_000.0, p95_ms=40.0, requests=10_000, failures=0, duration_s=60.0):
    return Measurement(
        duration_s=duration_s,
        events=int(events_per_second * duration_s),
        requests=requests,
        failures=failures,
        p95_ms=p95_ms,
    )


def _status(verdict) -> dict[str, bool | None]:
    return {result.name: result.passed for result in verdict.results}


def test_verdict_passes_all_criteria():
    verdict = judge("steady", _measurement(), CRITERIA)

    assert verdict.passed
    assert verdict.exit_code == 0
    assert _status(verdict) == {"throughput": True, "p95_latency": True, "success_rate": True}
    assert verdict.values() == {"throughput": 1, "p95_latency": 1, "success_rate": 1, "overall": 1}


@pytest.mark.parametrize(
    ("measurement", "failed"),
    [
        (_measurement(events_per_second=999_999), "throughput"),
        (_measurement(p95_ms=100.0), "p95_latency"),
        (_measurement(p95_ms=250.0), "p95_latency"),
        (_measurement(requests=10_000, failures=10), "success_rate"),
        (_measurement(requests=10_000, failures=11), "success_rate"),
    ],
)
def test_verdict_fails_one_criterion(measurement, failed):
    verdict = judge("steady", measurement, CRITERIA)

    assert not verdict.passed
    assert verdict.exit_code == VERDICT_FAILED_EXIT_CODE
    status = _status(verdict)
    assert status[failed] is False
    assert [name for name, passed in status.items() if not passed] == [failed]
    assert verdict.values()[failed] == 0
    assert verdict.values()["overall"] == 0


def test_throughput_equal_to_target_passes():
    verdict = judge("steady", _measurement(events_per_second=1_000_000), CRITERIA)

    assert _status(verdict)["throughput"] is True


def test_success_just_above_minimum_passes():
    verdict = judge("steady", _measurement(requests=100_000, failures=99), CRITERIA)

    assert _status(verdict)["success_rate"] is True


def test_throughput_unjudged_without_target():
    verdict = judge("", _measurement(events_per_second=10), Criteria(target_events_per_second=None))

    assert verdict.passed
    assert _status(verdict)["throughput"] is None
    assert "throughput" not in verdict.values()
    assert "not judged" in verdict.format()


def test_unjudged_throughput_cannot_hide_failures():
    verdict = judge("", _measurement(p95_ms=500), Criteria(target_events_per_second=None))

    assert not verdict.passed


def test_missing_measurement_fails():
    verdict = judge("ramp", None, CRITERIA)

    assert not verdict.passed
    assert set(_status(verdict).values()) == {False}
    assert "the run ended before its judged window opened" in verdict.format()
    assert "fix any error logged above, else run longer with --campaign-duration" in verdict.format()


def test_missing_measurement_without_campaign_names_run_time():
    verdict = judge("", None, Criteria(target_events_per_second=None))

    assert "else run longer with -t," in verdict.format()


def test_no_requests_fail_latency_and_success():
    measurement = Measurement(duration_s=10, events=0, requests=0, failures=0, p95_ms=None)
    verdict = judge("smoke", measurement, CRITERIA)

    assert _status(verdict) == {"throughput": False, "p95_latency": False, "success_rate": False}
    assert measurement.success_ratio is None


def test_format_names_campaign_and_figures():
    text = judge("spike", _measurement(events_per_second=500_000), CRITERIA).format()

    assert text.startswith("Load test verdict (spike): FAIL")
    assert "500,000 events/s" in text
    assert "target >= 1,000,000" in text
    assert "p95 40 ms" in text


def test_to_json_holds_measurement():
    document = judge("steady", _measurement(), CRITERIA).to_json()

    assert document["passed"] is True
    assert document["campaign"] == "steady"
    assert document["criteria"]["throughput"]["passed"] is True
    assert document["measurement"]["events_per_second"] == pytest.approx(1_200_000)
    assert document["measurement"]["p95_ms"] == 40.0


def test_measurement_rates():
    measurement = Measurement(duration_s=4, events=2000, requests=200, failures=1, p95_ms=5)

    assert measurement.events_per_second == 500
    assert measurement.success_ratio == pytest.approx(0.995)
    assert Measurement(duration_s=0, events=10, requests=1, failures=0, p95_ms=1).events_per_second == 0
