"""Engine and session factory, built from settings by ``create_app`` (never at import time)."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any, TypeVar

import orjson
import psycopg
from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    Date,
    Engine,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    insert,
    make_url,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.dml import Insert, ReturningInsert
from sqlalchemy.sql.functions import FunctionElement

#: Seconds a new PostgreSQL connection may take before it fails (libpq's minimum is 2).
PG_CONNECT_TIMEOUT_S = 10


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine with the per-database settings the service relies on.

    ``hide_parameters``: a database error must not put client ids or scores into the logs.
    JSON columns (rating items, subscales, evidence) go through orjson: reading a batch's
    episode histories back decodes tens of thousands of them, and the stdlib parser was a tenth
    of a backfill's time.
    """
    kwargs.setdefault("hide_parameters", True)
    kwargs.setdefault("json_serializer", _json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        # One connection per request thread; NullPool avoids sharing SQLite handles across
        # forks (gunicorn) and threads. WAL lets readers proceed while one writer commits.
        engine = create_engine(
            url, poolclass=NullPool, connect_args={"check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA busy_timeout = 10000")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.close()

        _sqlite_begin_immediate(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    if "connect_timeout" not in make_url(url).query and "PGCONNECT_TIMEOUT" not in os.environ:
        # libpq waits for the server's answer without limit: a server that accepts the TCP
        # connection and then hangs (overloaded, stopped mid-failover) would hold /readyz and
        # every request forever. A URL's ?connect_timeout= or PGCONNECT_TIMEOUT wins.
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("connect_timeout", PG_CONNECT_TIMEOUT_S)
        kwargs["connect_args"] = connect_args
    return create_engine(url, **kwargs)


def _json_dumps(value: Any) -> str:
    # OPT_NON_STR_KEYS: like json.dumps, accept int keys (they become strings)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: services return plain data after commit; nothing lazy-loads late.
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def _sqlite_begin_immediate(engine: Engine) -> None:
    """Make every SQLite transaction take the write lock up front.

    pysqlite starts transactions lazily and SQLite fails (rather than waits) when a reader
    later tries to upgrade to a writer while another connection wrote; BEGIN IMMEDIATE makes
    concurrent writers queue on ``busy_timeout`` instead. (SQLAlchemy docs, "Serializable
    isolation / Savepoints / Transactional DDL" for pysqlite.)
    """

    @event.listens_for(engine, "connect")
    def _no_pysqlite_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get(_PLAIN_READ):
            conn.exec_driver_sql("BEGIN")  # deferred: a reader, never queued behind a writer
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


#: Execution option of :func:`plain_read` connections (the begin hook above looks for it).
_PLAIN_READ = "fit_plain_read"
#: How long a :func:`plain_read` on SQLite waits for a lock before giving up, in milliseconds.
PLAIN_READ_BUSY_TIMEOUT_MS = 1000


@contextlib.contextmanager
def plain_read(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only that does not queue for the write lock (/readyz).

    On SQLite every other transaction begins IMMEDIATE and so waits, up to ``busy_timeout``
    (10 s), for any writer to finish; a plain BEGIN reads the last committed state at once (WAL)
    and waits at most :data:`PLAIN_READ_BUSY_TIMEOUT_MS` when it must. A busy database is not a
    down one. Writing through this connection is a mistake. Elsewhere: an ordinary connection.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.execution_options(**{_PLAIN_READ: True})
            # NullPool: this connection is closed on release, the shorter wait goes with it.
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {PLAIN_READ_BUSY_TIMEOUT_MS}")
        yield conn


#: Fewer rows go in as an INSERT: a COPY (and drawing ids first) costs extra round trips, which
#: a single session's write would feel.
_COPY_FROM = 32


def insert_rows(db: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows (all with the same keys) into ``table`` in the session's transaction.

    On PostgreSQL through ``COPY``: a backfill batch writes thousands of ratings, revisions
    and audit rows, and COPY takes a tenth of the time of a pipelined executemany (measured:
    2,000 ratings ~100 ms as INSERTs). Elsewhere, or for a few rows, an executemany INSERT.
    JSON columns are serialised as the engine would (Python ``None`` becomes JSON ``null``,
    SQLAlchemy's default). Errors come out as SQLAlchemy's exceptions (``IntegrityError``…),
    as from any statement, so callers' retry logic holds.
    """
    if not rows:
        return
    conn = db.connection()
    if conn.dialect.name != "postgresql" or len(rows) < _COPY_FROM:
        conn.execute(_insert(table), rows)
        return
    given = list(rows[0])
    # COPY skips SQLAlchemy's Python-side column defaults (ids, timestamps, flags): apply
    # them here, per row as an INSERT would.
    defaults = [c for c in table.columns if c.name not in rows[0] and c.default is not None]
    if any(
        not (d.default is not None and (d.default.is_scalar or d.default.is_callable))
        for d in defaults
    ):
        conn.execute(_insert(table), rows)
        return
    columns = given + [c.name for c in defaults]
    is_json = [isinstance(table.c[name].type, JSON) for name in columns]
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    driver = conn.connection.driver_connection
    assert driver is not None  # a checked-out connection always has its driver connection
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                values = [row[name] for name in given]
                values += [_default(c) for c in defaults]
                copy.write_row(
                    [
                        _json_dumps(value) if json else value
                        for value, json in zip(values, is_json, strict=True)
                    ]
                )
    except psycopg.Error as exc:
        raise DBAPIError.instance(
            statement, None, exc, psycopg.Error, hide_parameters=True
        ) from exc


def insert_rows_returning_ids(
    db: Session, table: Table, rows: Sequence[Mapping[str, Any]]
) -> list[int]:
    """Insert rows and return their new ``id`` values in row order (ascending, as an INSERT
    would assign them). On PostgreSQL the ids are drawn from the table's sequence first and
    the rows go in by ``COPY`` (see :func:`insert_rows`)."""
    if not rows:
        return []
    conn = db.connection()
    if conn.dialect.name != "postgresql" or len(rows) < _COPY_FROM:
        return list(conn.execute(_insert_returning_id(table), rows).scalars())
    ids = sorted(conn.execute(_NEXT_IDS, {"table": table.name, "n": len(rows)}).scalars())
    insert_rows(db, table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
    return ids


# Built once per table: building and cache-keying a statement costs more Python than a one-row
# INSERT takes (see services/recording.py).
@functools.cache
def _insert(table: Table) -> Insert:
    return insert(table)


@functools.cache
def _insert_returning_id(table: Table) -> ReturningInsert[int]:
    return insert(table).returning(table.c.id, sort_by_parameter_order=True)


def _default(column: Column[Any]) -> Any:
    default = column.default
    assert default is not None
    return default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]


_NEXT_IDS = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")


#: builds the condition "``column`` is one of the keys passed as parameter ``name``"
KeyMatch = Callable[[ColumnElement[Any] | QueryableAttribute[Any], str], ColumnElement[bool]]
_Statement = TypeVar("_Statement")


def _any_of(column: ColumnElement[Any] | QueryableAttribute[Any], name: str) -> ColumnElement[bool]:
    return column == any_(bindparam(name, type_=ARRAY(column.type)))


def _in(column: ColumnElement[Any] | QueryableAttribute[Any], name: str) -> ColumnElement[bool]:
    return column.in_(bindparam(name, expanding=True))


def by_dialect(build: Callable[[KeyMatch], _Statement]) -> Callable[[Connection], _Statement]:
    """Build a statement that looks rows up by a list of keys once per dialect; return the
    picker for a connection. On PostgreSQL the keys go as one array (``col = ANY(:keys)``),
    elsewhere as an expanded ``IN``. With the array the statement's text is the same for any
    number of keys, so neither SQLAlchemy (rendering 900 placeholders) nor psycopg (parsing a
    statement too long for its cache) redoes that work on every backfill batch."""
    postgresql, other = build(_any_of), build(_in)
    return lambda conn: postgresql if conn.dialect.name == "postgresql" else other


def set_local(connection: Connection, setting: str, value: str, *, since: tuple[int, ...]) -> None:
    """``SET LOCAL setting = value`` for the rest of the connection's transaction, on
    PostgreSQL from the version ``since`` that has the setting; nothing elsewhere. Takes a
    connection, not an engine: its dialect knows the server's version once connected."""
    dialect = connection.dialect
    if dialect.name == "postgresql" and (dialect.server_version_info or (0,)) >= since:
        connection.exec_driver_sql(f"SET LOCAL {setting} = {value}")


class month_start(FunctionElement[date]):
    """The first day of a date's calendar month, as a date, on either database (SQL has no
    common spelling: ``date_trunc`` on PostgreSQL, ``date(x, 'start of month')`` on SQLite)."""

    type = Date()
    name = "month_start"
    inherit_cache = True


@compiles(month_start, "postgresql")
def _month_start_postgresql(element: month_start, compiler: Any, **kw: Any) -> str:
    # via timestamp *without* time zone: date_trunc of a timestamptz would depend on the
    # session's TimeZone setting (and is not immutable)
    day = compiler.process(element.clauses, **kw)
    return f"CAST(date_trunc('month', CAST({day} AS TIMESTAMP)) AS DATE)"


@compiles(month_start, "sqlite")
def _month_start_sqlite(element: month_start, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)}, 'start of month')"
