"""Effect sizes and proportions (fit_service.domain.effect_sizes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fit_service.domain.change import ChangeCriteria
from fit_service.domain.effect_sizes import (
    Z_95,
    ClusterSpread,
    EffectLabel,
    SeverityReference,
    _Moments,
    interpret_effect_size,
    pre_post_d,
    proportion,
    severity_adjusted_es,
    standardized_mean_change_variance,
    t_quantile_975,
)
from fit_service.domain.instruments import ORS, AgeBand, Direction
from tests.independent_stats import effective_n, t_975, wilson

ORS_ADULT = ChangeCriteria.for_instrument(ORS, AgeBand.ADULT)  # clinical: total < 25


# --------------------------------------------------------------------------- pre-post d


def test_pre_post_d_worked_example() -> None:
    """d = mean change / sample SD of intake, with Becker's CI, all worked by hand.

    intake 10, 12, 14, 16: mean 13, deviations -3 -1 1 3, SS 20, SD = sqrt(20/3) = 2.5820
    last   15, 16, 20, 21: changes 5 4 6 5, mean change 5 -> d = 5 / 2.5820 = 1.9365
    last deviations from 18: -3 -2 2 3, SS 26; cross-products 9+2+2+9 = 22
    r = 22 / sqrt(20·26) = 0.96476
    Var = 2(1 - r)/n + d²/(2n) = 2·0.03524/4 + 3.75/8 = 0.01762 + 0.46875 = 0.48637
    CI half-width = 1.96·sqrt(0.48637) = 1.3669
    """
    es = pre_post_d([10, 12, 14, 16], [15, 16, 20, 21], Direction.HIGHER_IS_BETTER)
    assert es is not None
    assert es.n == 4
    assert es.value == pytest.approx(1.9365, abs=1e-4)
    assert es.ci_low == pytest.approx(1.9365 - 1.3669, abs=1e-3)
    assert es.ci_high == pytest.approx(1.9365 + 1.3669, abs=1e-3)
    assert es.label is EffectLabel.LARGE


def test_pre_post_d_is_positive_for_improvement_on_a_lower_is_better_scale() -> None:
    """A fall on a lower-is-better scale is an improvement: the same data give -d."""
    higher = pre_post_d([10, 12, 14, 16], [15, 16, 20, 21], Direction.HIGHER_IS_BETTER)
    lower = pre_post_d([10, 12, 14, 16], [15, 16, 20, 21], Direction.LOWER_IS_BETTER)
    assert higher is not None
    assert lower is not None
    assert lower.value == pytest.approx(-higher.value)
    assert lower.label is EffectLabel.NEGATIVE


def test_pre_post_d_leaves_out_incomplete_pairs() -> None:
    """A pair with a missing score is dropped, not counted as zero change."""
    es = pre_post_d(
        [10, 12, 14, 16, 30, math.nan], [15, 16, 20, 21, math.nan, 5], Direction.HIGHER_IS_BETTER
    )
    assert es is not None
    assert es.n == 4
    assert es.value == pytest.approx(1.9365, abs=1e-4)


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ([], []),
        ([20.0], [25.0]),
        ([20.0, 20.0, 20.0], [21.0, 25.0, 30.0]),
        # np.std of these is ~4e-15, not 0: once a d of 7e14 (found in review)
        ([30.1, 30.1, 30.1], [32.0, 33.0, 34.5]),
    ],
)
def test_pre_post_d_undefined_without_spread(first: list[float], last: list[float]) -> None:
    """Fewer than two pairs, or identical intakes, have no d rather than a misleading one."""
    assert pre_post_d(first, last, Direction.HIGHER_IS_BETTER) is None


def test_pre_post_d_without_end_spread_up_to_float_noise_has_no_ci() -> None:
    """Identical non-integer last scores (SD ~1e-15 in floating point) have no correlation."""
    es = pre_post_d([10.0, 14.0, 12.0], [30.1, 30.1, 30.1], Direction.HIGHER_IS_BETTER)
    assert es is not None
    assert es.ci_low is None


def test_pre_post_d_without_end_spread_has_no_ci() -> None:
    """Identical last scores leave the pre-post correlation, hence the CI, undefined."""
    es = pre_post_d([10.0, 14.0], [20.0, 20.0], Direction.HIGHER_IS_BETTER)
    assert es is not None
    assert es.value == pytest.approx(8.0 / math.sqrt(8.0))  # mean change 8, SD sqrt(8)
    assert es.ci_low is None
    assert es.ci_high is None


def _numpy_d(first: np.ndarray, last: np.ndarray) -> tuple[float, float | None, float | None]:
    """d and its Becker interval written with np.std and np.mean, as the module once computed
    them: the bits its cheaper ufunc calls must reproduce."""
    sd = float(np.std(first, ddof=1))
    d = float(np.mean(last - first)) / sd
    s1, s2 = float(np.std(first)), float(np.std(last))
    if s2 <= 1e-9 * max(1.0, float(np.max(np.abs(last)))):
        return d, None, None
    r = float(np.mean((first - first.mean()) * (last - last.mean())) / (s1 * s2))
    half = 1.959963984540054 * math.sqrt(standardized_mean_change_variance(d, r, first.size))
    return d, d - half, d + half


# sizes around numpy's pairwise-summation blocks (8 values, 128 values) and well beyond
@pytest.mark.parametrize("n", [2, 3, 7, 8, 9, 17, 45, 127, 128, 129, 300, 1031, 8157])
def test_moments_and_d_are_numpys_to_the_last_bit(n: int) -> None:
    """_Moments (np.add.reduce and elementwise ufuncs) gives np.mean's and np.std's very
    floats, and so pre_post_d the same d and interval as the np.std formulas: the report's
    figures are compared byte for byte."""
    rng = np.random.default_rng(n)
    for _ in range(20):
        first = np.round(rng.uniform(0, 25, n), 1)
        last = np.round(np.clip(first + rng.normal(5, 7, n), 0, 40), 1)
        moments = _Moments.of(first)
        assert moments.mean == float(np.mean(first))
        assert moments.sd() == float(np.std(first))
        assert moments.sd(ddof=1) == float(np.std(first, ddof=1))
        es = pre_post_d(first, last, Direction.HIGHER_IS_BETTER)
        assert es is not None
        assert (es.value, es.ci_low, es.ci_high) == _numpy_d(first, last)
        reference = SeverityReference(12.0, 0.6, 4.0, 5.0, 1000, source="test")
        sa = severity_adjusted_es(first, last, ORS_ADULT, reference=reference)
        clinical = first < 25
        residual = last[clinical] - (12.0 + 0.6 * first[clinical])
        assert sa is not None
        assert sa.value == (float(np.mean(residual)) + 4.0) / 5.0
        se = float(np.std(residual, ddof=1)) / (math.sqrt(residual.size) * 5.0)
        assert (sa.ci_low, sa.ci_high) == (sa.value - Z_95 * se, sa.value + Z_95 * se)


@pytest.mark.parametrize(
    ("d", "r", "n", "variance"),
    [
        # metafor's escalc(measure = "SMCR") regression test (Morris 2008 data, yi and vi)
        (0.5056, 0.47, 20, 0.0594),
        (1.0481, 0.64, 50, 0.0254),
    ],
)
def test_becker_variance_matches_metafor(d: float, r: float, n: int, variance: float) -> None:
    """Var(d) = 2(1-r)/n + d²/(2n) reproduces metafor's published SMCR variances."""
    assert standardized_mean_change_variance(d, r, n) == pytest.approx(variance, abs=5e-5)


