"""Dropout-risk rules: each rule at and either side of its threshold, the level, the settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fit_service.domain.alerts import Alert, AlertStatus, reconcile
from fit_service.domain.errors import FitError, InvalidSession
from fit_service.domain.guidance import Expectation, GoalSheet
from fit_service.domain.instruments import AgeBand
from fit_service.domain.risk import (
    FINDING_KINDS,
    RULES,
    Attendance,
    Concern,
    EpisodeContext,
    Finding,
    RiskLevel,
    RiskSettings,
    SessionObservation,
    Severity,
    assess_episode,
    evaluate_rules,
    risk_level,
)
from tests.unit.weeks import DAY0, day

DEFAULTS = RiskSettings()


def items(total: float = 40.0, **low: float) -> dict[str, float]:
    """Four SRS items summing to ``total`` (spread evenly), with named items overridden."""
    base = {k: total / 4 for k in ("relationship", "goals", "approach", "overall")}
    base.update(low)
    return base


def sess(
    n: int, *, srs: float | None = 40.0, ors: float | None = 20.0, **kw: object
) -> SessionObservation:
    """Attended session ``n`` in week ``n - 1``; ``srs`` is a total sent without items."""
    return SessionObservation(
        n, day(n - 1), Attendance.ATTENDED, outcome_total=ors, alliance_total=srs, **kw
    )


def missed(week: int, kind: Attendance = Attendance.NO_SHOW) -> SessionObservation:
    return SessionObservation(None, day(week), kind)


def ctx(intake: float | None = 20.0, today: dt.date | None = None, **kw: object) -> EpisodeContext:
    return EpisodeContext(intake, 25.0, AgeBand.ADULT, today or day(0), **kw)  # type: ignore[arg-type]


def kinds(
    obs: Sequence[SessionObservation], context: EpisodeContext | None = None, **s: object
) -> dict[str, Finding]:
    findings = evaluate_rules(obs, context or ctx(today=obs[-1].date), RiskSettings.from_mapping(s))
    return {f.kind: f for f in findings}


# ------------------------------------------------------------------------------ alliance totals
def test_early_low_alliance_fires_below_36_in_first_three_sessions() -> None:
    """SRS 35.9 at session 3 is an early low alliance (HIGH)."""
    found = kinds([sess(1), sess(2), sess(3, srs=35.9)])
    assert found["early_low_alliance"].severity is Severity.HIGH
    assert found["early_low_alliance"].evidence["threshold"] == 36.0


def test_srs_of_exactly_36_is_not_a_concern() -> None:
    """The concern line is total < 36, so 36.0 raises nothing."""
    assert "early_low_alliance" not in kinds([sess(1, srs=36.0)])


def test_low_run_starting_after_early_window_is_plain_low_alliance() -> None:
    """A first low SRS at session 4 is low_alliance (MEDIUM), not early."""
    found = kinds([sess(1), sess(2), sess(3), sess(4, srs=30.0)])
    assert "early_low_alliance" not in found
    assert found["low_alliance"].severity is Severity.MEDIUM


def test_low_run_begun_early_stays_early_after_window() -> None:
    """SRS low from session 3 into session 4 remains one early_low_alliance finding."""
    found = kinds([sess(1), sess(2), sess(3, srs=33.0), sess(4, srs=34.0)])
    assert "early_low_alliance" in found
    assert "low_alliance" not in found
    assert found["early_low_alliance"].evidence["sessions_below"] == [3, 4]


def test_low_alliance_names_weakest_leg() -> None:
    """With items known, the low-alliance finding is about the weakest leg."""
    obs = [sess(1, srs=None, alliance_items=items(40, approach=5.0, goals=8.0, overall=10.0))]
    found = kinds(obs)
    assert found["early_low_alliance"].concern is Concern.TASK
    assert found["early_low_alliance"].evidence["weak_legs"] == ["task", "goal"]


@pytest.mark.parametrize(
    ("ratings", "concern"),
    [
        # overall ties the one low leg: the leg is named (overall is a global check, §2)
        ({"relationship": 9.5, "goals": 7.0, "approach": 9.0, "overall": 7.0}, Concern.GOAL),
        # overall below the one low leg: still the leg
        ({"relationship": 9.5, "goals": 8.0, "approach": 9.5, "overall": 5.0}, Concern.GOAL),
        # two legs tied lowest, overall lower still: no single leg stands out
        (
            {"relationship": 7.0, "goals": 9.5, "approach": 7.0, "overall": 5.0},
            Concern.GLOBAL_ALLIANCE,
        ),
        # only overall below the item line: no leg is weak
        (
            {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 6.0},
            Concern.GLOBAL_ALLIANCE,
        ),
    ],
)
def test_overall_item_is_no_leg_in_the_choice_of_leg(
    ratings: dict[str, float], concern: Concern
) -> None:
    """domain.md §2: ``overall`` is a global check, not one of Bordin's legs: it neither ties
    with nor outranks the one weak leg; the alliance as a whole is named only when no single leg
    is lowest. The evidence still lists every item below the line, overall's as ``global``."""
    found = kinds([sess(1, srs=None, alliance_items=ratings)])
    assert found["early_low_alliance"].concern is concern
    assert "global" in found["early_low_alliance"].evidence["weak_legs"]


def test_low_alliance_evidence_carries_the_item_scores() -> None:
    """The alert shows how weak each leg is: the session's SRS item scores under their neutral
    ids (domain.md §2: scores only, never item text), beside the legs below the item line."""
    ratings = {"relationship": 5.0, "goals": 9.0, "approach": 8.0, "overall": 6.0}
    evidence = kinds([sess(1, srs=None, alliance_items=ratings)])["early_low_alliance"].evidence
    assert evidence["items"] == ratings
    assert list(evidence["items"]) == ["relationship", "goals", "approach", "overall"]
    assert evidence["weak_legs"] == ["bond", "global", "task"]
    later = [sess(1), sess(2), sess(3), sess(4, srs=None, alliance_items=ratings)]
    assert kinds(later)["low_alliance"].evidence["items"] == ratings


