"""Expected treatment response (ETR): is this client on track at session k? (domain.md §5)

Two models, and every answer says which one gave it:

* :class:`ClinicEtr` - the *empirical* method (Finch, Lambert & Schaalje 2001), fitted to the
  clinic's own closed episodes once there are enough of them (:data:`MIN_EPISODES`);
* :class:`RationalTrajectory` - the *rational* method, cut-off and reliable change only, used
  until then (domain.md §3 and §5).

:func:`select_trajectory_model` picks between them. Both implement :class:`TrajectoryModel`.

**The empirical model.** Finch et al. fitted a mixed model over log(session number) by intake
severity on 11,492 clients. A clinic has far fewer, so we fit the fixed part of that model by
ordinary least squares on every post-intake score of qualifying episodes::

    score(k) = b0 + b1·intake + b2·ln k + b3·intake·ln k        (k = 2, 3, ...)

ln k gives the negatively accelerated curve seen in psychotherapy (most change early; Howard et
al. 1986, and Finch et al.'s choice); the interaction lets more severe intakes change faster,
i.e. regression toward the mean is part of what is *expected*. Session 1 is the intake itself,
the conditioning variable, so it is not an outcome of the fit.

Instead of a normal-theory tolerance interval, the bands are empirical percentiles of the
residuals, per band of session numbers (residuals spread out as sessions accumulate), falling
back to all residuals pooled where a band has fewer than :data:`MIN_BUCKET_RESIDUALS`. Ignoring
the clustering of scores within episodes leaves the point estimates unbiased; it only makes the
fit's own standard errors optimistic, and none are reported.

**No extrapolation.** The curve is only as good as the data under it. Routine-care episodes are
short (fewer than 5 sessions on average, domain.md §4), so a clinic's fit may rest on sessions
2-5 alone, and ln k carried on to session 15 predicts gains nobody was seen to make: a client
ten points up and recovered was "not on track". So a :class:`ClinicEtr` built by
:func:`select_trajectory_model` judges only sessions up to the last one in its fit and intakes
within the fitted intakes' range; beyond them it hands the judgement to the rational rules
(domain.md §5: the rules stand where the clinic's ETR has no data), whose label the answer
then carries, and its drawn path stops at the last fitted session.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fit_service.domain.change import ChangeCriteria, FloatArray
from fit_service.domain.errors import FitError
from fit_service.domain.instruments import Direction

IntArray = npt.NDArray[np.int64]

MODEL_VERSION = "v1"
RATIONAL_LABEL = "rational:cutoff+rc"

_N_PREDICTORS = 3  # intake, ln k, intake·ln k
#: Fewest qualifying closed episodes to fit a clinic's ETR. Green (1991, "How many subjects does
#: it take to do a regression analysis?") recommends N >= 50 + 8m for m predictors; with m = 3
#: that is 74. We count *episodes*, not scores, because scores within an episode are correlated
#: and add far less than independent cases. 74 episodes give at least 148 residuals, so even the
#: pooled 10th percentile rests on about 15 observations below it.
MIN_EPISODES = 50 + 8 * _N_PREDICTORS
#: An episode qualifies with an intake (session 1) and at least two later scores: one later
#: score shows a change, two show a course, and session 3 is the first check-point of the
#: rational rules (domain.md §3). Episodes with fewer are not used in the fit.
MIN_SCORED_SESSIONS = 3
#: A session band gets its own percentiles only with at least this many residuals: the 10th
#: percentile of 100 residuals is the 10th order statistic, whose rank is uncertain by about
#: ±3 (binomial SD sqrt(100·0.1·0.9)); fewer would make the band's edge noise.
MIN_BUCKET_RESIDUALS = 100
#: Session-number bands for the residual percentiles (first, last; ``None`` = open-ended).
#: Narrow early, where clinics have most data and change is fastest.
SESSION_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (2, 2),
    (3, 3),
    (4, 5),
    (6, 8),
    (9, 12),
    (13, None),
)
#: Default "not on track" line: below the 10th percentile of the clinic's own residuals at that
#: session, i.e. faring worse than nine in ten of its past clients with the same expected score.
#: Finch et al. (2001) flag clients below a tolerance band around the expected curve; the width
#: is a choice. domain.md wants every threshold a per-clinic setting: :func:`fit_clinic_etr`
#: takes it as ``off_track_percentile``, but no clinic setting feeds it yet (``RiskSettings``
#: has none), so every clinic runs at this default. The band drawn is the 10th-90th
#: percentile; the inner one 25th-75th.
OFF_TRACK_PERCENTILE = 10.0
INNER_BAND = (25.0, 75.0)
#: PCOMS practice guidance (domain.md §3): no reliable improvement by session 3 -> discuss it
#: with the client; by session 6 -> change the approach. Guidance, not an evidence-based cut.
#: Defaults only: a clinic's ``discuss_checkpoint`` / ``change_checkpoint`` risk settings are
#: passed to :class:`RationalTrajectory` (domain.md §3: every threshold a per-clinic setting).
DISCUSS_BY_SESSION = 3
CHANGE_APPROACH_BY_SESSION = 6

_PERCENTILE_GRID = np.linspace(0.0, 100.0, 101)


class InsufficientData(FitError):
    """Too few qualifying closed episodes to fit a clinic's own ETR."""

    rule = "insufficient_data"


