"""Reliable and clinically significant change (fit_service.domain.change)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fit_service.domain.change import (
    NOT_CLASSIFIABLE,
    ChangeCategory,
    ChangeCriteria,
    ChangeSummary,
    Cutoff,
    CutoffMethod,
    ReliableChange,
    classify,
    classify_many,
    classify_scores,
)
from fit_service.domain.instruments import CORS, ORS, SRS, AgeBand, Direction

#: outside reference data, vendored (tests/data/README.md says where it comes from)
TESTDATA = Path(__file__).resolve().parents[1] / "data"

HIGHER = Direction.HIGHER_IS_BETTER
LOWER = Direction.LOWER_IS_BETTER
ORS_ADULT = ChangeCriteria.for_instrument(ORS, AgeBand.ADULT)


def _claus_pairs() -> tuple[list[float], list[float], int]:
    """Complete (pre, post) HAM-D pairs of Claus et al. 2020, and the number of rows read."""
    with (TESTDATA / "claus_2020_hamd.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    complete = [r for r in rows if r["hamd_pre"].strip() and r["hamd_post"].strip()]
    pre = [float(r["hamd_pre"]) for r in complete]
    post = [float(r["hamd_post"]) for r in complete]
    return pre, post, len(rows)


def _claus_criteria(pre: list[float]) -> ChangeCriteria:
    """The published set-up: r = .80, clinical M/SD from the pre scores, functional 8/8, c."""
    m_clin = float(np.mean(pre))
    sd_clin = float(np.std(pre, ddof=1))
    return ChangeCriteria(
        direction=LOWER,
        reliable_change=ReliableChange.from_sd(sd_clin, reliability=0.80, critical=1.96),
        cutoff=Cutoff.c(m_clin, sd_clin, m_func=8.0, sd_func=8.0),
    )


# --------------------------------------------------------------------------- external vector


def test_claus_2020_set_up_matches_published_descriptives() -> None:
    """The HAM-D vector has 43 rows, 40 complete, and the README's M, SD, c and S_diff."""
    pre, _, n_rows = _claus_pairs()
    criteria = _claus_criteria(pre)
    assert n_rows == 43
    assert len(pre) == 40
    assert np.mean(pre) == pytest.approx(24.85)
    assert np.std(pre, ddof=1) == pytest.approx(3.340, abs=5e-4)
    assert criteria.cutoff.value == pytest.approx(19.887, abs=5e-4)
    assert criteria.reliable_change.s_diff == pytest.approx(2.112, abs=5e-4)


def test_claus_2020_reproduces_clinicalsignificance_table() -> None:
    """Jacobson-Truax on Claus et al. 2020 gives 26/3/10/1/0 as the R package publishes."""
    pre, post, _ = _claus_pairs()
    summary = ChangeSummary.of(
        classify(a, b, _claus_criteria(pre)) for a, b in zip(pre, post, strict=True)
    )
    expected = {
        ChangeCategory.RECOVERED: (26, 65.0),
        ChangeCategory.IMPROVED: (3, 7.5),
        ChangeCategory.UNCHANGED: (10, 25.0),
        ChangeCategory.DETERIORATED: (1, 2.5),
        ChangeCategory.HARMED: (0, 0.0),
    }
    for category, (n, percent) in expected.items():
        assert summary.overall.counts[category] == n
        assert summary.overall.percent(category) == pytest.approx(percent)
    assert summary.not_classifiable == 0


def test_claus_2020_vectorised_matches_published_table() -> None:
    """The numpy classifier gives the same published table on the HAM-D vector."""
    pre, post, _ = _claus_pairs()
    overall = classify_many(pre, post, _claus_criteria(pre)).summary().overall
    assert [overall.counts[c] for c in ChangeCategory] == [0, 1, 10, 3, 26]


# --------------------------------------------------------------------------- worked arithmetic


def test_rci_worked_example() -> None:
    """SD 10, r .75: SE = 10·sqrt(.25) = 5, S_diff = 5·sqrt(2) = 7.0711, 1.96·S_diff = 13.859."""
    rc = ReliableChange.from_sd(10.0, reliability=0.75)
    assert rc.s_diff == pytest.approx(7.0711, abs=1e-4)
    assert rc.points == pytest.approx(13.859, abs=1e-3)
    # 20 -> 35: RCI = 15 / 7.0711 = 2.1213 > 1.96, reliable
    assert rc.rci(20.0, 35.0) == pytest.approx(2.1213, abs=1e-4)
    assert rc.is_reliable(15.0)
    # 20 -> 33: RCI = 13 / 7.0711 = 1.8385 < 1.96, not reliable; the sign does not matter
    assert rc.rci(20.0, 33.0) == pytest.approx(1.8385, abs=1e-4)
    assert not rc.is_reliable(13.0)
    assert rc.is_reliable(-15.0)


