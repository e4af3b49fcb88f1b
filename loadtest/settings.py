"""Command-line options of the load test and their validated form.

Locust adds these options to its own parser (`add_arguments`), forwards them from the master to
its workers, and `Settings.from_options` checks them once per process. This module does not
import Locust, because importing it monkey-patches the whole process with gevent, and the
benchmark uses these names in a plain asyncio process.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any

from loadtest.campaigns import CAMPAIGNS
from loadtest.generator import BATCH_FORMATS

ADMIN_TOKEN_ENV = "UNMOGROWP_ADMIN_TOKEN"
INGEST_KEY_ENV = "UNMOGROWP_INGEST_KEY"
APP_ID_ENV = "UNMOGROWP_LOADTEST_APP_ID"
PLATFORM_ENV = "UNMOGROWP_LOADTEST_PLATFORM"

DEFAULT_EXPORTER_PORT = 9646
# Campaigns derive their user count from the target; above this the target is most likely a typo.
MAX_DERIVED_USERS = 10_000
# A campaign offers this much more than its target. A run that keeps up then measures at least
# the target, even with a few batches still in flight when the judged window closes.
PACING_HEADROOM = 1.02


class SettingsError(ValueError):
    """An option has an invalid value; the message names the option and the fix."""


def add_arguments(parser: Any) -> None:
    """Add the load-test options to Locust's argument parser."""
    group = parser.add_argument_group("UnMoGrowP load test")
    group.add_argument(
        "--campaign",
        choices=["", *CAMPAIGNS],
        # The empty choice means no campaign. Listing it would print "{,smoke,...}".
        metavar="{" + ",".join(CAMPAIGNS) + "}",
        default="",
        env_var="UNMOGROWP_LOADTEST_CAMPAIGN",
        help="Campaign (load shape) to run: " + ", ".join(CAMPAIGNS) + ". Without one, the run "
        "follows --users, --spawn-rate and --run-time, and throughput is judged only when "
        "--target-events-per-second is given.",
    )
    group.add_argument(
        "--target-events-per-second",
        type=float,
        default=None,
        env_var="UNMOGROWP_LOADTEST_TARGET_EVENTS_PER_SECOND",
        help="Throughput target in events per second that the campaign ramps to and judges. "
        "Default: 1000 for smoke, 1000000 for the other campaigns.",
    )
    group.add_argument(
        "--campaign-duration",
        default="",
        env_var="UNMOGROWP_LOADTEST_CAMPAIGN_DURATION",
        help="Total campaign duration, e.g. 90s, 10m, 2h. Stages keep their shares of it. "
        "Default: the campaign's own (smoke 30s, ramp 10m, steady 10m, spike 5m, soak 2h).",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        env_var="UNMOGROWP_LOADTEST_BATCH_SIZE",
        help="Events per POST /v1/events request (default 1000).",
    )
    group.add_argument(
        "--batch-format",
        choices=list(BATCH_FORMATS),
        default="array",
        env_var="UNMOGROWP_LOADTEST_BATCH_FORMAT",
        help="Body format: a JSON array, a {\"events\": [...]} object or NDJSON (default array).",
    )
    group.add_argument(
        "--user-batch-rate",
        type=float,
        default=10.0,
        env_var="UNMOGROWP_LOADTEST_USER_BATCH_RATE",
        help="Batches per second each ingestion user sends at most; 0 sends the next batch as soon "
        "as the response arrives (default 10). A campaign derives its user count from it and "
        "spreads its target evenly over those users.",
    )
    group.add_argument(
        "--peak-users",
        type=int,
        default=0,
        env_var="UNMOGROWP_LOADTEST_PEAK_USERS",
        help="Ingestion users at the campaign's full level. Default 0: the target divided by "
        "(batch size x user batch rate), rounded up.",
    )
    group.add_argument(
        "--templates-per-app",
        type=int,
        default=4,
        env_var="UNMOGROWP_LOADTEST_TEMPLATES_PER_APP",
        help="Pre-built batches per app and process that the ingestion users cycle through (default 4).",
    )
    group.add_argument(
        "--tracker-host",
        default="http://127.0.0.1:8084",
        env_var="UNMOGROWP_LOADTEST_TRACKER_HOST",
        help="Base URL of the customer-success tracker; an empty value leaves the tracker user out "
        "(default http://127.0.0.1:8084).",
    )
    group.add_argument(
        "--tracker-users",
        type=int,
        default=1,
        env_var="UNMOGROWP_LOADTEST_TRACKER_USERS",
        help="Tracker users in every campaign, on top of the ingestion users (default 1).",
    )
    group.add_argument(
        "--traceparent",
        action="store_true",
        default=False,
        env_var="UNMOGROWP_LOADTEST_TRACEPARENT",
        help="Send a W3C traceparent header with a new sampled trace on every request.",
    )
    group.add_argument(
        "--max-p95-ms",
        type=float,
        default=100.0,
        env_var="UNMOGROWP_LOADTEST_MAX_P95_MS",
        help="Latency criterion: the p95 of POST /v1/events must stay below this, in ms (default 100).",
    )
    group.add_argument(
        "--min-success-percent",
        type=float,
        default=99.9,
        env_var="UNMOGROWP_LOADTEST_MIN_SUCCESS_PERCENT",
        help="Success criterion: the share of successful requests must exceed this, in percent (default 99.9).",
    )
    group.add_argument(
        "--verdict-file",
        default="",
        env_var="UNMOGROWP_LOADTEST_VERDICT_FILE",
        help="Also write the verdict and its measurement as JSON to this file.",
    )
    group.add_argument(
        "--exporter-port",
        type=int,
        default=DEFAULT_EXPORTER_PORT,
        env_var="UNMOGROWP_LOADTEST_EXPORTER_PORT",
        help=f"Port of the Prometheus exporter in the master process; 0 turns it off (default {DEFAULT_EXPORTER_PORT}).",
    )
    group.add_argument(
        "--exporter-host",
        default="127.0.0.1",
        env_var="UNMOGROWP_LOADTEST_EXPORTER_HOST",
        help="Address the exporter listens on (default 127.0.0.1).",
    )
    group.add_argument(
        "--exporter-linger",
        default="0s",
        env_var="UNMOGROWP_LOADTEST_EXPORTER_LINGER",
        help="How long the exporter keeps serving the final verdict after the run, e.g. 30s, so "
        "that Prometheus scrapes it (default 0s).",
    )


