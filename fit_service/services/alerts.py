"""Use cases on alerts: the feed, one alert, and the clinician's status changes.

Scope: every query is limited to the caller's clinic; a clinician key sees only alerts of its
own clinician id whose client it may see now (:func:`fit_service.services.reads.visible_clients`,
the rule of the client and trajectory reads), a manager every alert of the clinic; another
clinic's alert is a 404. A clinician who loses a client (the EHR re-sends the sessions under
another clinician, a correction) thus loses the client's alerts too, closed ones included: a
live alert moves to the treating clinician with the next assessment
(:mod:`fit_service.services.alerting`), a closed one stays with the clinician who closed it and
is hidden from them while they may not see the client.

Concurrency: each alert carries a ``version`` (the HTTP ETag). A status change names the version
it was decided on (``If-Match``); the ``UPDATE`` is conditional on that version, so of two
clinicians acting on the same alert at once exactly one wins and the other gets a 412 and
re-reads, whatever the database's locking.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, false, select, update

from fit_service.adapters.orm import Alert, Client, Clinician, Episode, utcnow
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.alerts import AlertStatus, check_transition
from fit_service.domain.errors import FitError, NotFound, PreconditionFailed, PreconditionRequired
from fit_service.domain.risk import Severity
from fit_service.services import audit
from fit_service.services.principals import Permission, Principal
from fit_service.services.reads import Page, decode_cursor, encode_cursor, visible_clients


@dataclass(frozen=True, slots=True)
class FeedFilter:
    statuses: tuple[AlertStatus, ...] = ()
    min_severity: Severity | None = None
    since: datetime | None = None  # on opened_at, inclusive
    until: datetime | None = None  # on opened_at, exclusive
    client: str | None = None  # the EHR client id: only this client's alerts


def _feed_scope(feed: FeedFilter) -> str:
    """The list and filter a feed cursor belongs to (:func:`reads.decode_cursor`). The client
    is named only when filtered on, so the unfiltered feed's cursors stay as they were."""
    statuses = sorted(status.value for status in feed.statuses)
    scope = f"alerts|{statuses}|{feed.min_severity}|{feed.since}|{feed.until}"
    return scope if feed.client is None else f"{scope}|client={feed.client!r}"


def _visible(principal: Principal) -> ColumnElement[bool]:
    """SQL condition: alerts this principal may see. For a clinician: its own alerts, of clients
    it may see now (``visible_clients``, on the ``Client`` that :func:`_query` joins)."""
    principal.require(Permission.ALERTS_READ)
    in_clinic = Alert.clinic_id == principal.clinic_id
    if principal.sees_all_clients:
        return in_clinic
    if principal.clinician_id is None:
        return in_clinic & false()
    return in_clinic & (Alert.clinician_id == principal.clinician_id) & visible_clients(principal)


