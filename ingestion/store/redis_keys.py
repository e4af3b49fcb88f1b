"""Key names of the Redis store.

Every key of one app carries the same hash tag, ``{<16 hex digits>}``, taken
from a BLAKE2b digest of the app id, so Redis Cluster puts all of an app's
touches, installs, records and duplicate-filter entries in one slot. A batch
of one app then needs one node, and a Lua script can read and write it
atomically. The digest, not the app id, goes between the braces because an
app id may itself contain ``{`` or ``}``.

Lookup keys (click ids, device identifiers, fingerprints) are shortened to a
12-byte BLAKE2b digest in URL-safe base64, so a 512-character user agent does
not make a 600-byte key name. Two different identifiers of one app would have
to collide in 96 bits to share an index entry.

Layout under ``<prefix>{<tag>}``:

==========================  ===========  ==========================================
suffix                      type         contents
==========================  ===========  ==========================================
``:s``                      string       last touch/record sequence number reserved
``:w``                      string       watermark: newest event time seen
``:rs``                     string       last record list position handed out
``:c``                      string       commits so far (see ``redis_scripts``)
``:e:<width>:<bucket>``     hash         duplicate filter: event id -> commit token,
                                         one hash per receipt-time bucket
``:b:<bucket>``             hash         touch bodies by sequence number, bucketed by
                                         the hour their window closes
``:bk``                     sorted set   live buckets, scored by bucket number
``:x:<kind>:<digest>``      sorted set   touch index; members ``<bucket>:<seq>``,
                                         scored by event time
``:n:<digest>``             string       first install of a device identifier
``:rh``                     hash         attribution records by install event id
``:ri``                     sorted set   install event ids scored by list position
``:va`` / ``:vn``           hash         revenue amounts / event counts per line
==========================  ===========  ==========================================

Index kinds: ``k`` clicks by click id, ``d`` clicks and impressions by device
identifier (one key serves both tiers, so an install reads each of its device
identifiers once), ``f`` clicks by fingerprint.

Apps live outside any app's slot, under ``<prefix>{<prefix>apps}``.
"""

from __future__ import annotations

import base64
import hashlib

DEFAULT_PREFIX = "umg"

CLICK_ID = "k"
DEVICE = "d"
CLICK_FINGERPRINT = "f"

_LOOKUP_DIGEST_BYTES = 12
_TAG_DIGEST_BYTES = 8


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` or raise ValueError when it would break hash tags."""
    if not prefix or "{" in prefix or "}" in prefix or len(prefix) > 64:
        raise ValueError(
            f"key prefix {prefix!r} is invalid: use 1 to 64 characters without '{{' or '}}', "
            "such as umg or umg-staging"
        )
    return prefix


def app_tag(app_id: str) -> str:
    """Return the hash tag content of ``app_id``: 16 hex digits."""
    return hashlib.blake2b(app_id.encode(), digest_size=_TAG_DIGEST_BYTES).hexdigest()


def lookup_digest(value: str) -> str:
    """Return the 16-character digest that stands for a click id, device key or fingerprint."""
    digest = hashlib.blake2b(value.encode(), digest_size=_LOOKUP_DIGEST_BYTES).digest()
    return base64.urlsafe_b64encode(digest).decode()


class AppKeys:
    """Key names of one app."""

    __slots__ = ("app_id", "tag", "base")

    def __init__(self, prefix: str, app_id: str) -> None:
        self.app_id = app_id
        self.tag = app_tag(app_id)
        self.base = f"{prefix}{{{self.tag}}}"

    @property
    def sequence(self) -> str:
        """The key a script is routed by: every app key shares its slot."""
        return self.base + ":s"

    @property
    def records(self) -> str:
        return self.base + ":rh"

    @property
    def record_index(self) -> str:
        return self.base + ":ri"

    @property
    def revenue_amounts(self) -> str:
        return self.base + ":va"

    @property
    def revenue_counts(self) -> str:
        return self.base + ":vn"


class RegistryKeys:
    """Key names of the apps registry, all in one slot."""

    __slots__ = ("apps", "key_ids", "tags", "version")

    def __init__(self, prefix: str) -> None:
        base = f"{prefix}{{{prefix}apps}}"
        self.apps = base + ":a"
        self.key_ids = base + ":k"
        self.tags = base + ":t"
        self.version = base + ":v"

    def all(self) -> list[str]:
        return [self.apps, self.key_ids, self.tags, self.version]
