"""Read statements run on a second connection, in a background thread, seeing exactly what the
session's transaction sees.

Why: a monthly report is a few large read statements and a lot of Python over their rows.
Run one after the other on the session's connection, the database works while Python waits
and Python works while the database idles. Handing the later statements to a second
connection lets the database compute them while this thread is busy with the earlier rows
(the wait on the socket releases the GIL). The rows are the same ones the session would read,
so everything computed from them is too.

On PostgreSQL the second transaction imports the session's snapshot (``pg_export_snapshot()``
/ ``SET TRANSACTION SNAPSHOT``, the mechanism ``pg_dump -j`` uses), so it sees the very data
the session's own statements see, whatever commits in between. That holds only when the
session's transaction is REPEATABLE READ or SERIALIZABLE (under READ COMMITTED its own later
statements would move on to newer snapshots) and has written nothing yet (the second
connection cannot see the session's uncommitted writes): otherwise, and when the connection
pool has no connection to spare at once, the statements run on the session's own connection.

Elsewhere too the statements run on the session's own connection, in order, when submitted.
SQLite would give the same rows on a second connection (the service's transactions take the
write lock when they begin, adapters/db.py, so nothing commits under the session), but it
gains nothing: Python's sqlite3 gives up the GIL for each row's step and must win it back
from this busy thread for each row, so the reports came out slower (measured: median build
~470 ms sequential, 640-1,080 ms with the second connection, 20,000 episodes).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool, QueuePool
from sqlalchemy.sql import Executable

_log = logging.getLogger(__name__)

#: What ``pg_export_snapshot()`` returns ("00000003-0000001B-1"); checked before it is written
#: into ``SET TRANSACTION SNAPSHOT``, which takes no bind parameter.
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+\Z")


class SnapshotReads:
    """Submit read statements; each :class:`Future` gives the statement's rows as a list.

    Use as a context manager around the session's own work: leaving it waits for the
    submitted statements (on an error, for the one running only; those not started are
    dropped), since the exported snapshot lives only as long as the session's transaction
    and the second connection must be done with it first; then it releases the second
    connection. Statements run in the order submitted, one at a time.

    The second connection is taken and set up here, on the calling thread, and only if the
    pool has one to spare without waiting: a request holding its own connection must never
    wait for a second one (with every pooled connection held by a request waiting so, none
    would be freed).

    ``prepare`` runs on the second connection before its first statement (the settings the
    session's transaction has, e.g. ``SET LOCAL jit = off``).
    """

    def __init__(self, db: Session, prepare: Callable[[Connection], None] | None = None) -> None:
        self._own = db.connection()  # begins the session's transaction if it has not begun
        self._side: Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        if (
            self._own.dialect.name != "postgresql"
            or self._own.in_nested_transaction()  # no snapshot export from a savepoint
            or not _can_spare(self._own.engine.pool)
        ):
            return
        snapshot, isolation, written = self._own.exec_driver_sql(
            "SELECT pg_export_snapshot(), current_setting('transaction_isolation'),"
            " txid_current_if_assigned() IS NOT NULL"
        ).one()
        if isolation not in _ONE_SNAPSHOT or written:
            return
        if not _SNAPSHOT_ID.match(snapshot):
            raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
        try:
            self._side = _connected_to(self._own.engine, snapshot, prepare)
        except (DBAPIError, PoolTimeout) as error:
            # Only a way to be faster: a server at its connection limit, or a pool emptied by
            # a thread racing past _can_spare, leaves the statements to the session's own
            # connection (nothing of the session's transaction was touched).
            _log.warning("no second connection for the snapshot reads: %s", type(error).__name__)
            return
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fit-snapshot-read")

    @property
    def in_background(self) -> bool:
        """Whether submitted statements run on the second connection (else: at once, here)."""
        return self._pool is not None

    def submit(self, statement: Executable) -> Future[Sequence[Any]]:
        if self._pool is None or self._side is None:
            done: Future[Sequence[Any]] = Future()
            done.set_result(_rows_of(self._own, statement))
            return done
        return self._pool.submit(_rows_of, self._side, statement)

    def __enter__(self) -> SnapshotReads:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is None:
            return
        try:
            # On an error here, statements not started yet are dropped; one running is
            # waited for.
            self._pool.shutdown(wait=True, cancel_futures=exc is not None)
        finally:
            side, self._side = self._side, None
            if side is not None:
                try:
                    side.close()  # ends its read-only transaction; back to the pool
                except Exception as error:  # noqa: BLE001 - every row is read by now
                    # The server may have ended the idle connection; the pool drops it. A
                    # report whose rows are all read must not fail here.
                    _log.warning(
                        "closing the snapshot-read connection failed: %s", type(error).__name__
                    )


def _connected_to(
    engine: Engine, snapshot: str, prepare: Callable[[Connection], None] | None
) -> Connection:
    """A new connection whose (read-only) transaction reads ``snapshot``, prepared."""
    side = engine.connect()
    try:
        side.execution_options(isolation_level="REPEATABLE READ")
        side.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        side.exec_driver_sql("SET TRANSACTION READ ONLY")
        if prepare is not None:
            prepare(side)
    except BaseException:
        side.close()
        raise
    return side


def _rows_of(connection: Connection, statement: Executable) -> Sequence[Any]:
    return connection.execute(statement).all()


#: Isolation levels whose transactions keep one snapshot (``transaction_isolation``'s values).
_ONE_SNAPSHOT = frozenset({"repeatable read", "serializable"})


def _can_spare(pool: Pool) -> bool:
    """Whether ``pool`` hands out one more connection without waiting: an idle one, or room
    below its size. Its overflow is left as the margin for threads racing past this check
    together (the pool waits only once the overflow is used up too; make_engine's is as
    large as the pool); with no room below the size, reports read on their own connection.
    (A pool without those limits never waits.)"""
    if not isinstance(pool, QueuePool):
        return True
    return pool.checkedin() > 0 or pool.checkedout() < pool.size()
