"""UnMoGrowP load test: `locust -f loadtest/` (or `-f loadtest/locustfile.py`).

This is the only file of `loadtest/` that defines concrete users and a shape and registers event
listeners. Locust imports every `.py` file of the folder, and the other modules are imported
again as `loadtest.*`. So they define only abstract classes and functions, because a listener
registered there would run twice.

Examples (the ingestion service on 127.0.0.1:8081, its admin token in UNMOGROWP_ADMIN_TOKEN):

    locust -f loadtest/ --headless --host http://127.0.0.1:8081 -u 4 -r 4 -t 20s
    locust -f loadtest/ --headless --host http://127.0.0.1:8081 --campaign smoke
    locust -f loadtest/ --headless --host http://127.0.0.1:8081 --campaign steady \\
        --target-events-per-second 800000 --processes -1

A campaign ends with a verdict on the console; the exit code is 0 when it passes and 3 when
it fails. docs/loadtesting.md describes the options, campaigns and distributed runs.
"""

from __future__ import annotations

import json
import logging
import socket
import sys

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from exporters.loadtest import LoadTestExporter
from loadtest.processes import exit_before_run
from loadtest.recorder import REPORT_KEY, WORKER_REPORT_LAG_S, CampaignRecorder, settle_seconds
from loadtest.settings import Settings, SettingsError, add_arguments
from loadtest.shape import CampaignShapeBase
from loadtest.state import STATE
from loadtest.users import IngestionUserBase, TrackerUserBase
from loadtest.verdict import Criteria, judge

logger = logging.getLogger("loadtest")


class IngestionUser(IngestionUserBase):
    weight = 1


class TrackerUser(TrackerUserBase):
    fixed_count = 1


class CampaignShape(CampaignShapeBase):
    ingestion_user = IngestionUser
    tracker_user = TrackerUser


class _Source:
    """The figures the exporter reads from this process's state."""

    def events_per_second(self) -> float:
        return STATE.recorder.events_per_second() if STATE.recorder is not None else 0.0

    def events_by_outcome(self) -> dict[str, int]:
        tally = STATE.tally
        return {"accepted": tally.accepted, "duplicate": tally.duplicates, "rejected": tally.rejected}

    def target_events_per_second(self) -> float | None:
        return STATE.settings.target_events_per_second if STATE.settings is not None else None

    def verdict_values(self) -> dict[str, int] | None:
        if STATE.verdict is not None:
            return STATE.verdict.values()
        if STATE.recorder is None or STATE.recorder.measurement() is None:
            return None
        return _judge().values()


_exporter: LoadTestExporter | None = None


def _read_settings(environment) -> Settings:
    try:
        return Settings.from_options(environment.parsed_options)
    except SettingsError as error:
        logger.error("invalid load-test option: %s", error)
        sys.exit(2)


def _criteria() -> Criteria:
    settings = STATE.settings
    return Criteria(settings.target_events_per_second, settings.max_p95_ms, settings.min_success_ratio)


def _judge(complete: bool = False):
    """Judge the window: as far as counted while the run goes on, whole once it is `complete`."""
    return judge(STATE.settings.campaign, STATE.recorder.measurement(complete), _criteria())


@events.init_command_line_parser.add_listener
def _on_parser(parser, **_kwargs) -> None:
    add_arguments(parser)


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    global _exporter
    if environment.parsed_options is None:
        return  # a library user's Environment without command-line options
    STATE.settings = settings = _read_settings(environment)
    TrackerUser.fixed_count = settings.tracker_users
    if isinstance(environment.runner, WorkerRunner):
        return

    if (problem := settings.verdict_file_problem()) is not None:
        logger.error("invalid load-test option: %s", problem)
        exit_before_run(environment.parsed_options)
    options = environment.parsed_options
    users = getattr(options, "num_users", None)
    if users is None and getattr(options, "headless", False):
        # Locust sets its headless default of one user only after this event.
        users = 1
    if not settings.campaign and settings.tracker_users and users is not None and users <= settings.tracker_users:
        logger.warning(
            "-u %d leaves no ingestion user, since %d tracker user(s) come first; raise -u above %d "
            "or pass --tracker-users 0", users, settings.tracker_users, settings.tracker_users,
        )
    settle = settle_seconds(settings.send_period_s(), isinstance(environment.runner, MasterRunner))
    STATE.recorder = CampaignRecorder(environment.runner.stats, STATE.tally, settle_s=settle)
    if settings.exporter_port:
        _exporter = LoadTestExporter(environment, _Source())
        try:
            _exporter.start(settings.exporter_host, settings.exporter_port)
        except OSError as error:
            fix = ("check --exporter-host" if isinstance(error, socket.gaierror)
                   else "free the port or pass --exporter-port")
            logger.error(
                "the load-test exporter cannot listen on %s:%d (%s); %s",
                settings.exporter_host, settings.exporter_port, error, fix,
            )
            exit_before_run(environment.parsed_options)


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    # Workers receive the master's options with their first spawn message, so read them again.
    STATE.settings = _read_settings(environment)
    TrackerUser.fixed_count = STATE.settings.tracker_users
    STATE.start_run()


@events.report_to_master.add_listener
def _on_report_to_master(data, **_kwargs) -> None:
    data[REPORT_KEY] = STATE.tally.drain()


@events.worker_report.add_listener
def _on_worker_report(data, **_kwargs) -> None:
    counts = data.get(REPORT_KEY)
    if counts:
        STATE.tally.merge(counts)


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    if STATE.recorder is None:
        return
    STATE.recorder.close_with_run()
    if environment.parsed_options.headless:
        return  # the verdict follows in `quitting`, after the workers' final reports
    delay = WORKER_REPORT_LAG_S if isinstance(environment.runner, MasterRunner) else 0
    gevent.spawn_later(delay, _finish_run)


def _finish_run() -> None:
    if STATE.recorder is None or not STATE.run_started or STATE.verdict is not None:
        return
    STATE.verdict = verdict = _judge(complete=True)
    print(verdict.format(), flush=True)
    if STATE.settings.verdict_file:
        try:
            with open(STATE.settings.verdict_file, "w", encoding="utf-8") as file:
                json.dump(verdict.to_json(), file, indent=2)
        except OSError as error:
            logger.error("cannot write the verdict to %s: %s", STATE.settings.verdict_file, error)
    if verdict.passed:
        logger.info("load test verdict: pass")
    else:
        logger.error("load test verdict: FAIL (%s)", ", ".join(
            result.name for result in verdict.results if result.passed is False
        ))


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner) or STATE.recorder is None:
        return
    STATE.recorder.close_with_run()
    _finish_run()
    if STATE.verdict is not None:
        if not STATE.verdict.passed:
            environment.process_exit_code = STATE.verdict.exit_code
        elif not environment.runner.exceptions:
            # The verdict already weighed failed requests against the success criterion, so a
            # few failures must not turn a pass into Locust's own exit code 1.
            environment.process_exit_code = 0
    if _exporter is not None:
        linger = STATE.settings.exporter_linger_s
        if linger > 0:
            logger.info("the exporter keeps serving the final figures for %.0f s", linger)
            gevent.sleep(linger)
        _exporter.stop()
