"""Use cases on episodes of care: open one explicitly, close one with its ending reason."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fit_service.adapters.orm import Client, Clinic, Clinician, Episode, TherapySession, utcnow
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.errors import Conflict, InvalidSession, NotFound
from fit_service.services import alerting, audit, thresholds, trajectories, views
from fit_service.services.history import load_histories
from fit_service.services.inputs import EARLIEST_DATE, EndingReason
from fit_service.services.principals import Permission, Principal
from fit_service.services.reads import visible_clients
from fit_service.services.recording import closed_episode_refusal


def _today(uow: UnitOfWork, clinic_id: int) -> date:
    tz = uow.session.scalar(select(Clinic.timezone).where(Clinic.id == clinic_id)) or "UTC"
    return datetime.now(zoneinfo.ZoneInfo(tz)).date()


def _flush_or_conflict(db: Session) -> None:
    """Two requests creating the same client or clinician at once: one wins the unique
    constraint; the other is told to retry (409) instead of failing with a 500."""
    try:
        db.flush()
    except IntegrityError:
        raise Conflict(
            "a concurrent request created the same record; retry the request",
            rule="concurrent_write",
        ) from None


def open_episode(
    uow: UnitOfWork,
    principal: Principal,
    client_external_id: str,
    opened_on: date,
    clinician: str | None = None,
    age_band: str | None = None,
) -> dict[str, Any]:
    """Open an episode before its first session arrives (useful for backfills whose first
    session date is not the referral date). A client has at most one open episode."""
    principal.require(Permission.EPISODES_WRITE)
    db = uow.session
    if opened_on > _today(uow, principal.clinic_id):
        raise InvalidSession("opened_on is in the future", field="opened_on", rule="date_in_future")
    if opened_on < EARLIEST_DATE:
        raise InvalidSession(
            f"opened_on is before {EARLIEST_DATE}", field="opened_on", rule="date_too_early"
        )
    client = db.scalar(
        select(Client).where(
            Client.clinic_id == principal.clinic_id, Client.external_id == client_external_id
        )
    )
    if client is None:
        if age_band is None:
            raise InvalidSession(
                "client_age_band is required for a new client",
                field="client_age_band",
                rule="required_for_new_client",
            )
        client = Client(
            clinic_id=principal.clinic_id, external_id=client_external_id, age_band=age_band
        )
        db.add(client)
        _flush_or_conflict(db)
    clinician_id = None
    if clinician is not None:
        clinician_id = db.scalar(
            select(Clinician.id).where(
                Clinician.clinic_id == principal.clinic_id, Clinician.external_id == clinician
            )
        )
        if clinician_id is None:
            row = Clinician(clinic_id=principal.clinic_id, external_id=clinician)
            db.add(row)
            _flush_or_conflict(db)
            clinician_id = row.id
    episode = Episode(
        clinic_id=principal.clinic_id,
        client_id=client.id,
        clinician_id=clinician_id,
        opened_on=opened_on,
        opened_explicitly=True,
        status="open",
    )
    db.add(episode)
    try:
        db.flush()
    except IntegrityError:
        raise Conflict(
            f"client {client_external_id} already has an open episode; close it first",
            field="client_id",
            rule="one_open_episode",
        ) from None
    _refuse_overlap_with_closed(db, client.id, opened_on)
    audit.record(
        db,
        principal,
        [audit.AuditEntry("episode.open", "episode", str(episode.public_id), status_code=201)],
    )
    view = views.episode_view(
        load_histories(db, [episode.id])[episode.id],
        thresholds.load(db, principal.clinic_id),
    )
    uow.commit()
    return view


def _refuse_overlap_with_closed(db: Session, client_id: int, opened_on: date) -> None:
    """Episodes of one client never overlap: a new episode may not start on or before the
    end of the client's latest closed one (the rule recording applies to sessions, see
    recording._CLIENTS_WITH_OPEN_EPISODE). Checked after the insert: on PostgreSQL the
    insert waits for a concurrent close of the client's open episode (the one-open-episode
    index), so this read sees that close too. The caller's transaction rolls back on refusal."""
    last_closed = db.scalar(
        select(func.max(Episode.closed_on)).where(
            Episode.client_id == client_id, Episode.status == "closed"
        )
    )
    if last_closed is not None and opened_on <= last_closed:
        raise closed_episode_refusal(db, client_id, opened_on, "opened_on", "opened_on")


