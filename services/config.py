"""Settings shared by the services: data folder, admin token, limits.

Every setting comes from a command-line flag, else from an ``UNMOGROWP_*``
environment variable, else from the default written here. Values are checked
once at start, so a bad setting stops the service with a message that names it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ADMIN_TOKEN_ENV = "UNMOGROWP_ADMIN_TOKEN"
# Set by `unmogrowp up` for its children beside the token, so that each child logs where the
# token really came from (the supervisor may have read it from a file).
ADMIN_TOKEN_SOURCE_ENV = "UNMOGROWP_ADMIN_TOKEN_SOURCE"
DATA_DIR_ENV = "UNMOGROWP_DATA_DIR"
DEFAULT_DATA_DIR = Path("var")
ADMIN_TOKEN_FILE_NAME = "admin-token"
MIN_ADMIN_TOKEN_LENGTH = 16


class ConfigError(ValueError):
    """An invalid setting. The message names the setting and how to fix it."""


def env_default(name: str, default: str) -> str:
    return os.environ.get(name, default)


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, str(DEFAULT_DATA_DIR)))


def admin_token_path(data_dir: Path) -> Path:
    return data_dir / ADMIN_TOKEN_FILE_NAME


def token_environment(token: str, source: str, passed_on_by: str) -> dict[str, str]:
    """Return the environment variables that hand the admin token and its origin to a child process."""
    return {ADMIN_TOKEN_ENV: token, ADMIN_TOKEN_SOURCE_ENV: f"{source}, passed on by {passed_on_by}"}


def resolve_admin_token(data_dir: Path, *, create: bool = True) -> tuple[str, str]:
    """Return the admin token and where it came from.

    The token comes from ``UNMOGROWP_ADMIN_TOKEN`` when set. Otherwise it is
    read from ``<data_dir>/admin-token``, and when that file is missing and
    ``create`` is true a random token is written there with mode 0600. There is
    no built-in default token.
    """
    from_env = os.environ.get(ADMIN_TOKEN_ENV)
    if from_env is not None:
        token = from_env.strip()
        if len(token) < MIN_ADMIN_TOKEN_LENGTH:
            raise ConfigError(
                f"{ADMIN_TOKEN_ENV} is too short ({len(token)} characters): "
                f"use at least {MIN_ADMIN_TOKEN_LENGTH}, for example the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return token, os.environ.get(ADMIN_TOKEN_SOURCE_ENV) or f"environment variable {ADMIN_TOKEN_ENV}"

    path = admin_token_path(data_dir)
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < MIN_ADMIN_TOKEN_LENGTH:
            raise ConfigError(
                f"admin token file {path} contains fewer than {MIN_ADMIN_TOKEN_LENGTH} "
                "characters: delete it to have a new token generated"
            )
        return token, f"file {path}"
    if not create:
        raise ConfigError(
            f"no admin token: set {ADMIN_TOKEN_ENV} or start a service once so that it "
            f"writes {path}"
        )

    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, f"file {path} (generated)"


def positive_int(text: str) -> int:
    """Parse a flag value that must be a whole number above zero."""
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"expected a number above 0, got {value}")
    return value


def port_number(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise ConfigError(f"expected a TCP port from 1 to 65535, got {value}")
    return value
