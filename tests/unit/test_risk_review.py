"""Review of the dropout-risk rules at their edges: a late baseline, ties between SRS legs,
item findings after a total-only rating (domain.md §2-§5)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from fit_service.domain.alerts import AutoResolve, reconcile
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
from fit_service.services.history import EpisodeHistory, RatingRecord, SessionRecord
from fit_service.services.risk_inputs import observations
from tests.unit.test_alerts import alert as open_alert

DAY0 = dt.date(2024, 3, 4)


def day(n: int) -> dt.date:
    return DAY0 + dt.timedelta(weeks=n - 1)


def sess(
    n: int,
    *,
    srs: float | None = 40.0,
    ors: float | None = None,
    items: dict[str, float] | None = None,
) -> SessionObservation:
    return SessionObservation(
        n,
        day(n),
        Attendance.ATTENDED,
        outcome_total=ors,
        alliance_total=srs,
        alliance_items=items,
    )


def kinds(obs: Sequence[SessionObservation]) -> dict[str, Finding]:
    context = EpisodeContext(None, 25.0, AgeBand.ADULT, obs[-1].date)
    return {f.kind: f for f in evaluate_rules(obs, context, RiskSettings())}


# ------------------------------------------------------------------------------ late baseline
def test_the_baseline_alone_is_no_evidence_of_no_improvement() -> None:
    """The first outcome score at session 4 (none before) is the baseline: nothing has been
    compared with it yet, so "no reliable improvement by session 3" cannot hold."""
    obs = [sess(1), sess(2), sess(3), sess(4, ors=15.0)]
    assert "no_reliable_improvement" not in kinds(obs)


def test_no_improvement_checkpoints_count_sessions_from_the_baseline() -> None:
    """Baseline at session 5: at session 6 one session of change has been measured, not six,
    so neither checkpoint is due; the discuss checkpoint falls at session 7 (the third session
    counted from the baseline), and the text says so."""
    before = [sess(n) for n in range(1, 5)]
    assert "no_reliable_improvement" not in kinds([*before, sess(5, ors=15.0), sess(6, ors=16.0)])
    found = kinds([*before, sess(5, ors=15.0), sess(6, ors=16.0), sess(7, ors=16.0)])
    finding = found["no_reliable_improvement"]
    assert finding.severity is Severity.LOW
    assert finding.evidence["baseline_session"] == 5
    assert "session 7" in finding.guidance
    assert "session 5" in finding.guidance


def test_a_baseline_at_session_1_keeps_the_usual_checkpoints() -> None:
    found = kinds([sess(n, ors=15.0) for n in range(1, 7)])
    finding = found["no_reliable_improvement"]
    assert (finding.severity, finding.evidence["checkpoint"]) == (Severity.MEDIUM, 6)
    assert "by session 6" in finding.guidance


def _history(scores: dict[int, float]) -> EpisodeHistory:
    sessions = []
    for n in range(1, max(scores) + 1):
        ratings = []
        if n in scores:
            ratings.append(RatingRecord("ors", "client", "total_only", scores[n], None, None))
        sessions.append(
            SessionRecord(
                n, uuid.uuid4(), f"S{n}", day(n), n, "attended", 1, "T1", dt.datetime.now(), ratings
            )
        )
    return EpisodeHistory(
        1, uuid.uuid4(), 1, 1, "C-1", "adult", "open", day(1), None, None, "T1", sessions=sessions
    )


def test_the_rational_trajectory_counts_sessions_from_a_late_baseline() -> None:
    """Baseline ORS 15 at session 6, the same score at session 7: one session of measured
    change is not "no reliable improvement by session 6", so the client is not off track."""
    obs = observations(_history({6: 15.0, 7: 15.0}), RiskSettings())
    assert obs[-1].on_track is True
    assert "not_on_track" not in kinds(obs)


# ------------------------------------------------------------------------------ which leg
def test_two_legs_equally_low_name_no_single_leg() -> None:
    """Bond and task both 7 (total 32): naming one of them (the alphabetical first) would
    claim more than the ratings show; the alliance as a whole is named, both legs in evidence."""
    both = {"relationship": 7.0, "goals": 9.0, "approach": 7.0, "overall": 9.0}
    finding = kinds([sess(1, srs=None, items=both)])["early_low_alliance"]
    assert finding.concern is Concern.GLOBAL_ALLIANCE
    assert set(finding.evidence["weak_legs"]) == {"bond", "task"}


def test_a_single_weakest_leg_is_still_named() -> None:
    one = {"relationship": 6.0, "goals": 9.0, "approach": 7.0, "overall": 9.0}
    finding = kinds([sess(1, srs=None, items=one)])["early_low_alliance"]
    assert finding.concern is Concern.BOND


# ------------------------------------------------------------------------------ total-only
def test_a_later_total_only_rating_ends_an_item_finding() -> None:
    """A low bond item at session 3, then a total-only SRS of 40 at session 4: the items are
    unknown now, so no leg can be named as low now (domain.md §2: "items unknown")."""
    low_bond = {"relationship": 6.0, "goals": 10.0, "approach": 10.0, "overall": 10.0}
    obs = [sess(1), sess(2), sess(3, srs=None, items=low_bond), sess(4, srs=40.0)]
    assert "low_srs_bond" not in kinds(obs)


# ------------------------------------------------------------------------------ same-date miss
def test_a_miss_on_the_day_of_an_attended_session_is_no_missed_appointment() -> None:
    """The client attended session 2 on the day of a no-show recorded after it (same date:
    the history orders them by row id): they came that day, so "the latest appointment was
    missed and not yet followed by an attended one" does not hold."""
    low = {"relationship": 8.0, "goals": 8.0, "approach": 8.0, "overall": 8.0}
    obs = [
        sess(1),
        sess(2, srs=None, items=low),
        SessionObservation(None, day(2), Attendance.NO_SHOW),
    ]
    assert "missed_session" not in kinds(obs)


