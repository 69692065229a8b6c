"""The synthetic-cohort evaluation: reproducible, metrics computed as defined."""

from __future__ import annotations

import math

import pytest

from fit_service.domain.risk import SessionObservation, Severity
from fit_service.evaluation import (
    CEILING_LABEL,
    AlertEvent,
    CohortAssumptions,
    EpisodeOutcome,
    Proportion,
    SyntheticEpisode,
    at_budget,
    compute_metrics,
    evaluate,
    generate_cohort,
    oracle_scores,
    pool,
    replay,
    run,
    run_seed_sets,
    summarise,
)
from tests.unit.weeks import day

SMALL = CohortAssumptions(clinicians=2, caseload=6, weeks=8, warmup_weeks=4)


def event(episode: str, week: int, latest: int) -> AlertEvent:
    return AlertEvent(episode, 0, day(week), "early_low_alliance", Severity.HIGH, latest)


def test_metrics_on_hand_built_cohort() -> None:
    """Sensitivity, precision, lead and rate follow the documented definitions exactly."""
    outcomes = [
        EpisodeOutcome("e1", True, 3, day(2)),  # flagged at session 2: lead 3 + 1 - 2 = 2
        EpisodeOutcome("e2", True, 2, day(1)),  # only alerted after leaving: not flagged
        EpisodeOutcome("e3", False, 6, day(5)),  # completer flagged: a false positive
        EpisodeOutcome("e4", False, 4, day(3)),  # completer, never flagged
        EpisodeOutcome("e5", True, 1, day(0)),  # flagged on session 1 data: lead 1
    ]
    events = [
        event("e1", 1, 2),
        event("e1", 5, 3),  # after e1 left, and outside the window
        event("e2", 3, 2),
        event("e3", 2, 3),
        event("e5", 0, 1),
        event("warmup", 1, 4),  # not measured: counts toward the rate only
    ]
    m = compute_metrics(outcomes, events, clinician_weeks=8, window=(day(0), day(4)))
    assert (m.sensitivity.k, m.sensitivity.n) == (2, 3)
    assert (m.sensitivity_two_ahead.k, m.sensitivity_two_ahead.n) == (1, 3)
    assert (m.precision.k, m.precision.n) == (2, 3)
    assert m.median_lead_sessions == 1.5
    assert m.alerts == 5
    assert m.alerts_per_clinician_week == pytest.approx(5 / 8)
    assert m.flagged_episodes == 3


def test_no_dropouts_gives_empty_sensitivity() -> None:
    """With no dropouts, sensitivity is n/a rather than a division error."""
    m = compute_metrics([EpisodeOutcome("e1", False, 3, day(2))], [], clinician_weeks=1)
    assert m.sensitivity.value is None
    assert m.median_lead_sessions is None
    assert str(m.sensitivity) == "n/a"


def test_wilson_interval_matches_known_value() -> None:
    """2 of 3 has the Wilson 95% interval 0.208-0.939."""
    low, high = Proportion(2, 3).ci95  # type: ignore[misc]
    assert (round(low, 3), round(high, 3)) == (0.208, 0.939)


def test_replay_opens_alert_on_first_session_data() -> None:
    """A low first SRS opens early_low_alliance on the day of session 1."""
    ep = SyntheticEpisode(
        "e1",
        0,
        0,
        20.0,
        True,
        False,
        (SessionObservation(1, day(0), outcome_total=20.0, alliance_total=30.0),),
    )
    (opened,) = replay(ep)
    assert (opened.kind, opened.latest_session, opened.opened_on) == (
        "early_low_alliance",
        1,
        day(0),
    )


def test_cohort_is_reproducible_for_a_seed() -> None:
    """The same seed gives the same cohort and the same metrics; another seed differs."""
    first, again = generate_cohort(7, SMALL), generate_cohort(7, SMALL)
    assert first == again
    assert evaluate(first) == evaluate(again)
    assert generate_cohort(8, SMALL).episodes != first.episodes


def test_default_cohort_matches_documented_assumptions() -> None:
    """Dropout 20-45%, mostly ceiling SRS, and an early-SRS gap near Sharf's d = .55."""
    summary = summarise(generate_cohort(1))
    assert 0.20 <= summary.dropouts / summary.episodes <= 0.45
    assert summary.srs_share_36_40 >= 0.70
    assert 0.3 <= summary.early_srs_d <= 0.8
    assert summary.miss_rate_dropouts > summary.miss_rate_completers


def test_run_prints_rules_beside_baseline_and_targets() -> None:
    """The report has our rows, the SRS < 36 baseline and a verdict on every target."""
    text = run(3, SMALL)
    assert "default: clinic model + rules" in text
    assert "baseline: SRS < 36" in text
    assert text.count("met") >= 4


def test_run_prints_the_ceiling_row() -> None:
    """The single-seed table carries the oracle CEILING row, labelled as not a rule set."""
    text = run(3, SMALL)
    assert CEILING_LABEL in text
    assert "never came to session 2" in text


def test_pool_sums_counts_and_pools_leads() -> None:
    """Pooling two seeds' metrics adds the counts and takes the median over all leads."""
    one = compute_metrics([EpisodeOutcome("e1", True, 3, day(2))], [event("e1", 0, 1)], 4)
    two = compute_metrics([EpisodeOutcome("e2", True, 2, day(1))], [], 6)
    both = pool([one, two])
    assert (both.sensitivity.k, both.sensitivity.n) == (1, 2)
    assert both.alerts_per_clinician_week == pytest.approx(1 / 10)
    assert both.median_lead_sessions == 3.0


def test_oracle_probabilities_are_calibrated() -> None:
    """At session 1 the ceiling's dropout probabilities add up to the dropouts seen (+-3 SD)."""
    predicted = observed = variance = 0.0
    for seed in (1, 2):
        cohort = generate_cohort(seed)
        scores = oracle_scores(cohort)
        for ep in cohort.measured:
            _, log_odds = scores[ep.episode_id][0]
            p = 1 / (1 + math.exp(-log_odds))
            predicted, variance, observed = (
                predicted + p,
                variance + p * (1 - p),
                observed + ep.dropout,
            )
    assert abs(predicted - observed) <= 3 * math.sqrt(variance)


def test_ceiling_respects_the_budget_and_beats_the_rules() -> None:
    """At <= 2 alerts per clinician-week the oracle is at least as sensitive as the default."""
    cohort = generate_cohort(1)
    ceiling = at_budget(cohort, oracle_scores(cohort))
    assert ceiling.alerts_per_clinician_week <= 2.0
    assert ceiling.sensitivity.k >= evaluate(cohort).sensitivity.k


def test_seed_sets_print_calibration_and_held_out() -> None:
    """The pooled report shows calibration and held-out seeds, each with a target verdict."""
    text = run_seed_sets((1, 2), (11,), SMALL)
    assert "calibration seeds" in text
    assert "held out seeds" in text
    assert text.count("targets (default row)") == 2
