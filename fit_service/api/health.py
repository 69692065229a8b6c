"""/healthz (the process is alive) and /readyz (the database answers and is migrated)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from fit_service.adapters.db import plain_read
from fit_service.adapters.migrations import current_revision, head_revision, is_revision
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
    if current is not None and current != head and not is_revision(current):
        # A revision this code does not know: a newer release migrated the database. The
        # upgrade procedure (README: "fit migrate, then start the new release") keeps this
        # instance serving until it is replaced; a 503 here would take every old instance
        # out of rotation at once, before any new one is up.
        return {
            "status": "ok",
            "database": "reachable",
            "schema": {"current": current, "expected": head, "ahead": True},
        }
    if current != head:
        return {
            "status": "unavailable",
            "database": "reachable",
            "schema": {"current": current, "expected": head},
        }, 503
    return {"status": "ok", "database": "reachable", "schema": {"current": current}}