def test_a_miss_after_the_day_of_the_last_session_still_counts() -> None:
    obs = [sess(1), sess(2), SessionObservation(None, day(3), Attendance.NO_SHOW)]
    assert kinds(obs)["missed_session"].severity is Severity.MEDIUM


# ------------------------------------------------------------------------------ functional intake
def test_no_change_from_a_functional_intake_does_not_advise_changing_the_approach() -> None:
    """Intake ORS 32 (above the adult cut-off of 25) and 32 at session 6: little change is
    expected (domain.md §4/§5; the rational trajectory calls it on track), so the LOW finding
    does not tell the clinician to change the approach; it says why."""
    finding = kinds([sess(n, ors=32.0) for n in range(1, 7)])["no_reliable_improvement"]
    assert finding.severity is Severity.LOW
    assert "changing the approach" not in finding.guidance
    assert "outside the clinical range" in finding.guidance


# ------------------------------------------------------------------------------ corrected evidence
def test_an_alliance_alert_whose_evidence_was_corrected_auto_resolves() -> None:
    """SRS 30 at session 2 opened early_low_alliance; the session is then corrected to 38 (a
    typo). The rupture never was in the record: the alert resolves now, not after two more
    sessions at 36 or above (that rule is for a real rupture: one good rating is no repair)."""
    alert = open_alert(session=2)  # early_low_alliance, HIGH, evidence at session 2
    obs = [sess(1), sess(2, srs=38.0)]
    context = EpisodeContext(None, 25.0, AgeBand.ADULT, day(2))
    findings = evaluate_rules(obs, context, RiskSettings())
    actions = reconcile([alert], findings, obs, RiskSettings(), context=context)
    assert [type(a) for a in actions] == [AutoResolve]
    assert "corrected" in actions[0].note  # type: ignore[union-attr]


def test_an_alliance_alert_on_evidence_that_still_holds_waits_for_two_clear_sessions() -> None:
    alert = open_alert(session=2)  # early_low_alliance, HIGH, evidence at session 2
    obs = [sess(1), sess(2, srs=30.0), sess(3, srs=38.0)]
    context = EpisodeContext(None, 25.0, AgeBand.ADULT, day(3))
    findings = evaluate_rules(obs, context, RiskSettings())
    assert reconcile([alert], findings, obs, RiskSettings(), context=context) == []


def test_not_on_track_evidence_shows_the_band_to_a_tenth() -> None:
    """The band and the expectation are model quantities shown to a clinician beside scores
    kept to a tenth: 11.100000000000001 is float noise, not a figure."""
    observations = [
        SessionObservation(
            session_number=n,
            date=day(n),
            outcome_total=total,
            on_track=on_track,
            expected_outcome=expected,
            band_low=low,
            trajectory_model="clinic_etr_v1",
        )
        for n, total, on_track, expected, low in (
            (1, 20.0, True, 20.0, 20.0),
            (2, 10.0, False, 22.349999999999998, 11.100000000000001),
        )
    ]
    context = EpisodeContext(
        intake_outcome=None, clinical_cutoff=25.0, age_band=AgeBand.ADULT, today=day(2)
    )
    (finding,) = [
        f for f in evaluate_rules(observations, context, RiskSettings()) if f.kind == "not_on_track"
    ]
    assert (finding.evidence["expected_outcome"], finding.evidence["band_low"]) == (22.3, 11.1)
