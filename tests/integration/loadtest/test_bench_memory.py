"""The memory benchmark end to end, with far fewer events than real figures need."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.loadtest.conftest import REPOSITORY


def _rows(output: str) -> dict[str, list[str]]:
    return {
        cells[0]: cells
        for line in output.splitlines()
        if line.startswith("| ")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }


def test_memory_against_baseline_tree():
    # The repository is its own baseline here: the point is that both sides run and are compared.
    command = [sys.executable, "-m", "loadtest.bench_memory", "--events", "20000", "--rounds", "1",
               "--baseline", str(REPOSITORY)]

    completed = subprocess.run(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)

    assert completed.returncode == 0, completed.stdout[-3000:]
    rows = _rows(completed.stdout)
    assert {"click", "impression", "install", "session"} <= set(rows)
    for side in (1, 2):
        # A click keeps a touch and its id; a session keeps only its id.
        assert float(rows["click"][side].replace(",", "")) > float(rows["session"][side].replace(",", "")) > 0
    assert float(rows["click"][3]) > 0
    assert "duplicate-filter entries, baseline: about" in completed.stdout

