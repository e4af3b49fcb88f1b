"""Figures of one customer: satisfaction, time to launch, savings, success criteria, health.

Every function here is pure: it takes the stored facts and the clock and returns figures,
so the API's status page and the metrics show the same numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

PHASES = ("discovery", "setup", "launch", "live")
LAUNCHED_PHASES = frozenset({"launch", "live"})

# The satisfaction score is the mean of the customer's latest surveys, this many at most.
SATISFACTION_SURVEY_COUNT = 5

# Time to launch in days: under 14 is green, under 21 is yellow, anything else is red.
LAUNCH_GREEN_DAYS = 14
LAUNCH_YELLOW_DAYS = 21

# Fewer open support tickets than this is healthy.
HEALTHY_OPEN_TICKETS = 5

# Targets of a pilot's success criteria.
ACCURACY_TARGET = Decimal("99")
P95_TARGET_MS = 100.0
UPTIME_TARGET = Decimal("99.9")
SATISFACTION_TARGET = Decimal("90")
COST_SAVINGS_TARGET = Decimal("30")

# Health score weights in points; they add up to 100. A component without a figure yet (no
# survey, no reconciliation, no latency) counts as half its weight, so missing data neither
# hides a problem behind a perfect score nor sinks a new customer to zero.
MISSING_COMPONENT_VALUE = 0.5
HEALTH_WEIGHTS = {
    "satisfaction": 30,
    "attribution_accuracy": 20,
    "api_latency": 15,
    "time_to_launch": 15,
    "support_tickets": 10,
    "cost_savings": 10,
}

_HUNDRED = Decimal(100)
_TWO_PLACES = Decimal("0.01")


def csat_to_percent(csat: int) -> Decimal:
    """Convert a CSAT response on the 1-5 scale to a percentage (5 is 100 %, 4 is 80 %, 1 is 20 %)."""
    return Decimal(csat) * 20


def satisfaction_score(latest_first_scores: Sequence[Decimal]) -> Decimal | None:
    """Return the mean of the latest SATISFACTION_SURVEY_COUNT survey scores, in percent.

    The scores must be ordered newest first. Returns None without surveys.
    """
    window = list(latest_first_scores[:SATISFACTION_SURVEY_COUNT])
    if not window:
        return None
    mean = sum(window, Decimal(0)) / len(window)
    return mean.quantize(_TWO_PLACES, rounding=ROUND_HALF_EVEN)


def cost_savings_percent(previous_monthly_cost: Decimal | None, monthly_cost: Decimal | None) -> Decimal | None:
    """Return how much cheaper our monthly cost is than the previous one, in percent.

    Negative when ours costs more. None when either cost is unknown or the previous cost is
    zero, since a saving on nothing has no percentage.
    """
    if previous_monthly_cost is None or monthly_cost is None or previous_monthly_cost == 0:
        return None
    saving = (previous_monthly_cost - monthly_cost) / previous_monthly_cost * _HUNDRED
    return saving.quantize(_TWO_PLACES, rounding=ROUND_HALF_EVEN)


@dataclasses.dataclass(frozen=True)
class TimeToLaunch:
    days: float  # rounded to 0.01
    seconds: float
    launched: bool
    launched_at: dt.datetime | None
    colour: str


def launch_colour(days: float) -> str:
    if days < LAUNCH_GREEN_DAYS:
        return "green"
    if days < LAUNCH_YELLOW_DAYS:
        return "yellow"
    return "red"


def time_to_launch(
    kickoff_date: dt.date,
    phase_changes: Sequence[tuple[str, dt.datetime]],
    now: dt.datetime,
) -> TimeToLaunch:
    """Measure the days from kickoff (midnight UTC) to the first move into launch or live.

    Before launch the figure is the days elapsed so far, so a pilot that is late turns yellow
    or red while it is still late. A kickoff in the future counts as 0 days.
    """
    kickoff = dt.datetime.combine(kickoff_date, dt.time(0), tzinfo=dt.UTC)
    launched_at = None
    for phase, changed_at in sorted(phase_changes, key=lambda change: change[1]):
        if phase in LAUNCHED_PHASES:
            launched_at = changed_at
            break
    end = launched_at if launched_at is not None else now
    seconds = max((end - kickoff).total_seconds(), 0.0)
    days = round(seconds / 86400, 2)
    return TimeToLaunch(
        days=days, seconds=seconds, launched=launched_at is not None, launched_at=launched_at,
        colour=launch_colour(seconds / 86400),
    )


@dataclasses.dataclass(frozen=True)
class Criterion:
    """One success criterion of a pilot with the figure it was judged on."""

    name: str
    kind: str  # "technical" or "business"
    operator: str  # ">=" or "<"
    threshold: float
    unit: str
    value: float | None
    met: bool
    judged_on: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _judge(name, kind, operator, threshold, unit, value, judged_on) -> Criterion:
    if value is None:
        met = False
        judged_on = f"no figure yet: {judged_on}"
    elif operator == ">=":
        met = Decimal(str(value)) >= Decimal(str(threshold))
    else:
        met = Decimal(str(value)) < Decimal(str(threshold))
    return Criterion(
        name=name,
        kind=kind,
        operator=operator,
        threshold=float(threshold),
        unit=unit,
        value=None if value is None else float(value),
        met=met,
        judged_on=judged_on,
    )


@dataclasses.dataclass(frozen=True)
class Figures:
    """The measured figures of one customer that criteria and health are computed from."""

    satisfaction: Decimal | None
    survey_count: int
    accuracy: Decimal | None
    accuracy_source: str
    p95_ms: float | None
    latency_source: str
    uptime: Decimal | None
    uptime_source: str
    cost_savings: Decimal | None
    cost_source: str
    launch: TimeToLaunch
    open_tickets: int


def success_criteria(figures: Figures) -> list[Criterion]:
    """Judge the pilot's technical and business criteria; a missing figure fails its criterion."""
    return [
        _judge("attribution_accuracy", "technical", ">=", ACCURACY_TARGET, "percent",
               figures.accuracy, figures.accuracy_source),
        _judge("api_latency_p95", "technical", "<", P95_TARGET_MS, "ms",
               figures.p95_ms, figures.latency_source),
        _judge("uptime", "technical", ">=", UPTIME_TARGET, "percent",
               figures.uptime, figures.uptime_source),
        _judge("satisfaction", "business", ">=", SATISFACTION_TARGET, "percent",
               figures.satisfaction, f"mean of the latest {min(figures.survey_count, SATISFACTION_SURVEY_COUNT)} surveys"),
        _judge("cost_savings", "business", ">=", COST_SAVINGS_TARGET, "percent",
               figures.cost_savings, figures.cost_source),
    ]


