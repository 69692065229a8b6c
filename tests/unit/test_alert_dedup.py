"""One finding, one alert (pure): which outcome findings restate another and ride in its alert,
what the carrier keeps of them, how reconciliation treats alerts of a carried kind, and the
refresh of alerts whose facts are counted to today (long_gap)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from fit_service.domain.alerts import (
    Alert,
    AlertStatus,
    AutoResolve,
    Open,
    Refresh,
    apply_actions,
    reconcile,
)
from fit_service.domain.instruments import AgeBand
from fit_service.domain.risk import (
    Concern,
    EpisodeContext,
    Finding,
    SessionObservation,
    Severity,
    assess_episode,
    evaluate_rules,
    fold_restatements,
)
from fit_service.domain.trajectory import RATIONAL_LABEL
from tests.unit.weeks import DAY0, MEDIUM_UP, day


def sess(n: int, ors: float, model: str = RATIONAL_LABEL, **kw: Any) -> SessionObservation:
    """Session ``n`` in week ``n - 1``, SRS 37 (no alliance finding); from session 2 judged by
    ``model``: off track when 5 or more below the intake of 20, or flat at session 6."""
    judged: dict[str, Any] = {}
    if n > 1:
        off = ors <= 15.0 or (n >= 6 and ors < 25.0)
        judged = {"on_track": not off, "trajectory_model": model, "band_low": 15.0}
    return SessionObservation(
        n, day(n - 1), outcome_total=ors, alliance_total=37.0, **{**judged, **kw}
    )


def ctx(today: dt.date | None = None) -> EpisodeContext:
    return EpisodeContext(None, 25.0, AgeBand.ADULT, today or day(6))


def found(obs: list[SessionObservation]) -> dict[str, Finding]:
    return {f.kind: f for f in evaluate_rules(obs, ctx(obs[-1].date), MEDIUM_UP)}


def alerting(obs: list[SessionObservation]) -> list[str]:
    """The kinds that open an alert on ``obs`` (no alerts yet; alerts from MEDIUM)."""
    findings = evaluate_rules(obs, ctx(obs[-1].date), MEDIUM_UP)
    return sorted(a.kind for a in reconcile([], findings, obs, MEDIUM_UP) if isinstance(a, Open))


FLAT = [sess(n, 20.0) for n in range(1, 7)]
FALL = [sess(1, 20.0), sess(2, 14.0)]


# ------------------------------------------------------------------ the fold
def test_rational_off_track_at_the_change_checkpoint_rides_in_the_no_change_alert() -> None:
    """Rational off track with no reliable improvement by session 6 is the no-change finding:
    no_reliable_improvement opens the one alert, with not_on_track's facts and model."""
    f = found(FLAT)
    assert f["not_on_track"].covered_by == "no_reliable_improvement"
    assert not f["not_on_track"].alerts
    (carried,) = f["no_reliable_improvement"].evidence["also_holds"]
    assert (carried["kind"], carried["model"], carried["severity"]) == (
        "not_on_track",
        RATIONAL_LABEL,
        "medium",
    )
    assert "By the rational rules (rational:cutoff+rc)" in f["no_reliable_improvement"].guidance
    assert alerting(FLAT) == ["no_reliable_improvement"]


def test_a_reliable_fall_carries_both_restatements() -> None:
    """A score reliably below intake: the deterioration carries the rational not_on_track and,
    from the discuss checkpoint, no_reliable_improvement (with its checkpoint advice)."""
    obs = [sess(1, 20.0), *(sess(n, 14.0) for n in range(2, 7))]
    f = found(obs)
    assert f["not_on_track"].covered_by == "ors_reliable_deterioration"
    assert f["no_reliable_improvement"].covered_by == "ors_reliable_deterioration"
    carried = {c["kind"] for c in f["ors_reliable_deterioration"].evidence["also_holds"]}
    assert carried == {"not_on_track", "no_reliable_improvement"}
    assert "consider changing the approach" in f["ors_reliable_deterioration"].guidance
    assert alerting(FALL) == ["ors_reliable_deterioration"]
    assert alerting(obs) == ["ors_reliable_deterioration"]


def test_the_clinics_own_etr_keeps_its_own_alert() -> None:
    """Below the clinic's own expected-response band is evidence of its own (where similar
    clients are by now), not a restatement: not_on_track from the ETR still opens its alert."""
    obs = [sess(1, 20.0), *(sess(n, 20.0, model="clinic_etr_v1") for n in range(2, 7))]
    assert found(obs)["not_on_track"].covered_by is None
    assert alerting(obs) == ["no_reliable_improvement", "not_on_track"]


def test_a_held_over_deterioration_carries_nothing() -> None:
    """A deterioration held over from an earlier score (the latest is back within the reliable
    change) rests on another score: the latest score's findings keep their own alerts."""
    obs = [sess(1, 20.0), *(sess(n, 14.0) for n in range(2, 6)), sess(6, 17.0)]
    f = found(obs)
    assert f["ors_reliable_deterioration"].session_number == 5
    assert not f["ors_reliable_deterioration"].alerts
    assert f["no_reliable_improvement"].covered_by is None
    assert f["not_on_track"].covered_by == "no_reliable_improvement"
    assert alerting(obs) == ["no_reliable_improvement"]


