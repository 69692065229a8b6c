"""Sessions keep the client's ORS/CORS/SRS/CSRS totals beside their ratings, so the monthly
report reads one table (services/session_totals.py says why).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 20:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Column -> instrument code (frozen here: a migration must not follow later code changes).
_COLUMNS = {"ors_total": "ors", "cors_total": "cors", "srs_total": "srs", "csrs_total": "csrs"}


def upgrade() -> None:
    # Plain ADD COLUMN, not batch mode (see 0003: batch mode recreates the table).
    for column in _COLUMNS:
        op.add_column("sessions", sa.Column(column, sa.Float(), nullable=True))
    # Sessions stored before this migration: copy the client's own totals from their ratings
    # ((session_id, instrument, rater) is unique, so each subquery yields at most one row).
    # Lightweight table constructs, not the models: a migration must not follow later code.
    sessions = sa.table("sessions", sa.column("id"), *(sa.column(c) for c in _COLUMNS))
    ratings = sa.table(
        "ratings",
        sa.column("session_id"),
        sa.column("instrument"),
        sa.column("rater"),
        sa.column("total"),
    )
    op.execute(
        sessions.update().values(
            {
                column: sa.select(ratings.c.total)
                .where(
                    ratings.c.session_id == sessions.c.id,
                    ratings.c.instrument == code,
                    ratings.c.rater == "client",
                )
                .scalar_subquery()
                for column, code in _COLUMNS.items()
            }
        )
    )


def downgrade() -> None:
    for column in _COLUMNS:
        op.execute(f"ALTER TABLE sessions DROP COLUMN {column}")
