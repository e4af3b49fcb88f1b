"""The ``replay talkingdata`` options, the admin token and the errors that stop it before sending."""

from __future__ import annotations

import argparse

import pytest

from ingestion import replay
from ingestion.replay import add_arguments, resolve_admin_token, run

HEADER = "ip,app,device,os,channel,click_time,attributed_time,is_attributed"


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="unmogrowp replay")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults():
    args = parse_args("talkingdata", "clicks.csv")

    assert args.replay_format == "talkingdata"
    assert str(args.csv) == "clicks.csv"
    assert args.url == "http://127.0.0.1:8081"
    assert args.json is False
    assert args.batch_size == 5000
    assert args.admin_token_file is None


def test_options():
    args = parse_args(
        "talkingdata", "clicks.csv", "--url", "http://127.0.0.1:9999", "--json", "--batch-size", "1000",
        "--admin-token-file", "token.txt",
    )

    assert args.url == "http://127.0.0.1:9999"
    assert args.json is True
    assert args.batch_size == 1000
    assert str(args.admin_token_file) == "token.txt"


@pytest.mark.parametrize("size", ["0", "10001", "many"])
def test_batch_size_out_of_range(size, capsys):
    with pytest.raises(SystemExit):
        parse_args("talkingdata", "clicks.csv", "--batch-size", size)

    assert "--batch-size" in capsys.readouterr().err


def test_format_required(capsys):
    with pytest.raises(SystemExit):
        parse_args()

    assert "FORMAT" in capsys.readouterr().err


def test_token_from_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNMOGROWP_ADMIN_TOKEN", "from-the-environment-123")

    assert resolve_admin_token(None) == "from-the-environment-123"


def test_token_file_option_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("UNMOGROWP_ADMIN_TOKEN", "from-the-environment-123")
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file-4567890\n")

    assert resolve_admin_token(token_file) == "from-the-file-4567890"


def test_token_from_data_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UNMOGROWP_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("UNMOGROWP_DATA_DIR", raising=False)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "admin-token").write_text("written-by-the-service\n")

    assert resolve_admin_token(None) == "written-by-the-service"


def test_missing_token(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UNMOGROWP_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("UNMOGROWP_DATA_DIR", raising=False)
    (tmp_path / "clicks.csv").write_text(HEADER + "\n")

    status = run(parse_args("talkingdata", "clicks.csv"))

    assert status == replay.EXIT_INPUT_ERROR
    error = capsys.readouterr().err
    assert "no admin token" in error
    assert "UNMOGROWP_ADMIN_TOKEN" in error
    assert "--admin-token-file" in error


def test_bad_csv_names_line_and_column(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("UNMOGROWP_ADMIN_TOKEN", "from-the-environment-123")
    path = tmp_path / "clicks.csv"
    path.write_text(HEADER + "\n1,2,3,4,5,2017-11-07 09:30:38,,0\n1,2,3,4,5,07/11/2017 09:30,,0\n")

    status = run(parse_args("talkingdata", str(path)))

    assert status == replay.EXIT_INPUT_ERROR
    error = capsys.readouterr().err
    assert "line 3, column click_time" in error
    assert "YYYY-MM-DD HH:MM:SS" in error
    assert "from-the-environment-123" not in error


def test_missing_file(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("UNMOGROWP_ADMIN_TOKEN", "from-the-environment-123")

    status = run(parse_args("talkingdata", str(tmp_path / "absent.csv")))

    assert status == replay.EXIT_INPUT_ERROR
    assert "absent.csv" in capsys.readouterr().err


def test_invalid_url(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("UNMOGROWP_ADMIN_TOKEN", "from-the-environment-123")

    status = run(parse_args("talkingdata", "clicks.csv", "--url", "127.0.0.1:8081"))

    assert status == replay.EXIT_INPUT_ERROR
    assert "invalid --url" in capsys.readouterr().err
