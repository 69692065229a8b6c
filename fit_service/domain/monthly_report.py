"""The monthly benchmark report as one plain, frozen object (issue 5).

The service layer computes a :class:`MonthlyReport` once per clinic and month; the PDF, JSON and
CSV renderers in ``fit_service.adapters`` only *format* it. Keeping every figure, every
"too few" decision and every method note here is what makes the three outputs agree: a renderer
cannot round, suppress or define anything differently because it never computes anything.

Shape::

    MonthlyReport
      settings: ReportSettings            thresholds and the dropout definition, printed verbatim
      overall / clinicians / age_bands: GroupReport
        month, trailing_12: GroupFigures  activity, sessions, outcomes, dropout, alliance, ...
        trend: TrendPoint x 12            recovery and mean sessions per month
      benchmarks: Benchmark               literature reference numbers (domain.md §4)

Every percentage is a :class:`Proportion` (numerator and denominator, Wilson 95% CI); every
mean, median or effect size is an :class:`Estimate` (value, n, optional CI). Both know how to
say "too few (n=4)" when n is below the clinic's ``min_n`` setting, so a small cell can never be
printed as a number by accident.

Pure: standard library only (the import-linter contract in ``pyproject.toml`` holds this).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from fit_service.domain.errors import NotFound
from fit_service.domain.instruments import CORS, ORS, AgeBand

#: Two-sided 95% normal quantile, 1.959963984540054 (used by the Wilson interval and the
#: effect-size intervals below).
Z_95 = statistics.NormalDist().inv_cdf(0.975)

#: Student t 0.975 quantiles for df 1..30 (standard tables, e.g. Abramowitz & Stegun 1964,
#: table 26.10). Above 30 degrees of freedom the Cornish-Fisher expansion in
#: :func:`t_quantile_975` is accurate to three decimals.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip

#: Default smallest n printed as a number (issue 5: "a cell with n below a setting (default 10)
#: says 'too few'"). Small cells are both statistically meaningless and re-identifying.
DEFAULT_MIN_N = 10

#: Range separator in printed figures ("95% CI 50.5\u201377.4"); an escape because the en dash
#: looks like a hyphen in source code.
DASH = "\u2013"

#: Histogram bins of sessions per closed episode, as (label, lowest, highest or None).
#: Single sessions up to 5 matter because routine care averages fewer than 5 (Hansen, Lambert
#: & Forman 2002, domain.md §4); 13-18 sessions is where half of clients improve, inside 11-20.
SESSION_BINS: tuple[tuple[str, int, int | None], ...] = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3", 3, 3),
    ("4", 4, 4),
    ("5", 5, 5),
    (f"6{DASH}10", 6, 10),
    (f"11{DASH}20", 11, 20),
    ("21+", 21, None),
)

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Small statistics (pure functions; the aggregation code calls these, tests pin them down)
# --------------------------------------------------------------------------------------------


def wilson_interval(numerator: int, denominator: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson (1927) score interval for a binomial proportion.

    Chosen over the textbook Wald interval because clinic cells are small and proportions sit
    near 0 or 1 (deterioration, dropout), where Wald intervals collapse or leave [0, 1].
    """
    if denominator <= 0:
        raise ValueError("a Wilson interval needs a positive denominator")
    if not 0 <= numerator <= denominator:
        raise ValueError(f"numerator {numerator} outside 0..{denominator}")
    n = denominator
    p = numerator / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = (z / (1 + z2 / n)) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Float rounding can leave the bound a hair beside p (1e-19 above 0 at p = 0): the
    # interval must contain the observed share and stay within [0, 1].
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (for 95% CIs of means).

    Stdlib has no t distribution; a table up to 30 and the Cornish-Fisher expansion beyond
    (Abramowitz & Stegun 1964, 26.7.5) keep the domain free of scipy.
    """
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = Z_95
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def mean_estimate(values: Sequence[float]) -> Estimate:
    """Mean with a t-based 95% CI; no CI below two values (no spread to estimate)."""
    n = len(values)
    if n == 0:
        return Estimate.none()
    mean = statistics.fmean(values)
    if n < 2:
        return Estimate(value=mean, n=n)
    half = t_quantile_975(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Estimate(value=mean, n=n, ci_low=mean - half, ci_high=mean + half)


def median_estimate(values: Sequence[float]) -> Estimate:
    """Median with its n and no interval (a median CI needs order statistics we don't print)."""
    if not values:
        return Estimate.none()
    return Estimate(value=float(statistics.median(values)), n=len(values))


def session_histogram(session_counts: Iterable[int]) -> tuple[int, ...]:
    """Count closed episodes into :data:`SESSION_BINS`.

    An episode closed with no attended session is not a treatment episode and raises, so the
    aggregation has to decide about it explicitly instead of a silent "0" bin.
    """
    counts = [0] * len(SESSION_BINS)
    for sessions in session_counts:
        if sessions < 1:
            raise ValueError("sessions per closed episode must be at least 1")
        for index, (_label, low, high) in enumerate(SESSION_BINS):
            if sessions >= low and (high is None or sessions <= high):
                counts[index] += 1
                break
    return tuple(counts)


def pre_post_effect_size(intake: Sequence[float], last: Sequence[float]) -> Estimate:
    """Pre-post d = mean change / SD of intake scores (domain.md §4), with an approximate CI.

    The interval uses the large-sample variance of the standardised mean change,
    ``var(d) = 2(1 - r)/n + d^2/(2n)`` with r the intake-last correlation (Becker 1988;
    Morris & DeShon 2002). Needs three pairs and spread in both scores.
    """
    if len(intake) != len(last):
        raise ValueError("intake and last scores must pair up")
    n = len(intake)
    if n < 3:
        return Estimate(value=None, n=n)
    sd_intake = statistics.stdev(intake)
    if sd_intake == 0 or statistics.stdev(last) == 0:
        return Estimate(value=None, n=n)
    d = statistics.fmean(b - a for a, b in zip(intake, last, strict=True)) / sd_intake
    r = statistics.correlation(intake, last)
    se = math.sqrt(max(0.0, 2 * (1 - r) / n + d * d / (2 * n)))
    return Estimate(value=d, n=n, ci_low=d - Z_95 * se, ci_high=d + Z_95 * se)


@dataclass(frozen=True, slots=True)
class SeverityReference:
    """The reference sample a severity-adjusted effect size is measured against.

    Seidel, Miller & Chow (2014): regress the last score on the intake score in a reference
    sample of clinical-range intakes; a group's residual gain is added to the reference mean
    change and divided by the reference intake SD. ``source`` says which sample that was (the
    clinic's own trailing 12 months by default), because SA-ES means nothing without it.
    """

    intercept: float
    slope: float
    mean_change: float
    intake_sd: float
    n: int
    source: str


def fit_severity_reference(
    intake: Sequence[float], last: Sequence[float], source: str
) -> SeverityReference | None:
    """Fit the reference model ``last = a + b * intake``; ``None`` when it can't be fitted."""
    if len(intake) != len(last):
        raise ValueError("intake and last scores must pair up")
    if len(intake) < 3 or statistics.stdev(intake) == 0:
        return None
    slope, intercept = statistics.linear_regression(intake, last)
    return SeverityReference(
        intercept=intercept,
        slope=slope,
        mean_change=statistics.fmean(b - a for a, b in zip(intake, last, strict=True)),
        intake_sd=statistics.stdev(intake),
        n=len(intake),
        source=source,
    )


def severity_adjusted_effect_size(
    intake: Sequence[float], last: Sequence[float], reference: SeverityReference | None
) -> Estimate:
    """SA-ES of a group against ``reference`` (Seidel, Miller & Chow 2014; domain.md §4).

    Pass clinical-range intakes only. The CI treats the reference as fixed:
    ``t * SD(residuals) / sqrt(n) / reference intake SD``. Measured against the clinic's own
    data, the clinic's SA-ES equals its pre-post d by construction; it is informative for
    clinicians and age bands, or against an external reference.
    """
    if len(intake) != len(last):
        raise ValueError("intake and last scores must pair up")
    n = len(intake)
    if reference is None or n == 0:
        return Estimate(value=None, n=n)
    residuals = [
        b - (reference.intercept + reference.slope * a) for a, b in zip(intake, last, strict=True)
    ]
    value = (statistics.fmean(residuals) + reference.mean_change) / reference.intake_sd
    if n < 2:
        return Estimate(value=value, n=n)
    half = t_quantile_975(n - 1) * statistics.stdev(residuals) / math.sqrt(n) / reference.intake_sd
    return Estimate(value=value, n=n, ci_low=value - half, ci_high=value + half)


class OutcomeCategory(StrEnum):
    """Jacobson & Truax (1991) categories of a closed episode, first vs last ORS (domain.md §4)."""

    RECOVERED = "recovered"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"
    DETERIORATED = "deteriorated"
    HARMED = "harmed"


def classify_outcome(
    first: float,
    last: float,
    *,
    cutoff: float,
    reliable_change: float,
    cutoff_is_clinical: bool = False,
) -> tuple[OutcomeCategory, bool]:
    """Categorise one episode (higher-is-better ORS/CORS); returns (category, started clinical).

    Reliable change is the fixed PCOMS threshold on the raw change (domain.md §3-4). A change of
    exactly the threshold counts as reliable, as the manuals word it ("5 points or more").
    """

    def clinical(score: float) -> bool:
        return score < cutoff or (score == cutoff and cutoff_is_clinical)

    change = last - first
    started_clinical = clinical(first)
    if change >= reliable_change:
        recovered = started_clinical and not clinical(last)
        return (OutcomeCategory.RECOVERED if recovered else OutcomeCategory.IMPROVED), (
            started_clinical
        )
    if change <= -reliable_change:
        harmed = not started_clinical and clinical(last)
        return (OutcomeCategory.HARMED if harmed else OutcomeCategory.DETERIORATED), (
            started_clinical
        )
    return OutcomeCategory.UNCHANGED, started_clinical


def month_label(period: str) -> str:
    """``"2024-05"`` -> ``"May 2024"`` without the locale (strftime's %B is locale-dependent)."""
    year, month = _parse_period(period)
    return f"{_MONTH_NAMES[month - 1]} {year}"


def trailing_months(period: str, count: int = 12) -> tuple[str, ...]:
    """The ``count`` months ending with ``period``, oldest first (the trailing-12 window)."""
    year, month = _parse_period(period)
    index = year * 12 + month - 1
    return tuple(f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count + 1, index + 1))


