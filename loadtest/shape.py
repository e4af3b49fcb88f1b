"""The load shape that plays a campaign, or follows --users/--spawn-rate/--run-time without one."""

from __future__ import annotations

import logging
import math

from locust import LoadTestShape
from locust.runners import STATE_INIT

from loadtest.campaigns import CAMPAIGNS, users_for_level
from loadtest.state import STATE
from loadtest.users import SETUP_FAILURE_ENTRY

logger = logging.getLogger("loadtest")


# Send periods that users go on sending, unjudged, after a campaign or --run-time ends, and the
# seconds they go on at least: the shape's ticks come once per second.
DRAIN_PERIODS = 1.5
MIN_DRAIN_S = 1.0


def drain_seconds(settings) -> float:
    """Return how long users go on sending after the judged window closes at the end of a run.

    A batch's events count over the time since its user's previous response (see recorder), so
    the window's last moments are counted only once each user's next batch has come back.
    """
    return max(MIN_DRAIN_S, DRAIN_PERIODS * settings.send_period_s())


class CampaignShapeBase(LoadTestShape):
    """A shape whose tick (once per second, in the master) sets the users for the campaign's level.

    Each tick also marks in the recorder whether the current stage is judged. When the campaign
    ends, the users go on at its last level, unjudged, for ``drain_seconds``. The concrete class
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
        with_tracker = settings.tracker_users > 0
        if self._setup_failed():
            logger.error("a worker could not set up its ingestion apps (see its log); ending the run")
            return None

        if not settings.campaign:
            options = self.runner.environment.parsed_options
            run_time = getattr(options, "run_time", None)
            judged = True
            if run_time and elapsed >= run_time:
                if elapsed >= run_time + drain_seconds(settings):
                    return None
                judged = False
            users = getattr(options, "num_users", None) or 1
            self._mark_judged(judged, users)
            spawn_rate = getattr(options, "spawn_rate", None) or 1
            return users, spawn_rate, self._user_classes(with_tracker)

        campaign = CAMPAIGNS[settings.campaign]
        duration = settings.campaign_duration_s or campaign.default_duration_s
        position = campaign.position(elapsed, duration)
        if position is not None:
            level, judged = position
        elif elapsed < duration + drain_seconds(settings):
            level, judged = campaign.stages[-1].end_level, False
        else:
            return None
        peak = settings.peak_ingestion_users()
        users = users_for_level(level, peak) + settings.tracker_users
        self._mark_judged(judged, users)
        # Reach any level within about a second, so that a spike is a spike. Locust starts the
        # tracker users first, so they count here too.
        spawn_rate = max(1, math.ceil(peak) + settings.tracker_users)
        return users, spawn_rate, self._user_classes(with_tracker)

    def _setup_failed(self) -> bool:
        """Return whether a worker reported that its ingestion users could not register their apps."""
        entry = self.runner.stats.entries.get(SETUP_FAILURE_ENTRY)
        return entry is not None and entry.num_failures > 0

    def _mark_judged(self, judged: bool, users: int) -> None:
        """Tell the recorder whether this tick is judged.

        The window opens only once `users` users run and events have come back, because users
        still starting would count as a shortfall of throughput.
        """
        recorder = STATE.recorder
        if recorder is None:
            return
        if judged and recorder.window_start is None and (self.runner.user_count < users or not recorder.tally.events):
            judged = False
        recorder.set_judged(judged)
