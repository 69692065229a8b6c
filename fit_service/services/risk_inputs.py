"""An episode's history as the risk rules see it: a list of ``SessionObservation``.

Shared by the live assessment (:mod:`fit_service.services.alerting`) and the clinic's dropout
model (:mod:`fit_service.services.dropout_models`), which must see closed episodes exactly as
the rules saw open ones.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.change import ChangeCriteria
from fit_service.domain.instruments import (
    WAI_SR_CLIENT,
    AgeBand,
    alliance_instrument_for,
    outcome_instrument_for,
)
from fit_service.domain.risk import Attendance, RiskSettings, SessionObservation
from fit_service.domain.trajectory import RationalTrajectory, TrajectoryModel
from fit_service.services import thresholds, trajectories
from fit_service.services.history import EpisodeHistory


@lru_cache(maxsize=32)
def _rational(age_band: AgeBand, reliable_change: float) -> RationalTrajectory:
    criteria = ChangeCriteria.for_instrument(
        outcome_instrument_for(age_band), age_band, reliable_change_points=reliable_change
    )
    return RationalTrajectory(criteria)


def trajectory_model(
    uow: UnitOfWork,
    clinic_id: int,
    band: AgeBand,
    limits: thresholds.ClinicThresholds,
    closed: int | None = None,
) -> TrajectoryModel:
    instrument = outcome_instrument_for(band)
    criteria = limits.outcome_criteria(band)
    return trajectories.clinic_model(uow, clinic_id, instrument.code, band.value, criteria, closed)


def observations(
    history: EpisodeHistory, settings: RiskSettings, model: TrajectoryModel | None = None
) -> list[SessionObservation]:
    """The episode as the rules see it: outcome by age band (ORS/CORS), SRS/CSRS items,
    WAI-SR client subscales, and each outcome judged against the trajectory ``model``
    (the rational one when none is given)."""
    band = AgeBand(history.age_band)
    outcome_code = outcome_instrument_for(band).code
    alliance_code = alliance_instrument_for(band).code
    model = model or _rational(band, settings.reliable_change)
    intake: float | None = None
    out: list[SessionObservation] = []
    for s in history.sessions:
        if s.attendance != Attendance.ATTENDED:
            out.append(SessionObservation(None, s.date, Attendance(s.attendance)))
            continue
        outcome = s.rating(outcome_code)
        alliance = s.rating(alliance_code)
        wai = s.rating(WAI_SR_CLIENT.code)
        total = outcome.total if outcome is not None else None
        trajectory: dict[str, Any] = {}
        if total is not None:
            if intake is None:
                # the first outcome score is the baseline (domain.md §4; outcomes.intake_of)
                intake = total
            elif s.number is not None:
                judged = model.assess(intake, s.number, total)
                trajectory = {
                    "expected_outcome": judged.expected,
                    "band_low": judged.band_low,
                    "on_track": judged.on_track,
                    "trajectory_model": judged.model,
                }
        out.append(
            SessionObservation(
                s.number,
                s.date,
                Attendance.ATTENDED,
                outcome_total=total,
                alliance_items=(alliance.items or None) if alliance is not None else None,
                alliance_total=alliance.total if alliance is not None else None,
                alliance_not_completed=alliance is not None
                and alliance.completeness == "not_completed",
                wai_subscales=(wai.subscales or None) if wai is not None else None,
                **trajectory,
            )
        )
    return out
