"""The work trees a side-by-side benchmark measures."""

from __future__ import annotations

import argparse

import pytest

from loadtest.trees import THIS_TREE, trees_to_measure


def test_this_tree_alone_without_baseline():
    trees = trees_to_measure(argparse.ArgumentParser(), None, "ingestion/events.py")

    assert trees == {"this tree": THIS_TREE}
    assert (THIS_TREE / "ingestion" / "events.py").is_file()


def test_baseline_with_marker_measured(tmp_path):
    (tmp_path / "ingestion").mkdir()
    (tmp_path / "ingestion" / "events.py").write_text("")

    trees = trees_to_measure(argparse.ArgumentParser(), tmp_path, "ingestion/events.py")

    assert trees == {"this tree": THIS_TREE, "baseline": tmp_path.resolve()}


def test_baseline_without_marker_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        trees_to_measure(argparse.ArgumentParser(prog="bench"), tmp_path, "ingestion/store/snapshot.py")

    assert stopped.value.code == 2
    assert f"--baseline {tmp_path}: no ingestion/store/snapshot.py there" in capsys.readouterr().err