def test_total_only_low_alliance_says_the_items_are_unknown() -> None:
    """A total-only SRS (domain.md §2: "items unknown"): items and weak legs are unknown
    (``None``), not an empty list that would read as "no leg is weak"."""
    evidence = kinds([sess(1, srs=30.0)])["early_low_alliance"].evidence
    assert (evidence["items"], evidence["weak_legs"]) == (None, None)


# ------------------------------------------------------------------------------ alliance items
@pytest.mark.parametrize(
    ("item", "kind", "concern"),
    [
        ("relationship", "low_srs_bond", Concern.BOND),
        ("goals", "low_srs_goal", Concern.GOAL),
        ("approach", "low_srs_task", Concern.TASK),
        ("overall", "low_srs_global", Concern.GLOBAL_ALLIANCE),
    ],
)
def test_low_item_names_its_leg(item: str, kind: str, concern: Concern) -> None:
    """An item at 8.9 names the leg it maps to (domain.md §2)."""
    found = kinds([sess(1, srs=None, alliance_items=items(40, **{item: 8.9}))])
    assert found[kind].concern is concern
    assert found[kind].severity is Severity.LOW


def test_item_of_exactly_9_is_not_low() -> None:
    """The item line is < 9, so 9.0 raises nothing."""
    found = kinds([sess(1, srs=None, alliance_items=items(40, goals=9.0))])
    assert not any(k.startswith("low_srs_") for k in found)


def test_same_leg_low_twice_is_medium() -> None:
    """A leg low at two sessions running is an unrepaired rupture (MEDIUM)."""
    obs = [
        sess(1, srs=None, alliance_items=items(40, relationship=8.0)),
        sess(2, srs=None, alliance_items=items(40, relationship=8.5)),
    ]
    assert kinds(obs)["low_srs_bond"].severity is Severity.MEDIUM


# ------------------------------------------------------------------------------ decline
@pytest.mark.parametrize(("latest", "fires"), [(38.0, True), (38.1, False), (37.5, True)])
def test_srs_decline_threshold_is_one_point(latest: float, fires: bool) -> None:
    """A fall of 1.0 from 39 fires; 0.9 does not."""
    found = kinds([sess(1, srs=39.0), sess(2, srs=latest)])
    assert ("srs_decline" in found) is fires


def test_srs_decline_in_one_item_names_that_leg_with_item_changes() -> None:
    """Approach 9.5 -> 5 while the other items hold: the decline is on the task leg, and the
    evidence lists each item's change by neutral item id (no wording)."""
    before = {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5}
    after = {**before, "approach": 5.0}
    found = kinds(
        [sess(1, srs=None, alliance_items=before), sess(2, srs=None, alliance_items=after)]
    )
    decline = found["srs_decline"]
    assert decline.concern is Concern.TASK
    assert decline.evidence["item_changes"] == {
        "relationship": 0.0,
        "goals": 0.0,
        "approach": -4.5,
        "overall": 0.0,
    }
    assert "approach (task)" in decline.guidance
    assert "Re-agree the tasks" in decline.guidance


@pytest.mark.parametrize(
    ("leg_item", "concern"),
    [("relationship", Concern.BOND), ("goals", Concern.GOAL), ("approach", Concern.TASK)],
)
def test_srs_decline_maps_each_item_to_its_bordin_leg(leg_item: str, concern: Concern) -> None:
    """relationship -> bond, goals -> goal, approach -> task (domain.md §2)."""
    before = items(39.0)
    after = {**before, leg_item: before[leg_item] - 3.0}
    found = kinds(
        [sess(1, srs=None, alliance_items=before), sess(2, srs=None, alliance_items=after)]
    )
    assert found["srs_decline"].concern is concern


@pytest.mark.parametrize(
    ("after", "why"),
    [
        ({"relationship": 8.0, "goals": 8.0}, "two legs fell alike"),
        ({"relationship": 7.5, "goals": 8.0}, "the lead is under a point"),
        ({"overall": 6.0}, "only overall fell: a global check, never a leg"),
    ],
)
def test_srs_decline_without_one_leg_standing_out_is_global(
    after: dict[str, float], why: str
) -> None:
    """No single leg stands out: the alliance as a whole, with the item changes listed."""
    before = {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5}
    found = kinds(
        [
            sess(1, srs=None, alliance_items=before),
            sess(2, srs=None, alliance_items={**before, **after}),
        ]
    )
    assert found["srs_decline"].concern is Concern.GLOBAL_ALLIANCE, why
    assert found["srs_decline"].evidence["item_changes"] is not None


def test_srs_decline_with_a_total_only_rating_is_global_with_items_unknown() -> None:
    """A total-only rating at either session: items unknown, so no leg and no item changes."""
    found = kinds([sess(1, srs=None, alliance_items=items(39.0)), sess(2, srs=35.0)])
    assert found["srs_decline"].concern is Concern.GLOBAL_ALLIANCE
    assert found["srs_decline"].evidence["item_changes"] is None


def test_two_declines_in_a_row_are_medium() -> None:
    """A second consecutive decline is a falling alliance (MEDIUM)."""
    found = kinds([sess(1, srs=40.0), sess(2, srs=39.0), sess(3, srs=38.0)])
    assert found["srs_decline"].severity is Severity.MEDIUM


# ------------------------------------------------------------------------------ WAI-SR
def wai(n: int, goal: float, task: float = 18.0, bond: float = 18.0) -> SessionObservation:
    return sess(n, wai_subscales={"goal": goal, "task": task, "bond": bond})


