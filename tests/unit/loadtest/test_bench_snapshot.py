"""The snapshot benchmark, end to end on a small store."""

from __future__ import annotations

import pytest

from loadtest.bench_snapshot import main, report, write_timing_steps

FIGURES = {"bytes": 2e6, "write_seconds": 1.0, "read_seconds": 2.0, "restore_seconds": 1.0,
           "resident_growth": 5e6, "distinct_records": 10, "records": 10, "installs": 20,
           "capture_ms": 40.0, "step_seconds": 0.5, "longest_step_ms": 12.0, "steps_over_10_ms": 3}


def figures_by_row(output: str) -> dict[str, str]:
    rows = [line.split("|")[1:-1] for line in output.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip(): cells[1].strip() for cells in rows[1:]}


def test_small_store_loads_each_record_once(capsys):
    assert main(["--fill-batches", "20"]) == 0

    figures = {name: float(value.replace(",", "")) for name, value in figures_by_row(capsys.readouterr().out).items()}
    # No record was evicted, so every indexed install's record is one of the record list's objects.
    assert figures["device keys in the install index"] > 0
    assert figures["distinct Record objects in both"] == figures["records in the record list"]
    assert figures["snapshot MB"] >= 1
    assert 0 < figures["longest step ms"] <= 1000 * figures["encoding steps on the event loop, s"]


def test_report_gives_ratios_of_two_trees():
    baseline = {**FIGURES, "bytes": 4e6, "distinct_records": 20, "longest_step_ms": 48.0}
    output = report({"this tree": FIGURES, "baseline": baseline}, 5)

    assert "| snapshot MB | 2 | 4 | 0.50 |" in output
    assert "| distinct Record objects in both | 10 | 20 | 0.50 |" in output
    assert "| longest step ms | 12.0 | 48.0 | 0.25 |" in output
    assert "Ratios are this tree over baseline." in output


def test_table_rows_closed_for_one_tree():
    lines = [line for line in report({"this tree": FIGURES}, 5).splitlines() if line.startswith("|")]

    assert lines[0] == "| figure | this tree |"
    assert lines[1] == "| --- | ---: |"
    assert all(line.endswith(" |") for line in lines)


def test_baseline_without_snapshot_module_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--baseline", str(tmp_path)])
    assert "no ingestion/store/snapshot.py there" in capsys.readouterr().err


def test_timed_write_keeps_every_chunk_in_order(tmp_path):
    path = tmp_path / "snapshot.bin"

    steps = write_timing_steps(path, iter([b"UMG", b"", b"frame-1", b"frame-2"]))

    assert path.read_bytes() == b"UMGframe-1frame-2"
    assert len(steps) == 4
    assert all(step >= 0 for step in steps)
