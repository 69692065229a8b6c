"""Read models: the JSON-ready shapes the API returns, built from :mod:`history`.

Scores in these views come from storage and from the pure domain code (change since intake,
outcome status); nothing is computed twice in two places. The outcome trajectory is judged by
the clinic's own model (``models``: age band -> model, from
:func:`fit_service.services.trajectories.models_for`), the one the risk rules and the trajectory
endpoint use; the rational rules only where no model is given.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from fit_service.adapters.orm import TherapySession
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.instruments import age_versions
from fit_service.domain.trajectory import TrajectoryModel
from fit_service.services import outcomes, trajectories
from fit_service.services.history import EpisodeHistory, SessionRecord, load_histories
from fit_service.services.thresholds import DEFAULT, ClinicThresholds

#: age band -> the clinic's trajectory model for it
Models = Mapping[str, TrajectoryModel]


def _measure(instrument: str) -> str:
    """One key for a measure's two age versions (ORS/CORS, SRS/CSRS): across a band change
    they are one series, and the intake stays the episode's first score (as in
    :func:`fit_service.services.outcomes.outcome_series`)."""
    return min(age_versions(instrument))


def _first_totals(history: EpisodeHistory) -> dict[tuple[str, str], float]:
    """The earliest total per (measure, rater) in the episode: the intake reference."""
    first: dict[tuple[str, str], float] = {}
    for s in history.sessions:
        for r in s.ratings:
            if r.total is not None:
                first.setdefault((_measure(r.instrument), r.rater), r.total)
    return first


def session_view(
    session: SessionRecord, history: EpisodeHistory, first: dict[tuple[str, str], float]
) -> dict[str, Any]:
    return {
        "id": str(session.public_id),
        "ehr_session_id": session.ehr_session_id,
        "client_id": history.client,
        "clinician_id": session.clinician,
        "episode_id": str(history.public_id),
        "date": session.date.isoformat(),
        "number": session.number,
        "attendance": session.attendance,
        "revision": session.revision,
        "updated_at": session.updated_at.isoformat(),
        "ratings": [
            {
                "instrument": r.instrument,
                "rater": r.rater,
                "completeness": r.completeness,
                "total": r.total,
                "items": r.items,
                "subscales": r.subscales,
                "change_since_first": (
                    round(r.total - first[(_measure(r.instrument), r.rater)], 1)
                    if r.total is not None and (_measure(r.instrument), r.rater) in first
                    else None
                ),
            }
            for r in session.ratings
        ],
    }


def episode_summary(
    history: EpisodeHistory, limits: ClinicThresholds = DEFAULT, models: Models | None = None
) -> dict[str, Any]:
    model = (models or {}).get(history.age_band)
    return {
        "id": str(history.public_id),
        "client_id": history.client,
        "clinician_id": history.clinician,
        "status": history.status,
        "opened_on": history.opened_on.isoformat(),
        "closed_on": history.closed_on.isoformat() if history.closed_on else None,
        "ending_reason": history.ending_reason,
        "sessions_attended": sum(1 for s in history.sessions if s.attendance == "attended"),
        "outcome": outcomes.episode_outcome(history, model, limits),
        "risk": {
            "level": history.risk_level,
            "reasons": (history.risk_reasons or {}).get("reasons", []),
        }
        if history.risk_level
        else None,
    }


def episode_view(
    history: EpisodeHistory, limits: ClinicThresholds = DEFAULT, models: Models | None = None
) -> dict[str, Any]:
    first = _first_totals(history)
    view = episode_summary(history, limits, models)
    view["sessions"] = [session_view(s, history, first) for s in history.sessions]
    return view


def sessions_by_public_id(
    uow: UnitOfWork,
    clinic_id: int,
    public_ids: Iterable[uuid.UUID],
) -> dict[uuid.UUID, dict[str, Any]]:
    """Full session views (with the episode's current status) for the given sessions."""
    ids = list(set(public_ids))
    if not ids:
        return {}
    db = uow.session
    rows = db.execute(
        select(TherapySession.public_id, TherapySession.episode_id).where(
            TherapySession.clinic_id == clinic_id, TherapySession.public_id.in_(ids)
        )
    ).all()
    histories = load_histories(db, {r.episode_id for r in rows})
    limits, closed = trajectories.limits_and_closed(uow, clinic_id)
    models = trajectories.models_for(uow, clinic_id, histories.values(), limits, closed)
    return sessions_from_histories(histories.values(), set(ids), limits, models)


def sessions_from_histories(
    histories: Iterable[EpisodeHistory],
    public_ids: set[uuid.UUID],
    limits: ClinicThresholds = DEFAULT,
    models: Models | None = None,
) -> dict[uuid.UUID, dict[str, Any]]:
    """Session views for ``public_ids`` from already-loaded histories (no queries)."""
    out: dict[uuid.UUID, dict[str, Any]] = {}
    for history in histories:
        first = None
        summary = None
        for session in history.sessions:
            if session.public_id in public_ids:
                if first is None:
                    first = _first_totals(history)
                    summary = episode_summary(history, limits, models)
                view = session_view(session, history, first)
                view["episode"] = summary
                out[session.public_id] = view
    return out
