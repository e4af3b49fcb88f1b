"""The ingestion user's send schedule, and how a campaign spreads its target over users."""

from __future__ import annotations

import random

import pytest
from locust.argument_parser import get_empty_argument_parser

from loadtest.pacing import SchedulePacer
from loadtest.settings import PACING_HEADROOM, Settings, add_arguments


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sends(pacer: SchedulePacer, clock: FakeClock, request_seconds: list[float]) -> list[float]:
    """Play a user's loop: send, wait for the response, then wait as long as the pacer returns."""
    sent = []
    for seconds in request_seconds:
        sent.append(clock.now)
        clock.now += seconds
        clock.now += pacer.wait()
    return sent


def test_pacer_keeps_rate_when_fast():
    clock = FakeClock()
    pacer = SchedulePacer(10, clock=clock, rng=random.Random(1))

    sent = _sends(pacer, clock, [0.01] * 50)

    gaps = [later - earlier for earlier, later in zip(sent[1:], sent[2:])]
    assert gaps == pytest.approx([0.1] * len(gaps))


def test_pacer_makes_up_slow_response():
    clock = FakeClock()
    pacer = SchedulePacer(10, clock=clock, rng=random.Random(1))

    # One response takes 0.35 s. A fixed grid puts the missed sends right after it.
    sent = _sends(pacer, clock, [0.01] * 10 + [0.35] + [0.01] * 29)

    span = sent[-1] - sent[1]
    assert span == pytest.approx(0.1 * (len(sent) - 2))


def test_constant_waits_lose_slow_response():
    """The behaviour the pacer replaces: period minus request time, never below zero."""
    clock = FakeClock()
    sent = []
    for seconds in [0.01] * 10 + [0.35] + [0.01] * 29:
        sent.append(clock.now)
        clock.now += seconds
        clock.now += max(0.0, 0.1 - seconds)

    assert sent[-1] - sent[1] > 0.1 * (len(sent) - 2) + 0.2


def test_pacer_restarts_grid_after_stall():
    clock = FakeClock()
    pacer = SchedulePacer(10, clock=clock, max_lag_s=1.0, rng=random.Random(1))

    sent = _sends(pacer, clock, [0.01] * 5 + [5.0] + [0.01] * 5)

    after_stall = sent[6:]
    # No burst of the 50 missed sends: one at once, then the regular period.
    assert after_stall[1] - after_stall[0] == pytest.approx(0.1, abs=1e-9)
    assert all(b - a == pytest.approx(0.1) for a, b in zip(after_stall[1:], after_stall[2:]))


def test_pacer_phases_differ_between_users():
    clock = FakeClock()
    waits = {round(SchedulePacer(10, clock=clock, rng=random.Random(seed)).wait(), 6) for seed in range(20)}

    assert len(waits) > 10
    assert all(0 <= wait <= 0.1 for wait in waits)


def test_pacer_rejects_zero_rate():
    with pytest.raises(ValueError, match="rate must be positive"):
        SchedulePacer(0)


def _parse(arguments: list[str]) -> Settings:
    parser = get_empty_argument_parser(add_help=False, default_config_files=[])
    add_arguments(parser)
    return Settings.from_options(parser.parse_args(arguments))


def test_campaign_spreads_target_over_users():
    settings = _parse(["--campaign", "steady", "--target-events-per-second", "82560", "--user-batch-rate", "10"])

    users = settings.peak_ingestion_users()
    offered = settings.paced_batch_rate() * users * settings.batch_size

    assert users == 9
    assert offered == pytest.approx(82560 * PACING_HEADROOM)
    assert settings.paced_batch_rate() < 10


def test_user_rate_without_campaign():
    assert _parse(["--user-batch-rate", "7"]).paced_batch_rate() == 7
    assert _parse(["--user-batch-rate", "0"]).paced_batch_rate() == 0
    assert _parse(["--campaign", "steady", "--user-batch-rate", "0", "--peak-users", "4"]).paced_batch_rate() == 0
