"""Reliable and clinically significant change for one episode, and for many at once.

The method is Jacobson & Truax (1991), as summarised in ``shared/domain.md`` §4, with the five
categories of the R package ``clinicalsignificance`` (Claus et al.): *recovered*, *improved*,
*unchanged*, *deteriorated*, *harmed*.

Decisions a reader should know about (each is explained where it is made):

* **Incomplete data gives no category.** An episode needs a first (intake) *and* a last score;
  :func:`classify` returns ``None`` otherwise, and the vectorised classifier returns code ``-1``
  (:data:`NOT_CLASSIFIABLE`). A missed intake is not replaced by a later score, because most
  change in routine care happens early and a later baseline would understate it.
* **Functional-at-intake episodes are a group of their own.** They are classified with the same
  rules, so they can be *improved*, *unchanged*, *deteriorated* or *harmed*, but never
  *recovered* (recovery means leaving the clinical range, domain.md §4). Every result carries
  ``clinical_at_intake`` and :class:`ChangeSummary` reports the clinical- and functional-at-intake
  groups apart, so a recovery rate is always read against clinical-range intakes only.
* **The cut-off value itself** falls on one side only, chosen by ``value_is_clinical`` (sites
  differ, domain.md §3). ``clinicalsignificance`` instead counts a score exactly on a computed
  cut-off as neither clinical at intake nor functional at the end; with a continuous cut-off
  (type a/b/c) the difference never arises in practice.
* **Float noise.** Totals carry one decimal (ORS) and differences such as ``25.3 - 20.3`` are not
  exact in binary floating point; comparisons with a threshold or cut-off treat values within
  :data:`TOLERANCE` of it as equal to it, in the scalar and vectorised code alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from fit_service.domain.instruments import AgeBand, Direction, Instrument

#: Two values closer than this are equal for every threshold and cut-off comparison. Totals are
#: reported to at most two decimals, so 1e-9 only absorbs binary rounding, never a real point.
TOLERANCE = 1e-9

#: Jacobson & Truax (1991): |RCI| > 1.96 is a change unlikely (p < .05, two-sided) to arise from
#: measurement error alone (domain.md §4).
DEFAULT_CRITICAL_VALUE = 1.96

#: Code the vectorised classifier gives an episode without a first and a last score.
NOT_CLASSIFIABLE = -1


class ChangeCategory(StrEnum):
    """Outcome of one episode, first vs last score (domain.md §4, ``clinicalsignificance``)."""

    HARMED = "harmed"
    DETERIORATED = "deteriorated"
    UNCHANGED = "unchanged"
    IMPROVED = "improved"
    RECOVERED = "recovered"

    @property
    def rank(self) -> int:
        """Order from worst (0, harmed) to best (4, recovered); also the vectorised code."""
        return _CATEGORY_ORDER.index(self)

    @classmethod
    def from_rank(cls, rank: int) -> ChangeCategory:
        return _CATEGORY_ORDER[rank]


_CATEGORY_ORDER: tuple[ChangeCategory, ...] = tuple(ChangeCategory)


class CutoffMethod(StrEnum):
    """Where a cut-off comes from: a published norm, or Jacobson & Truax (1991) a, b or c."""

    FIXED = "fixed"
    A = "a"  # 2 SD beyond the clinical mean, toward function
    B = "b"  # 2 SD beyond the functional mean, toward dysfunction
    C = "c"  # the point between the two populations' means, weighted by their SDs


# --------------------------------------------------------------------------- reliable change


@dataclass(frozen=True, slots=True)
class ReliableChange:
    """How large a change must be, in raw scale points, to count as reliable.

    Two variants (domain.md §4):

    * :meth:`from_sd` - Jacobson & Truax (1991): ``SE = s1·sqrt(1 - r)``,
      ``S_diff = sqrt(2)·SE``, ``RCI = (x2 - x1)/S_diff``; reliable when ``|RCI| > critical``.
      Because ``S_diff`` is a constant for a sample, ``|RCI| > critical`` is the same test as
      ``|x2 - x1| > critical·S_diff``, so the threshold is kept in raw points (``points``).
    * :meth:`fixed` - a published raw threshold, reliable when ``|x2 - x1| >= points``
      (ORS: 5 points, PCOMS manuals; NHS CYP tables use 6.6 for ORS and 10 for CORS).
    """

    points: float
    inclusive: bool
    s_diff: float | None = None
    critical: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.points) and self.points > 0):
            raise ValueError(f"a reliable-change threshold must be positive, not {self.points}")

    @classmethod
    def from_sd(
        cls, sd: float, reliability: float, critical: float = DEFAULT_CRITICAL_VALUE
    ) -> ReliableChange:
        """Jacobson & Truax (1991): ``sd`` is the SD of intake scores (s1), ``reliability`` r."""
        if not 0.0 <= reliability < 1.0:
            raise ValueError(f"reliability must be in [0, 1), not {reliability}")
        if not (math.isfinite(sd) and sd > 0):
            raise ValueError(f"the SD of intake scores must be positive, not {sd}")
        if not critical > 0:
            raise ValueError(f"the critical value must be positive, not {critical}")
        se_measurement = float(sd) * math.sqrt(1.0 - reliability)  # SE = s1·sqrt(1 - r)
        s_diff = math.sqrt(2.0) * se_measurement  # S_diff = sqrt(2)·SE
        return cls(points=critical * s_diff, inclusive=False, s_diff=s_diff, critical=critical)

    @classmethod
    def fixed(cls, points: float) -> ReliableChange:
        """A raw threshold reached *inclusively* ("a change of 5 or more points", domain.md §3)."""
        return cls(points=float(points), inclusive=True)

    def rci(self, first: float, last: float) -> float | None:
        """Jacobson & Truax's RCI ``(x2 - x1)/S_diff``, raw sign; ``None`` for a fixed threshold."""
        return None if self.s_diff is None else (last - first) / self.s_diff

    def is_reliable(self, improvement: float) -> bool:
        """Is a change of ``improvement`` points (either sign) beyond the threshold?"""
        size = abs(improvement)
        if self.inclusive:
            return size >= self.points - TOLERANCE
        return size > self.points + TOLERANCE


