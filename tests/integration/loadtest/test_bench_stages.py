"""The stage benchmark end to end, with far too few batches for real figures."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.loadtest.conftest import REPOSITORY


def test_stages_against_baseline_tree():
    # The repository is its own baseline here: the point is that both sides run and are compared.
    command = [sys.executable, "-m", "loadtest.bench_stages", "--batches", "6", "--rounds", "1", "--baseline", str(REPOSITORY)]

    completed = subprocess.run(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)

    assert completed.returncode == 0, completed.stdout[-3000:]
    rows = {line.split(" | ")[0].strip("| "): line for line in completed.stdout.splitlines() if line.startswith("| ")}
    assert {"decode", "validate", "apply"} <= set(rows)
    for stage in ("decode", "validate", "apply"):
        cells = [cell.strip() for cell in rows[stage].strip("|").split("|")]
        # stage, this tree ns/event, baseline ns/event, time ratio
        assert len(cells) == 4
        assert float(cells[1].replace(",", "")) > 0
        assert float(cells[3]) > 0
    assert "Resident size grown per applied event, baseline:" in completed.stdout


def test_baseline_without_ingestion_rejected(tmp_path):
    command = [sys.executable, "-m", "loadtest.bench_stages", "--baseline", str(tmp_path)]

    completed = subprocess.run(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)

    assert completed.returncode == 2
    assert "no ingestion/events.py there" in completed.stdout