# --------------------------------------------------------------------------- severity-adjusted


def test_sa_es_without_reference_equals_d_of_clinical_range_sample() -> None:
    """With the clinic as its own reference, SA-ES is the d of clinical-range intakes."""
    rng = np.random.default_rng(3)
    first = rng.uniform(5, 40, 400)
    last = np.clip(first + rng.normal(4, 6, 400), 0, 40)
    sa = severity_adjusted_es(first, last, ORS_ADULT)
    clinical = first < 25
    plain = pre_post_d(first[clinical], last[clinical], Direction.HIGHER_IS_BETTER)
    assert sa is not None
    assert plain is not None
    assert sa.n == int(clinical.sum())
    assert sa.value == pytest.approx(plain.value)
    assert (sa.ci_low, sa.ci_high) == pytest.approx((plain.ci_low, plain.ci_high))


def test_sa_es_with_external_reference_worked_example() -> None:
    """Residual gains over a reference model, worked by hand.

    reference: expected last = 5 + 0.9·intake, mean change 4, intake SD 6
    clinic (clinical range only): 15 -> 22 and 20 -> 24; the 30 -> 30 intake is functional
    expected 18.5 and 23 -> residuals 3.5 and 1, mean 2.25
    SA-ES = (2.25 + 4) / 6 = 1.04167
    SD(residuals) = 2.5/sqrt(2) = 1.76777; SE = 1.76777 / (sqrt(2)·6) = 0.208333
    CI = 1.04167 ± 1.96·0.208333 = 1.04167 ± 0.40833
    """
    reference = SeverityReference(
        intercept=5.0, slope_intake=0.9, mean_change=4.0, intake_sd=6.0, n=5000, source="bench"
    )
    es = severity_adjusted_es([15, 20, 30], [22, 24, 30], ORS_ADULT, reference=reference)
    assert es is not None
    assert es.n == 2
    assert es.value == pytest.approx(1.04167, abs=1e-5)
    assert es.ci_low == pytest.approx(1.04167 - 0.40833, abs=1e-4)
    assert es.ci_high == pytest.approx(1.04167 + 0.40833, abs=1e-4)
    assert "bench" in es.method


