"""Alert reconciliation and the alert status machine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import replace as dt_replace
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
    reassigned_status,
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
from tests.unit.weeks import MEDIUM_UP, day


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
    """A later finding re-opens a dismissed alert once the finding cleared in between."""
    later = finding(session=3)
    history = [sess(1, 30.0), sess(2, 38.0), sess(3, 30.0)]
    dismissed = [alert(status=AlertStatus.DISMISSED)]
    assert reconcile(dismissed, [later], history) == [
        Open("early_low_alliance", Severity.HIGH, later)
    ]
    actions = reconcile(dismissed, [later], history, context=ctx_at(history))
    assert actions == [Open("early_low_alliance", Severity.HIGH, later)]


def ctx_at(history: list[SessionObservation], **kw: object) -> EpisodeContext:
    return EpisodeContext(None, 25.0, AgeBand.ADULT, history[-1].date, **kw)  # type: ignore[arg-type]


def replay_closing(
    observations: list[SessionObservation],
    close_after: Collection[int],
    custom: RiskSettings | None = None,
    status: AlertStatus = AlertStatus.DISMISSED,
) -> list[Alert]:
    """Assess after every session as the service does; the clinician closes (``status``) every
    live alert on the day of each session numbered in ``close_after``. Returns the alerts at the
    end."""
    custom = custom or RiskSettings()
    ids = count(1)
    alerts: list[Alert] = []
    history: list[SessionObservation] = []
    for o in observations:
        history.append(o)
        context = ctx_at(history)
        findings = evaluate_rules(history, context, custom)
        actions = reconcile(alerts, findings, history, custom, context=context)
        alerts = apply_actions(alerts, actions, lambda: f"a{next(ids)}")
        if o.session_number in close_after:
            alerts = [
                dt_replace(a, status=status, closed_on=history[-1].date)
                if a.status.is_active
                else a
                for a in alerts
            ]
    return alerts


def replay_with_dismissal(
    srs_totals: list[float],
    dismiss_after: int | Collection[int],
    custom: RiskSettings | None = None,
) -> list[Alert]:
    """:func:`replay_closing` on SRS totals, one a week; the clinician dismisses the live alert
    on the day of session ``dismiss_after`` (or of each of them)."""
    after = {dismiss_after} if isinstance(dismiss_after, int) else set(dismiss_after)
    history = [sess(n, total) for n, total in enumerate(srs_totals, start=1)]
    return replay_closing(history, after, custom)


def test_dismissal_holds_while_the_same_low_run_persists() -> None:
    """A dismissal holds while the same run of SRS 34 persists: one alert, not one a session."""
    alerts = replay_with_dismissal([34.0, 34.0, 34.0, 34.0, 34.0], dismiss_after=1)
    assert [(a.kind, a.status) for a in alerts] == [("early_low_alliance", AlertStatus.DISMISSED)]


def test_dismissal_gives_way_when_the_finding_cleared_and_came_back() -> None:
    """After a dismissal, SRS back at 38 then low again opens a new alert."""
    alerts = replay_with_dismissal([34.0, 38.0, 34.0], dismiss_after=1)
    assert [(a.kind, a.status, a.session_number) for a in alerts] == [
        ("early_low_alliance", AlertStatus.DISMISSED, 1),
        ("early_low_alliance", AlertStatus.OPEN, 3),
    ]


def test_dismissed_high_alliance_alert_reopens_when_the_alliance_is_much_worse() -> None:
    """SRS 33 opens early_low_alliance (HIGH); dismissed; the same run falls to 24 (HIGH cannot
    get higher): the dismissal covered 33, not 24, and a new alert opens at the fall."""
    alerts = replay_with_dismissal([33.0, 33.0, 24.0], dismiss_after=1)
    assert [(a.kind, a.status, a.session_number) for a in alerts] == [
        ("early_low_alliance", AlertStatus.DISMISSED, 1),
        ("early_low_alliance", AlertStatus.OPEN, 3),
    ]
    reopened = alerts[-1]
    assert (reopened.severity, reopened.evidence["srs_total"]) == (Severity.HIGH, 24.0)  # type: ignore[index]


def test_dismissal_holds_when_the_alliance_is_no_worse_than_dismissed() -> None:
    """Dismissed at 33, then dismissed again at 24: the same 24 again opens nothing, nor does a
    fall of less than the reliable change (5 points) below what was dismissed."""
    alerts = replay_with_dismissal([33.0, 24.0, 24.0, 24.0, 19.5], dismiss_after={1, 2})
    assert [(a.kind, a.status, a.session_number) for a in alerts] == [
        ("early_low_alliance", AlertStatus.DISMISSED, 1),
        ("early_low_alliance", AlertStatus.DISMISSED, 2),
    ]
    alerts = replay_with_dismissal([33.0, 32.5, 32.1, 33.0], dismiss_after=1)
    assert [(a.kind, a.status) for a in alerts] == [("early_low_alliance", AlertStatus.DISMISSED)]


def test_a_one_point_drift_after_each_dismissal_does_not_re_alert_every_session() -> None:
    """SRS 33, 32, 31, 30, 29, each session's alert dismissed: a 1-point fall is the clinic's
    line for a decline but within-client noise, so the first dismissal holds until the SRS is
    a reliable change (5 points) below it - one alert, not one a session."""
    alerts = replay_with_dismissal([33.0, 32.0, 31.0, 30.0, 29.0], dismiss_after={1, 2, 3, 4})
    assert [(a.kind, a.session_number) for a in alerts] == [("early_low_alliance", 1)]
    alerts = replay_with_dismissal([33.0, 32.0, 30.0, 28.0], dismiss_after={1, 2, 3})
    assert [(a.kind, a.session_number) for a in alerts] == [
        ("early_low_alliance", 1),
        ("early_low_alliance", 4),
    ]


def test_one_srs_items_alert_reopens_by_severity_only() -> None:
    """low_srs_* judge one item, which has no reliable-change figure: a dismissed item alert is
    covered while the item stays low, however low (goals 8.5, then 7, then 6 at the same
    severity; totals 36 and over, so no alliance alert carries it), and never re-alerts on the
    item's fall alone."""
    custom = RiskSettings(alert_min_severity=Severity.MEDIUM)

    def items(goals: float) -> dict[str, float]:
        return {"relationship": 10.0, "goals": goals, "approach": 10.0, "overall": 10.0}

    history = [
        sess(n, 30.0 + goals, alliance_items=items(goals))
        for n, goals in enumerate([8.5, 7.0, 6.0, 6.0], start=1)
    ]
    alerts = replay_closing(history, {1, 2, 3}, custom)
    goal = [a for a in alerts if a.kind == "low_srs_goal"]
    assert len(goal) == 1, [(a.kind, a.session_number) for a in alerts]
    assert goal[0].status is AlertStatus.DISMISSED