def test_a_carrier_less_severe_than_the_finding_carries_nothing() -> None:
    """Folding never costs an alert or a severity: a carrier below the finding's severity (or
    one that cannot open its alert) leaves the finding its own."""
    ctx_ = ctx()
    nri = Finding("no_reliable_improvement", Concern.OUTCOME, Severity.MEDIUM, 6, day(5))
    worse = Finding("ors_reliable_deterioration", Concern.OUTCOME, Severity.LOW, 6, day(5))
    assert fold_restatements([worse, nri], ctx_) == [worse, nri]
    held = replace(worse, severity=Severity.HIGH, alerts=False)
    assert fold_restatements([held, nri], ctx_) == [held, nri]
    (carrier, covered) = fold_restatements([replace(worse, severity=Severity.HIGH), nri], ctx_)
    assert covered.covered_by == carrier.kind


def test_a_folded_finding_still_sets_the_level_and_is_listed() -> None:
    """The fold changes what alerts, not what is found: every rule that holds stays in the
    findings and the reasons, the carried ones marked."""
    result = assess_episode(FLAT, ctx(), MEDIUM_UP)
    assert result.level.value == "elevated"
    (line,) = [r for r in result.reasons if r.startswith("not_on_track")]
    assert line.endswith("(the same finding as no_reliable_improvement: in its alert)")


# ------------------------------------------------------------------ reconciliation
def alert(
    kind: str, status: AlertStatus = AlertStatus.OPEN, session: int = 6, alert_id: str = ""
) -> Alert:
    return Alert(
        alert_id or kind, kind, Concern.OUTCOME, Severity.MEDIUM, status, session, day(session - 1)
    )


def test_an_alert_of_a_carried_kind_closes_once_its_carrier_is_live() -> None:
    """The pair opened before the fold (or before the stronger finding held): the carried one
    auto-resolves, naming the alert that carries it; the carrier stays."""
    findings = evaluate_rules(FLAT, ctx(), MEDIUM_UP)
    pair = [alert("not_on_track"), alert("no_reliable_improvement")]
    (action,) = reconcile(pair, findings, FLAT, MEDIUM_UP, context=ctx())
    assert isinstance(action, AutoResolve)
    assert action.alert_id == "not_on_track"
    assert "same finding as the no_reliable_improvement alert" in action.note


def test_an_alert_of_a_carried_kind_closes_when_its_carrier_opens() -> None:
    """no_reliable_improvement open at session 6, reliably worse at 7: the deterioration alert
    opens and carries it, and the no-change alert closes in the same reconciliation."""
    obs = [*FLAT, sess(7, 14.0)]
    findings = evaluate_rules(obs, ctx(day(6)), MEDIUM_UP)
    actions = reconcile([alert("no_reliable_improvement")], findings, obs, MEDIUM_UP)
    assert [type(a) for a in actions] == [Open, AutoResolve]
    assert actions[0].kind == "ors_reliable_deterioration"  # type: ignore[union-attr]


def carrying(closed: Alert, finding: Finding) -> Alert:
    """``closed`` as stored when it carried ``finding`` (its evidence lists it in also_holds)."""
    entry = {"kind": finding.kind, "severity": finding.severity.label, **finding.evidence}
    return replace(closed, evidence={"also_holds": [entry]})


def test_an_alert_of_a_carried_kind_stays_while_its_carrier_has_no_live_alert() -> None:
    """The clinician dismissed the carrier's alert: that does not silence the other; it stays
    open. Closed, it is not re-opened when the dismissed alert showed it (also_holds): the
    dismissal covers what the clinician saw, while the same finding persists. A finding the
    dismissed alert did not show alerts on its own (folding must not cost an alert)."""
    findings = evaluate_rules(FLAT, ctx(), MEDIUM_UP)
    dismissed = replace(alert("no_reliable_improvement", AlertStatus.DISMISSED), closed_on=day(5))
    assert reconcile([dismissed, alert("not_on_track")], findings, FLAT, MEDIUM_UP) == []
    shown = carrying(dismissed, next(f for f in findings if f.kind == "not_on_track"))
    assert reconcile([shown], findings, FLAT, MEDIUM_UP, context=ctx()) == []
    actions = reconcile([dismissed], findings, FLAT, MEDIUM_UP, context=ctx())
    assert [(a.kind, type(a)) for a in actions] == [("not_on_track", Open)]