def test_sa_es_rewards_doing_better_than_intake_severity_predicts() -> None:
    """Adding one point to every last score raises SA-ES by 1 / reference SD."""
    reference = SeverityReference(
        intercept=5.0, slope_intake=0.9, mean_change=4.0, intake_sd=6.0, n=5000
    )
    base = severity_adjusted_es([15, 20], [22, 24], ORS_ADULT, reference=reference)
    better = severity_adjusted_es([15, 20], [23, 25], ORS_ADULT, reference=reference)
    assert base is not None
    assert better is not None
    assert better.value - base.value == pytest.approx(1.0 / 6.0)


def test_severity_reference_fit_recovers_a_known_line() -> None:
    """Fitted on last = 5 + 0.9·intake exactly, the reference returns those coefficients."""
    first = np.array([10.0, 12.0, 15.0, 18.0, 20.0, 24.0, 30.0])
    last = 5.0 + 0.9 * first
    reference = SeverityReference.fit(first, last, ORS_ADULT)
    assert reference is not None
    assert reference.n == 6  # the 30 intake is functional and left out
    assert reference.intercept == pytest.approx(5.0)
    assert reference.slope_intake == pytest.approx(0.9)
    clinical = first[:6]
    assert reference.mean_change == pytest.approx(np.mean(5.0 - 0.1 * clinical))
    assert reference.intake_sd == pytest.approx(np.std(clinical, ddof=1))


def test_severity_reference_with_covariate_needs_it_back() -> None:
    """A reference fitted with a covariate recovers its slope and refuses data without one."""
    first = np.array([10.0, 12.0, 15.0, 18.0, 20.0, 24.0])
    session_of_first = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 2.0])
    last = 5.0 + 0.9 * first - 1.5 * session_of_first
    reference = SeverityReference.fit(first, last, ORS_ADULT, covariate=session_of_first)
    assert reference is not None
    assert reference.slope_covariate == pytest.approx(-1.5)
    with pytest.raises(ValueError, match="covariate"):
        severity_adjusted_es(first, last, ORS_ADULT, reference=reference)
    es = severity_adjusted_es(
        first, last, ORS_ADULT, covariate=session_of_first, reference=reference
    )
    assert es is not None
    assert es.value == pytest.approx(reference.mean_change / reference.intake_sd)


