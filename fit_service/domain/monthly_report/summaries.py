"""The parts of one group's figures (activity, sessions, outcomes, dropout, alliance, data
completeness), and how a window's sessions sit in clients (the rates' clusters).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fit_service.domain.change import (
    ChangeCategory,
    ChangeSummary,
)
from fit_service.domain.effect_sizes import (
    ClusterSpread,
)
from fit_service.domain.monthly_report.estimates import (
    SESSION_BINS,
    _histogram,
    mean_and_median,
    mean_estimate,
    median_estimate,
    session_histogram,
)
from fit_service.domain.monthly_report.values import Estimate, Share


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
        sessions_mean, sessions_median = mean_and_median(sessions)
        days_mean, days_median = mean_and_median(days)
        return cls(
            per_episode_mean=sessions_mean,
            per_episode_median=sessions_median,
            histogram=_histogram(sessions),
            days_mean=days_mean,
            days_median=days_median,
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
        return cls(*ClusterSpread.of_counts(counts, *_RATE_COLUMNS))

    @classmethod
    def of_moments(cls, moments: SessionMoments) -> SessionSpread:
        """:meth:`of` the clusters ``moments`` sums up (the same numbers)."""
        return cls(*ClusterSpread.of_moments(moments.cross, moments.clusters, *_RATE_COLUMNS))


@dataclass(frozen=True, slots=True, eq=False)
class SessionMoments:
    """What the session figures need of a set of clusters (rows of :data:`SESSION_COLUMNS`
    counts, :meth:`SessionSpread.of`'s input): the column totals, the cross products ``CᵀC``
    and, per rate, how many clusters have sessions in its denominator. Integer sums, so
    disjoint sets of clusters add up (``+``) to the moments of their union.

    Why: a report's ~400 group-windows each take a block of clusters; summing every group's
    block in one vectorised pass (:meth:`by_group`) and keeping only these sums replaces a
    matrix product and a row sum per group-window.
    """

    totals: np.ndarray  # int64, one per column
    cross: np.ndarray  # int64, columns x columns
    clusters: np.ndarray  # int64, one per SessionSpread rate

    @classmethod
    def empty(cls) -> SessionMoments:
        columns, rates = len(SESSION_COLUMNS), len(SessionSpread.__dataclass_fields__)
        arrays = (
            np.zeros(columns, np.int64),
            np.zeros((columns, columns), np.int64),
            np.zeros(rates, np.int64),
        )
        for array in arrays:
            array.flags.writeable = False  # one instance may be shared
        return cls(*arrays)

    @classmethod
    def of(cls, counts: np.ndarray) -> SessionMoments:
        """The moments of one matrix of clusters (one row each)."""
        (moments,) = cls.by_group(counts, np.zeros(len(counts), np.int64), np.zeros(1, np.int64))
        return moments

    @classmethod
    def by_group(
        cls, counts: np.ndarray, groups: np.ndarray, keys: np.ndarray, *, total: bool = False
    ) -> list[SessionMoments]:
        """For each of ``keys``: the moments of the rows of ``counts`` whose ``groups`` entry
        is that key (rows of other groups are left out); with ``total``, then those of all
        the rows. Refuses negative counts and a cluster with more of a rate's sessions than
        its denominator has."""
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 2 or counts.shape[1] != len(SESSION_COLUMNS):
            raise ValueError(f"need one column per {SESSION_COLUMNS}")
        if (counts < 0).any():
            raise ValueError("session counts cannot be negative")
        numerators, denominators = _RATE_COLUMNS
        y, m = counts @ numerators, counts @ denominators
        if (y > m).any():
            raise ValueError("each cluster needs 0 <= numerator <= denominator")
        groups = np.asarray(groups)
        if groups.size and (groups[1:] < groups[:-1]).any():  # a caller's rows may come sorted
            order = np.argsort(groups, kind="stable")
            counts, m, groups = counts[order], m[order], groups[order]
        n, columns = counts.shape
        cross_end = columns + columns * columns
        # One column per cluster (rows: its counts, their cross products and whether each
        # rate has sessions), summed running along the clusters, in place and contiguous
        # (the report's ~14,000 clusters make this its largest array); each group's sums are
        # the difference of two running sums (integers: exact; a group without clusters
        # comes out 0).
        running = np.zeros((cross_end + m.shape[1], n + 1), np.int64)
        per_cluster = running[:, 1:]
        by_column = counts.T
        per_cluster[:columns] = by_column
        np.multiply(
            by_column[:, None, :],
            by_column[None, :, :],
            out=per_cluster[columns:cross_end].reshape(columns, columns, n),
        )
        per_cluster[cross_end:] = m.T > 0
        np.cumsum(per_cluster, axis=1, out=per_cluster)
        low = np.searchsorted(groups, keys, side="left")
        high = np.searchsorted(groups, keys, side="right")
        if total:
            low, high = np.append(low, 0), np.append(high, n)
        sums = (running[:, high] - running[:, low]).T
        return [
            cls(row[:columns], row[columns:cross_end].reshape(columns, columns), row[cross_end:])
            for row in sums
        ]

    def __add__(self, other: SessionMoments) -> SessionMoments:
        return SessionMoments(
            self.totals + other.totals, self.cross + other.cross, self.clusters + other.clusters
        )

    def counts(self) -> SessionCounts:
        return SessionCounts(*self.totals.tolist())


def _rate_columns() -> tuple[np.ndarray, np.ndarray]:
    """Which :data:`SESSION_COLUMNS` add up to the numerator and the denominator of each of
    :class:`SessionSpread`'s rates, in its field order (pickers for
    :meth:`ClusterSpread.of_counts`)."""
    scheduled = ("attended", "no_shows", "cancellations")
    rates = {
        "no_shows": (("no_shows",), scheduled),
        "cancellations": (("cancellations",), scheduled),
        "with_ors": (("with_ors",), ("attended",)),
        "with_srs": (("with_srs",), ("attended",)),
        "srs_below_concern": (("srs_below_concern",), ("with_srs",)),
    }
    if tuple(rates) != tuple(SessionSpread.__dataclass_fields__):
        raise ValueError("one numerator and denominator per SessionSpread field, in order")
    named = {column for parts in rates.values() for side in parts for column in side}
    if not named <= set(SESSION_COLUMNS):  # a renamed count column must not pick nothing
        raise ValueError(f"not session count columns: {sorted(named - set(SESSION_COLUMNS))}")
    pickers = tuple(
        np.array(
            [[column in parts[side] for parts in rates.values()] for column in SESSION_COLUMNS],
            np.int64,
        )
        for side in (0, 1)
    )
    for picker in pickers:
        picker.flags.writeable = False
    return pickers[0], pickers[1]


_RATE_COLUMNS = _rate_columns()