def test_a_low_rating_with_low_items_gives_one_alliance_alert_at_medium() -> None:
    """A clinic alerting at MEDIUM: SRS 30 with goals and approach under the item line opens
    one alert, early_low_alliance naming the weakest leg, which carries the two item findings
    (``also_holds``) - not one alert per low item beside it."""
    custom = RiskSettings(alert_min_severity=Severity.MEDIUM)
    items = {"relationship": 9.5, "goals": 6.0, "approach": 7.0, "overall": 7.5}
    alerts = replay_closing([sess(1, 30.0, alliance_items=items)], set(), custom)
    assert [(a.kind, a.status) for a in alerts] == [("early_low_alliance", AlertStatus.OPEN)]
    carried = alerts[0].evidence["also_holds"]  # type: ignore[index]
    assert {c["kind"] for c in carried} >= {"low_srs_goal", "low_srs_task"}


def test_the_worse_step_is_the_clinics_reliable_change_setting() -> None:
    """A clinic with a 3-point reliable change: 30 is a reliable fall below the dismissed 33."""
    custom = RiskSettings(reliable_change=3.0)
    alerts = replay_with_dismissal([33.0, 31.0, 30.0], dismiss_after=1, custom=custom)
    assert [a.session_number for a in alerts] == [1, 3]
    alerts = replay_with_dismissal([33.0, 31.0, 30.5], dismiss_after=1, custom=custom)
    assert [a.session_number for a in alerts] == [1]


def test_resolved_deterioration_reopens_on_a_much_bigger_fall() -> None:
    """ORS 20 at intake, 14 and 13 confirm a reliable fall (HIGH, change -7); the clinician
    resolves it. A score one point lower is the same evidence; 7 (change -13, at least another
    reliable change of 5 below the resolved -7, domain.md §3) is a new, worse fall."""
    scores = [20.0, 14.0, 13.0, 12.0, 7.0]
    history = [ors_sess(n, ors) for n, ors in enumerate(scores, start=1)]
    alerts = replay_closing(history[:4], {3}, status=AlertStatus.RESOLVED)
    assert [(a.kind, a.status, a.session_number) for a in alerts] == [
        ("ors_reliable_deterioration", AlertStatus.RESOLVED, 3)
    ]
    alerts = replay_closing(history, {3}, status=AlertStatus.RESOLVED)
    assert [(a.kind, a.status, a.session_number) for a in alerts] == [
        ("ors_reliable_deterioration", AlertStatus.RESOLVED, 3),
        ("ors_reliable_deterioration", AlertStatus.OPEN, 5),
    ]
    assert alerts[-1].evidence["change"] == -13.0  # type: ignore[index]


