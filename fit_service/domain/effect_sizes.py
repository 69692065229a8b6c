"""Effect sizes and proportions for reports, each with its n and a 95% confidence interval.

domain.md §4: "Show n and a confidence interval with every figure."

* :func:`pre_post_d` - mean change over the SD of intake scores, CI from Becker (1988).
* :func:`severity_adjusted_es` - Seidel, Miller & Chow (2014), PCOMS benchmarking.
* :func:`proportion` - a share with the Wilson (1927) score interval; for a rate over units
  nested in clusters (sessions within clients), on the effective sample size of
  :class:`ClusterSpread`.

All effect sizes are signed so that **positive means improvement** on the scale's own direction.
Functions return ``None`` when a figure is undefined (too few cases, no spread in intake scores)
rather than a misleading number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from fit_service.domain.change import ChangeCriteria, FloatArray, clinical_mask
from fit_service.domain.instruments import Direction

#: Two-sided 95% normal quantile, used for every CI in this module.
Z_95 = 1.959963984540054

#: Student t 0.975 quantiles for df 1..30 (standard tables, e.g. Abramowitz & Stegun 1964,
#: table 26.10). Above 30 degrees of freedom the Cornish-Fisher expansion in
#: :func:`t_quantile_975` is accurate to three decimals.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (95% CIs of means; the
    degrees-of-freedom correction of clustered rates).

    Stdlib has no t distribution; a table up to 30 and the Cornish-Fisher expansion beyond
    (Abramowitz & Stegun 1964, 26.7.5) keep the domain free of scipy.
    """
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if df <= len(_T_975):
        return _T_975[df - 1]
    g1, g2, g3 = _CORNISH_FISHER_975
    return Z_95 + g1 / (4 * df) + g2 / (96 * df**2) + g3 / (384 * df**3)


#: The expansion's polynomials in z = Z_95, evaluated once (a report asks for thousands of
#: quantiles; the same expressions as written in A&S 26.7.5, so the same floats).
_CORNISH_FISHER_975 = (
    Z_95**3 + Z_95,
    5 * Z_95**5 + 16 * Z_95**3 + 3 * Z_95,
    3 * Z_95**7 + 19 * Z_95**5 + 17 * Z_95**3 - 15 * Z_95,
)


#: Interpretation bands for pre-post and severity-adjusted effect sizes (domain.md §4, as used in
#: PCOMS benchmarking): >= 0.8 large, < 0.3 small.
LARGE_EFFECT = 0.8
SMALL_EFFECT = 0.3


class EffectLabel(StrEnum):
    """Reading of an effect size (domain.md §4).

    ``NEGATIVE`` (clients on average worse) is our addition: domain.md only names "small" below
    0.3, and calling a deterioration "small" would hide it.
    """

    NEGATIVE = "negative"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


def interpret_effect_size(value: float) -> EffectLabel:
    """>= 0.8 large, < 0.3 small, between medium; below zero negative (domain.md §4)."""
    if value < 0:
        return EffectLabel.NEGATIVE
    if value < SMALL_EFFECT:
        return EffectLabel.SMALL
    if value < LARGE_EFFECT:
        return EffectLabel.MEDIUM
    return EffectLabel.LARGE


@dataclass(frozen=True, slots=True)
class EffectSize:
    """An effect size with its sample size and 95% CI (``None`` when it cannot be estimated)."""

    value: float
    n: int
    ci_low: float | None
    ci_high: float | None
    method: str

    @property
    def label(self) -> EffectLabel:
        return interpret_effect_size(self.value)


@dataclass(frozen=True, slots=True)
class Proportion:
    """``k`` of ``n`` with a Wilson 95% interval; ``value`` and the bounds are in 0..1."""

    k: int
    n: int
    value: float
    ci_low: float
    ci_high: float

    @property
    def percent(self) -> float:
        return 100.0 * self.value


