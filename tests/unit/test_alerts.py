"""Alert reconciliation and the alert status machine."""

from __future__ import annotations

import datetime as dt
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fit_service.domain.alerts import (
    Alert,
    AlertStatus,
    AutoResolve,
    Escalate,
    Open,
    apply_actions,
    check_transition,
    reconcile,
    transition,
)
from fit_service.domain.errors import Conflict
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

DAY0 = dt.date(2024, 3, 4)
MEDIUM_UP = RiskSettings(alert_min_severity=Severity.MEDIUM)


def day(week: int) -> dt.date:
    return DAY0 + dt.timedelta(weeks=week)


def sess(n: int, srs: float | None = 40.0, **kw: object) -> SessionObservation:
    return SessionObservation(n, day(n - 1), outcome_total=20.0, alliance_total=srs, **kw)  # type: ignore[arg-type]


def finding(
    kind: str = "early_low_alliance",
    severity: Severity = Severity.HIGH,
    session: int = 1,
    concern: Concern = Concern.GLOBAL_ALLIANCE,
) -> Finding:
    return Finding(kind, concern, severity, session, day(session - 1))


def alert(
    kind: str = "early_low_alliance",
    status: AlertStatus = AlertStatus.OPEN,
    severity: Severity = Severity.HIGH,
    session: int = 1,
    concern: Concern = Concern.GLOBAL_ALLIANCE,
) -> Alert:
    return Alert("a1", kind, concern, severity, status, session, day(session - 1))


def test_new_finding_opens_an_alert() -> None:
    """A finding with no alert of its kind opens one at the finding's severity."""
    actions = reconcile([], [finding()], [sess(1, 30.0)])
    assert actions == [Open("early_low_alliance", Severity.HIGH, finding())]


def test_finding_below_alert_severity_opens_nothing() -> None:
    """By default (alert at HIGH) a MEDIUM finding is listed but opens no alert."""
    assert reconcile([], [finding("not_on_track", Severity.MEDIUM)], [sess(1)]) == []
    assert len(reconcile([], [finding("not_on_track", Severity.MEDIUM)], [sess(1)], MEDIUM_UP)) == 1


def test_same_finding_again_is_no_action() -> None:
    """An open alert already covering the finding's severity means no action."""
    assert reconcile([alert()], [finding(session=2)], [sess(1, 30.0), sess(2, 31.0)]) == []


def test_worse_finding_escalates() -> None:
    """A finding more severe than the open alert escalates it."""
    existing = alert("missed_session", severity=Severity.MEDIUM, concern=Concern.ATTENDANCE)
    worse = finding("missed_session", Severity.HIGH, concern=Concern.ATTENDANCE)
    actions = reconcile([existing], [worse], [sess(1)], MEDIUM_UP)
    assert actions == [Escalate("a1", Severity.HIGH, worse)]


def test_acknowledged_alert_also_blocks_a_duplicate() -> None:
    """An acknowledged alert is still active: no second alert of its kind."""
    assert reconcile([alert(status=AlertStatus.ACKNOWLEDGED)], [finding()], [sess(1, 30.0)]) == []


def test_non_alliance_alert_resolves_as_soon_as_condition_clears() -> None:
    """An attendance alert auto-resolves, with a note, once its finding no longer holds."""
    existing = alert("missed_session", concern=Concern.ATTENDANCE)
    (action,) = reconcile([existing], [], [sess(1), sess(2)])
    assert isinstance(action, AutoResolve)
    assert "missed_session no longer holds" in action.note


@pytest.mark.parametrize(
    ("later", "resolves"),
    [
        ([sess(2, 37.0)], False),  # one clear session is not enough
        ([sess(2, 37.0), sess(3, 36.0)], True),  # two at >= 36
        ([sess(2, 37.0), sess(3, 35.9)], False),  # second one still low
        ([sess(2, 37.0), sess(3, None, alliance_not_completed=True)], False),  # skipped
    ],
)
def test_alliance_alert_resolves_only_after_two_clear_sessions(
    later: list[SessionObservation], resolves: bool
) -> None:
    """An alliance alert waits for SRS >= 36 at two consecutive sessions after its evidence."""
    actions = reconcile([alert()], [], [sess(1, 30.0), *later])
    assert any(isinstance(a, AutoResolve) for a in actions) is resolves