def test_dismissal_gives_way_when_the_finding_gets_worse() -> None:
    """A dismissed MEDIUM missed_session re-opens at HIGH, then holds at the same HIGH."""
    miss = Attendance.NO_SHOW
    history = [sess(1), sess(2), SessionObservation(None, day(2), miss)]
    dismissed = Alert(
        "a1",
        "missed_session",
        Concern.ATTENDANCE,
        Severity.MEDIUM,
        AlertStatus.DISMISSED,
        None,
        day(2),
        closed_on=day(2),
    )
    history.append(SessionObservation(None, day(3), miss))
    context = ctx_at(history)
    (action,) = reconcile([dismissed], evaluate_rules(history, context), history, context=context)
    assert isinstance(action, Open)
    assert action.severity is Severity.HIGH
    reopened = dt_replace(
        dismissed, severity=Severity.HIGH, observed_on=day(3), closed_on=day(3), alert_id="a2"
    )
    history.append(SessionObservation(None, day(4), miss))
    context = ctx_at(history)
    findings = evaluate_rules(history, context)
    assert reconcile([dismissed, reopened], findings, history, context=context) == []


def test_reassigned_alert_is_open_again_and_closed_alerts_stay() -> None:
    """A live alert moved to another clinician is open; a closed one cannot move."""
    assert reassigned_status(AlertStatus.ACKNOWLEDGED) is AlertStatus.OPEN
    assert reassigned_status(AlertStatus.OPEN) is AlertStatus.OPEN
    with pytest.raises(Conflict):
        reassigned_status(AlertStatus.DISMISSED)


def wai_sess(n: int, goal: float, srs: float | None = None) -> SessionObservation:
    subscales = {"goal": goal, "task": 16.0, "bond": 16.0}
    return SessionObservation(
        n, day(n - 1), outcome_total=20.0, alliance_total=srs, wai_subscales=subscales
    )


def wai_alert() -> Alert:
    return Alert("w1", "weak_wai_goal", Concern.GOAL, Severity.MEDIUM, AlertStatus.OPEN, 2, day(1))


@pytest.mark.parametrize(
    ("later", "resolves"),
    [
        ([wai_sess(3, 20.0)], False),  # one clear session is not enough
        ([wai_sess(3, 20.0), wai_sess(4, 20.0)], True),  # two, no SRS anywhere
        ([wai_sess(3, 11.0), wai_sess(4, 20.0)], False),  # still weak at session 3
        ([wai_sess(3, 20.0), sess(4, 37.0)], True),  # a session without WAI-SR counts its SRS
        ([wai_sess(3, 20.0), sess(4, 30.0)], False),  # ... when it is above the concern line
        ([wai_sess(3, 20.0), sess(4, None)], False),  # no alliance rating: no evidence
    ],
)
def test_wai_alert_resolves_on_the_wai_evidence_without_srs(
    later: list[SessionObservation], resolves: bool
) -> None:
    """A WAI-SR alert clears after two clear WAI-SR (or SRS) sessions, also without SRS."""
    history = [wai_sess(1, 16.0), wai_sess(2, 8.0), *later]
    actions = reconcile([wai_alert()], [], history, MEDIUM_UP)
    assert any(isinstance(a, AutoResolve) for a in actions) is resolves
    if resolves:
        (action,) = actions
        assert "WAI-SR goal subscale no longer weak" in action.note