def proportion(k: int, n: int, effective_n: float | None = None) -> Proportion | None:
    """``k/n`` with the Wilson (1927) score interval; ``None`` when ``n`` is 0.

    Wilson rather than the Wald interval because clinic subgroups are small and rates near 0
    or 1 (deterioration about 5-10%, domain.md §4) are common; Newcombe (1998) found the Wald
    interval badly under-covers there while Wilson's stays close to nominal and within [0, 1].

    ``effective_n`` (``0 < effective_n <= n``): the interval of a rate whose units are not
    independent, e.g. sessions nested in clients, is the Wilson interval of the same ``p`` with
    ``n`` replaced by the effective sample size (Korn & Graubard 1998, with the Wilson rather
    than the Clopper-Pearson form; :meth:`ClusterSpread.effective_n` computes it).
    """
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return None
    size = float(n) if effective_n is None else effective_n
    if not 0.0 < size <= n:
        raise ValueError(f"need 0 < effective_n <= n, got {effective_n} for n={n}")
    p = k / n
    z2 = Z_95 * Z_95
    denominator = 1.0 + z2 / size
    centre = (p + z2 / (2 * size)) / denominator
    half = Z_95 * math.sqrt(p * (1 - p) / size + z2 / (4 * size * size)) / denominator
    # At k = 0 (k = n) the lower (upper) bound is exactly 0 (1); set it so rounding cannot move it.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return Proportion(k=k, n=n, value=p, ci_low=low, ci_high=high)


