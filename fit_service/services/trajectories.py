"""Use case: a client's outcome trajectory against the expected treatment response.

The model is the clinic's own ETR (fitted on its closed episodes) once there are enough of
them, else the rational rules (domain.md §5); the answer always names the model.

Fitting reads every closed episode's outcome scores for one instrument, so fitted models are
cached per process. The cache key includes the number of closed episodes, so closing one more
episode refits on a later request, and entries expire after :data:`MODEL_TTL_SECONDS`
regardless. The count itself is kept for :data:`CLOSED_COUNT_TTL_SECONDS`: counting is linear in
the clinic's history and every session write needs it (see :func:`closed_episodes`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select

from fit_service.adapters.orm import Client, Clinic, Episode, Rating, TherapySession
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.change import ChangeCriteria
from fit_service.domain.instruments import REGISTRY, Instrument
from fit_service.domain.risk import RiskSettings
from fit_service.domain.trajectory import (
    ClinicEtr,
    EtrSample,
    RationalTrajectory,
    TrajectoryModel,
    select_trajectory_model,
)
from fit_service.services import audit, reads, thresholds
from fit_service.services.history import EpisodeHistory, load_histories
from fit_service.services.outcomes import criteria_for, episode_outcome, intake_of, outcome_series
from fit_service.services.principals import Permission, Principal

MODEL_TTL_SECONDS = 3600.0
_MAX_ENTRIES = 256
_cache: dict[tuple[str, int, str, str, int, ChangeCriteria], tuple[float, TrajectoryModel]] = {}
_lock = threading.Lock()


def closed_episodes_count(clinic_id: int) -> Any:
    """The clinic's count of closed episodes as a scalar subquery (uncorrelated: evaluated once
    per statement), for a caller that reads it beside other columns in one round trip."""
    return (
        select(func.count())
        .select_from(Episode)
        .where(Episode.clinic_id == clinic_id, Episode.status == "closed")
        .scalar_subquery()
    )


#: How long this process trusts its count of a clinic's closed episodes. The COUNT scans the
#: clinic's closed episodes - ~3 ms on PostgreSQL at 16,000 of them (two years of a
#: 200-clinician clinic, the report benchmark's history), a third of a session write - and
#: every write's risk rules read it. A minute before another process refits on an episode
#: closed elsewhere changes no judgement: a fitted model rests on hundreds of episodes, and a
#: clinic crossing a model's minimum gets it a minute later. Closing an episode in this process
#: forgets the count at once (:func:`forget_closed_episodes`).
CLOSED_COUNT_TTL_SECONDS = 60.0
_closed: dict[tuple[str, int], tuple[float, int]] = {}


def closed_episodes(uow: UnitOfWork, clinic_id: int) -> int:
    """The clinic's count of closed episodes: what decides whether a cached model is stale
    (counted at most once per :data:`CLOSED_COUNT_TTL_SECONDS` in this process)."""
    key = (uow.database, clinic_id)
    now = time.monotonic()
    hit = _closed.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    count = int(uow.session.scalar(select(closed_episodes_count(clinic_id))) or 0)
    with _lock:
        if len(_closed) >= _MAX_ENTRIES:
            _closed.clear()
        _closed[key] = (now + CLOSED_COUNT_TTL_SECONDS, count)
    return count


def forget_closed_episodes(uow: UnitOfWork, clinic_id: int) -> None:
    """Count the clinic's closed episodes afresh next time (this process just closed one)."""
    _closed.pop((uow.database, clinic_id), None)


def clear_caches() -> None:
    """Forget every model and count (tests: a new database under the same URL)."""
    with _lock:
        _cache.clear()
        _closed.clear()


def clinic_model(
    uow: UnitOfWork,
    clinic_id: int,
    instrument_code: str,
    age_band: str,
    criteria: ChangeCriteria,
    closed: int | None = None,
) -> TrajectoryModel:
    """The clinic's ETR for an instrument and age band, or the rational fallback.

    ``closed``: the count of closed episodes when the caller has it (saves a query)."""
    if closed is None:
        closed = closed_episodes(uow, clinic_id)
    database = uow.database
    key = (database, clinic_id, instrument_code, age_band, int(closed or 0), criteria)
    hit = _cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    rows = uow.session.execute(
        select(TherapySession.episode_id, TherapySession.number, Rating.total)
        .join(Rating, Rating.session_id == TherapySession.id)
        .join(Episode, Episode.id == TherapySession.episode_id)
        .join(Client, Client.id == Episode.client_id)
        .where(
            Episode.clinic_id == clinic_id,
            Episode.status == "closed",
            Client.age_band == age_band,
            Rating.instrument == instrument_code,
            Rating.rater == "client",
            Rating.total.is_not(None),
            TherapySession.number.is_not(None),
        )
        .order_by(TherapySession.episode_id, TherapySession.number)
    ).all()
    model: TrajectoryModel
    if rows:
        import numpy as np  # noqa: PLC0415 - only needed when there is data to fit

        data = np.array(rows, dtype=float)
        sample = EtrSample.from_arrays(
            data[:, 0].astype(np.int64), data[:, 1].astype(np.int64), data[:, 2]
        )
        # The scale's range clips the expectation and the drawn bands (ClinicEtr.bounds): a
        # band edge of 41 on a 0-40 scale is not a score anyone can have. The fitted residuals
        # stay unclipped.
        instrument = REGISTRY[instrument_code]
        bounds = (instrument.total_min, instrument.total_max)
        model = select_trajectory_model(sample, criteria, bounds=bounds)
    else:
        model = RationalTrajectory(criteria)
    with _lock:
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        _cache[key] = (time.monotonic() + MODEL_TTL_SECONDS, model)
    return model


