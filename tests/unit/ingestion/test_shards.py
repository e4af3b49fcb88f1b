"""Tables spread over dicts by key hash."""

from __future__ import annotations

from ingestion.store.shards import SHARDS, new_shards, shard_items, shard_of, total_keys


def test_keys_spread_over_every_shard():
    shards = new_shards()

    for number in range(20_000):
        shard_of(shards, f"gaid:{number}")[f"gaid:{number}"] = number

    assert len(shards) == SHARDS
    assert all(shards)
    assert total_keys(shards) == 20_000
    assert sorted(value for _key, value in shard_items(shards)) == list(range(20_000))


def test_shard_keeps_low_hash_bits_varied():
    # A dict starts probing at the low bits of a key's hash. Were the shard chosen by those
    # bits, all keys of one shard would start in the same sixty-fourth of its table.
    shards = new_shards()
    for number in range(20_000):
        shard_of(shards, f"idfa:{number}")[f"idfa:{number}"] = number

    for shard in shards:
        assert len({hash(key) & (SHARDS - 1) for key in shard}) > SHARDS // 2