class Guidance(StrEnum):
    """What PCOMS practice guidance suggests when change is absent (domain.md §3)."""

    DISCUSS = "discuss"  # no reliable improvement by the discuss checkpoint (default 3)
    CHANGE_APPROACH = "change_approach"  # ... by the change checkpoint (default 6)


@dataclass(frozen=True, slots=True)
class TrajectoryAssessment:
    """One score judged against a trajectory model.

    ``expected`` and ``percentile`` are ``None`` from the rational model, which makes no
    prediction; its band is the reliable-change window around the intake. ``percentile`` is the
    observed score's position among clients with the same expected score (0-100, raw scale
    sense: for a lower-is-better scale a high percentile is the worse end).
    """

    session: int
    score: float
    expected: float | None
    band_low: float
    band_high: float
    percentile: float | None
    on_track: bool
    model: str
    reason: str
    guidance: Guidance | None = None


@dataclass(frozen=True, slots=True)
class ExpectedPath:
    """Expected course for sessions 1..K, ready to draw (tuples aligned with ``sessions``)."""

    model: str
    sessions: tuple[int, ...]
    expected: tuple[float, ...] | None
    low: tuple[float, ...]
    high: tuple[float, ...]
    inner_low: tuple[float, ...] | None = None
    inner_high: tuple[float, ...] | None = None


class TrajectoryModel(Protocol):
    """What the service layer calls, whichever model is in use."""

    @property
    def label(self) -> str: ...

    def assess(self, intake: float, session: int, score: float) -> TrajectoryAssessment: ...

    def path(self, intake: float, sessions: int) -> ExpectedPath: ...


#: Decimal places of the figures an assessment reports (expected score, band, percentile): the
#: ORS and CORS totals the trajectories judge carry one decimal (domain.md §2: items on a 10 cm
#: line read to the millimetre), so 20.4 - 5 shows as 15.4, not 15.399999999999999. Judgements
#: (on track, the percentile's tail) are made on the unrounded values first.
FIGURE_DECIMALS = 1


def _figure(value: float) -> float:
    return round(value, FIGURE_DECIMALS)


def shown_band(low: float, high: float) -> tuple[float, float]:
    """The band's edges as shown, to the scale's tenth, rounded inward: the low edge up, the
    high edge down. Scores sit on the tenth, so a score is below (above) the shown edge exactly
    when it is below (above) the true one, and a figure never reads as on the line of a band
    the score was judged outside (15.4 against a true low edge of 15.44: shown 15.5, not 15.4).
    The inner rounding of 1e-6 first drops float noise (15.400000000000002 is 15.4). The
    rational model's window is the exception by design: its edges are the reliable-change
    thresholds themselves (intake 20: 15 and 25), and a score on one has changed reliably
    (domain.md §4: a change of the full 5 points counts), so 15.0 shown beside a low edge of
    15.0 reads "reached the threshold", as the model's reason says ("reliably worse")."""
    scale = 10**FIGURE_DECIMALS
    return (
        math.ceil(round(low * scale, 6)) / scale,
        math.floor(round(high * scale, 6)) / scale,
    )