def test_wai_alert_clears_against_the_clinics_decile() -> None:
    """A WAI-SR alert clears against the clinic's decile, not only the heuristic floor."""
    reference = {n: {"goal": 15.0, "task": 10.0, "bond": 10.0} for n in range(1, 6)}
    history = [wai_sess(1, 16.0), wai_sess(2, 8.0), wai_sess(3, 14.0), wai_sess(4, 14.0)]
    context = ctx_at(history, wai_reference=reference)
    assert reconcile([wai_alert()], [], history, MEDIUM_UP, context=context) == []
    history += [wai_sess(5, 16.0), wai_sess(6, 16.0)]
    (action,) = reconcile([wai_alert()], [], history, MEDIUM_UP, context=context)
    assert isinstance(action, AutoResolve)


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
    assert reconcile([closed], evaluate_rules(history, ctx), history, context=ctx) == []
    held = [*history, ors_sess(4, 19.0)]
    assert any(f.kind == "ors_reliable_deterioration" for f in evaluate_rules(held, ctx))
    assert reconcile([closed], evaluate_rules(held, ctx), held, context=ctx) == []
    # a new fall after the dismissal is new evidence (confirmed by a second score: HIGH)
    worse = [*held, ors_sess(5, 12.0)]
    assert reconcile([closed], evaluate_rules(worse, ctx), worse, context=ctx) == []  # MEDIUM
    worse.append(ors_sess(6, 13.0))
    (action,) = reconcile([closed], evaluate_rules(worse, ctx), worse, context=ctx)
    assert isinstance(action, Open)
    assert action.finding.session_number == 6
    # without the context (no look back) the same: the new fall opens
    assert reconcile([closed], evaluate_rules(worse, ctx), worse) == [action]


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


@settings(max_examples=150, deadline=None)
@given(
    visits=st.lists(visit, min_size=1, max_size=10),
    minimum=st.sampled_from(list(Severity)),
)
def test_dismissing_everything_never_reopens_on_a_resend(
    visits: list[float | Attendance | None], minimum: Severity
) -> None:
    """All alerts dismissed at once: a held finding re-opens only with materially worse
    evidence (never at the same or a better figure); resends do nothing."""
    obs = episode(visits)
    custom = RiskSettings(alert_min_severity=minimum)
    ids = count(1)
    alerts: list[Alert] = []
    for upto in range(1, len(obs) + 1):
        history = obs[:upto]
        context = EpisodeContext(20.0, 25.0, AgeBand.ADULT, history[-1].date)
        findings = evaluate_rules(history, context, custom)
        actions = reconcile(alerts, findings, history, custom, context=context)
        for action in actions:
            if not isinstance(action, Open) or upto == 1:
                continue
            previous = obs[: upto - 1]
            before = {
                f.kind: f
                for f in evaluate_rules(
                    previous, EpisodeContext(20.0, 25.0, AgeBand.ADULT, previous[-1].date), custom
                )
                if f.alerts and f.severity >= minimum
            }
            held = before.get(action.kind)
            dismissed = [a for a in alerts if a.kind == action.kind]
            if dismissed and held and held.severity >= action.severity:
                # the one reason left: evidence materially worse than the latest dismissed
                # (SRS total or ORS change: by the reliable change)
                latest = max(dismissed, key=lambda a: a.observed_on)
                key, step = (
                    ("change", custom.reliable_change)
                    if action.kind == "ors_reliable_deterioration"
                    else ("srs_total", custom.reliable_change)
                )
                shown = [latest.evidence or {}, (latest.evidence or {}).get("opened_with") or {}]
                lowest = min(e[key] for e in shown if e.get(key) is not None)
                assert lowest - action.finding.evidence[key] >= step - 1e-9, action
        alerts = apply_actions(alerts, actions, lambda: f"a{next(ids)}")
        alerts = [
            dt_replace(a, status=AlertStatus.DISMISSED, closed_on=history[-1].date)
            if a.status.is_active
            else a
            for a in alerts
        ]
    context = EpisodeContext(20.0, 25.0, AgeBand.ADULT, obs[-1].date)
    assert (
        reconcile(alerts, evaluate_rules(obs, context, custom), obs, custom, context=context) == []
    )


def test_a_former_clinicians_dismissal_does_not_hold_for_the_clinician_the_client_moved_to() -> (
    None
):
    """An EHR correction moves the client from T-8 (who dismissed the early_low_alliance alert)
    to T-7 without a new session: T-7 gets their own alert on the same evidence; for T-8 the
    dismissal still holds."""
    obs = [sess(1, 30.0)]
    context = EpisodeContext(None, 25.0, AgeBand.ADULT, day(0) + dt.timedelta(days=3))
    findings = evaluate_rules(obs, context)
    dismissed = dt_replace(
        alert(status=AlertStatus.DISMISSED),
        closed_on=day(0) + dt.timedelta(days=1),
        clinician="T-8",
    )
    moved = reconcile([dismissed], findings, obs, context=context, treating="T-7")
    assert [(type(a), a.kind) for a in moved] == [(Open, "early_low_alliance")]
    assert reconcile([dismissed], findings, obs, context=context, treating="T-8") == []
    # an auto-resolved alert is no one's judgement: it still covers its own evidence
    auto = dt_replace(dismissed, status=AlertStatus.AUTO_RESOLVED)
    assert reconcile([auto], findings, obs, context=context, treating="T-7") == []
