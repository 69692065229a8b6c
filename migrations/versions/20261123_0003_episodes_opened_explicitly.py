"""Episodes remember whether they were opened explicitly or by their first session, so a
backfilled earlier session can move an auto-opened episode's opening date back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:35:04.826709
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD/DROP COLUMN (native in SQLite >= 3.35 and PostgreSQL), not batch
    # mode: batch mode recreates the table, which foreign keys from sessions forbid once the
    # database holds data.
    op.add_column(
        "episodes",
        sa.Column("opened_explicitly", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    # Episodes that existed before this migration: one whose opening date is not the date of
    # any of its sessions was opened explicitly (POST /v1/episodes); one opened by its first
    # session starts on that session's date.
    op.execute(
        """
        UPDATE episodes SET opened_explicitly = true
        WHERE NOT EXISTS (
            SELECT 1 FROM sessions
            WHERE sessions.episode_id = episodes.id AND sessions.date = episodes.opened_on
        )
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE episodes DROP COLUMN opened_explicitly")
