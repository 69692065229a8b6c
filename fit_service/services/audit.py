"""The audit trail: who read or wrote which record, when, with what outcome.

Successful reads and writes are recorded inside the same transaction as the work they describe
(so a rolled-back write leaves no "success" row); refusals are recorded by the HTTP layer in a
transaction of their own via :func:`record_refusal`. Rows never contain scores or secrets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from fit_service.adapters.db import insert_rows
from fit_service.adapters.orm import AuditEvent, utcnow
from fit_service.services.principals import Principal

_MAX = 64  # audit_events.action / record_id column length


def _fit(value: str | None) -> str | None:
    """Keep audit values within their columns: an EHR id may be 128 characters, a refused
    path arbitrarily long. Long values keep a readable head and a hash of the whole."""
    if value is None or len(value) <= _MAX:
        return value
    return f"{value[:40]}…#{hashlib.sha256(value.encode()).hexdigest()[:20]}"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    action: str
    record_type: str | None = None
    record_id: str | None = None
    outcome: str = "success"
    status_code: int = 200


def listed(
    action: str, record_type: str, record_ids: Iterable[str], client: str | None = None
) -> list[AuditEntry]:
    """The entries of a list read: one per record the page returned (so the trail can answer
    "who saw this record", the list's action naming where it was seen), or, for an empty
    page, one so the read itself is still recorded: naming the client the list was filtered
    on, when it was (looking a client up is itself a disclosure, found or not)."""
    entries = [AuditEntry(action, record_type, record_id) for record_id in record_ids]
    if entries:
        return entries
    return [AuditEntry(action, "client", client) if client else AuditEntry(action, record_type)]


def record(db: Session, principal: Principal, entries: Iterable[AuditEntry]) -> None:
    """Add audit rows for ``principal`` to the current transaction (one COPY/INSERT)."""
    now = utcnow()
    rows = [
        {
            "at": now,
            "clinic_id": principal.clinic_id,
            "api_key_id": principal.api_key_id,
            "actor": principal.actor,
            "action": _fit(e.action),
            "record_type": e.record_type,
            "record_id": _fit(e.record_id),
            "outcome": e.outcome,
            "status_code": e.status_code,
            "request_id": principal.request_id,
        }
        for e in entries
    ]
    insert_rows(db, AuditEvent.__table__, rows)


def record_refusal(
    factory: sessionmaker[Session],
    principal: Principal | None,
    entry: AuditEntry,
    request_id: str | None,
) -> None:
    """Record a refused request (401/403/404/4xx) in its own transaction."""
    with factory() as db, db.begin():
        db.execute(
            insert(AuditEvent),
            [
                {
                    "at": utcnow(),
                    "clinic_id": principal.clinic_id if principal else None,
                    "api_key_id": principal.api_key_id if principal else None,
                    "actor": principal.actor if principal else "anonymous",
                    "action": _fit(entry.action),
                    "record_type": entry.record_type,
                    "record_id": _fit(entry.record_id),
                    "outcome": entry.outcome,
                    "status_code": entry.status_code,
                    "request_id": request_id,
                }
            ],
        )
