"""Outcome status of an episode: change since intake, reliable change, cut-off, category and
trajectory — every figure from the pure engine (:mod:`fit_service.domain.change`,
:mod:`fit_service.domain.trajectory`); this module only picks the scores out of a history.

Intake is the episode's *first* outcome score ("first vs last score", domain.md §4); when it
was not given at session 1 the answer says so (``intake_session``), because a late baseline
understates change. :func:`intake_of` is the one definition; the risk rules use it too.
"""

from __future__ import annotations

from typing import Any

from fit_service.domain.change import ChangeCriteria, classify
from fit_service.domain.instruments import (
    AgeBand,
    Instrument,
    age_versions,
    outcome_instrument_for,
)
from fit_service.domain.trajectory import RationalTrajectory, TrajectoryModel
from fit_service.services.history import EpisodeHistory
from fit_service.services.thresholds import DEFAULT, ClinicThresholds


def outcome_series(history: EpisodeHistory, instrument: Instrument) -> list[tuple[int, float]]:
    """(session number, total) of the client-rated outcome measure, in session order.

    Each session's score on ``instrument`` or, failing that, on the measure's other age version
    (a CORS from before the client turned 13): one series across a band change, as the risk
    rules read it (services/risk_inputs), so the intake is the episode's first score wherever
    it is shown."""
    codes = age_versions(instrument.code)
    series = []
    for s in history.sessions:
        if s.number is None:
            continue
        for code in codes:
            r = s.rating(code)
            if r is not None and r.total is not None:
                series.append((s.number, r.total))
                break
    return series


def intake_of(series: list[tuple[int, float]]) -> tuple[int, float] | None:
    """(session number, score) of the baseline: the first outcome score of the episode."""
    return series[0] if series else None


def criteria_for(
    history: EpisodeHistory, limits: ClinicThresholds = DEFAULT
) -> tuple[Instrument, ChangeCriteria]:
    """The band's outcome measure and the clinic's criteria for it (services/thresholds)."""
    band = AgeBand(history.age_band)
    return outcome_instrument_for(band), limits.outcome_criteria(band)


def episode_outcome(
    history: EpisodeHistory,
    model: TrajectoryModel | None = None,
    limits: ClinicThresholds = DEFAULT,
) -> dict[str, Any] | None:
    """The episode's outcome so far, or ``None`` before any outcome score."""
    instrument, criteria = criteria_for(history, limits)
    series = outcome_series(history, instrument)
    if not series:
        return None
    intake_session, intake = series[0]
    latest_session, latest = series[-1]
    change = classify(intake, latest, criteria) if len(series) > 1 else None
    model = model or RationalTrajectory(criteria)
    # With one score, the latest is the intake: the baseline, assessed as session 1 whatever
    # its session number (as the trajectory endpoint and the risk rules do), not against the
    # expected score for its own session number, which could call the intake "not on track".
    # Later scores are judged by sessions counted from the baseline, as the risk rules count
    # them (services/risk_inputs).
    since_baseline = max(2, latest_session - intake_session + 1)
    a = model.assess(intake, 1 if len(series) == 1 else since_baseline, latest)
    trajectory = {
        "on_track": a.on_track,
        "model": a.model,
        "reason": a.reason,
        "guidance": a.guidance.value if a.guidance else None,
        "expected": a.expected,
        "band_low": a.band_low,
        "band_high": a.band_high,
    }
    return {
        "instrument": instrument.code,
        "intake": intake,
        "intake_session": intake_session,
        "latest": latest,
        "latest_session": latest_session,
        "change": round(latest - intake, 1),
        "scores": len(series),
        "clinical_cutoff": criteria.cutoff.value,
        "reliable_change_points": criteria.reliable_change.points,
        "clinical_at_intake": criteria.cutoff.is_clinical(intake, criteria.direction),
        "clinical_now": criteria.cutoff.is_clinical(latest, criteria.direction),
        "status": change.category.value if change else None,
        "status_note": _note(intake_session, change is not None),
        "trajectory": trajectory,
    }


def _note(intake_session: int, classified: bool) -> str:
    if not classified:
        return "one outcome score so far"
    note = "Jacobson & Truax (1991) categories with a fixed reliable-change threshold"
    if intake_session != 1:
        note += f"; baseline taken at session {intake_session} (no score at session 1)"
    return note