# --------------------------------------------------------------------------- clinical cut-off


def _check_sd(*sds: float) -> None:
    for sd in sds:
        if not (math.isfinite(sd) and sd > 0):
            raise ValueError(f"a population SD must be positive, not {sd}")


@dataclass(frozen=True, slots=True)
class Cutoff:
    """The score separating the clinical from the functional range.

    ``value_is_clinical`` says on which side the value itself falls. PCOMS counts an adult ORS
    total below 25 as clinical, so 25 is functional (``False``); some sites count 25 itself as
    clinical (domain.md §3), hence the setting.
    """

    value: float
    method: CutoffMethod = CutoffMethod.FIXED
    value_is_clinical: bool = False

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError(f"a cut-off must be a finite number, not {self.value}")

    @classmethod
    def fixed(cls, value: float, *, value_is_clinical: bool = False) -> Cutoff:
        return cls(float(value), CutoffMethod.FIXED, value_is_clinical)

    @classmethod
    def a(cls, m_clin: float, sd_clin: float, direction: Direction) -> Cutoff:
        """Jacobson & Truax (1991) a: ``M_clin + 2·SD_clin``, the 2 SD taken toward function."""
        _check_sd(sd_clin)
        return cls(float(m_clin + direction.sign * 2.0 * sd_clin), CutoffMethod.A)

    @classmethod
    def b(cls, m_func: float, sd_func: float, direction: Direction) -> Cutoff:
        """Jacobson & Truax (1991) b: ``M_func - 2·SD_func``, the 2 SD taken toward dysfunction.

        (``clinicalsignificance`` uses SD_clin here; Jacobson & Truax and domain.md §4 use the
        functional population's SD, as done here.)
        """
        _check_sd(sd_func)
        return cls(float(m_func - direction.sign * 2.0 * sd_func), CutoffMethod.B)

    @classmethod
    def c(cls, m_clin: float, sd_clin: float, m_func: float, sd_func: float) -> Cutoff:
        """Jacobson & Truax (1991) c: ``(SD_clin·M_func + SD_func·M_clin)/(SD_clin + SD_func)``.

        The point equally far, in each population's own SDs, from both means; it needs no
        direction. Jacobson & Truax prefer it when functional norms exist and the two
        distributions overlap.
        """
        _check_sd(sd_clin, sd_func)
        value = (sd_clin * m_func + sd_func * m_clin) / (sd_clin + sd_func)
        return cls(float(value), CutoffMethod.C)

    def is_clinical(self, score: float, direction: Direction) -> bool:
        """Is ``score`` on the clinical side (for higher-is-better: below the cut-off)?"""
        oriented, edge = direction.sign * score, direction.sign * self.value
        if abs(oriented - edge) <= TOLERANCE:
            return self.value_is_clinical
        return oriented < edge


# --------------------------------------------------------------------------- criteria