def _query() -> Select[Alert, str, uuid.UUID, str]:
    return (
        select(
            Alert,
            Client.external_id.label("client"),
            Episode.public_id.label("episode"),
            Clinician.external_id.label("clinician"),
        )
        .join(Client, Client.id == Alert.client_id)
        .join(Episode, Episode.id == Alert.episode_id)
        .outerjoin(Clinician, Clinician.id == Alert.clinician_id)
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def alert_view(row: Any) -> dict[str, Any]:
    a: Alert = row.Alert
    return {
        "id": str(a.public_id),
        "episode_id": str(row.episode),
        "client_id": row.client,
        "clinician_id": row.clinician,
        "kind": a.kind,
        "leg": a.leg,
        "severity": Severity(a.severity).label,
        "status": a.status,
        "session_number": a.session_number,
        "evidence": a.evidence,
        "guidance": a.guidance,
        "model": a.model,
        "opened_at": _iso(a.opened_at),
        "updated_at": _iso(a.updated_at),
        "acknowledged_at": _iso(a.acknowledged_at),
        "closed_at": _iso(a.closed_at),
        "closing_note": a.closing_note,
        "version": a.version,
    }


def list_alerts(
    uow: UnitOfWork,
    principal: Principal,
    feed: FeedFilter,
    cursor: str | None,
    limit: int,
) -> Page:
    """Newest first, keyset-paginated (the cursor is the last alert seen). A client filter
    naming a client the principal may not see (another clinician's, another clinic's, or
    none at all) gives an empty feed, as the sessions list does: never a 404 saying whether
    it exists."""
    query = _query().where(_visible(principal))  # the permission check comes first
    scope = _feed_scope(feed)
    before = decode_cursor(cursor, scope)
    if before:
        query = query.where(Alert.id < before)
    if feed.statuses:
        query = query.where(Alert.status.in_([s.value for s in feed.statuses]))
    if feed.min_severity is not None:
        query = query.where(Alert.severity >= int(feed.min_severity))
    if feed.since is not None:
        query = query.where(Alert.opened_at >= feed.since)
    if feed.until is not None:
        query = query.where(Alert.opened_at < feed.until)
    if feed.client is not None:
        query = query.where(Client.external_id == feed.client)
    rows = uow.session.execute(query.order_by(Alert.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    audit.record(
        uow.session,
        principal,
        audit.listed("alert.list", "alert", (str(r.Alert.public_id) for r in page), feed.client),
    )
    uow.commit()
    return Page(
        [alert_view(r) for r in page],
        encode_cursor(page[-1].Alert.id, scope) if len(rows) > limit else None,
    )


def _row(uow: UnitOfWork, principal: Principal, alert_id: uuid.UUID) -> Any:
    row = uow.session.execute(
        _query().where(_visible(principal), Alert.public_id == alert_id)
    ).first()
    if row is None:
        raise NotFound(f"no alert {alert_id}", field="alert_id")
    return row


def get_alert(uow: UnitOfWork, principal: Principal, alert_id: uuid.UUID) -> dict[str, Any]:
    view = alert_view(_row(uow, principal, alert_id))
    audit.record(uow.session, principal, [audit.AuditEntry("alert.read", "alert", str(alert_id))])
    uow.commit()
    return view


def change_status(
    uow: UnitOfWork,
    principal: Principal,
    alert_id: uuid.UUID,
    target: AlertStatus,
    expected_version: int | None,
    note: str | None = None,
) -> dict[str, Any]:
    """Move an alert to ``target`` if it is still at ``expected_version`` (the If-Match)."""
    principal.require(Permission.ALERTS_ACT)
    if note is not None and not note.strip():
        # A bad body (422, as an empty note and a blank goal are), not a conflict with the
        # alert's state: checked before the If-Match and the alert's status.
        field = "reason" if target is AlertStatus.DISMISSED else "note"
        raise FitError(f"{field} must not be blank", field=field, rule="blank_text")
    if expected_version is None:
        raise PreconditionRequired(
            "send If-Match with the alert's ETag (GET the alert first)",
            field="If-Match",
        )
    row = _row(uow, principal, alert_id)
    alert: Alert = row.Alert
    if alert.version != expected_version:
        raise PreconditionFailed(
            f"the alert changed (now version {alert.version}); re-read it and decide again",
            field="If-Match",
        )
    note = note.strip() if note else None
    check_transition(AlertStatus(alert.status), target, note)
    now = utcnow()
    values: dict[str, Any] = {
        "status": target.value,
        "updated_at": now,
        "version": expected_version + 1,
    }
    if target is AlertStatus.ACKNOWLEDGED:
        values["acknowledged_at"] = now
    else:
        values.update(closed_at=now, closing_note=note, closed_by_key_id=principal.api_key_id)
    result = uow.session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.version == expected_version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise PreconditionFailed(
            "the alert changed while this request ran; re-read it and decide again",
            field="If-Match",
        )
    action = {
        AlertStatus.ACKNOWLEDGED: "alert.acknowledge",
        AlertStatus.RESOLVED: "alert.resolve",
        AlertStatus.DISMISSED: "alert.dismiss",
    }[target]
    audit.record(uow.session, principal, [audit.AuditEntry(action, "alert", str(alert_id))])
    view = alert_view(row)
    view.update(
        status=target.value,
        updated_at=now.isoformat(),
        version=expected_version + 1,
    )
    if target is AlertStatus.ACKNOWLEDGED:
        view["acknowledged_at"] = now.isoformat()
    else:
        view.update(closed_at=now.isoformat(), closing_note=note)
    uow.commit()
    return view


def acknowledge(
    uow: UnitOfWork, principal: Principal, alert_id: uuid.UUID, expected_version: int | None
) -> dict[str, Any]:
    return change_status(uow, principal, alert_id, AlertStatus.ACKNOWLEDGED, expected_version)


def resolve(
    uow: UnitOfWork,
    principal: Principal,
    alert_id: uuid.UUID,
    expected_version: int | None,
    note: str,
) -> dict[str, Any]:
    """Close with the clinician's note of what was done."""
    return change_status(uow, principal, alert_id, AlertStatus.RESOLVED, expected_version, note)


def dismiss(
    uow: UnitOfWork,
    principal: Principal,
    alert_id: uuid.UUID,
    expected_version: int | None,
    reason: str,
) -> dict[str, Any]:
    """Close as not needing action, with the reason."""
    return change_status(uow, principal, alert_id, AlertStatus.DISMISSED, expected_version, reason)
