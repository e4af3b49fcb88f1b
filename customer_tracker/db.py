"""The tracker's database: engine from a URL, schema migrations, sessions.

SQLite in a file is the default because it needs no server; PostgreSQL lets several tracker
replicas share one database. Both go through synchronous SQLAlchemy, which the API runs in
a thread pool, so no query blocks the event loop.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class DatabaseUrlError(ValueError):
    """The database URL names no supported database; the message lists the URLs that work."""


def normalize_url(text: str) -> URL:
    """Parse a database URL and pick the driver this project installs for it.

    ``postgresql://`` and ``postgres://`` use psycopg 3. SQLite takes ``sqlite:///relative/path``
    or ``sqlite:////absolute/path``.
    """
    try:
        url = make_url(text)
    except sa.exc.ArgumentError:
        raise DatabaseUrlError(
            f"invalid database URL {text!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        ) from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if url.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise DatabaseUrlError(f"unsupported SQLite driver {url.drivername!r}: use sqlite:///PATH")
        return url
    raise DatabaseUrlError(
        f"unsupported database {backend!r} in the database URL: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


def describe_url(url: URL) -> str:
    """Render the URL for logs and messages, with any password masked."""
    return url.render_as_string(hide_password=True)


def _enable_sqlite_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_database_engine(url_text: str) -> Engine:
    """Create the engine; for a SQLite file, create its folder first."""
    url = normalize_url(url_text)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:"):
            raise DatabaseUrlError(
                "an in-memory SQLite database is not supported, since each connection would see "
                "an empty one: use sqlite:///PATH"
            )
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})
        sa.event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``, keeping every stored row."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine) -> None:
    """Run ``SELECT 1``, raising the driver's error when the database is unreachable."""
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
