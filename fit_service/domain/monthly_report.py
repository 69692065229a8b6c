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

Every percentage is a :class:`Share` (numerator and denominator, Wilson 95% CI); every
mean, median or effect size is an :class:`Estimate` (value, n, optional CI). Both know how to
say "too few (n=4)" when n is below the clinic's ``min_n`` setting, so a small cell can never be
printed as a number by accident.

Pure: standard library only (the import-linter contract in ``pyproject.toml`` holds this).
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

import numpy as np

from fit_service.domain.change import (
    NOT_CLASSIFIABLE,
    ChangeCategory,
    ChangeCriteria,
    ChangeSummary,
    Cutoff,
    ReliableChange,
    classify_many,
    clinical_mask,
)
from fit_service.domain.effect_sizes import (
    ClusterSpread,
    EffectSize,
    SeverityReference,
    pre_post_d,
    proportion,
    severity_adjusted_es,
    t_quantile_975,
)
from fit_service.domain.errors import FitError, NotFound
from fit_service.domain.instruments import CORS, ORS, AgeBand, Direction, outcome_instrument_for

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

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])\Z")  # \Z: "$" lets "2024-05\n" through
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Small statistics (pure functions; the aggregation code calls these, tests pin them down)
# --------------------------------------------------------------------------------------------


def mean_estimate(values: Sequence[float]) -> Estimate:
    """Mean with a t-based 95% CI; no CI below two values (no spread to estimate)."""
    n = len(values)
    if n == 0:
        return Estimate.none()
    # What statistics.fmean does for a sized input (fsum, then divide), without its argument
    # handling: a report takes thousands of these means.
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(value=mean, n=n)
    # The squares are exactly ``(x - mean) ** 2`` (``pow``, not ``d * d``: libm's pow(d, 2) and
    # d * d differ in the last bit for some d), computed by map() in C rather than by a
    # generator; fsum is exactly rounded, so the order of the terms cannot matter.
    squares = map(pow, map(operator.sub, values, itertools.repeat(mean)), itertools.repeat(2))
    return _with_t_interval(mean, n, math.fsum(squares))


def _with_t_interval(mean: float, n: int, sum_of_squares: float) -> Estimate:
    """The mean's :class:`Estimate`, given the sum of squared deviations from it (n >= 2)."""
    # Sample SD in floats (statistics.stdev is exact but converts to fractions: slow for a
    # report with hundreds of groups, and no more accurate at the one decimal printed).
    sd = math.sqrt(sum_of_squares / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return Estimate(value=mean, n=n, ci_low=mean - half, ci_high=mean + half)


#: Below this many values :func:`mean_estimate_of_array` takes :func:`mean_estimate`'s path:
#: ``np.unique``'s fixed cost would be more than it saves.
_FEW_VALUES = 64


def mean_estimate_of_array(values: np.ndarray) -> Estimate:
    """:func:`mean_estimate` of ``values.tolist()`` (as floats), to the last bit, for the
    report's large samples of numbers that repeat: sessions, days, scores with one decimal.

    Each *distinct* value's squared deviation is computed once and handed to ``fsum`` as often
    as the value occurs. ``fsum`` is exactly rounded, so only the multiset of its terms, not
    their order, decides the result, and that multiset is the same as :func:`mean_estimate`'s.
    (Computing ``pow`` once per value was most of the time of the report's means.)
    """
    floats = values.astype(np.float64, copy=False)
    n = int(floats.size)
    if n < _FEW_VALUES:
        return mean_estimate(floats.tolist())
    mean = math.fsum(floats.tolist()) / n
    distinct, counts = np.unique(floats, return_counts=True)
    squares = map(
        pow, map(operator.sub, distinct.tolist(), itertools.repeat(mean)), itertools.repeat(2)
    )
    terms = itertools.chain.from_iterable(map(itertools.repeat, squares, counts.tolist()))
    return _with_t_interval(mean, n, math.fsum(terms))


def median_estimate(values: Sequence[float] | np.ndarray) -> Estimate:
    """Median with its n and no interval (a median CI needs order statistics we don't print).

    ``values`` are finite numbers (a NaN has no place in a sorted order).
    """
    n = len(values)
    if n == 0:
        return Estimate.none()
    # statistics.median: the middle value, or the mean of the middle two, of sorted(values).
    # A stable np.sort gives the very same order (equal values keep their order, as in
    # sorted()) in C; the middle two are then added and halved in Python floats, as there.
    ordered = np.sort(np.asarray(values, dtype=np.float64), kind="stable")
    middle = n // 2
    if n % 2:
        return Estimate(value=float(ordered[middle]), n=n)
    return Estimate(value=(float(ordered[middle - 1]) + float(ordered[middle])) / 2, n=n)


def session_histogram(session_counts: Iterable[int]) -> tuple[int, ...]:
    """Count closed episodes into :data:`SESSION_BINS`.

    An episode closed with no attended session is not a treatment episode and raises, so the
    aggregation has to decide about it explicitly instead of a silent "0" bin.
    """
    return _histogram(np.fromiter(session_counts, dtype=np.int64))


def _histogram(sessions: np.ndarray) -> tuple[int, ...]:
    """:func:`session_histogram` of an integer array."""
    if not sessions.size:
        return (0,) * len(SESSION_BINS)
    if int(sessions.min()) < 1:
        raise ValueError("sessions per closed episode must be at least 1")
    # The bins are contiguous (checked below), so a bin is the last one starting at or below
    # the count: one vectorised lookup instead of a loop over episodes and bins.
    index = np.searchsorted(_BIN_LOWS, sessions, side="right") - 1
    return tuple(np.bincount(index, minlength=len(SESSION_BINS)).tolist())


def _bin_lows() -> np.ndarray:
    """Each bin's lowest count, after checking the bins leave no gap and the last is open."""
    contiguous = all(
        high is not None and high + 1 == following[1]
        for (_label, _low, high), following in itertools.pairwise(SESSION_BINS)
    )
    if not contiguous or SESSION_BINS[-1][2] is not None:
        raise ValueError("SESSION_BINS must be contiguous and open-ended")
    return np.array([low for _label, low, _high in SESSION_BINS], dtype=np.int64)


_BIN_LOWS = _bin_lows()


def month_label(period: str) -> str:
    """``"2024-05"`` -> ``"May 2024"`` without the locale (strftime's %B is locale-dependent)."""
    year, month = _parse_period(period)
    return f"{_MONTH_NAMES[month - 1]} {year}"


def trailing_months(period: str, count: int = 12) -> tuple[str, ...]:
    """The ``count`` months ending with ``period``, oldest first (the trailing-12 window)."""
    year, month = _parse_period(period)
    index = year * 12 + month - 1
    return tuple(f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count + 1, index + 1))


