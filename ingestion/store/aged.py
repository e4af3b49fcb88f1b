"""A dict kept in parts by insertion age, for a large table that loses its oldest keys first.

CPython rebuilds a dict's whole table in one step once insertions have used up its free slots,
and the slot of a deleted key stays used until then. Under first-in, first-out churn a dict of
a million keys therefore rebuilds now and then, inside whatever request inserted the key that
filled it: the store's record table took 0.25 s to rebuild at the store's bounds. An
`AgedDict` inserts into its newest part only and starts a new part once that one has
`part_size` keys. Older parts only lose keys, which never makes a dict rebuild, and a part
that empties is dropped. So the longest rebuild is that of one part growing to `part_size`.

A look-up tries the parts newest first, one dict look-up per part, so the type suits a table
that is written for many events but read for few, such as the records by install id.
"""

from __future__ import annotations

from typing import Generic, TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")

# Keys per part. A part's last growth rebuilds a table of about 44,000 keys: its slowest insertion
# took 0.4 to 1.3 ms alone in a small heap (five rounds of one run), more among gigabytes of other objects.
PART_SIZE = 1 << 16


class AgedDict(Generic[Key, Value]):
    """A mapping whose keys are kept in parts by insertion age; see the module's docs.

    Setting a key that an older part contains adds it to the newest part, and look-ups find the
    newest value first, as a dict's overwrite would. The older entry stays until `discard`
    removes it, so `len` counts both.
    """

    __slots__ = ("part_size", "parts")

    def __init__(self, part_size: int = PART_SIZE) -> None:
        if part_size < 1:
            raise ValueError(f"part_size must be at least 1, got {part_size}")
        self.part_size = part_size
        self.parts: list[dict[Key, Value]] = [{}]

    def __len__(self) -> int:
        return sum(map(len, self.parts))

    def __setitem__(self, key: Key, value: Value) -> None:
        newest = self.parts[-1]
        if len(newest) >= self.part_size:
            newest = {}
            self.parts.append(newest)
        newest[key] = value

    def get(self, key: Key, default: Value | None = None) -> Value | None:
        for part in reversed(self.parts):
            value = part.get(key)
            if value is not None:
                return value
        return default

    def discard(self, key: Key, value: Value) -> bool:
        """Remove `key` where it maps to this very `value`, oldest part first; return whether it did."""
        parts = self.parts
        for position, part in enumerate(parts):
            if part.get(key) is value:
                del part[key]
                if not part and position < len(parts) - 1:
                    del parts[position]
                return True
        return False