def close_episode(
    uow: UnitOfWork,
    principal: Principal,
    episode_id: uuid.UUID,
    ending_reason: EndingReason,
    closed_on: date | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    principal.require(Permission.EPISODES_WRITE)
    db = uow.session
    episode = db.scalar(
        select(Episode)
        .join(Client, Client.id == Episode.client_id)
        .where(visible_clients(principal), Episode.public_id == episode_id)
        .with_for_update()
    )
    if episode is None:
        raise NotFound(f"no episode {episode_id}", field="episode_id")
    if episode.status != "open":
        if not _restates_close(episode, ending_reason, closed_on, note):
            raise Conflict(
                "the episode is already closed (with another ending, date or note)",
                field="episode_id",
                rule="episode_closed",
            )
        # The same close again: an EHR retrying a request whose answer it lost. Answered like
        # the first time, nothing written but the audit row (as a re-sent session is).
        audit.record(
            db, principal, [audit.AuditEntry("episode.close_replay", "episode", str(episode_id))]
        )
        return _closed_view(uow, principal, episode.id)
    last = db.scalar(
        select(func.max(TherapySession.date)).where(TherapySession.episode_id == episode.id)
    )
    closed = closed_on or last or _today(uow, principal.clinic_id)
    if closed > _today(uow, principal.clinic_id):
        raise InvalidSession("closed_on is in the future", field="closed_on", rule="date_in_future")
    if closed < episode.opened_on or (last is not None and closed < last):
        raise InvalidSession(
            "closed_on is before the episode's opening or its last session",
            field="closed_on",
            rule="date_before_last_session",
        )
    episode.status = "closed"
    episode.closed_on = closed
    episode.ending_reason = ending_reason.value
    episode.ending_note = note
    episode.updated_at = utcnow()
    db.flush()
    audit.record(db, principal, [audit.AuditEntry("episode.close", "episode", str(episode_id))])
    # No rule runs on a closed episode: its live alerts close with it, in this transaction.
    alerting.resolve_alerts_of_closed_episodes(db, principal, [episode.id])
    return _closed_view(uow, principal, episode.id)


def _restates_close(
    episode: Episode, ending_reason: EndingReason, closed_on: date | None, note: str | None
) -> bool:
    """Whether a close of an already closed episode says what its close said: the same
    ending and note, and the same date when one is sent (without one, the date the service
    chose stands, as a re-sent session need not repeat what the service filled in)."""
    return (
        episode.ending_reason == ending_reason.value
        and episode.ending_note == note
        and (closed_on is None or closed_on == episode.closed_on)
    )


def _closed_view(uow: UnitOfWork, principal: Principal, episode_row: int) -> dict[str, Any]:
    """Commit the close (or its replay's audit row), then read the episode back for the answer.

    After the commit: the clinic's cached models are keyed by its count of closed episodes,
    counted once a minute per process (services/trajectories.closed_episodes). The count is
    forgotten and read again only now, so no count or model is ever cached from inside the
    close's transaction: not one a failed commit would leave behind, nor one that holds the
    close under a count without it."""
    uow.commit()
    trajectories.forget_closed_episodes(uow, principal.clinic_id)
    history = load_histories(uow.session, [episode_row])[episode_row]
    limits, closed_count = trajectories.limits_and_closed(uow, principal.clinic_id)
    models = trajectories.models_for(uow, principal.clinic_id, [history], limits, closed_count)
    return views.episode_view(history, limits, models)