def test_a_dismissal_holds_while_the_finding_rode_in_another_alert() -> None:
    """no_reliable_improvement dismissed at session 6; at 7 it rides in a deterioration alert;
    at 8 the score is back within the reliable change. The no-change finding persisted all
    along (carried is not cleared), so the clinician's dismissal still holds."""
    obs = [*FLAT, sess(7, 14.0), sess(8, 18.0)]
    dismissed = replace(alert("no_reliable_improvement", AlertStatus.DISMISSED), closed_on=day(5))
    # as stored: it showed the rational not_on_track it carried
    carried = next(f for f in evaluate_rules(FLAT, ctx(), MEDIUM_UP) if f.kind == "not_on_track")
    dismissed = carrying(dismissed, carried)
    live = alert("ors_reliable_deterioration", session=7)
    findings = evaluate_rules(obs, ctx(day(7)), MEDIUM_UP)
    assert findings[0].kind == "ors_reliable_deterioration"
    assert not findings[0].alerts  # held over from session 7
    actions = reconcile([dismissed, live], findings, obs, MEDIUM_UP, context=ctx(day(7)))
    assert not any(isinstance(a, Open) for a in actions)


# ------------------------------------------------------------------ facts counted to today
def gap(today: dt.date) -> Finding:
    """The long_gap finding of a client last seen in week 0, as of ``today``."""
    obs = [SessionObservation(1, DAY0, outcome_total=20.0, alliance_total=37.0)]
    (f,) = [f for f in evaluate_rules(obs, ctx(today), MEDIUM_UP) if f.kind == "long_gap"]
    return f


def gap_alert(opened: Finding, status: AlertStatus = AlertStatus.OPEN) -> Alert:
    return Alert(
        "g1",
        "long_gap",
        Concern.ATTENDANCE,
        Severity.MEDIUM,
        status,
        1,
        DAY0,
        evidence={"observed_on": DAY0.isoformat(), **opened.evidence},
    )


@pytest.mark.parametrize("status", [AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED])
def test_a_live_long_gap_alert_is_refreshed_as_the_gap_grows(status: AlertStatus) -> None:
    """Opened on day 22, re-assessed on day 30: one Refresh with the finding as of day 30 -
    not an Open, an Escalate or a status change."""
    opened = gap(DAY0 + dt.timedelta(days=22))
    now = gap(DAY0 + dt.timedelta(days=30))
    obs = [SessionObservation(1, DAY0, outcome_total=20.0, alliance_total=37.0)]
    actions = reconcile([gap_alert(opened, status)], [now], obs, MEDIUM_UP)
    assert actions == [Refresh("g1", now)]
    assert now.evidence["days_since_last_session"] == 30
    assert "It is 30 days" in now.guidance
    (after,) = apply_actions([gap_alert(opened, status)], actions, lambda: "x")
    assert (after.status, after.evidence["days_since_last_session"]) == (status, 30)  # type: ignore[index]


def test_an_up_to_date_or_unknown_long_gap_alert_is_left_alone() -> None:
    """Same day again: nothing to write. Stored facts unknown (no evidence given): nothing."""
    opened = gap(DAY0 + dt.timedelta(days=22))
    obs = [SessionObservation(1, DAY0, outcome_total=20.0, alliance_total=37.0)]
    assert reconcile([gap_alert(opened)], [opened], obs, MEDIUM_UP) == []
    unknown = replace(gap_alert(opened), evidence=None)
    assert reconcile([unknown], [gap(DAY0 + dt.timedelta(days=30))], obs, MEDIUM_UP) == []


def test_a_carried_finding_alerts_alone_when_its_carrier_was_dismissed() -> None:
    """The clinician dismisses the deterioration alert (ORS 20, then 14 from session 2): what it
    carried must not be silenced for good with it - folding is how a finding is shown, not a
    reason to lose its alert. The "change approach" checkpoint at session 6, which no dismissed
    alert showed, opens its own alert (it opened none before this fix)."""
    observations = [sess(1, 20.0), *(sess(n, 14.0) for n in range(2, 7))]
    alerts: list[Alert] = []
    opened: list[tuple[int, str]] = []
    for upto in range(1, len(observations) + 1):
        obs = observations[:upto]
        context = ctx(obs[-1].date)
        findings = evaluate_rules(obs, context, MEDIUM_UP)
        actions = reconcile(alerts, findings, obs, MEDIUM_UP, context=context, treating="A")
        opened += [(upto, a.kind) for a in actions if isinstance(a, Open)]
        ids = iter(f"a{upto}-{i}" for i in range(len(actions)))
        alerts = apply_actions(alerts, actions, lambda ids=ids: next(ids))
        alerts = [
            replace(a, clinician="A", status=AlertStatus.DISMISSED, closed_on=obs[-1].date)
            if a.kind == "ors_reliable_deterioration" and a.status.is_active
            else replace(a, clinician="A")
            for a in alerts
        ]
    # not on track was shown in the dismissed alerts and persisted: their dismissal covers it
    # (as a dismissal does); the session-6 checkpoint is a new fact the clinician never saw.
    assert (6, "no_reliable_improvement") in opened, opened
    assert "not_on_track" not in {kind for _, kind in opened}
    live = [a.kind for a in alerts if a.status.is_active]
    assert live == ["no_reliable_improvement"]
