"""Small statistics behind the figures (pure functions the aggregation calls and the tests pin
down): means and medians with their intervals, the sessions-per-episode histogram.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fit_service.domain.effect_sizes import (
    t_quantile_975,
)
from fit_service.domain.monthly_report.values import DASH, Estimate

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


#: The estimate of an empty sample, one shared instance (immutable): most of a clinician's
#: trend months have no closed episode.
_NOTHING = Estimate.none()


def mean_estimate(values: Sequence[float]) -> Estimate:
    """Mean with a t-based 95% CI; no CI below two values (no spread to estimate)."""
    n = len(values)
    if n == 0:
        return _NOTHING
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
    report's large samples of numbers that repeat: sessions, days, scores with one decimal."""
    return _Floats.of(values).mean()


def mean_and_median(values: np.ndarray) -> tuple[Estimate, Estimate]:
    """``(mean_estimate_of_array(values), median_estimate(values))``, converting once."""
    floats = _Floats.of(values)
    return floats.mean(), floats.median()


def mean_estimates_of_slices(values: np.ndarray, bounds: Sequence[int]) -> list[Estimate]:
    """:func:`mean_estimate_of_array` of ``values[bounds[i]:bounds[i + 1]]`` for each ``i``,
    converting ``values`` once rather than slice by slice (a trend's twelve months)."""
    floats = _Floats.of(values)
    return [floats[low:high].mean() for low, high in itertools.pairwise(bounds)]


@dataclass(slots=True)  # not frozen: a frozen init costs more, and a report makes thousands
class _Floats:
    """A sample as a float64 array and the same numbers as a list of Python floats: each
    statistic below reads whichever is cheaper at the sample's size. ``tolist`` converts
    every value at once in C, so a caller converting once and slicing both saves the
    ~1 us fixed cost of ``astype``/``tolist`` per slice (a report takes thousands of means,
    most of a handful of values)."""

    array: np.ndarray
    values: list[float]

    @classmethod
    def of(cls, values: np.ndarray) -> _Floats:
        floats = values.astype(np.float64, copy=False)
        return cls(floats, floats.tolist())

    def __getitem__(self, part: slice) -> _Floats:
        return _Floats(self.array[part], self.values[part])

    def mean(self) -> Estimate:
        """:func:`mean_estimate` of the values.

        From :data:`_FEW_VALUES` on, each *distinct* value's squared deviation is computed
        once and handed to ``fsum`` as often as the value occurs. ``fsum`` is exactly
        rounded, so only the multiset of its terms, not their order, decides the result, and
        that multiset is the same as :func:`mean_estimate`'s. (Computing ``pow`` once per
        value was most of the time of the report's means.)
        """
        values, n = self.values, len(self.values)
        if n < _FEW_VALUES:
            return mean_estimate(values)
        mean = math.fsum(values) / n
        distinct, counts = np.unique(self.array, return_counts=True)
        squares = map(
            pow, map(operator.sub, distinct.tolist(), itertools.repeat(mean)), itertools.repeat(2)
        )
        terms = itertools.chain.from_iterable(map(itertools.repeat, squares, counts.tolist()))
        return _with_t_interval(mean, n, math.fsum(terms))

    def median(self) -> Estimate:
        """:func:`median_estimate` of the values."""
        n = len(self.values)
        if n == 0:
            return _NOTHING
        # statistics.median: the middle value, or the mean of the middle two, of sorted(values).
        # A stable np.sort gives the very same order (equal values keep their order, as in
        # sorted()) in C; below _FEW_VALUES, sorted() of the list is cheaper than its call.
        # The middle two are added and halved in Python floats, as there.
        ordered: Sequence[float] | np.ndarray = (
            sorted(self.values) if n < _FEW_VALUES else np.sort(self.array, kind="stable")
        )
        middle = n // 2
        if n % 2:
            return Estimate(value=float(ordered[middle]), n=n)
        return Estimate(value=(float(ordered[middle - 1]) + float(ordered[middle])) / 2, n=n)


def median_estimate(values: Sequence[float] | np.ndarray) -> Estimate:
    """Median with its n and no interval (a median CI needs order statistics we don't print).

    ``values`` are finite numbers (a NaN has no place in a sorted order).
    """
    return _Floats.of(np.asarray(values, dtype=np.float64)).median()


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
