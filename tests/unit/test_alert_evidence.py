"""What a live alert rests on (pure): its evidence is cut at its own session, not at its date,
and its facts follow the finding while it stays live (a newer low rating, another missed
appointment, an escalation), keeping the facts it opened with."""

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
    Escalate,
    Open,
    Refresh,
    apply_actions,
    reconcile,
)
from fit_service.domain.instruments import AgeBand
from fit_service.domain.risk import (
    Attendance,
    Concern,
    EpisodeContext,
    Finding,
    RiskSettings,
    SessionObservation,
    Severity,
    evaluate_rules,
)
from tests.unit.weeks import MEDIUM_UP, day


def rated(n: int, on: dt.date, total: float) -> SessionObservation:
    return SessionObservation(n, on, alliance_total=total)


def items(
    n: int, on: dt.date, bond: float, goal: float, task: float, overall: float
) -> SessionObservation:
    srs = {"relationship": bond, "goals": goal, "approach": task, "overall": overall}
    return SessionObservation(n, on, alliance_items=srs)


def missed(on: dt.date) -> SessionObservation:
    return SessionObservation(None, on, Attendance.NO_SHOW)


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

    def acknowledge(self) -> None:
        self.alerts = [replace(a, status=AlertStatus.ACKNOWLEDGED) for a in self.alerts]


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


def test_a_refreshed_alert_is_corrected_only_when_no_session_it_rested_on_holds() -> None:
    """Opened at session 2 (SRS 30), refreshed at session 3 (28). Session 3 corrected to 38:
    session 2 still shows the rupture, so the alert waits for the streak. Session 2 corrected
    too: nothing it rested on holds, and it resolves at once."""
    replay = Replay()
    replay.add(rated(1, day(0), 40.0), rated(2, day(1), 30.0))
    (refresh,) = replay.add(rated(3, day(2), 28.0))
    assert isinstance(refresh, Refresh)
    first, second, third = replay.history
    assert replay.run([first, second, replace(third, alliance_total=38.0)]) == []
    (resolve,) = replay.run(
        [first, replace(second, alliance_total=38.0), replace(third, alliance_total=38.0)]
    )
    assert isinstance(resolve, AutoResolve)
    assert "own evidence (session 3," in resolve.note


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


# ------------------------------------------------------------------ facts that follow the finding
def test_a_newer_low_rating_refreshes_the_alert_with_its_leg_and_keeps_how_it_opened() -> None:
    """early_low_alliance opened at session 1 (SRS 32, bond lowest) and acknowledged; session 2
    scores SRS 24 with goals lowest: the same alert, still acknowledged, now says session 2,
    SRS 24 and the goal leg, with goal guidance; ``opened_with`` keeps session 1's facts, and a
    third low session moves the facts again without touching ``opened_with``."""
    replay = Replay()
    replay.add(items(1, day(0), 7.0, 8.5, 8.5, 8.0))
    opened = replay.only()
    assert (opened.kind, opened.concern, opened.evidence["srs_total"]) == (  # type: ignore[index]
        "early_low_alliance",
        Concern.BOND,
        32.0,
    )
    replay.acknowledge()

    (refresh,) = replay.add(items(2, day(1), 7.0, 5.0, 6.0, 6.0))
    assert isinstance(refresh, Refresh)
    assert "Re-agree the goals" in refresh.finding.guidance
    now = replay.only()
    assert (now.alert_id, now.status, now.severity) == (
        opened.alert_id,
        AlertStatus.ACKNOWLEDGED,
        Severity.HIGH,
    )
    assert (now.concern, now.session_number, now.observed_on) == (Concern.GOAL, 2, day(1))
    evidence = dict(now.evidence or {})
    assert (evidence["srs_total"], evidence["weak_legs"][0], evidence["concern"]) == (
        24.0,
        "goal",
        "goal",
    )
    assert evidence["opened_with"]["session_number"] == 1
    assert evidence["opened_with"]["observed_on"] == day(0).isoformat()
    assert evidence["opened_with"]["srs_total"] == 32.0
    assert evidence["opened_with"]["concern"] == "bond"
    assert evidence["opened_with"]["severity"] == "high"

    assert replay.run() == []  # the same data again: nothing to write
    replay.add(items(3, day(2), 7.0, 5.0, 6.0, 5.5))
    assert replay.only().session_number == 3
    assert replay.only().evidence["opened_with"]["session_number"] == 1  # type: ignore[index]


