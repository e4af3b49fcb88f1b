"""Record every poll of the ingestion service, to measure its uptime.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingestion_probes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("probed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
    )
    op.create_index("ix_ingestion_probes_probed_at", "ingestion_probes", ["probed_at"])


def downgrade() -> None:
    op.drop_table("ingestion_probes")
