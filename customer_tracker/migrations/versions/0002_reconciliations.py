"""Keep every reconciliation run with its mismatches.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "customer_id", sa.String(64),
            sa.ForeignKey("customers.customer_id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_format", sa.String(8), nullable=False),
        sa.Column("compared", sa.Integer, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False),
        # SQLite would round NUMERIC through a float, so there the decimal is kept as text.
        sa.Column("accuracy_percent", sa.Numeric(7, 4).with_variant(sa.String(40), "sqlite"), nullable=True),
        sa.Column("mismatch_count", sa.Integer, nullable=False),
    )
    op.create_index("ix_reconciliation_runs_customer_id", "reconciliation_runs", ["customer_id"])
    op.create_table(
        "reconciliation_mismatches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id", sa.Integer,
            sa.ForeignKey("reconciliation_runs.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("install_event_id", sa.String(128), nullable=False),
        sa.Column("app_id", sa.String(128), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("expected_network", sa.String(128), nullable=True),
        sa.Column("expected_campaign", sa.String(128), nullable=True),
        sa.Column("actual_status", sa.String(16), nullable=True),
        sa.Column("actual_network", sa.String(128), nullable=True),
        sa.Column("actual_campaign", sa.String(128), nullable=True),
    )
    op.create_index("ix_reconciliation_mismatches_run_id", "reconciliation_mismatches", ["run_id"])


def downgrade() -> None:
    op.drop_table("reconciliation_mismatches")
    op.drop_table("reconciliation_runs")
