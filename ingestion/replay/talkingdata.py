"""TalkingData click logs: reading them and turning their rows into events.

The TalkingData AdTracking format (Kaggle, 2018) has one ad click per row::

    ip,app,device,os,channel,click_time,attributed_time,is_attributed

``ip``, ``app``, ``device``, ``os`` and ``channel`` are encoded integers, and
times are UTC in the form ``2017-11-07 09:30:38``. When the click led to a
download of the app, ``is_attributed`` is 1 and ``attributed_time`` is the time
of the download.

Each row becomes a click of the app ``talkingdata-<app>`` from the network
``channel-<channel>``. Each attributed row also becomes an install at
``attributed_time``. Both events carry an IP address and a user agent made
from the row's ``ip``, ``device`` and ``os``, so the service can match the
install to its click by fingerprint. Event ids are hashes of the row's
content, so a repeated row is sent as the same events and comes back as
duplicates.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import ipaddress
import re
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

COLUMNS = ("ip", "app", "device", "os", "channel", "click_time", "attributed_time", "is_attributed")
INTEGER_COLUMNS = ("ip", "app", "device", "os", "channel")
TIME_FORMAT = "YYYY-MM-DD HH:MM:SS"
PLATFORM = "android"

APP_ID_PREFIX = "talkingdata-"
NETWORK_PREFIX = "channel-"
EVENT_ID_PREFIX = "td-"
INSTALL_EVENT_ID_SUFFIX = "-install"

# Encoded ip values below 2**24 map into 10.0.0.0/8; larger ones, up to
# 2**64 - 1, map into the IPv6 unique local prefix fd00::/8.
IPV4_LIMIT = 1 << 24
IP_LIMIT = 1 << 64
# The first two bytes of every gzip file.
GZIP_MAGIC = b"\x1f\x8b"
IPV6_ULA_BASE = 0xFD << 120

_TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_DIGEST_SIZE = 16


class TalkingDataFormatError(ValueError):
    """A TalkingData file that cannot be read; the message names the line and the column."""

    def __init__(self, source: str, line: int, column: str | None, reason: str) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.reason = reason
        where = f"{source}, line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, slots=True)
class ExpectedInstall:
    """An attributed row of the file: the install it becomes and the click the file credits."""

    line: int
    app_id: str
    install_event_id: str
    click_event_id: str
    network: str
    click_time: int
    install_time: int

    @property
    def ctit_seconds(self) -> int:
        return self.install_time - self.click_time


class ClickLog:
    """The rows of one TalkingData file, stored column by column.

    Columns are ``array`` objects of 64-bit integers plus one byte string of
    row digests, about 100 bytes per row in all, so a file of a few million rows fits
    in memory and can be sorted by time before it is sent.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = array("q")
        self.ips = array("q")
        self.apps = array("q")
        self.devices = array("q")
        self.oses = array("q")
        self.channels = array("q")
        self.click_times = array("q")
        # Seconds since the epoch, meaningful only where is_attributed is 1.
        self.attributed_times = array("q")
        self.is_attributed = bytearray()
        self.digests = bytearray()

    def __len__(self) -> int:
        return len(self.lines)

    def append_row(self, line: int, raw_fields: list[str], values: dict[str, int]) -> None:
        """Append a validated row; ``raw_fields`` are the row's text, which its event ids hash."""
        self.lines.append(line)
        self.ips.append(values["ip"])
        self.apps.append(values["app"])
        self.devices.append(values["device"])
        self.oses.append(values["os"])
        self.channels.append(values["channel"])
        self.click_times.append(values["click_time"])
        self.attributed_times.append(values["attributed_time"])
        self.is_attributed.append(values["is_attributed"])
        self.digests += row_digest(raw_fields)

    @property
    def attributed_row_count(self) -> int:
        return self.is_attributed.count(1)

    @property
    def event_count(self) -> int:
        return len(self) + self.attributed_row_count

    def app_ids(self) -> list[str]:
        """Return the app ids met in the file, in order of first appearance."""
        return [app_id(app) for app in dict.fromkeys(self.apps)]

    def click_event_id(self, row: int) -> str:
        return _event_id(self.digests[row * _DIGEST_SIZE : (row + 1) * _DIGEST_SIZE])

    def install_event_id(self, row: int) -> str:
        return self.click_event_id(row) + INSTALL_EVENT_ID_SUFFIX

    def click_event(self, row: int) -> dict[str, Any]:
        return {
            "event_id": self.click_event_id(row),
            "app_id": app_id(self.apps[row]),
            "event_type": "click",
            "event_time": self.click_times[row],
            "platform": PLATFORM,
            "ip": ip_text(self.ips[row]),
            "user_agent": user_agent(self.devices[row], self.oses[row]),
            "network": network(self.channels[row]),
        }

    def install_event(self, row: int) -> dict[str, Any]:
        return {
            "event_id": self.install_event_id(row),
            "app_id": app_id(self.apps[row]),
            "event_type": "install",
            "event_time": self.attributed_times[row],
            "platform": PLATFORM,
            "ip": ip_text(self.ips[row]),
            "user_agent": user_agent(self.devices[row], self.oses[row]),
        }

    def expected_installs(self) -> list[ExpectedInstall]:
        """Return one entry per distinct install, each crediting the click of its row."""
        installs: dict[str, ExpectedInstall] = {}
        for row in range(len(self)):
            if not self.is_attributed[row]:
                continue
            install_id = self.install_event_id(row)
            if install_id in installs:
                continue  # a repeated row: the same install, sent as a duplicate
            installs[install_id] = ExpectedInstall(
                line=self.lines[row],
                app_id=app_id(self.apps[row]),
                install_event_id=install_id,
                click_event_id=self.click_event_id(row),
                network=network(self.channels[row]),
                click_time=self.click_times[row],
                install_time=self.attributed_times[row],
            )
        return list(installs.values())

    def events_in_time_order(self) -> Iterator[dict[str, Any]]:
        """Yield every click and install, sorted by event time.

        The sort is stable: events with equal times keep the file's order, and a
        row's click comes before its install. Each event is packed into one
        integer, ``(time - earliest) << 33 | row << 1 | is_install``, so sorting
        costs one Python integer per event instead of a tuple.
        """
        if not len(self):
            return
        earliest = min(self.click_times)
        keys = []
        for row in range(len(self)):
            keys.append((self.click_times[row] - earliest) << 33 | row << 1)
            if self.is_attributed[row]:
                keys.append((self.attributed_times[row] - earliest) << 33 | row << 1 | 1)
        keys.sort()

        row_mask = (1 << 33) - 1
        for key in keys:
            sequence = key & row_mask
            row = sequence >> 1
            if sequence & 1:
                yield self.install_event(row)
            else:
                yield self.click_event(row)