def test_rci_needs_strictly_more_than_the_critical_value() -> None:
    """|RCI| exactly at the critical value is not reliable (|RCI| > 1.96, domain.md §4)."""
    rc = ReliableChange.from_sd(10.0, reliability=0.75)
    assert not rc.is_reliable(rc.points)


def test_fixed_threshold_is_inclusive_and_ignores_float_noise() -> None:
    """ORS: a change of exactly 5 is reliable, even when 8.2 - 3.2 is 4.999999999999999."""
    rc = ReliableChange.fixed(5.0)
    assert 8.2 - 3.2 < 5.0  # binary floating point, the reason for the tolerance
    assert rc.is_reliable(8.2 - 3.2)
    assert not rc.is_reliable(4.9)
    assert rc.rci(20.0, 25.0) is None


@pytest.mark.parametrize(
    ("direction", "expected"),
    # a = M_clin + 2·SD_clin toward function: 20 + 2·5 = 30 (higher better), 20 - 10 = 10
    [(HIGHER, 30.0), (LOWER, 10.0)],
)
def test_cutoff_a_worked_example(direction: Direction, expected: float) -> None:
    """Cut-off a is two clinical SDs from the clinical mean, on the functional side."""
    cutoff = Cutoff.a(m_clin=20.0, sd_clin=5.0, direction=direction)
    assert cutoff.value == pytest.approx(expected)
    assert cutoff.method is CutoffMethod.A


@pytest.mark.parametrize(
    ("direction", "expected"),
    # b = M_func - 2·SD_func toward dysfunction: 30 - 2·4 = 22 (higher better), 30 + 8 = 38
    [(HIGHER, 22.0), (LOWER, 38.0)],
)
def test_cutoff_b_worked_example(direction: Direction, expected: float) -> None:
    """Cut-off b is two functional SDs from the functional mean, on the clinical side."""
    assert Cutoff.b(m_func=30.0, sd_func=4.0, direction=direction).value == pytest.approx(expected)


def test_cutoff_c_worked_example() -> None:
    """c = (SD_clin·M_func + SD_func·M_clin)/(SD_clin + SD_func) = (5·30 + 4·20)/9 = 25.556."""
    cutoff = Cutoff.c(m_clin=20.0, sd_clin=5.0, m_func=30.0, sd_func=4.0)
    assert cutoff.value == pytest.approx(230.0 / 9.0)


def test_cutoff_rejects_a_non_positive_sd() -> None:
    """A population SD of zero makes every computed cut-off meaningless."""
    with pytest.raises(ValueError, match="SD"):
        Cutoff.c(m_clin=20.0, sd_clin=0.0, m_func=30.0, sd_func=0.0)


@pytest.mark.parametrize(("value_is_clinical", "expected"), [(False, False), (True, True)])
def test_cutoff_value_side_is_a_setting(value_is_clinical: bool, expected: bool) -> None:
    """An ORS of exactly 25 is functional by default and clinical when the site says so."""
    cutoff = Cutoff.fixed(25.0, value_is_clinical=value_is_clinical)
    assert cutoff.is_clinical(25.0, HIGHER) is expected
    assert cutoff.is_clinical(24.9, HIGHER)
    assert not cutoff.is_clinical(25.1, HIGHER)


def test_lower_is_better_cutoff_counts_high_scores_as_clinical() -> None:
    """On HAM-D-like scales a score above the cut-off is the clinical side."""
    cutoff = Cutoff.fixed(20.0)
    assert cutoff.is_clinical(21.0, LOWER)
    assert not cutoff.is_clinical(19.0, LOWER)


# --------------------------------------------------------------------------- instrument criteria


def test_criteria_from_ors_norms() -> None:
    """ORS adult: cut-off 25 (25 itself functional), reliable change 5 points (domain.md §3)."""
    assert ORS_ADULT.direction is HIGHER
    assert ORS_ADULT.cutoff == Cutoff.fixed(25.0, value_is_clinical=False)
    assert ORS_ADULT.reliable_change == ReliableChange.fixed(5.0)
    adolescent = ChangeCriteria.for_instrument(ORS, AgeBand.ADOLESCENT)
    assert adolescent.cutoff.value == 28.0
    assert ChangeCriteria.for_instrument(CORS, AgeBand.CHILD).cutoff.value == 32.0


