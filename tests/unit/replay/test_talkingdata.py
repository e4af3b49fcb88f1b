"""TalkingData rows to events: the mapping, the time order and the format errors."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import pytest

from ingestion.replay.talkingdata import (
    COLUMNS,
    TalkingDataFormatError,
    ip_text,
    parse_click_log,
    parse_time,
    read_click_log,
)
from tests.support.talkingdata_sample import write_sample

HEADER = ",".join(COLUMNS)
CLICK_ROW = "87540,12,1,13,497,2017-11-07 09:30:38,,0"
ATTRIBUTED_ROW = "224120,19,0,29,213,2017-11-08 02:22:13,2017-11-08 02:22:38,1"


def parse(*lines: str, header: str = HEADER):
    return parse_click_log(io.StringIO("\n".join([header, *lines]) + "\n"), "sample.csv")


def expected_id(row: str) -> str:
    return "td-" + hashlib.sha256(row.encode()).hexdigest()[:32]


def test_click_event_fields():
    log = parse(CLICK_ROW)

    assert log.click_event(0) == {
        "event_id": expected_id(CLICK_ROW),
        "app_id": "talkingdata-12",
        "event_type": "click",
        "event_time": 1510047038,  # 2017-11-07T09:30:38Z
        "platform": "android",
        "ip": "10.1.85.244",  # 87540 = 1 * 65536 + 85 * 256 + 244
        "user_agent": "TalkingData device/1 os/13",
        "network": "channel-497",
    }


def test_install_event_fields():
    log = parse(ATTRIBUTED_ROW)

    assert log.install_event(0) == {
        "event_id": expected_id(ATTRIBUTED_ROW) + "-install",
        "app_id": "talkingdata-19",
        "event_type": "install",
        "event_time": 1510107758,  # 2017-11-08T02:22:38Z
        "platform": "android",
        "ip": "10.3.107.120",  # 224120 = 3 * 65536 + 107 * 256 + 120
        "user_agent": "TalkingData device/0 os/29",
    }
    assert log.click_event(0)["event_time"] == 1510107733


def test_repeated_row_same_event_ids():
    log = parse(ATTRIBUTED_ROW, CLICK_ROW, ATTRIBUTED_ROW)

    assert log.click_event_id(0) == log.click_event_id(2)
    assert log.install_event_id(0) == log.install_event_id(2)
    assert log.click_event_id(0) != log.click_event_id(1)
    assert log.event_count == 5
    assert len(log.expected_installs()) == 1
    assert log.expected_installs()[0].line == 2


def test_one_changed_field_changes_event_id():
    changed = CLICK_ROW.replace("497", "498")
    log = parse(CLICK_ROW, changed)

    assert log.click_event_id(0) != log.click_event_id(1)


@pytest.mark.parametrize(
    ("ip", "address"),
    [
        (0, "10.0.0.0"),
        (87540, "10.1.85.244"),
        (2**24 - 1, "10.255.255.255"),
        (2**24, "fd00::100:0"),
        (2**64 - 1, "fd00::ffff:ffff:ffff:ffff"),
    ],
)
def test_ip_text(ip, address):
    assert ip_text(ip) == address


def test_events_sorted_by_time():
    log = parse(
        "3,1,1,1,1,2017-11-07 10:00:00,2017-11-07 12:00:00,1",
        "1,1,1,1,1,2017-11-07 11:00:00,,0",
        "2,1,1,1,1,2017-11-07 09:00:00,2017-11-07 11:00:00,1",
    )

    events = list(log.events_in_time_order())

    assert [(event["ip"], event["event_type"]) for event in events] == [
        ("10.0.0.2", "click"),  # 09:00
        ("10.0.0.3", "click"),  # 10:00
        ("10.0.0.1", "click"),  # 11:00, earlier in the file than the install below
        ("10.0.0.2", "install"),  # 11:00
        ("10.0.0.3", "install"),  # 12:00
    ]


def test_equal_times_keep_file_order():
    log = parse(
        "5,1,1,1,1,2017-11-07 10:00:00,2017-11-07 10:00:00,1",
        "4,1,1,1,1,2017-11-07 10:00:00,,0",
    )

    events = list(log.events_in_time_order())

    assert [(event["ip"], event["event_type"]) for event in events] == [
        ("10.0.0.5", "click"),
        ("10.0.0.5", "install"),
        ("10.0.0.4", "click"),
    ]


def test_app_ids_in_order_of_appearance():
    log = parse(CLICK_ROW, ATTRIBUTED_ROW, CLICK_ROW.replace("87540", "87542"))

    assert log.app_ids() == ["talkingdata-12", "talkingdata-19"]


def test_extra_columns_ignored_but_hashed():
    header = "click_id," + HEADER
    log = parse("7," + CLICK_ROW, "8," + CLICK_ROW, header=header)

    assert log.click_event(0)["ip"] == "10.1.85.244"
    assert log.click_event_id(0) == expected_id("7," + CLICK_ROW)
    assert log.click_event_id(0) != log.click_event_id(1)


def test_byte_order_mark_and_blank_lines(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(("\ufeff" + HEADER + "\r\n" + CLICK_ROW + "\r\n\r\n" + ATTRIBUTED_ROW + "\r\n").encode())

    log = read_click_log(path)

    assert len(log) == 2
    assert list(log.lines) == [2, 4]
    assert log.click_event_id(0) == expected_id(CLICK_ROW)


def test_gzip_file(tmp_path):
    path = tmp_path / "clicks.csv.gz"
    path.write_bytes(gzip.compress((HEADER + "\n" + ATTRIBUTED_ROW + "\n").encode()))

    log = read_click_log(path)

    assert len(log) == 1
    assert log.attributed_row_count == 1


def test_parse_time_utc():
    assert parse_time("1970-01-01 00:00:00") == 0
    assert parse_time("2017-11-06 16:00:00") == 1509984000


BAD_INPUTS = [
    pytest.param("", [], 1, None, "empty file", id="empty file"),
    pytest.param(
        "ip,app,device,os,channel,click_time", [], 1, None, "missing column(s) attributed_time, is_attributed",
        id="missing columns",
    ),
    pytest.param(HEADER + ",ip", [], 1, None, "ip appear more than once", id="repeated column"),
    pytest.param(HEADER, ["1,2,3,4,5,2017-11-07 09:30:38,,0,9"], 2, None, "expected 8 fields", id="extra field"),
    pytest.param(HEADER, [CLICK_ROW, "1,2,3,4,5,2017-11-07 9:30,,0"], 3, "click_time", "expected YYYY-MM-DD HH:MM:SS",
                 id="time without seconds"),
    pytest.param(HEADER, ["1,2,3,4,5,2017-02-30 09:30:38,,0"], 2, "click_time", "day is out of range",
                 id="no such day"),
    pytest.param(HEADER, ["1,2,3,4,5,2017-11-07T09:30:38Z,,0"], 2, "click_time", "invalid time",
                 id="ISO 8601 with zone"),
    pytest.param(HEADER, ["1,x,3,4,5,2017-11-07 09:30:38,,0"], 2, "app", "expected a whole number", id="app not a number"),
    pytest.param(HEADER, ["-1,2,3,4,5,2017-11-07 09:30:38,,0"], 2, "ip", "expected a whole number", id="negative ip"),
    pytest.param(HEADER, [f"{2**64},2,3,4,5,2017-11-07 09:30:38,,0"], 2, "ip", "too large", id="ip too large"),
    pytest.param(HEADER, ["1,2,,4,5,2017-11-07 09:30:38,,0"], 2, "device", "expected a whole number", id="empty device"),
    pytest.param(HEADER, ["1,2,3,4,5,2017-11-07 09:30:38,,yes"], 2, "is_attributed", "expected 0 or 1",
                 id="is_attributed not a flag"),
    pytest.param(HEADER, ["1,2,3,4,5,2017-11-07 09:30:38,,1"], 2, "attributed_time", "missing",
                 id="attributed row without time"),
    pytest.param(HEADER, ["1,2,3,4,5,2017-11-07 09:30:38,2017-11-07 09:40:00,0"], 2, "attributed_time",
                 "is_attributed 0", id="time on unattributed row"),
    pytest.param(HEADER, ["1,2,3,4,5,2017-11-07 09:30:38,2017-11-07 09:30:37,1"], 2, "attributed_time",
                 "before click_time", id="install before click"),
    pytest.param(HEADER, ["1,2,3,4,5,2017-11-07 09:30:38,tomorrow,1"], 2, "attributed_time", "invalid time",
                 id="bad attributed time"),
]


@pytest.mark.parametrize(("header", "rows", "line", "column", "reason"), BAD_INPUTS)
def test_format_errors(header, rows, line, column, reason):
    text = "\n".join([header, *rows]) + "\n" if header else ""

    with pytest.raises(TalkingDataFormatError) as caught:
        parse_click_log(io.StringIO(text), "clicks.csv")

    error = caught.value
    assert error.line == line
    assert error.column == column
    assert reason in str(error)
    assert str(error).startswith(f"clicks.csv, line {line}")


def test_format_error_names_column_in_message():
    with pytest.raises(TalkingDataFormatError) as caught:
        parse(CLICK_ROW, "1,2,3,4,5,2017-11-07 09:30:38,,2")

    assert str(caught.value) == "sample.csv, line 3, column is_attributed: invalid value '2': expected 0 or 1"


def test_generated_sample_matches_its_expectations(tmp_path: Path):
    sample = write_sample(tmp_path / "sample.csv")

    log = read_click_log(sample.path)
    installs = {install.install_event_id: install for install in log.expected_installs()}

    assert len(log) == sample.clicks
    assert log.event_count == sample.events_sent
    assert installs.keys() == sample.expected.keys()
    for install_id, expected in sample.expected.items():
        assert installs[install_id].line == expected.line
        assert installs[install_id].click_event_id == expected.file_click_event_id
        assert installs[install_id].network == expected.file_network
        assert installs[install_id].ctit_seconds == expected.file_ctit_seconds


def test_generated_sample_is_reproducible(tmp_path: Path):
    first = write_sample(tmp_path / "first.csv")
    second = write_sample(tmp_path / "second.csv")

    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.expected == second.expected


def test_generated_sample_covers_its_scenarios(tmp_path: Path):
    sample = write_sample(tmp_path / "sample.csv")
    scenarios = {expected.scenario for expected in sample.expected.values()}
    ctits = sorted(expected.file_ctit_seconds for expected in sample.expected.values())

    assert scenarios == {
        "plain", "injection", "injection_fallback", "shared_fingerprint_apps", "older_click",
        "later_click", "shared_ip", "second_install", "duplicate",
    }
    assert len(sample.apps) == 3
    assert sample.duplicate_events == 3
    assert 10 in ctits
    assert [ctit for ctit in ctits if ctit < 10] == [0, 2, 5, 9]
    assert len(sample.click_injections) == 4
    assert sample.agreed == 15
    assert len(sample.expected) == 20


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (gzip.compress(b"ip,app\n"), "line 1: not UTF-8 text (byte 0x8b at position 2); the file looks gzip-compressed"),
        (("\ufeff" + HEADER + "\n").encode("utf-16"), "line 1: not UTF-8 text (byte 0xff at position 1); save the file as UTF-8"),
        ((HEADER + "\n" + CLICK_ROW + "\n").encode() + b"1,2,3,\xe9\n", "line 3: not UTF-8 text (byte 0xe9 at position 7)"),
    ],
    ids=["gzip without .gz", "utf-16", "latin-1 byte in a row"],
)
def test_file_not_utf8_names_line(tmp_path, content, message):
    path = tmp_path / "clicks.csv"
    path.write_bytes(content)

    with pytest.raises(TalkingDataFormatError) as raised:
        read_click_log(path)

    assert message in str(raised.value)


def test_truncated_gzip_named(tmp_path):
    path = tmp_path / "clicks.csv.gz"
    path.write_bytes(gzip.compress((HEADER + "\n" + CLICK_ROW + "\n").encode())[:-10])

    with pytest.raises(TalkingDataFormatError) as raised:
        read_click_log(path)

    assert "the gzip file cannot be read" in str(raised.value)
