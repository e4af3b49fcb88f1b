"""Alembic migrations: an upgrade from the first schema keeps the rows, and matches the models."""

import datetime as dt
import secrets
from decimal import Decimal

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from customer_tracker import db
from customer_tracker.models import Base
from customer_tracker.store import Store

from .conftest import POSTGRES_ADMIN_URL

KICKOFF = dt.date(2026, 1, 5)
CREATED = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """A database without any table, for migrations to start from nothing."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    name = f"tracker_test_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _first_schema_rows(connection) -> None:
    """Insert rows the way the first schema's tracker wrote them."""
    is_sqlite = connection.dialect.name == "sqlite"

    def money(text):
        return text if is_sqlite else Decimal(text)

    def moment(value):
        return value.replace(tzinfo=None) if is_sqlite else value

    connection.execute(sa.text(
        "INSERT INTO customers (customer_id, company_name, pilot, kickoff_date, currency, previous_monthly_cost, "
        "monthly_cost, phase, created_at, updated_at) VALUES (:id, :name, :pilot, :kickoff, 'USD', :previous, "
        ":monthly, 'setup', :created, :created)"
    ), {"id": "early", "name": "Early Bird Ltd", "pilot": True, "kickoff": KICKOFF,
        "previous": money("2000.0000"), "monthly": money("1100.0000"), "created": moment(CREATED)})
    connection.execute(sa.text("INSERT INTO customer_apps (app_id, customer_id) VALUES ('early.ios', 'early')"))
    for from_phase, to_phase, hours in ((None, "discovery", 0), ("discovery", "setup", 24)):
        connection.execute(sa.text(
            "INSERT INTO phase_changes (customer_id, from_phase, to_phase, changed_at) VALUES ('early', :f, :t, :at)"
        ), {"f": from_phase, "t": to_phase, "at": moment(CREATED + dt.timedelta(hours=hours))})
    connection.execute(sa.text(
        "INSERT INTO surveys (customer_id, scale, answer, score, comment, recorded_at) "
        "VALUES ('early', 'csat', :answer, :score, 'fine', :at)"
    ), {"answer": money("4.0000"), "score": money("80.0000"), "at": moment(CREATED)})
    connection.execute(sa.text(
        "INSERT INTO tickets (customer_id, title, severity, status, opened_at, closed_at, updated_at) "
        "VALUES ('early', 'SDK question', 'low', 'open', :at, NULL, :at)"
    ), {"at": moment(CREATED)})


def test_upgrade_from_first_schema_keeps_rows(empty_database):
    engine = db.create_database_engine(empty_database)
    try:
        db.migrate(engine, "0001")
        assert db.current_revision(engine) == "0001"
        with engine.begin() as connection:
            _first_schema_rows(connection)

        db.migrate(engine)

        assert db.current_revision(engine) == db.head_revision()
        store = Store(db.session_factory(engine), clock=lambda: CREATED + dt.timedelta(days=3))
        customer = store.get_customer("early")
        assert customer.company_name == "Early Bird Ltd"
        assert customer.previous_monthly_cost == Decimal("2000.0000")
        assert customer.monthly_cost == Decimal("1100.0000")
        assert [app.app_id for app in customer.apps] == ["early.ios"]
        assert [change.to_phase for change in store.phase_history("early")] == ["discovery", "setup"]
        assert store.phase_history("early")[1].changed_at == CREATED + dt.timedelta(hours=24)
        assert [survey.score for survey in store.list_surveys("early")] == [Decimal("80.0000")]
        assert [ticket.title for ticket in store.list_tickets("early")] == ["SDK question"]
        facts = store.load_facts("early")[0]
        assert facts.open_tickets == 1
        assert facts.latest_scores == (Decimal("80.0000"),)
        assert facts.latest_reconciliation is None
        # Tables of later revisions exist and take rows next to the old ones.
        store.record_probe(True)
        store.save_reconciliation("early", source_format="csv", compared=2, matched=2,
                                  accuracy_percent=Decimal("100"), mismatches=[])
        assert store.load_facts("early")[0].latest_reconciliation.matched == 2
    finally:
        engine.dispose()


def test_migrations_match_models(empty_database):
    engine = db.create_database_engine(empty_database)
    try:
        db.migrate(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
    finally:
        engine.dispose()


def test_migrate_twice_is_harmless(empty_database):
    engine = db.create_database_engine(empty_database)
    try:
        db.migrate(engine)
        db.migrate(engine)
        assert db.current_revision(engine) == db.head_revision()
    finally:
        engine.dispose()
