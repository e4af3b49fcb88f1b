"""The load shape that plays a campaign, or follows --users/--spawn-rate/--run-time without one."""

from __future__ import annotations

import logging
import math

from locust import LoadTestShape
from locust.runners import STATE_INIT

from loadtest.campaigns import CAMPAIGNS, users_for_level
from loadtest.state import STATE

logger = logging.getLogger("loadtest")


class CampaignShapeBase(LoadTestShape):
    """A shape whose tick (once per second, in the master) sets the users for the campaign's level.

    Each tick also marks in the recorder whether the current stage is judged. The concrete class
    lives in `locustfile.py`, and its `ingestion_user` and `tracker_user` name the classes to run.
    """

    abstract = True
    # Without a campaign the run follows --users, --spawn-rate and --run-time.
    use_common_options = True
    ingestion_user: type | None = None
    tracker_user: type | None = None

    def _user_classes(self, with_tracker: bool) -> list[type]:
        selected = self.runner.environment.user_classes
        classes = [self.ingestion_user]
        if with_tracker:
            classes.append(self.tracker_user)
        return [cls for cls in classes if cls in selected]

    def tick(self):
        settings = STATE.settings
        recorder = STATE.recorder
        if settings is None:
            return None
        if recorder is not None and self.runner.state == STATE_INIT:
            # The first tick of a run comes before Locust starts the run and clears its stats.
            recorder.reset()
        elapsed = self.get_run_time()

        if not settings.campaign:
            options = self.runner.environment.parsed_options
            run_time = getattr(options, "run_time", None)
            if run_time and elapsed >= run_time:
                return None
            if recorder is not None:
                recorder.set_judged(True)
            users = getattr(options, "num_users", None) or 1
            spawn_rate = getattr(options, "spawn_rate", None) or 1
            return users, spawn_rate, self._user_classes(with_tracker=settings.tracker_users > 0)

        campaign = CAMPAIGNS[settings.campaign]
        duration = settings.campaign_duration_s or campaign.default_duration_s
        position = campaign.position(elapsed, duration)
        if position is None:
            return None
        level, judged = position
        if recorder is not None:
            recorder.set_judged(judged)
        peak = settings.peak_ingestion_users()
        ingestion_users = users_for_level(level, peak)
        users = ingestion_users + settings.tracker_users
        # Reach any level within about a second, so that a spike is a spike.
        spawn_rate = max(1, math.ceil(peak))
        return users, spawn_rate, self._user_classes(with_tracker=settings.tracker_users > 0)