def _parse_period(period: str) -> tuple[int, int]:
    match = _PERIOD.match(period)
    if match is None:
        raise ValueError(f"period must look like YYYY-MM, got {period!r}")
    return int(match.group(1)), int(match.group(2))


# --------------------------------------------------------------------------------------------
# Values: every printed figure is one of these three
# --------------------------------------------------------------------------------------------


def _fmt(value: float, decimals: int) -> str:
    text = f"{value:,.{decimals}f}"
    # "-0.0" reads as a direction that isn't there.
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text


def _too_few(n: int) -> str:
    return "no data (n=0)" if n == 0 else f"too few (n={n})"


@dataclass(frozen=True, slots=True)
class Count:
    """A plain count (episodes, sessions, alerts). Counts are never suppressed: they describe
    the clinic's activity, not a rate that small numbers would make misleading."""

    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("a count cannot be negative")

    def display(self, min_n: int = DEFAULT_MIN_N, decimals: int = 0) -> str:
        return f"{self.value:,}"


@dataclass(frozen=True, slots=True)
class Proportion:
    """A share with its n: ``numerator`` of ``denominator``, Wilson 95% CI (Wilson 1927)."""

    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        if not 0 <= self.numerator <= self.denominator:
            raise ValueError(f"proportion {self.numerator}/{self.denominator} is impossible")

    @property
    def n(self) -> int:
        return self.denominator

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return wilson_interval(self.numerator, self.denominator) if self.denominator else None

    @property
    def ci_low(self) -> float | None:
        return self.ci[0] if self.denominator else None  # type: ignore[index]

    @property
    def ci_high(self) -> float | None:
        return self.ci[1] if self.denominator else None  # type: ignore[index]

    def is_too_few(self, min_n: int) -> bool:
        return self.denominator < max(min_n, 1)

    def display_value(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        """The number alone ("65.0%"), or "too few (n=4)"."""
        if self.is_too_few(min_n):
            return _too_few(self.denominator)
        return f"{100 * self.numerator / self.denominator:.{decimals}f}%"

    def display_detail(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        """What qualifies the number ("n=40, 95% CI 50.5-77.4"); empty when suppressed."""
        if self.is_too_few(min_n):
            return ""
        low, high = wilson_interval(self.numerator, self.denominator)
        low_text, high_text = f"{100 * low:.{decimals}f}", f"{100 * high:.{decimals}f}"
        return f"n={self.denominator:,}, 95% CI {low_text}{DASH}{high_text}"

    def display(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        """The one printed form: "65.0% (n=40, 95% CI 49.5-77.9)" or "too few (n=4)"."""
        return _join(self.display_value(min_n, decimals), self.display_detail(min_n, decimals))


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean, median or effect size with its n and, when there is one, a 95% CI.

    ``value`` is ``None`` when the figure can't be computed (no data, no spread); the n still
    says how many observations there were.
    """

    value: float | None
    n: int
    ci_low: float | None = None
    ci_high: float | None = None

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n cannot be negative")
        if (self.ci_low is None) != (self.ci_high is None):
            raise ValueError("a confidence interval needs both ends")
        if self.value is None and self.ci_low is not None:
            raise ValueError("an interval without a value")

    @classmethod
    def none(cls) -> Estimate:
        """No observations at all."""
        return cls(value=None, n=0)

    def is_too_few(self, min_n: int) -> bool:
        return self.n < max(min_n, 1)

    def display_value(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        if self.n < max(min_n, 1):
            return _too_few(self.n)
        if self.value is None:
            return f"not computable (n={self.n})"
        return _fmt(self.value, decimals)

    def display_detail(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        if self.is_too_few(min_n) or self.value is None:
            return ""
        if self.ci_low is None or self.ci_high is None:
            return f"n={self.n:,}"
        low, high = _fmt(self.ci_low, decimals), _fmt(self.ci_high, decimals)
        # "-0.20-0.35" reads as a subtraction; say "to" whenever a bound is negative.
        sep = " to " if low.startswith("-") or high.startswith("-") else DASH
        return f"n={self.n:,}, 95% CI {low}{sep}{high}"

    def display(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        return _join(self.display_value(min_n, decimals), self.display_detail(min_n, decimals))


def _join(value: str, detail: str) -> str:
    return f"{value} ({detail})" if detail else value


Value = Count | Proportion | Estimate


# --------------------------------------------------------------------------------------------
# The parts of one group's figures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Activity:
    """Episodes and sessions in the window. Scheduled = attended + no-shows + cancellations."""

    episodes_active: int  # open at any time in the window
    episodes_opened: int
    episodes_closed: int
    sessions_attended: int  # "sessions delivered"
    no_shows: int
    cancellations: int  # cancelled by the client (late or not); clinician cancellations excluded

    def __post_init__(self) -> None:
        _non_negative(self)

    @property
    def sessions_scheduled(self) -> int:
        return self.sessions_attended + self.no_shows + self.cancellations

    @property
    def no_show_rate(self) -> Proportion:
        return Proportion(self.no_shows, self.sessions_scheduled)

    @property
    def cancellation_rate(self) -> Proportion:
        return Proportion(self.cancellations, self.sessions_scheduled)


@dataclass(frozen=True, slots=True)
class SessionStats:
    """Sessions per closed episode and days in treatment (ICCE report indices, domain.md §4).

    Over episodes closed in the window with at least one attended session. ``histogram`` counts
    episodes per :data:`SESSION_BINS` entry, in that order. Days in treatment run from the
    episode's opening to its last attended session.
    """

    per_episode_mean: Estimate
    per_episode_median: Estimate
    histogram: tuple[int, ...]
    days_mean: Estimate
    days_median: Estimate

    def __post_init__(self) -> None:
        if len(self.histogram) != len(SESSION_BINS):
            raise ValueError(f"histogram needs {len(SESSION_BINS)} bins")
        if any(count < 0 for count in self.histogram):
            raise ValueError("histogram counts cannot be negative")

    @classmethod
    def from_episodes(
        cls, sessions_per_episode: Sequence[int], days_in_treatment: Sequence[int]
    ) -> SessionStats:
        """Build the block from one number per closed episode (the aggregation's usual input)."""
        return cls(
            per_episode_mean=mean_estimate([float(s) for s in sessions_per_episode]),
            per_episode_median=median_estimate([float(s) for s in sessions_per_episode]),
            histogram=session_histogram(sessions_per_episode),
            days_mean=mean_estimate([float(d) for d in days_in_treatment]),
            days_median=median_estimate([float(d) for d in days_in_treatment]),
        )

    @classmethod
    def empty(cls) -> SessionStats:
        return cls.from_episodes([], [])

    @property
    def episodes(self) -> int:
        return sum(self.histogram)


@dataclass(frozen=True, slots=True)
class OutcomeCounts:
    """Closed episodes with at least two ORS/CORS totals, by :class:`OutcomeCategory`.

    The five category counts cover clinical-range intakes only. Episodes that started in the
    functional range can't "recover" and are counted apart (domain.md §4: "never silently in
    the denominator"); how many of them reliably worsened is kept because that is harm too.
    ``last_above_cutoff`` counts *all* these episodes (either intake group) whose last score is
    on the functional side of the cut-off.
    """

    recovered: int
    improved: int
    unchanged: int
    deteriorated: int
    harmed: int
    functional_at_intake: int
    functional_at_intake_reliably_worse: int
    last_above_cutoff: int

    def __post_init__(self) -> None:
        _non_negative(self)
        if self.functional_at_intake_reliably_worse > self.functional_at_intake:
            raise ValueError("more functional-intake episodes worsened than there are")
        if self.last_above_cutoff > self.episodes:
            raise ValueError("more episodes above the cut-off than episodes")

    @classmethod
    def empty(cls) -> OutcomeCounts:
        return cls(0, 0, 0, 0, 0, 0, 0, 0)

    @classmethod
    def from_classified(
        cls, episodes: Iterable[tuple[OutcomeCategory, bool, bool]]
    ) -> OutcomeCounts:
        """Count ``(category, started_clinical, last_above_cutoff)`` triples, one per episode."""
        tally = dict.fromkeys(OutcomeCategory, 0)
        functional = functional_worse = above = 0
        for category, started_clinical, last_above in episodes:
            above += last_above
            if started_clinical:
                tally[category] += 1
            else:
                functional += 1
                functional_worse += category in _WORSE
        return cls(
            recovered=tally[OutcomeCategory.RECOVERED],
            improved=tally[OutcomeCategory.IMPROVED],
            unchanged=tally[OutcomeCategory.UNCHANGED],
            deteriorated=tally[OutcomeCategory.DETERIORATED],
            harmed=tally[OutcomeCategory.HARMED],
            functional_at_intake=functional,
            functional_at_intake_reliably_worse=functional_worse,
            last_above_cutoff=above,
        )

    @property
    def clinical_at_intake(self) -> int:
        return self.recovered + self.improved + self.unchanged + self.deteriorated + self.harmed

    @property
    def episodes(self) -> int:
        return self.clinical_at_intake + self.functional_at_intake

    def share(self, category: OutcomeCategory) -> Proportion:
        """One category as a share of clinical-range intakes."""
        return Proportion(getattr(self, category.value), self.clinical_at_intake)

    @property
    def reliable_improvement(self) -> Proportion:
        """Recovered or improved, of clinical-range intakes (what "improve" means in §4)."""
        return Proportion(self.recovered + self.improved, self.clinical_at_intake)

    @property
    def reliable_deterioration(self) -> Proportion:
        """Deteriorated or harmed, of clinical-range intakes."""
        return Proportion(self.deteriorated + self.harmed, self.clinical_at_intake)


_WORSE = frozenset({OutcomeCategory.DETERIORATED, OutcomeCategory.HARMED})


@dataclass(frozen=True, slots=True)
class DropoutSummary:
    """Endings of episodes closed in the window (domain.md §4 and §6).

    ``dropouts`` follows the clinic's own definition (``ReportSettings.dropout_definition``),
    which need not equal "unilateral ending". Endings are coded planned/mutual, unilateral, or
    other (moved away, referred on: neither). Unilateral endings are split by whether the last
    ORS was above or below the cut-off; the rest had no ORS.
    """

    closed_episodes: int
    dropouts: int
    planned_endings: int
    unilateral_endings: int
    unilateral_last_ors_above_cutoff: int
    unilateral_last_ors_below_cutoff: int

    def __post_init__(self) -> None:
        _non_negative(self)
        if self.dropouts > self.closed_episodes:
            raise ValueError("more dropouts than closed episodes")
        if self.planned_endings + self.unilateral_endings > self.closed_episodes:
            raise ValueError("more coded endings than closed episodes")
        split = self.unilateral_last_ors_above_cutoff + self.unilateral_last_ors_below_cutoff
        if split > self.unilateral_endings:
            raise ValueError("unilateral split exceeds unilateral endings")

    @classmethod
    def empty(cls) -> DropoutSummary:
        return cls(0, 0, 0, 0, 0, 0)

    @property
    def other_endings(self) -> int:
        return self.closed_episodes - self.planned_endings - self.unilateral_endings

    @property
    def unilateral_without_ors(self) -> int:
        return (
            self.unilateral_endings
            - self.unilateral_last_ors_above_cutoff
            - self.unilateral_last_ors_below_cutoff
        )

    @property
    def rate(self) -> Proportion:
        return Proportion(self.dropouts, self.closed_episodes)


@dataclass(frozen=True, slots=True)
class AllianceSummary:
    """Alliance figures: SRS concern share and what happened to alerts (domain.md §3, §6).

    ``sessions_with_srs``: attended sessions with an SRS/CSRS total; ``srs_below_concern``: of
    those, total below the concern threshold (default 36). Alerts are counted by the day they
    were raised, acknowledged and resolved within the window. ``hours_to_acknowledge`` is the
    median over alerts acknowledged in the window. The follow-up share counts episodes first
    flagged at least ``follow_up_days`` before the window's end (so the month after is
    observable) and, of those, the ones still open or with a session that many days later.
    """

    sessions_with_srs: int
    srs_below_concern: int
    alerts_raised: int
    alerts_acknowledged: int
    alerts_resolved: int
    hours_to_acknowledge: Estimate
    flagged_episodes_followed_up: int
    flagged_episodes_in_care_after_follow_up: int

    def __post_init__(self) -> None:
        _non_negative(self)
        if self.srs_below_concern > self.sessions_with_srs:
            raise ValueError("more low SRS sessions than sessions with SRS")
        if self.flagged_episodes_in_care_after_follow_up > self.flagged_episodes_followed_up:
            raise ValueError("more flagged episodes in care than followed up")

    @classmethod
    def empty(cls) -> AllianceSummary:
        return cls(0, 0, 0, 0, 0, Estimate.none(), 0, 0)

    @property
    def srs_concern_rate(self) -> Proportion:
        return Proportion(self.srs_below_concern, self.sessions_with_srs)

    @property
    def in_care_after_follow_up(self) -> Proportion:
        return Proportion(
            self.flagged_episodes_in_care_after_follow_up, self.flagged_episodes_followed_up
        )


@dataclass(frozen=True, slots=True)
class CompletenessSummary:
    """Data completeness: attended sessions with an ORS total, with an SRS total.

    A "not completed" measure or items without a total count as missing (domain.md §2).
    """

    attended_sessions: int
    with_ors: int
    with_srs: int

    def __post_init__(self) -> None:
        _non_negative(self)
        if max(self.with_ors, self.with_srs) > self.attended_sessions:
            raise ValueError("more rated sessions than attended sessions")

    @classmethod
    def empty(cls) -> CompletenessSummary:
        return cls(0, 0, 0)

    @property
    def ors_rate(self) -> Proportion:
        return Proportion(self.with_ors, self.attended_sessions)

    @property
    def srs_rate(self) -> Proportion:
        return Proportion(self.with_srs, self.attended_sessions)


def _non_negative(obj: object) -> None:
    for name in obj.__dataclass_fields__:  # type: ignore[attr-defined]
        value = getattr(obj, name)
        if isinstance(value, int) and value < 0:
            raise ValueError(f"{type(obj).__name__}.{name} cannot be negative")


# --------------------------------------------------------------------------------------------
# One group (clinic, clinician, age band) in one window
# --------------------------------------------------------------------------------------------


class MetricGroup(StrEnum):
    """Headings the metrics are listed under, in every renderer."""

    ACTIVITY = "Activity"
    SESSIONS = "Sessions and time in treatment"
    INTAKE = "Intake"
    OUTCOMES = "Outcomes (closed episodes with two or more ORS)"
    EFFECT = "Effect sizes"
    DROPOUT = "Endings and dropout"
    ALLIANCE = "Alliance and alerts"
    COMPLETENESS = "Data completeness"


@dataclass(frozen=True, slots=True)
class Metric:
    """One printable figure: a stable ``key`` (JSON/CSV), a ``label`` (PDF), its value and
    how many decimals it is shown with. Produced by :meth:`GroupFigures.metrics` only."""

    key: str
    label: str
    group: MetricGroup
    value: Value
    decimals: int = 1

    def display(self, min_n: int) -> str:
        return self.value.display(min_n, self.decimals)

    def display_value(self, min_n: int) -> str:
        if isinstance(self.value, Count):
            return self.value.display()
        return self.value.display_value(min_n, self.decimals)

    def display_detail(self, min_n: int) -> str:
        if isinstance(self.value, Count):
            return ""
        return self.value.display_detail(min_n, self.decimals)

    def is_too_few(self, min_n: int) -> bool:
        return not isinstance(self.value, Count) and self.value.is_too_few(min_n)


#: The headline figures on the summary page, in order (each has a trailing-12 column and,
#: where the literature has one, a reference number).
HEADLINE_KEYS: tuple[str, ...] = (
    "episodes_active",
    "episodes_opened",
    "episodes_closed",
    "sessions_delivered",
    "no_show_rate",
    "sessions_per_episode_mean",
    "intake_ors_mean",
    "reliable_improvement",
    "recovered",
    "reliable_deterioration",
    "last_ors_above_cutoff",
    "pre_post_d",
    "severity_adjusted_es",
    "dropout_rate",
    "srs_below_concern",
    "ors_completeness",
)


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """Every figure for one group over one window (a month, or the trailing 12 months)."""

    activity: Activity
    sessions: SessionStats
    intake_ors: Estimate  # mean first ORS/CORS total of episodes opened in the window
    intake_srs: Estimate  # mean first SRS/CSRS total of those episodes
    outcomes: OutcomeCounts
    pre_post_d: Estimate
    severity_adjusted_es: Estimate
    dropout: DropoutSummary
    alliance: AllianceSummary
    completeness: CompletenessSummary

    def __post_init__(self) -> None:
        # The same session counts arrive through two blocks; disagreeing numbers would print
        # two different truths on one page.
        if self.completeness.attended_sessions != self.activity.sessions_attended:
            raise ValueError("completeness.attended_sessions must equal sessions_attended")
        if self.alliance.sessions_with_srs != self.completeness.with_srs:
            raise ValueError("alliance.sessions_with_srs must equal completeness.with_srs")
        if self.dropout.closed_episodes != self.activity.episodes_closed:
            raise ValueError("dropout.closed_episodes must equal episodes_closed")

    @classmethod
    def empty(cls) -> GroupFigures:
        """A window with nothing in it: still a valid, printable set of figures."""
        return cls(
            activity=Activity(0, 0, 0, 0, 0, 0),
            sessions=SessionStats.empty(),
            intake_ors=Estimate.none(),
            intake_srs=Estimate.none(),
            outcomes=OutcomeCounts.empty(),
            pre_post_d=Estimate.none(),
            severity_adjusted_es=Estimate.none(),
            dropout=DropoutSummary.empty(),
            alliance=AllianceSummary.empty(),
            completeness=CompletenessSummary.empty(),
        )

    @property
    def has_data(self) -> bool:
        activity = self.activity
        return bool(activity.episodes_active or activity.sessions_scheduled)

    def metrics(self) -> tuple[Metric, ...]:
        """Every figure as a :class:`Metric`, in print order: the single list all renderers
        walk, so a figure added here shows up in PDF, JSON and CSV at once."""
        a, s, o, d, al, c = (
            self.activity,
            self.sessions,
            self.outcomes,
            self.dropout,
            self.alliance,
            self.completeness,
        )
        G = MetricGroup
        cat = OutcomeCategory
        items: list[Metric] = [
            Metric("episodes_active", "Episodes active", G.ACTIVITY, Count(a.episodes_active)),
            Metric("episodes_opened", "Episodes opened", G.ACTIVITY, Count(a.episodes_opened)),
            Metric("episodes_closed", "Episodes closed", G.ACTIVITY, Count(a.episodes_closed)),
            Metric(
                "sessions_delivered", "Sessions delivered", G.ACTIVITY, Count(a.sessions_attended)
            ),
            Metric("no_show_rate", "No-show rate", G.ACTIVITY, a.no_show_rate),
            Metric("cancellation_rate", "Cancellation rate", G.ACTIVITY, a.cancellation_rate),
            Metric(
                "sessions_per_episode_mean",
                "Sessions per closed episode (mean)",
                G.SESSIONS,
                s.per_episode_mean,
            ),
            Metric(
                "sessions_per_episode_median",
                "Sessions per closed episode (median)",
                G.SESSIONS,
                s.per_episode_median,
            ),
            Metric(
                "days_in_treatment_mean", "Days in treatment (mean)", G.SESSIONS, s.days_mean, 0
            ),
            Metric(
                "days_in_treatment_median",
                "Days in treatment (median)",
                G.SESSIONS,
                s.days_median,
                0,
            ),
        ]
        items += [
            Metric(
                f"sessions_bin_{_bin_key(label)}",
                f"Episodes with {label} session{'' if label == '1' else 's'}",
                G.SESSIONS,
                Count(count),
            )
            for (label, _low, _high), count in zip(SESSION_BINS, s.histogram, strict=True)
        ]
        items += [
            Metric("intake_ors_mean", "Mean intake ORS", G.INTAKE, self.intake_ors),
            Metric("intake_srs_mean", "Mean intake SRS", G.INTAKE, self.intake_srs),
            Metric(
                "reliable_improvement",
                "Reliably improved (recovered or improved)",
                G.OUTCOMES,
                o.reliable_improvement,
            ),
            Metric("recovered", "Recovered", G.OUTCOMES, o.share(cat.RECOVERED)),
            Metric("improved", "Improved (not recovered)", G.OUTCOMES, o.share(cat.IMPROVED)),
            Metric("unchanged", "Unchanged", G.OUTCOMES, o.share(cat.UNCHANGED)),
            Metric(
                "deteriorated", "Deteriorated (not harmed)", G.OUTCOMES, o.share(cat.DETERIORATED)
            ),
            Metric("harmed", "Harmed", G.OUTCOMES, o.share(cat.HARMED)),
            Metric(
                "reliable_deterioration",
                "Reliably worse (deteriorated or harmed)",
                G.OUTCOMES,
                o.reliable_deterioration,
            ),
            Metric(
                "functional_at_intake",
                "Started in the functional range (reported apart)",
                G.OUTCOMES,
                Count(o.functional_at_intake),
            ),
            Metric(
                "functional_at_intake_reliably_worse",
                "Functional at intake: reliably worse",
                G.OUTCOMES,
                Proportion(o.functional_at_intake_reliably_worse, o.functional_at_intake),
            ),
            Metric(
                "last_ors_above_cutoff",
                "Last ORS above the cut-off",
                G.OUTCOMES,
                Proportion(o.last_above_cutoff, o.episodes),
            ),
            Metric("pre_post_d", "Pre-post effect size (d)", G.EFFECT, self.pre_post_d, 2),
            Metric(
                "severity_adjusted_es",
                "Severity-adjusted effect size",
                G.EFFECT,
                self.severity_adjusted_es,
                2,
            ),
            Metric("dropout_rate", "Dropout (clinic definition)", G.DROPOUT, d.rate),
            Metric(
                "planned_endings",
                "Planned or mutual endings",
                G.DROPOUT,
                Proportion(d.planned_endings, d.closed_episodes),
            ),
            Metric(
                "unilateral_endings",
                "Unilateral endings",
                G.DROPOUT,
                Proportion(d.unilateral_endings, d.closed_episodes),
            ),
            Metric(
                "unilateral_last_ors_above_cutoff",
                "Unilateral: last ORS above cut-off",
                G.DROPOUT,
                Proportion(d.unilateral_last_ors_above_cutoff, d.unilateral_endings),
            ),
            Metric(
                "unilateral_last_ors_below_cutoff",
                "Unilateral: last ORS below cut-off",
                G.DROPOUT,
                Proportion(d.unilateral_last_ors_below_cutoff, d.unilateral_endings),
            ),
            Metric(
                "unilateral_without_ors",
                "Unilateral: no ORS",
                G.DROPOUT,
                Count(d.unilateral_without_ors),
            ),
            Metric(
                "srs_below_concern", "Sessions with SRS below 36", G.ALLIANCE, al.srs_concern_rate
            ),
            Metric("alerts_raised", "Alerts raised", G.ALLIANCE, Count(al.alerts_raised)),
            Metric(
                "alerts_acknowledged",
                "Alerts acknowledged",
                G.ALLIANCE,
                Count(al.alerts_acknowledged),
            ),
            Metric("alerts_resolved", "Alerts resolved", G.ALLIANCE, Count(al.alerts_resolved)),
            Metric(
                "hours_to_acknowledge_median",
                "Hours to acknowledge an alert (median)",
                G.ALLIANCE,
                al.hours_to_acknowledge,
            ),
            Metric(
                "flagged_in_care_after_follow_up",
                "Flagged episodes still in care a month later",
                G.ALLIANCE,
                al.in_care_after_follow_up,
            ),
            Metric("ors_completeness", "Attended sessions with ORS", G.COMPLETENESS, c.ors_rate),
            Metric("srs_completeness", "Attended sessions with SRS", G.COMPLETENESS, c.srs_rate),
        ]
        return tuple(items)

    def metric(self, key: str) -> Metric:
        for item in self.metrics():
            if item.key == key:
                return item
        raise KeyError(key)


def _bin_key(label: str) -> str:
    return label.replace(DASH, "_").replace("+", "_plus")


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One month of the 12-month trend: recovery share and mean sessions per closed episode."""

    month: str  # YYYY-MM
    recovery: Proportion  # recovered, of clinical-range intakes closed that month
    mean_sessions: Estimate  # sessions per episode closed that month

    def __post_init__(self) -> None:
        _parse_period(self.month)


@dataclass(frozen=True, slots=True)
class GroupReport:
    """One group's figures: the month, the trailing 12 months (its own benchmark) and trend.

    ``key`` is stable and machine-readable: ``"clinic"``, the EHR's pseudonymous clinician id,
    or an :class:`AgeBand` value. ``label`` is what is printed (the clinician's pseudonymous
    label, never a name the service doesn't already hold).
    """

    key: str
    label: str
    month: GroupFigures
    trailing_12: GroupFigures
    trend: tuple[TrendPoint, ...] = ()

    def __post_init__(self) -> None:
        months = [point.month for point in self.trend]
        if months != sorted(set(months)):
            raise ValueError("trend months must be unique and in order")


# --------------------------------------------------------------------------------------------
# Settings and references printed with the report
# --------------------------------------------------------------------------------------------

#: Default dropout definition (domain.md §6: definitions vary, so it is a setting and printed).
DEFAULT_DROPOUT_DEFINITION = (
    "The client ended the episode unilaterally (did not return and did not agree the ending "
    "with the clinician)."
)


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """The clinic's settings a report was computed with, printed in its methods appendix.

    Defaults come from domain.md §3 via :mod:`fit_service.domain.instruments` so there is one
    source for each threshold.
    """

    min_n: int = DEFAULT_MIN_N
    ors_cutoff_adult: float = ORS.clinical_cutoffs[AgeBand.ADULT]  # 25, PCOMS manuals
    ors_cutoff_adolescent: float = ORS.clinical_cutoffs[AgeBand.ADOLESCENT]  # 28, PCOMS norms
    cors_cutoff: float = CORS.clinical_cutoffs[AgeBand.CHILD]  # 32, Duncan et al. 2006
    cutoff_is_clinical: bool = ORS.cutoff_is_clinical  # is a score equal to the cut-off clinical
    reliable_change: float = 5.0  # ORS points, PCOMS manuals (domain.md §3)
    srs_concern: float = 36.0  # SRS total below this is a concern (domain.md §3)
    dropout_definition: str = DEFAULT_DROPOUT_DEFINITION
    follow_up_days: int = 30  # "still in care a month later"
    severity_reference: str = (
        "the clinic's own clinical-range closed episodes over the trailing 12 months"
    )

    def __post_init__(self) -> None:
        if self.min_n < 1:
            raise ValueError("min_n must be at least 1")
        if not self.dropout_definition.strip():
            raise ValueError("a report must state its dropout definition")


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A literature reference number printed beside a headline figure, always with its source."""

    metric_key: str
    text: str  # the figure as published, e.g. "19.7% (95% CI 18.7-20.7)"
    source: str  # who published it (domain.md §4)
    note: str = ""
    low: float | None = None  # machine-readable range, same unit as the metric's value
    high: float | None = None


#: Reference numbers from domain.md §4 ("always print the source").
LITERATURE_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        metric_key="sessions_per_episode_mean",
        text="< 5 in routine care; about 12.7 in trials",
        source="Hansen, Lambert & Forman 2002",
        note=f"Half of clients need 13{DASH}18 sessions to improve.",
        low=None,
        high=5.0,
    ),
    Benchmark(
        metric_key="reliable_improvement",
        text=f"about 20% in routine care; 57.6{DASH}67.2% in trials",
        source="Hansen, Lambert & Forman 2002",
        low=0.576,
        high=0.672,
    ),
    Benchmark(
        metric_key="reliable_deterioration",
        text=f"about 5{DASH}10% of clients",
        source="domain.md §4 (literature summary)",
        low=0.05,
        high=0.10,
    ),
    Benchmark(
        metric_key="pre_post_d",
        text="≥ 0.8 large; < 0.3 small",
        source="Seidel, Miller & Chow 2014",
        note="Reading guide, not a target.",
        low=0.3,
        high=0.8,
    ),
    Benchmark(
        metric_key="severity_adjusted_es",
        text="≥ 0.8 large; < 0.3 small",
        source="Seidel, Miller & Chow 2014",
        low=0.3,
        high=0.8,
    ),
    Benchmark(
        metric_key="dropout_rate",
        text=f"19.7% (95% CI 18.7{DASH}20.7)",
        source="Swift & Greenberg 2012 (669 studies, 83,834 clients)",
        note="46.9% in Wierzbicki & Pekarik 1993 (older, wider definitions); "
        "the rate depends on the definition.",
        low=0.187,
        high=0.207,
    ),
)


@dataclass(frozen=True, slots=True)
class MethodNote:
    """One entry of the methods appendix: a definition, threshold or formula and its source."""

    term: str
    definition: str
    source: str


def method_notes(settings: ReportSettings) -> tuple[MethodNote, ...]:
    """Every definition, threshold and formula the figures rest on, filled from ``settings``.

    Lives in the domain (not the PDF renderer) so the JSON export states the same methods.
    """
    s = settings
    equal = "counts as clinical" if s.cutoff_is_clinical else "counts as functional"
    return (
        MethodNote(
            "Small numbers",
            f"A percentage or mean resting on fewer than {s.min_n} observations is shown as "
            f"'too few (n=…)' instead of a number; its numerator is withheld too. Counts of "
            f"episodes, sessions and alerts are always shown.",
            "Clinic setting (default 10)",
        ),
        MethodNote(
            "Confidence intervals for percentages",
            "Wilson score interval, 95%: (p + z²/2n ± z·√(p(1 - p)/n + z²/4n²)) / (1 + z²/n), "
            "z = 1.96. Every percentage is printed with its n.",
            "Wilson 1927",
        ),
        MethodNote(
            "Confidence intervals for means",
            "Mean ± t(0.975, n - 1) · SD / √n. Medians are printed with their n only.",
            "Student t; Abramowitz & Stegun 1964",
        ),
        MethodNote(
            "Episodes and sessions",
            "Active: open at any time in the window. Sessions delivered: attended sessions. "
            "No-show and cancellation rates: of scheduled sessions (attended + no-show + "
            "client cancellation). Sessions per closed episode and days in treatment (opening "
            "to last attended session): episodes closed in the window with at least one "
            "attended session.",
            "ICCE report indices (domain.md §4)",
        ),
        MethodNote(
            "Clinical cut-off",
            f"ORS total below {s.ors_cutoff_adult:g} (adults 18+), below "
            f"{s.ors_cutoff_adolescent:g} (adolescents 13 to 17), CORS below {s.cors_cutoff:g} "
            f"(children 6 to 12) is the clinical range; a score equal to the cut-off {equal}. "
            "The published values follow Jacobson & Truax's cut-off "
            "c = (SD_clin·M_func + SD_func·M_clin)/(SD_clin + SD_func); they are not "
            "recomputed from the clinic's data.",
            "PCOMS manuals and norms; Duncan et al. 2006; Jacobson & Truax 1991",
        ),
        MethodNote(
            "Reliable change",
            f"A change of {s.reliable_change:g} ORS points or more between the first and last "
            "score of an episode (the fixed PCOMS threshold, used instead of the RCI "
            "(x2 - x1)/S_diff, S_diff = √2·s1·√(1 - r), |RCI| > 1.96).",
            "PCOMS manuals; Jacobson & Truax 1991",
        ),
        MethodNote(
            "Outcome categories",
            "Closed episodes with at least two ORS/CORS totals, first vs last. Recovered: "
            "reliable improvement and moved from the clinical to the functional side of the "
            "cut-off. Improved: reliable improvement otherwise. Unchanged. Deteriorated: "
            "reliable worsening. Harmed: reliable worsening that crosses into the clinical "
            "range. Percentages are of clinical-range intakes; episodes that started in the "
            "functional range cannot recover and are reported apart. 'Last ORS above the "
            "cut-off' counts both groups.",
            "Jacobson & Truax 1991; R package clinicalsignificance (domain.md §4)",
        ),
        MethodNote(
            "Pre-post effect size",
            "d = mean(last - first ORS) / SD(first ORS); 95% CI d ± 1.96·√(2(1 - r)/n + d²/2n), "
            "r the first-last correlation.",
            "domain.md §4; Becker 1988; Morris & DeShon 2002",
        ),
        MethodNote(
            "Severity-adjusted effect size",
            "Clinical-range intakes only. Last ORS regressed on first ORS in the reference "
            f"sample ({s.severity_reference}); the group's mean residual is added to the "
            "reference mean change and divided by the reference intake SD. 95% CI from the SD "
            "of residuals, reference held fixed. ≥ 0.8 is read as large, < 0.3 as small. "
            "Against the clinic's own data the clinic figure equals its pre-post d by "
            "construction; it compares clinicians and age bands fairly.",
            "Seidel, Miller & Chow 2014",
        ),
        MethodNote(
            "Dropout",
            f"Clinic definition: {s.dropout_definition} Endings are coded planned/mutual, "
            "unilateral or other; unilateral endings are split by whether the last ORS was "
            "above or below the cut-off. Rate: of episodes closed in the window.",
            "Clinic setting; Swift & Greenberg 2012 (domain.md §4, §6)",
        ),
        MethodNote(
            "Alliance",
            f"SRS/CSRS total below {s.srs_concern:g} is a concern (share of attended sessions "
            "with an SRS). Alerts: raised, acknowledged and resolved in the window; time to "
            "acknowledge is the median in hours. Flagged episodes still in care: episodes "
            f"first flagged at least {s.follow_up_days} days before the window's end that were "
            f"still open or had a session {s.follow_up_days} days after the flag.",
            "PCOMS; OpenFIT (domain.md §3)",
        ),
        MethodNote(
            "Data completeness",
            "Share of attended sessions with an ORS/CORS total, with an SRS/CSRS total. A "
            "measure marked 'not completed' is missing, never zero.",
            "domain.md §2",
        ),
        MethodNote(
            "Benchmarks",
            "Beside each headline figure: the same figure over the trailing 12 months (the "
            "clinic's own benchmark) and, where published, a literature reference with its "
            "source. References come from studies with other definitions and populations: "
            "read them as context, not targets.",
            "domain.md §4",
        ),
        MethodNote(
            "Privacy",
            "Aggregates only: no client identifiers and no questionnaire item text (ORS/SRS "
            "wording is copyrighted). Clinicians appear under their pseudonymous EHR label.",
            "domain.md §2",
        ),
    )


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


class Scope(StrEnum):
    CLINIC = "clinic"
    CLINICIAN = "clinician"


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    """The whole monthly benchmark report for one clinic (or one clinician's view of it).

    ``generated_at`` is passed in (aware, UTC) rather than read from the clock, so the same
    input renders to byte-identical files. ``clinicians`` and ``age_bands`` are kept in the
    order given; renderers sort clinicians by label (a comparison, not a league table).
    """

    clinic_name: str
    period: str  # YYYY-MM
    generated_at: datetime
    overall: GroupReport
    clinicians: tuple[GroupReport, ...] = ()
    age_bands: tuple[GroupReport, ...] = ()
    settings: ReportSettings = field(default_factory=ReportSettings)
    benchmarks: tuple[Benchmark, ...] = LITERATURE_BENCHMARKS
    scope: Scope = Scope.CLINIC

    def __post_init__(self) -> None:
        _parse_period(self.period)
        offset = self.generated_at.utcoffset()
        if offset is None:
            raise ValueError("generated_at must be timezone-aware")
        if offset != timedelta(0):
            raise ValueError("generated_at must be in UTC (convert at the edge)")
        keys = [group.key for group in self.clinicians]
        if len(keys) != len(set(keys)):
            raise ValueError("clinician keys must be unique")

    @property
    def is_empty(self) -> bool:
        """No episode was active and no session was scheduled in the month."""
        return not self.overall.month.has_data

    @property
    def period_label(self) -> str:
        return month_label(self.period)

    @property
    def min_n(self) -> int:
        return self.settings.min_n

    def benchmark_for(self, metric_key: str) -> Benchmark | None:
        return next((b for b in self.benchmarks if b.metric_key == metric_key), None)

    def clinicians_by_label(self) -> tuple[GroupReport, ...]:
        """Clinicians in label order: the order every renderer prints them in."""
        return tuple(sorted(self.clinicians, key=lambda group: (group.label, group.key)))

    def for_clinician(self, clinician_id: str) -> MonthlyReport:
        """The view one clinician may see: their own figures as the report's subject, and
        nothing about anyone else (no other clinicians, no clinic or age-band totals that
        could be subtracted to reveal a colleague's figures)."""
        own = next((group for group in self.clinicians if group.key == clinician_id), None)
        if own is None:
            raise NotFound(f"no figures for clinician {clinician_id!r} in this report")
        return replace(self, overall=own, clinicians=(own,), age_bands=(), scope=Scope.CLINICIAN)