def _clamp(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def health_components(figures: Figures) -> dict[str, float | None]:
    """Return each health component as a fraction from 0 to 1, or None without a figure.

    - satisfaction: the score divided by 100;
    - attribution_accuracy: 0 at 90 % or less, 1 at 99 % or more, linear between;
    - api_latency: 1 at a p95 of 100 ms or less, 0 at 200 ms or more, linear between;
    - time_to_launch: green 1, yellow 0.5, red 0;
    - support_tickets: 1 without open tickets, 0 at 5 or more, linear between;
    - cost_savings: 0 at no saving or less, 1 at 30 % or more, linear between.
    """
    components: dict[str, float | None] = {
        "satisfaction": None if figures.satisfaction is None else _clamp(float(figures.satisfaction) / 100),
        "attribution_accuracy": None if figures.accuracy is None else _clamp((float(figures.accuracy) - 90) / 9),
        "api_latency": None if figures.p95_ms is None else _clamp((200 - figures.p95_ms) / 100),
        "time_to_launch": {"green": 1.0, "yellow": 0.5, "red": 0.0}[figures.launch.colour],
        "support_tickets": _clamp(1 - figures.open_tickets / HEALTHY_OPEN_TICKETS),
        "cost_savings": None if figures.cost_savings is None else _clamp(float(figures.cost_savings) / 30),
    }
    return components


def health_score(components: dict[str, float | None]) -> float:
    """Weigh the components with HEALTH_WEIGHTS into a score from 0 to 100, rounded to 0.1."""
    total = 0.0
    for name, weight in HEALTH_WEIGHTS.items():
        value = components.get(name)
        total += weight * (MISSING_COMPONENT_VALUE if value is None else value)
    return round(total * 100 / sum(HEALTH_WEIGHTS.values()), 1)