def with_checkpoints(model: TrajectoryModel, risk: RiskSettings) -> TrajectoryModel:
    """The rational model at the clinic's no-change checkpoints (domain.md §3: every one a
    per-clinic setting); the clinic's ETR judges by its own band, not by checkpoints, except
    beyond its fitted sessions and intakes, where its rational fallback judges at them too."""
    discuss, change = risk.discuss_checkpoint, risk.change_checkpoint
    if isinstance(model, RationalTrajectory):
        return replace(model, discuss_checkpoint=discuss, change_checkpoint=change)
    if isinstance(model, ClinicEtr) and model.fallback is not None:
        fallback = replace(model.fallback, discuss_checkpoint=discuss, change_checkpoint=change)
        return replace(model, fallback=fallback)
    return model


def band_model(
    uow: UnitOfWork,
    clinic_id: int,
    instrument_code: str,
    age_band: str,
    criteria: ChangeCriteria,
    limits: thresholds.ClinicThresholds,
    closed: int | None = None,
) -> TrajectoryModel:
    """:func:`clinic_model` as the clinic judges by it (its checkpoints): the one model the
    risk rules, the episode views and the trajectory endpoint all use."""
    model = clinic_model(uow, clinic_id, instrument_code, age_band, criteria, closed)
    return with_checkpoints(model, limits.risk)


def limits_and_closed(uow: UnitOfWork, clinic_id: int) -> tuple[thresholds.ClinicThresholds, int]:
    """The clinic's thresholds and its count of closed episodes (:func:`closed_episodes`)."""
    raw = uow.session.scalar(select(Clinic.settings).where(Clinic.id == clinic_id))
    return thresholds.from_settings(raw), closed_episodes(uow, clinic_id)


def models_for(
    uow: UnitOfWork,
    clinic_id: int,
    histories: Iterable[EpisodeHistory],
    limits: thresholds.ClinicThresholds,
    closed: int | None = None,
) -> dict[str, TrajectoryModel]:
    """Age band -> the clinic's model (:func:`clinic_model`), for the bands of ``histories``
    that have an outcome score: the model the risk rules (``risk_inputs.trajectory_model``) and
    the trajectory endpoint judge by, so the episode views give the same verdict.

    No query when no history has a score; else one COUNT unless ``closed`` is given (the fitted
    models come from the per-process cache)."""
    wanted: dict[str, tuple[Instrument, ChangeCriteria]] = {}
    for history in histories:
        if history.age_band in wanted:
            continue
        instrument, criteria = criteria_for(history, limits)
        if outcome_series(history, instrument):
            wanted[history.age_band] = (instrument, criteria)
    if not wanted:
        return {}
    if closed is None:
        closed = closed_episodes(uow, clinic_id)
    return {
        band: band_model(uow, clinic_id, instrument.code, band, criteria, limits, closed)
        for band, (instrument, criteria) in wanted.items()
    }


def episode_trajectory(
    uow: UnitOfWork, principal: Principal, episode_id: uuid.UUID, horizon: int = 20
) -> dict[str, Any]:
    """Scores session by session with the expected path and band, ready to draw."""
    principal.require(Permission.CLIENTS_READ, Permission.OWN_CLIENTS_READ)
    row = reads.visible_episode_row(uow, principal, episode_id)
    history = load_histories(uow.session, [row])[row]
    limits, closed = limits_and_closed(uow, principal.clinic_id)
    instrument, criteria = criteria_for(history, limits)
    model = band_model(
        uow, principal.clinic_id, instrument.code, history.age_band, criteria, limits, closed
    )
    series = outcome_series(history, instrument)
    baseline = intake_of(series)
    intake = baseline[1] if baseline else None
    # Sessions are counted from the baseline, as the risk rules count them
    # (services/risk_inputs): a baseline at session 3 is session 1 of the expected path, which
    # is drawn from there; the ETR is fitted on episodes whose baseline is session 1.
    offset = baseline[0] - 1 if baseline else 0
    points = []
    for index, (number, score) in enumerate(series):
        point: dict[str, Any] = {"session": number, "score": score}
        if intake is not None:
            # The first score is the baseline whatever its session number (outcomes.intake_of;
            # risk_inputs judges nothing there either): assessed as session 1, not against the
            # ETR's expected score for its own session number, which would judge the intake
            # against itself-after-treatment and could flag it as not on track.
            a = model.assess(intake, 1 if index == 0 else max(2, number - offset), score)
            point.update(
                on_track=a.on_track,
                expected=a.expected,
                band_low=a.band_low,
                band_high=a.band_high,
                percentile=a.percentile,
                reason=a.reason,
            )
        points.append(point)
    path = None
    if intake is not None:
        k = max(horizon, series[-1][0] - offset)
        p = model.path(intake, k)
        path = {
            "sessions": [session + offset for session in p.sessions],
            "expected": list(p.expected) if p.expected else None,
            "low": list(p.low),
            "high": list(p.high),
        }
    audit.record(
        uow.session, principal, [audit.AuditEntry("episode.trajectory", "episode", str(episode_id))]
    )
    uow.commit()
    # An intake outside the clinic ETR's fitted range is judged, and its line drawn, by the
    # ETR's rational fallback alone (domain.trajectory: no extrapolation): name that model.
    shown: TrajectoryModel = model
    if isinstance(model, ClinicEtr) and model.fallback is not None and intake is not None:
        shown = model if model.covers_intake(intake) else model.fallback
    return {
        "episode_id": str(episode_id),
        "instrument": instrument.code,
        "model": shown.label,
        "intake": intake,
        "clinical_cutoff": criteria.cutoff.value,
        "points": points,
        "expected_path": path,
        "outcome": episode_outcome(history, model, limits),
    }