def ordinal_suffix(n: int) -> str:
    """English ordinal suffix: 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 22nd, 101st, 111th."""
    if n % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def percentile_phrase(percentile: float) -> str:
    """ "at the 3rd percentile"; a position that rounds to 0 or 100 is "below the 1st" or "above
    the 99th" (no client sits at a 0th percentile)."""
    whole = round(percentile)
    if whole < 1:
        return "below the 1st percentile"
    if whole > 99:
        return "above the 99th percentile"
    return f"at the {whole}{ordinal_suffix(whole)} percentile"


def _check_point(intake: float, session: int, score: float) -> None:
    if session < 1:
        raise ValueError(f"session numbers start at 1, not {session}")
    if not (math.isfinite(intake) and math.isfinite(score)):
        raise ValueError("intake and score must be finite numbers")


def _intake_assessment(intake: float, model: str) -> TrajectoryAssessment:
    return TrajectoryAssessment(
        session=1,
        score=intake,
        expected=intake,
        band_low=intake,
        band_high=intake,
        percentile=None,
        on_track=True,
        model=model,
        reason="intake session: the baseline, nothing to compare yet",
    )


# --------------------------------------------------------------------------- training data


@dataclass(frozen=True, slots=True, eq=False)
class EtrSample:
    """Scores of closed episodes as flat, aligned arrays (one row per scored session).

    ``session`` is the 1-based session number within the episode; ``NaN`` in ``score`` marks a
    measure not completed. Rows need not be sorted.
    """

    episode: IntArray
    session: IntArray
    score: FloatArray

    def __post_init__(self) -> None:
        sizes = {self.episode.shape, self.session.shape, self.score.shape}
        if len(sizes) != 1 or self.score.ndim != 1:
            raise ValueError("episode, session and score must be 1-D arrays of equal length")

    @classmethod
    def from_arrays(
        cls, episode: npt.ArrayLike, session: npt.ArrayLike, score: npt.ArrayLike
    ) -> EtrSample:
        return cls(
            np.asarray(episode, dtype=np.int64),
            np.asarray(session, dtype=np.int64),
            np.asarray(score, dtype=np.float64),
        )

    @classmethod
    def from_episodes(cls, episodes: Iterable[Iterable[tuple[int, float | None]]]) -> EtrSample:
        """From ``[(session_number, score or None), ...]`` per episode."""
        rows = [
            (index, session, math.nan if score is None else score)
            for index, points in enumerate(episodes)
            for session, score in points
        ]
        if not rows:
            return cls.from_arrays([], [], [])
        episode, session, score = zip(*rows, strict=True)
        return cls.from_arrays(episode, session, score)


@dataclass(frozen=True, slots=True, eq=False)
class _Prepared:
    """Post-intake points of qualifying episodes, with their episode's intake."""

    intake: FloatArray
    session: IntArray
    score: FloatArray
    n_episodes: int


def _sorted(sample: EtrSample) -> tuple[IntArray, FloatArray, npt.NDArray[np.bool_]]:
    """Completed scores grouped by episode in session order, and where each episode starts."""
    ep, k, y = sample.episode, sample.session, sample.score
    missing = np.isnan(y)
    if missing.any():
        ep, k, y = ep[~missing], k[~missing], y[~missing]
    d_ep, d_k = np.diff(ep), np.diff(k)
    if np.any(d_ep < 0) or np.any((d_ep == 0) & (d_k <= 0)):
        # Callers usually pass rows grouped by episode in session order; sort only if not.
        order = np.lexsort((k, ep))
        ep, k, y = ep[order], k[order], y[order]
        d_ep, d_k = np.diff(ep), np.diff(k)
        if np.any((d_ep == 0) & (d_k == 0)):
            raise ValueError("an episode has two scores for the same session number")
    return k, y, np.r_[True, d_ep != 0]


