"""Read statements run on a second connection, in a background thread, seeing exactly what the
session's transaction sees.

Why: a monthly report is a few large read statements and a lot of Python over their rows.
Run one after the other on the session's connection, the database works while Python waits
and Python works while the database idles. Handing the later statements to a second
connection lets the database compute them while this thread is busy with the earlier rows
(the wait on the socket releases the GIL). The rows are the same ones
the session would read, so everything computed from them is too.

On PostgreSQL the second transaction imports the session's snapshot (``pg_export_snapshot()``
/ ``SET TRANSACTION SNAPSHOT``, the mechanism ``pg_dump -j`` uses), so it sees the very data
the session's own statements see, whatever commits in between. The session's transaction
should be REPEATABLE READ (else its own later statements would move on to newer snapshots
while the second connection stays on the exported one). Neither side sees writes the session
has made and not committed: submit reads that do not depend on them (the report writes its
audit row after its reads).

Elsewhere the statements run on the session's own connection, in order, when submitted.
SQLite would give the same rows on a second connection (the service's transactions take the
write lock when they begin, adapters/db.py, so nothing commits under the session), but it
gains nothing: Python's sqlite3 gives up the GIL for each row's step and must win it back
from this busy thread for each row, so the reports came out slower (measured: median build
~470 ms sequential, 640-1,080 ms with the second connection, 20,000 episodes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

#: What ``pg_export_snapshot()`` returns ("00000003-0000001B-1"); checked before it is written
#: into ``SET TRANSACTION SNAPSHOT``, which takes no bind parameter.
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+\Z")


class SnapshotReads:
    """Submit read statements; each :class:`Future` gives the statement's rows as a list.

    Use as a context manager around the session's own work: leaving it waits for every
    submitted statement (the exported snapshot lives only as long as the session's
    transaction, so the second connection must be done with it first) and releases the
    second connection. Statements run in the order submitted, one at a time.

    ``prepare`` runs on the second connection before its first statement (the settings the
    session's transaction has, e.g. ``SET LOCAL jit = off``).
    """

    def __init__(self, db: Session, prepare: Callable[[Connection], None] | None = None) -> None:
        self._own = db.connection()  # begins the session's transaction if it has not begun
        self._prepare = prepare
        self._snapshot: str | None = None
        self._side: Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        if self._own.dialect.name != "postgresql":
            return
        snapshot = self._own.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        if not _SNAPSHOT_ID.match(snapshot):
            raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
        self._snapshot = snapshot
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fit-snapshot-read")

    @property
    def in_background(self) -> bool:
        """Whether submitted statements run on the second connection (else: at once, here)."""
        return self._pool is not None

    def submit(self, statement: Executable) -> Future[Sequence[Any]]:
        if self._pool is None:
            done: Future[Sequence[Any]] = Future()
            done.set_result(self._own.execute(statement).all())
            return done
        return self._pool.submit(self._run, statement)

    def _run(self, statement: Executable) -> Sequence[Any]:
        if self._side is None:
            self._side = self._connect()
        return self._side.execute(statement).all()

    def _connect(self) -> Connection:
        side = self._own.engine.connect()
        try:
            side.execution_options(isolation_level="REPEATABLE READ")
            side.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{self._snapshot}'")
            side.exec_driver_sql("SET TRANSACTION READ ONLY")
            if self._prepare is not None:
                self._prepare(side)
        except BaseException:
            side.close()
            raise
        return side

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
        # On an error here, statements not started yet are dropped; one running is waited for.
        self._pool.shutdown(wait=True, cancel_futures=exc is not None)
        if self._side is not None:
            self._side.rollback()  # read only: nothing to keep
            self._side.close()
            self._side = None
