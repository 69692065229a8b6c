"""Alerts closed by the system because their evidence was corrected: an SRS rupture put back
alerts again; a WAI-SR finding that comes and goes with the clinic's moving decile does not
flip an alert open and closed while the episode's data stays the same."""

from __future__ import annotations

import datetime as dt
import itertools

from fit_service.domain import alerts as lifecycle
from fit_service.domain.instruments import AgeBand
from fit_service.domain.risk import (
    EpisodeContext,
    RiskSettings,
    SessionObservation,
    Severity,
    evaluate_rules,
)

SETTINGS = RiskSettings(alert_min_severity=Severity.MEDIUM)
START = dt.date(2024, 3, 4)


def _reassess(
    alerts: list[lifecycle.Alert], obs: list[SessionObservation], context: EpisodeContext
) -> tuple[list[lifecycle.Alert], list[lifecycle.AlertAction]]:
    ids = itertools.count(len(alerts) + 1)
    actions = lifecycle.reconcile(
        alerts, evaluate_rules(obs, context, SETTINGS), obs, SETTINGS, context=context
    )
    return lifecycle.apply_actions(alerts, actions, lambda: f"a{next(ids)}"), actions


def _context(obs: list[SessionObservation], reference: object = None) -> EpisodeContext:
    return EpisodeContext(None, 25.0, AgeBand.ADULT, obs[-1].date, wai_reference=reference)


def test_an_srs_rupture_corrected_and_put_back_alerts_again() -> None:
    def session(items: dict[str, float]) -> list[SessionObservation]:
        return [
            SessionObservation(
                1,
                START,
                outcome_total=20.0,
                alliance_items=items,
                alliance_total=sum(items.values()),
            )
        ]

    low = session({"relationship": 7, "goals": 8, "approach": 8, "overall": 7})
    good = session({"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5})
    alerts, _ = _reassess([], low, _context(low))
    assert [(a.kind, a.status) for a in alerts] == [
        ("early_low_alliance", lifecycle.AlertStatus.OPEN)
    ]
    alerts, _ = _reassess(alerts, good, _context(good))
    assert alerts[0].status is lifecycle.AlertStatus.AUTO_RESOLVED
    alerts, actions = _reassess(alerts, low, _context(low))
    assert [type(a).__name__ for a in actions] == ["Open"]
    # and reassessing the same data again changes nothing
    alerts, actions = _reassess(alerts, low, _context(low))
    assert actions == []


def test_a_wai_finding_moving_with_the_clinic_decile_does_not_flip_flop() -> None:
    """The session-2 goal decile as two processes (or two hours) see it, 13.5 and 12.9, around
    the client's 13: one alert, auto-resolved once, then quiet - not one alert per crossing."""
    obs = [
        SessionObservation(
            n,
            START + dt.timedelta(weeks=n - 1),
            outcome_total=20.0,
            wai_subscales={"goal": goal, "task": 18.0, "bond": 18.0},
        )
        for n, goal in ((1, 16.0), (2, 13.0))
    ]
    references = [{2: {"goal": 13.5}}, {2: {"goal": 12.9}}] * 4
    alerts: list[lifecycle.Alert] = []
    kinds = []
    for reference in references:
        context = EpisodeContext(
            None, 25.0, AgeBand.ADULT, obs[-1].date, wai_reference=reference, recheck=True
        )
        alerts, actions = _reassess(alerts, obs, context)
        kinds += [type(a).__name__ for a in actions]
    assert kinds == ["Open", "AutoResolve"]
    assert len(alerts) == 1