def _prepare(sample: EtrSample) -> _Prepared:
    k, y, is_start = _sorted(sample)
    if y.size == 0:
        return _Prepared(y, k, y, 0)
    starts = np.flatnonzero(is_start)
    counts = np.diff(np.r_[starts, y.size])
    qualifies = (k[starts] == 1) & (counts >= MIN_SCORED_SESSIONS)
    use = np.repeat(qualifies, counts) & (k >= 2)
    intake = np.repeat(y[starts], counts)
    return _Prepared(intake[use], k[use], y[use], int(np.count_nonzero(qualifies)))


# --------------------------------------------------------------------------- the fit


def _solve(
    intake: FloatArray, log_k: FloatArray, y: FloatArray
) -> tuple[float, float, float, float]:
    """Least squares via the 4x4 normal equations on centred predictors.

    Centring keeps the normal equations well conditioned (the intake and its product with ln k
    are otherwise nearly collinear) so they are as accurate as a QR solve here and several times
    faster on a million rows; a rank-deficient design falls back to ``lstsq``. The
    coefficients are returned for the uncentred model.
    """
    a, c = float(intake.mean()), float(log_k.mean())
    ic, lc = intake - a, log_k - c
    rows = np.stack((np.ones_like(ic), ic, lc, ic * lc))  # the design matrix, transposed
    gram = rows @ rows.T
    if np.linalg.cond(gram) < 1e12:
        b = np.linalg.solve(gram, rows @ y)
    else:
        b = np.linalg.lstsq(rows.T, y, rcond=None)[0]
    # b0 + b1(I-a) + b2(L-c) + b3(I-a)(L-c), expanded back to b0' + b1'I + b2'L + b3'IL
    b0, b1, b2, b3 = (float(v) for v in b)
    return (b0 - b1 * a - b2 * c + b3 * a * c, b1 - b3 * c, b2 - b3 * a, b3)


@dataclass(frozen=True, slots=True)
class ResidualBand:
    """Percentiles 0..100 of the residuals (observed - expected) for a range of sessions."""

    first_session: int
    last_session: int | None
    n: int
    quantiles: tuple[float, ...]  # at percentiles 0, 1, ..., 100
    pooled: bool = False

    @classmethod
    def of(cls, residuals: FloatArray, first: int, last: int | None, pooled: bool) -> ResidualBand:
        ordered = np.sort(residuals)
        # numpy's default ("linear") quantile definition, one sort for all 101 percentiles
        positions = _PERCENTILE_GRID / 100.0 * (ordered.size - 1)
        below = np.floor(positions).astype(np.intp)
        above = np.minimum(below + 1, ordered.size - 1)
        values = ordered[below] + (positions - below) * (ordered[above] - ordered[below])
        return cls(first, last, int(ordered.size), tuple(float(v) for v in values), pooled)

    def at(self, percentile: float) -> float:
        return float(np.interp(percentile, _PERCENTILE_GRID, self.quantiles))

    def percentile_of(self, residual: float) -> float:
        """Share (0-100) of the clinic's residuals at or below ``residual``, interpolated."""
        return float(np.interp(residual, self.quantiles, _PERCENTILE_GRID))


def _bucket_codes(session: IntArray) -> npt.NDArray[np.intp]:
    """Index into :data:`SESSION_BUCKETS` for each session number (all >= 2)."""
    open_start = SESSION_BUCKETS[-1][0]
    table = np.zeros(open_start + 1, dtype=np.intp)
    for index, (first, last) in enumerate(SESSION_BUCKETS):
        table[first : (open_start if last is None else last) + 1] = index
    return table[np.minimum(session, open_start)]


