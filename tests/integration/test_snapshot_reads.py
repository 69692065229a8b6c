"""adapters/snapshot_reads: statements handed to the second connection see exactly what the
session's transaction sees, run in the background only where that holds and a connection is
free at once, and leave nothing open behind them."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
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


def _names() -> Any:
    return select(Clinic.name).order_by(Clinic.name)


def _repeatable_read(db: Session) -> None:
    if db.get_bind().dialect.name == "postgresql":
        db.connection(execution_options={"isolation_level": "REPEATABLE READ"})


@pytest.fixture
def postgresql(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("a second connection only on PostgreSQL")
    return engine


@pytest.fixture
def statement_threads(engine: Engine) -> Iterator[list[tuple[str, str]]]:
    """(thread name, statement) of every statement the engine runs."""
    seen: list[tuple[str, str]] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append((threading.current_thread().name, statement))

    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


def test_reads_see_the_sessions_data_and_run_in_the_background_on_postgresql(
    engine: Engine, statement_threads: list[tuple[str, str]]
) -> None:
    _add_clinic(engine, "A")
    prepared: list[str] = []
    with make_session_factory(engine)() as db:
        _repeatable_read(db)
        own = db.execute(_names()).scalars().all()
        with SnapshotReads(db, prepare=lambda _c: prepared.append("yes")) as reads:
            assert reads.in_background == (engine.dialect.name == "postgresql")
            first, second = reads.submit(_names()), reads.submit(select(Clinic.id))
            assert [row[0] for row in first.result()] == own == ["A"]
            assert len(second.result()) == 1
    here = threading.current_thread().name
    reads_of_clinics = [name for name, sql in statement_threads if "FROM clinics" in sql]
    if engine.dialect.name == "postgresql":
        assert prepared == ["yes"]
        # the session's own read here, both submitted ones on the reader's thread
        assert reads_of_clinics[0] == here
        assert len(reads_of_clinics) == 3
        assert all(name != here for name in reads_of_clinics[1:])
    else:  # SQLite: on the session's own connection, nothing to prepare
        assert prepared == []
        assert set(reads_of_clinics) == {here}


def test_a_commit_after_the_snapshot_is_not_seen(postgresql: Engine) -> None:
    """Another writer commits after the session's first read and before the statement is
    submitted: the statement still reads the session's snapshot, not the newer data."""
    engine = postgresql
    _add_clinic(engine, "A")
    with make_session_factory(engine)() as db:
        _repeatable_read(db)
        assert db.execute(_names()).scalars().all() == ["A"]  # the session's snapshot
        _add_clinic(engine, "B")  # another connection, committed before the second one opens
        with SnapshotReads(db) as reads:
            assert reads.in_background
            with engine.begin() as conn:  # and one committed after
                conn.execute(update(Clinic).where(Clinic.name == "A").values(name="A2"))
            rows = reads.submit(_names()).result()
        assert [row[0] for row in rows] == ["A"]
        assert db.execute(_names()).scalars().all() == ["A"]
    with engine.connect() as conn:  # the newer data was there to be seen
        assert conn.execute(_names()).scalars().all() == ["A2", "B"]


@pytest.mark.parametrize("case", ["read committed", "written first"])
def test_no_second_connection_where_it_would_see_other_data(postgresql: Engine, case: str) -> None:
    """Under READ COMMITTED the session's own statements move on to newer data, and the
    session's uncommitted writes are invisible to another connection: in both cases the
    statements run on the session's own connection and see what it sees."""
    engine = postgresql
    _add_clinic(engine, "A")
    with make_session_factory(engine)() as db:
        if case == "read committed":
            db.execute(_names()).all()
        else:
            _repeatable_read(db)
            db.execute(update(Clinic).values(name="A (renamed, not committed)"))
        with SnapshotReads(db) as reads:
            assert not reads.in_background
            if case == "read committed":
                _add_clinic(engine, "B")  # committed: the session's next statement sees it
            rows = [row[0] for row in reads.submit(_names()).result()]
        assert rows == db.execute(_names()).scalars().all()
        db.rollback()


