"""Journal segments: the journal as numbered files, so that a snapshot can include some of them.

Each compaction starts a new segment, `journal-<generation>.bin`, and the snapshot records the
highest generation it includes. A start replays only the segments after that one, so a crash at
any step of a compaction neither loses nor repeats a batch. Versions that kept one `journal.bin`
and emptied it after each snapshot left it as generation 0, which a snapshot of theirs never
includes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

LEGACY_NAME = "journal.bin"
_NAME = re.compile(r"journal-(\d{8})\.bin")


def segment_path(folder: Path, generation: int) -> Path:
    return folder / f"journal-{generation:08d}.bin"


def list_segments(folder: Path) -> list[tuple[int, Path]]:
    """Return (generation, path) of every segment in the folder, oldest first."""
    found = []
    for path in folder.iterdir():
        if path.name == LEGACY_NAME:
            found.append((0, path))
            continue
        match = _NAME.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    found.sort()
    return found


def delete_segments_through(folder: Path, generation: int) -> list[Path]:
    """Delete the segments up to `generation`, sync the folder, and return the deleted paths."""
    deleted = []
    for number, path in list_segments(folder):
        if number <= generation:
            path.unlink(missing_ok=True)
            deleted.append(path)
    if deleted:
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    return deleted
