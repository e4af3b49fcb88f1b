"""The customers command's shared options may come before or after the subcommand."""

from __future__ import annotations

from services.cli import build_parser


def parse(*argv: str):
    return build_parser("customers").parse_args(["customers", *argv])


def test_url_after_command():
    assert parse("list", "--url", "http://127.0.0.1:1").url == "http://127.0.0.1:1"


def test_url_before_command_kept():
    assert parse("--url", "http://127.0.0.1:2", "list").url == "http://127.0.0.1:2"


def test_options_after_nested_command():
    args = parse("ticket", "list", "c-1", "--url", "http://127.0.0.1:3", "--json", "--timeout", "5")
    assert args.url == "http://127.0.0.1:3"
    assert args.json is True
    assert args.timeout == 5.0


def test_json_defaults_off():
    assert parse("list").json is False
