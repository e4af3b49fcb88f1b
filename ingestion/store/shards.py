"""Large tables spread by key hash over many small ones, so that no table rebuild stalls a batch.

CPython rebuilds a dict's or set's whole table in one step once insertions have used up its
free slots, and the slot of a deleted key stays used until then. A table that keeps about the
same size while keys come and go therefore rebuilds every so often, inside whatever request
inserted the key that filled it. At the embedded store's default bounds a batch waited 0.78 s
for the duplicate filter's 5,000,000 keys, about 0.4 s for the install index, 0.2 s for the
fingerprint index and 0.1 s for the click-id index (`python -m loadtest.bench_stalls`).

Spread over ``SHARDS`` tables, each rebuild is that size divided by ``SHARDS``. The shards take
about the same share of the insertions and fill at about the same pace. Yet their rebuilds
fell in different batches. The slowest of 3,000 batches at a full store took 28 to 35 ms,
against 382 to 428 ms with whole tables. The price is about a tenth more time per batch
(6.27 to 6.76 ms against 5.91 to 6.16 ms on average). It is the choice of the shard, about 45
ns per access for the ``hash`` call, shift, mask and list index (timed with ``timeit``), made
about four times per event. The dicts themselves cost the same in shards: under the same
churn, a plain script timed one dict and 64 shards alike.

A key's table is ``shards[(hash(key) >> SHARD_SHIFT) & SHARD_MASK]``. A dict or set picks a
key's first slot from the low bits of its hash. Were the shard chosen by those bits, each
shard would contain only keys whose first slots fall in one sixty-fourth of its table, and
look-ups would collide: batches took 7.6 to 7.9 ms. Bits 40 and up pick the first slot only in
tables of more than 2**40 entries. (A build with 32-bit hashes would use two shards.) The
store writes that expression inline on its hot path, where a function call would cost more
than the look-up itself, and uses ``shard_of`` elsewhere. String hashes are cached in the
string and differ between processes, so shards are never saved: a snapshot lists entries,
and a restore spreads them again.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")

SHARDS = 64
SHARD_MASK = SHARDS - 1
SHARD_SHIFT = 40


def new_shards() -> list[dict]:
    """Return ``SHARDS`` empty dicts."""
    return [{} for _ in range(SHARDS)]


def shard_of(shards: list[dict[Key, Value]], key: Key) -> dict[Key, Value]:
    """Return the table of ``shards`` that contains ``key`` or would take it."""
    return shards[(hash(key) >> SHARD_SHIFT) & SHARD_MASK]


def shard_items(shards: list[dict[Key, Value]]) -> Iterator[tuple[Key, Value]]:
    """Return the entries of every table, table by table."""
    return chain.from_iterable(shard.items() for shard in shards)


def total_keys(shards: list[dict]) -> int:
    """Return the number of keys over all tables."""
    return sum(map(len, shards))