def test_clear_sessions_setting_is_honoured() -> None:
    """With alliance_clear_sessions = 1 one clear session resolves the alert."""
    custom = RiskSettings(alliance_clear_sessions=1)
    assert reconcile([alert()], [], [sess(1, 30.0), sess(2, 37.0)], custom) != []


def test_low_finding_keeps_an_alert_from_resolving() -> None:
    """While a lower-severity finding of the kind holds, the alert stays open."""
    existing = alert("srs_decline", severity=Severity.MEDIUM)
    still = finding("srs_decline", Severity.LOW, session=2)
    assert reconcile([existing], [still], [sess(1), sess(2), sess(3)], MEDIUM_UP) == []


@pytest.mark.parametrize("status", [AlertStatus.DISMISSED, AlertStatus.RESOLVED])
def test_closed_alert_not_reopened_by_same_evidence(status: AlertStatus) -> None:
    """A dismissed or resolved alert does not come back for the same session's evidence."""
    assert reconcile([alert(status=status)], [finding()], [sess(1, 30.0)]) == []


def test_later_evidence_opens_a_new_alert_after_dismissal() -> None:
    """A finding at a later session than the dismissed alert opens a new one."""
    later = finding(session=3)
    actions = reconcile([alert(status=AlertStatus.DISMISSED)], [later], [sess(3, 30.0)])
    assert actions == [Open("early_low_alliance", Severity.HIGH, later)]


def test_two_active_alerts_of_one_kind_is_a_conflict() -> None:
    """Reconciliation refuses a history that already breaks the one-active-alert rule."""
    with pytest.raises(Conflict):
        reconcile([alert(), alert(status=AlertStatus.ACKNOWLEDGED)], [], [sess(1)])


# ------------------------------------------------------------------------------ status machine
@pytest.mark.parametrize(
    ("current", "target"),
    [
        (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED),
        (AlertStatus.OPEN, AlertStatus.RESOLVED),
        (AlertStatus.OPEN, AlertStatus.DISMISSED),
        (AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED),
        (AlertStatus.ACKNOWLEDGED, AlertStatus.DISMISSED),
        (AlertStatus.ACKNOWLEDGED, AlertStatus.AUTO_RESOLVED),
    ],
)
def test_allowed_transitions_pass_with_a_note(current: AlertStatus, target: AlertStatus) -> None:
    """The documented transitions are accepted when they carry their text."""
    check_transition(current, target, "talked it through")


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (AlertStatus.RESOLVED, AlertStatus.OPEN),
        (AlertStatus.DISMISSED, AlertStatus.ACKNOWLEDGED),
        (AlertStatus.AUTO_RESOLVED, AlertStatus.RESOLVED),
        (AlertStatus.ACKNOWLEDGED, AlertStatus.OPEN),
        (AlertStatus.ACKNOWLEDGED, AlertStatus.ACKNOWLEDGED),
    ],
)
def test_illegal_transitions_raise_conflict(current: AlertStatus, target: AlertStatus) -> None:
    """Closed alerts are final and acknowledgement cannot be undone."""
    with pytest.raises(Conflict) as info:
        check_transition(current, target, "note")
    assert info.value.rule == "illegal_alert_transition"


@pytest.mark.parametrize("target", [AlertStatus.RESOLVED, AlertStatus.DISMISSED])
@pytest.mark.parametrize("note", [None, "", "   "])
def test_resolve_and_dismiss_need_text(target: AlertStatus, note: str | None) -> None:
    """Resolving needs a note and dismissing a reason; blank text does not count."""
    with pytest.raises(Conflict) as info:
        check_transition(AlertStatus.OPEN, target, note)
    assert info.value.rule == "alert_note_required"


def test_transition_returns_updated_alert() -> None:
    """transition() returns the alert with its new status and trimmed note."""
    done = transition(alert(), AlertStatus.DISMISSED, " client moved away ")
    assert (done.status, done.note) == (AlertStatus.DISMISSED, "client moved away")


# ------------------------------------------------------------------------------ properties
srs_total = st.one_of(st.integers(300, 400), st.integers(0, 400)).map(lambda v: v / 10)
visit = st.one_of(srs_total, st.none(), st.sampled_from([Attendance.NO_SHOW, Attendance.CANCELLED]))


