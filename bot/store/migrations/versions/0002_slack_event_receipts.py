"""Slack event receipts: Events API retries are answered once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_event_receipts",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=False), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_slack_event_receipts"),
    )
    op.create_index("ix_slack_event_receipts_received_at", "slack_event_receipts", ["received_at"])


def downgrade() -> None:
    op.drop_table("slack_event_receipts")
