"""An episode's history as the risk rules see it: a list of ``SessionObservation``.

Shared by the live assessment (:mod:`fit_service.services.alerting`) and the clinic's dropout
model (:mod:`fit_service.services.dropout_models`), which must see closed episodes exactly as
the rules saw open ones.

**Age versions.** ORS and CORS are the adult/adolescent and child (6-12) versions of one
outcome scale, SRS and CSRS of one session scale: the same four item slots, range and direction
(domain.md §2). Ingestion accepts only the version normed for the client's age band at the time
(:func:`fit_service.services.recording.check_age_versions`), so an episode holds both only when
the client's band changed during it (a child turning 13 moves from CORS to ORS). The series
here reads either version, so a band change continues the episode's history - its intake stays
the first outcome score (domain.md §4) - instead of starting it afresh from the new instrument.
Scores are judged by the norms of the band the client is in now (the trajectory model, the
cut-off), as the episode's context already is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.change import ChangeCriteria
from fit_service.domain.instruments import (
    WAI_SR_CLIENT,
    AgeBand,
    age_versions,
    alliance_instrument_for,
    outcome_instrument_for,
)
from fit_service.domain.risk import Attendance, RiskSettings, SessionObservation
from fit_service.domain.trajectory import (
    ExpectedPath,
    RationalTrajectory,
    TrajectoryAssessment,
    TrajectoryModel,
)
from fit_service.services import thresholds, trajectories
from fit_service.services.history import EpisodeHistory, RatingRecord, SessionRecord

#: the age versions of the outcome and of the session alliance measure (domain.md §2)


@dataclass(frozen=True, slots=True)
class BandModel:
    """A band's trajectory model with the clinic's change criteria for that band.

    Behaves as the model (:class:`~fit_service.domain.trajectory.TrajectoryModel`); the
    criteria let :func:`observations` judge each outcome score against the clinic's cut-off by
    the clinic's rule for a score equal to it (``reports.cutoff_is_clinical``, domain.md §3),
    the same :meth:`~fit_service.domain.change.Cutoff.is_clinical` the views and reports use.
    """

    model: TrajectoryModel
    criteria: ChangeCriteria

    @property
    def label(self) -> str:
        return self.model.label

    def assess(self, intake: float, session: int, score: float) -> TrajectoryAssessment:
        return self.model.assess(intake, session, score)

    def path(self, intake: float, sessions: int) -> ExpectedPath:
        return self.model.path(intake, sessions)


@lru_cache(maxsize=32)
def _rational(
    age_band: AgeBand, reliable_change: float, discuss: int, change: int
) -> RationalTrajectory:
    criteria = ChangeCriteria.for_instrument(
        outcome_instrument_for(age_band), age_band, reliable_change_points=reliable_change
    )
    return RationalTrajectory(criteria, discuss, change)


def trajectory_model(
    uow: UnitOfWork,
    clinic_id: int,
    band: AgeBand,
    limits: thresholds.ClinicThresholds,
    closed: int | None = None,
) -> BandModel:
    instrument = outcome_instrument_for(band)
    criteria = limits.outcome_criteria(band)
    model = trajectories.band_model(
        uow, clinic_id, instrument.code, band.value, criteria, limits, closed
    )
    return BandModel(model, criteria)


def _rating(session: SessionRecord, codes: tuple[str, ...]) -> RatingRecord | None:
    """The session's client rating on the first of ``codes`` it has (the band's version first)."""
    for code in codes:
        found = session.rating(code)
        if found is not None:
            return found
    return None


def observations(
    history: EpisodeHistory, settings: RiskSettings, model: TrajectoryModel | None = None
) -> list[SessionObservation]:
    """The episode as the rules see it: outcome (ORS or CORS, module docstring), SRS/CSRS items,
    WAI-SR client subscales, and each outcome judged against the trajectory ``model`` (the
    rational one at the clinic's checkpoints when none is given) and the clinic's cut-off."""
    band = AgeBand(history.age_band)
    outcome_codes = age_versions(outcome_instrument_for(band).code)
    alliance_codes = age_versions(alliance_instrument_for(band).code)
    if model is None:
        model = _rational(
            band, settings.reliable_change, settings.discuss_checkpoint, settings.change_checkpoint
        )
    if isinstance(model, BandModel | RationalTrajectory):
        criteria = model.criteria
    else:  # a bare empirical model: the band's norms with the default cut-off rule
        criteria = _rational(
            band, settings.reliable_change, settings.discuss_checkpoint, settings.change_checkpoint
        ).criteria
    intake: float | None = None
    intake_number = 1
    out: list[SessionObservation] = []
    for s in history.sessions:
        if s.attendance != Attendance.ATTENDED:
            out.append(SessionObservation(None, s.date, Attendance(s.attendance)))
            continue
        outcome = _rating(s, outcome_codes)
        alliance = _rating(s, alliance_codes)
        wai = s.rating(WAI_SR_CLIENT.code)
        total = outcome.total if outcome is not None else None
        judged_on: dict[str, Any] = {}
        if total is not None:
            judged_on["outcome_clinical"] = criteria.cutoff.is_clinical(total, criteria.direction)
            if intake is None:
                # the first outcome score is the baseline (domain.md §4; outcomes.intake_of)
                intake = total
                intake_number = s.number or 1
            elif s.number is not None:
                # Sessions are counted from the baseline (its session is 1): the expected change
                # and the checkpoints are change since that score, and the ETR is fitted on
                # episodes whose baseline is session 1 (domain/trajectory.py). A late baseline
                # (no score at session 1) judged by its own session number expected the change
                # of sessions nobody measured: "no improvement by session 6" one session later.
                judged = model.assess(intake, max(2, s.number - intake_number + 1), total)
                judged_on.update(
                    expected_outcome=judged.expected,
                    band_low=judged.band_low,
                    on_track=judged.on_track,
                    trajectory_model=judged.model,
                )
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
                **judged_on,
            )
        )
    return out