@dataclass(frozen=True, slots=True)
class ClusterSpread:
    """How a rate's units sit in clusters: what its interval needs beyond ``k`` and ``n``.

    Why: a rate over sessions (no-shows, SRS below the concern line, completeness) counts each
    of a client's sessions, and one client's sessions are alike - a client who misses one
    appointment tends to miss more. Treating them as independent makes the interval too narrow
    (Kish 1965: by the design effect). With ``y_i`` the numerator and ``m_i`` the denominator
    of cluster ``i`` (a client's sessions), the rate is the ratio estimator ``p = Σy/Σm``
    and its variance, linearised (Cochran 1977, ch. 6; the with-replacement cluster variance
    survey software uses), is ``C/(C - 1) · Σ(y_i - p·m_i)² / n²`` over the ``C`` clusters
    with ``m_i > 0``. Kept as integer sums (``Σy²``, ``Σy·m``, ``Σm²``) so disjoint sets of
    clusters combine by adding and the result does not depend on their order.
    """

    clusters: int
    sum_yy: int
    sum_ym: int
    sum_mm: int

    def __post_init__(self) -> None:
        if min(self.clusters, self.sum_yy, self.sum_ym, self.sum_mm) < 0:
            raise ValueError("cluster sums cannot be negative")

    @classmethod
    def of(cls, numerators: npt.ArrayLike, denominators: npt.ArrayLike) -> ClusterSpread:
        """The spread of per-cluster counts (two integer arrays of one length)."""
        y = np.asarray(numerators, dtype=np.int64)
        m = np.asarray(denominators, dtype=np.int64)
        if y.shape != m.shape or y.ndim != 1:
            raise ValueError("numerators and denominators must be 1-d arrays of one length")
        (spread,) = cls.of_columns(y[:, None], m[:, None])
        return spread

    @classmethod
    def of_columns(cls, numerators: np.ndarray, denominators: np.ndarray) -> list[ClusterSpread]:
        """The spreads of several rates over the same clusters at once: column ``j`` of the two
        integer matrices (one row per cluster) holds rate ``j``'s counts."""
        y = np.asarray(numerators, dtype=np.int64)
        m = np.asarray(denominators, dtype=np.int64)
        if y.shape != m.shape or y.ndim != 2:
            raise ValueError("numerators and denominators must be matrices of one shape")
        rates = y.shape[1]
        picks, none = np.eye(rates, dtype=np.int64), np.zeros((rates, rates), np.int64)
        return cls.of_counts(
            np.concatenate((y, m), axis=1),
            np.concatenate((picks, none)),
            np.concatenate((none, picks)),
        )

    @classmethod
    def of_counts(
        cls, counts: np.ndarray, numerators: np.ndarray, denominators: np.ndarray
    ) -> list[ClusterSpread]:
        """The spreads of several rates over the same clusters whose numerators and
        denominators are sums of count columns: ``counts`` has one row per cluster; column
        ``j`` of the 0/1 matrices ``numerators`` and ``denominators`` (one row per column of
        ``counts``) picks the columns that add up to rate ``j``'s numerator and denominator
        (e.g. no-shows over attended + no-shows + cancellations).

        With ``C`` the counts and ``W = [A | B]`` the two pickers side by side, every sum of
        products the spreads need is an entry of ``Wᵀ(CᵀC)W``: ``Σy² = aᵀCᵀCa``,
        ``Σy·m = aᵀCᵀCb``, ``Σm² = bᵀCᵀCb``. Integers, so exact, whatever the order; one pass
        over the rows (``CᵀC``) serves every rate. (A report asks for five rates over a
        window's clients in each of its ~400 group-windows; stacking each rate's columns and
        taking three products per rate cost several times more.)
        """
        c = np.asarray(counts, dtype=np.int64)
        a, b = _pickers(c, numerators, denominators)
        y, m = c @ a, c @ b
        if (y < 0).any() or (y > m).any():
            raise ValueError("each cluster needs 0 <= numerator <= denominator")
        return cls.of_moments(c.T @ c, np.count_nonzero(m, axis=0), a, b)

    @classmethod
    def of_moments(
        cls,
        cross: np.ndarray,
        clusters: np.ndarray,
        numerators: np.ndarray,
        denominators: np.ndarray,
    ) -> list[ClusterSpread]:
        """:meth:`of_counts` from what it needs of the count matrix ``C`` (so groups of
        clusters can be summed in one pass and their spreads made here): ``cross`` = ``CᵀC``
        and ``clusters`` = per rate, how many clusters have a denominator above 0."""
        a = np.asarray(numerators, dtype=np.int64)
        b = np.asarray(denominators, dtype=np.int64)
        w = np.concatenate((a, b), axis=1)
        # .tolist(): Python ints from here, as the products in effective_n can pass 2**63.
        products = (w.T @ np.asarray(cross, dtype=np.int64) @ w).tolist()
        sizes = np.asarray(clusters).tolist()
        rates = a.shape[1]
        return [
            cls(
                sizes[j],
                products[j][j],
                products[j][rates + j],
                products[rates + j][rates + j],
            )
            for j in range(rates)
        ]

    def __add__(self, other: ClusterSpread) -> ClusterSpread:
        return ClusterSpread(
            self.clusters + other.clusters,
            self.sum_yy + other.sum_yy,
            self.sum_ym + other.sum_ym,
            self.sum_mm + other.sum_mm,
        )

    def effective_n(self, k: int, n: int) -> float:
        """The effective sample size of ``k`` of ``n`` in these clusters, ``0 < … <= n``: the n
        the interval is computed on (Korn & Graubard 1998; NCHS presentation standards for
        proportions, Parker et al. 2017, which compute it the same way).

        1. ``p(1 - p) / Var(p)`` (Kish 1965's ``n / deff``), at most ``n``: a design effect
           below 1 is sampling noise here, so the interval is never narrower than treating
           sessions as independent. When ``p`` is 0 or 1, or every client has the same rate,
           the estimated variance is 0 and the design effect is taken as 1 (``n``), as NCHS
           does: one rule for every ``k`` (a floor for ``p`` in {0, 1} alone made one event
           in a hundred sessions *narrow* the interval severalfold). No lower bound: when the
           counted sessions sit with a few clients who have many sessions, the variance can
           exceed what uniform clusters of unrelated sizes would give, and the interval must
           say so.
        2. Times ``(t(n - 1) / t(C - 1))²``, the 97.5% t quantiles (Korn & Graubard's degrees-of-
           freedom correction): the variance is estimated from ``C`` clients, not ``n``
           sessions, and with a handful of clients that estimate is itself unsure. Without it
           the interval of a clinician's month from three clients covered 82-89% instead of 95%
           in simulation (eight sessions each, intra-client correlation 0.3); with it, 95% or
           more.

        With one client there is no between-client variance to estimate and no degrees of
        freedom: its sessions count as one observation (``n²/Σm²`` = 1), corrected as two
        clients would be (one degree of freedom), so one client is never surer than two.
        Exact rational arithmetic until the last division.
        """
        if n <= 0:
            raise ValueError("an effective n needs n > 0")
        if not 0 <= k <= n or self.sum_mm < n:
            raise ValueError(f"{k}/{n} does not fit these clusters")
        c = self.clusters
        if c < 2:
            size = n * n / self.sum_mm
        else:
            # n²·Σ(y_i - p·m_i)², an integer: n²Σy² - 2knΣym + k²Σm² (>= 0: a sum of squares)
            residual = n * n * self.sum_yy - 2 * k * n * self.sum_ym + k * k * self.sum_mm
            if residual <= 0:  # k in (0, n), or every cluster at the same rate
                size = float(n)
            else:
                # p(1-p) / (C/(C-1) · residual/n⁴) = k(n-k)·n²·(C-1) / (C·residual)
                size = min(float(n), k * (n - k) * n * n * (c - 1) / (c * residual))
        if n == 1:
            return size  # one session: nothing to correct (and t has no 0 degrees of freedom)
        return size * (t_quantile_975(n - 1) / t_quantile_975(max(c - 1, 1))) ** 2


