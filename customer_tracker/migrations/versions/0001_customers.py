"""Create customers, their apps, phase history, surveys and support tickets.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def exact_decimal(precision: int, scale: int):
    # SQLite would round NUMERIC through a float, so there the decimal is kept as text.
    return sa.Numeric(precision, scale).with_variant(sa.String(40), "sqlite")


def timestamp():
    return sa.DateTime(timezone=True)


def customer_reference():
    return sa.ForeignKey("customers.customer_id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("company_name", sa.String(200), nullable=False),
        sa.Column("pilot", sa.Boolean, nullable=False),
        sa.Column("kickoff_date", sa.Date, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("previous_monthly_cost", exact_decimal(18, 4), nullable=True),
        sa.Column("monthly_cost", exact_decimal(18, 4), nullable=True),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.Column("updated_at", timestamp(), nullable=False),
    )
    op.create_table(
        "customer_apps",
        sa.Column("app_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(64), customer_reference(), nullable=False),
    )
    op.create_index("ix_customer_apps_customer_id", "customer_apps", ["customer_id"])
    op.create_table(
        "phase_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(64), customer_reference(), nullable=False),
        sa.Column("from_phase", sa.String(16), nullable=True),
        sa.Column("to_phase", sa.String(16), nullable=False),
        sa.Column("changed_at", timestamp(), nullable=False),
    )
    op.create_index("ix_phase_changes_customer_id", "phase_changes", ["customer_id"])
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(64), customer_reference(), nullable=False),
        sa.Column("scale", sa.String(8), nullable=False),
        sa.Column("answer", exact_decimal(7, 4), nullable=False),
        sa.Column("score", exact_decimal(7, 4), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("recorded_at", timestamp(), nullable=False),
    )
    op.create_index("ix_surveys_customer_id", "surveys", ["customer_id"])
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(64), customer_reference(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("opened_at", timestamp(), nullable=False),
        sa.Column("closed_at", timestamp(), nullable=True),
        sa.Column("updated_at", timestamp(), nullable=False),
    )
    op.create_index("ix_tickets_customer_id", "tickets", ["customer_id"])


def downgrade() -> None:
    op.drop_table("tickets")
    op.drop_table("surveys")
    op.drop_table("phase_changes")
    op.drop_table("customer_apps")
    op.drop_table("customers")
