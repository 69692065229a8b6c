"""Running Alembic from the service (the CLI's ``fit migrate``, /readyz, tests)."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config(str(_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(_ROOT / "migrations"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head_revision() -> str | None:
    # Cached: reading the script directory executes every migration file (~15 ms), and
    # /readyz asks on every probe; the files do not change under a running process.
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@functools.cache
def _revisions() -> frozenset[str]:
    return frozenset(
        s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    )


def is_revision(name: str) -> bool:
    """Whether ``name`` is the id of one of the migrations (not ``head`` or ``+1``)."""
    return name in _revisions()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


#: PostgreSQL advisory lock key held while migrating (any constant; "fit" + 0).
_MIGRATION_LOCK = 0x66697400


def _one_at_a_time(conn: Connection) -> None:
    """Make concurrent migrations (every instance running ``fit migrate`` as it starts) queue.

    Without it two instances both read the old revision and both run the same DDL: one
    fails (duplicate table, or 0 rows where it updates ``alembic_version``). Under the
    transaction-scoped lock the second reads the revision the first committed and has
    nothing left to do. SQLite needs nothing: the transaction begins IMMEDIATE, so the
    second waits for the write lock (db.py) and then reads the committed revision.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as conn:
        _one_at_a_time(conn)
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        _one_at_a_time(conn)
        command.downgrade(alembic_config(conn), revision)
