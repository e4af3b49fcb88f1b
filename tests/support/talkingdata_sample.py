"""Small TalkingData-format click logs whose attribution outcome is known in advance.

``write_sample(path)`` writes a few hundred rows in the TalkingData AdTracking
format (``ip,app,device,os,channel,click_time,attributed_time,is_attributed``,
UTC times) and returns what the ingestion service must make of them under
last-touch attribution with a 10 s minimum click-to-install time. The rows are
shuffled, as in the Kaggle sample files, so a replay has to sort them by time.

Every scenario uses its own fingerprint (ip, device, os) unless it is about
sharing one, and noise rows draw their ip from a range no scenario uses:

- ``plain``: an attributed row with a click-to-install time of 10 s or more,
  10 s exactly included, is attributed to its own click;
- ``injection``: a click-to-install time under 10 s (0, 2 and 9 s): the click
  is rejected as ``ctit_below_minimum`` and the install is organic;
- ``injection_fallback``: the same, but an older click of the same fingerprint
  exists, so the install is attributed to that older click;
- ``shared_fingerprint_apps``: one fingerprint clicks and installs in two apps,
  interleaved: each install gets its own app's click;
- ``older_click``: an older click of the same fingerprint and app loses to the
  row's later click;
- ``later_click``: a click of the same fingerprint between the row's click and
  its install wins, so the service disagrees with the file;
- ``shared_ip``: a click from the same ip but another device, between the
  row's click and its install, does not match;
- ``second_install``: two installs of one app from one fingerprint, each
  attributed to its own click, and neither a reinstall, because an IP address
  and a user agent are not device identifiers;
- ``duplicate``: an attributed row and a plain row each appear twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ingestion.replay.talkingdata import COLUMNS, app_id, click_event_id, install_event_id, network

BASE_TIME = datetime(2017, 11, 7, 0, 0, 0, tzinfo=timezone.utc)
APPS = (101, 102, 103)
CTIT_MIN_SECONDS = 10
NOISE_IP_START = 100_000


@dataclass(frozen=True, slots=True)
class SampleRow:
    """One row of the file."""

    ip: int
    app: int
    device: int
    os: int
    channel: int
    click_time: datetime
    attributed_time: datetime | None = None

    def fields(self) -> list[str]:
        attributed = "" if self.attributed_time is None else _format_time(self.attributed_time)
        return [
            str(self.ip),
            str(self.app),
            str(self.device),
            str(self.os),
            str(self.channel),
            _format_time(self.click_time),
            attributed,
            "1" if self.attributed_time is not None else "0",
        ]

    @property
    def click_event_id(self) -> str:
        return click_event_id(self.fields())

    @property
    def install_event_id(self) -> str:
        return install_event_id(self.fields())

    @property
    def app_id(self) -> str:
        return app_id(self.app)

    @property
    def network(self) -> str:
        return network(self.channel)


@dataclass(frozen=True, slots=True)
class ExpectedAttribution:
    """The record the service must write for one install of the file."""

    scenario: str
    line: int
    app_id: str
    install_event_id: str
    file_click_event_id: str
    file_network: str
    file_ctit_seconds: int
    status: str
    touch_event_id: str | None
    network: str | None
    match_type: str | None
    ctit_seconds: int | None
    rejected_touches: tuple[tuple[str, str], ...]

    @property
    def agrees_with_file(self) -> bool:
        return self.status == "attributed" and self.touch_event_id == self.file_click_event_id


@dataclass(slots=True)
class TalkingDataSample:
    """A written sample file and the outcome a replay of it must report."""

    path: Path
    rows: list[SampleRow]
    expected: dict[str, ExpectedAttribution] = field(default_factory=dict)

    def line_of(self, row: SampleRow) -> int:
        """Return the file line of the row's first appearance (the header is line 1)."""
        return self.rows.index(row) + 2

    @property
    def clicks(self) -> int:
        return len(self.rows)

    @property
    def installs_sent(self) -> int:
        return sum(1 for row in self.rows if row.attributed_time is not None)

    @property
    def events_sent(self) -> int:
        return self.clicks + self.installs_sent

    @property
    def duplicate_events(self) -> int:
        """Events that repeat an earlier row's events, so a fresh service reports them as duplicates."""
        seen: set[SampleRow] = set()
        duplicates = 0
        for row in self.rows:
            if row in seen:
                duplicates += 1 if row.attributed_time is None else 2
            seen.add(row)
        return duplicates

    @property
    def apps(self) -> list[str]:
        return sorted({row.app_id for row in self.rows})

    def count(self, status: str) -> int:
        return sum(1 for expected in self.expected.values() if expected.status == status)

    @property
    def click_injections(self) -> list[ExpectedAttribution]:
        return [expected for expected in self.expected.values() if expected.rejected_touches]

    @property
    def agreed(self) -> int:
        return sum(1 for expected in self.expected.values() if expected.agrees_with_file)

    def reference_csv(self) -> str:
        """Return the file's own attribution as ``install_event_id,network`` lines, with a header."""
        lines = ["install_event_id,network"]
        for expected in self.expected.values():
            lines.append(f"{expected.install_event_id},{expected.file_network}")
        return "\n".join(lines) + "\n"