def test_wai_low_and_falling_against_clinic_decile_is_medium() -> None:
    """Goal subscale below the clinic's p10 and 2 points below last time: MEDIUM weak_wai_goal."""
    context = ctx(today=day(3), wai_reference={4: {"goal": 13.0, "task": 10.0, "bond": 10.0}})
    found = kinds([wai(1, 14.0), wai(4, 12.0)], context)
    assert found["weak_wai_goal"].severity is Severity.MEDIUM
    assert found["weak_wai_goal"].evidence["low_line_is_clinic_decile"] is True


def bond(n: int, score: float) -> SessionObservation:
    return sess(n, wai_subscales={"goal": 18.0, "task": 18.0, "bond": score})


def test_wai_leg_that_stays_weak_keeps_the_severity_of_its_fall() -> None:
    """Bond 12 -> 8 -> 8: LOW, MEDIUM, then still MEDIUM (nothing improved), and the episode
    level stays elevated instead of falling back to low."""
    obs = [bond(1, 12.0), bond(2, 8.0), bond(3, 8.0)]
    severities, levels = [], []
    for upto in range(1, 4):
        context = ctx(today=obs[upto - 1].date)
        assessed = assess_episode(obs[:upto], context)
        found = {f.kind: f for f in assessed.findings}
        severities.append(found["weak_wai_bond"].severity)
        levels.append(assessed.level)
    assert severities == [Severity.LOW, Severity.MEDIUM, Severity.MEDIUM]
    assert levels == [RiskLevel.LOW, RiskLevel.ELEVATED, RiskLevel.ELEVATED]
    evidence = kinds(obs)["weak_wai_bond"].evidence
    assert (evidence["held_since_session"], evidence["held_at_score"]) == (2, 8.0)


def test_wai_leg_held_at_medium_through_several_low_administrations() -> None:
    """Still at or below the fall's score, however many sessions later (12 -> 8 -> 7 -> 8)."""
    obs = [bond(1, 12.0), bond(2, 8.0), bond(3, 7.0), bond(4, 8.0)]
    assert kinds(obs)["weak_wai_bond"].severity is Severity.MEDIUM


@pytest.mark.parametrize(
    ("scores", "why"),
    [
        ((12.0, 8.0, 9.0), "back above the fall's score, though still low"),
        ((16.0, 10.0, 13.0, 12.0), "not low at session 3: the run of low scores began again"),
        ((12.0, 12.0, 11.0), "low throughout but never fell by the decline step"),
    ],
)
def test_wai_leg_drops_to_low_only_when_the_hold_ends(scores: tuple[float, ...], why: str) -> None:
    obs = [bond(n, score) for n, score in enumerate(scores, start=1)]
    found = kinds(obs)["weak_wai_bond"]
    assert found.severity is Severity.LOW, why
    assert found.evidence["held_since_session"] is None


def test_wai_at_clinic_decile_is_not_low() -> None:
    """A subscale equal to the clinic's p10 is not below it."""
    context = ctx(today=day(3), wai_reference={4: {"goal": 12.0}})
    assert "weak_wai_goal" not in kinds([wai(1, 14.0), wai(4, 12.0)], context)


def test_wai_fall_within_normal_range_is_not_weak() -> None:
    """Falling from 20 to 16 while above the floor raises nothing."""
    assert "weak_wai_goal" not in kinds([wai(1, 20.0), wai(2, 16.0)])


def test_wai_heuristic_floor_used_without_clinic_reference() -> None:
    """Without a reference, a subscale at the heuristic floor (12) is LOW and labelled so."""
    found = kinds([wai(1, 12.0)])
    assert found["weak_wai_goal"].severity is Severity.LOW
    assert "heuristic" in found["weak_wai_goal"].evidence["source"]
    assert "weak_wai_goal" not in kinds([wai(1, 12.1)])


# ------------------------------------------------------------------------------ outcome
@pytest.mark.parametrize(("latest", "fires"), [(15.0, True), (15.1, False)])
def test_reliable_deterioration_is_five_points_below_intake(latest: float, fires: bool) -> None:
    """ORS 5 points below intake 20 is reliably worse (HIGH); 4.9 is not."""
    found = kinds([sess(1), sess(2, ors=latest)])
    assert ("ors_reliable_deterioration" in found) is fires


@pytest.mark.parametrize(
    ("scores", "severity"),
    [
        ((15.0,), Severity.MEDIUM),  # one score reliably worse: listed, no alert
        ((15.0, 15.0), Severity.HIGH),  # confirmed by the next score
        ((15.0, 15.1), None),  # the next is back within the reliable change: holds, MEDIUM
        ((10.1,), Severity.MEDIUM),  # 9.9 below intake: still one score
        ((10.0,), Severity.HIGH),  # 10 below intake (twice the reliable change): at once
        ((15.0, 18.0, 15.0), Severity.MEDIUM),  # not in a row
    ],
)
def test_reliable_deterioration_alerts_when_confirmed_or_large(
    scores: tuple[float, ...], severity: Severity | None
) -> None:
    """Severity grades the evidence: one reliably worse score MEDIUM; two in a row, or a fall of
    ``deterioration_large_multiple`` reliable changes, HIGH (what opens alerts by default)."""
    obs = [sess(1), *(sess(n, ors=v) for n, v in enumerate(scores, start=2))]
    found = kinds(obs)["ors_reliable_deterioration"]
    assert found.severity is (severity or Severity.MEDIUM)
    assert found.alerts is (severity is not None)  # held over from an earlier score: no opening
    assert found.evidence["alert_after_scores"] == 2


