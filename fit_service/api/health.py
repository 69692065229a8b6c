"""/healthz (the process is alive) and /readyz (the database answers and is migrated)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from fit_service.adapters.db import plain_read
from fit_service.adapters.migrations import current_revision, head_revision
from fit_service.api.context import wiring

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz() -> Any:
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> Any:
    head = head_revision()
    try:
        # A plain read: on SQLite it must not queue behind a writer (busy is not down).
        with plain_read(wiring().engine) as conn:
            current = current_revision(conn)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the DB means "not ready"
        return {
            "status": "unavailable",
            "database": "unreachable",
            "error": type(exc).__name__,
        }, 503
    if current != head:
        return {
            "status": "unavailable",
            "database": "reachable",
            "schema": {"current": current, "expected": head},
        }, 503
    return {"status": "ok", "database": "reachable", "schema": {"current": current}}