class _Builder:
    """Collects rows and, for each install, the row of the click that must win it."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rows: list[SampleRow] = []
        # (scenario, install row, winning click row or None, rejected click rows)
        self.outcomes: list[tuple[str, SampleRow, SampleRow | None, list[SampleRow]]] = []
        self.next_ip = 1
        self.next_device = 1

    def fingerprint(self) -> tuple[int, int, int]:
        """Return a fingerprint (ip, device, os) no other scenario uses."""
        ip, device = self.next_ip, self.next_device
        self.next_ip += 1
        self.next_device = self.next_device % 90 + 1
        return ip, device, self.rng.randrange(1, 40)

    def click(self, fingerprint: tuple[int, int, int], app: int, channel: int, at: datetime,
              install_after: float | None = None) -> SampleRow:
        ip, device, os = fingerprint
        attributed = None if install_after is None else at + timedelta(seconds=install_after)
        row = SampleRow(ip, app, device, os, channel, at, attributed)
        self.rows.append(row)
        return row

    def expect(self, scenario: str, install: SampleRow, winner: SampleRow | None,
               rejected: list[SampleRow] | None = None) -> None:
        self.outcomes.append((scenario, install, winner, rejected or []))

    def moment(self) -> datetime:
        """Return a random time in the first two days, whole seconds."""
        return BASE_TIME + timedelta(seconds=self.rng.randrange(0, 2 * 86400))


def _add_scenarios(builder: _Builder) -> None:
    for index, ctit in enumerate((10, 11, 25, 60, 600, 3600, 20_000, 46_341)):
        app = APPS[index % len(APPS)]
        row = builder.click(builder.fingerprint(), app, 200 + index, builder.moment(), install_after=ctit)
        builder.expect("plain", row, row)

    for index, ctit in enumerate((0, 2, 9)):
        app = APPS[index % len(APPS)]
        row = builder.click(builder.fingerprint(), app, 300 + index, builder.moment(), install_after=ctit)
        builder.expect("injection", row, None, [row])

    fingerprint = builder.fingerprint()
    start = builder.moment()
    older = builder.click(fingerprint, 101, 310, start)
    row = builder.click(fingerprint, 101, 311, start + timedelta(seconds=3600), install_after=5)
    builder.expect("injection_fallback", row, older, [row])

    fingerprint = builder.fingerprint()
    start = builder.moment()
    first = builder.click(fingerprint, 101, 320, start, install_after=200)
    second = builder.click(fingerprint, 102, 321, start + timedelta(seconds=100), install_after=200)
    builder.expect("shared_fingerprint_apps", first, first)
    builder.expect("shared_fingerprint_apps", second, second)

    fingerprint = builder.fingerprint()
    start = builder.moment()
    builder.click(fingerprint, 103, 330, start)
    row = builder.click(fingerprint, 103, 331, start + timedelta(seconds=500), install_after=60)
    builder.expect("older_click", row, row)

    fingerprint = builder.fingerprint()
    start = builder.moment()
    row = builder.click(fingerprint, 102, 340, start, install_after=100)
    later = builder.click(fingerprint, 102, 341, start + timedelta(seconds=30))
    builder.expect("later_click", row, later)

    fingerprint = builder.fingerprint()
    start = builder.moment()
    row = builder.click(fingerprint, 101, 350, start, install_after=100)
    ip, device, os = fingerprint
    builder.click((ip, device + 100, os), 101, 351, start + timedelta(seconds=30))
    builder.expect("shared_ip", row, row)

    fingerprint = builder.fingerprint()
    start = builder.moment()
    first = builder.click(fingerprint, 103, 360, start, install_after=100)
    second = builder.click(fingerprint, 103, 361, start + timedelta(seconds=50_000), install_after=100)
    builder.expect("second_install", first, first)
    builder.expect("second_install", second, second)

    row = builder.click(builder.fingerprint(), 102, 370, builder.moment(), install_after=42)
    builder.expect("duplicate", row, row)
    builder.rows.append(row)
    plain = builder.click(builder.fingerprint(), 103, 371, builder.moment())
    builder.rows.append(plain)


def _add_noise(builder: _Builder, count: int) -> None:
    """Add unattributed clicks from ips no scenario uses, so they can win no install."""
    for _ in range(count):
        ip = NOISE_IP_START + builder.rng.randrange(0, 50_000)
        row = SampleRow(
            ip,
            builder.rng.choice(APPS),
            builder.rng.randrange(0, 5),
            builder.rng.randrange(0, 40),
            builder.rng.randrange(100, 140),
            builder.moment(),
        )
        builder.rows.append(row)


def write_sample(path: Path, *, noise_rows: int = 300, seed: int = 20171107) -> TalkingDataSample:
    """Write a sample file at ``path`` and return it with its expected outcome.

    The same seed writes the same file, so event ids are stable across runs.
    """
    builder = _Builder(random.Random(seed))
    _add_scenarios(builder)
    _add_noise(builder, noise_rows)

    rows = list(builder.rows)
    builder.rng.shuffle(rows)
    # The two copies of a duplicated row may land anywhere: both stay in the file.
    path.write_text(",".join(COLUMNS) + "\n" + "".join(",".join(row.fields()) + "\n" for row in rows))

    sample = TalkingDataSample(path=path, rows=rows)
    for scenario, install, winner, rejected in builder.outcomes:
        ctit = int((install.attributed_time - install.click_time).total_seconds())
        expected = ExpectedAttribution(
            scenario=scenario,
            line=sample.line_of(install),
            app_id=install.app_id,
            install_event_id=install.install_event_id,
            file_click_event_id=install.click_event_id,
            file_network=install.network,
            file_ctit_seconds=ctit,
            status="attributed" if winner is not None else "organic",
            touch_event_id=winner.click_event_id if winner is not None else None,
            network=winner.network if winner is not None else None,
            match_type="fingerprint" if winner is not None else None,
            ctit_seconds=(
                int((install.attributed_time - winner.click_time).total_seconds()) if winner is not None else None
            ),
            rejected_touches=tuple((click.click_event_id, "ctit_below_minimum") for click in rejected),
        )
        sample.expected[expected.install_event_id] = expected
    return sample


def _format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
