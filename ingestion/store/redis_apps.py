"""Registered apps in Redis, with a local copy that requests read without I/O.

Every worker and host reads the same apps. Each keeps a copy of all apps and
refreshes it in the background: every ``app_refresh_interval_s`` seconds it reads a
version number that every change increments, and reloads the apps when it
moved. Between two refreshes another worker's change is not yet visible
here; ``fetch_by_key_id`` and ``get`` read Redis directly, so a request with
a key issued a moment ago on another worker can still be served.

Changes run as Lua scripts on the registry's own slot, so the apps, the key
index, the hash-tag owners and the version change together.
"""

from __future__ import annotations

import logging

import msgspec
from redis.commands.core import AsyncScript

from ingestion.model import StoredApp
from ingestion.store.redis_keys import RegistryKeys, app_tag

logger = logging.getLogger(__name__)

# KEYS: apps, key ids, tags, version. ARGV: app id, app, key id, tag.
# Returns 1 when created, 0 when the app id is taken, -1 when another app owns the tag.
_CREATE = """#!lua
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
local owner = redis.call('HGET', KEYS[3], ARGV[4])
if owner and owner ~= ARGV[1] then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[1])
redis.call('INCR', KEYS[4])
return 1
"""

# KEYS as above. ARGV: app id, app, key id. Returns 1, or 0 when the app is unknown.
_REPLACE = """#!lua
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then
  return 0
end
redis.call('HDEL', KEYS[2], cmsgpack.unpack(old)['key_id'])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('INCR', KEYS[4])
return 1
"""

# KEYS as above. ARGV: app id. Returns 1, or 0 when the app is unknown.
_DELETE = """#!lua
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then
  return 0
end
redis.call('HDEL', KEYS[2], cmsgpack.unpack(old)['key_id'])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[4])
return 1
"""

_decoder = msgspec.msgpack.Decoder(StoredApp)
_encoder = msgspec.msgpack.Encoder()


class TagCollision(RuntimeError):
    """Two app ids have the same 64-bit hash tag, so their keys would mix."""


class AppRegistry:
    """Apps in Redis and their local copy."""

    def __init__(self, prefix: str) -> None:
        self.keys = RegistryKeys(prefix)
        self.apps: dict[str, StoredApp] = {}
        self.by_key_id: dict[str, StoredApp] = {}
        self.version: bytes | None = None
        self.loaded = False
        self._scripts: dict[str, AsyncScript] = {}

    def _script(self, client, name: str, text: str) -> AsyncScript:
        script = self._scripts.get(name)
        if script is None or script.registered_client is not client:
            script = self._scripts[name] = client.register_script(text)
        return script

    async def refresh(self, client) -> bool:
        """Reload the apps when their version moved; return True when reloaded."""
        version = await client.get(self.keys.version)
        if self.loaded and version == self.version:
            return False
        stored = await client.hgetall(self.keys.apps)
        apps = {}
        by_key_id = {}
        for blob in stored.values():
            app = _decoder.decode(blob)
            apps[app.settings.app_id] = app
            by_key_id[app.key_id] = app
        self.apps, self.by_key_id, self.version, self.loaded = apps, by_key_id, version, True
        return True

    def _remember(self, app: StoredApp) -> None:
        previous = self.apps.get(app.settings.app_id)
        if previous is not None and previous.key_id != app.key_id:
            self.by_key_id.pop(previous.key_id, None)
        self.apps[app.settings.app_id] = app
        self.by_key_id[app.key_id] = app

    def _forget(self, app_id: str) -> None:
        previous = self.apps.pop(app_id, None)
        if previous is not None:
            self.by_key_id.pop(previous.key_id, None)

    async def create(self, client, app: StoredApp) -> bool:
        app_id = app.settings.app_id
        tag = app_tag(app_id)
        script = self._script(client, "create", _CREATE)
        created = await script(keys=self.keys.all(), args=[app_id, _encoder.encode(app), app.key_id, tag])
        if created == -1:
            raise TagCollision(
                f"app_id {app_id!r} has the same hash tag {tag} as another registered app; "
                "register it under another id"
            )
        if created == 1:
            self._remember(app)
        return created == 1

    async def replace(self, client, app: StoredApp) -> None:
        script = self._script(client, "replace", _REPLACE)
        replaced = await script(keys=self.keys.all(), args=[app.settings.app_id, _encoder.encode(app), app.key_id])
        if replaced:
            self._remember(app)

    async def delete(self, client, app_id: str) -> bool:
        script = self._script(client, "delete", _DELETE)
        deleted = await script(keys=self.keys.all(), args=[app_id])
        self._forget(app_id)
        return deleted == 1

    async def get(self, client, app_id: str) -> StoredApp | None:
        blob = await client.hget(self.keys.apps, app_id)
        if blob is None:
            self._forget(app_id)
            return None
        app = _decoder.decode(blob)
        self._remember(app)
        return app

    async def list(self, client) -> list[StoredApp]:
        stored = await client.hgetall(self.keys.apps)
        apps = [_decoder.decode(blob) for blob in stored.values()]
        return sorted(apps, key=lambda app: app.settings.app_id)

    async def fetch_by_key_id(self, client, key_id: str) -> StoredApp | None:
        app_id = await client.hget(self.keys.key_ids, key_id)
        if app_id is None:
            return None
        app = await self.get(client, app_id.decode())
        if app is None or app.key_id != key_id:
            return None
        return app
