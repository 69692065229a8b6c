"""PostgreSQL: the audit trail also refuses TRUNCATE.

0001's trigger refuses UPDATE and DELETE row by row, but ``TRUNCATE audit_events`` (or
``TRUNCATE clinics CASCADE``, which reaches it through the foreign key) empties the table
without firing row triggers. A statement-level BEFORE TRUNCATE trigger runs the same guard.
SQLite has no TRUNCATE.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 15:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
