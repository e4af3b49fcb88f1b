"""The pass/fail verdict of a campaign against its throughput, latency and success criteria."""

from __future__ import annotations

import dataclasses

# Exit code of a Locust run whose verdict fails. Locust itself exits 1 when requests failed
# and 2 on an unhandled error.
VERDICT_FAILED_EXIT_CODE = 3

CRITERIA_NAMES = ("throughput", "p95_latency", "success_rate")


@dataclasses.dataclass(frozen=True)
class Criteria:
    """Thresholds a campaign is judged on.

    `target_events_per_second` None leaves throughput unjudged (a run without a campaign or target).
    """

    target_events_per_second: float | None = 1_000_000
    max_p95_ms: float = 100.0
    min_success_ratio: float = 0.999


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Figures of the judged part of a run."""

    duration_s: float
    events: int  # events counted in the service's responses: accepted + duplicates + rejected
    requests: int
    failures: int
    p95_ms: float | None  # p95 of POST /v1/events; None without a single such request

    @property
    def events_per_second(self) -> float:
        return self.events / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def success_ratio(self) -> float | None:
        if self.requests == 0:
            return None
        return (self.requests - self.failures) / self.requests


@dataclasses.dataclass(frozen=True)
class CriterionResult:
    name: str
    passed: bool | None  # None: not judged
    detail: str


@dataclasses.dataclass(frozen=True)
class Verdict:
    campaign: str
    measurement: Measurement | None
    results: tuple[CriterionResult, ...]

    @property
    def passed(self) -> bool:
        judged = [result.passed for result in self.results if result.passed is not None]
        return bool(judged) and all(judged)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else VERDICT_FAILED_EXIT_CODE

    def values(self) -> dict[str, int]:
        """Return 1 (pass) or 0 (fail) per judged criterion and for "overall"."""
        values = {result.name: int(result.passed) for result in self.results if result.passed is not None}
        values["overall"] = int(self.passed)
        return values

    def to_json(self) -> dict:
        """Return the verdict and its measurement as a JSON-ready document."""
        measurement = None
        if self.measurement is not None:
            m = self.measurement
            measurement = {
                "duration_s": m.duration_s,
                "events": m.events,
                "events_per_second": m.events_per_second,
                "requests": m.requests,
                "failures": m.failures,
                "success_ratio": m.success_ratio,
                "p95_ms": m.p95_ms,
            }
        return {
            "campaign": self.campaign,
            "passed": self.passed,
            "criteria": {result.name: {"passed": result.passed, "detail": result.detail} for result in self.results},
            "measurement": measurement,
        }

    def format(self) -> str:
        """Return the verdict as lines of text for the console."""
        title = self.campaign or "run without a campaign"
        lines = [f"Load test verdict ({title}): {'PASS' if self.passed else 'FAIL'}"]
        for result in self.results:
            status = {True: "pass", False: "FAIL", None: "not judged"}[result.passed]
            lines.append(f"  {result.name:<13} {status:<10} {result.detail}")
        return "\n".join(lines)


def judge(campaign: str, measurement: Measurement | None, criteria: Criteria) -> Verdict:
    """Judge a measurement: throughput >= target, p95 < max, success ratio > min.

    A run without a judged measurement (stopped during warm-up) fails every judged criterion.
    """
    if measurement is None:
        # A campaign's length is --campaign-duration; Locust's -t does not end it.
        run_length_option = "--campaign-duration" if campaign else "-t"
        reason = (
            "nothing measured: the run ended before its judged window opened, which happens once every user "
            f"of a judged stage runs and events have come back; fix any error logged above, else run longer "
            f"with {run_length_option}, past any warm-up stage"
        )
        results = [
            CriterionResult("throughput", None if criteria.target_events_per_second is None else False, reason),
            CriterionResult("p95_latency", False, reason),
            CriterionResult("success_rate", False, reason),
        ]
        return Verdict(campaign, None, tuple(results))

    results = []
    rate = measurement.events_per_second
    if criteria.target_events_per_second is None:
        results.append(CriterionResult("throughput", None, f"{rate:,.0f} events/s (no target given)"))
    else:
        target = criteria.target_events_per_second
        results.append(
            CriterionResult(
                "throughput",
                rate >= target,
                f"{rate:,.0f} events/s over {measurement.duration_s:.0f} s, target >= {target:,.0f}",
            )
        )

    if measurement.p95_ms is None:
        results.append(CriterionResult("p95_latency", False, "no POST /v1/events request completed"))
    else:
        results.append(
            CriterionResult(
                "p95_latency",
                measurement.p95_ms < criteria.max_p95_ms,
                f"p95 {measurement.p95_ms:.0f} ms, target < {criteria.max_p95_ms:.0f} ms",
            )
        )

    success = measurement.success_ratio
    if success is None:
        results.append(CriterionResult("success_rate", False, "no request completed"))
    else:
        results.append(
            CriterionResult(
                "success_rate",
                success > criteria.min_success_ratio,
                f"{success * 100:.3f} % of {measurement.requests:,} requests succeeded, "
                f"target > {criteria.min_success_ratio * 100:.1f} %",
            )
        )
    return Verdict(campaign, measurement, tuple(results))
