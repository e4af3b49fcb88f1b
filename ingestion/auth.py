"""Admin token and per-app ingest keys.

An ingest key is ``umk_<key id>_<secret>``. Only the key id and the SHA-256 of
the secret are stored. A presented key is looked up by its id, and its
secret's hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from ingestion.store.base import Store

KEY_PREFIX = "umk_"


@dataclass(frozen=True)
class Principal:
    """The sender of a request: the admin, or the holder of one app's key."""

    app_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.app_id is None


ADMIN = Principal(app_id=None)


def new_ingest_key() -> tuple[str, str, str]:
    """Return (key, key id, hash of the secret); show the key once, keep the rest."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}{key_id}_{secret}", key_id, _hash(secret)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authenticator:
    def __init__(self, admin_token: str, store: Store) -> None:
        self._admin_token = admin_token.encode()
        self.store = store

    def identify(self, token: str) -> Principal | None:
        """Return the principal that ``token`` belongs to, or None for an unknown token."""
        if token.startswith(KEY_PREFIX):
            key_id, _, secret = token[len(KEY_PREFIX) :].partition("_")
            app = self.store.app_by_key_id(key_id)
            if app is not None and hmac.compare_digest(_hash(secret), app.key_hash):
                return Principal(app_id=app.settings.app_id)
            return None
        if hmac.compare_digest(token.encode(), self._admin_token):
            return ADMIN
        return None
