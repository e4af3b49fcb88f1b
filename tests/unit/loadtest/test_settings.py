"""Load-test options: defaults, environment variables and validation messages."""

from __future__ import annotations

import pytest
from locust.argument_parser import get_empty_argument_parser

from loadtest.settings import Settings, SettingsError, add_arguments


def _parse(arguments: list[str]) -> Settings:
    parser = get_empty_argument_parser(add_help=False, default_config_files=[])
    add_arguments(parser)
    return Settings.from_options(parser.parse_args(arguments))


def test_defaults_without_campaign():
    settings = _parse([])

    assert settings.campaign == ""
    assert settings.target_events_per_second is None
    assert settings.batch_size == 1000
    assert settings.user_batch_rate == 10
    assert settings.exporter_port == 9646
    assert settings.exporter_host == "127.0.0.1"
    assert settings.tracker_host == "http://127.0.0.1:8084"
    assert settings.tracker_users == 1
    assert settings.max_p95_ms == 100
    assert settings.min_success_ratio == pytest.approx(0.999)


def test_campaign_defaults_its_target():
    assert _parse(["--campaign", "smoke"]).target_events_per_second == 1000
    assert _parse(["--campaign", "steady"]).target_events_per_second == 1_000_000
    assert _parse(["--campaign", "steady", "--target-events-per-second", "5e5"]).target_events_per_second == 500_000


def test_campaign_from_environment(monkeypatch):
    monkeypatch.setenv("UNMOGROWP_LOADTEST_CAMPAIGN", "spike")
    monkeypatch.setenv("UNMOGROWP_LOADTEST_EXPORTER_PORT", "19999")

    settings = _parse([])

    assert settings.campaign == "spike"
    assert settings.exporter_port == 19999


def test_durations_parsed():
    settings = _parse(["--campaign", "soak", "--campaign-duration", "1h30m", "--exporter-linger", "30s"])

    assert settings.campaign_duration_s == 5400
    assert settings.exporter_linger_s == 30


def test_peak_users_derived_from_target():
    assert _parse(["--campaign", "steady"]).peak_ingestion_users() == 100
    assert _parse(["--campaign", "steady", "--user-batch-rate", "40"]).peak_ingestion_users() == 25
    assert _parse(["--campaign", "smoke"]).peak_ingestion_users() == 1
    assert _parse(["--campaign", "steady", "--peak-users", "7"]).peak_ingestion_users() == 7


def test_empty_tracker_host_drops_tracker_users():
    settings = _parse(["--tracker-host", ""])

    assert settings.tracker_host == ""
    assert settings.tracker_users == 0


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        (["--target-events-per-second", "0"], "--target-events-per-second"),
        (["--campaign", "smoke", "--campaign-duration", "soon"], "--campaign-duration"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "10001"], "--batch-size"),
        (["--user-batch-rate", "-1"], "--user-batch-rate"),
        (["--campaign", "steady", "--user-batch-rate", "0"], "--peak-users"),
        (["--campaign", "steady", "--target-events-per-second", "1e9"], "--target-events-per-second"),
        (["--templates-per-app", "0"], "--templates-per-app"),
        (["--tracker-users", "-1"], "--tracker-users"),
        (["--max-p95-ms", "0"], "--max-p95-ms"),
        (["--min-success-percent", "100"], "--min-success-percent"),
        (["--exporter-port", "70000"], "--exporter-port"),
        (["--tracker-host", "127.0.0.1:8084"], "--tracker-host"),
    ],
)
def test_invalid_option_named(arguments, option):
    with pytest.raises(SettingsError) as raised:
        _parse(arguments)

    assert str(raised.value).startswith(option)


def test_verdict_file_folder_checked():
    assert _parse(["--verdict-file", "/nonexistent-folder/verdict.json"]).verdict_file_problem().startswith(
        "--verdict-file: the folder of '/nonexistent-folder/verdict.json' does not exist"
    )
    assert _parse(["--verdict-file", "verdict.json"]).verdict_file_problem() is None


def test_unknown_campaign_rejected_by_parser():
    with pytest.raises(SystemExit):
        _parse(["--campaign", "marathon"])


def test_option_listing_names_environment(capsys):
    from loadtest.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    text = capsys.readouterr().out

    assert exited.value.code == 0
    assert "--campaign {smoke,ramp,steady,spike,soak}" in text
    assert "UNMOGROWP_LOADTEST_CAMPAIGN" in text
    assert "UNMOGROWP_LOADTEST_EXPORTER_PORT" in text