@dataclass(frozen=True, slots=True)
class ChangeCriteria:
    """Everything needed to classify an episode: scale direction, reliable change, cut-off."""

    direction: Direction
    reliable_change: ReliableChange
    cutoff: Cutoff

    @classmethod
    def for_instrument(
        cls,
        instrument: Instrument,
        age_band: AgeBand,
        *,
        cutoff: float | None = None,
        cutoff_is_clinical: bool | None = None,
        reliable_change_points: float | None = None,
    ) -> ChangeCriteria:
        """Criteria from an instrument's norms; per-clinic settings override them (domain.md §3).

        Raises ``ValueError`` when neither the instrument nor the overrides give a cut-off for
        the age band or a reliable-change threshold (e.g. SRS and WAI-SR have neither).
        """
        value = cutoff if cutoff is not None else instrument.cutoff_for(age_band)
        points = (
            reliable_change_points
            if reliable_change_points is not None
            else instrument.reliable_change_points
        )
        if value is None:
            raise ValueError(f"{instrument.code} has no clinical cut-off for {age_band} clients")
        if points is None:
            raise ValueError(f"{instrument.code} has no reliable-change threshold")
        side = instrument.cutoff_is_clinical if cutoff_is_clinical is None else cutoff_is_clinical
        return cls(
            direction=instrument.direction,
            reliable_change=ReliableChange.fixed(points),
            cutoff=Cutoff.fixed(value, value_is_clinical=side),
        )


# --------------------------------------------------------------------------- one episode


@dataclass(frozen=True, slots=True)
class EpisodeChange:
    """The classified change of one episode.

    ``improvement`` is the change signed so that positive is better on this scale; ``rci`` keeps
    the raw sign of Jacobson & Truax's index (``None`` with a fixed threshold).
    """

    first: float
    last: float
    improvement: float
    rci: float | None
    clinical_at_intake: bool
    clinical_at_end: bool
    category: ChangeCategory

    @property
    def functional_at_intake(self) -> bool:
        """Started in the functional range: can never be *recovered*; reported apart."""
        return not self.clinical_at_intake


def _categorise(
    improvement: float, criteria: ChangeCriteria, clinical_first: bool, clinical_last: bool
) -> ChangeCategory:
    if not criteria.reliable_change.is_reliable(improvement):
        return ChangeCategory.UNCHANGED
    if improvement > 0:
        # Recovered: reliable improvement AND clinical -> functional (domain.md §4).
        if clinical_first and not clinical_last:
            return ChangeCategory.RECOVERED
        return ChangeCategory.IMPROVED
    # Harmed: reliable worsening AND functional -> clinical (domain.md §4).
    if not clinical_first and clinical_last:
        return ChangeCategory.HARMED
    return ChangeCategory.DETERIORATED


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def classify(
    first: float | None, last: float | None, criteria: ChangeCriteria
) -> EpisodeChange | None:
    """Classify an episode from its intake and last score; ``None`` if either is missing/NaN."""
    if first is None or last is None or _missing(first) or _missing(last):
        return None
    direction = criteria.direction
    clinical_first = criteria.cutoff.is_clinical(first, direction)
    clinical_last = criteria.cutoff.is_clinical(last, direction)
    improvement = direction.sign * (last - first)
    return EpisodeChange(
        first=first,
        last=last,
        improvement=improvement,
        rci=criteria.reliable_change.rci(first, last),
        clinical_at_intake=clinical_first,
        clinical_at_end=clinical_last,
        category=_categorise(improvement, criteria, clinical_first, clinical_last),
    )


def classify_scores(
    scores: Iterable[float | None], criteria: ChangeCriteria
) -> EpisodeChange | None:
    """Classify an episode from its scores in session order (``None`` = not completed).

    Needs at least two administrations with the first and the last one completed; a missing
    intake is not replaced by the next score (see the module docstring).
    """
    ordered = list(scores)
    if len(ordered) < 2:
        return None
    return classify(ordered[0], ordered[-1], criteria)


# --------------------------------------------------------------------------- many episodes

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class ClassifiedEpisodes:
    """Vectorised classification: ``codes[i]`` is a :attr:`ChangeCategory.rank` or ``-1``.

    ``clinical_at_intake[i]`` is ``False`` for unclassifiable rows as well; use ``codes >= 0``
    to select the classified ones.
    """

    codes: npt.NDArray[np.int8]
    clinical_at_intake: npt.NDArray[np.bool_]

    def category(self, index: int) -> ChangeCategory | None:
        code = int(self.codes[index])
        return None if code == NOT_CLASSIFIABLE else ChangeCategory.from_rank(code)

    def summary(self) -> ChangeSummary:
        return ChangeSummary.from_codes(self.codes, self.clinical_at_intake)