@functools.lru_cache(maxsize=256)
def _parse_period(period: str) -> tuple[int, int]:
    # Cached: a report parses the same dozen periods thousands of times (every trend point
    # and month window checks its own).
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
class Share:
    """A printed percentage with its n: ``numerator`` of ``denominator``, Wilson 95% CI.

    A presentation type: the interval itself comes from
    :func:`fit_service.domain.effect_sizes.proportion` (Wilson 1927), the one place the
    project computes it. (Named ``Share`` so it is not confused with that module's
    ``Proportion`` result type.) ``spread``: for a rate over sessions, how they sit in
    clients; the interval is then on the effective sample size (see
    :class:`~fit_service.domain.effect_sizes.ClusterSpread`).
    """

    numerator: int
    denominator: int
    spread: ClusterSpread | None = None
    #: The Wilson interval, computed on first use and kept (a renderer asks for it up to
    #: three times per cell: low, high and the printed text). Not part of equality.
    _ci: tuple[float, float] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )
    #: The effective n, likewise (``None``: no spread, or not computed yet).
    _effective_n: float | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

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
        if self._ci is None and self.denominator:
            result = proportion(self.numerator, self.denominator, self.effective_n)
            assert result is not None  # a positive denominator always has an interval
            object.__setattr__(self, "_ci", (result.ci_low, result.ci_high))
        return self._ci

    @property
    def ci_low(self) -> float | None:
        ci = self.ci
        return None if ci is None else ci[0]

    @property
    def ci_high(self) -> float | None:
        ci = self.ci
        return None if ci is None else ci[1]

    @property
    def clusters(self) -> int | None:
        """How many clients the rate's sessions come from (``None``: not a rate over
        sessions)."""
        return None if self.spread is None else self.spread.clusters

    @property
    def effective_n(self) -> float | None:
        """The n the interval is computed on, when it is not :attr:`n` itself."""
        if self.spread is None or not self.denominator:
            return None
        if self._effective_n is None:
            size = self.spread.effective_n(self.numerator, self.denominator)
            object.__setattr__(self, "_effective_n", size)
        return self._effective_n

    def is_too_few(self, min_n: int) -> bool:
        return self.denominator < max(min_n, 1)

    def display_value(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        """The number alone ("65.0%"), or "too few (n=4)"."""
        if self.is_too_few(min_n):
            return _too_few(self.denominator)
        return self._value_text(decimals)

    def display_detail(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        """What qualifies the number ("n=40, 95% CI 50.5-77.4"); empty when suppressed."""
        if self.is_too_few(min_n):
            return ""
        return self._detail_text(decimals)

    def display(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        """The one printed form: "65.0% (n=40, 95% CI 49.5-77.9)" or "too few (n=4)"."""
        # What _join(display_value, display_detail) gives, deciding "too few" once: the JSON
        # export prints this for every cell of every group.
        if self.is_too_few(min_n):
            return _too_few(self.denominator)
        return f"{self._value_text(decimals)} ({self._detail_text(decimals)})"

    def _value_text(self, decimals: int) -> str:
        return f"{100 * self.numerator / self.denominator:.{decimals}f}%"

    def _detail_text(self, decimals: int) -> str:
        low, high = self.ci or (0.0, 0.0)
        low_text, high_text = f"{100 * low:.{decimals}f}", f"{100 * high:.{decimals}f}"
        return f"n={self.denominator:,}, 95% CI {low_text}{DASH}{high_text}"


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

    @classmethod
    def of_effect_size(cls, effect: EffectSize | None, n: int) -> Estimate:
        """Present an :class:`~fit_service.domain.effect_sizes.EffectSize` (computed there, the
        one place effect sizes are computed); ``None`` means not computable from ``n`` pairs."""
        if effect is None:
            return cls(value=None, n=n)
        return cls(value=effect.value, n=effect.n, ci_low=effect.ci_low, ci_high=effect.ci_high)

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


Value = Count | Share | Estimate


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
    #: how the sessions sit in clients (``None``: intervals as if sessions were independent)
    spread: SessionSpread | None = None

    def __post_init__(self) -> None:
        _non_negative(self)

    @property
    def sessions_scheduled(self) -> int:
        return self.sessions_attended + self.no_shows + self.cancellations

    @property
    def no_show_rate(self) -> Share:
        spread = None if self.spread is None else self.spread.no_shows
        return Share(self.no_shows, self.sessions_scheduled, spread)

    @property
    def cancellation_rate(self) -> Share:
        spread = None if self.spread is None else self.spread.cancellations
        return Share(self.cancellations, self.sessions_scheduled, spread)


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
        sessions = [float(s) for s in sessions_per_episode]
        days = [float(d) for d in days_in_treatment]
        return cls(
            per_episode_mean=mean_estimate(sessions),
            per_episode_median=median_estimate(sessions),
            histogram=session_histogram(sessions_per_episode),
            days_mean=mean_estimate(days),
            days_median=median_estimate(days),
        )

    @classmethod
    def from_arrays(cls, sessions: np.ndarray, days: np.ndarray) -> SessionStats:
        """:meth:`from_episodes` of two integer arrays (a builder's columns): the same figures,
        without converting item by item."""
        return cls(
            per_episode_mean=mean_estimate_of_array(sessions),
            per_episode_median=median_estimate(sessions),
            histogram=_histogram(sessions),
            days_mean=mean_estimate_of_array(days),
            days_median=median_estimate(days),
        )

    @classmethod
    def empty(cls) -> SessionStats:
        return cls.from_episodes([], [])

    @property
    def episodes(self) -> int:
        return sum(self.histogram)


#: Each category's rank (:attr:`ChangeCategory.rank` looks it up in a tuple on every call).
_RANK = {category: category.rank for category in ChangeCategory}


@dataclass(frozen=True, slots=True)
class OutcomeCounts:
    """Closed episodes with at least two ORS/CORS totals, by change category.

    Categories are :class:`~fit_service.domain.change.ChangeCategory`, from the classifier in
    :mod:`fit_service.domain.change`.

    ``recovered`` to ``deteriorated`` cover clinical-range intakes. Episodes that started in
    the functional range can't "recover" and are counted apart (domain.md §4: "never silently
    in the denominator"): how many of them reliably worsened, and how many of those are
    ``harmed`` (the worsening crossed into the clinical range, domain.md §4; only an episode
    that started functional can cross, so harm is a share of that group, never of the
    clinical-range intakes, where it would be 0 by definition). ``last_above_cutoff`` counts
    *all* these episodes (either intake group) whose last score is on the functional side of
    the cut-off.
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
        if self.harmed > self.functional_at_intake_reliably_worse:
            raise ValueError("harmed episodes are functional-intake episodes that worsened")
        if self.last_above_cutoff > self.episodes:
            raise ValueError("more episodes above the cut-off than episodes")

    @classmethod
    def empty(cls) -> OutcomeCounts:
        return cls(0, 0, 0, 0, 0, 0, 0, 0)

    @classmethod
    def from_summary(cls, summary: ChangeSummary, last_above_cutoff: int) -> OutcomeCounts:
        """Counts from :class:`~fit_service.domain.change.ChangeSummary` (the classifier's own
        split by intake range) and the number whose last score is on the functional side."""
        clinical = summary.clinical_at_intake.counts
        functional = summary.functional_at_intake
        return cls(
            recovered=clinical[ChangeCategory.RECOVERED],
            improved=clinical[ChangeCategory.IMPROVED],
            unchanged=clinical[ChangeCategory.UNCHANGED],
            # A clinical-range intake cannot cross into the clinical range: its reliable
            # worsening is "deteriorated" (the classifier never says harmed there).
            deteriorated=clinical[ChangeCategory.DETERIORATED] + clinical[ChangeCategory.HARMED],
            harmed=functional.counts[ChangeCategory.HARMED],
            functional_at_intake=functional.n,
            functional_at_intake_reliably_worse=functional.counts[ChangeCategory.DETERIORATED]
            + functional.counts[ChangeCategory.HARMED],
            last_above_cutoff=last_above_cutoff,
        )

    @classmethod
    def from_codes(
        cls, codes: np.ndarray, clinical_at_intake: np.ndarray, last_above_cutoff: int
    ) -> OutcomeCounts:
        """``from_summary(ChangeSummary.from_codes(codes, clinical_at_intake), last_above_cutoff)``
        with one ``bincount``: ``codes`` are :attr:`ChangeCategory.rank` values or -1 (not
        classifiable), as :func:`~fit_service.domain.change.classify_many` gives them.

        A report counts the outcomes of 400-odd builders, and building the summary's three
        per-category mappings was most of that work (tests pin the two paths together).
        """
        classified = codes >= 0
        size = len(ChangeCategory)
        # Functional-range intakes count into bins 0..4, clinical-range ones into 5..9.
        keys = codes[classified].astype(np.int64) + size * clinical_at_intake[classified]
        bins = np.bincount(keys, minlength=2 * size).tolist()
        functional, clinical = bins[:size], bins[size:]
        return cls(
            recovered=clinical[_RANK[ChangeCategory.RECOVERED]],
            improved=clinical[_RANK[ChangeCategory.IMPROVED]],
            unchanged=clinical[_RANK[ChangeCategory.UNCHANGED]],
            deteriorated=clinical[_RANK[ChangeCategory.DETERIORATED]]
            + clinical[_RANK[ChangeCategory.HARMED]],
            harmed=functional[_RANK[ChangeCategory.HARMED]],
            functional_at_intake=sum(functional),
            functional_at_intake_reliably_worse=functional[_RANK[ChangeCategory.DETERIORATED]]
            + functional[_RANK[ChangeCategory.HARMED]],
            last_above_cutoff=last_above_cutoff,
        )

    @property
    def clinical_at_intake(self) -> int:
        return self.recovered + self.improved + self.unchanged + self.deteriorated

    @property
    def episodes(self) -> int:
        return self.clinical_at_intake + self.functional_at_intake

    def share(self, category: ChangeCategory) -> Share:
        """One category as a share of its intake group: harmed of functional-range intakes (the
        only ones that can cross into the clinical range), the others of clinical-range ones."""
        if category is ChangeCategory.HARMED:
            return Share(self.harmed, self.functional_at_intake)
        return Share(getattr(self, category.value), self.clinical_at_intake)

    @property
    def reliable_improvement(self) -> Share:
        """Recovered or improved, of clinical-range intakes (what "improve" means in §4)."""
        return Share(self.recovered + self.improved, self.clinical_at_intake)

    @property
    def reliable_deterioration(self) -> Share:
        """Reliably worse, of *all* episodes with an outcome pair (either intake group): the
        population of the literature's "about 5-10% of clients" (domain.md §4)."""
        return Share(self.deteriorated + self.functional_at_intake_reliably_worse, self.episodes)


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
    def rate(self) -> Share:
        return Share(self.dropouts, self.closed_episodes)


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
    #: the clinic's SRS concern line the low-SRS share was counted against (domain.md §3)
    srs_concern: float = 36.0
    #: how the sessions sit in clients (``None``: intervals as if sessions were independent)
    spread: SessionSpread | None = None

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
    def srs_concern_rate(self) -> Share:
        spread = None if self.spread is None else self.spread.srs_below_concern
        return Share(self.srs_below_concern, self.sessions_with_srs, spread)

    @property
    def in_care_after_follow_up(self) -> Share:
        return Share(
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
    #: how the sessions sit in clients (``None``: intervals as if sessions were independent)
    spread: SessionSpread | None = None

    def __post_init__(self) -> None:
        _non_negative(self)
        if max(self.with_ors, self.with_srs) > self.attended_sessions:
            raise ValueError("more rated sessions than attended sessions")

    @classmethod
    def empty(cls) -> CompletenessSummary:
        return cls(0, 0, 0)

    @property
    def ors_rate(self) -> Share:
        spread = None if self.spread is None else self.spread.with_ors
        return Share(self.with_ors, self.attended_sessions, spread)

    @property
    def srs_rate(self) -> Share:
        spread = None if self.spread is None else self.spread.with_srs
        return Share(self.with_srs, self.attended_sessions, spread)


def _non_negative(obj: object) -> None:
    # The common case, all counts non-negative, with one C-level getter and min() (thousands
    # of blocks per report); the loop below only runs to name the offending field.
    # Any, not type: mypy takes a class's __hash__ for an unbound method and so calls
    # classes unhashable, refusing them as functools.cache keys
    cls: Any = type(obj)
    counts_of = _counts_of(cls)
    try:
        if counts_of is not None and min(counts_of(obj)) >= 0:
            return
    except TypeError:  # a value that does not compare with 0: the loop below decides
        pass
    names, values_of = _fields_of(cls)
    for index, value in enumerate(values_of(obj)):
        if isinstance(value, int) and value < 0:
            raise ValueError(f"{type(obj).__name__}.{names[index]} cannot be negative")


@functools.cache
def _counts_of(cls: type) -> Callable[[object], tuple[int, ...]] | None:
    """A getter of a dataclass's fields annotated ``int`` (at least two), or ``None``."""
    fields = cls.__dataclass_fields__.values()  # type: ignore[attr-defined]
    names = [f.name for f in fields if f.type in ("int", int)]
    return operator.attrgetter(*names) if len(names) >= 2 else None


@functools.cache
def _fields_of(cls: type) -> tuple[tuple[str, ...], Callable[[object], tuple[Any, ...]]]:
    """A dataclass's field names and one getter returning all their values.

    Looked up once per class: :func:`_non_negative` runs for every block of every group's
    figures (thousands per report), and ``getattr`` by name per field was a visible cost.
    """
    names = tuple(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    if len(names) == 1:  # attrgetter of one name returns the value, not a 1-tuple
        (only,) = names
        return names, lambda obj: (getattr(obj, only),)
    return names, operator.attrgetter(*names)


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
        cat = ChangeCategory
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
            Metric("intake_ors_mean", "Mean intake ORS/CORS", G.INTAKE, self.intake_ors),
            Metric("intake_srs_mean", "Mean intake SRS/CSRS", G.INTAKE, self.intake_srs),
            Metric(
                "reliable_improvement",
                "Reliably improved (recovered or improved)",
                G.OUTCOMES,
                o.reliable_improvement,
            ),
            Metric("recovered", "Recovered", G.OUTCOMES, o.share(cat.RECOVERED)),
            Metric("improved", "Improved (not recovered)", G.OUTCOMES, o.share(cat.IMPROVED)),
            Metric("unchanged", "Unchanged", G.OUTCOMES, o.share(cat.UNCHANGED)),
            Metric("deteriorated", "Deteriorated", G.OUTCOMES, o.share(cat.DETERIORATED)),
            Metric(
                "reliable_deterioration",
                "Reliably worse (all intakes)",
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
                Share(o.functional_at_intake_reliably_worse, o.functional_at_intake),
            ),
            Metric(
                "harmed",
                "Functional at intake: harmed",
                G.OUTCOMES,
                o.share(cat.HARMED),
            ),
            Metric(
                "last_ors_above_cutoff",
                "Last ORS above the cut-off (all intakes)",
                G.OUTCOMES,
                Share(o.last_above_cutoff, o.episodes),
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
                Share(d.planned_endings, d.closed_episodes),
            ),
            Metric(
                "unilateral_endings",
                "Unilateral endings",
                G.DROPOUT,
                Share(d.unilateral_endings, d.closed_episodes),
            ),
            Metric(
                "other_endings",
                "Other endings (transferred, other)",
                G.DROPOUT,
                Share(d.other_endings, d.closed_episodes),
            ),
            Metric(
                "unilateral_last_ors_above_cutoff",
                "Unilateral: last ORS above cut-off",
                G.DROPOUT,
                Share(d.unilateral_last_ors_above_cutoff, d.unilateral_endings),
            ),
            Metric(
                "unilateral_last_ors_below_cutoff",
                "Unilateral: last ORS below cut-off",
                G.DROPOUT,
                Share(d.unilateral_last_ors_below_cutoff, d.unilateral_endings),
            ),
            Metric(
                "unilateral_without_ors",
                "Unilateral: no ORS",
                G.DROPOUT,
                Count(d.unilateral_without_ors),
            ),
            Metric(
                "srs_below_concern",
                f"Sessions with SRS below {al.srs_concern:g}",
                G.ALLIANCE,
                al.srs_concern_rate,
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
                "Flagged episodes attending a month after the first alert",
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
    recovery: Share  # recovered, of clinical-range intakes closed that month
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


class DropoutRule(StrEnum):
    """Which closed episodes count as dropouts (domain.md §6: definitions vary, so the clinic
    chooses one; the report prints it). Keys are what ``settings.reports.dropout_definition``
    holds."""

    #: The client ended unilaterally: ending coded ``client_ended`` or ``stopped_attending``.
    UNILATERAL = "unilateral"
    #: Missed the last scheduled session and never returned: ``stopped_attending`` only.
    STOPPED_ATTENDING = "stopped_attending"
    #: Fewer than N attended sessions without a planned ending (transfers excepted).
    EARLY_UNPLANNED = "early_unplanned"

    def describe(self, max_sessions: int) -> str:
        """The definition as printed in every report."""
        if self is DropoutRule.UNILATERAL:
            return (
                "The client ended the episode unilaterally: ending coded 'client ended' or "
                "'stopped attending' (not planned or agreed with the clinician)."
            )
        if self is DropoutRule.STOPPED_ATTENDING:
            return (
                "The client stopped attending and never returned (ending coded 'stopped "
                "attending'); a client's own announced ending is not counted."
            )
        return (
            f"The episode ended after fewer than {max_sessions} attended sessions without a "
            "planned or mutual ending (transfers are not counted)."
        )


#: Ending reasons (``episodes.ending_reason``) coded planned/mutual and unilateral
#: (domain.md §4: "endings coded planned/mutual vs unilateral"); the rest (transferred, other,
#: none recorded) are neither.
PLANNED_ENDINGS = frozenset({"planned"})
UNILATERAL_ENDINGS = frozenset({"client_ended", "stopped_attending"})
_NOT_DROPOUT = frozenset({"planned", "transferred"})


def is_dropout(
    rule: DropoutRule, ending_reason: str | None, attended_sessions: int, max_sessions: int
) -> bool:
    """Does a closed episode count as a dropout under ``rule``?"""
    if rule is DropoutRule.UNILATERAL:
        return ending_reason in UNILATERAL_ENDINGS
    if rule is DropoutRule.STOPPED_ATTENDING:
        return ending_reason == "stopped_attending"
    return ending_reason not in _NOT_DROPOUT and attended_sessions < max_sessions


#: Kept for callers that print the default definition.
DEFAULT_DROPOUT_DEFINITION = DropoutRule.UNILATERAL.describe(3)


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """The clinic's settings a report was computed with, printed in its methods appendix.

    Defaults come from domain.md §3 via :mod:`fit_service.domain.instruments` so there is one
    source for each threshold. ``dropout_definition`` is the printed text; left empty it is
    the chosen rule's standard wording. :meth:`from_mapping` reads a clinic's ``"reports"``
    settings section.
    """

    min_n: int = DEFAULT_MIN_N
    ors_cutoff_adult: float = ORS.clinical_cutoffs[AgeBand.ADULT]  # 25, PCOMS manuals
    ors_cutoff_adolescent: float = ORS.clinical_cutoffs[AgeBand.ADOLESCENT]  # 28, PCOMS norms
    cors_cutoff: float = CORS.clinical_cutoffs[AgeBand.CHILD]  # 32, Duncan et al. 2006
    cutoff_is_clinical: bool = ORS.cutoff_is_clinical  # is a score equal to the cut-off clinical
    reliable_change: float = ORS.reliable_change_points or 5.0  # PCOMS manuals (domain.md §3)
    srs_concern: float = 36.0  # SRS total below this is a concern (domain.md §3)
    dropout_definition: str = ""
    follow_up_days: int = 30  # "still in care a month later"
    severity_reference: str = (
        "the clinic's own clinical-range closed episodes over the trailing 12 months"
    )
    dropout_rule: DropoutRule = DropoutRule.UNILATERAL
    #: N of :attr:`DropoutRule.EARLY_UNPLANNED` ("fewer than N sessions", domain.md §6)
    dropout_max_sessions: int = 3

    def __post_init__(self) -> None:
        if self.min_n < 1:
            raise ValueError("min_n must be at least 1")
        if self.follow_up_days < 1:
            raise ValueError("follow_up_days must be at least 1")
        if not self.dropout_definition.strip():
            text = self.dropout_rule.describe(self.dropout_max_sessions)
            object.__setattr__(self, "dropout_definition", text)

    def cutoff_for(self, age_band: AgeBand) -> float:
        """The clinical cut-off of the outcome measure normed for ``age_band``."""
        if age_band is AgeBand.CHILD:
            return self.cors_cutoff
        if age_band is AgeBand.ADOLESCENT:
            return self.ors_cutoff_adolescent
        return self.ors_cutoff_adult

    def criteria_for(self, age_band: AgeBand) -> ChangeCriteria:
        """Change criteria (fit_service.domain.change) for an age band's outcome measure."""
        return _criteria_for(self, age_band)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> ReportSettings:
        """Validate a clinic's ``"reports"`` settings section; absent keys keep the defaults.

        Raises :class:`FitError` (rule ``invalid_report_setting``) naming the offending key as
        ``reports.<key>``. Unknown keys are refused too: a typo silently ignored would print a
        default the clinic thinks it changed.
        """
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise _setting_error("reports", "must be an object")
        values: dict[str, Any] = {}
        for key, raw in mapping.items():
            spec = _SETTING_SPECS.get(key)
            if spec is None:
                known = ", ".join(sorted(_SETTING_SPECS))
                raise _setting_error(key, f"is not a report setting (known: {known})")
            name, value = spec(key, raw)
            values[name] = value
        return cls(**values)

    def as_mapping(self) -> dict[str, Any]:
        """The settings in the shape :meth:`from_mapping` reads (for a settings endpoint)."""
        return {
            "min_n": self.min_n,
            "dropout_definition": self.dropout_rule.value,
            "dropout_max_sessions": self.dropout_max_sessions,
            "follow_up_days": self.follow_up_days,
            "srs_concern": self.srs_concern,
            "ors_cutoff_adult": self.ors_cutoff_adult,
            "ors_cutoff_adolescent": self.ors_cutoff_adolescent,
            "cors_cutoff": self.cors_cutoff,
            "cutoff_is_clinical": self.cutoff_is_clinical,
            "reliable_change": self.reliable_change,
        }


@functools.lru_cache(maxsize=64)
def _criteria_for(settings: ReportSettings, age_band: AgeBand) -> ChangeCriteria:
    # Built once per settings and band: a report asks for the same three criteria tens of
    # thousands of times (every classified pair, every unilateral ending). Both arguments are
    # frozen and hashable, and ChangeCriteria is immutable, so sharing one is safe.
    return ChangeCriteria.for_instrument(
        outcome_instrument_for(age_band),
        age_band,
        cutoff=settings.cutoff_for(age_band),
        cutoff_is_clinical=settings.cutoff_is_clinical,
        reliable_change_points=settings.reliable_change,
    )


def _setting_error(key: str, problem: str) -> FitError:
    field_name = key if key == "reports" else f"reports.{key}"
    return FitError(f"{field_name} {problem}", field=field_name, rule="invalid_report_setting")


def _int_setting(low: int, high: int) -> Any:
    def parse(key: str, raw: object) -> tuple[str, int]:
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            raise _setting_error(key, f"must be a whole number from {low} to {high}")
        return key, raw

    return parse


def _number_setting(low: float, high: float) -> Any:
    def parse(key: str, raw: object) -> tuple[str, float]:
        ok = (
            not isinstance(raw, bool)
            and isinstance(raw, int | float)
            and math.isfinite(raw)
            and low <= raw <= high
        )
        if not ok:
            raise _setting_error(key, f"must be a number from {low:g} to {high:g}")
        return key, float(raw)  # type: ignore[arg-type]

    return parse


def _bool_setting(key: str, raw: object) -> tuple[str, bool]:
    if not isinstance(raw, bool):
        raise _setting_error(key, "must be true or false")
    return key, raw


def _dropout_setting(key: str, raw: object) -> tuple[str, DropoutRule]:
    if isinstance(raw, str) and raw in {rule.value for rule in DropoutRule}:
        return "dropout_rule", DropoutRule(raw)
    known = ", ".join(rule.value for rule in DropoutRule)
    raise _setting_error(key, f"must be one of {known}")


#: ``"reports"`` settings keys -> parser returning (field name, value). Ranges: ORS/SRS totals
#: run 0-40 (domain.md §2). A cut-off, concern line or reliable change below one point is no
#: clinical threshold but a typo (1e-12 was stored and made every unchanged score a "reliable"
#: change, and its reciprocal overflowed the dropout model's features), so they start at 1.
_SETTING_SPECS: dict[str, Any] = {
    "min_n": _int_setting(1, 1000),
    "dropout_definition": _dropout_setting,
    "dropout_max_sessions": _int_setting(1, 100),
    "follow_up_days": _int_setting(1, 365),
    "srs_concern": _number_setting(1.0, 40.0),
    "ors_cutoff_adult": _number_setting(1.0, 40.0),
    "ors_cutoff_adolescent": _number_setting(1.0, 40.0),
    "cors_cutoff": _number_setting(1.0, 40.0),
    "cutoff_is_clinical": _bool_setting,
    "reliable_change": _number_setting(1.0, 40.0),
}


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
        note="Range: from routine care (about 20%) to the trials' upper end; measured with "
        "the OQ-45 and its own reliable-change index.",
        low=0.20,
        high=0.672,
    ),
    Benchmark(
        metric_key="reliable_deterioration",
        text=f"about 5{DASH}10% of clients",
        # domain.md §4 gives the range without a source; this is where it is usually cited
        # from (a board reading the report cannot look up our reference file).
        source="Lambert 2013 (Bergin & Garfield's Handbook, 6th ed.)",
        low=0.05,
        high=0.10,
    ),
    Benchmark(
        metric_key="pre_post_d",
        text="0.2 small, 0.5 medium, 0.8 large",
        source="Cohen 1988 (conventions)",
        note="Reading guide for differences between groups, not a target: a pre-post d "
        "without a control group runs larger.",
        low=0.2,
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
        note="The interval is that of the mean over 669 studies, mostly trials, with several "
        "definitions of dropout; clinics vary far more. 46.9% in Wierzbicki & Pekarik 1993 "
        "(older, wider definitions).",
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
            "Intervals of rates over sessions",
            "No-show, cancellation, completeness and low-SRS rates count sessions (n = "
            "sessions), but one client's sessions are alike, so each client's sessions are "
            "taken as one cluster (in a clinician's figures, the sessions of the client that "
            "clinician held). The rate p = Σy/Σm over the C clients (y, m: a client's "
            "counted and eligible sessions) has the variance V = C/(C - 1) · Σ(y - p·m)² / n²; "
            "the effective n is p(1 - p)/V, at most n (never narrower than counting sessions "
            "as independent), and n when V is 0 (a rate of 0% or 100%, or every client at the "
            "same rate: a design effect of 1). As V is estimated from C clients, not n "
            "sessions, the effective n is then multiplied by (t(n - 1)/t(C - 1))², with the "
            "0.975 quantiles of Student's t, and the Wilson interval is computed on the "
            "result: a rate from a handful of clients gets a wide interval. All the sessions "
            "from one client count as one observation, corrected as two clients' would be. n "
            "is printed as the number of sessions; the JSON export also gives the number of "
            "clients and the effective n.",
            "Ratio estimator variance: Cochran 1977, ch. 6; design effect: Kish 1965; effective "
            "n and its degrees-of-freedom correction: Korn & Graubard 1998 (Clopper-Pearson "
            "there, Wilson here); design effect 1 at 0% and 100%: NCHS presentation standards "
            "for proportions (Parker et al. 2017)",
        ),
        MethodNote(
            "Confidence intervals for means",
            "Mean ± t(0.975, n - 1) · SD / √n. Medians are printed with their n only.",
            "Student t; Abramowitz & Stegun 1964",
        ),
        MethodNote(
            "Episodes and sessions",
            "Dates are the clinic's own (its time zone). Active: open at any time in the "
            "window. Opened and closed: by the episode's opening and closing date. Sessions "
            "delivered: attended sessions dated in the window. No-show and cancellation "
            "rates: of scheduled sessions (attended + no-show + cancelled). Sessions per "
            "closed episode (attended sessions) and days in treatment (opening to last "
            "attended session): episodes closed in the window with at least one attended "
            "session. Mean intake ORS and SRS: each episode's first ORS/CORS and first "
            "SRS/CSRS total on record (normally from its first attended session), over "
            "episodes opened in the window.",
            "ICCE report indices (International Center for Clinical Excellence)",
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
            f"A change of {s.reliable_change:g} ORS (or CORS) points or more between the first "
            "and last "
            "score of an episode (the fixed PCOMS threshold, used instead of the RCI "
            "(x2 - x1)/S_diff, S_diff = √2·s1·√(1 - r), |RCI| > 1.96).",
            "PCOMS manuals; Jacobson & Truax 1991",
        ),
        MethodNote(
            "Outcome categories",
            "Closed episodes with at least two ORS/CORS totals (the measure normed for the "
            "client's age band), the episode's first score vs its latest (Jacobson & Truax "
            "1991; when no score was given at session 1 the first one given is the baseline); "
            "each against its age band's cut-off. Recovered: "
            "reliable improvement and moved from the clinical to the functional side of the "
            "cut-off. Improved: reliable improvement otherwise. Unchanged. Deteriorated: "
            "reliable worsening. Harmed: reliable worsening that crosses into the clinical "
            "range, which only an episode that started in the functional range can do. "
            "Recovered, improved, unchanged and deteriorated are percentages of "
            "clinical-range intakes; episodes that started in the functional range cannot "
            "recover and are reported apart, with the shares of them reliably worse and "
            "harmed. 'Reliably worse (all intakes)' and 'Last ORS above the cut-off' count "
            "both groups.",
            "Jacobson & Truax 1991; R package clinicalsignificance",
        ),
        MethodNote(
            "Pre-post effect size",
            "d = mean(last - first ORS) / SD(first ORS); 95% CI d ± 1.96·√(2(1 - r)/n + d²/2n), "
            "r the first-last correlation.",
            "Becker 1988; Morris & DeShon 2002",
        ),
        MethodNote(
            "Severity-adjusted effect size",
            "Clinical-range intakes only. Last ORS regressed on first ORS in the reference "
            f"sample ({s.severity_reference}); the group's mean residual is added to the "
            "reference mean change and divided by the reference intake SD. The whole clinic "
            "over the trailing 12 months is its own reference sample: its figure is the "
            "pre-post d of its clinical-range intakes, with that d's interval (Becker 1988). "
            "Every other group (clinicians, age bands, the month): 95% CI "
            "± 1.96·SD(residuals)/(√n·reference intake SD), the reference held fixed, which "
            "leaves out the reference's own sampling error (small while the reference holds "
            "many more episodes than the group). ≥ 0.8 is read as large, < 0.3 as small. It "
            "compares clinicians and age bands with different intake severity fairly.",
            "Seidel, Miller & Chow 2014",
        ),
        MethodNote(
            "Dropout",
            f"Clinic definition: {s.dropout_definition} Endings are coded planned/mutual, "
            "unilateral or other; unilateral endings are split by whether the last ORS was "
            "above or below the cut-off. Rate: of episodes closed in the window.",
            "Clinic setting; Swift & Greenberg 2012",
        ),
        MethodNote(
            "Alliance",
            f"SRS/CSRS total below {s.srs_concern:g} is a concern (share of attended sessions "
            "with an SRS). Alerts: raised, acknowledged and resolved (by a clinician; "
            "alerts the system closed itself are not counted) in the window; time to "
            "acknowledge is the median in hours over alerts acknowledged in the window. "
            "Flagged episodes attending a month after the first alert: episodes whose first "
            f"alert plus {s.follow_up_days} days falls in the window (so the follow-up can be "
            "seen), and of those the ones with an attended session on or after that day. Its "
            "n counts episodes, not the alerts raised in the window.",
            "PCOMS; OpenFIT",
        ),
        MethodNote(
            "Data completeness",
            "Share of attended sessions with an ORS/CORS total, with an SRS/CSRS total. A "
            "measure marked 'not completed' is missing, never zero.",
            "fit-service definition",
        ),
        MethodNote(
            "Benchmarks",
            "Beside each headline figure: the same figure over the trailing 12 months (the "
            "clinic's own benchmark) and, where published, a literature reference with its "
            "source. References come from studies with other definitions and populations: "
            "read them as context, not targets.",
            "Sources as printed beside each reference",
        ),
        MethodNote(
            "Privacy",
            "Aggregates only: no client identifiers and no questionnaire item text (ORS/SRS "
            "wording is copyrighted). Clinicians appear under their pseudonymous EHR label.",
            "fit-service policy",
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
    #: The month had not ended in the clinic's zone when the report was made
    #: (``generated_at`` is then that moment): its figures hold the sessions recorded so far.
    in_progress: bool = False

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


# --------------------------------------------------------------------------------------------
# Aggregation: from per-episode and per-session facts to one group's figures
# --------------------------------------------------------------------------------------------
#
# The service layer reads the database (SQL aggregates and one streaming pass over per-episode
# rows) and routes each fact to the builders of the groups and windows it belongs to; every
# decision about what a fact counts as, and every formula, is made here or in
# fit_service.domain.change / effect_sizes. No identifiers enter these types.


@dataclass(frozen=True, slots=True)
class Window:
    """A closed range of clinic-local dates: one month, or the trailing 12 months."""

    first_day: date
    last_day: date

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            raise ValueError("a window cannot end before it starts")

    def contains(self, day: date | None) -> bool:
        return day is not None and self.first_day <= day <= self.last_day

    @classmethod
    def month(cls, period: str) -> Window:
        year, month = _parse_period(period)
        following = date(year + month // 12, month % 12 + 1, 1)
        return cls(date(year, month, 1), following - timedelta(days=1))

    @classmethod
    def trailing(cls, period: str, count: int = 12) -> Window:
        months = trailing_months(period, count)
        return cls(cls.month(months[0]).first_day, cls.month(months[-1]).last_day)


@dataclass(frozen=True, slots=True)
class EpisodeFacts:
    """One episode as the report needs it. ``intake_*`` are the episode's first totals (the
    baseline, as in :func:`fit_service.services.outcomes.intake_of`); ``last_ors`` is the
    latest total of the outcome measure normed for the client's age band."""

    age_band: AgeBand
    opened_on: date
    closed_on: date | None
    ending_reason: str | None
    attended_sessions: int
    last_attended_on: date | None
    intake_ors: float | None
    last_ors: float | None
    ors_count: int
    intake_srs: float | None

    def is_active_in(self, window: Window) -> bool:
        """Open at any time in the window."""
        return self.opened_on <= window.last_day and (
            self.closed_on is None or self.closed_on >= window.first_day
        )

    @property
    def has_outcome_pair(self) -> bool:
        """At least two ORS/CORS totals, the first at intake (domain.md §4)."""
        return self.intake_ors is not None and self.last_ors is not None and self.ors_count >= 2


@dataclass(frozen=True, slots=True)
class SessionCounts:
    """Sessions in a window: attendance, and attended sessions with an ORS/SRS total."""

    attended: int = 0
    no_shows: int = 0
    cancellations: int = 0
    with_ors: int = 0
    with_srs: int = 0
    srs_below_concern: int = 0

    def __post_init__(self) -> None:
        _non_negative(self)

    def __add__(self, other: SessionCounts) -> SessionCounts:
        return SessionCounts(
            self.attended + other.attended,
            self.no_shows + other.no_shows,
            self.cancellations + other.cancellations,
            self.with_ors + other.with_ors,
            self.with_srs + other.with_srs,
            self.srs_below_concern + other.srs_below_concern,
        )


#: The columns of a per-episode session count matrix (:meth:`FiguresBuilder.add_sessions`),
#: in :class:`SessionCounts` field order.
SESSION_COLUMNS: tuple[str, ...] = tuple(SessionCounts.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class SessionSpread:
    """How a window's sessions sit in clients, for the intervals of the five rates over
    sessions (no-shows, cancellations, ORS and SRS completeness, SRS below the concern line).

    One cluster per client (per client and clinician in a clinician's figures: the sessions
    that clinician held). Why: a client's sessions are alike - across their episodes too - so
    the rates' intervals must rest on how much clients differ, not on the count of sessions
    (:class:`~fit_service.domain.effect_sizes.ClusterSpread`).
    """

    no_shows: ClusterSpread
    cancellations: ClusterSpread
    with_ors: ClusterSpread
    with_srs: ClusterSpread
    srs_below_concern: ClusterSpread

    @classmethod
    def of(cls, counts: np.ndarray) -> SessionSpread:
        """From a matrix of one row per cluster, columns :data:`SESSION_COLUMNS`."""
        if counts.ndim != 2 or counts.shape[1] != len(SESSION_COLUMNS):
            raise ValueError(f"need one column per {SESSION_COLUMNS}")
        attended, no_shows, cancellations, with_ors, with_srs, low_srs = counts.T
        scheduled = attended + no_shows + cancellations
        # The five rates' (numerator, denominator) columns, in field order.
        numerators = np.stack((no_shows, cancellations, with_ors, with_srs, low_srs), axis=1)
        denominators = np.stack((scheduled, scheduled, attended, attended, with_srs), axis=1)
        return cls(*ClusterSpread.of_columns(numerators, denominators))


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """One alert: when it was raised, acknowledged and resolved (clinic-local dates) and the
    two instants time-to-acknowledge is measured between (aware)."""

    raised_on: date
    opened_at: datetime
    acknowledged_on: date | None = None
    acknowledged_at: datetime | None = None
    resolved_on: date | None = None

    @property
    def hours_to_acknowledge(self) -> float | None:
        if self.acknowledged_at is None:
            return None
        return (self.acknowledged_at - self.opened_at).total_seconds() / 3600.0


@dataclass(frozen=True, slots=True)
class FlaggedEpisode:
    """An episode's first alert and its last attended session, for "still in care a month
    later"."""

    first_flag_on: date
    last_attended_on: date | None


#: Outcome measures are all higher-is-better (ORS, CORS: domain.md §2).
_OUTCOME_DIRECTION = Direction.HIGHER_IS_BETTER


@functools.lru_cache(maxsize=64)
def _preselected_criteria(settings: ReportSettings) -> ChangeCriteria:
    """Criteria for a sample already restricted to clinical-range intakes, each judged against
    its own age band's cut-off. effect_sizes filters by one cut-off; a cut-off above the
    scale's maximum makes that filter keep every (already selected) pair."""
    return ChangeCriteria(
        direction=_OUTCOME_DIRECTION,
        reliable_change=ReliableChange.fixed(settings.reliable_change),
        cutoff=Cutoff.fixed(ORS.total_max + 1.0),
    )


@dataclass(frozen=True, slots=True, eq=False)
class ClassifiedOutcomes:
    """Outcome pairs classified per age band (fit_service.domain.change), pooled."""

    summary: ChangeSummary
    last_above_cutoff: int
    first: np.ndarray
    last: np.ndarray
    clinical_first: np.ndarray
    clinical_last: np.ndarray

    @classmethod
    def of(
        cls, pairs: Sequence[tuple[AgeBand, float, float]], settings: ReportSettings
    ) -> ClassifiedOutcomes:
        if not pairs:
            return _NO_OUTCOMES
        codes, clinical, firsts, lasts, above = [], [], [], [], 0
        for band in AgeBand:
            x1 = np.array([p[1] for p in pairs if p[0] is band], dtype=np.float64)
            if not x1.size:
                continue
            x2 = np.array([p[2] for p in pairs if p[0] is band], dtype=np.float64)
            criteria = settings.criteria_for(band)
            result = classify_many(x1, x2, criteria)
            codes.append(result.codes)
            clinical.append(result.clinical_at_intake)
            above += int(np.count_nonzero(~clinical_mask(x2, criteria)))
            firsts.append(x1)
            lasts.append(x2)
        clinical_first = np.concatenate(clinical)
        first, last = np.concatenate(firsts), np.concatenate(lasts)
        return cls(
            summary=ChangeSummary.from_codes(np.concatenate(codes), clinical_first),
            last_above_cutoff=above,
            first=first,
            last=last,
            clinical_first=first[clinical_first],
            clinical_last=last[clinical_first],
        )

    def counts(self) -> OutcomeCounts:
        return OutcomeCounts.from_summary(self.summary, self.last_above_cutoff)


#: Position of each age band in :class:`AgeBand`'s order (the order pairs are pooled in).
_BAND_ORDER = {band: index for index, band in enumerate(AgeBand)}


def _pooled_scores(
    bands: np.ndarray, first: np.ndarray, last: np.ndarray, clinical: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """First and last scores in :meth:`ClassifiedOutcomes.of`'s order (by age band in
    :class:`AgeBand` order, then as added), all and those of clinical-range intakes."""
    order = np.argsort(bands, kind="stable")
    first, last, clinical_first = first[order], last[order], clinical[order]
    return first, last, first[clinical_first], last[clinical_first]


_NO_OUTCOMES = ClassifiedOutcomes(
    summary=ChangeSummary.from_codes(np.zeros(0, dtype=np.int8), np.zeros(0, dtype=bool)),
    last_above_cutoff=0,
    first=np.zeros(0),
    last=np.zeros(0),
    clinical_first=np.zeros(0),
    clinical_last=np.zeros(0),
)


def fit_reference(
    pairs: Sequence[tuple[AgeBand, float, float]], settings: ReportSettings
) -> SeverityReference | None:
    """The severity-adjustment reference (Seidel, Miller & Chow 2014) fitted on the
    clinical-range intakes among ``pairs`` (the clinic's trailing 12 months)."""
    classified = ClassifiedOutcomes.of(pairs, settings)
    return SeverityReference.fit(
        classified.clinical_first,
        classified.clinical_last,
        _preselected_criteria(settings),
        source=settings.severity_reference,
    )


@dataclass(frozen=True, slots=True)
class EpisodeEnding:
    """How a closed episode ended, as the dropout block counts it (each field 0 or 1)."""

    dropout: int
    planned: int
    unilateral: int
    unilateral_below: int  # last ORS in the clinical range (below the cut-off)
    unilateral_above: int

    @classmethod
    def of(cls, facts: EpisodeFacts, settings: ReportSettings) -> EpisodeEnding:
        dropout = int(
            is_dropout(
                settings.dropout_rule,
                facts.ending_reason,
                facts.attended_sessions,
                settings.dropout_max_sessions,
            )
        )
        if facts.ending_reason in PLANNED_ENDINGS:
            return _ending(dropout, 1, 0, 0, 0)
        if facts.ending_reason not in UNILATERAL_ENDINGS:
            return _ending(dropout, 0, 0, 0, 0)
        if facts.last_ors is None:
            return _ending(dropout, 0, 1, 0, 0)
        criteria = settings.criteria_for(facts.age_band)
        if criteria.cutoff.is_clinical(facts.last_ors, criteria.direction):
            return _ending(dropout, 0, 1, 1, 0)
        return _ending(dropout, 0, 1, 0, 1)


@functools.cache
def _ending(
    dropout: int, planned: int, unilateral: int, unilateral_below: int, unilateral_above: int
) -> EpisodeEnding:
    """One shared instance per possible ending (a handful): :meth:`EpisodeEnding.of` runs for
    every closed episode, and the value is immutable, so it need not be built each time."""
    return EpisodeEnding(dropout, planned, unilateral, unilateral_below, unilateral_above)


#: An :class:`EpisodeTable` date column's value for "no such date" (still open; no attended
#: session): below every real ordinal, so it never falls in a window.
NO_DAY = -1

#: Ending reasons by code in :attr:`EpisodeTable.reasons` (none recorded is code 0).
_ENDING_FIELDS = 5  # EpisodeEnding's fields, in field order


@dataclass(frozen=True, slots=True, eq=False)
class EpisodeTable:
    """Many episodes' facts as columns, one row per episode in the order they are added: what
    :class:`EpisodeFacts` holds, plus how each closed episode ended and how its outcome pair
    classifies (:class:`EpisodeEnding`; the change category, whether the intake was in the
    clinical range and whether the last score is above the cut-off), decided once for every
    group and window and vectorised.

    Why columns: a clinic-month report hands ~13,000 episodes to the builders of three groups
    (clinic, age band, clinician) in two windows. Deciding what each counts as with array
    masks per group kind and window (:meth:`FiguresBuilder.add_table_to`), instead of with
    one object per episode handed to six builders, is what keeps this part of the report
    cheap; the figures come out the same, to the last bit (the builders see the same numbers
    in the same order).
    """

    band: np.ndarray  # int8, position in AgeBand
    opened_on: np.ndarray  # int64 ordinals
    closed_on: np.ndarray  # int64 ordinals; NO_DAY while open
    #: attended sessions and days from opening to the last attended session, of episodes
    #: that count for session statistics (at least one attended session on record); else 0
    sessions: np.ndarray
    days: np.ndarray
    intake_ors: np.ndarray  # float64; NaN when none
    intake_srs: np.ndarray
    last_ors: np.ndarray
    #: closed with an outcome pair (EpisodeFacts.has_outcome_pair)
    paired: np.ndarray
    #: (rows, 5) int64: EpisodeEnding's fields of each closed episode; zeros while open
    endings: np.ndarray
    #: each paired episode's change category rank (:func:`classify_many`), clinical-range
    #: intake and last score above the cut-off (code -1 and False elsewhere)
    codes: np.ndarray  # int8
    clinical: np.ndarray  # bool
    above: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.band.size)

    @classmethod
    def build(
        cls,
        settings: ReportSettings,
        *,
        band: np.ndarray,
        opened_on: np.ndarray,
        closed_on: np.ndarray,
        ending_reason: Sequence[str | None],
        attended: np.ndarray,
        last_attended_on: np.ndarray,
        intake_ors: np.ndarray,
        last_ors: np.ndarray,
        ors_count: np.ndarray,
        intake_srs: np.ndarray,
    ) -> EpisodeTable:
        """The table of columns as :class:`EpisodeFacts` holds them: ``band`` as positions in
        :class:`AgeBand`, dates as ordinals (:data:`NO_DAY` for none), scores as floats
        (``NaN`` for none)."""
        band = np.asarray(band, np.int8)
        opened_on = np.asarray(opened_on, np.int64)
        closed_on = np.asarray(closed_on, np.int64)
        attended = np.asarray(attended, np.int64)
        last_on = np.asarray(last_attended_on, np.int64)
        first, last = np.asarray(intake_ors, np.float64), np.asarray(last_ors, np.float64)
        closed = closed_on != NO_DAY
        # EpisodeFacts.has_outcome_pair, of closed episodes (only theirs are counted)
        paired = closed & ~np.isnan(first) & ~np.isnan(last) & (np.asarray(ors_count) >= 2)
        counted = (attended >= 1) & (last_on != NO_DAY)
        codes = np.full(band.size, NOT_CLASSIFIABLE, np.int8)
        clinical = np.zeros(band.size, np.bool_)
        above = np.zeros(band.size, np.bool_)
        last_clinical = np.zeros(band.size, np.bool_)
        for index, age_band in enumerate(AgeBand):
            rows = band == index
            if not rows.any():
                continue
            criteria = settings.criteria_for(age_band)
            # NaN (no last score) is not clinical; only unilateral endings with a score use it
            last_clinical[rows] = clinical_mask(last[rows], criteria)
            pairs = np.flatnonzero(rows & paired)
            if pairs.size:
                # one vectorised call per age band, row for row what
                # ClassifiedOutcomes.of computes for the same pairs
                result = classify_many(first[pairs], last[pairs], criteria)
                codes[pairs] = result.codes
                clinical[pairs] = result.clinical_at_intake
                above[pairs] = ~last_clinical[pairs]
        return cls(
            band=band,
            opened_on=opened_on,
            closed_on=closed_on,
            sessions=np.where(counted, attended, 0),
            days=np.where(counted, last_on - opened_on, 0),
            intake_ors=first,
            intake_srs=np.asarray(intake_srs, np.float64),
            last_ors=last,
            paired=paired,
            endings=_endings(settings, closed, ending_reason, attended, last, last_clinical),
            codes=codes,
            clinical=clinical,
            above=above,
        )

    @classmethod
    def of(cls, episodes: Sequence[EpisodeFacts], settings: ReportSettings) -> EpisodeTable:
        """The table of ``episodes`` (for callers holding :class:`EpisodeFacts`: tests, and
        :meth:`FiguresBuilder.add_episode`)."""

        def ordinal(day: date | None) -> int:
            return NO_DAY if day is None else day.toordinal()

        def score(value: float | None) -> float:
            return math.nan if value is None else value

        return cls.build(
            settings,
            band=np.array([_BAND_ORDER[e.age_band] for e in episodes], np.int8),
            opened_on=np.array([e.opened_on.toordinal() for e in episodes], np.int64),
            closed_on=np.array([ordinal(e.closed_on) for e in episodes], np.int64),
            ending_reason=[e.ending_reason for e in episodes],
            attended=np.array([e.attended_sessions for e in episodes], np.int64),
            last_attended_on=np.array([ordinal(e.last_attended_on) for e in episodes], np.int64),
            intake_ors=np.array([score(e.intake_ors) for e in episodes], np.float64),
            last_ors=np.array([score(e.last_ors) for e in episodes], np.float64),
            ors_count=np.array([e.ors_count for e in episodes], np.int64),
            intake_srs=np.array([score(e.intake_srs) for e in episodes], np.float64),
        )


def _endings(
    settings: ReportSettings,
    closed: np.ndarray,
    reasons: Sequence[str | None],
    attended: np.ndarray,
    last_ors: np.ndarray,
    last_clinical: np.ndarray,
) -> np.ndarray:
    """:meth:`EpisodeEnding.of` of every closed episode, as rows of its five fields.

    Whether an ending is a dropout depends on the reason and, for one rule, on the attended
    sessions: :func:`is_dropout` is asked once per distinct pair (a few dozen), not per
    episode, so the rule stays in that one function."""
    endings = np.zeros((closed.size, _ENDING_FIELDS), np.int64)
    rows = np.flatnonzero(closed)
    if not rows.size:
        return endings
    reason_of = [reasons[i] for i in rows.tolist()]
    distinct = sorted(set(reason_of), key=lambda r: (r is not None, r or ""))
    codes = np.array([distinct.index(r) for r in reason_of], np.int64)
    sessions = attended[rows]
    rule, max_sessions = settings.dropout_rule, settings.dropout_max_sessions
    pairs, where = np.unique(np.stack([codes, sessions]), axis=1, return_inverse=True)
    dropout = np.array(
        [is_dropout(rule, distinct[code], count, max_sessions) for code, count in pairs.T.tolist()],
        np.int64,
    )[where.reshape(-1)]
    planned = np.isin(codes, [i for i, r in enumerate(distinct) if r in PLANNED_ENDINGS])
    unilateral = np.isin(codes, [i for i, r in enumerate(distinct) if r in UNILATERAL_ENDINGS])
    scored = unilateral & ~np.isnan(last_ors[rows])
    below = scored & last_clinical[rows]
    endings[rows] = np.stack([dropout, planned, unilateral, below, scored & ~below], axis=1)
    return endings


#: Positions of one group's rows in an EpisodeTable, by what they count as in one window:
#: (table, active, opened in the window, closed in it, closed in it with an outcome pair).
_Part = tuple[EpisodeTable, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True, slots=True, eq=False)
class _ClosedColumns:
    """A builder's closed episodes as columns: what :meth:`FiguresBuilder.figures` and
    :meth:`FiguresBuilder.trend` both read, pulled together once."""

    rows: int  # closed episodes (counted or not)
    sessions: np.ndarray  # int64, of the counted episodes, in the order added
    days: np.ndarray  # int64, same rows
    closed_on: np.ndarray  # int64 ordinals, same rows
    #: dropouts, planned, unilateral, unilateral below and above the cut-off, over all rows
    endings: tuple[int, ...]


@dataclass(frozen=True, slots=True, eq=False)
class _PairColumns:
    """A builder's outcome pairs, counted and pooled once (what :class:`ClassifiedOutcomes`
    holds, without its per-category summary); codes and closing days in the order added are
    kept for the trend."""

    rows: int
    counts: OutcomeCounts
    first: np.ndarray  # pooled order, as ClassifiedOutcomes
    last: np.ndarray
    clinical_first: np.ndarray
    clinical_last: np.ndarray
    codes: np.ndarray  # int8, order added
    clinical: np.ndarray  # bool, order added
    closed_on: np.ndarray  # int64 ordinals, order added
    bands: np.ndarray  # int8, order added
    first_added: np.ndarray  # float64, order added
    last_added: np.ndarray


_EMPTY_INTS = np.zeros(0, dtype=np.int64)
_EMPTY_INTS.flags.writeable = False


def _gather(parts: Sequence[_Part], which: int, column: str) -> np.ndarray:
    """``column`` of the rows at position ``which`` of each part, in the order added."""
    pieces = [getattr(part[0], column)[part[which]] for part in parts]
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _by_group(mask: np.ndarray, groups: np.ndarray, keys: np.ndarray) -> list[np.ndarray]:
    """For each of ``keys``: the rows (ascending) where ``mask`` holds and ``groups`` is that
    key. One stable sort, so each group's rows keep the order they were added in."""
    rows = np.flatnonzero(mask)
    of_rows = groups[rows]
    order = np.argsort(of_rows, kind="stable")
    rows, of_rows = rows[order], of_rows[order]
    low = np.searchsorted(of_rows, keys, side="left").tolist()
    high = np.searchsorted(of_rows, keys, side="right").tolist()
    return [rows[a:b] for a, b in zip(low, high, strict=True)]


@functools.lru_cache(maxsize=64)
def _trend_months(periods: tuple[str, ...]) -> tuple[tuple[Window, ...], np.ndarray]:
    """The month windows of ``periods`` and the first-day ordinals of all but the first (the
    edges a closing day is sorted into); the same for every builder of a report."""
    windows = tuple(Window.month(period) for period in periods)
    starts = np.array([w.first_day.toordinal() for w in windows[1:]], dtype=np.int64)
    starts.flags.writeable = False  # shared through the cache
    return windows, starts


# positions in a _Part (Final: each indexes its own array, not "any item of the tuple")
_ACTIVE: Final = 1
_OPENED: Final = 2
_CLOSED: Final = 3
_PAIRED: Final = 4


class FiguresBuilder:
    """Collects one group's facts over one window and turns them into :class:`GroupFigures`.

    Facts outside the window are ignored, so a caller may hand every builder every fact of its
    group. Memory: a few numbers per episode active in the window, never the history.

    Episodes arrive as rows of an :class:`EpisodeTable` shared by every group
    (:meth:`add_table_to`), or one by one (:meth:`add_episode`); they are pulled together into
    columns when figures are asked for.
    """

    def __init__(self, window: Window, settings: ReportSettings) -> None:
        self.window = window
        self.settings = settings
        self._parts: list[_Part] = []
        self._pending: list[EpisodeFacts] = []
        self._session_counts: list[np.ndarray] = []
        # Columns of _parts, remembered with the part count they were made from: parts are
        # only ever appended, so an equal count means they are current.
        self._closed_columns_cache: tuple[int, _ClosedColumns] | None = None
        self._pair_columns_cache: tuple[int, _PairColumns] | None = None
        self.alerts_raised = self.alerts_acknowledged = self.alerts_resolved = 0
        self.hours_to_acknowledge: list[float] = []
        self.flagged_followed_up = self.flagged_in_care = 0

    def _all_parts(self) -> list[_Part]:
        """The parts, after turning episodes added one by one into a part of their own."""
        if self._pending:
            pending, self._pending = self._pending, []
            table = EpisodeTable.of(pending, self.settings)
            FiguresBuilder.add_table_to({0: self}, table, np.zeros(len(table), np.int64))
        return self._parts

    @property
    def episodes_active(self) -> int:
        return sum(int(part[_ACTIVE].size) for part in self._all_parts())

    @property
    def episodes_opened(self) -> int:
        return sum(int(part[_OPENED].size) for part in self._all_parts())

    @property
    def episodes_closed(self) -> int:
        return sum(int(part[_CLOSED].size) for part in self._all_parts())

    @property
    def pairs(self) -> list[tuple[AgeBand, float, float]]:
        """(age band, first, last ORS) of each closed episode with an outcome pair, in the
        order added (what :func:`fit_reference` takes)."""
        bands = tuple(AgeBand)
        columns = self._pair_columns()
        return [
            (bands[band], first, last)
            for band, first, last in zip(
                columns.bands.tolist(),
                columns.first_added.tolist(),
                columns.last_added.tolist(),
                strict=True,
            )
        ]

    def _session_matrix(self) -> np.ndarray:
        """Everything given to :meth:`add_sessions`, one row per cluster."""
        if not self._session_counts:
            return np.zeros((0, len(SESSION_COLUMNS)), np.int64)
        if len(self._session_counts) > 1:
            self._session_counts = [np.concatenate(self._session_counts)]
        return self._session_counts[0]

    @property
    def sessions(self) -> SessionCounts:
        """The sum of everything given to :meth:`add_sessions` (integers: order-free)."""
        return SessionCounts(*map(int, self._session_matrix().sum(axis=0)))

    @property
    def session_spread(self) -> SessionSpread:
        """How the sessions sit in their clusters (integer sums: order-free)."""
        return SessionSpread.of(self._session_matrix())

    def add_episode(self, facts: EpisodeFacts) -> None:
        """One episode (its ending and outcome are decided with the next batch, as a table)."""
        self._pending.append(facts)

    @staticmethod
    def add_table_to(
        builders: Mapping[int, FiguresBuilder], table: EpisodeTable, groups: np.ndarray
    ) -> None:
        """Hand each row of ``table`` to the builder of its group (``groups[row]``, a key of
        ``builders``; rows of other groups, e.g. ``-1``, are skipped). The builders share one
        window and settings (one group kind: clinic, age bands or clinicians): what a row
        counts as in that window is decided once for all of them, by array masks."""
        if not builders:
            return
        first = next(iter(builders.values()))
        window, settings = first.window, first.settings
        for builder in builders.values():
            if (builder.window is not window or builder.settings is not settings) and (
                builder.window != window or builder.settings != settings
            ):
                raise ValueError("add_table_to needs builders of one window and settings")
            builder._all_parts()  # keep the order episodes were added in
        start, end = window.first_day.toordinal(), window.last_day.toordinal()
        closed_on = table.closed_on
        # EpisodeFacts.is_active_in: opened by the window's end, not closed before its start
        active = (table.opened_on <= end) & ((closed_on == NO_DAY) | (closed_on >= start))
        closed = active & (closed_on != NO_DAY) & (closed_on <= end)
        masks = (active, active & (table.opened_on >= start), closed, closed & table.paired)
        keys = np.fromiter(builders, np.int64, len(builders))
        split = [_by_group(mask, groups, keys) for mask in masks]
        for position, builder in enumerate(builders.values()):
            rows = [per_key[position] for per_key in split]
            if rows[0].size:  # every other mask is within ``active``
                builder._parts.append((table, rows[0], rows[1], rows[2], rows[3]))

    def add_sessions(self, counts: np.ndarray) -> None:
        """Sessions already known to fall in this window and group: one row per cluster (a
        client's sessions; in a clinician's group, those of the client that clinician held), columns
        :data:`SESSION_COLUMNS`. Each cluster must come whole, in one row: the rates'
        intervals rest on how clusters differ (:class:`SessionSpread`)."""
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 2 or counts.shape[1] != len(SESSION_COLUMNS):
            raise ValueError(f"need one column per {SESSION_COLUMNS}")
        if (counts < 0).any():
            raise ValueError("session counts cannot be negative")
        self._session_counts.append(counts)

    def add_alert(self, alert: AlertFacts) -> None:
        window = self.window
        self.alerts_raised += window.contains(alert.raised_on)
        if window.contains(alert.acknowledged_on):
            self.alerts_acknowledged += 1
            hours = alert.hours_to_acknowledge
            if hours is not None:
                self.hours_to_acknowledge.append(hours)
        self.alerts_resolved += window.contains(alert.resolved_on)

    def add_flagged(self, flagged: FlaggedEpisode) -> None:
        """Cohort: episodes first flagged ``follow_up_days`` before a day of the window (so the
        month after the flag has passed by the window's end). In care: an attended session on
        or after the flag date plus ``follow_up_days``."""
        later = timedelta(days=self.settings.follow_up_days)
        due = flagged.first_flag_on + later
        if not self.window.contains(due):
            return
        self.flagged_followed_up += 1
        if flagged.last_attended_on is not None and flagged.last_attended_on >= due:
            self.flagged_in_care += 1

    # ------------------------------------------------------------------ results

    def _closed_columns(self) -> _ClosedColumns:
        parts = self._all_parts()
        cached = self._closed_columns_cache
        if cached is not None and cached[0] == len(parts):
            return cached[1]
        rows = sum(int(part[_CLOSED].size) for part in parts)
        if rows:
            sessions = _gather(parts, _CLOSED, "sessions")
            counted = sessions >= 1
            endings = _gather(parts, _CLOSED, "endings")
            columns = _ClosedColumns(
                rows=rows,
                sessions=sessions[counted],
                days=_gather(parts, _CLOSED, "days")[counted],
                closed_on=_gather(parts, _CLOSED, "closed_on")[counted],
                endings=tuple(endings.sum(axis=0).tolist()),
            )
        else:
            columns = _ClosedColumns(0, _EMPTY_INTS, _EMPTY_INTS, _EMPTY_INTS, (0,) * 5)
        self._closed_columns_cache = (len(parts), columns)
        return columns

    def _pair_columns(self) -> _PairColumns:
        parts = self._all_parts()
        cached = self._pair_columns_cache
        if cached is not None and cached[0] == len(parts):
            return cached[1]
        rows = sum(int(part[_PAIRED].size) for part in parts)
        if rows:
            codes = _gather(parts, _PAIRED, "codes")
            clinical = _gather(parts, _PAIRED, "clinical")
            above = int(np.count_nonzero(_gather(parts, _PAIRED, "above")))
            bands = _gather(parts, _PAIRED, "band")
            first = _gather(parts, _PAIRED, "intake_ors")
            last = _gather(parts, _PAIRED, "last_ors")
            columns = _PairColumns(
                rows,
                OutcomeCounts.from_codes(codes, clinical, above),
                *_pooled_scores(bands, first, last, clinical),
                codes,
                clinical,
                _gather(parts, _PAIRED, "closed_on"),
                bands,
                first,
                last,
            )
        else:
            no_scores = np.zeros(0, np.float64)
            columns = _PairColumns(
                0,
                OutcomeCounts.empty(),
                *(no_scores,) * 4,
                np.zeros(0, np.int8),
                np.zeros(0, np.bool_),
                _EMPTY_INTS,
                np.zeros(0, np.int8),
                no_scores,
                no_scores,
            )
        self._pair_columns_cache = (len(parts), columns)
        return columns

    def _intakes(self, column: str) -> np.ndarray:
        """Intake scores of the episodes opened in the window, those on record, in order."""
        parts = self._all_parts()
        if not parts:
            return np.zeros(0, np.float64)
        scores = _gather(parts, _OPENED, column)
        return scores[~np.isnan(scores)]

    def classified(self) -> ClassifiedOutcomes:
        """The window's outcome pairs, classified once (fit_service.domain.change)."""
        pairs = self._pair_columns()
        if not pairs.rows:
            return _NO_OUTCOMES
        return ClassifiedOutcomes(
            summary=ChangeSummary.from_codes(pairs.codes, pairs.clinical),
            last_above_cutoff=pairs.counts.last_above_cutoff,
            first=pairs.first,
            last=pairs.last,
            clinical_first=pairs.clinical_first,
            clinical_last=pairs.clinical_last,
        )

    def figures(
        self, reference: SeverityReference | None, *, own_reference: bool = False
    ) -> GroupFigures:
        """Every figure of the group and window; ``reference`` anchors the SA-ES.

        ``own_reference``: this group's pairs are the very sample ``reference`` was fitted on
        (the clinic's trailing 12 months). Its SA-ES is then computed as its own reference
        (effect_sizes: the clinical-range pre-post d with its Becker interval), not against
        the fitted reference held fixed, whose interval would leave out the sampling error
        of the reference's mean change, which here is the whole estimate."""
        s = self.sessions
        spread = self.session_spread
        closed = self._closed_columns()
        pairs = self._pair_columns()
        n_pairs = int(pairs.first.size)
        n_clinical = int(pairs.clinical_first.size)
        # pre_post_d is None below two pairs, severity_adjusted_es without a clinical-range
        # pair (both check that first); deciding it here skips their fixed numpy cost in the
        # many small groups (a clinician's month), with the same result.
        d = None
        if n_pairs >= 2:
            d = pre_post_d(pairs.first, pairs.last, _OUTCOME_DIRECTION)
        sa_es = None
        if reference is not None and n_clinical:
            sa_es = severity_adjusted_es(
                pairs.clinical_first,
                pairs.clinical_last,
                _preselected_criteria(self.settings),
                reference=None if own_reference else reference,
            )
        dropouts, planned, unilateral, unilateral_below, unilateral_above = closed.endings
        return GroupFigures(
            activity=Activity(
                episodes_active=self.episodes_active,
                episodes_opened=self.episodes_opened,
                episodes_closed=closed.rows,
                sessions_attended=s.attended,
                no_shows=s.no_shows,
                cancellations=s.cancellations,
                spread=spread,
            ),
            sessions=SessionStats.from_arrays(closed.sessions, closed.days),
            intake_ors=mean_estimate_of_array(self._intakes("intake_ors")),
            intake_srs=mean_estimate_of_array(self._intakes("intake_srs")),
            outcomes=pairs.counts,
            pre_post_d=Estimate.of_effect_size(d, n_pairs),
            severity_adjusted_es=Estimate.of_effect_size(sa_es, n_clinical),
            dropout=DropoutSummary(
                closed_episodes=closed.rows,
                dropouts=dropouts,
                planned_endings=planned,
                unilateral_endings=unilateral,
                unilateral_last_ors_above_cutoff=unilateral_above,
                unilateral_last_ors_below_cutoff=unilateral_below,
            ),
            alliance=AllianceSummary(
                sessions_with_srs=s.with_srs,
                srs_below_concern=s.srs_below_concern,
                alerts_raised=self.alerts_raised,
                alerts_acknowledged=self.alerts_acknowledged,
                alerts_resolved=self.alerts_resolved,
                hours_to_acknowledge=median_estimate(self.hours_to_acknowledge),
                flagged_episodes_followed_up=self.flagged_followed_up,
                flagged_episodes_in_care_after_follow_up=self.flagged_in_care,
                srs_concern=self.settings.srs_concern,
                spread=spread,
            ),
            completeness=CompletenessSummary(s.attended, s.with_ors, s.with_srs, spread),
        )

    def trend_point(self, period: str) -> TrendPoint:
        """Recovery and mean sessions of the episodes closed in this (one-month) window."""
        counts = self._pair_columns().counts
        return TrendPoint(
            month=period,
            recovery=counts.share(ChangeCategory.RECOVERED),
            mean_sessions=mean_estimate_of_array(self._closed_columns().sessions),
        )

    def trend(self, periods: Sequence[str]) -> tuple[TrendPoint, ...]:
        """One :meth:`trend_point` per month of ``periods``, from this builder's own facts.

        Every month must lie inside the builder's window (the trailing 12 months' builder
        holds every episode closed in each of its months), so the trend needs no builder of
        its own per month, and the pairs are classified once, not once per month. Each
        episode's category depends on its own scores only, so counting the categories per
        month gives exactly what classifying each month apart would.
        """
        windows, starts = _trend_months(tuple(periods))
        if any(
            w.first_day < self.window.first_day or w.last_day > self.window.last_day
            for w in windows
        ):
            raise ValueError("every trend month must lie inside the builder's window")
        pairs = self._pair_columns()
        recovered, clinical = _recovery_by_month(
            pairs, np.searchsorted(starts, pairs.closed_on, side="right"), len(windows)
        )
        closed = self._closed_columns()
        # Each month's sessions as one slice: sorted by month (stably, so within a month in
        # the order added, as a per-month filter would give them).
        months = np.searchsorted(starts, closed.closed_on, side="right")
        order = np.argsort(months, kind="stable")
        bounds = np.searchsorted(months[order], np.arange(len(windows) + 1)).tolist()
        sessions = closed.sessions[order]
        return tuple(
            TrendPoint(
                month=period,
                recovery=Share(int(recovered[index]), int(clinical[index])),
                mean_sessions=mean_estimate_of_array(sessions[bounds[index] : bounds[index + 1]]),
            )
            for index, period in enumerate(periods)
        )


def _recovery_by_month(
    pairs: _PairColumns, months: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per month: recovered, and classified clinical-range intakes (the denominator of
    :meth:`OutcomeCounts.share`), from the pairs' outcomes as they were added."""
    counted = pairs.clinical & (pairs.codes >= 0)
    recovered = counted & (pairs.codes == ChangeCategory.RECOVERED.rank)
    return (
        np.bincount(months[recovered], minlength=count),
        np.bincount(months[counted], minlength=count),
    )