def test_deterioration_confirmation_is_a_clinic_setting() -> None:
    """With ``deterioration_confirm_scores`` = 1 a single reliably worse score is HIGH."""
    found = kinds([sess(1), sess(2, ors=15.0)], deterioration_confirm_scores=1)
    assert found["ors_reliable_deterioration"].severity is Severity.HIGH
    with pytest.raises(FitError):
        RiskSettings(deterioration_confirm_scores=0)
    with pytest.raises(FitError):
        RiskSettings(dropout_missed_odds_factor=0.5)


def test_not_on_track_uses_precomputed_flag_and_names_model() -> None:
    """on_track False at the latest ORS fires and says which model judged it."""
    obs = [sess(1), sess(2, on_track=False, band_low=21.0, trajectory_model="clinic_etr_v1")]
    found = kinds(obs)
    assert found["not_on_track"].evidence["model"] == "clinic_etr_v1"
    assert "clinic_etr_v1" in found["not_on_track"].guidance


@pytest.mark.parametrize("on_track", [True, None])
def test_on_track_or_unknown_is_not_flagged(on_track: bool | None) -> None:
    """on_track True or missing raises nothing."""
    assert "not_on_track" not in kinds([sess(1), sess(2, on_track=on_track)])


def test_earlier_off_track_that_recovered_no_longer_holds() -> None:
    """Only the latest outcome is judged against the band."""
    assert "not_on_track" not in kinds([sess(1), sess(2, on_track=False), sess(3, on_track=True)])


def test_no_improvement_not_judged_before_session_3() -> None:
    """At session 2 there is no checkpoint yet."""
    assert "no_reliable_improvement" not in kinds([sess(1), sess(2, ors=20.0)])


@pytest.mark.parametrize(("ors", "fires"), [(24.9, True), (25.0, False)])
def test_no_improvement_by_session_3_is_low_and_says_discuss(ors: float, fires: bool) -> None:
    """Change of 4.9 by session 3 fires (LOW, 'discuss'); 5.0 is reliable improvement."""
    found = kinds([sess(1), sess(2), sess(3, ors=ors)])
    assert ("no_reliable_improvement" in found) is fires
    if fires:
        f = found["no_reliable_improvement"]
        assert (f.severity, f.evidence["checkpoint"]) == (Severity.LOW, 3)
        assert f.evidence["guidance_label"] == "discuss progress with the client"


def test_no_improvement_by_session_6_is_medium_change_approach() -> None:
    """By session 6 the same finding is MEDIUM with the 'change approach' label."""
    found = kinds([sess(n) for n in range(1, 7)])
    f = found["no_reliable_improvement"]
    assert (f.severity, f.evidence["checkpoint"]) == (Severity.MEDIUM, 6)
    assert f.evidence["guidance_label"] == "consider changing the approach"


def test_no_improvement_stays_low_when_intake_above_cutoff() -> None:
    """Clients starting in the functional range are not escalated at session 6."""
    found = kinds([sess(n, ors=30.0) for n in range(1, 7)], ctx(intake=30.0, today=day(5)))
    assert found["no_reliable_improvement"].severity is Severity.LOW


# ------------------------------------------------------------------------------ withdrawal
def test_agreement_without_engagement_needs_ceiling_every_session_and_flat_ors() -> None:
    """Four sessions at SRS 38 with ORS moving < 5 points fire the withdrawal finding."""
    found = kinds([sess(n, srs=38.0, ors=20.0 + n) for n in range(1, 5)])
    assert found["agreement_without_engagement"].concern is Concern.GLOBAL_ALLIANCE


@pytest.mark.parametrize(
    "obs",
    [
        [sess(n, srs=38.0) for n in range(1, 4)],  # three sessions only
        [sess(1, srs=37.9), *(sess(n, srs=40.0) for n in range(2, 5))],  # one below ceiling
        [*(sess(n, srs=40.0) for n in range(1, 4)), sess(4, srs=40.0, ors=25.0)],  # moved 5
    ],
)
def test_agreement_without_engagement_not_below_its_thresholds(
    obs: list[SessionObservation],
) -> None:
    """Fewer sessions, one rating under the ceiling, or reliable ORS change: no finding."""
    assert "agreement_without_engagement" not in kinds(obs)


def test_withdrawal_finding_does_not_change_level() -> None:
    """The withdrawal heuristic fires on high ratings, so it is level-neutral."""
    f = kinds([sess(n, srs=38.0, ors=20.0) for n in range(1, 5)])["agreement_without_engagement"]
    assert risk_level([f]) is RiskLevel.LOW


# ------------------------------------------------------------------------------ attendance
def test_no_show_is_medium_and_cancellation_low() -> None:
    """A single no-show is MEDIUM, a single cancellation LOW."""
    assert kinds([sess(1), missed(1)])["missed_session"].severity is Severity.MEDIUM
    found = kinds([sess(1), missed(1, Attendance.CANCELLED)])
    assert found["missed_session"].severity is Severity.LOW


def test_missed_session_right_after_low_srs_is_high() -> None:
    """A cancellation right after an SRS below 36 is HIGH."""
    found = kinds([sess(1, srs=39.0), sess(2, srs=35.0), missed(2, Attendance.CANCELLED)])
    assert found["missed_session"].severity is Severity.HIGH
    assert found["missed_session"].evidence["after_low_alliance"] is True


def test_two_missed_in_a_row_are_high() -> None:
    """Two consecutive misses are HIGH."""
    found = kinds([sess(1), missed(1, Attendance.CANCELLED), missed(2, Attendance.CANCELLED)])
    assert found["missed_session"].severity is Severity.HIGH


def test_missed_session_guidance_says_it_came_right_after_a_low_rating_and_names_the_leg() -> None:
    """After a session whose approach (task) item was the one weak leg, the guidance says the
    miss followed a low rating, names the leg, and suggests reaching out about that session."""
    low = sess(2, srs=None, alliance_items=items(40, approach=6.0))
    found = kinds([sess(1), low, missed(2, Attendance.CANCELLED)])["missed_session"]
    assert found.evidence["last_srs_weak_leg"] == "task"
    assert "right after a low session rating, weakest on the approach (task) leg" in found.guidance
    assert "reach out about the last session" in found.guidance
    assert "in a row" not in found.guidance


