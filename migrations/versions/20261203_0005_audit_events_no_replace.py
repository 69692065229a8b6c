"""SQLite: the audit trail also refuses INSERT OR REPLACE of an existing row.

0001's triggers refuse UPDATE and DELETE, but SQLite's REPLACE conflict resolution deletes
the conflicting row without firing DELETE triggers (unless recursive_triggers is on), so
``INSERT OR REPLACE INTO audit_events (id, …)`` rewrote history. PostgreSQL has no REPLACE;
its ``ON CONFLICT DO UPDATE`` fires 0001's UPDATE trigger.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 15:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A new row's id is NULL (or -1) in a BEFORE INSERT trigger until SQLite assigns it, so only
# an insert naming an existing id is refused.
_SQLITE_GUARD = """CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
    WHEN EXISTS (SELECT 1 FROM audit_events WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(_SQLITE_GUARD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_replace")
