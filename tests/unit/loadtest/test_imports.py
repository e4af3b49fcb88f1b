"""Modules that plain (non-gevent) processes import must not import Locust.

Importing `locust` monkey-patches sockets, threads and subprocesses with gevent, which would
change the benchmark's asyncio load generator and any test process that imports these modules.
"""

from __future__ import annotations

import os
import subprocess
import sys

PLAIN_MODULES = (
    "loadtest.benchmark",
    "loadtest.httpload",
    "loadtest.apps",
    "loadtest.generator",
    "loadtest.settings",
    "loadtest.verdict",
    "loadtest.campaigns",
    "loadtest.bare_app",
    "loadtest.bench_latency",
    "exporters.loadtest",
)


def test_plain_modules_skip_locust():
    script = (
        "import importlib, sys\n"
        f"for name in {PLAIN_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(name for name in sys.modules if name == 'locust' or name.startswith('locust.')))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "LOCUST_SKIP_MONKEY_PATCH"}

    completed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"
