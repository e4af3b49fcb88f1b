"""The campaign shape: users per tick, and when it opens the judged window."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from locust.argument_parser import get_empty_argument_parser
from locust.stats import RequestStats

from loadtest.recorder import CampaignRecorder, EventTally
from loadtest.settings import Settings, add_arguments
from loadtest.shape import CampaignShapeBase, drain_seconds
from loadtest.state import STATE
from loadtest.users import SETUP_FAILURE_ENTRY


class Ingestion:
    pass


class Tracker:
    pass


class Shape(CampaignShapeBase):
    ingestion_user = Ingestion
    tracker_user = Tracker


def _settings(arguments: list[str]) -> Settings:
    parser = get_empty_argument_parser(add_help=False, default_config_files=[])
    add_arguments(parser)
    return Settings.from_options(parser.parse_args(arguments))


@pytest.fixture
def shape(monkeypatch):
    """A smoke campaign's shape with one tracker user, on a runner that has started no user yet."""
    settings = _settings(["--campaign", "smoke", "--tracker-users", "1"])
    recorder = CampaignRecorder(RequestStats(), EventTally())
    recorder.run_started()
    monkeypatch.setattr(STATE, "settings", settings)
    monkeypatch.setattr(STATE, "recorder", recorder)
    shape = Shape()
    shape.runner = SimpleNamespace(
        user_count=0, state="running", environment=SimpleNamespace(user_classes=[Ingestion, Tracker]),
        stats=RequestStats(),
    )
    shape.elapsed = 0.0
    shape.get_run_time = lambda: shape.elapsed
    return shape


def test_window_waits_for_users_and_events(shape):
    users, spawn_rate, classes = shape.tick()

    assert (users, spawn_rate, classes) == (2, 2, [Ingestion, Tracker])
    assert STATE.recorder.window_start is None

    shape.runner.user_count = 1
    shape.elapsed = 1.0
    shape.tick()
    assert STATE.recorder.window_start is None

    shape.runner.user_count = 2
    shape.elapsed = 2.0
    shape.tick()
    assert STATE.recorder.window_start is None

    STATE.recorder.tally.add(1000, 0, 0)
    shape.elapsed = 3.0
    shape.tick()
    assert STATE.recorder.window_start is not None


def test_open_window_stays_open_when_users_drop(shape):
    shape.runner.user_count = 2
    STATE.recorder.tally.add(1000, 0, 0)
    shape.tick()
    opened = STATE.recorder.window_start

    shape.runner.user_count = 1
    shape.elapsed = 5.0
    shape.tick()

    assert STATE.recorder.window_start is opened
    assert STATE.recorder.window_end is None


def test_users_drain_after_campaign(shape):
    shape.runner.user_count = 2
    STATE.recorder.tally.add(1000, 0, 0)
    shape.tick()
    drain = drain_seconds(STATE.settings)

    shape.elapsed = 30.0
    during_drain = shape.tick()
    shape.elapsed = 30.0 + drain

    assert drain == pytest.approx(1.5 / 1.02)
    assert during_drain == (2, 2, [Ingestion, Tracker])
    assert STATE.recorder.window_end is not None
    assert shape.tick() is None


def test_worker_setup_failure_ends_run(shape):
    assert shape.tick() is not None

    name, request_type = SETUP_FAILURE_ENTRY
    shape.runner.stats.log_request(request_type, name, 0, 0)
    shape.runner.stats.log_error(request_type, name, "HTTP 401")
    shape.elapsed = 1.0

    assert shape.tick() is None