def test_missed_session_after_a_low_total_only_rating_names_no_leg() -> None:
    """A total-only low rating: the miss follows a low rating, but no leg is known."""
    found = kinds([sess(1), sess(2, srs=30.0), missed(2)])["missed_session"]
    assert found.evidence["last_srs_weak_leg"] is None
    assert "right after a low session rating:" in found.guidance


def test_missed_session_guidance_says_it_is_the_second_miss_in_a_row() -> None:
    found = kinds([sess(1), missed(1, Attendance.CANCELLED), missed(2, Attendance.CANCELLED)])
    guidance = found["missed_session"].guidance
    assert "second missed appointment in a row" in guidance
    assert "low session rating" not in guidance
    three = kinds([sess(1), missed(1), missed(2), missed(3)])["missed_session"].guidance
    assert "3 missed appointments in a row" in three


def test_a_single_miss_after_a_good_session_keeps_the_plain_guidance() -> None:
    guidance = kinds([sess(1), missed(1)])["missed_session"].guidance
    assert "in a row" not in guidance
    assert "low session rating" not in guidance


def test_attending_again_clears_missed_session() -> None:
    """A miss followed by an attended session no longer holds."""
    assert "missed_session" not in kinds([sess(1), missed(1), sess(2)])


@pytest.mark.parametrize(("days", "fires"), [(21, False), (22, True)])
def test_gap_beyond_21_days_is_flagged(days: int, fires: bool) -> None:
    """More than 21 days since the last attended session, counted to context.today."""
    obs = [sess(1)]
    found = kinds(obs, ctx(today=obs[0].date + dt.timedelta(days=days)))
    assert ("long_gap" in found) is fires


def test_skipped_srs_once_low_twice_medium() -> None:
    """SRS not completed: LOW once, MEDIUM at two attended sessions running."""
    one = kinds([sess(1), sess(2, srs=None, alliance_not_completed=True)])
    assert one["srs_not_completed"].severity is Severity.LOW
    two = kinds(
        [
            sess(1, srs=None, alliance_not_completed=True),
            sess(2, srs=None, alliance_not_completed=True),
        ]
    )
    assert two["srs_not_completed"].severity is Severity.MEDIUM


def skip(n: int) -> SessionObservation:
    return sess(n, srs=None, alliance_not_completed=True)


def test_srs_skipped_straight_after_a_low_srs_is_raised_one_level() -> None:
    """SRS 33 then skipped: a withdrawal signal, MEDIUM (not LOW), the evidence and guidance
    giving the previous total; skipped again: HIGH (not MEDIUM)."""
    once = kinds([sess(1, srs=38.0), sess(2, srs=33.0), skip(3)])["srs_not_completed"]
    assert once.severity is Severity.MEDIUM
    assert once.evidence["after_low_alliance"] is True
    assert (once.evidence["previous_srs_total"], once.evidence["previous_srs_session"]) == (33.0, 2)
    assert "skipped straight after a low session rating (33 last time)" in once.guidance
    twice = kinds([sess(1, srs=33.0), skip(2), skip(3)])["srs_not_completed"]
    assert twice.severity is Severity.HIGH
    assert twice.evidence["previous_srs_total"] == 33.0


def test_srs_skipped_after_a_low_item_is_raised_as_a_missed_session_would_be() -> None:
    """Total 36 (at the concern line) but the relationship item at 6, below the item line: the
    same "low" as the missed-session rule's (domain.md §3: total or item), so MEDIUM; the
    guidance does not quote the total as if it were the low part."""
    items = {"relationship": 6.0, "goals": 10.0, "approach": 10.0, "overall": 10.0}
    found = kinds([sess(1, srs=36.0, alliance_items=items), skip(2)])["srs_not_completed"]
    assert found.severity is Severity.MEDIUM
    assert found.evidence["after_low_alliance"] is True
    assert "skipped straight after a low session rating," in found.guidance
    assert "36 last time" not in found.guidance


@pytest.mark.parametrize("previous", [36.0, 39.5])
def test_srs_skipped_after_a_rating_at_or_above_the_concern_line_is_not_raised(
    previous: float,
) -> None:
    found = kinds([sess(1, srs=previous), skip(2)])["srs_not_completed"]
    assert found.severity is Severity.LOW
    assert found.evidence["after_low_alliance"] is False
    assert found.evidence["previous_srs_total"] == previous
    assert "straight after" not in found.guidance


# ------------------------------------------------------------------------------ level
def finding(kind: str, concern: Concern, severity: Severity) -> Finding:
    return Finding(kind, concern, severity, 1, DAY0)


@pytest.mark.parametrize(
    ("findings", "level"),
    [
        ([], RiskLevel.LOW),
        ([finding("srs_decline", Concern.GLOBAL_ALLIANCE, Severity.LOW)] * 3, RiskLevel.LOW),
        ([finding("not_on_track", Concern.OUTCOME, Severity.MEDIUM)], RiskLevel.ELEVATED),
        (
            [
                finding("low_srs_bond", Concern.BOND, Severity.MEDIUM),
                finding("low_srs_task", Concern.TASK, Severity.MEDIUM),
            ],
            RiskLevel.ELEVATED,
        ),
        (
            [
                finding("low_srs_bond", Concern.BOND, Severity.MEDIUM),
                finding("not_on_track", Concern.OUTCOME, Severity.MEDIUM),
            ],
            RiskLevel.HIGH,
        ),
        ([finding("early_low_alliance", Concern.GOAL, Severity.HIGH)], RiskLevel.HIGH),
    ],
)
def test_risk_level_from_findings(findings: list[Finding], level: RiskLevel) -> None:
    """LOW findings inform only; MEDIUM elevates; HIGH or two MEDIUM sources make it high."""
    assert risk_level(findings) is level