def episode(visits: list[float | Attendance | None]) -> list[SessionObservation]:
    obs: list[SessionObservation] = []
    n = 0
    for week, v in enumerate(visits):
        if isinstance(v, Attendance):
            obs.append(SessionObservation(None, day(week), v))
            continue
        n += 1
        obs.append(
            SessionObservation(
                n,
                day(week),
                outcome_total=20.0 - n,
                alliance_total=v,
                alliance_not_completed=v is None,
            )
        )
    return obs


@settings(max_examples=200, deadline=None)
@given(
    visits=st.lists(visit, min_size=1, max_size=10),
    minimum=st.sampled_from(list(Severity)),
)
def test_resent_history_gives_no_new_actions(
    visits: list[float | Attendance | None], minimum: Severity
) -> None:
    """Replaying a history live, then re-sending the same data, produces no further actions."""
    obs = episode(visits)
    custom = RiskSettings(alert_min_severity=minimum)
    ids = count(1)
    alerts: list[Alert] = []
    for upto in range(1, len(obs) + 1):
        history = obs[:upto]
        context = EpisodeContext(20.0, 25.0, AgeBand.ADULT, history[-1].date)
        findings = evaluate_rules(history, context, custom)
        actions = reconcile(alerts, findings, history, custom)
        alerts = apply_actions(alerts, actions, lambda: f"a{next(ids)}")
        assert sum(a.status.is_active for a in alerts) == len(
            {a.kind for a in alerts if a.status.is_active}
        )
    assert reconcile(alerts, findings, obs, custom) == []


def ors_sess(n: int, ors: float) -> SessionObservation:
    return SessionObservation(n, day(n - 1), outcome_total=ors)


@pytest.mark.parametrize("status", [AlertStatus.DISMISSED, AlertStatus.RESOLVED])
def test_evidence_the_clinician_saw_when_closing_does_not_reopen(status: AlertStatus) -> None:
    """Opened on session 2, still holding at session 3 (no action, so its evidence date stays
    at session 2), dismissed after session 3: neither session 3's evidence nor the held-over
    finding at session 4 (ORS back within reliable change) opens it again."""
    ctx = EpisodeContext(None, 25.0, AgeBand.ADULT, day(10))
    closed = Alert(
        "a1",
        "ors_reliable_deterioration",
        Concern.OUTCOME,
        Severity.HIGH,
        status,
        2,
        day(1),
        closed_on=day(2) + dt.timedelta(days=1),
    )
    history = [ors_sess(1, 20.0), ors_sess(2, 14.0), ors_sess(3, 13.0)]
    assert reconcile([closed], evaluate_rules(history, ctx), history) == []
    held = [*history, ors_sess(4, 19.0)]
    assert any(f.kind == "ors_reliable_deterioration" for f in evaluate_rules(held, ctx))
    assert reconcile([closed], evaluate_rules(held, ctx), held) == []
    # a new fall after the dismissal is new evidence (confirmed by a second score: HIGH)
    worse = [*held, ors_sess(5, 12.0)]
    assert reconcile([closed], evaluate_rules(worse, ctx), worse) == []  # one score: MEDIUM
    worse.append(ors_sess(6, 13.0))
    (action,) = reconcile([closed], evaluate_rules(worse, ctx), worse)
    assert isinstance(action, Open)
    assert action.finding.session_number == 6


def test_an_auto_resolved_alert_does_not_block_backfilled_evidence() -> None:
    """No one saw an auto-resolved alert: older sessions arriving later can still raise one."""
    auto = Alert(
        "a1",
        "ors_reliable_deterioration",
        Concern.OUTCOME,
        Severity.HIGH,
        AlertStatus.AUTO_RESOLVED,
        2,
        day(1),
        closed_on=day(30),
    )
    ctx = EpisodeContext(None, 25.0, AgeBand.ADULT, day(10))
    history = [ors_sess(1, 20.0), ors_sess(2, 14.0), ors_sess(3, 20.0), ors_sess(4, 20.0)]
    history += [ors_sess(5, 13.0), ors_sess(6, 14.0)]
    (action,) = reconcile([auto], evaluate_rules(history, ctx), history)
    assert isinstance(action, Open)
