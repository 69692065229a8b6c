"""Aggregation: from per-episode and per-session facts to one group's figures.

The service layer reads the database (SQL aggregates and one streaming pass over per-episode
rows) and routes each fact to the builders of the groups and windows it belongs to; every
decision about what a fact counts as, and every formula, is made here or in
fit_service.domain.change / effect_sizes. No identifiers enter these types.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

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
    SeverityReference,
    pre_post_d,
    severity_adjusted_es,
)
from fit_service.domain.instruments import ORS, AgeBand, Direction
from fit_service.domain.monthly_report.estimates import (
    mean_estimate_of_array,
    mean_estimates_of_slices,
    median_estimate,
)
from fit_service.domain.monthly_report.figures import GroupFigures, TrendPoint
from fit_service.domain.monthly_report.periods import _parse_period, trailing_months
from fit_service.domain.monthly_report.settings import (
    PLANNED_ENDINGS,
    UNILATERAL_ENDINGS,
    ReportSettings,
    is_dropout,
)
from fit_service.domain.monthly_report.summaries import (
    Activity,
    AllianceSummary,
    CompletenessSummary,
    DropoutSummary,
    OutcomeCounts,
    SessionCounts,
    SessionMoments,
    SessionSpread,
    SessionStats,
)
from fit_service.domain.monthly_report.values import Estimate, Share


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


@dataclass(frozen=True, slots=True, eq=False)
class AlertTable:
    """Many alerts' :class:`AlertFacts` as columns, one row per alert in the order given:
    dates as ordinals (:data:`NO_DAY` for none), hours to acknowledge (``NaN`` for none).

    Why columns: a clinic's alerts of a year (about a thousand) each go to six builders
    (three groups, two windows); deciding which window each counts in with array masks per
    group kind (:meth:`FiguresBuilder.add_alerts_to`) is a fraction of asking every builder
    about every alert."""

    raised_on: np.ndarray  # int64
    acknowledged_on: np.ndarray  # int64
    hours_to_acknowledge: np.ndarray  # float64
    resolved_on: np.ndarray  # int64

    @classmethod
    def of(cls, alerts: Sequence[AlertFacts]) -> AlertTable:
        def ordinal(day: date | None) -> int:
            return NO_DAY if day is None else day.toordinal()

        def hours(alert: AlertFacts) -> float:
            value = alert.hours_to_acknowledge
            return math.nan if value is None else value

        count = len(alerts)
        return cls(
            raised_on=np.fromiter((a.raised_on.toordinal() for a in alerts), np.int64, count),
            acknowledged_on=np.fromiter(
                (ordinal(a.acknowledged_on) for a in alerts), np.int64, count
            ),
            hours_to_acknowledge=np.fromiter(map(hours, alerts), np.float64, count),
            resolved_on=np.fromiter((ordinal(a.resolved_on) for a in alerts), np.int64, count),
        )


@dataclass(frozen=True, slots=True, eq=False)
class FlaggedTable:
    """Many :class:`FlaggedEpisode` as columns of ordinals (:data:`NO_DAY`: no attended
    session), one row per episode in the order given (why: as :class:`AlertTable`)."""

    first_flag_on: np.ndarray  # int64
    last_attended_on: np.ndarray  # int64

    @classmethod
    def of(cls, flagged: Sequence[FlaggedEpisode]) -> FlaggedTable:
        count = len(flagged)
        return cls(
            first_flag_on=np.fromiter(
                (f.first_flag_on.toordinal() for f in flagged), np.int64, count
            ),
            last_attended_on=np.fromiter(
                (
                    NO_DAY if f.last_attended_on is None else f.last_attended_on.toordinal()
                    for f in flagged
                ),
                np.int64,
                count,
            ),
        )


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
    if len(parts) == 1:  # the usual case: one table per report
        return getattr(parts[0][0], column)[parts[0][which]]
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


def _count_by_group(mask: np.ndarray, groups: np.ndarray, keys: np.ndarray) -> list[int]:
    """For each of ``keys``: how many rows where ``mask`` holds have that group."""
    return [int(rows.size) for rows in _by_group(mask, groups, keys)]


def _within(window: Window, days: np.ndarray) -> np.ndarray:
    """:meth:`Window.contains` of a column of ordinals (:data:`NO_DAY` is in no window)."""
    return (days >= window.first_day.toordinal()) & (days <= window.last_day.toordinal())


def _one_window(builders: Mapping[int, FiguresBuilder]) -> Window | None:
    """The window and settings the builders share (``None``: no builders); refuses builders
    of different windows or settings, whose rows would count differently."""
    if not builders:
        return None
    first = next(iter(builders.values()))
    for builder in builders.values():
        if (builder.window is not first.window or builder.settings is not first.settings) and (
            builder.window != first.window or builder.settings != first.settings
        ):
            raise ValueError("builders of one window and settings needed")
    return first.window


#: The moments of no sessions, shared (:class:`SessionMoments` adds into a new instance).
_NO_SESSIONS = SessionMoments.empty()


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
        self._session_moments = _NO_SESSIONS
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

    @property
    def sessions(self) -> SessionCounts:
        """The sum of everything given to :meth:`add_sessions` (integers: order-free)."""
        return self._session_moments.counts()

    @property
    def session_spread(self) -> SessionSpread:
        """How the sessions sit in their clusters (integer sums: order-free)."""
        return SessionSpread.of_moments(self._session_moments)

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
        window = _one_window(builders)
        if window is None:
            return
        for builder in builders.values():
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
        self._session_moments += SessionMoments.of(counts)

    @staticmethod
    def add_sessions_to(
        builders: Mapping[int, FiguresBuilder],
        counts: np.ndarray,
        groups: np.ndarray,
        *,
        every_row_to: FiguresBuilder | None = None,
    ) -> None:
        """:meth:`add_sessions` of many builders at once: each row of ``counts`` (a cluster)
        to the builder of its group (``groups[row]``, a key of ``builders``; other rows are
        skipped), every group's sums taken in one pass (:meth:`SessionMoments.by_group`);
        and every row to ``every_row_to`` (the clinic, whose clusters are the age bands'
        together), from the same pass."""
        keys = np.fromiter(builders, np.int64, len(builders))
        targets = list(builders.values())
        if every_row_to is not None:
            targets.append(every_row_to)
        if not targets:
            return
        moments = SessionMoments.by_group(counts, groups, keys, total=every_row_to is not None)
        for builder, sums in zip(targets, moments, strict=True):
            builder._session_moments += sums

    @staticmethod
    def add_alerts_to(
        builders: Mapping[int, FiguresBuilder], table: AlertTable, groups: np.ndarray
    ) -> None:
        """Hand each alert of ``table`` to the builder of its group (``groups[row]``, a key of
        ``builders``; other rows are skipped), as :meth:`add_table_to` does episodes: raised,
        acknowledged and resolved count where their day falls in the window; the hours to
        acknowledge of those acknowledged in it are kept, in row order, for their median."""
        window = _one_window(builders)
        if window is None:
            return
        keys = np.fromiter(builders, np.int64, len(builders))
        acknowledged = _within(window, table.acknowledged_on)
        counted = [
            _count_by_group(_within(window, table.raised_on), groups, keys),
            _count_by_group(acknowledged, groups, keys),
            _count_by_group(_within(window, table.resolved_on), groups, keys),
        ]
        timed = acknowledged & ~np.isnan(table.hours_to_acknowledge)
        hours = _by_group(timed, groups, keys)
        for position, builder in enumerate(builders.values()):
            raised, acknowledged_count, resolved = (c[position] for c in counted)
            builder.alerts_raised += raised
            builder.alerts_acknowledged += acknowledged_count
            builder.alerts_resolved += resolved
            if hours[position].size:
                builder.hours_to_acknowledge += table.hours_to_acknowledge[hours[position]].tolist()

    @staticmethod
    def add_flagged_to(
        builders: Mapping[int, FiguresBuilder], table: FlaggedTable, groups: np.ndarray
    ) -> None:
        """Hand each flagged episode of ``table`` to the builder of its group (as
        :meth:`add_alerts_to`). Cohort: episodes first flagged ``follow_up_days`` before a day
        of the window (so the month after the flag has passed by the window's end). In care:
        an attended session on or after the flag date plus ``follow_up_days``."""
        window = _one_window(builders)
        if window is None:
            return
        first = next(iter(builders.values()))
        due = table.first_flag_on + first.settings.follow_up_days
        followed_up = _within(window, due)
        in_care = followed_up & (table.last_attended_on >= due)  # NO_DAY is never >= a day
        keys = np.fromiter(builders, np.int64, len(builders))
        cohort = _count_by_group(followed_up, groups, keys)
        stayed = _count_by_group(in_care, groups, keys)
        for position, builder in enumerate(builders.values()):
            builder.flagged_followed_up += cohort[position]
            builder.flagged_in_care += stayed[position]

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
        return FiguresBuilder.trends([self], periods)[0]

    @staticmethod
    def trends(
        builders: Sequence[FiguresBuilder], periods: Sequence[str]
    ) -> list[tuple[TrendPoint, ...]]:
        """:meth:`trend` of each builder, worked out together (a report has one per group,
        ~200): every builder's closed episodes sorted into (builder, month) slices by one
        stable sort, each slice in the order its episodes were added, as the builder's own
        trend would take them; the same numbers to the last bit."""
        windows, starts = _trend_months(tuple(periods))
        for builder in builders:
            if any(
                w.first_day < builder.window.first_day or w.last_day > builder.window.last_day
                for w in windows
            ):
                raise ValueError("every trend month must lie inside the builder's window")
        months = len(windows)
        if not months:
            return [() for _ in builders]
        slots = len(builders) * months
        pairs = [builder._pair_columns() for builder in builders]
        recovered, clinical = _recovery_by_month(
            _concatenated([p.codes for p in pairs], np.int8),
            _concatenated([p.clinical for p in pairs], np.bool_),
            _slot_of([p.closed_on for p in pairs], starts, months),
            slots,
        )
        closed = [builder._closed_columns() for builder in builders]
        slot = _slot_of([c.closed_on for c in closed], starts, months)
        # Each (builder, month) slot's sessions as one slice: sorted by slot stably, so within
        # a slot in the order added, as a per-month filter of one builder would give them.
        order = np.argsort(slot, kind="stable")
        bounds = np.searchsorted(slot[order], np.arange(slots + 1)).tolist()
        means = mean_estimates_of_slices(
            _concatenated([c.sessions for c in closed], np.int64)[order], bounds
        )
        points = [
            TrendPoint(month=period, recovery=Share(k, n), mean_sessions=mean)
            for period, k, n, mean in zip(
                tuple(periods) * len(builders),
                recovered.tolist(),
                clinical.tolist(),
                means,
                strict=True,
            )
        ]
        return [tuple(points[i : i + months]) for i in range(0, slots, months)]


def _concatenated(columns: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(columns) if columns else np.zeros(0, dtype)


def _slot_of(closed_on: Sequence[np.ndarray], starts: np.ndarray, months: int) -> np.ndarray:
    """Each row's (builder, month) slot: the builder's position times ``months`` plus the
    month its closing day falls in (``starts``: the first day of every month but the first)."""
    if not closed_on:
        return _EMPTY_INTS
    owner = np.repeat(np.arange(len(closed_on)) * months, [c.size for c in closed_on])
    return owner + np.searchsorted(starts, np.concatenate(closed_on), side="right")


def _recovery_by_month(
    codes: np.ndarray, clinical: np.ndarray, slots: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per slot: recovered, and classified clinical-range intakes (the denominator of
    :meth:`OutcomeCounts.share`), from the pairs' outcomes (``slots``: each pair's slot)."""
    counted = clinical & (codes >= 0)
    recovered = counted & (codes == ChangeCategory.RECOVERED.rank)
    return (
        np.bincount(slots[recovered], minlength=count),
        np.bincount(slots[counted], minlength=count),
    )