def test_assessment_lists_reasons_for_each_finding() -> None:
    """assess_episode returns the level, the findings and one reason per finding."""
    result = assess_episode([sess(1, srs=30.0)], ctx())
    assert result.level is RiskLevel.HIGH
    assert len(result.reasons) == len(result.findings) >= 1
    assert result.reasons[0].startswith("early_low_alliance")


def test_every_rule_emits_only_listed_kinds() -> None:
    """The kinds a busy episode produces are all in FINDING_KINDS (stable ids)."""
    obs = [
        sess(1, srs=None, alliance_items=items(30, relationship=5.0)),
        sess(2, srs=None, alliance_not_completed=True, ors=10.0, on_track=False),
        missed(2),
    ]
    found = kinds(obs, ctx(today=day(6)))
    assert set(found) <= set(FINDING_KINDS)
    assert len(RULES) == 12  # dropout_risk needs a clinic model: tested on its own


# ------------------------------------------------------------------------------ settings, input
def test_settings_from_mapping_overrides_defaults() -> None:
    """A clinic's dict overrides named thresholds and keeps the other defaults."""
    s = RiskSettings.from_mapping({"srs_item_concern": 7.5, "alert_min_severity": "medium"})
    assert (s.srs_item_concern, s.alert_min_severity) == (7.5, Severity.MEDIUM)
    assert s.srs_concern_total == 36.0


@pytest.mark.parametrize(
    "overrides",
    [
        {"srs_cutoff": 35},
        {"srs_concern_total": 41},
        {"max_gap_days": 0},
        {"max_gap_days": 2.5},
        {"reliable_change": "5"},
        {"alert_min_severity": "urgent"},
        {"alert_min_severity": "h\u0131gh"},  # dotless i: "HIGH" once upper-cased
        {"reliable_change": 1e-12},
        {"discuss_checkpoint": 6, "change_checkpoint": 6},
    ],
)
def test_settings_reject_unknown_keys_and_bad_values(overrides: dict[str, object]) -> None:
    """Unknown names and out-of-range or mistyped values raise an invalid_risk_setting error."""
    with pytest.raises(FitError) as info:
        RiskSettings.from_mapping(overrides)
    assert info.value.rule == "invalid_risk_setting"


def test_custom_threshold_changes_rule() -> None:
    """With the item line at 7.5, an item of 8 is no longer low."""
    obs = [sess(1, srs=None, alliance_items=items(40, goals=8.0))]
    assert "low_srs_goal" not in kinds(obs, None, srs_item_concern=7.5)


def test_missed_appointment_cannot_carry_a_session_number_or_scores() -> None:
    """A no-show with a session number or ratings is rejected."""
    with pytest.raises(InvalidSession):
        SessionObservation(2, DAY0, Attendance.NO_SHOW)
    with pytest.raises(InvalidSession):
        SessionObservation(None, DAY0, Attendance.CANCELLED, outcome_total=20.0)


def test_out_of_order_observations_are_rejected() -> None:
    """Dates and session numbers must move forward."""
    with pytest.raises(InvalidSession):
        evaluate_rules([sess(2), sess(1)], ctx())


# ------------------------------------------------------------------------------ guidance
def test_guidance_mentions_goal_sheet_and_is_tailored() -> None:
    """Goal-leg guidance quotes the client's own goal and fits their expectation."""
    sheet = GoalSheet("sleep through the night", ("wind-down routine",), Expectation.TO_BE_HEARD)
    obs = [sess(1, srs=None, alliance_items=items(40, goals=7.0))]
    text = kinds(obs, ctx(goal_sheet=sheet))["low_srs_goal"].guidance
    assert '"sleep through the night"' in text
    assert "wind-down routine" in text
    assert "heard" in text


def test_guidance_without_goal_sheet_suggests_one() -> None:
    """Without a goal sheet, task-leg guidance suggests writing one together."""
    text = kinds([sess(1, srs=None, alliance_items=items(40, approach=7.0))])[
        "low_srs_task"
    ].guidance
    assert "No goal sheet" in text


# ------------------------------------------------------------------------------ property
# Episodes are drawn in styles (ceiling ratings, flat ORS) so the rules' edges are reached.
SRS_IDS = ("relationship", "goals", "approach", "overall")
srs_item = st.integers(0, 100).map(lambda v: v / 10)
ceiling_item = st.integers(93, 100).map(lambda v: v / 10)
Row = tuple[dict[str, float], float, Attendance | None]


@st.composite
def history(draw: st.DrawFn) -> list[Row]:
    ceiling, flat = draw(st.booleans()), draw(st.booleans())
    item = ceiling_item if ceiling else srs_item
    ors = st.integers(180, 220) if flat else st.integers(0, 400)
    miss = st.sampled_from([None, None, None, Attendance.NO_SHOW, Attendance.CANCELLED])
    row = st.tuples(
        st.fixed_dictionaries({k: item for k in SRS_IDS}), ors.map(lambda v: v / 10), miss
    )
    rows = draw(st.lists(row, min_size=1, max_size=8))
    # The latest session just under the ceiling is where a better rating can cross it.
    last = draw(
        st.fixed_dictionaries({k: st.integers(88, 100).map(lambda v: v / 10) for k in SRS_IDS})
    )
    return [*rows[:-1], (last if ceiling else rows[-1][0], *rows[-1][1:])]


small_bump = st.integers(0, 20).map(lambda v: v / 10)


