"""Outcome status of an episode (change since intake, reliable change, category), computed by
the pure statistics engine in :mod:`fit_service.domain.change` from an episode's history."""

from __future__ import annotations

from typing import Any

from fit_service.domain.instruments import AgeBand, outcome_instrument_for
from fit_service.services.history import EpisodeHistory


def outcome_series(history: EpisodeHistory) -> list[tuple[int, float]]:
    """(session number, total) of the client-rated outcome measure, in session order."""
    code = outcome_instrument_for(AgeBand(history.age_band)).code
    series = []
    for s in history.sessions:
        r = s.rating(code)
        if r is not None and r.total is not None and s.number is not None:
            series.append((s.number, r.total))
    return series


def episode_outcome(history: EpisodeHistory) -> dict[str, Any] | None:
    instrument = outcome_instrument_for(AgeBand(history.age_band))
    series = outcome_series(history)
    if not series:
        return None
    intake, latest = series[0][1], series[-1][1]
    return {
        "instrument": instrument.code,
        "intake": intake,
        "latest": latest,
        "change": round(latest - intake, 1),
        "scores": len(series),
    }
