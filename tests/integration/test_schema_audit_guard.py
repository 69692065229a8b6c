"""The audit trail is append-only at the database level, against every way of rewriting a row."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from fit_service.adapters import migrations
from fit_service.adapters.db import make_engine

_INSERT = (
    "INSERT INTO audit_events (at, actor, action, outcome, status_code) "
    "VALUES ('2026-12-01 00:00:00+00:00', :actor, 'session.create', 'ok', 201) RETURNING id"
)


def _rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, actor FROM audit_events"))]


@pytest.fixture
def engine(database_url: str) -> Engine:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        assert conn.execute(text(_INSERT), {"actor": "key:abc"}).scalar_one() == 1
    yield engine  # type: ignore[misc]
    engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'someone else'",
        "DELETE FROM audit_events",
        # SQLite's REPLACE deletes the conflicting row without firing DELETE triggers.
        "INSERT OR REPLACE INTO audit_events (id, at, actor, action, outcome, status_code) "
        "VALUES (1, '2026-12-01 00:00:00+00:00', 'someone else', 'x', 'ok', 200)",
        "REPLACE INTO audit_events (id, at, actor, action, outcome, status_code) "
        "VALUES (1, '2026-12-01 00:00:00+00:00', 'someone else', 'x', 'ok', 200)",
        "INSERT INTO audit_events (id, at, actor, action, outcome, status_code) "
        "VALUES (1, '2026-12-01 00:00:00+00:00', 'someone else', 'x', 'ok', 200) "
        "ON CONFLICT (id) DO UPDATE SET actor = excluded.actor",
        "TRUNCATE audit_events",
        # reaches the audit trail through its foreign key to clinics
        "TRUNCATE clinics CASCADE",
    ],
    ids=["update", "delete", "insert-or-replace", "replace", "upsert", "truncate", "cascade"],
)
def test_no_statement_rewrites_an_audit_row(engine: Engine, statement: str) -> None:
    if "REPLACE" in statement and engine.dialect.name != "sqlite":
        pytest.skip("REPLACE is SQLite's")
    if "TRUNCATE" in statement and engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text(statement))
    assert _rows(engine) == [(1, "key:abc")]


def test_new_audit_rows_still_go_in(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(_INSERT), {"actor": "key:def"})
    assert _rows(engine) == [(1, "key:abc"), (2, "key:def")]


def test_the_guard_goes_with_a_downgrade_and_comes_back(engine: Engine) -> None:
    """0005 and 0006 downgrade (on a database holding audit rows) and upgrade again."""
    migrations.downgrade(engine, "0004")
    migrations.upgrade(engine)
    rewrite = (
        "INSERT OR REPLACE INTO audit_events (id, at, actor, action, outcome, status_code) "
        "VALUES (1, '2026-12-01 00:00:00+00:00', 'someone else', 'x', 'ok', 200)"
        if engine.dialect.name == "sqlite"
        else "TRUNCATE audit_events"
    )
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text(rewrite))
    assert _rows(engine) == [(1, "key:abc")]
