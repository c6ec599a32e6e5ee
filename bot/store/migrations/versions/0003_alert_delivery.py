"""Alert delivery: resolution keys, per-alert channel and attempts, the dispatcher's lease.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=False)


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("resolve_key", sa.String(length=512), nullable=True))
        batch.create_index("ix_incidents_resolve_key", ["resolve_key"])
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("channel", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("last_error")
        batch.drop_column("attempts")
        batch.drop_column("channel")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_index("ix_incidents_resolve_key")
        batch.drop_column("resolve_key")
