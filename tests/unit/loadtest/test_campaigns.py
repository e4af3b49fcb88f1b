"""Campaign stages: the load level and judged flag over time, and users per level."""

from __future__ import annotations

import pytest

from loadtest.campaigns import CAMPAIGNS, Campaign, Stage, users_for_level


def test_every_campaign_has_judged_stage():
    assert set(CAMPAIGNS) == {"smoke", "ramp", "steady", "spike", "soak"}
    for campaign in CAMPAIGNS.values():
        assert any(stage.judged for stage in campaign.stages), campaign.name


def test_smoke_uses_tiny_target():
    assert CAMPAIGNS["smoke"].default_target_events_per_second <= 10_000
    for name in ("ramp", "steady", "spike", "soak"):
        assert CAMPAIGNS[name].default_target_events_per_second == 1_000_000


@pytest.mark.parametrize(
    ("elapsed", "level", "judged"),
    [(0, 0.0, False), (40, 0.5, False), (79.9, 0.999, False), (80, 1.0, True), (99, 1.0, True)],
)
def test_ramp_positions(elapsed, level, judged):
    position = CAMPAIGNS["ramp"].position(elapsed, 100)

    assert position[0] == pytest.approx(level, abs=1e-3)
    assert position[1] is judged


@pytest.mark.parametrize(
    ("elapsed", "level", "judged"),
    [(10, 0.25, False), (30, 1.0, True), (59, 1.0, True), (60, 0.25, False), (99, 0.25, False)],
)
def test_spike_positions(elapsed, level, judged):
    assert CAMPAIGNS["spike"].position(elapsed, 100) == (pytest.approx(level), judged)


def test_campaign_ends_after_duration():
    for campaign in CAMPAIGNS.values():
        assert campaign.position(100, 100) is None
        assert campaign.position(99.99, 100) is not None


def test_stage_shares_must_add_up():
    with pytest.raises(ValueError, match="add up to 1"):
        Campaign("broken", "", 10, 1, (Stage(0.5, 1, 1, True),))


@pytest.mark.parametrize(
    ("level", "peak", "users"),
    [(0.0, 100, 0), (-1, 100, 0), (0.001, 100, 1), (0.25, 100, 25), (0.251, 100, 26), (1.0, 100, 100), (1.0, 1, 1)],
)
def test_users_for_level(level, peak, users):
    assert users_for_level(level, peak) == users