def test_clinic_settings_override_instrument_norms() -> None:
    """Per-clinic cut-off, side and reliable change (e.g. NHS CYP 6.6) replace the defaults."""
    criteria = ChangeCriteria.for_instrument(
        ORS, AgeBand.ADULT, cutoff=26.0, cutoff_is_clinical=True, reliable_change_points=6.6
    )
    assert criteria.cutoff == Cutoff.fixed(26.0, value_is_clinical=True)
    assert criteria.reliable_change.points == 6.6


@pytest.mark.parametrize(("instrument", "band"), [(SRS, AgeBand.ADULT), (ORS, AgeBand.CHILD)])
def test_criteria_refused_without_norms(instrument: object, band: AgeBand) -> None:
    """No cut-off for the instrument and age band means no criteria, not a made-up one."""
    with pytest.raises(ValueError, match="no clinical cut-off"):
        ChangeCriteria.for_instrument(instrument, band)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- categories


@pytest.mark.parametrize(
    ("first", "last", "category", "clinical_at_intake"),
    [
        (20.0, 26.0, ChangeCategory.RECOVERED, True),  # +6 and crosses 25
        (10.0, 20.0, ChangeCategory.IMPROVED, True),  # +10, still below 25
        (26.0, 32.0, ChangeCategory.IMPROVED, False),  # +6 from the functional range
        (20.0, 23.0, ChangeCategory.UNCHANGED, True),  # +3 < 5
        (20.0, 14.0, ChangeCategory.DETERIORATED, True),  # -6, was already clinical
        (30.0, 24.0, ChangeCategory.HARMED, False),  # -6 and crosses into the clinical range
        (36.0, 30.0, ChangeCategory.DETERIORATED, False),  # -6, still functional
        (20.0, 25.0, ChangeCategory.RECOVERED, True),  # +5 reaches 25, which is functional
    ],
)
def test_ors_categories(
    first: float, last: float, category: ChangeCategory, clinical_at_intake: bool
) -> None:
    """Each category follows domain.md §4 on the ORS adult norms (cut-off 25, RC 5)."""
    result = classify(first, last, ORS_ADULT)
    assert result is not None
    assert result.category is category
    assert result.clinical_at_intake is clinical_at_intake
    assert result.improvement == pytest.approx(last - first)


def test_recovery_counts_the_cutoff_side_setting() -> None:
    """20 -> 25 is not recovery when the site counts 25 itself as clinical."""
    criteria = ChangeCriteria.for_instrument(ORS, AgeBand.ADULT, cutoff_is_clinical=True)
    result = classify(20.0, 25.0, criteria)
    assert result is not None
    assert result.category is ChangeCategory.IMPROVED


@pytest.mark.parametrize(
    "scores",
    [[], [20.0], [None, 20.0, 30.0], [20.0, 30.0, None], [math.nan, 30.0], [None, None]],
)
def test_incomplete_episodes_are_not_classified(scores: list[float | None]) -> None:
    """Fewer than two scores, or a missing first or last one, yields no category."""
    assert classify_scores(scores, ORS_ADULT) is None


def test_episode_uses_first_and_last_score_only() -> None:
    """A missed middle rating does not matter: first 20, last 26 is recovered."""
    result = classify_scores([20.0, None, 12.0, 26.0], ORS_ADULT)
    assert result is not None
    assert result.category is ChangeCategory.RECOVERED


def test_summary_reports_functional_at_intake_apart() -> None:
    """Counts split by intake range; unclassifiable episodes are counted, not categorised."""
    results = [
        classify(20.0, 26.0, ORS_ADULT),  # recovered, clinical at intake
        classify(20.0, 21.0, ORS_ADULT),  # unchanged, clinical at intake
        classify(26.0, 32.0, ORS_ADULT),  # improved, functional at intake
        classify(None, 32.0, ORS_ADULT),  # not classifiable
    ]
    summary = ChangeSummary.of(results)
    assert summary.overall.n == 3
    assert summary.not_classifiable == 1
    assert summary.clinical_at_intake.counts[ChangeCategory.RECOVERED] == 1
    assert summary.clinical_at_intake.percent(ChangeCategory.RECOVERED) == pytest.approx(50.0)
    assert summary.functional_at_intake.counts[ChangeCategory.IMPROVED] == 1
    assert summary.functional_at_intake.n == 1


def test_empty_group_has_no_percent() -> None:
    """A group with no episodes reports no percentage rather than 0%."""
    summary = ChangeSummary.of([classify(20.0, 26.0, ORS_ADULT)])
    assert summary.functional_at_intake.percent(ChangeCategory.IMPROVED) is None


# --------------------------------------------------------------------------- properties