def test_severity_reference_refuses_too_few_cases() -> None:
    """Two clinical intakes cannot fit a line with a residual spread."""
    assert SeverityReference.fit([10.0, 12.0, 30.0], [15.0, 16.0, 30.0], ORS_ADULT) is None


def test_sa_es_none_without_clinical_intakes() -> None:
    """A sample with only functional-range intakes has no severity-adjusted effect size."""
    reference = SeverityReference(
        intercept=5.0, slope_intake=0.9, mean_change=4.0, intake_sd=6.0, n=5000
    )
    assert severity_adjusted_es([30, 31], [32, 35], ORS_ADULT, reference=reference) is None
    assert severity_adjusted_es([30, 31], [32, 35], ORS_ADULT) is None


# --------------------------------------------------------------------------- labels, proportions


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (-0.1, EffectLabel.NEGATIVE),
        (0.0, EffectLabel.SMALL),
        (0.29, EffectLabel.SMALL),
        (0.3, EffectLabel.MEDIUM),
        (0.79, EffectLabel.MEDIUM),
        (0.8, EffectLabel.LARGE),
    ],
)
def test_effect_size_labels(value: float, label: EffectLabel) -> None:
    """>= 0.8 large, < 0.3 small (domain.md §4); negative values are named as such."""
    assert interpret_effect_size(value) is label


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # Newcombe (1998), Stat Med 17:857, Table II, method 3 (Wilson score interval)
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe_1998(k: int, n: int, low: float, high: float) -> None:
    """The Wilson 95% interval reproduces Newcombe's published examples to 4 decimals."""
    share = proportion(k, n)
    assert share is not None
    assert share.value == pytest.approx(k / n)
    assert (round(share.ci_low, 4), round(share.ci_high, 4)) == (low, high)


def test_proportion_of_nothing_is_none() -> None:
    """0 of 0 is not 0%: no proportion exists."""
    assert proportion(0, 0) is None


def test_proportion_rejects_impossible_counts() -> None:
    """k larger than n is a caller's error."""
    with pytest.raises(ValueError, match="0 <= k <= n"):
        proportion(5, 3)


@settings(max_examples=200)
@given(n=st.integers(min_value=1, max_value=10_000), data=st.data())
def test_wilson_interval_contains_the_estimate_within_unit_range(
    n: int, data: st.DataObject
) -> None:
    """The interval always holds the observed share and stays inside [0, 1]."""
    k = data.draw(st.integers(min_value=0, max_value=n))
    share = proportion(k, n)
    assert share is not None
    assert 0.0 <= share.ci_low <= share.value <= share.ci_high <= 1.0


# --------------------------------------------------------------------------- clustered rates


#: Relative tolerance of an effective n against the hand calculation: the service reads t
#: from a three-decimal table (half a unit in the last place, squared in the ratio).
T_TABLE = 1e-3