def build(
    rows: list[tuple[dict[str, float], float, Attendance | None]],
) -> list[SessionObservation]:
    """Attended sessions (each optionally followed by a miss); on_track from a fixed band."""
    obs: list[SessionObservation] = []
    week = 0
    for n, (its, ors, miss) in enumerate(rows, start=1):
        obs.append(
            SessionObservation(
                n, day(week), outcome_total=ors, alliance_items=its, band_low=18.0,
                on_track=ors >= 18.0, trajectory_model="rational",
            )
        )  # fmt: skip
        week += 1
        if miss is not None:
            obs.append(SessionObservation(None, day(week), miss))
            week += 1
    return obs


#: defaults and settings a clinic may choose that change which scores hold a finding
RISK_VARIANTS = (
    RiskSettings(),
    RiskSettings(deterioration_confirm_scores=3),
    RiskSettings(deterioration_clear_sessions=3),
    RiskSettings(deterioration_confirm_scores=1, deterioration_large_multiple=1.5),
    RiskSettings(alliance_clear_sessions=3, deterioration_confirm_scores=4),
)


@settings(max_examples=500, deadline=None)
@given(
    rows=history(),
    bumps=st.fixed_dictionaries({k: st.one_of(small_bump, srs_item) for k in SRS_IDS}),
    ors_bump=st.one_of(small_bump, st.integers(0, 400).map(lambda v: v / 10)),
    risk_settings=st.sampled_from(RISK_VARIANTS),
)
def test_better_latest_score_never_raises_level(
    rows: list[Row],
    bumps: dict[str, float],
    ors_bump: float,
    risk_settings: RiskSettings,
) -> None:
    """Raising the latest session's SRS items and ORS (all else equal) never raises the level,
    under the default settings and under other settings a clinic may choose."""
    obs = build(rows)
    today = obs[-1].date + dt.timedelta(days=3)
    before = assess_episode(obs, ctx(today=today), risk_settings).level
    last_its, last_ors, last_miss = rows[-1]
    better_items = {k: min(10.0, round(v + bumps[k], 1)) for k, v in last_its.items()}
    better_rows = [*rows[:-1], (better_items, min(40.0, round(last_ors + ors_bump, 1)), last_miss)]
    after = assess_episode(build(better_rows), ctx(today=today), risk_settings).level
    assert after.rank <= before.rank


@pytest.mark.parametrize(
    ("settings_", "scores"),
    [
        (RiskSettings(deterioration_confirm_scores=3), (9.0, 14.0)),
        (RiskSettings(deterioration_clear_sessions=3), (9.0, 18.0, 14.0)),
    ],
)
def test_deterioration_stays_high_while_a_large_fall_holds_it(
    settings_: RiskSettings, scores: tuple[float, ...]
) -> None:
    """A large fall still holding the finding keeps it HIGH whatever the latest score (before,
    only the latest reliably worse score was judged, so a *better* latest score could turn
    MEDIUM into HIGH)."""
    for latest in (scores[-1], scores[-1] + 2.0):
        obs = [sess(1), *(sess(n, ors=v) for n, v in enumerate((*scores[:-1], latest), start=2))]
        found = {f.kind: f for f in evaluate_rules(obs, ctx(today=obs[-1].date), settings_)}
        assert found["ors_reliable_deterioration"].severity is Severity.HIGH


# ------------------------------------------------------------------------------ review fixes
#: pairs (a, a + d) of one-decimal totals over the scale: the differences that are exactly d on
#: paper but may fall short of it in binary floating point (20.4 - 15.4 = 4.999...)
def _one_decimal_pairs(step: float, top: float = 40.0) -> list[tuple[float, float]]:
    return [(round(a / 10, 1), round(a / 10 + step, 1)) for a in range(int((top - step) * 10) + 1)]


def test_a_fall_of_exactly_the_reliable_change_is_reliable_whatever_the_decimals() -> None:
    """Every one-decimal intake followed by two scores exactly 5 lower is a confirmed reliable
    deterioration (HIGH), e.g. 20.4 -> 15.4 -> 15.4 (domain.md §3: 5 points)."""
    for low, high in _one_decimal_pairs(5.0):
        obs = [sess(1, ors=high), sess(2, ors=low), sess(3, ors=low)]
        found = kinds(obs, ctx(intake=None, today=obs[-1].date))
        assert found["ors_reliable_deterioration"].severity is Severity.HIGH, (high, low)


def test_a_fall_of_exactly_twice_the_reliable_change_is_large_whatever_the_decimals() -> None:
    """A single score exactly 10 below a one-decimal intake (20.4 -> 10.4) is HIGH at once."""
    for low, high in _one_decimal_pairs(10.0):
        obs = [sess(1, ors=high), sess(2, ors=low)]
        found = kinds(obs, ctx(intake=None, today=obs[-1].date))
        assert found["ors_reliable_deterioration"].severity is Severity.HIGH, (high, low)


def test_a_rise_of_exactly_the_reliable_change_is_improvement_whatever_the_decimals() -> None:
    """ORS exactly 5 above a one-decimal intake by session 6 (15.4 -> 20.4) is reliable
    improvement: no no_reliable_improvement finding."""
    for low, high in _one_decimal_pairs(5.0):
        obs = [sess(1, ors=low), *(sess(n, ors=high) for n in range(2, 7))]
        found = kinds(obs, ctx(intake=None, today=obs[-1].date))
        assert "no_reliable_improvement" not in found, (low, high)


def test_an_srs_fall_of_exactly_one_point_is_a_decline_whatever_the_decimals() -> None:
    """SRS exactly 1 below the previous session (32.3 -> 31.3) is a decline, and two such falls
    in a row are MEDIUM (domain.md §3: >= 1 point)."""
    for low, high in _one_decimal_pairs(1.0):
        found = kinds([sess(1, srs=high), sess(2, srs=low)])
        assert "srs_decline" in found, (high, low)
    found = kinds([sess(1, srs=33.3), sess(2, srs=32.3), sess(3, srs=31.3)])
    assert found["srs_decline"].severity is Severity.MEDIUM