# One-decimal totals on the ORS range hit the cut-off and threshold exactly and often.
ors_total = st.integers(min_value=0, max_value=400).map(lambda tenths: tenths / 10)
maybe_total = st.one_of(st.none(), ors_total, st.just(math.nan))
criteria_strategy = st.builds(
    ChangeCriteria,
    direction=st.sampled_from(list(Direction)),
    reliable_change=st.one_of(
        st.builds(ReliableChange.fixed, st.sampled_from([5.0, 6.6, 2.5])),
        st.builds(
            ReliableChange.from_sd,
            st.floats(min_value=1.0, max_value=10.0),
            st.floats(min_value=0.5, max_value=0.95),
        ),
    ),
    cutoff=st.builds(
        Cutoff.fixed, st.sampled_from([25.0, 28.0, 32.0, 19.9]), value_is_clinical=st.booleans()
    ),
)


@given(criteria=criteria_strategy, first=ors_total, low=ors_total, high=ors_total)
def test_higher_last_score_never_gives_a_worse_category(
    criteria: ChangeCriteria, first: float, low: float, high: float
) -> None:
    """Higher-is-better: raising the last score never lowers the category's rank."""
    criteria = ChangeCriteria(HIGHER, criteria.reliable_change, criteria.cutoff)
    low, high = sorted((low, high))
    worse, better = classify(first, low, criteria), classify(first, high, criteria)
    assert worse is not None
    assert better is not None
    assert better.category.rank >= worse.category.rank


@given(criteria=criteria_strategy, first=ors_total, last=ors_total)
def test_flipping_direction_and_negating_scores_changes_nothing(
    criteria: ChangeCriteria, first: float, last: float
) -> None:
    """A lower-is-better mirror image (scores and cut-off negated) classifies identically."""
    flipped_direction = LOWER if criteria.direction is HIGHER else HIGHER
    mirrored = ChangeCriteria(
        flipped_direction,
        criteria.reliable_change,
        Cutoff.fixed(-criteria.cutoff.value, value_is_clinical=criteria.cutoff.value_is_clinical),
    )
    original, mirror = classify(first, last, criteria), classify(-first, -last, mirrored)
    assert original is not None
    assert mirror is not None
    assert mirror.category is original.category
    assert mirror.clinical_at_intake is original.clinical_at_intake


@given(criteria=criteria_strategy, first=maybe_total, last=maybe_total)
def test_incomplete_data_never_yields_a_category(
    criteria: ChangeCriteria, first: float | None, last: float | None
) -> None:
    """Classification exists exactly when both scores exist, scalar and vectorised alike."""
    complete = first is not None and last is not None and not math.isnan(first + last)
    result = classify(first, last, criteria)
    code = classify_many(
        [math.nan if first is None else first], [math.nan if last is None else last], criteria
    ).codes[0]
    assert (result is not None) is complete
    assert bool(code != NOT_CLASSIFIABLE) is complete


@given(criteria=criteria_strategy, first=ors_total, last=ors_total)
def test_functional_at_intake_never_recovers(
    criteria: ChangeCriteria, first: float, last: float
) -> None:
    """Recovery requires a clinical-range intake; functional intakes cannot recover."""
    result = classify(first, last, criteria)
    assert result is not None
    if result.functional_at_intake:
        assert result.category is not ChangeCategory.RECOVERED


@settings(max_examples=25, deadline=None)
@given(criteria=criteria_strategy, seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_vectorised_equals_scalar_on_random_data(criteria: ChangeCriteria, seed: int) -> None:
    """classify_many gives, row for row, the category and intake side of classify."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 401, size=2000) / 10  # one-decimal totals: many exact ties
    last = rng.integers(0, 401, size=2000) / 10
    first[rng.random(2000) < 0.05] = np.nan
    last[rng.random(2000) < 0.05] = np.nan
    vector = classify_many(first, last, criteria)
    for i, (a, b) in enumerate(zip(first.tolist(), last.tolist(), strict=True)):
        scalar = classify(a, b, criteria)
        assert vector.category(i) == (None if scalar is None else scalar.category)
        assert bool(vector.clinical_at_intake[i]) == (
            scalar is not None and scalar.clinical_at_intake
        )


def test_vectorised_summary_equals_scalar_summary() -> None:
    """Summaries built from both classifiers agree on every count."""
    rng = np.random.default_rng(7)
    first, last = rng.uniform(0, 40, 500), rng.uniform(0, 40, 500)
    first[::17] = np.nan
    scalar = ChangeSummary.of(classify(a, b, ORS_ADULT) for a, b in zip(first, last, strict=True))
    assert classify_many(first, last, ORS_ADULT).summary() == scalar


def test_vectorised_rejects_mismatched_arrays() -> None:
    """First and last scores must pair up one to one."""
    with pytest.raises(ValueError, match="same length"):
        classify_many([1.0, 2.0], [1.0], ORS_ADULT)
