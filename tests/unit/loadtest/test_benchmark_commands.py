"""The benchmark report shows commands that a reader can run from the repository."""

from __future__ import annotations

import shlex

from loadtest.benchmark import REPOSITORY, display_command


def test_service_command_placeholders():
    command = [
        "taskset", "-c", "0", str(REPOSITORY / ".venv" / "bin" / "unmogrowp"), "ingestion",
        "--host", "127.0.0.1", "--port", "38981", "--data-dir", "/tmp/unmogrowp-bench-c4csn0jb/ingestion-data",
    ]

    displayed = shlex.split(display_command(command))

    assert displayed[3] == ".venv/bin/unmogrowp"
    assert displayed[displayed.index("--port") + 1] == "PORT"
    assert displayed[displayed.index("--data-dir") + 1] == "DATA_DIR"
    assert displayed[displayed.index("--host") + 1] == "127.0.0.1"


def test_locust_host_placeholder():
    displayed = display_command(["--host", "http://127.0.0.1:42799", "-u", "16", "--batch-size", "1000"])

    assert displayed == "--host http://127.0.0.1:PORT -u 16 --batch-size 1000"


def test_paths_outside_repository_kept():
    displayed = display_command(["/usr/bin/python3", "-m", "uvicorn"])

    assert displayed == "/usr/bin/python3 -m uvicorn"