def _pickers(
    counts: np.ndarray, numerators: npt.ArrayLike, denominators: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`ClusterSpread.of_counts`' pickers as integer matrices, checked against ``counts``."""
    a = np.asarray(numerators, dtype=np.int64)
    b = np.asarray(denominators, dtype=np.int64)
    if counts.ndim != 2 or a.ndim != 2 or a.shape != b.shape or a.shape[0] != counts.shape[1]:
        raise ValueError("need one picker row per count column, one column per rate")
    return a, b


# --------------------------------------------------------------------------- pre-post d


def standardized_mean_change_variance(d: float, r: float, n: int) -> float:
    """Large-sample variance of a pre-post d standardised by the *intake* SD.

    Becker (1988), "Synthesizing standardized mean-change measures" (Br J Math Stat Psychol 41):
    ``Var(d) = 2(1 - r)/n + d²/(2n)``, where ``r`` is the pre-post correlation - the large-sample
    variance metafor uses for ``escalc(measure = "SMCR")``. Morris & DeShon (2002) explain why
    the intake (raw-score) SD is the right standardiser for single-group pre-post designs. The
    first term is the sampling error of the mean change, which shrinks as pre and post scores
    correlate; the second that of the intake SD.
    """
    return 2.0 * (1.0 - r) / n + d * d / (2.0 * n)


def _complete_pairs(first: npt.ArrayLike, last: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x1 = np.asarray(first, dtype=np.float64)
    x2 = np.asarray(last, dtype=np.float64)
    if x1.shape != x2.shape or x1.ndim != 1:
        raise ValueError("first and last must be one-dimensional arrays of the same length")
    keep = ~(np.isnan(x1) | np.isnan(x2))
    return x1[keep], x2[keep]


#: Relative size below which a computed SD is floating-point noise, not spread: ``np.std`` of
#: identical non-integers (e.g. three intakes of 30.1) is ~4e-15, not 0, and dividing by it
#: gave a d of 7e14. Real spread on a 0.1-step scale is orders of magnitude larger (one score
#: 0.1 off among 10,000 identical ones: SD 1e-3).
_NOISE = 1e-9


def _no_spread(sd: float, scale: float) -> bool:
    """Is ``sd`` zero up to floating-point noise, for values of magnitude ``scale``
    (:func:`_scale`)?"""
    return sd <= _NOISE * scale


def _scale(values: FloatArray) -> float:
    """The magnitude :func:`_no_spread` measures an SD against: the largest absolute value,
    at least 1."""
    return max(1.0, float(np.maximum.reduce(np.abs(values)))) if values.size else 1.0


class _Moments(NamedTuple):
    """A non-empty sample's mean, its deviations from the mean and their sum of squares,
    computed as ``np.mean`` and ``np.var``/``np.std`` compute them: the same ufuncs
    (``np.add.reduce``'s pairwise summation, elementwise subtract and multiply) on the same
    operands, in the same order, so every figure built on them is the same float, to the
    last bit, as with those functions (tests pin this).

    Why not ``np.std``: its Python-level wrappers cost ~10 us a call, far more than the
    arithmetic on a group's few dozen scores; a report computes several SDs and means for
    each of its ~400 group-windows, and one sample's mean and deviations serve them all.
    """

    n: int
    mean: float
    deviations: FloatArray
    sum_of_squares: float

    @classmethod
    def of(cls, values: FloatArray) -> _Moments:
        mean = _mean(values)
        deviations = values - mean
        return cls(values.size, mean, deviations, float(np.add.reduce(deviations * deviations)))

    def sd(self, ddof: int = 0) -> float:
        """``np.std(values, ddof=ddof)`` (n > ddof)."""
        return math.sqrt(self.sum_of_squares / (self.n - ddof))


def _mean(values: FloatArray) -> float:
    """``np.mean`` of a non-empty float array: the pairwise sum over the count."""
    return float(np.add.reduce(values)) / values.size


def _pearson_r(m1: _Moments, x1_scale: float, m2: _Moments, x2_scale: float) -> float | None:
    s1, s2 = m1.sd(), m2.sd()
    if _no_spread(s1, x1_scale) or _no_spread(s2, x2_scale):
        return None
    return _mean(m1.deviations * m2.deviations) / (s1 * s2)


def _d_with_ci(
    x1: FloatArray, x2: FloatArray, direction: Direction, method: str
) -> EffectSize | None:
    n = x1.size
    if n < 2:
        return None
    intake = _Moments.of(x1)
    intake_scale = _scale(x1)  # for both tests of spread, of the sample and population SD
    sd_intake = intake.sd(ddof=1)  # sample SD (n - 1), as in domain.md §4
    if _no_spread(sd_intake, intake_scale):
        return None
    d = direction.sign * _mean(x2 - x1) / sd_intake
    r = _pearson_r(intake, intake_scale, _Moments.of(x2), _scale(x2))
    if r is None:  # no spread at the end: the pre-post correlation, and so the CI, is undefined
        return EffectSize(value=d, n=n, ci_low=None, ci_high=None, method=method)
    half = Z_95 * math.sqrt(standardized_mean_change_variance(d, r, n))
    return EffectSize(value=d, n=n, ci_low=d - half, ci_high=d + half, method=method)


def pre_post_d(
    first: npt.ArrayLike, last: npt.ArrayLike, direction: Direction
) -> EffectSize | None:
    """Pre-post d = mean change / sample SD of intake scores (domain.md §4), signed so that
    positive is improvement, with a Becker (1988) 95% CI.

    Pairs with a missing (``NaN``) score are left out; ``None`` for fewer than two pairs or
    identical intake scores. d is *not* small-sample corrected (Hedges' g), to stay comparable
    with the PCOMS benchmarks that use the plain ratio.
    """
    x1, x2 = _complete_pairs(first, last)
    return _d_with_ci(x1, x2, direction, "pre-post d (intake SD); CI Becker 1988")


# --------------------------------------------------------------------------- severity-adjusted


@dataclass(frozen=True, slots=True)
class SeverityReference:
    """The reference sample of a severity-adjusted effect size (Seidel, Miller & Chow 2014).

    ``last ≈ intercept + slope_intake·first (+ slope_covariate·covariate)`` is the expected end
    score given intake severity; ``mean_change`` (raw, last - first) and ``intake_sd`` (sample SD)
    describe the reference's clinical-range episodes. A benchmark publisher supplies these; or
    :meth:`fit` estimates them from a sample (e.g. the whole clinic, to benchmark clinicians).
    """

    intercept: float
    slope_intake: float
    mean_change: float
    intake_sd: float
    n: int
    slope_covariate: float | None = None
    source: str = ""

    def expected_last(self, first: FloatArray, covariate: FloatArray | None) -> FloatArray:
        expected = self.intercept + self.slope_intake * first
        if self.slope_covariate is not None:
            if covariate is None:
                raise ValueError("this reference was fitted with a covariate; pass it")
            expected = expected + self.slope_covariate * covariate
        return expected

    @classmethod
    def fit(
        cls,
        first: npt.ArrayLike,
        last: npt.ArrayLike,
        criteria: ChangeCriteria,
        covariate: npt.ArrayLike | None = None,
        source: str = "own sample",
    ) -> SeverityReference | None:
        """Fit the reference on the clinical-range intakes of a sample; ``None`` if too few.

        Needs more cases than coefficients plus one (so the residual SD exists) and intake
        scores that vary.
        """
        x1, x2, cov = _clinical_sample(first, last, criteria, covariate)
        columns = [np.ones_like(x1), x1] + ([cov] if cov is not None else [])
        design = np.column_stack(columns)
        if x1.size <= design.shape[1] or _no_spread(float(np.std(x1)), _scale(x1)):
            return None
        coef = np.linalg.lstsq(design, x2, rcond=None)[0]
        return cls(
            intercept=float(coef[0]),
            slope_intake=float(coef[1]),
            slope_covariate=float(coef[2]) if cov is not None else None,
            mean_change=float(np.mean(x2 - x1)),
            intake_sd=float(np.std(x1, ddof=1)),
            n=int(x1.size),
            source=source,
        )


def _clinical_sample(
    first: npt.ArrayLike,
    last: npt.ArrayLike,
    criteria: ChangeCriteria,
    covariate: npt.ArrayLike | None,
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """Complete pairs (and covariate) whose intake is in the clinical range."""
    x1 = np.asarray(first, dtype=np.float64)
    x2 = np.asarray(last, dtype=np.float64)
    cov = None if covariate is None else np.asarray(covariate, dtype=np.float64)
    if x1.shape != x2.shape or x1.ndim != 1 or (cov is not None and cov.shape != x1.shape):
        raise ValueError("first, last and covariate must be one-dimensional, of equal length")
    keep = ~(np.isnan(x1) | np.isnan(x2))
    if cov is not None:
        keep &= ~np.isnan(cov)
    keep &= clinical_mask(x1, criteria)
    return x1[keep], x2[keep], None if cov is None else cov[keep]


def severity_adjusted_es(
    first: npt.ArrayLike,
    last: npt.ArrayLike,
    criteria: ChangeCriteria,
    *,
    covariate: npt.ArrayLike | None = None,
    reference: SeverityReference | None = None,
) -> EffectSize | None:
    """Severity-adjusted effect size, Seidel, Miller & Chow (2014) as in domain.md §4.

    Only clinical-range intakes count. Each episode's residual gain is its last score minus the
    reference model's expected last score given its intake (and covariate, e.g. session of first
    assessment); ``SA-ES = (mean residual + reference mean change) / reference intake SD``,
    signed so that positive is improvement. A clinic doing better than its intake severity
    predicts has a positive mean residual and so a larger SA-ES than the reference's own d.

    Without ``reference`` the sample is its own reference: OLS residuals then average zero and
    SA-ES equals the plain pre-post d of the clinical-range sample, with the same Becker CI.
    With an external reference its figures are taken as fixed (they come from a far larger
    sample), so ``SE = SD(residuals)/(sqrt(n)·reference SD)`` and the 95% CI is normal-theory.
    """
    x1, x2, cov = _clinical_sample(first, last, criteria, covariate)
    if reference is None:
        return _d_with_ci(x1, x2, criteria.direction, "severity-adjusted ES (own reference)")
    n = x1.size
    if n == 0:
        return None
    residual = _Moments.of(x2 - reference.expected_last(x1, cov))
    value = criteria.direction.sign * (residual.mean + reference.mean_change)
    value /= reference.intake_sd
    method = f"severity-adjusted ES (reference: {reference.source or 'external'}, n={reference.n})"
    if n < 2:
        return EffectSize(value=value, n=n, ci_low=None, ci_high=None, method=method)
    se = residual.sd(ddof=1) / (math.sqrt(n) * reference.intake_sd)
    return EffectSize(
        value=value, n=n, ci_low=value - Z_95 * se, ci_high=value + Z_95 * se, method=method
    )