def _bands(session: IntArray, residual: FloatArray) -> tuple[ResidualBand, ...]:
    codes = _bucket_codes(session)
    subsets = [residual[codes == index] for index in range(len(SESSION_BUCKETS))]
    pooled: ResidualBand | None = None
    bands = []
    for subset, (first, last) in zip(subsets, SESSION_BUCKETS, strict=True):
        if subset.size >= MIN_BUCKET_RESIDUALS:
            bands.append(ResidualBand.of(subset, first, last, pooled=False))
            continue
        # pooled over all sessions; computed only when a band needs it (saves a 1M-row sort)
        pooled = pooled or ResidualBand.of(residual, 2, None, pooled=True)
        bands.append(ResidualBand(first, last, pooled.n, pooled.quantiles, pooled=True))
    return tuple(bands)


@dataclass(frozen=True, slots=True)
class ClinicEtr:
    """A clinic's own expected treatment response (see the module docstring for the model).

    ``coefficients`` are ``(b0, b1, b2, b3)`` of
    ``score = b0 + b1·intake + b2·ln k + b3·intake·ln k``; ``bounds`` (the scale's range)
    clip the expected score a client is judged against and what is displayed, never the
    fitted residuals the band is made of.
    """

    direction: Direction
    coefficients: tuple[float, float, float, float]
    bands: tuple[ResidualBand, ...]
    n_episodes: int
    n_scores: int
    bounds: tuple[float, float] | None = None
    off_track_percentile: float = OFF_TRACK_PERCENTILE
    #: the highest session number and the lowest and highest intake among the fitted episodes
    last_session: int | None = None
    intake_range: tuple[float, float] | None = None
    #: judges what lies outside ``last_session`` / ``intake_range`` (module docstring: no
    #: extrapolation); without one the curve is extrapolated, as before it existed
    fallback: RationalTrajectory | None = None

    @property
    def label(self) -> str:
        return f"etr:clinic-regression {MODEL_VERSION} (n={self.n_episodes})"

    def covers_intake(self, intake: float) -> bool:
        """Is ``intake`` within the intakes the curve was fitted on (or is there no fallback)?"""
        if self.fallback is None or self.intake_range is None:
            return True
        low, high = self.intake_range
        return low <= intake <= high

    def covers(self, intake: float, session: int) -> bool:
        """Does the fit reach this intake and session number (or is there no fallback)?"""
        if self.fallback is None or self.last_session is None:
            return self.covers_intake(intake)
        return self.covers_intake(intake) and session <= self.last_session

    def expected(self, intake: float, session: int) -> float:
        """Expected score at ``session`` (unclipped); the intake itself at session 1."""
        if session == 1:
            return intake
        b0, b1, b2, b3 = self.coefficients
        log_k = math.log(session)
        return b0 + b1 * intake + b2 * log_k + b3 * intake * log_k

    def band_for(self, session: int) -> ResidualBand:
        for band in self.bands:
            if band.first_session <= session and (
                band.last_session is None or session <= band.last_session
            ):
                return band
        raise ValueError(f"no residual band for session {session}")

    def _clip(self, value: float) -> float:
        return value if self.bounds is None else min(max(value, self.bounds[0]), self.bounds[1])

    def _worse_tail(self, percentile: float) -> float:
        """Percentile counted from the *worse* end, whatever the scale's direction."""
        return percentile if self.direction is Direction.HIGHER_IS_BETTER else 100.0 - percentile

    def assess(self, intake: float, session: int, score: float) -> TrajectoryAssessment:
        """Is ``score`` at ``session`` within the clinic's expected range for this intake?"""
        _check_point(intake, session, score)
        if session == 1:
            return _intake_assessment(intake, self.label)
        if self.fallback is not None and not self.covers(intake, session):
            judged = self.fallback.assess(intake, session, score)
            return replace(judged, reason=f"{judged.reason} ({self._outside(intake)})")
        # Judged against the attainable expectation: the log curve can run past the scale's
        # end for a high intake, and a client at 40/40 is not "below expectation" because the
        # line says 41.5 (a ceiling, not a shortfall). Without bounds, unclipped.
        expected = self._clip(self.expected(intake, session))
        band = self.band_for(session)
        percentile = band.percentile_of(score - expected)
        on_track = self._worse_tail(percentile) >= self.off_track_percentile
        p = self.off_track_percentile
        shown_low, shown_high = shown_band(
            self._clip(expected + band.at(p)), self._clip(expected + band.at(100.0 - p))
        )
        return TrajectoryAssessment(
            session=session,
            score=score,
            expected=_figure(expected),
            band_low=shown_low,
            band_high=shown_high,
            percentile=_figure(percentile),
            on_track=on_track,
            model=self.label,
            reason=(
                f"{percentile_phrase(percentile)} of clinic clients with this expected score"
                + ("" if on_track else f", beyond the worst {p:g}%")
            ),
        )

    def _outside(self, intake: float) -> str:
        if not self.covers_intake(intake) and self.intake_range is not None:
            low, high = self.intake_range
            return f"intake outside the {low:g}-{high:g} the clinic's ETR was fitted on"
        return f"beyond session {self.last_session}, the last the clinic's ETR was fitted on"

    def path(self, intake: float, sessions: int) -> ExpectedPath:
        """Expected score and bands for sessions 1..``sessions``, up to the last fitted
        session (the fallback's path for an intake outside the fitted range) when the model has
        a fallback."""
        if self.fallback is not None and not self.covers_intake(intake):
            return self.fallback.path(intake, sessions)
        if self.fallback is not None and self.last_session is not None:
            sessions = min(sessions, self.last_session)
        ks = tuple(range(1, sessions + 1))
        p = self.off_track_percentile

        def line(percentile: float | None) -> tuple[float, ...]:
            values = []
            for k in ks:
                centre = self.expected(intake, k)
                offset = 0.0 if k == 1 or percentile is None else self.band_for(k).at(percentile)
                values.append(self._clip(centre + offset))
            return tuple(values)

        return ExpectedPath(
            model=self.label,
            sessions=ks,
            expected=line(None),
            low=line(p),
            high=line(100.0 - p),
            inner_low=line(INNER_BAND[0]),
            inner_high=line(INNER_BAND[1]),
        )


