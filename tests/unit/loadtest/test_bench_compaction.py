"""The compaction benchmark's log parsing, table and option checks."""

from __future__ import annotations

import json

import pytest

from loadtest.bench_compaction import ModeResult, _compaction_seconds, format_table, main


def test_log_parsing_takes_compactions_only(tmp_path):
    log = tmp_path / "ingestion.log"
    lines = [
        json.dumps({"message": "store loaded", "seconds": 0.1}),
        "uvicorn started, not JSON",
        json.dumps({"message": "journal compacted", "seconds": 4.172, "journal_generation": 1}),
        json.dumps({"message": "journal compacted", "seconds": 7.8, "journal_generation": 2}),
    ]
    log.write_text("\n".join(lines) + "\n")

    assert _compaction_seconds(log) == [4.172, 7.8]


def test_table_row_per_mode():
    results = [
        ModeResult("in-process", True, [135_000.0, 61_000.0], [66.0, 255.0], [2.8], 0.314),
        ModeResult("fork", False, [140_000.0, 100_000.0], [66.0, None], []),
    ]

    rows = format_table(results).splitlines()[2:]

    assert rows[0] == "| in-process | yes | 135k 61k | 98,000 | 61,000 | 66 255 | 2.8 | 0.31 |"
    assert rows[1] == "| fork | no | 140k 100k | 120,000 | 100,000 | 66 n/a | none | n/a |"


def test_unknown_mode_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["--modes", "in-process,threaded"])

    assert "unknown snapshot mode 'threaded'" in capsys.readouterr().err
