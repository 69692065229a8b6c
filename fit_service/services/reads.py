"""Read use cases: lists with cursor pagination and single records, scoped to one clinic
(and, for clinician keys, to the clinician's own clients). Every read is audited."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select

from fit_service.adapters.orm import (
    Client,
    Clinician,
    Episode,
    SessionRevision,
    TherapySession,
)
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.errors import FitError, NotFound
from fit_service.services import audit, trajectories, views
from fit_service.services.history import load_histories
from fit_service.services.principals import Permission, Principal


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


#: The problem field of a cursor error: the query parameter, named as the API's schema
#: errors name query parameters ("query.limit").
CURSOR_FIELD = "query.cursor"


def _scope_tag(scope: str) -> str:
    """A short fingerprint of the list and filter a cursor belongs to (not a secret: it only
    lets a cursor from another list or filter be refused instead of silently skipping rows)."""
    return hashlib.sha256(scope.encode()).hexdigest()[:12]


def encode_cursor(last_id: int, scope: str) -> str:
    """An opaque cursor: the keyset position (last row id) and the list it was issued for
    (``scope``: the list's name and its filter, e.g. ``"sessions|client=C-1"``)."""
    payload = {"after": last_id, "for": _scope_tag(scope)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, scope: str) -> int:
    """The keyset position inside a cursor issued for ``scope``. A cursor of another list
    (the alert feed counts down, the others up) or of the same list under another filter
    would skip rows silently, so it is refused; so is a cursor naming no list (no ``"for"``),
    which could not be checked. A cursor is not a secret and is not signed: whatever it
    says, the query pages only through the caller's own clinic."""
    if not cursor:
        return 0
    invalid = FitError(
        "cursor is not one this service issued", field=CURSOR_FIELD, rule="invalid_cursor"
    )
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded))
        value, tag = payload["after"], payload["for"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid from None
    # bool is an int in Python; and a keyset position must fit a BIGINT.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise invalid
    if not isinstance(tag, str):
        raise invalid
    if tag != _scope_tag(scope):
        raise FitError(
            "cursor belongs to another list or filter: start again without a cursor, or keep "
            "the filter the cursor came with",
            field=CURSOR_FIELD,
            rule="cursor_mismatch",
        )
    return value


def visible_clients(principal: Principal) -> ColumnElement[bool]:
    """SQL condition: clients this principal may see (all of the clinic's, or own ones)."""
    in_clinic = Client.clinic_id == principal.clinic_id
    if principal.sees_all_clients:
        return in_clinic
    principal.require(Permission.OWN_CLIENTS_READ)
    own = or_(
        Client.id.in_(
            select(TherapySession.client_id).where(
                TherapySession.clinician_id == principal.clinician_id
            )
        ),
        Client.id.in_(
            select(Episode.client_id).where(Episode.clinician_id == principal.clinician_id)
        ),
    )
    return in_clinic & own


def _client_row(uow: UnitOfWork, principal: Principal, external_id: str) -> Client:
    client = uow.session.scalar(
        select(Client).where(visible_clients(principal), Client.external_id == external_id)
    )
    if client is None:
        raise NotFound(f"no client {external_id}", field="client_id")
    return client


def list_clients(uow: UnitOfWork, principal: Principal, cursor: str | None, limit: int) -> Page:
    principal.require(Permission.CLIENTS_READ, Permission.OWN_CLIENTS_READ)
    after = decode_cursor(cursor, "clients")
    rows = uow.session.execute(
        select(Client.id, Client.external_id, Client.age_band, Client.created_at)
        .where(visible_clients(principal), Client.id > after)
        .order_by(Client.id)
        .limit(limit + 1)
    ).all()
    page = rows[:limit]
    items = [
        {"client_id": r.external_id, "age_band": r.age_band, "first_seen": r.created_at.isoformat()}
        for r in page
    ]
    audit.record(
        uow.session,
        principal,
        audit.listed("client.list", "client", (r.external_id for r in page)),
    )
    uow.commit()
    return Page(items, encode_cursor(page[-1].id, "clients") if len(rows) > limit else None)


def get_client(uow: UnitOfWork, principal: Principal, external_id: str) -> dict[str, Any]:
    """A client with every episode and its session-by-session scores."""
    principal.require(Permission.CLIENTS_READ, Permission.OWN_CLIENTS_READ)
    client = _client_row(uow, principal, external_id)
    episode_ids = uow.session.scalars(
        select(Episode.id).where(Episode.client_id == client.id).order_by(Episode.id)
    ).all()
    histories = load_histories(uow.session, episode_ids)
    limits, closed = trajectories.limits_and_closed(uow, principal.clinic_id)
    models = trajectories.models_for(uow, principal.clinic_id, histories.values(), limits, closed)
    view = {
        "client_id": client.external_id,
        "age_band": client.age_band,
        "first_seen": client.created_at.isoformat(),
        "episodes": [views.episode_view(histories[i], limits, models) for i in episode_ids],
    }
    audit.record(uow.session, principal, [audit.AuditEntry("client.read", "client", external_id)])
    uow.commit()
    return view


def list_clinicians(uow: UnitOfWork, principal: Principal, cursor: str | None, limit: int) -> Page:
    principal.require(Permission.CLIENTS_READ, Permission.OWN_CLIENTS_READ)
    after = decode_cursor(cursor, "clinicians")
    query = select(Clinician.id, Clinician.external_id).where(
        Clinician.clinic_id == principal.clinic_id, Clinician.id > after
    )
    if not principal.sees_all_clients:
        query = query.where(Clinician.id == principal.clinician_id)
    rows = uow.session.execute(query.order_by(Clinician.id).limit(limit + 1)).all()
    page = rows[:limit]
    uow.commit()
    return Page(
        [{"clinician_id": r.external_id} for r in page],
        encode_cursor(page[-1].id, "clinicians") if len(rows) > limit else None,
    )


def list_sessions(
    uow: UnitOfWork,
    principal: Principal,
    cursor: str | None,
    limit: int,
    client: str | None = None,
) -> Page:
    principal.require(Permission.CLIENTS_READ, Permission.OWN_CLIENTS_READ)
    scope = f"sessions|client={client!r}"
    after = decode_cursor(cursor, scope)
    query = (
        select(
            TherapySession.id,
            TherapySession.public_id,
            TherapySession.ehr_session_id,
            TherapySession.date,
            TherapySession.number,
            TherapySession.attendance,
            TherapySession.revision,
            Client.external_id.label("client"),
            Episode.public_id.label("episode"),
        )
        .join(Client, Client.id == TherapySession.client_id)
        .join(Episode, Episode.id == TherapySession.episode_id)
        .where(visible_clients(principal), TherapySession.id > after)
    )
    if client is not None:
        query = query.where(Client.external_id == client)
    rows = uow.session.execute(query.order_by(TherapySession.id).limit(limit + 1)).all()
    page = rows[:limit]
    items = [
        {
            "id": str(r.public_id),
            "ehr_session_id": r.ehr_session_id,
            "client_id": r.client,
            "episode_id": str(r.episode),
            "date": r.date.isoformat(),
            "number": r.number,
            "attendance": r.attendance,
            "revision": r.revision,
        }
        for r in page
    ]
    audit.record(
        uow.session,
        principal,
        audit.listed("session.list", "session", (str(r.public_id) for r in page), client),
    )
    uow.commit()
    return Page(items, encode_cursor(page[-1].id, scope) if len(rows) > limit else None)


def visible_episode_row(uow: UnitOfWork, principal: Principal, episode_id: uuid.UUID) -> int:
    """The row id of an episode the principal may see; 404 otherwise (never says it exists)."""
    row = uow.session.scalar(
        select(Episode.id)
        .join(Client, Client.id == Episode.client_id)
        .where(visible_clients(principal), Episode.public_id == episode_id)
    )
    if row is None:
        raise NotFound(f"no episode {episode_id}", field="episode_id")
    return row


def _session_row(uow: UnitOfWork, principal: Principal, session_id: uuid.UUID) -> int:
    row = uow.session.scalar(
        select(TherapySession.id)
        .join(Client, Client.id == TherapySession.client_id)
        .where(visible_clients(principal), TherapySession.public_id == session_id)
    )
    if row is None:
        raise NotFound(f"no session {session_id}", field="session_id")
    return row


def get_session(uow: UnitOfWork, principal: Principal, session_id: uuid.UUID) -> dict[str, Any]:
    principal.require(Permission.CLIENTS_READ, Permission.OWN_CLIENTS_READ)
    _session_row(uow, principal, session_id)
    view = views.sessions_by_public_id(uow, principal.clinic_id, [session_id])[session_id]
    audit.record(
        uow.session, principal, [audit.AuditEntry("session.read", "session", str(session_id))]
    )
    uow.commit()
    return view


def session_revisions(
    uow: UnitOfWork, principal: Principal, session_id: uuid.UUID
) -> list[dict[str, Any]]:
    """Every revision the EHR sent for a session, oldest first: corrections never erase."""
    principal.require(Permission.CLIENTS_READ, Permission.OWN_CLIENTS_READ)
    row_id = _session_row(uow, principal, session_id)
    rows = uow.session.execute(
        select(SessionRevision.revision, SessionRevision.recorded_at, SessionRevision.content)
        .where(SessionRevision.session_id == row_id)
        .order_by(SessionRevision.revision)
    ).all()
    audit.record(
        uow.session, principal, [audit.AuditEntry("session.revisions", "session", str(session_id))]
    )
    uow.commit()
    return [
        {"revision": r.revision, "recorded_at": r.recorded_at.isoformat(), "content": r.content}
        for r in rows
    ]
