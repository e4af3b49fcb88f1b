"""The work trees that a side-by-side benchmark measures: this one, and an optional baseline."""

from __future__ import annotations

import argparse
from pathlib import Path

THIS_TREE = Path(__file__).resolve().parent.parent


def trees_to_measure(parser: argparse.ArgumentParser, baseline: Path | None, marker: str) -> dict[str, Path]:
    """Return {"this tree": ..., "baseline": ...}, the baseline only when given.

    `marker` is a file every tree the benchmark can run must have, relative to the tree's root,
    such as "ingestion/events.py". A baseline without it ends the command with a usage error.
    """
    trees = {"this tree": THIS_TREE}
    if baseline is not None:
        resolved = baseline.resolve()
        if not (resolved / marker).is_file():
            parser.error(f"--baseline {baseline}: no {marker} there; pass the root of a work tree")
        trees["baseline"] = resolved
    return trees
