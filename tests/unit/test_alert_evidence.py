"""What a live alert rests on (pure): its evidence is cut at its own session, not at its date
(two sessions may be recorded on one date)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from itertools import count

from fit_service.domain.alerts import (
    Alert,
    AlertAction,
    AlertStatus,
    AutoResolve,
    Open,
    apply_actions,
    reconcile,
)
from fit_service.domain.instruments import AgeBand
from fit_service.domain.risk import (
    Concern,
    EpisodeContext,
    RiskSettings,
    SessionObservation,
    Severity,
    evaluate_rules,
)

DAY0 = dt.date(2024, 3, 4)


def day(week: int) -> dt.date:
    return DAY0 + dt.timedelta(weeks=week)


def rated(n: int, on: dt.date, total: float) -> SessionObservation:
    return SessionObservation(n, on, alliance_total=total)


def ctx(history: Sequence[SessionObservation]) -> EpisodeContext:
    return EpisodeContext(None, 25.0, AgeBand.ADULT, history[-1].date)


class Replay:
    """Assess after every appointment as the service does, storing what it would store."""

    def __init__(self, settings: RiskSettings | None = None) -> None:
        self.settings = settings or RiskSettings()
        self.alerts: list[Alert] = []
        self.history: list[SessionObservation] = []
        self._ids = count(1)

    def add(self, *appointments: SessionObservation) -> list[AlertAction]:
        self.history.extend(appointments)
        return self.run()

    def run(self, history: list[SessionObservation] | None = None) -> list[AlertAction]:
        if history is not None:
            self.history = history
        context = ctx(self.history)
        findings = evaluate_rules(self.history, context, self.settings)
        actions = reconcile(self.alerts, findings, self.history, self.settings, context=context)
        self.alerts = apply_actions(self.alerts, actions, lambda: f"a{next(self._ids)}")
        return actions

    def only(self) -> Alert:
        (alert,) = self.alerts
        return alert


# ------------------------------------------------------------------ evidence cut at its session
def test_a_later_session_on_the_same_day_is_not_read_as_a_correction() -> None:
    """SRS 40, then 30 at session 2 (early_low_alliance), then 38 at session 3 on the same day:
    one good rating after a real rupture. The alert waits for the clear streak instead of
    auto-resolving at once as "corrected"; a second good session a week later resolves it."""
    replay = Replay()
    replay.add(rated(1, day(0), 40.0), rated(2, day(1), 30.0))
    assert (replay.only().kind, replay.only().session_number) == ("early_low_alliance", 2)
    assert replay.add(rated(3, day(1), 38.0)) == []
    assert replay.only().status is AlertStatus.OPEN
    (resolve,) = replay.add(rated(4, day(2), 38.0))
    assert isinstance(resolve, AutoResolve)
    assert "for 2 consecutive sessions since session 2" in resolve.note
    assert "corrected" not in resolve.note


def test_the_stored_alert_of_the_review_waits_for_the_streak() -> None:
    """The reviewer's case as one call: an alert at session 2 and a third session on session 2's
    date with SRS 38 - no action (before: auto-resolved, "the ratings there were corrected")."""
    obs = [rated(1, day(0), 40.0), rated(2, day(1), 30.0), rated(3, day(1), 38.0)]
    alert = Alert(
        "a1",
        "early_low_alliance",
        Concern.GLOBAL_ALLIANCE,
        Severity.HIGH,
        AlertStatus.OPEN,
        2,
        day(1),
    )
    findings = evaluate_rules(obs, ctx(obs))
    assert findings == []
    assert reconcile([alert], findings, obs, context=ctx(obs)) == []


def test_correcting_the_evidence_session_still_resolves_at_once_with_a_same_day_session() -> None:
    """The evidence session itself corrected (30 was a typo for 38), a later session on its day:
    the rupture is no longer in the record, so the alert resolves at once, as before."""
    replay = Replay()
    replay.add(rated(1, day(0), 40.0), rated(2, day(1), 30.0))
    assert replay.add(rated(3, day(1), 38.0)) == []
    (resolve,) = replay.run(
        [rated(1, day(0), 40.0), rated(2, day(1), 38.0), rated(3, day(1), 38.0)]
    )
    assert isinstance(resolve, AutoResolve)
    assert "no longer holds at its own evidence (session 2," in resolve.note


def test_a_dismissal_gives_way_when_the_finding_cleared_later_on_its_own_day() -> None:
    """Dismissed at session 1 (SRS 30); session 2 on the same day is 38 (the finding cleared),
    session 3 a week later is 30 again: it cleared and came back, so a new alert opens (before:
    session 2, dated on the dismissed evidence's day, was skipped and the dismissal held)."""
    replay = Replay()
    replay.add(rated(1, day(0), 30.0))
    replay.alerts = [
        replace(a, status=AlertStatus.DISMISSED, closed_on=day(0)) for a in replay.alerts
    ]
    assert replay.add(rated(2, day(0), 38.0)) == []
    (reopen,) = replay.add(rated(3, day(1), 30.0))
    assert isinstance(reopen, Open)
    assert (reopen.kind, reopen.finding.session_number) == ("early_low_alliance", 3)