def fit_clinic_etr(
    sample: EtrSample,
    direction: Direction,
    *,
    bounds: tuple[float, float] | None = None,
    min_episodes: int = MIN_EPISODES,
    off_track_percentile: float = OFF_TRACK_PERCENTILE,
    fallback: RationalTrajectory | None = None,
) -> ClinicEtr:
    """Fit the clinic's ETR; raises :class:`InsufficientData` below ``min_episodes``.

    ``fallback`` judges sessions and intakes beyond the fitted ones (module docstring).

    ``min_episodes`` is a setting for clinics that want a stricter floor; lowering it below
    :data:`MIN_EPISODES` is refused because the bands would be noise.
    """
    if min_episodes < MIN_EPISODES:
        raise ValueError(f"min_episodes cannot be below {MIN_EPISODES} (Green 1991)")
    if not 0.0 < off_track_percentile < 50.0:
        raise ValueError("off_track_percentile must lie between 0 and 50")
    prepared = _prepare(sample)
    if prepared.n_episodes < min_episodes:
        raise InsufficientData(
            f"{prepared.n_episodes} closed episodes with an intake and at least "
            f"{MIN_SCORED_SESSIONS - 1} later scores; the clinic ETR needs {min_episodes}"
        )
    log_k = np.log(prepared.session.astype(np.float64))
    coefficients = _solve(prepared.intake, log_k, prepared.score)
    b0, b1, b2, b3 = coefficients
    fitted = b0 + b1 * prepared.intake + (b2 + b3 * prepared.intake) * log_k
    bands = _bands(prepared.session, prepared.score - fitted)
    return ClinicEtr(
        direction=direction,
        coefficients=coefficients,
        bands=bands,
        n_episodes=prepared.n_episodes,
        n_scores=int(prepared.score.size),
        bounds=bounds,
        off_track_percentile=off_track_percentile,
        last_session=int(prepared.session.max()),
        intake_range=(float(prepared.intake.min()), float(prepared.intake.max())),
        fallback=fallback,
    )


# --------------------------------------------------------------------------- rational rules