def app_id(app: int) -> str:
    return f"{APP_ID_PREFIX}{app}"


def network(channel: int) -> str:
    return f"{NETWORK_PREFIX}{channel}"


def user_agent(device: int, os: int) -> str:
    return f"TalkingData device/{device} os/{os}"


def ip_text(ip: int) -> str:
    """Turn an encoded ip value into an address: 10.0.0.0/8 below 2**24, else fd00::/8."""
    if ip < IPV4_LIMIT:
        return f"10.{ip >> 16}.{(ip >> 8) & 0xFF}.{ip & 0xFF}"
    return str(ipaddress.IPv6Address(IPV6_ULA_BASE | ip))


def click_event_id(raw_fields: list[str]) -> str:
    """Return the event id of a row's click: ``td-`` and the first 16 bytes of the row's SHA-256, in hex."""
    return _event_id(row_digest(raw_fields))


def install_event_id(raw_fields: list[str]) -> str:
    """Return the event id of an attributed row's install: its click's id plus ``-install``."""
    return click_event_id(raw_fields) + INSTALL_EVENT_ID_SUFFIX


def row_digest(raw_fields: list[str]) -> bytes:
    """Hash a row's fields as they appear in the file, joined by commas."""
    return hashlib.sha256(",".join(raw_fields).encode("utf-8")).digest()[:_DIGEST_SIZE]


def _event_id(digest: bytes | bytearray) -> str:
    return EVENT_ID_PREFIX + digest.hex()


@lru_cache(maxsize=4096)
def parse_time(text: str) -> int:
    """Parse a UTC time ``YYYY-MM-DD HH:MM:SS`` into seconds since the epoch.

    Raises ValueError with the reason when the text is not such a time.
    """
    if not _TIME_PATTERN.fullmatch(text):
        raise ValueError(f"invalid time {text!r}: expected {TIME_FORMAT} in UTC")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"invalid time {text!r}: {error}") from None
    return int(moment.replace(tzinfo=timezone.utc).timestamp())