def test_no_wait_for_a_second_connection_when_the_pool_has_none_to_spare(
    postgresql: Engine,
) -> None:
    """A request holding its own connection never waits for a second one (with every
    connection held by a request waiting so, none would come free): it reads on its own."""
    url = postgresql.url.render_as_string(hide_password=False)
    small = make_engine(url, pool_size=1, max_overflow=0, pool_timeout=5)
    try:
        _add_clinic(small, "A")
        with make_session_factory(small)() as db:
            _repeatable_read(db)
            db.execute(_names()).all()
            started = time.perf_counter()
            with SnapshotReads(db) as reads:
                assert not reads.in_background
                assert [row[0] for row in reads.submit(_names()).result()] == ["A"]
            assert time.perf_counter() - started < 1
    finally:
        small.dispose()


def test_a_second_connection_that_fails_to_open_leaves_the_reads_to_the_session(
    postgresql: Engine,
) -> None:
    """The second connection only makes a report faster: when it cannot be had (here its
    setup fails as a server at its connection limit would), the statements run on the
    session's own connection, and the failed one is not left open."""
    engine = postgresql
    _add_clinic(engine, "A")

    def refuse(_connection: Any) -> None:
        raise OperationalError("SET LOCAL", {}, Exception("too many clients already"))

    with make_session_factory(engine)() as db:
        _repeatable_read(db)
        db.execute(_names()).all()
        with SnapshotReads(db, prepare=refuse) as reads:
            assert not reads.in_background
            assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
            assert [row[0] for row in reads.submit(_names()).result()] == ["A"]


def test_no_second_connection_inside_a_savepoint(postgresql: Engine) -> None:
    """PostgreSQL exports no snapshot from a subtransaction: the reads stay on the session's
    connection, and its transaction is not aborted by trying."""
    _add_clinic(postgresql, "A")
    with make_session_factory(postgresql)() as db:
        _repeatable_read(db)
        db.execute(_names()).all()
        with db.begin_nested():
            with SnapshotReads(db) as reads:
                assert not reads.in_background
                assert [row[0] for row in reads.submit(_names()).result()] == ["A"]
            assert db.execute(_names()).scalars().all() == ["A"]


def test_the_second_connection_is_read_only_and_released(postgresql: Engine) -> None:
    engine = postgresql
    _add_clinic(engine, "A")
    with make_session_factory(engine)() as db:
        _repeatable_read(db)
        db.execute(_names()).all()
        with SnapshotReads(db) as reads:
            assert engine.pool.checkedout() == 2  # type: ignore[attr-defined]
            refused = reads.submit(update(Clinic).values(name="changed"))
            with pytest.raises(DBAPIError, match="read-only transaction"):
                refused.result()
        assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        db.rollback()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(_names()).scalars().all() == ["A"]
        # a connection back from the reader is as any other (the pool ends its transaction)
        settings = conn.exec_driver_sql(
            "SELECT current_setting('transaction_isolation'),"
            " current_setting('transaction_read_only')"
        ).one()
        assert tuple(settings) == ("read committed", "off")


def test_an_error_in_a_submitted_statement_reaches_the_caller(postgresql: Engine) -> None:
    with make_session_factory(postgresql)() as db:
        _repeatable_read(db)
        db.execute(_names()).all()
        with SnapshotReads(db) as reads:
            failed = reads.submit(select(text("1 / 0")))
            with pytest.raises(DBAPIError, match="division by zero"):
                failed.result()
    assert postgresql.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_an_error_in_the_sessions_own_work_waits_for_the_running_statement(
    postgresql: Engine,
) -> None:
    """Leaving on an exception waits for the statement running (the exported snapshot must
    outlive its import), drops those not started, and releases the second connection."""
    engine = postgresql
    futures: list[Any] = []
    with make_session_factory(engine)() as db:
        _repeatable_read(db)
        db.execute(_names()).all()

        sleeping = threading.Event()

        def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "pg_sleep" in statement:
                sleeping.set()

        def fail_while_reading() -> None:
            with SnapshotReads(db) as reads:
                futures.append(reads.submit(select(text("pg_sleep(0.3)"))))
                futures.append(reads.submit(_names()))
                assert sleeping.wait(10)  # the first is running
                raise RuntimeError("own work failed")

        event.listen(engine, "before_cursor_execute", note)

        try:
            with pytest.raises(RuntimeError, match="own work"):
                fail_while_reading()
        finally:
            event.remove(engine, "before_cursor_execute", note)
        running, waiting = futures
        assert running.done()
        assert not running.cancelled()
        assert running.result() is not None
        assert waiting.cancelled()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


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