# Durations as Locust writes them: 90, 90s, 10m, 1h30m, 2h5m10s.
_DURATION = re.compile(r"^(?:(?P<hours>\d+)h)?(?:(?P<minutes>\d+)m)?(?:(?P<seconds>\d+)s)?$")


def _timespan(option: str, text: str) -> float:
    text = text.strip()
    if text.isdigit():
        return float(text)
    match = _DURATION.match(text)
    if not text or match is None:
        raise SettingsError(f"--{option}: invalid duration {text!r}; use a value like 90s, 10m or 1h30m")
    parts = {name: int(value or 0) for name, value in match.groupdict().items()}
    return float(parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"])


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated load-test options."""

    campaign: str
    target_events_per_second: float | None
    campaign_duration_s: float | None
    batch_size: int
    batch_format: str
    user_batch_rate: float
    peak_users: int
    templates_per_app: int
    tracker_host: str
    tracker_users: int
    traceparent: bool
    max_p95_ms: float
    min_success_ratio: float
    verdict_file: str
    exporter_port: int
    exporter_host: str
    exporter_linger_s: float

    @classmethod
    def from_options(cls, options: Any) -> Settings:
        """Check the parsed options and raise SettingsError naming the first invalid one."""
        campaign = getattr(options, "campaign", "") or ""
        if campaign and campaign not in CAMPAIGNS:
            raise SettingsError(f"--campaign: unknown campaign {campaign!r}; choose one of {', '.join(CAMPAIGNS)}")

        target = getattr(options, "target_events_per_second", None)
        if target is None and campaign:
            target = CAMPAIGNS[campaign].default_target_events_per_second
        if target is not None and not (target > 0 and math.isfinite(target)):
            raise SettingsError(f"--target-events-per-second: must be a positive number, got {target}")

        duration_text = getattr(options, "campaign_duration", "") or ""
        duration = _timespan("campaign-duration", duration_text) if duration_text else None
        if duration is not None and duration <= 0:
            raise SettingsError(f"--campaign-duration: must be positive, got {duration_text!r}")

        batch_size = int(getattr(options, "batch_size", 1000))
        if not 1 <= batch_size <= 10_000:
            raise SettingsError(f"--batch-size: must be between 1 and 10000 events, got {batch_size}")

        rate = float(getattr(options, "user_batch_rate", 10.0))
        if rate < 0 or not math.isfinite(rate):
            raise SettingsError(f"--user-batch-rate: must be 0 or a positive number of batches per second, got {rate}")

        peak_users = int(getattr(options, "peak_users", 0))
        if peak_users < 0:
            raise SettingsError(f"--peak-users: must be 0 or positive, got {peak_users}")
        if campaign and peak_users == 0 and rate == 0:
            raise SettingsError(
                "--peak-users: required when --user-batch-rate is 0, because the campaign cannot "
                "derive a user count from the target without a rate per user"
            )

        if campaign and peak_users == 0 and target is not None:
            derived = math.ceil(target / (batch_size * rate))
            if derived > MAX_DERIVED_USERS:
                raise SettingsError(
                    f"--target-events-per-second: {target:,.0f} events/s at {rate:g} batches/s of "
                    f"{batch_size} events per user needs {derived:,} users, more than {MAX_DERIVED_USERS:,}; "
                    "raise --user-batch-rate or set --peak-users"
                )

        templates = int(getattr(options, "templates_per_app", 4))
        if templates < 1:
            raise SettingsError(f"--templates-per-app: must be at least 1, got {templates}")

        tracker_users = int(getattr(options, "tracker_users", 1))
        if tracker_users < 0:
            raise SettingsError(f"--tracker-users: must be 0 or positive, got {tracker_users}")

        max_p95_ms = float(getattr(options, "max_p95_ms", 100.0))
        if max_p95_ms <= 0:
            raise SettingsError(f"--max-p95-ms: must be positive, got {max_p95_ms}")
        success_percent = float(getattr(options, "min_success_percent", 99.9))
        if not 0 <= success_percent < 100:
            raise SettingsError(f"--min-success-percent: must be in [0, 100), got {success_percent}")

        tracker_host = (getattr(options, "tracker_host", "") or "").rstrip("/")
        if tracker_host and not tracker_host.startswith(("http://", "https://")):
            raise SettingsError(
                f"--tracker-host: {tracker_host!r} has no scheme; pass it as http://{tracker_host}, "
                "or \"\" for no tracker users"
            )

        exporter_port = int(getattr(options, "exporter_port", DEFAULT_EXPORTER_PORT))
        if not 0 <= exporter_port <= 65535:
            raise SettingsError(f"--exporter-port: must be between 0 and 65535, got {exporter_port}")

        return cls(
            campaign=campaign,
            target_events_per_second=target,
            campaign_duration_s=duration,
            batch_size=batch_size,
            batch_format=getattr(options, "batch_format", "array") or "array",
            user_batch_rate=rate,
            peak_users=peak_users,
            templates_per_app=templates,
            tracker_host=tracker_host,
            tracker_users=tracker_users if tracker_host else 0,
            traceparent=bool(getattr(options, "traceparent", False)),
            max_p95_ms=max_p95_ms,
            min_success_ratio=success_percent / 100.0,
            verdict_file=getattr(options, "verdict_file", "") or "",
            exporter_port=exporter_port,
            exporter_host=getattr(options, "exporter_host", "127.0.0.1") or "127.0.0.1",
            exporter_linger_s=_timespan("exporter-linger", getattr(options, "exporter_linger", "0s") or "0s"),
        )

    def verdict_file_problem(self) -> str | None:
        """Return why the verdict file cannot be written where it is asked for, or None.

        Only the master writes the verdict, so only the master checks: a worker may run in
        another folder or on another host.
        """
        if self.verdict_file and not os.path.isdir(os.path.dirname(os.path.abspath(self.verdict_file))):
            return f"--verdict-file: the folder of {self.verdict_file!r} does not exist; create it or choose another path"
        return None

    def peak_ingestion_users(self) -> int:
        """Return the ingestion users at a campaign's full level."""
        if self.peak_users:
            return self.peak_users
        if not self.target_events_per_second or not self.user_batch_rate:
            return 1
        return max(1, math.ceil(self.target_events_per_second / (self.batch_size * self.user_batch_rate)))

    def paced_batch_rate(self) -> float:
        """Return the batches per second each ingestion user sends; 0 sends without pause.

        A campaign spreads its target (plus PACING_HEADROOM) evenly over the users at the full
        level. Together they then offer the target, not up to one user's rate more. Without a
        campaign each user sends `--user-batch-rate`.
        """
        if not self.campaign or not self.target_events_per_second or not self.user_batch_rate:
            return self.user_batch_rate
        offered = self.target_events_per_second * PACING_HEADROOM
        return offered / (self.batch_size * self.peak_ingestion_users())

    def send_period_s(self) -> float:
        """Return the seconds between two batches of one paced user, or 1 when users are not paced."""
        rate = self.paced_batch_rate()
        return 1.0 / rate if rate > 0 else 1.0


def admin_token() -> str | None:
    """Return the admin token from UNMOGROWP_ADMIN_TOKEN, or None when it is unset or empty."""
    return os.environ.get(ADMIN_TOKEN_ENV) or None
