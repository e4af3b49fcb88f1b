"""Tables of the tracker, as SQLAlchemy ORM classes.

The schema is created and changed only by the Alembic migrations in ``migrations/versions``;
a change here needs a new migration beside them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class ExactDecimal(sa.types.TypeDecorator):
    """A decimal stored exactly: NUMERIC on PostgreSQL, text on SQLite.

    SQLite has no exact decimal type and would round NUMERIC values through a float, so there
    the value is kept as its decimal text.
    """

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision=precision, scale=scale)
        self.scale = scale

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(self.impl.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(value)
        if dialect.name == "sqlite":
            # The same scale as NUMERIC(precision, scale) on PostgreSQL, so both return equal text.
            return str(value.quantize(Decimal(1).scaleb(-self.scale)))
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return Decimal(value)


class UtcDateTime(sa.types.TypeDecorator):
    """A timestamp that is always timezone-aware UTC in Python, also on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware UTC time")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def money() -> ExactDecimal:
    return ExactDecimal(18, 4)


def percent() -> ExactDecimal:
    return ExactDecimal(7, 4)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    company_name: Mapped[str] = mapped_column(sa.String(200))
    pilot: Mapped[bool] = mapped_column(sa.Boolean)
    kickoff_date: Mapped[dt.date] = mapped_column(sa.Date)
    currency: Mapped[str] = mapped_column(sa.String(3))
    previous_monthly_cost: Mapped[Decimal | None] = mapped_column(money(), nullable=True)
    monthly_cost: Mapped[Decimal | None] = mapped_column(money(), nullable=True)
    phase: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    apps: Mapped[list[CustomerApp]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", passive_deletes=True,
        order_by="CustomerApp.app_id",
    )
    phase_changes: Mapped[list[PhaseChange]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="PhaseChange.id",
    )
    surveys: Mapped[list[Survey]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    tickets: Mapped[list[Ticket]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    reconciliation_runs: Mapped[list[ReconciliationRun]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True,
    )


class CustomerApp(Base):
    """An app of the ingestion service owned by a customer; an app has at most one owner."""

    __tablename__ = "customer_apps"

    app_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("customers.customer_id", ondelete="CASCADE"), index=True,
    )

    customer: Mapped[Customer] = relationship(back_populates="apps")


class PhaseChange(Base):
    __tablename__ = "phase_changes"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("customers.customer_id", ondelete="CASCADE"), index=True,
    )
    from_phase: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    to_phase: Mapped[str] = mapped_column(sa.String(16))
    changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Survey(Base):
    """One satisfaction survey; ``score`` is the answer as a percentage, whatever its scale."""

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("customers.customer_id", ondelete="CASCADE"), index=True,
    )
    scale: Mapped[str] = mapped_column(sa.String(8))  # "percent" or "csat"
    answer: Mapped[Decimal] = mapped_column(percent())
    score: Mapped[Decimal] = mapped_column(percent())
    comment: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("customers.customer_id", ondelete="CASCADE"), index=True,
    )
    title: Mapped[str] = mapped_column(sa.String(200))
    severity: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(8))
    opened_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class ReconciliationRun(Base):
    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("customers.customer_id", ondelete="CASCADE"), index=True,
    )
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    source_format: Mapped[str] = mapped_column(sa.String(8))  # "csv" or "json"
    compared: Mapped[int] = mapped_column(sa.Integer)
    matched: Mapped[int] = mapped_column(sa.Integer)
    accuracy_percent: Mapped[Decimal | None] = mapped_column(percent(), nullable=True)
    mismatch_count: Mapped[int] = mapped_column(sa.Integer)

    mismatches: Mapped[list[ReconciliationMismatch]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="ReconciliationMismatch.id",
    )


class ReconciliationMismatch(Base):
    __tablename__ = "reconciliation_mismatches"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("reconciliation_runs.id", ondelete="CASCADE"), index=True,
    )
    install_event_id: Mapped[str] = mapped_column(sa.String(128))
    app_id: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    reason: Mapped[str] = mapped_column(sa.String(32))
    expected_network: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    expected_campaign: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    actual_status: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    actual_network: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    actual_campaign: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)


class IngestionProbe(Base):
    """One poll of the ingestion service's statistics; uptime is the share of successful polls."""

    __tablename__ = "ingestion_probes"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    probed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    ok: Mapped[bool] = mapped_column(sa.Boolean)
    error: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