cluster_lists = st.lists(
    st.integers(min_value=1, max_value=40).flatmap(
        lambda m: st.tuples(st.integers(min_value=0, max_value=m), st.just(m))
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300)
@given(clusters=cluster_lists)
def test_effective_n_equals_a_calculation_by_hand(clusters: list[tuple[int, int]]) -> None:
    y = [a for a, _ in clusters]
    m = [b for _, b in clusters]
    spread = ClusterSpread.of(y, m)
    k, n = sum(y), sum(m)
    assert spread.effective_n(k, n) == pytest.approx(effective_n(clusters), rel=T_TABLE)


@settings(max_examples=300)
@given(clusters=cluster_lists)
def test_clustered_interval_is_wilson_on_the_effective_n_and_never_narrower(
    clusters: list[tuple[int, int]],
) -> None:
    """The interval is Wilson's with n replaced by the effective n (Korn & Graubard 1998),
    so it holds p and is at least as wide as treating the units as independent."""
    k, n = sum(a for a, _ in clusters), sum(b for _, b in clusters)
    effective = ClusterSpread.of(*zip(*clusters, strict=True)).effective_n(k, n)
    clustered, plain = proportion(k, n, effective), proportion(k, n)
    assert clustered is not None
    assert plain is not None
    assert effective == pytest.approx(effective_n(clusters), rel=T_TABLE)
    low, high = wilson(k, effective, n)
    assert clustered.ci_low == pytest.approx(low, abs=1e-12)
    assert clustered.ci_high == pytest.approx(high, abs=1e-12)
    assert clustered.ci_low <= plain.ci_low + 1e-12 <= clustered.value + 1e-12
    assert clustered.value <= plain.ci_high <= clustered.ci_high + 1e-12


def test_one_unit_per_cluster_is_the_survey_variance_p_q_over_n_minus_1() -> None:
    """Units that are their own clusters: Var = p(1-p)/(n-1), the with-replacement estimate
    survey software gives for a 0/1 mean, so the effective n is n - 1 (a hair from Wilson's
    own interval; the degrees of freedom, n - 1, are those of independent units: no
    correction)."""
    spread = ClusterSpread.of([1] * 30 + [0] * 70, [1] * 100)
    assert spread.clusters == 100
    assert spread.effective_n(30, 100) == pytest.approx(99.0)


def test_t_quantiles_are_the_published_ones() -> None:
    """97.5% quantiles of Student's t as printed in any table (three decimals), and within
    that of the hand integration in tests/independent_stats.py."""
    published = {1: 12.706, 2: 4.303, 9: 2.262, 29: 2.045, 60: 2.000, 120: 1.980}
    for df, value in published.items():
        assert t_quantile_975(df) == pytest.approx(value, abs=6e-4), df
        assert t_quantile_975(df) == pytest.approx(t_975(df), abs=6e-4), df
    assert t_quantile_975(10**9) == pytest.approx(1.959964, abs=1e-6)


def test_clusters_all_alike_inside_count_once_each() -> None:
    """Every episode all no-shows or none (intraclass correlation 1), ten sessions each: the
    ten clusters carry the information of ten units (nine, with the C/(C-1) of the variance),
    not a hundred - and fewer again for the variance being estimated from ten clients:
    9 · (t(99)/t(9))² = 6.92 (Korn & Graubard 1998)."""
    spread = ClusterSpread.of([10, 10, 10, 0, 0, 0, 0, 0, 0, 0], [10] * 10)
    assert spread.effective_n(30, 100) == pytest.approx(9 * (1.984217 / 2.262157) ** 2, rel=T_TABLE)
    assert spread.effective_n(30, 100) == pytest.approx(6.92, abs=0.01)
    wide, narrow = proportion(30, 100, 6.92), proportion(30, 100)
    assert wide is not None
    assert narrow is not None
    assert wide.ci_high - wide.ci_low > 2 * (narrow.ci_high - narrow.ci_low)


def test_counted_sessions_in_one_long_episode_get_a_small_effective_n() -> None:
    """Ten sessions below the line, all in one episode, beside ninety one-session episodes
    with none: the rate rests on about eleven units' worth of information, fewer than uniform
    clusters of unrelated sizes (n²/Σm² = 52.6) would suggest, and the interval says so."""
    clusters = [(10, 10)] + [(0, 1)] * 90
    spread = ClusterSpread.of(*zip(*clusters, strict=True))
    assert spread.effective_n(10, 100) == pytest.approx(effective_n(clusters), rel=T_TABLE)
    assert spread.effective_n(10, 100) == pytest.approx(10.84, abs=0.01)
    assert 100**2 / spread.sum_mm == pytest.approx(52.6, abs=0.1)


def test_same_rate_in_every_cluster_has_a_design_effect_of_1() -> None:
    """0 < p < 1 and no between-cluster variation observed: the estimated variance is 0, the
    design effect 1 (n), and the three clients' two degrees of freedom still widen it:
    14 · (t(13)/t(2))²."""
    got = ClusterSpread.of([2, 4, 1], [4, 8, 2]).effective_n(7, 14)
    assert got == pytest.approx(14 * (2.160369 / 4.302653) ** 2, rel=T_TABLE)


def test_rates_of_0_or_1_follow_the_same_rule_as_their_neighbours() -> None:
    """No no-shows in a hundred sessions of ten clients: the variance is 0, so the design
    effect is 1, as NCHS takes it (Parker et al. 2017) and as it is for equal rates. The
    rule used before (n²/Σm²: 10) made one event *narrow* the interval severalfold: 0/100 was
    0-28% and 1/100 0.2-5.5%. Now the upper bound grows with k, as it must."""
    spread = ClusterSpread.of([0] * 10, [10] * 10)
    highs = []
    for k in range(4):
        clusters = [(1 if i < k else 0, 10) for i in range(10)]
        cs = ClusterSpread.of(*zip(*clusters, strict=True))
        size = cs.effective_n(k, 100)
        assert size == pytest.approx(effective_n(clusters), rel=T_TABLE)
        share = proportion(k, 100, size)
        assert share is not None
        highs.append(share.ci_high)
    assert highs == sorted(highs)
    assert highs[0] < 0.06
    assert spread.effective_n(0, 100) == pytest.approx(
        100 * (1.984217 / 2.262157) ** 2, rel=T_TABLE
    )
    full = ClusterSpread.of([10] * 10, [10] * 10)
    assert full.effective_n(100, 100) == pytest.approx(spread.effective_n(0, 100))


def test_one_cluster_is_never_surer_than_two() -> None:
    """One client's sessions: no between-client variance to estimate, so they count as one
    unit, corrected as two clients' would be (one degree of freedom): the widest interval
    the design allows, and no narrower than two clients'."""
    one = ClusterSpread.of([3], [12]).effective_n(3, 12)
    assert one == pytest.approx((2.200985 / 12.706205) ** 2, rel=T_TABLE)
    two = ClusterSpread.of([1, 2], [6, 6]).effective_n(3, 12)
    assert one < two
    share = proportion(3, 12, one)
    assert share is not None
    assert share.ci_high - share.ci_low > 0.9
    assert ClusterSpread.of([1], [1]).effective_n(1, 1) == 1.0


def test_spreads_of_disjoint_clusters_add() -> None:
    a, b = ([1, 0, 3], [2, 5, 3]), ([4, 0], [4, 1])
    joined = ClusterSpread.of(a[0] + b[0], a[1] + b[1])
    assert ClusterSpread.of(*a) + ClusterSpread.of(*b) == joined
    assert joined.clusters == 5


@given(st.lists(st.tuples(*[st.integers(0, 30)] * 4), max_size=40))
def test_spreads_of_summed_columns_are_the_sums_by_hand(rows: list[tuple[int, ...]]) -> None:
    """of_counts (products from the counts' Gram matrix) gives each rate's Σy², Σy·m, Σm² and
    clusters with m > 0 as summed cluster by cluster; of_columns the same for its columns."""
    counts = np.array(rows, dtype=np.int64).reshape(-1, 4)
    # rate 0: column 1 of columns 0 + 1 + 2; rate 1: column 3 of columns 0 + 3
    pickers = np.array([[0, 0], [1, 0], [0, 0], [0, 1]]), np.array([[1, 1], [1, 0], [1, 0], [0, 1]])
    got = ClusterSpread.of_counts(counts, *pickers)
    for rate, spread in enumerate(got):
        y = [sum(r[i] for i in range(4) if pickers[0][i][rate]) for r in rows]
        m = [sum(r[i] for i in range(4) if pickers[1][i][rate]) for r in rows]
        expected = ClusterSpread(
            sum(1 for v in m if v),
            sum(a * a for a in y),
            sum(a * b for a, b in zip(y, m, strict=True)),
            sum(b * b for b in m),
        )
        assert spread == expected
        assert ClusterSpread.of(y, m) == expected


def test_spread_refuses_impossible_clusters_and_effective_n_out_of_range() -> None:
    with pytest.raises(ValueError, match="numerator <= denominator"):
        ClusterSpread.of([3], [2])
    with pytest.raises(ValueError, match="numerator <= denominator"):
        ClusterSpread.of([-1], [2])
    with pytest.raises(ValueError, match="effective_n"):
        proportion(3, 10, 11.0)
    with pytest.raises(ValueError, match="effective_n"):
        proportion(3, 10, 0.0)
