"""Satisfaction, savings, time to launch, success criteria and the health score."""

import datetime as dt
from decimal import Decimal

import pytest

from customer_tracker import scoring

KICKOFF = dt.date(2026, 3, 1)
MIDNIGHT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def test_csat_to_percent():
    assert [scoring.csat_to_percent(answer) for answer in range(1, 6)] == [20, 40, 60, 80, 100]


def test_satisfaction_mean_of_latest_five():
    scores = [Decimal(value) for value in ("100", "90", "80", "70", "60", "0")]
    assert scoring.satisfaction_score(scores) == Decimal("80.00")
    assert scoring.satisfaction_score(scores[:2]) == Decimal("95.00")
    assert scoring.satisfaction_score([]) is None


def test_satisfaction_rounds_to_cents():
    assert scoring.satisfaction_score([Decimal("90"), Decimal("90"), Decimal("91")]) == Decimal("90.33")


@pytest.mark.parametrize(
    ("previous", "ours", "expected"),
    [
        ("1000", "700", Decimal("30.00")),
        ("1000.10", "700.07", Decimal("30.00")),
        ("3", "2", Decimal("33.33")),
        ("500", "750", Decimal("-50.00")),
        ("500", "0", Decimal("100.00")),
    ],
)
def test_cost_savings_percent(previous, ours, expected):
    assert scoring.cost_savings_percent(Decimal(previous), Decimal(ours)) == expected


@pytest.mark.parametrize(("previous", "ours"), [(None, Decimal("1")), (Decimal("1"), None), (Decimal("0"), Decimal("1"))])
def test_cost_savings_undefined(previous, ours):
    assert scoring.cost_savings_percent(previous, ours) is None


@pytest.mark.parametrize(
    ("days", "colour"),
    [(0, "green"), (13.99, "green"), (14, "yellow"), (20.99, "yellow"), (21, "red"), (60, "red")],
)
def test_launch_colour_boundaries(days, colour):
    assert scoring.launch_colour(days) == colour


def test_time_to_launch_first_launch_counts():
    changes = [
        ("discovery", MIDNIGHT),
        ("launch", MIDNIGHT + dt.timedelta(days=12)),
        ("setup", MIDNIGHT + dt.timedelta(days=13)),
        ("launch", MIDNIGHT + dt.timedelta(days=20)),
    ]
    result = scoring.time_to_launch(KICKOFF, changes, now=MIDNIGHT + dt.timedelta(days=40))
    assert result.days == 12
    assert result.seconds == 12 * 86400
    assert result.launched is True
    assert result.colour == "green"


def test_time_to_launch_live_without_launch():
    changes = [("discovery", MIDNIGHT), ("live", MIDNIGHT + dt.timedelta(days=15, hours=12))]
    result = scoring.time_to_launch(KICKOFF, changes, now=MIDNIGHT + dt.timedelta(days=40))
    assert result.days == 15.5
    assert result.colour == "yellow"


def test_time_to_launch_before_launch_and_future_kickoff():
    running = scoring.time_to_launch(KICKOFF, [("setup", MIDNIGHT)], now=MIDNIGHT + dt.timedelta(days=22))
    assert running.days == 22
    assert running.launched is False
    assert running.colour == "red"
    future = scoring.time_to_launch(dt.date(2026, 4, 1), [], now=MIDNIGHT)
    assert future.days == 0
    assert future.colour == "green"


def _figures(**changes) -> scoring.Figures:
    values = dict(
        satisfaction=Decimal("95"), survey_count=3,
        accuracy=Decimal("99.5"), accuracy_source="run 1",
        p95_ms=40.0, latency_source="stats",
        uptime=Decimal("100"), uptime_source="polls",
        cost_savings=Decimal("40"), cost_source="costs",
        launch=scoring.TimeToLaunch(days=10, seconds=864000, launched=True, launched_at=MIDNIGHT, colour="green"),
        open_tickets=0,
    )
    values.update(changes)
    return scoring.Figures(**values)


def test_criteria_all_met():
    criteria = scoring.success_criteria(_figures())
    assert [criterion.name for criterion in criteria] == [
        "attribution_accuracy", "api_latency_p95", "uptime", "satisfaction", "cost_savings",
    ]
    assert all(criterion.met for criterion in criteria)
    assert [criterion.value for criterion in criteria] == [99.5, 40.0, 100.0, 95.0, 40.0]


@pytest.mark.parametrize(
    ("changes", "failed"),
    [
        ({"accuracy": Decimal("98.9999")}, "attribution_accuracy"),
        ({"p95_ms": 100.0}, "api_latency_p95"),
        ({"uptime": Decimal("99.899")}, "uptime"),
        ({"satisfaction": Decimal("89.99")}, "satisfaction"),
        ({"cost_savings": Decimal("29.99")}, "cost_savings"),
        ({"accuracy": None}, "attribution_accuracy"),
        ({"p95_ms": None}, "api_latency_p95"),
    ],
)
def test_criterion_fails_below_target(changes, failed):
    criteria = {criterion.name: criterion for criterion in scoring.success_criteria(_figures(**changes))}
    assert [name for name, criterion in criteria.items() if not criterion.met] == [failed]


def test_criterion_met_at_target():
    figures = _figures(accuracy=Decimal("99"), uptime=Decimal("99.9"), satisfaction=Decimal("90"),
                       cost_savings=Decimal("30"), p95_ms=99.999)
    assert all(criterion.met for criterion in scoring.success_criteria(figures))


def test_missing_figure_says_so():
    accuracy = scoring.success_criteria(_figures(accuracy=None, accuracy_source="no run yet"))[0]
    assert accuracy.value is None
    assert accuracy.judged_on == "no figure yet: no run yet"


def test_health_weights_add_to_hundred():
    assert sum(scoring.HEALTH_WEIGHTS.values()) == 100


def test_health_perfect_and_worst():
    assert scoring.health_score(scoring.health_components(_figures(accuracy=Decimal("100"), satisfaction=Decimal("100")))) == 100
    worst = _figures(
        satisfaction=Decimal("0"), accuracy=Decimal("80"), p95_ms=250.0, cost_savings=Decimal("-10"), open_tickets=7,
        launch=scoring.TimeToLaunch(days=30, seconds=30 * 86400, launched=False, launched_at=None, colour="red"),
    )
    assert scoring.health_score(scoring.health_components(worst)) == 0


def test_health_components_linear():
    components = scoring.health_components(_figures(
        satisfaction=Decimal("70"), accuracy=Decimal("94.5"), p95_ms=125.0, cost_savings=Decimal("15"), open_tickets=1,
        launch=scoring.TimeToLaunch(days=16, seconds=16 * 86400, launched=False, launched_at=None, colour="yellow"),
    ))
    assert components == pytest.approx({
        "satisfaction": 0.7, "attribution_accuracy": 0.5, "api_latency": 0.75,
        "time_to_launch": 0.5, "support_tickets": 0.8, "cost_savings": 0.5,
    })
    assert scoring.health_score(components) == pytest.approx(30 * 0.7 + 20 * 0.5 + 15 * 0.75 + 15 * 0.5 + 10 * 0.8 + 10 * 0.5, abs=0.05)


def test_health_missing_component_counts_half():
    components = scoring.health_components(_figures(satisfaction=None, accuracy=Decimal("100")))
    assert components["satisfaction"] is None
    assert scoring.health_score(components) == 85.0