def test_an_outcome_range_of_exactly_the_reliable_change_is_not_flat() -> None:
    """ORS moving exactly 5 points (20.4 to 15.4) is reliable change, so ceiling SRS over it is
    not agreement without engagement."""
    obs = [sess(n, srs=39.0, ors=v) for n, v in enumerate((20.4, 18.0, 17.0, 15.4), start=1)]
    assert "agreement_without_engagement" not in kinds(obs, ctx(intake=None))


def test_agreement_without_engagement_needs_as_many_outcome_scores_as_sessions() -> None:
    """Four sessions at SRS 39 with ORS at only three of them do not fire (the intake was
    counted twice); with ORS at all four it fires and says how many outcome scores it rests on."""
    three = [sess(n, srs=39.0, ors=20.0 if n < 4 else None) for n in range(1, 5)]
    assert "agreement_without_engagement" not in kinds(three, ctx(intake=None))
    four = [sess(n, srs=39.0, ors=20.0) for n in range(1, 5)]
    found = kinds(four, ctx(intake=None))["agreement_without_engagement"]
    assert (found.evidence["sessions"], found.evidence["outcome_scores"]) == (4, 4)


@pytest.mark.parametrize(
    ("intake_clinical", "severity", "above"),
    [(True, Severity.MEDIUM, False), (False, Severity.LOW, True), (None, Severity.LOW, True)],
)
def test_no_improvement_follows_the_clinics_rule_for_an_intake_at_the_cutoff(
    intake_clinical: bool | None, severity: Severity, above: bool
) -> None:
    """An intake of exactly 25 is clinical where the clinic counts the cut-off as clinical (the
    service judges it, ``outcome_clinical``): MEDIUM by session 6; without that judgement the
    PCOMS rule (25 is functional) applies through Cutoff.is_clinical."""
    obs = [sess(1, ors=25.0, outcome_clinical=intake_clinical)]
    obs += [sess(n, ors=25.0) for n in range(2, 7)]
    found = kinds(obs, ctx(intake=None))["no_reliable_improvement"]
    assert (found.severity, found.evidence["intake_above_cutoff"]) == (severity, above)


def test_missed_appointments_before_a_first_session_are_medium_with_start_guidance() -> None:
    """Two cancellations and no attended session: MEDIUM (not HIGH), with guidance about
    starting therapy rather than about whether the way of working still suits them."""
    found = kinds([missed(0, Attendance.CANCELLED), missed(1, Attendance.CANCELLED)])
    f = found["missed_session"]
    assert (f.severity, f.evidence["therapy_started"]) == (Severity.MEDIUM, False)
    assert "not attended a first session" in f.guidance
    assert "2 appointments in a row" in f.guidance
    assert "way of working" not in f.guidance
    one = kinds([missed(0, Attendance.CANCELLED)])["missed_session"]
    assert one.severity is Severity.LOW
    assert kinds([missed(0)])["missed_session"].severity is Severity.MEDIUM
    started = kinds([sess(1), missed(1, Attendance.CANCELLED), missed(2, Attendance.CANCELLED)])
    assert started["missed_session"].severity is Severity.HIGH
    assert "way of working" in started["missed_session"].guidance


@pytest.mark.parametrize(("days", "alerts"), [(42, True), (84, True), (85, False), (365, False)])
def test_a_gap_alerts_until_its_evidence_is_stale(days: int, alerts: bool) -> None:
    """A lone session 6 weeks ago is a dropout signal that alerts; one older than the horizon
    (4 x max_gap_days = 84 days) is listed, marked stale in the reasons, and opens nothing."""
    obs = [sess(1)]
    result = assess_episode(obs, ctx(today=obs[0].date + dt.timedelta(days=days)))
    (gap,) = [f for f in result.findings if f.kind == "long_gap"]
    assert (gap.alerts, gap.stale) == (alerts, not alerts)
    assert ("stale evidence" in " ".join(result.reasons)) is not alerts


def test_stale_evidence_opens_no_alert_but_keeps_a_live_one() -> None:
    """An early low alliance from sessions 400 and 393 days ago opens no alert today (it is
    still listed and sets the level), while a live alert of the kind does not auto-resolve."""
    obs = [sess(1, srs=30.0), sess(2, srs=30.0)]
    context = ctx(today=obs[-1].date + dt.timedelta(days=393))
    result = assess_episode(obs, context)
    (early,) = [f for f in result.findings if f.kind == "early_low_alliance"]
    assert (early.severity, early.alerts, early.stale) == (Severity.HIGH, False, True)
    assert result.level is RiskLevel.HIGH
    assert reconcile([], result.findings, obs) == []
    live = Alert("a1", "early_low_alliance", Concern.GLOBAL_ALLIANCE, Severity.HIGH,
                 AlertStatus.OPEN, 2, obs[-1].date)  # fmt: skip
    assert reconcile([live], result.findings, obs) == []


def test_the_staleness_horizon_is_a_clinic_setting() -> None:
    """stale_evidence_gaps scales the horizon with max_gap_days; below 2 a gap could never
    alert before going stale, so it is refused."""
    assert RiskSettings().stale_after_days == 84
    assert RiskSettings(stale_evidence_gaps=6, max_gap_days=14).stale_after_days == 84
    obs = [sess(1)]
    later = ctx(today=obs[0].date + dt.timedelta(days=100))
    assert kinds(obs, later, stale_evidence_gaps=5)["long_gap"].alerts
    for bad in (1, 2.5, True):
        with pytest.raises(FitError):
            RiskSettings.from_mapping({"stale_evidence_gaps": bad})
