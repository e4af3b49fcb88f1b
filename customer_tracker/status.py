"""The status of one customer: every figure, the success criteria and the health score.

The API's status page and the metrics both come from ``evaluate``, so they always agree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from customer_tracker import scoring
from customer_tracker.latency import CustomerLatency
from customer_tracker.store import CustomerFacts


@dataclasses.dataclass(frozen=True)
class CustomerStatus:
    facts: CustomerFacts
    launch: scoring.TimeToLaunch
    satisfaction: Decimal | None
    cost_savings: Decimal | None
    accuracy: Decimal | None
    latency: CustomerLatency
    uptime: Decimal | None
    criteria: list[scoring.Criterion]
    health_components: dict[str, float | None]
    health_score: float

    @property
    def successful(self) -> bool:
        """Whether the customer is a pilot that meets every success criterion."""
        return self.facts.pilot and all(criterion.met for criterion in self.criteria)


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def format_money(value: Decimal | None) -> str | None:
    """Render an amount with two decimal places, or more where the amount has more."""
    if value is None:
        return None
    cents = value.quantize(Decimal("0.01"))
    if cents == value:
        return str(cents)
    return str(value.normalize())


def evaluate(facts: CustomerFacts, latency: CustomerLatency, now: dt.datetime) -> CustomerStatus:
    launch = scoring.time_to_launch(facts.kickoff_date, facts.phase_changes, now)
    satisfaction = scoring.satisfaction_score(facts.latest_scores)
    cost_savings = scoring.cost_savings_percent(facts.previous_monthly_cost, facts.monthly_cost)
    run = facts.latest_reconciliation
    accuracy = None if run is None else run.accuracy_percent
    uptime = facts.uptime.percent
    p95 = None if latency.milliseconds is None else latency.milliseconds["p95"]

    if run is None:
        accuracy_source = "no reconciliation run yet: upload reference attributions"
    else:
        accuracy_source = (
            f"reconciliation run {run.run_id} of {run.created_at.isoformat()}: "
            f"{run.matched} of {run.compared} installs matched"
        )
    if latency.milliseconds is None:
        latency_source = "no events of the customer's apps in the ingestion statistics"
    else:
        latency_source = (
            f"maximum p95 over apps {', '.join(latency.apps_counted)} in the ingestion statistics of "
            f"{latency.as_of.isoformat() if latency.as_of else 'never'}"
            + (" (stale: the ingestion service is not answering)" if latency.stale else "")
        )
    uptime_source = (
        f"{facts.uptime.successful_polls} of {facts.uptime.polls} polls of the ingestion service "
        f"succeeded since {facts.uptime.since.isoformat()}"
    )
    if cost_savings is None:
        cost_source = "previous_monthly_cost and a non-zero monthly_cost are needed"
        if facts.previous_monthly_cost is not None and facts.monthly_cost is not None:
            cost_source = "previous_monthly_cost is 0, so no saving can be expressed in percent"
    else:
        cost_source = (
            f"previous {format_money(facts.previous_monthly_cost)} {facts.currency} a month, "
            f"now {format_money(facts.monthly_cost)} {facts.currency}"
        )

    figures = scoring.Figures(
        satisfaction=satisfaction,
        survey_count=facts.survey_count,
        accuracy=accuracy,
        accuracy_source=accuracy_source,
        p95_ms=p95,
        latency_source=latency_source,
        uptime=uptime,
        uptime_source=uptime_source,
        cost_savings=cost_savings,
        cost_source=cost_source,
        launch=launch,
        open_tickets=facts.open_tickets,
    )
    components = scoring.health_components(figures)
    return CustomerStatus(
        facts=facts,
        launch=launch,
        satisfaction=satisfaction,
        cost_savings=cost_savings,
        accuracy=accuracy,
        latency=latency,
        uptime=uptime,
        criteria=scoring.success_criteria(figures),
        health_components=components,
        health_score=scoring.health_score(components),
    )


def status_document(status: CustomerStatus) -> dict:
    """Render a status as the JSON body of ``GET /v1/customers/{customer_id}/status``."""
    facts = status.facts
    run = facts.latest_reconciliation
    latency = status.latency
    monthly_saving = None
    if facts.previous_monthly_cost is not None and facts.monthly_cost is not None:
        monthly_saving = format_money(facts.previous_monthly_cost - facts.monthly_cost)
    return {
        "customer_id": facts.customer_id,
        "company_name": facts.company_name,
        "pilot": facts.pilot,
        "phase": facts.phase,
        "kickoff_date": facts.kickoff_date.isoformat(),
        "time_to_launch": {
            "days": status.launch.days,
            "colour": status.launch.colour,
            "launched": status.launch.launched,
            "launched_at": None if status.launch.launched_at is None else status.launch.launched_at.isoformat(),
        },
        "open_tickets": facts.open_tickets,
        "satisfaction": {
            "score_percent": _number(status.satisfaction),
            "surveys_counted": min(facts.survey_count, scoring.SATISFACTION_SURVEY_COUNT),
            "surveys_total": facts.survey_count,
        },
        "cost_savings": {
            "percent": _number(status.cost_savings),
            "currency": facts.currency,
            "previous_monthly_cost": format_money(facts.previous_monthly_cost),
            "monthly_cost": format_money(facts.monthly_cost),
            "monthly_saving": monthly_saving,
        },
        "attribution_accuracy": {
            "percent": _number(status.accuracy),
            "run_id": None if run is None else run.run_id,
            "compared": None if run is None else run.compared,
            "matched": None if run is None else run.matched,
            "run_at": None if run is None else run.created_at.isoformat(),
        },
        "api_latency_ms": {
            **(latency.milliseconds or dict.fromkeys(("p50", "p95", "p99"))),
            "apps_counted": list(latency.apps_counted),
            "window_seconds": latency.window_seconds,
            "as_of": None if latency.as_of is None else latency.as_of.isoformat(),
            "stale": latency.stale,
        },
        "uptime": {
            "percent": _number(status.uptime),
            "successful_polls": facts.uptime.successful_polls,
            "polls": facts.uptime.polls,
            "since": facts.uptime.since.isoformat(),
        },
        "health_score": status.health_score,
        "health_components": status.health_components,
        "success_criteria": {
            "met": all(criterion.met for criterion in status.criteria),
            "technical_met": all(c.met for c in status.criteria if c.kind == "technical"),
            "business_met": all(c.met for c in status.criteria if c.kind == "business"),
            "criteria": [criterion.as_dict() for criterion in status.criteria],
        },
        "successful_pilot": status.successful,
    }
