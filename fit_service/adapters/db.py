"""Engine and session factory, built from settings by ``create_app`` (never at import time)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


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
        conn.exec_driver_sql("BEGIN IMMEDIATE")
