"""Use case: the clinic's own dropout model (:mod:`fit_service.domain.dropout_model`).

Fitted on the clinic's most recent closed episodes (at most :data:`MAX_TRAINING_EPISODES`:
recent practice says more about the next client than practice of years ago), each seen exactly
as the risk rules saw it (:func:`fit_service.services.risk_inputs.observations`) and labelled by
the clinic's **own dropout definition** - the one its monthly report prints
(``settings.reports.dropout_definition``), so an alert and a report mean the same by "dropout".
The alert line comes from ``risk.dropout_alerts_per_clinician_week`` and the clinic's intake
over the last :data:`INTAKE_WEEKS` weeks.

Fitting reads many episodes, so models are cached per process. A COUNT of closed episodes runs
on each call; the model is refitted when that count has grown by a tenth since the fit (or by
one, while the clinic is small) and at least daily (:data:`MODEL_TTL_SECONDS`), never on every
write. ``None`` (too few dropouts for a model, domain module) is cached the same way.
"""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

from sqlalchemy import distinct, func, select

from fit_service.adapters.orm import Episode, TherapySession
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.dropout_model import (
    MIN_EVENTS,
    DropoutModel,
    TrainingEpisode,
    fit_dropout_model,
)
from fit_service.domain.instruments import AgeBand
from fit_service.domain.monthly_report import is_dropout
from fit_service.services import thresholds, trajectories
from fit_service.services.history import load_histories
from fit_service.services.risk_inputs import observations, trajectory_model

MODEL_TTL_SECONDS = 86_400.0
MAX_TRAINING_EPISODES = 3_000
#: weeks of intake behind the alert line's "new episodes per clinician-week"
INTAKE_WEEKS = 12
_MAX_ENTRIES = 256

_Key = tuple[str, int, float, float, float, str, int]
_cache: dict[_Key, tuple[float, int, DropoutModel | None]] = {}
_lock = threading.Lock()


def _stale(fitted_closed: int, closed: int) -> bool:
    return closed - fitted_closed >= max(1, fitted_closed // 10)


def clinic_dropout_model(
    uow: UnitOfWork,
    clinic_id: int,
    limits: thresholds.ClinicThresholds,
    today: date,
    closed: int | None = None,
) -> DropoutModel | None:
    """The clinic's fitted dropout model, or ``None`` while it has too few closed episodes.

    ``closed``: the count of closed episodes when the caller has it (saves a query)."""
    risk, reports = limits.risk, limits.reports
    key: _Key = (
        str(uow.session.get_bind().url),
        clinic_id,
        risk.srs_item_concern,
        risk.reliable_change,
        risk.dropout_alerts_per_clinician_week,
        reports.dropout_rule.value,
        reports.dropout_max_sessions,
    )
    if closed is None:
        closed = trajectories.closed_episodes(uow, clinic_id)
    hit = _cache.get(key)
    if hit is not None and hit[0] > time.monotonic() and not _stale(hit[1], closed):
        return hit[2]
    # a model needs MIN_EVENTS dropouts and as many non-dropouts: don't read fewer episodes
    model = fit_clinic_model(uow, clinic_id, limits, today) if closed >= 2 * MIN_EVENTS else None
    with _lock:
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        _cache[key] = (time.monotonic() + MODEL_TTL_SECONDS, closed, model)
    return model


def fit_clinic_model(
    uow: UnitOfWork, clinic_id: int, limits: thresholds.ClinicThresholds, today: date
) -> DropoutModel | None:
    """Fit now, uncached (the cache above decides when)."""
    db = uow.session
    row_ids = db.scalars(
        select(Episode.id)
        .where(Episode.clinic_id == clinic_id, Episode.status == "closed")
        .order_by(Episode.closed_on.desc(), Episode.id.desc())
        .limit(MAX_TRAINING_EPISODES)
    ).all()
    histories = load_histories(db, row_ids)
    models = {
        band: trajectory_model(uow, clinic_id, AgeBand(band), limits)
        for band in {h.age_band for h in histories.values()}
    }
    reports = limits.reports
    training = []
    for history in histories.values():
        attended = sum(1 for s in history.sessions if s.attendance == "attended")
        if not attended:
            continue  # opened and closed without a session: nothing a rule could have seen
        obs = observations(history, limits.risk, models[history.age_band])
        dropout = is_dropout(
            reports.dropout_rule, history.ending_reason, attended, reports.dropout_max_sessions
        )
        training.append(TrainingEpisode(tuple(obs), dropout))
    return fit_dropout_model(
        training,
        budget_per_clinician_week=limits.risk.dropout_alerts_per_clinician_week,
        new_episodes_per_clinician_week=intake_rate(uow, clinic_id, today),
        item_concern=limits.risk.srs_item_concern,
        reliable_change=limits.risk.reliable_change,
    )


def intake_rate(uow: UnitOfWork, clinic_id: int, today: date) -> float:
    """New episodes per clinician-week over the last :data:`INTAKE_WEEKS` weeks (fewer when
    the clinic is younger): episodes opened / (clinicians who saw anyone x weeks)."""
    db = uow.session
    first = db.scalar(select(func.min(Episode.opened_on)).where(Episode.clinic_id == clinic_id))
    if first is None:
        return 0.0
    since = max(first, today - timedelta(weeks=INTAKE_WEEKS))
    weeks = max((today - since).days, 7) / 7.0
    opened = db.scalar(
        select(func.count())
        .select_from(Episode)
        .where(Episode.clinic_id == clinic_id, Episode.opened_on >= since)
    )
    clinicians = db.scalar(
        select(func.count(distinct(TherapySession.clinician_id))).where(
            TherapySession.clinic_id == clinic_id,
            TherapySession.date >= since,
            TherapySession.attendance == "attended",
        )
    )
    if not clinicians:
        return 0.0
    return float(opened or 0) / (clinicians * weeks)
