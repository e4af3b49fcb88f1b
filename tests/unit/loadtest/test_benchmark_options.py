"""The benchmark's option checks, which run before any server starts."""

from __future__ import annotations

import pytest

from loadtest import benchmark


def test_negative_fill_rejected(capsys):
    with pytest.raises(SystemExit):
        benchmark.main(["--fill-events", "-1"])

    assert "--fill-events must be 0 or more, got -1" in capsys.readouterr().err