def clinical_mask(scores: FloatArray, criteria: ChangeCriteria) -> npt.NDArray[np.bool_]:
    """Vectorised :meth:`Cutoff.is_clinical` (``NaN`` scores come out ``False``)."""
    sign = criteria.direction.sign
    oriented = sign * scores
    edge = sign * criteria.cutoff.value
    at_edge = np.abs(oriented - edge) <= TOLERANCE
    return np.where(at_edge, criteria.cutoff.value_is_clinical, oriented < edge)


def _reliable_masks(
    improvement: FloatArray, rc: ReliableChange
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    if rc.inclusive:
        edge = rc.points - TOLERANCE
        return improvement >= edge, -improvement >= edge
    edge = rc.points + TOLERANCE
    return improvement > edge, -improvement > edge


def classify_many(
    first: npt.ArrayLike, last: npt.ArrayLike, criteria: ChangeCriteria
) -> ClassifiedEpisodes:
    """Classify many episodes at once; row for row identical to :func:`classify`.

    ``NaN`` marks a missing score. The code is built arithmetically from the two masks instead of
    branching: unchanged (2) plus one for reliable improvement (one more if recovered), minus one
    for reliable worsening (one more if harmed).
    """
    x1 = np.asarray(first, dtype=np.float64)
    x2 = np.asarray(last, dtype=np.float64)
    if x1.shape != x2.shape or x1.ndim != 1:
        raise ValueError("first and last must be one-dimensional arrays of the same length")
    complete = ~(np.isnan(x1) | np.isnan(x2))
    improvement = criteria.direction.sign * (x2 - x1)
    better, worse = _reliable_masks(improvement, criteria.reliable_change)
    clinical_first = clinical_mask(x1, criteria) & complete
    clinical_last = clinical_mask(x2, criteria)
    recovered = better & clinical_first & ~clinical_last
    harmed = worse & ~clinical_first & clinical_last
    codes = (
        ChangeCategory.UNCHANGED.rank
        + better.astype(np.int8)
        + recovered.astype(np.int8)
        - worse.astype(np.int8)
        - harmed.astype(np.int8)
    ).astype(np.int8)
    codes[~complete] = NOT_CLASSIFIABLE
    return ClassifiedEpisodes(codes=codes, clinical_at_intake=clinical_first)


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class CategoryCounts:
    """Counts per category for one group of classified episodes."""

    counts: Mapping[ChangeCategory, int]

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def percent(self, category: ChangeCategory) -> float | None:
        """Share of the group in ``category``, 0-100; ``None`` for an empty group."""
        n = self.n
        return None if n == 0 else 100.0 * self.counts[category] / n


def _counts_from_bincount(bins: npt.NDArray[np.int64]) -> CategoryCounts:
    return CategoryCounts(MappingProxyType({cat: int(bins[cat.rank]) for cat in ChangeCategory}))


@dataclass(frozen=True, slots=True)
class ChangeSummary:
    """Counts per category, overall and split by where the episode started (domain.md §4).

    ``overall`` matches what ``clinicalsignificance`` prints for the whole sample. A recovery rate
    should be read from ``clinical_at_intake``: functional-at-intake episodes cannot recover and
    belong in their own line, never silently in the denominator.
    """

    overall: CategoryCounts
    clinical_at_intake: CategoryCounts
    functional_at_intake: CategoryCounts
    not_classifiable: int

    @classmethod
    def from_codes(
        cls, codes: npt.NDArray[np.int8], clinical_at_intake: npt.NDArray[np.bool_]
    ) -> ChangeSummary:
        classified = codes >= 0
        size = len(ChangeCategory)
        clinical = np.bincount(codes[classified & clinical_at_intake], minlength=size)
        functional = np.bincount(codes[classified & ~clinical_at_intake], minlength=size)
        return cls(
            overall=_counts_from_bincount(clinical + functional),
            clinical_at_intake=_counts_from_bincount(clinical),
            functional_at_intake=_counts_from_bincount(functional),
            not_classifiable=int(np.count_nonzero(~classified)),
        )

    @classmethod
    def of(cls, results: Iterable[EpisodeChange | None]) -> ChangeSummary:
        """Summarise scalar results (``None`` entries count as not classifiable)."""
        codes: list[int] = []
        clinical: list[bool] = []
        for result in results:
            codes.append(NOT_CLASSIFIABLE if result is None else result.category.rank)
            clinical.append(result is not None and result.clinical_at_intake)
        return cls.from_codes(np.array(codes, dtype=np.int8), np.array(clinical, dtype=bool))