@dataclass(frozen=True, slots=True)
class RationalTrajectory:
    """The rational method: cut-off and reliable change only (domain.md §3, §5).

    * A score reliably worse than the intake is off track.
    * A client who started in the clinical range and has no reliable improvement gets guidance:
      *discuss* from ``discuss_checkpoint`` (3), *change approach* from ``change_checkpoint``
      (6) - the latter also counts as off track, since by then the absence of change is itself
      the signal. Both are the clinic's settings (``RiskSettings``), defaults domain.md §3.
    * A client who started in the functional range is not expected to improve much, so only
      reliable worsening flags them.
    """

    criteria: ChangeCriteria
    discuss_checkpoint: int = DISCUSS_BY_SESSION
    change_checkpoint: int = CHANGE_APPROACH_BY_SESSION

    def __post_init__(self) -> None:
        if not 1 <= self.discuss_checkpoint < self.change_checkpoint:
            raise ValueError(
                "checkpoints must satisfy 1 <= discuss_checkpoint < change_checkpoint, not "
                f"{self.discuss_checkpoint} and {self.change_checkpoint}"
            )

    @property
    def label(self) -> str:
        return RATIONAL_LABEL

    def _window(self, intake: float) -> tuple[float, float]:
        points = self.criteria.reliable_change.points
        return intake - points, intake + points

    def _judge(
        self, intake: float, session: int, score: float
    ) -> tuple[bool, Guidance | None, str]:
        rc = self.criteria.reliable_change
        improvement = self.criteria.direction.sign * (score - intake)
        reliable = rc.is_reliable(improvement)
        if reliable and improvement < 0:
            return False, None, "reliably worse than at intake"
        if reliable:
            return True, None, "reliably improved since intake"
        if not self.criteria.cutoff.is_clinical(intake, self.criteria.direction):
            return True, None, "started in the functional range; no reliable worsening"
        if session >= self.change_checkpoint:
            reason = f"no reliable improvement by session {self.change_checkpoint} (guidance)"
            return False, Guidance.CHANGE_APPROACH, reason
        if session >= self.discuss_checkpoint:
            reason = f"no reliable improvement by session {self.discuss_checkpoint} (guidance)"
            return True, Guidance.DISCUSS, reason
        return True, None, "no reliable change yet"

    def assess(self, intake: float, session: int, score: float) -> TrajectoryAssessment:
        _check_point(intake, session, score)
        if session == 1:
            return _intake_assessment(intake, self.label)
        on_track, guidance, reason = self._judge(intake, session, score)
        band_low, band_high = shown_band(*self._window(intake))
        return TrajectoryAssessment(
            session=session,
            score=score,
            expected=None,
            band_low=band_low,
            band_high=band_high,
            percentile=None,
            on_track=on_track,
            model=self.label,
            reason=reason,
            guidance=guidance,
        )

    def path(self, intake: float, sessions: int) -> ExpectedPath:
        """No expected line; the band is the reliable-change window around the intake."""
        ks = tuple(range(1, sessions + 1))
        low, high = self._window(intake)
        return ExpectedPath(
            model=self.label,
            sessions=ks,
            expected=None,
            low=tuple(intake if k == 1 else low for k in ks),
            high=tuple(intake if k == 1 else high for k in ks),
        )


def select_trajectory_model(
    sample: EtrSample,
    criteria: ChangeCriteria,
    *,
    bounds: tuple[float, float] | None = None,
    min_episodes: int = MIN_EPISODES,
    off_track_percentile: float = OFF_TRACK_PERCENTILE,
) -> ClinicEtr | RationalTrajectory:
    """The clinic's own ETR when it has enough closed episodes, else the rational rules; the
    rational rules also judge what lies beyond the ETR's fitted sessions and intakes."""
    try:
        return fit_clinic_etr(
            sample,
            criteria.direction,
            bounds=bounds,
            min_episodes=min_episodes,
            off_track_percentile=off_track_percentile,
            fallback=RationalTrajectory(criteria),
        )
    except InsufficientData:
        return RationalTrajectory(criteria)