def test_a_third_no_show_refreshes_an_escalated_missed_session_alert() -> None:
    """missed_session opens at a no-show (MEDIUM), escalates at the second (HIGH) with the facts
    that escalated it, and the third no-show brings ``consecutive_missed`` to 3 on the same
    alert (a Refresh: no escalation, status kept); ``opened_with`` is the first no-show."""
    replay = Replay(MEDIUM_UP)
    replay.add(rated(1, day(0), 38.0), rated(2, day(1), 38.0))
    replay.add(missed(day(2)))
    assert (replay.only().kind, replay.only().severity) == ("missed_session", Severity.MEDIUM)
    (escalate,) = replay.add(missed(day(3)))
    assert isinstance(escalate, Escalate)
    assert escalate.finding.evidence["consecutive_missed"] == 2
    replay.acknowledge()

    (refresh,) = replay.add(missed(day(4)))
    assert isinstance(refresh, Refresh)
    now = replay.only()
    assert (now.severity, now.status, now.observed_on) == (
        Severity.HIGH,
        AlertStatus.ACKNOWLEDGED,
        day(4),
    )
    assert now.evidence["consecutive_missed"] == 3  # type: ignore[index]
    assert now.evidence["opened_with"]["consecutive_missed"] == 1  # type: ignore[index]
    assert now.evidence["opened_with"]["severity"] == "medium"  # type: ignore[index]
    assert replay.run() == []


def test_a_weaker_finding_keeps_the_evidence_that_raised_the_alert() -> None:
    """low_srs_bond opens at MEDIUM (the bond item low at two sessions in a row); after a good
    session a single low bond item (LOW) holds the alert open but does not replace the
    evidence that made it MEDIUM (alerts never de-escalate)."""
    replay = Replay(MEDIUM_UP)
    replay.add(items(1, day(0), 8.0, 9.5, 9.5, 9.5), items(2, day(1), 8.0, 9.5, 9.5, 9.5))
    (alert,) = [a for a in replay.alerts if a.kind == "low_srs_bond"]
    assert (alert.severity, alert.session_number) == (Severity.MEDIUM, 2)
    replay.add(items(3, day(2), 9.5, 9.5, 9.5, 9.5))
    actions = replay.add(items(4, day(3), 8.5, 9.5, 9.5, 9.5))
    assert not [a for a in actions if getattr(a, "alert_id", None) == alert.alert_id]
    (still,) = [a for a in replay.alerts if a.kind == "low_srs_bond"]
    assert (still.status, still.session_number) == (AlertStatus.OPEN, 2)


def test_an_escalation_describes_the_finding_that_escalated_it() -> None:
    """Whatever the kind, an escalation stores the escalating finding's leg, session and facts,
    and the facts the alert opened with (its severity among them)."""
    alert = Alert(
        "a1",
        "dropout_risk",
        Concern.BOND,
        Severity.MEDIUM,
        AlertStatus.OPEN,
        1,
        day(0),
        evidence={"observed_on": day(0).isoformat(), "concern": "bond", "percent": "41%"},
    )
    worse = Finding("dropout_risk", Concern.GOAL, Severity.HIGH, 2, day(1), {"percent": "67%"})
    obs = [rated(1, day(0), 30.0), rated(2, day(1), 28.0)]
    actions = reconcile([alert], [worse], obs)
    assert actions == [Escalate("a1", Severity.HIGH, worse)]
    (after,) = apply_actions([alert], actions, lambda: "x")
    assert (after.concern, after.severity, after.session_number) == (Concern.GOAL, Severity.HIGH, 2)
    assert after.evidence == {
        "observed_on": day(1).isoformat(),
        "concern": "goal",
        "percent": "67%",
        "opened_with": {
            "observed_on": day(0).isoformat(),
            "concern": "bond",
            "percent": "41%",
            "session_number": 1,
            "severity": "medium",
        },
    }
