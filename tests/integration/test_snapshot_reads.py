"""adapters/snapshot_reads: statements handed to the second connection see exactly what the
session's transaction sees, run in the background where the database allows it, and leave
nothing open behind them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session

from fit_service.adapters.db import make_engine, make_session_factory
from fit_service.adapters.orm import Clinic
from fit_service.adapters.snapshot_reads import SnapshotReads

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _add_clinic(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(Clinic).values(
                public_id=uuid.uuid4(), name=name, timezone="UTC", settings={}, created_at=NOW
            )
        )


def _names() -> object:
    return select(Clinic.name).order_by(Clinic.name)


def _repeatable_read(db: Session) -> None:
    if db.get_bind().dialect.name == "postgresql":
        db.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def test_reads_see_the_sessions_data_on_postgresql_from_another_thread(engine: Engine) -> None:
    _add_clinic(engine, "A")
    threads: list[str] = []
    with make_session_factory(engine)() as db:
        _repeatable_read(db)
        own = db.execute(_names()).scalars().all()

        def note_thread(_connection: object) -> None:
            threads.append(threading.current_thread().name)

        with SnapshotReads(db, prepare=note_thread) as reads:
            assert reads.in_background == (engine.dialect.name == "postgresql")
            first, second = reads.submit(_names()), reads.submit(select(Clinic.id))
            assert [row[0] for row in first.result()] == own == ["A"]
            assert len(second.result()) == 1
    if engine.dialect.name == "postgresql":
        # prepared once, on the reader's own thread (one connection for both statements)
        assert len(threads) == 1
        assert threads[0] != threading.current_thread().name
    else:  # SQLite: on the session's own connection, nothing to prepare
        assert threads == []


def test_a_commit_after_the_snapshot_is_not_seen(engine: Engine) -> None:
    """Another writer commits after the session's first read and before the statement is
    submitted: the statement still reads the session's snapshot, not the newer data."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite: the session's transaction holds the write lock, nothing can commit")
    _add_clinic(engine, "A")
    with make_session_factory(engine)() as db:
        _repeatable_read(db)
        assert db.execute(_names()).scalars().all() == ["A"]
        with SnapshotReads(db) as reads:
            _add_clinic(engine, "B")  # another connection, committed
            with engine.begin() as conn:
                conn.execute(update(Clinic).where(Clinic.name == "A").values(name="A2"))
            rows = reads.submit(_names()).result()
        assert [row[0] for row in rows] == ["A"]
        assert db.execute(_names()).scalars().all() == ["A"]
    with engine.connect() as conn:  # the newer data was there to be seen
        assert conn.execute(_names()).scalars().all() == ["A2", "B"]


def test_the_second_connection_is_read_only_and_released(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("no second connection but on PostgreSQL")
    _add_clinic(engine, "A")
    with make_session_factory(engine)() as db:
        _repeatable_read(db)
        db.execute(_names()).all()
        with SnapshotReads(db) as reads:
            refused = reads.submit(update(Clinic).values(name="changed"))
            with pytest.raises(Exception, match="read-only transaction"):
                refused.result()
        db.rollback()
    with engine.connect() as conn:
        assert conn.execute(_names()).scalars().all() == ["A"]
        # nothing left in a transaction (the reader's connection went back to the pool)
        idle = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%'"
            )
        ).scalar_one()
        assert idle == 0


def test_an_error_in_the_sessions_own_work_still_waits_for_the_reader(engine: Engine) -> None:
    """Leaving on an exception waits for the running statement (the exported snapshot must
    outlive its import) and drops those not started."""
    _add_clinic(engine, "A")
    with make_session_factory(engine)() as db:
        _repeatable_read(db)
        db.execute(_names()).all()
        started: list[Future[Sequence[Any]]] = []

        def fail_while_reading() -> None:
            with SnapshotReads(db) as reads:
                started.append(reads.submit(_names()))
                raise RuntimeError("own work failed")

        with pytest.raises(RuntimeError, match="own work"):
            fail_while_reading()
        assert started[0].done()


def test_in_memory_sqlite_runs_the_statements_on_the_sessions_connection() -> None:
    """Another connection to ``:memory:`` is another, empty, database: no background."""
    engine = make_engine("sqlite://")
    try:
        with make_session_factory(engine)() as db:
            Clinic.__table__.create(db.connection())
            db.execute(
                insert(Clinic).values(
                    public_id=uuid.uuid4(), name="M", timezone="UTC", settings={}, created_at=NOW
                )
            )
            with SnapshotReads(db) as reads:
                assert not reads.in_background
                # the session's own uncommitted row: same connection
                assert [row[0] for row in reads.submit(_names()).result()] == ["M"]
    finally:
        engine.dispose()
