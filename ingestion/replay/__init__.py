"""``unmogrowp replay``: replay public click logs through a running ingestion service.

``unmogrowp replay talkingdata CSV`` sends every row of a TalkingData click log
as a click, and every attributed row also as an install, then reads the
attribution records back and reports how they agree with the file's own
attribution.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from ingestion.replay.client import IngestionClient, IngestionError
from ingestion.replay.report import render_table
from ingestion.replay.runner import replay_click_log
from ingestion.replay.talkingdata import COLUMNS, TalkingDataFormatError, read_click_log
from services.config import ADMIN_TOKEN_ENV, admin_token_path, default_data_dir

DEFAULT_URL = "http://127.0.0.1:8081"
DEFAULT_BATCH_SIZE = 5000
MAX_BATCH_SIZE = 10_000
DEFAULT_TIMEOUT_SECONDS = 60.0

EXIT_OK = 0
EXIT_SERVICE_ERROR = 1
EXIT_INPUT_ERROR = 2

__all__ = ["add_arguments", "run"]


class _AdminTokenError(ValueError):
    pass


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults in the help, except for options whose default is to be absent."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the replay formats, each a subcommand, to the ``replay`` parser."""
    formats = parser.add_subparsers(dest="replay_format", required=True, metavar="FORMAT")
    talkingdata = formats.add_parser(
        "talkingdata",
        help="replay a TalkingData AdTracking click log (CSV)",
        description=(
            "Replay a TalkingData AdTracking click log through a running ingestion service. "
            f"The CSV header must contain {','.join(COLUMNS)}, with times in UTC "
            "(YYYY-MM-DD HH:MM:SS). Each row becomes a click of app talkingdata-<app> from network "
            "channel-<channel>, and each attributed row also an install at attributed_time with the "
            "same IP address and user agent. The events are sent in time order, then the attribution "
            "records are read back and compared with the file's own attribution."
        ),
        epilog=(
            "The whole file is read and checked before anything is sent, and every row is held in "
            "memory so that the events can be sorted by time: about 100 bytes per row plus about "
            "45 bytes per event while sorting, so a file of 10 million rows needs about 1.5 GB. "
            "Exit status: 0 when the replay ran (whatever the agreement), 1 when the service failed "
            "or rejected a request, 2 when the file or an option is invalid."
        ),
        formatter_class=_HelpFormatter,
    )
    talkingdata.add_argument(
        "csv", metavar="CSV", type=Path, help="TalkingData CSV file; a name ending in .gz is read as gzip"
    )
    talkingdata.add_argument("--url", default=DEFAULT_URL, help="base URL of the ingestion service")
    talkingdata.add_argument(
        "--json", action="store_true", help="print the report as one JSON document instead of a table"
    )
    talkingdata.add_argument(
        "--batch-size",
        type=_batch_size,
        default=DEFAULT_BATCH_SIZE,
        help=f"events per POST /v1/events request, from 1 to {MAX_BATCH_SIZE:,}",
    )
    talkingdata.add_argument(
        "--admin-token-file",
        type=Path,
        default=None,
        help=(
            "file containing the admin token. Without this option the token is read from "
            f"{ADMIN_TOKEN_ENV}, else from admin-token in the service's data folder "
            "($UNMOGROWP_DATA_DIR, default var/)"
        ),
    )
    talkingdata.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds to wait for each response before the request is sent again",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``unmogrowp replay <format>`` and return the exit status."""
    url = args.url.rstrip("/")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        return _fail(f"invalid --url {args.url!r}: expected http://HOST:PORT", EXIT_INPUT_ERROR)
    try:
        token = resolve_admin_token(args.admin_token_file)
    except _AdminTokenError as error:
        return _fail(str(error), EXIT_INPUT_ERROR)

    try:
        log = read_click_log(args.csv)
    except TalkingDataFormatError as error:
        return _fail(str(error), EXIT_INPUT_ERROR)
    except OSError as error:
        return _fail(f"cannot read {args.csv}: {error.strerror or error}", EXIT_INPUT_ERROR)
    _progress(f"read {len(log):,} rows ({log.attributed_row_count:,} attributed) from {args.csv}")

    try:
        with IngestionClient(url, token, timeout=args.timeout) as client:
            report = replay_click_log(log, client, batch_size=args.batch_size, progress=_progress)
    except IngestionError as error:
        return _fail(str(error), EXIT_SERVICE_ERROR)

    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_table(report) + "\n")
    return EXIT_OK


def resolve_admin_token(token_file: Path | None) -> str:
    """Return the admin token from ``token_file``, else the environment, else the data folder's file."""
    if token_file is None:
        from_env = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
        if from_env:
            return from_env
        token_file = admin_token_path(default_data_dir())
        if not token_file.exists():
            raise _AdminTokenError(
                f"no admin token: set {ADMIN_TOKEN_ENV}, or pass --admin-token-file with the file the "
                f"service wrote ({token_file} was not found)"
            )
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise _AdminTokenError(
            f"cannot read the admin token file {token_file}: {error.strerror or error}"
        ) from None
    if not token:
        raise _AdminTokenError(f"the admin token file {token_file} is empty")
    return token


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_BATCH_SIZE:,} events, got {value:,}")
    return value


def _progress(message: str) -> None:
    print(f"replay: {message}", file=sys.stderr, flush=True)


def _fail(message: str, status: int) -> int:
    print(f"replay: error: {message}", file=sys.stderr, flush=True)
    return status
