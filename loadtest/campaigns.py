"""Campaigns: load levels over time, as shares of a target, and the stages that are judged.

A level of 1.0 is the throughput target. The campaign shape turns a level into a number of
ingestion users (level x peak users, rounded up), and the verdict is computed over the judged
stages only, so warm-up and recovery never count against the target.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Stage:
    """A part of a campaign: its share of the duration and a level that moves linearly."""

    share: float
    start_level: float
    end_level: float
    judged: bool


@dataclasses.dataclass(frozen=True)
class Campaign:
    name: str
    description: str
    default_duration_s: float
    default_target_events_per_second: float
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        total = sum(stage.share for stage in self.stages)
        if not math.isclose(total, 1.0):
            raise ValueError(f"campaign {self.name}: stage shares must add up to 1, got {total}")

    def position(self, elapsed_s: float, duration_s: float) -> tuple[float, bool] | None:
        """Return (level, judged) at `elapsed_s` into a run of `duration_s`, or None once it is over."""
        if elapsed_s >= duration_s:
            return None
        stage_start = 0.0
        for stage in self.stages:
            stage_length = stage.share * duration_s
            if elapsed_s < stage_start + stage_length:
                progress = (elapsed_s - stage_start) / stage_length
                return stage.start_level + (stage.end_level - stage.start_level) * progress, stage.judged
            stage_start += stage_length
        return None


CAMPAIGNS: dict[str, Campaign] = {
    campaign.name: campaign
    for campaign in (
        Campaign(
            "smoke",
            "a small target held for a short time, to check that every part responds",
            default_duration_s=30,
            default_target_events_per_second=1000,
            stages=(Stage(1.0, 1.0, 1.0, judged=True),),
        ),
        Campaign(
            "ramp",
            "a linear ramp from no load to the target over 80 % of the run, then the target held",
            default_duration_s=600,
            default_target_events_per_second=1_000_000,
            stages=(Stage(0.8, 0.0, 1.0, judged=False), Stage(0.2, 1.0, 1.0, judged=True)),
        ),
        Campaign(
            "steady",
            "the target held after a warm-up of 10 % of the run",
            default_duration_s=600,
            default_target_events_per_second=1_000_000,
            stages=(Stage(0.1, 0.0, 1.0, judged=False), Stage(0.9, 1.0, 1.0, judged=True)),
        ),
        Campaign(
            "spike",
            "25 % of the target, then the full target at once for 30 % of the run, then 25 % again",
            default_duration_s=300,
            default_target_events_per_second=1_000_000,
            stages=(
                Stage(0.3, 0.25, 0.25, judged=False),
                Stage(0.3, 1.0, 1.0, judged=True),
                Stage(0.4, 0.25, 0.25, judged=False),
            ),
        ),
        Campaign(
            "soak",
            "the target held for a long time after a warm-up of 5 % of the run",
            default_duration_s=7200,
            default_target_events_per_second=1_000_000,
            stages=(Stage(0.05, 0.0, 1.0, judged=False), Stage(0.95, 1.0, 1.0, judged=True)),
        ),
    )
}


def users_for_level(level: float, peak_users: int) -> int:
    """Return the ingestion users for a load level: level x peak, rounded up, never below 0."""
    if level <= 0:
        return 0
    return math.ceil(level * peak_users - 1e-9)
