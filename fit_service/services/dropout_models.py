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

import logging
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
#: after a failed fit, the rules alone until this many seconds have passed
RETRY_SECONDS = 600.0
MAX_TRAINING_EPISODES = 3_000
#: weeks of intake behind the alert line's "new episodes per clinician-week"
INTAKE_WEEKS = 12
_MAX_ENTRIES = 256

log = logging.getLogger(__name__)

_Key = tuple[str, int, float, float, float, float, float, str, int]
_cache: dict[_Key, tuple[float, int, DropoutModel | None]] = {}
_fitting: dict[_Key, threading.Lock] = {}
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
        uow.database,
        clinic_id,
        risk.srs_item_concern,
        risk.srs_concern_total,
        risk.reliable_change,
        risk.dropout_alerts_per_clinician_week,
        risk.dropout_missed_odds_factor,
        reports.dropout_rule.value,
        reports.dropout_max_sessions,
    )
    if closed is None:
        closed = trajectories.closed_episodes(uow, clinic_id)
    hit = _cache.get(key)
    if hit is not None and hit[0] > time.monotonic() and not _stale(hit[1], closed):
        return hit[2]
    # One fit per clinic at a time in this process: requests arriving together wait for it
    # rather than each loading the same thousands of episodes.
    with _lock:
        fitting = _fitting.setdefault(key, threading.Lock())
    with fitting:
        hit = _cache.get(key)
        if hit is not None and hit[0] > time.monotonic() and not _stale(hit[1], closed):
            return hit[2]
        ttl = MODEL_TTL_SECONDS
        model = None
        # a model needs MIN_EVENTS dropouts and as many non-dropouts: don't read fewer episodes
        if closed >= 2 * MIN_EVENTS:
            try:
                # a savepoint, so that even a failed read leaves the write's transaction usable
                with uow.session.begin_nested():
                    model = fit_clinic_model(uow, clinic_id, limits, today)
            except Exception as exc:  # noqa: BLE001 - odd data must not refuse a session write
                # The rules alert alone until a retry (clinic row id only, no client data).
                log.error("dropout model fit failed for clinic row %s: %s", clinic_id, type(exc))
                ttl = RETRY_SECONDS
        with _lock:
            if len(_cache) >= _MAX_ENTRIES:
                _cache.clear()
                _fitting.clear()
            _cache[key] = (time.monotonic() + ttl, closed, model)
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
        srs_concern_total=limits.risk.srs_concern_total,
        missed_odds_factor=limits.risk.dropout_missed_odds_factor,
    )


def intake_rate(uow: UnitOfWork, clinic_id: int, today: date) -> float:
    """New episodes per clinician-week over the :data:`INTAKE_WEEKS` weeks up to the clinic's
    latest intake (not up to today: after a backfill of old data, or a quiet month, "the last
    12 weeks" would hold no intake and the line would flag everyone). Episodes count when they
    have an attended session (as in training); clinicians when they saw anyone then."""
    db = uow.session
    attended = (
        select(TherapySession.episode_id, TherapySession.clinician_id, Episode.opened_on)
        .join(Episode, Episode.id == TherapySession.episode_id)
        .where(TherapySession.clinic_id == clinic_id, TherapySession.attendance == "attended")
        .subquery()
    )
    first, last = db.execute(
        select(func.min(attended.c.opened_on), func.max(attended.c.opened_on))
    ).one()
    if last is None:
        return 0.0
    last = min(last, today)
    since = max(first, last - timedelta(weeks=INTAKE_WEEKS))
    weeks = max((last - since).days, 7) / 7.0
    opened, clinicians = db.execute(
        select(
            func.count(distinct(attended.c.episode_id)),
            func.count(distinct(attended.c.clinician_id)),
        ).where(attended.c.opened_on >= since, attended.c.opened_on <= last)
    ).one()
    if not clinicians:
        return 0.0
    return float(opened) / float(clinicians * weeks)
