"""The benchmarks' shared pinning options reject CPUs that cannot be used."""

from __future__ import annotations

import argparse
import os

import pytest

from loadtest.options import add_batch_options, add_pinning_options, check_pinning


def parse(*arguments: str) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="bench")
    add_batch_options(parser)
    add_pinning_options(parser, pinned="the service", no_pinning_help="do not pin")
    return parser, parser.parse_args(arguments)


def test_missing_cpu_rejected(capsys):
    missing = max(os.sched_getaffinity(0)) + 1
    parser, args = parse("--server-cpu", str(missing))

    with pytest.raises(SystemExit) as exit_info:
        check_pinning(parser, args)

    assert exit_info.value.code == 2
    assert f"--server-cpu: CPU {missing} is not available here" in capsys.readouterr().err


def test_same_cpu_rejected(capsys):
    cpu = min(os.sched_getaffinity(0))
    parser, args = parse("--server-cpu", str(cpu), "--client-cpu", str(cpu))

    with pytest.raises(SystemExit):
        check_pinning(parser, args)

    assert "must differ" in capsys.readouterr().err


def test_no_pinning_skips_checks():
    parser, args = parse("--server-cpu", "999", "--no-pinning")

    check_pinning(parser, args)

    assert args.batch_size == 1000
    assert args.templates == 4