def read_click_log(path: str | Path) -> ClickLog:
    """Read and validate a whole TalkingData file (plain CSV, or gzip when named ``*.gz``).

    Raises TalkingDataFormatError at the first invalid line, before anything
    is sent, and OSError when the file cannot be opened.
    """
    source = str(path)
    path = Path(path)
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        return parse_click_log(_decoded_lines(handle, source), source)


def _decoded_lines(handle: BinaryIO, source: str) -> Iterator[str]:
    """Yield the file's lines as text, raising TalkingDataFormatError at the first line that is not UTF-8.

    Lines are decoded one at a time, so the error names the line. The first line is decoded as
    `utf-8-sig`, which drops a byte order mark in front of the header.
    """
    number = 0
    try:
        for number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                fix = "save the file as UTF-8"
                if number == 1 and raw.startswith(GZIP_MAGIC):
                    fix = "the file looks gzip-compressed: give it a name ending in .gz"
                raise TalkingDataFormatError(
                    source, number, None, f"not UTF-8 text (byte 0x{raw[error.start]:02x} at position {error.start + 1}); {fix}"
                ) from None
    except (EOFError, gzip.BadGzipFile) as error:
        raise TalkingDataFormatError(source, number + 1, None, f"the gzip file cannot be read ({error})") from None


def parse_click_log(handle: Iterable[str], source: str) -> ClickLog:
    """Parse TalkingData CSV text; columns beyond the eight required ones are ignored."""
    reader = csv.reader(handle)
    header = _read_header(reader, source)
    positions = {column: header.index(column) for column in COLUMNS}
    log = ClickLog(source)

    line = reader.line_num
    for fields in reader:
        line = reader.line_num
        if not fields:
            continue  # a blank line
        if len(fields) != len(header):
            raise TalkingDataFormatError(
                source, line, None, f"expected {len(header)} fields like the header, found {len(fields)}"
            )
        values = _parse_row(fields, positions, source, line)
        log.append_row(line, fields, values)
    return log


def _read_header(reader: Any, source: str) -> list[str]:
    header = next(reader, None)
    if header is None:
        raise TalkingDataFormatError(source, 1, None, f"empty file: expected the header {','.join(COLUMNS)}")
    header = [name.strip() for name in header]
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise TalkingDataFormatError(
            source,
            reader.line_num,
            None,
            f"missing column(s) {', '.join(missing)} in the header: expected {','.join(COLUMNS)}",
        )
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise TalkingDataFormatError(
            source, reader.line_num, None, f"column(s) {', '.join(duplicated)} appear more than once in the header"
        )
    return header


def _parse_row(fields: list[str], positions: dict[str, int], source: str, line: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for column in INTEGER_COLUMNS:
        text = fields[positions[column]]
        if not text.isdigit() or not text.isascii():
            raise TalkingDataFormatError(source, line, column, f"invalid value {text!r}: expected a whole number >= 0")
        values[column] = int(text)
    if values["ip"] >= IP_LIMIT:
        raise TalkingDataFormatError(source, line, "ip", f"value {values['ip']} is too large: the limit is 2**64 - 1")

    values["click_time"] = _parse_time_field(fields, positions, "click_time", source, line)

    flag = fields[positions["is_attributed"]]
    if flag not in ("0", "1"):
        raise TalkingDataFormatError(source, line, "is_attributed", f"invalid value {flag!r}: expected 0 or 1")
    values["is_attributed"] = int(flag)

    attributed_text = fields[positions["attributed_time"]]
    if flag == "1":
        if not attributed_text:
            raise TalkingDataFormatError(
                source, line, "attributed_time", "missing: a row with is_attributed 1 needs the time of its install"
            )
        values["attributed_time"] = _parse_time_field(fields, positions, "attributed_time", source, line)
        if values["attributed_time"] < values["click_time"]:
            raise TalkingDataFormatError(
                source,
                line,
                "attributed_time",
                f"{attributed_text!r} is before click_time {fields[positions['click_time']]!r}",
            )
    else:
        if attributed_text:
            raise TalkingDataFormatError(
                source,
                line,
                "attributed_time",
                f"set to {attributed_text!r} on a row with is_attributed 0: leave it empty or set is_attributed to 1",
            )
        values["attributed_time"] = 0
    return values


def _parse_time_field(fields: list[str], positions: dict[str, int], column: str, source: str, line: int) -> int:
    try:
        return parse_time(fields[positions[column]])
    except ValueError as error:
        raise TalkingDataFormatError(source, line, column, str(error)) from None
