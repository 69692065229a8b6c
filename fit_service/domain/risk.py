"""Dropout-risk rules: pure functions from an episode's sessions to findings and a risk level.

Every threshold is a field of :class:`RiskSettings` with the default documented in
``shared/domain.md`` §3 (or labelled a *heuristic* where the literature gives no number), so a
clinic can override it. Each rule looks at the episode *as it is now* (its latest sessions) and
returns the findings that currently hold; :mod:`fit_service.domain.alerts` turns those into
alerts. Trajectory results (expected response, tolerance band, on track) are computed elsewhere
and arrive precomputed on each :class:`SessionObservation`.

How the level is derived (:func:`risk_level`):

* **high**: any finding of severity HIGH, or MEDIUM-or-worse findings from at least two different
  *sources* (alliance, outcome, attendance) - converging signals;
* **elevated**: any MEDIUM finding;
* **low**: otherwise (LOW findings are informational and are still listed).

Findings of kinds in :data:`LEVEL_NEUTRAL_KINDS` never count toward the level: they fire on
*higher* ratings (ceiling scores), and a better score must never raise the risk level.

Thresholds are compared as :mod:`fit_service.domain.change` compares them: totals carry one
decimal, so a difference such as ``20.4 - 15.4`` is not exactly 5 in binary floating point, and
values within :data:`~fit_service.domain.change.TOLERANCE` of a threshold count as equal to it.

**Stale evidence.** A finding whose latest evidence (the session or appointment it rests on) is
more than :attr:`RiskSettings.stale_after_days` before ``context.today`` opens no alert: it is
still listed, still sets the level, is marked in the episode's reasons, and keeps an alert that
is already live from auto-resolving (see :func:`evaluate_rules`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fit_service.domain.change import TOLERANCE, Cutoff
from fit_service.domain.errors import FitError, InvalidSession
from fit_service.domain.guidance import (
    GoalSheet,
    checkpoint_advice,
    guidance_before_first_session,
    guidance_for,
)
from fit_service.domain.instruments import SRS, AgeBand, Direction, Leg
from fit_service.domain.trajectory import RATIONAL_LABEL

if TYPE_CHECKING:  # the model module imports this one; the rule only calls its methods
    from fit_service.domain.dropout_model import DropoutModel


class Attendance(StrEnum):
    ATTENDED = "attended"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class Concern(StrEnum):
    """What a finding is about: one of Bordin's legs, the global alliance, outcome or attendance."""

    BOND = "bond"
    GOAL = "goal"
    TASK = "task"
    GLOBAL_ALLIANCE = "global_alliance"
    OUTCOME = "outcome"
    ATTENDANCE = "attendance"

    @property
    def is_alliance(self) -> bool:
        return self in _ALLIANCE_CONCERNS

    @property
    def source(self) -> str:
        """The kind of evidence: ``alliance``, ``outcome`` or ``attendance``."""
        return "alliance" if self.is_alliance else self.value


_ALLIANCE_CONCERNS = frozenset({Concern.BOND, Concern.GOAL, Concern.TASK, Concern.GLOBAL_ALLIANCE})
_LEG_TO_CONCERN = {
    Leg.BOND: Concern.BOND,
    Leg.GOAL: Concern.GOAL,
    Leg.TASK: Concern.TASK,
    Leg.GLOBAL: Concern.GLOBAL_ALLIANCE,
}


class Severity(IntEnum):
    LOW = 1  # informational: listed, never raises the level
    MEDIUM = 2  # raises the level to elevated; alerts only if the clinic alerts at medium
    HIGH = 3  # raises the level to high; opens an alert by default

    @property
    def label(self) -> str:
        return self.name.lower()


class RiskLevel(StrEnum):
    LOW = "low"
    ELEVATED = "elevated"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]


_LEVEL_RANK = {RiskLevel.LOW: 0, RiskLevel.ELEVATED: 1, RiskLevel.HIGH: 2}

# --- sources printed in evidence, so a clinician (and an auditor) sees where a line comes from ---
SOURCE_SRS_CONCERN = "domain.md §3: SRS concern, total < 36 (PCOMS; OpenFIT flags below cut-off)"
SOURCE_SRS_ITEM = "domain.md §3: SRS item concern, any item < 9 (practice guidance; 7.5-9 in use)"
SOURCE_SRS_DECLINE = "domain.md §3: SRS decline >= 1 point below previous session (OpenFIT red)"
SOURCE_EARLY = "domain.md §1: early alliance predicts dropout (Sharf et al. 2010, d = .55)"
SOURCE_RELIABLE_CHANGE = "domain.md §3: ORS reliable change 5 points (PCOMS manuals)"
SOURCE_NO_CHANGE = (
    "domain.md §3: no reliable improvement by session 3 (discuss), by 6 (change approach); "
    "PCOMS practice guidance, a guideline"
)
SOURCE_ETR = "domain.md §5: expected treatment response; below the band is not on track"
SOURCE_WITHDRAWAL = (
    "domain.md §1: agreement without engagement (withdrawal rupture); ceiling and session count "
    "are heuristics of this service, not published cut-offs"
)
SOURCE_WAI = (
    "domain.md §3: WAI-SR has no published cut-off; own decline and the clinic's bottom decile "
    "at the same session number"
)
SOURCE_WAI_HEURISTIC = (
    "heuristic (no published cut-off, domain.md §3): subscale <= floor, used only when the clinic "
    "has no reference distribution"
)
SOURCE_ATTENDANCE = "domain.md §6: no-shows, cancellations and lengthening gaps signal dropout"
SOURCE_SKIPPED = "domain.md §6: missing ratings (SRS skipped) signal dropout"


@dataclass(frozen=True, slots=True)
class SessionObservation:
    """One appointment of an episode, as the rules see it (observations arrive in date order).

    ``session_number`` is ``None`` for an appointment that was not attended. The trajectory
    fields (``expected_outcome``, ``band_low``, ``on_track``, ``trajectory_model``) are filled by
    the service from the expected-treatment-response engine (domain.md §5). ``outcome_clinical``
    says whether ``outcome_total`` is on the clinical side of the clinic's cut-off, by the
    clinic's rule for a score equal to it (domain.md §3, ``Cutoff.is_clinical``); the service
    fills it, and ``None`` means "not judged" (the rules then use ``context.clinical_cutoff``).
    """

    session_number: int | None
    date: dt.date
    attendance: Attendance = Attendance.ATTENDED
    outcome_total: float | None = None
    alliance_items: Mapping[str, float] | None = None
    alliance_total: float | None = None
    alliance_not_completed: bool = False
    wai_subscales: Mapping[str, float] | None = None
    expected_outcome: float | None = None
    band_low: float | None = None
    on_track: bool | None = None
    trajectory_model: str | None = None
    outcome_clinical: bool | None = None

    def __post_init__(self) -> None:
        attended = self.attendance is Attendance.ATTENDED
        if attended and (self.session_number is None or self.session_number < 1):
            raise InvalidSession(
                "an attended session needs a session number >= 1", field="session_number"
            )
        if not attended:
            if self.session_number is not None:
                raise InvalidSession(
                    "a missed appointment has no session number", field="session_number"
                )
            has_scores = (
                self.outcome_total,
                self.alliance_items,
                self.alliance_total,
                self.wai_subscales,
            )
            if any(v is not None for v in has_scores):
                raise InvalidSession("a missed appointment carries no ratings", field="attendance")

    @property
    def attended(self) -> bool:
        return self.attendance is Attendance.ATTENDED

    @property
    def srs_total(self) -> float | None:
        """The alliance total: as sent, or the sum of all four items; ``None`` when unknown."""
        if self.alliance_total is not None:
            return self.alliance_total
        items = self.alliance_items
        if items is not None and all(i in items for i in SRS.item_ids):
            return round(sum(items[i] for i in SRS.item_ids), 1)
        return None


@dataclass(frozen=True, slots=True)
class EpisodeContext:
    """What the rules need beyond the sessions.

    ``intake_outcome`` defaults to the first outcome score of the episode when ``None``.
    ``wai_reference`` maps a session number to the clinic's 10th percentile per WAI-SR subscale
    (``{"goal": 11.0, ...}``) at that session; absent when the clinic has too few data.
    """

    intake_outcome: float | None
    clinical_cutoff: float | None
    age_band: AgeBand
    today: dt.date
    goal_sheet: GoalSheet | None = None
    wai_reference: Mapping[int, Mapping[str, float]] | None = None
    #: the clinic's fitted dropout model (:mod:`fit_service.domain.dropout_model`), when it has
    #: enough closed episodes; then :func:`dropout_risk` alerts and the signals it combines
    #: (:data:`DROPOUT_MODEL_KINDS`) are listed but no longer alert one by one.
    dropout_model: DropoutModel | None = None
    #: True when the rules run on the schedule (time-based signals), not because an appointment
    #: was recorded: then the dropout model opens no alert (see :func:`dropout_risk`).
    recheck: bool = False


def _frozen_map(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """Per-clinic thresholds. Each default cites domain.md; heuristics say so.

    Build a clinic's settings with :meth:`from_mapping` (defaults overridden by its dict).
    """

    #: SRS total below this is a concern (domain.md §3: total < 36, PCOMS / OpenFIT).
    srs_concern_total: float = 36.0
    #: an SRS item below this is a concern (domain.md §3: any item < 9; 7.5-9 in use).
    srs_item_concern: float = 9.0
    #: a fall of at least this from the previous SRS (domain.md §3: >= 1 point, OpenFIT red).
    srs_decline_points: float = 1.0
    #: HEURISTIC: sessions counted as "early", by the episode's session number (the alliance's
    #: age, not sessions since the first rating). domain.md §1 (Sharf et al. 2010) says early
    #: alliance predicts dropout but gives no count; 3 matches the first no-change checkpoint
    #: (§3) and the README's "first three sessions".
    early_window_sessions: int = 3
    #: ORS/CORS reliable change in raw points (domain.md §3: 5, PCOMS; NHS CYP uses 6.6 / 10).
    #: Also how far below what a clinician closed an SRS alert on the SRS total must fall for the
    #: alert to open again (domain/alerts._WORSE_BY: a labelled heuristic for the SRS).
    reliable_change: float = 5.0
    #: no reliable improvement by this session: discuss (domain.md §3, practice guidance).
    discuss_checkpoint: int = 3
    #: no reliable improvement by this session: change approach (domain.md §3, guidance).
    change_checkpoint: int = 6
    #: HEURISTIC: "agreement without engagement" needs SRS >= this at every session
    #: (domain.md §1 names the pattern but gives no number; 38 = items averaging 9.5).
    withdrawal_srs_ceiling: float = 38.0
    #: HEURISTIC: ... over at least this many sessions, with ORS range < reliable change.
    withdrawal_min_sessions: int = 4
    #: HEURISTIC: days since the last attended session beyond which a gap is flagged
    #: (domain.md §6: "lengthening gaps"; three weeks = two missed weekly appointments).
    max_gap_days: int = 21
    #: HEURISTIC: a finding whose latest evidence is more than this many ``max_gap_days``
    #: before today is stale: listed and counted in the level, but it opens no alert (see
    #: :attr:`stale_after_days`). Default 4 x 21 = 84 days (12 weeks). The scheduled check
    #: flags a gap on its first day past ``max_gap_days``, so in a live episode every finding
    #: has long had its chance to alert; evidence four gaps old reaches the rules only from a
    #: backfill or an episode nobody closed, and an alert on it "as if current" sends a
    #: clinician after a client who left months ago. Four gaps keeps a client seen once six
    #: weeks ago (two gaps) and never again well inside the horizon: that is a real dropout
    #: signal (domain.md §6). At least 2, so a gap can be flagged before it goes stale.
    stale_evidence_gaps: int = 4
    #: HEURISTIC: a WAI-SR subscale fall of at least this (4-20 scale) against the previous
    #: administration counts as the client's own decline (domain.md §3: no published cut-off).
    wai_decline_points: float = 2.0
    #: HEURISTIC: subscale at or below this is "low" when the clinic has no reference decile
    #: (12 = every item "sometimes" on the 1-5 scale). Labelled in the evidence.
    wai_floor: float = 12.0
    #: alliance alerts auto-resolve only after this many consecutive sessions with SRS at or
    #: above ``srs_concern_total`` (issue 4: "SRS >= 36 for two sessions").
    alliance_clear_sessions: int = 2
    #: HEURISTIC: a reliable-deterioration finding holds until this many outcome scores in a
    #: row are back within the reliable change (mirrors ``alliance_clear_sessions``).
    deterioration_clear_sessions: int = 2
    #: HEURISTIC: reliable deterioration is HIGH (alerts) once this many outcome scores in a
    #: row are reliably below intake; one such score alone is MEDIUM (listed, sets the level,
    #: feeds the dropout model). The 5-point reliable change is a 95% bound for *one*
    #: comparison; over an episode's six or so scores an unchanged client crosses it once by
    #: chance (on the synthetic cohort, seeds 1-5: about 6% of the clients not reliably worse
    #: at the end crossed it on the way, about 2% twice in a row or by
    #: ``deterioration_large_multiple``; ``./dev evaluate-alerts`` prints this per seed, beside 6%
    #: reliably worse at the end). 1 restores alerting on a single score.
    deterioration_confirm_scores: int = 2
    #: HEURISTIC: a single score at least this many reliable changes below intake is HIGH at
    #: once (2 x 5 points, domain.md §3: beyond what measurement error explains).
    deterioration_large_multiple: float = 2.0
    #: findings below this severity are listed (and set the level) but do not open alerts.
    #: Default HIGH: on the synthetic cohort (fit_service/evaluation.py) MEDIUM opens about 8
    #: alerts per clinician-week against a budget of 2; HIGH about 2. A clinic that wants every
    #: actionable finding as an alert sets "medium".
    alert_min_severity: Severity = Severity.HIGH
    #: dropout-risk alerts a clinician should get a week once the clinic's dropout model is
    #: fitted (it sets the model's alert line; fit_service/domain/dropout_model.py). HEURISTIC:
    #: 1.76, chosen on the evaluation's calibration seeds 1-5 (``./dev evaluate-alerts``) as the
    #: largest value (steps of 0.01) whose pooled rate of *all* alerts - with confirmed
    #: deterioration (~0.16) and re-opened ones - stays at or below issue 4's budget of 2 per
    #: clinician-week by 1.645 standard errors of that rate across seeds (1.973 + 0.025).
    dropout_alerts_per_clinician_week: float = 1.76
    #: HEURISTIC: at a missed appointment a new dropout-risk alert needs the model's odds to be
    #: this many times its line's (the clinician sees the miss already; see
    #: fit_service/domain/dropout_model.py). An alert already open holds at the plain line.
    dropout_missed_odds_factor: float = 3.0

    def __post_init__(self) -> None:
        for name in ("srs_concern_total", "withdrawal_srs_ceiling"):
            _check_range(name, getattr(self, name), SRS.total_min, SRS.total_max)
        # an item runs 0-10 (SRS and CSRS alike): a line above it flags every item
        _check_range("srs_item_concern", self.srs_item_concern, SRS.item_min, SRS.item_max)
        # Lower bounds are the smallest values with a meaning: an alert rate per clinician-week
        # under 0.01 is none in two years; a decline finer than the scale's grid (SRS totals in
        # tenths, WAI-SR subscales in whole points) cannot be observed; a reliable change under
        # a point is a typo (1e-12 was stored and made every unchanged score "reliable").
        _check_range(
            "dropout_alerts_per_clinician_week", self.dropout_alerts_per_clinician_week, 0.01, 50.0
        )
        _check_range("dropout_missed_odds_factor", self.dropout_missed_odds_factor, 1.0, 1000.0)
        _check_range("deterioration_large_multiple", self.deterioration_large_multiple, 1.0, 10.0)
        _check_range("srs_decline_points", self.srs_decline_points, 0.1, 40.0)
        _check_range("wai_decline_points", self.wai_decline_points, 1.0, 40.0)
        _check_range("reliable_change", self.reliable_change, 1.0, 40.0)
        _check_range("wai_floor", self.wai_floor, 4.0, 20.0)
        gaps = self.stale_evidence_gaps
        if isinstance(gaps, bool) or not isinstance(gaps, int) or gaps < 2:
            raise _setting_error(
                "stale_evidence_gaps",
                "must be a whole number >= 2 (a gap must be flaggable before it is stale), "
                f"got {gaps!r}",
            )
        for name in (
            "early_window_sessions",
            "discuss_checkpoint",
            "change_checkpoint",
            "withdrawal_min_sessions",
            "max_gap_days",
            "alliance_clear_sessions",
            "deterioration_clear_sessions",
            "deterioration_confirm_scores",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _setting_error(name, f"must be a whole number >= 1, got {value!r}")
        if self.change_checkpoint <= self.discuss_checkpoint:
            raise _setting_error(
                "change_checkpoint", "must come after discuss_checkpoint (domain.md §3: 3, then 6)"
            )
        if not isinstance(self.alert_min_severity, Severity):
            raise _setting_error("alert_min_severity", "must be a Severity")

    @property
    def stale_after_days(self) -> int:
        """Findings whose latest evidence is older than this many days open no alert."""
        return self.stale_evidence_gaps * self.max_gap_days

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, object] | None = None) -> RiskSettings:
        """Defaults overridden by a clinic's settings dict; unknown keys and bad values raise.

        ``alert_min_severity`` may be given as ``"low"``, ``"medium"``, ``"high"`` or 1-3.
        """
        base = cls()
        if not overrides:
            return base
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key not in known:
                raise _setting_error(key, f"unknown risk setting; known: {', '.join(known)}")
            default = getattr(base, key)
            values[key] = _coerce(key, raw, default)
        return replace(base, **values)


def _coerce(key: str, raw: object, default: object) -> object:
    if isinstance(default, Severity):
        try:
            # ASCII only: str.upper() turns a dotless i (U+0131) into I, so "h\u0131gh"
            # read as HIGH: a stored value no one wrote.
            if isinstance(raw, str) and raw.isascii():
                return Severity[raw.upper()]
            if isinstance(raw, int) and not isinstance(raw, bool):
                return Severity(raw)
        except (KeyError, ValueError):
            pass
        raise _setting_error(key, f"must be one of low, medium, high; got {raw!r}")
    if isinstance(default, int):
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _setting_error(key, f"must be a whole number, got {raw!r}")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _setting_error(key, f"must be a number, got {raw!r}")
    return float(raw)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and low <= value <= high):
        raise _setting_error(name, f"must be a number in [{low:g}, {high:g}], got {value!r}")


def _setting_error(name: str, detail: str) -> FitError:
    return FitError(f"risk setting {name}: {detail}", field=name, rule="invalid_risk_setting")


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that holds now. ``kind`` is a stable id; ``evidence`` is plain JSON-able data."""

    kind: str
    concern: Concern
    severity: Severity
    session_number: int | None
    observed_on: dt.date
    evidence: Mapping[str, Any] = field(default_factory=dict)
    guidance: str = ""
    #: False for a signal the clinic's dropout model already combines: listed, sets the level,
    #: keeps its alert from auto-resolving, but opens none (see :data:`DROPOUT_MODEL_KINDS`).
    alerts: bool = True
    #: its latest evidence is older than ``RiskSettings.stale_after_days``: listed, opens no
    #: alert (``alerts`` is then False too; see :func:`evaluate_rules`)
    stale: bool = False
    #: the kind of the finding whose alert carries this one: the same finding stated by a
    #: stronger rule on the same score (:func:`fold_restatements`). Listed, sets the level,
    #: keeps an alert of its kind from auto-resolving, opens none (``alerts`` is then False).
    covered_by: str | None = None
    #: a covered finding that would open its own alert were it not carried (not stale, not
    #: left to the dropout model): it does when its carrier's alert can neither stay nor open
    #: (the clinician dismissed it), so folding never costs an alert (domain.alerts.reconcile)
    alerts_alone: bool = False
    #: the values the kind's guidance sentence was filled in with (model, checkpoint, days), so
    #: a carrier's guidance can be written again with the findings it carries
    guidance_facts: Mapping[str, object] = field(default_factory=dict)

    @property
    def leg(self) -> Concern:
        """Alias: the leg (or outcome / attendance) the finding is about."""
        return self.concern


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    level: RiskLevel
    findings: tuple[Finding, ...]
    reasons: tuple[str, ...]


Rule = Callable[[Sequence[SessionObservation], EpisodeContext, RiskSettings], list[Finding]]

#: kinds that fire on *higher* ratings, so they never count toward the level (see module doc).
LEVEL_NEUTRAL_KINDS = frozenset({"agreement_without_engagement"})


# ------------------------------------------------------------------------------- helpers
def _attended(obs: Sequence[SessionObservation]) -> list[SessionObservation]:
    return [o for o in obs if o.attended]


def _rated(obs: Sequence[SessionObservation]) -> list[SessionObservation]:
    """Attended sessions with a known SRS total, in order."""
    return [o for o in obs if o.attended and o.srs_total is not None]


def _with_outcome(obs: Sequence[SessionObservation]) -> list[SessionObservation]:
    return [o for o in obs if o.attended and o.outcome_total is not None]


def _intake(obs: Sequence[SessionObservation], context: EpisodeContext) -> float | None:
    if context.intake_outcome is not None:
        return context.intake_outcome
    scored = _with_outcome(obs)
    return scored[0].outcome_total if scored else None


def _reaches(value: float, threshold: float) -> bool:
    """``value >= threshold``, a value within ``TOLERANCE`` of it counting as equal (totals carry
    one decimal: ``20.4 - 15.4`` is 4.999...; the convention of domain/change.py)."""
    return value >= threshold - TOLERANCE


def _intake_is_clinical(
    obs: Sequence[SessionObservation], context: EpisodeContext, intake: float
) -> bool | None:
    """Is the intake on the clinical side of the cut-off (domain.md §3)? As the service judged
    the intake score by the clinic's rule (``outcome_clinical``), else by
    ``context.clinical_cutoff`` with the PCOMS rule (a score equal to it is functional), through
    the same :meth:`Cutoff.is_clinical` the views and reports use; ``None`` without a cut-off."""
    scored = _with_outcome(obs)
    if scored and scored[0].outcome_total == intake and scored[0].outcome_clinical is not None:
        return scored[0].outcome_clinical
    if context.clinical_cutoff is None:
        return None
    return Cutoff.fixed(context.clinical_cutoff).is_clinical(intake, Direction.HIGHER_IS_BETTER)


def _finding(
    kind: str,
    concern: Concern,
    severity: Severity,
    at: SessionObservation,
    context: EpisodeContext,
    evidence: Mapping[str, Any],
    facts: Mapping[str, object] | None = None,
) -> Finding:
    return Finding(
        kind=kind,
        concern=concern,
        severity=severity,
        session_number=at.session_number,
        observed_on=at.date,
        evidence=_frozen_map(evidence),
        guidance=guidance_for(kind, concern.value, context.goal_sheet, facts),
        guidance_facts=_frozen_map(facts or {}),
    )


def _alliance_concern(o: SessionObservation, settings: RiskSettings) -> bool:
    """Total below the concern line or any item below the item line (domain.md §3)."""
    total = o.srs_total
    if total is not None and total < settings.srs_concern_total:
        return True
    items = o.alliance_items or {}
    return any(v < settings.srs_item_concern for v in items.values())


def _weak_legs(o: SessionObservation, settings: RiskSettings) -> list[str]:
    """Legs whose SRS item is below the item line, weakest first (domain.md §2 mapping)."""
    items = o.alliance_items or {}
    low = sorted(
        (v, i) for i, v in items.items() if i in SRS.item_legs and v < settings.srs_item_concern
    )
    return [SRS.item_legs[i].value for _, i in low]


#: Bordin's legs (domain.md §1), the SRS items that can be named as "the weak leg"
_BORDIN_LEGS = frozenset({Leg.BOND, Leg.GOAL, Leg.TASK})


def _weakest_concern(o: SessionObservation, settings: RiskSettings) -> Concern:
    """The one leg to name for ``o``: of the SRS items for Bordin's legs (relationship, goals,
    approach) below the item line, the one lower than the other two (domain.md §1: an alert
    that says which leg is weak). The ``overall`` item takes no part: it is a global check, not
    a leg (domain.md §2), so overall as low as (or lower than) the one weak leg neither ties
    with it nor outranks it - relationship 9.5, goals 7, approach 9, overall 7 names goals. Two
    or three legs tied lowest, no leg below the line (only overall low), or no items (a
    total-only rating) name the alliance as a whole: picking one of the tied legs (by item id)
    would claim more than the ratings show; the evidence lists every low item, overall's as
    ``global``."""
    items = o.alliance_items or {}
    low = sorted(
        (v, SRS.item_legs[i])
        for i, v in items.items()
        if SRS.item_legs.get(i) in _BORDIN_LEGS and v < settings.srs_item_concern
    )
    if not low or (len(low) > 1 and low[1][0] == low[0][0]):
        return Concern.GLOBAL_ALLIANCE
    return _LEG_TO_CONCERN[low[0][1]]


# ------------------------------------------------------------------------------- rules
def low_alliance(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """SRS total below the concern line at the latest rated session (domain.md §3: < 36).

    ``early_low_alliance`` (HIGH) when the current run of low ratings began within the early
    window (domain.md §1: Sharf et al. 2010, d = .55); ``low_alliance`` (MEDIUM) when it began
    later. One run is one finding, so a low rating that persists past session 3 stays one alert.
    The evidence carries the latest session's SRS item scores (``items``, by neutral item id)
    and its legs below the item line (``weak_legs``, weakest first); both ``None`` for a
    total-only rating (items unknown, domain.md §2).
    """
    rated = _rated(obs)
    if not rated or rated[-1].srs_total >= settings.srs_concern_total:  # type: ignore[operator]
        return []
    run: list[SessionObservation] = []
    for o in reversed(rated):
        if o.srs_total >= settings.srs_concern_total:  # type: ignore[operator]
            break
        run.append(o)
    started = run[-1].session_number or 0
    latest = rated[-1]
    early = started <= settings.early_window_sessions
    # The session's item scores, so the clinician sees how weak each leg is without fetching
    # the session: neutral item ids, scores only (domain.md §2: never item text). A total-only
    # rating has items unknown (§2): ``None`` for the items and the weak legs alike, not an
    # empty list that would read as "no leg is weak".
    known = latest.alliance_items
    items = {i: known[i] for i in SRS.item_ids if i in known} if known else None
    weak = _weak_legs(latest, settings) if items else None
    # Name the weakest leg when items are known (domain.md §1: an alert that says which leg is
    # weak is one a clinician can act on); otherwise (or on a tie) the alliance as a whole.
    concern = _weakest_concern(latest, settings)
    evidence = {
        "srs_total": latest.srs_total,
        "items": items,
        "weak_legs": weak,
        "threshold": settings.srs_concern_total,
        "source": SOURCE_EARLY + "; " + SOURCE_SRS_CONCERN if early else SOURCE_SRS_CONCERN,
        "sessions_below": [o.session_number for o in reversed(run)],
        "early_window_sessions": settings.early_window_sessions,
    }
    if early:
        return [_finding("early_low_alliance", concern, Severity.HIGH, latest, context, evidence)]
    return [_finding("low_alliance", concern, Severity.MEDIUM, latest, context, evidence)]


def low_srs_items(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """Each SRS item below the item line at the latest session with items (domain.md §3: < 9).

    One finding per weak leg, kind ``low_srs_<leg>`` (relationship->bond, goals->goal,
    approach->task, overall->global; domain.md §2). LOW for a single session; MEDIUM when the
    same leg was also low at the previous session with items (an unrepaired rupture, §1).

    Judged at the latest rated session, as :func:`low_alliance` is: when that rating came as a
    total only, the items are unknown now (domain.md §2) and no leg is named as low now; an
    earlier session's items would be old news reported as current.
    """
    rated = _rated(obs)
    if not rated or not rated[-1].alliance_items:
        return []
    with_items = [o for o in obs if o.attended and o.alliance_items]
    latest = with_items[-1]
    previous = with_items[-2] if len(with_items) > 1 else None
    findings: list[Finding] = []
    for item_id in SRS.item_ids:
        value = (latest.alliance_items or {}).get(item_id)
        if value is None or value >= settings.srs_item_concern:
            continue
        leg = SRS.item_legs[item_id]
        before = (previous.alliance_items or {}).get(item_id) if previous else None
        persistent = before is not None and before < settings.srs_item_concern
        findings.append(
            _finding(
                f"low_srs_{leg.value}",
                _LEG_TO_CONCERN[leg],
                Severity.MEDIUM if persistent else Severity.LOW,
                latest,
                context,
                {
                    "item": item_id,
                    "leg": leg.value,
                    "score": value,
                    "previous_score": before,
                    "previous_session": previous.session_number if previous else None,
                    "threshold": settings.srs_item_concern,
                    "source": SOURCE_SRS_ITEM,
                },
            )
        )
    return findings


def srs_decline(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """SRS total at least ``srs_decline_points`` below the previous rated session (domain.md §3).

    LOW for one decline (within-client noise on a ceiling-heavy scale is common); MEDIUM when
    the previous session was already a decline (a falling alliance).

    The leg named is the one whose fall stands out (:func:`_decline_concern`): the Bordin leg
    (relationship->bond, goals->goal, approach->task; domain.md §2) whose item fell most, when
    it fell at least ``srs_decline_points`` more than any other leg's item - approach 9.5 -> 5
    with the others steady names the task leg. Otherwise (legs falling together, only the
    ``overall`` item falling - a global check, not a leg - or items unknown at either session,
    a total-only rating) the alliance as a whole. The evidence lists each item's change by
    neutral item id (``item_changes``, latest minus previous; ``None`` when items are unknown).
    """
    rated = _rated(obs)
    if len(rated) < 2:
        return []
    totals = [o.srs_total for o in rated]
    drop = totals[-2] - totals[-1]  # type: ignore[operator]
    if not _reaches(drop, settings.srs_decline_points):
        return []
    falling = len(totals) >= 3 and _reaches(
        totals[-3] - totals[-2],  # type: ignore[operator]
        settings.srs_decline_points,
    )
    changes = _item_changes(rated[-2], rated[-1])
    return [
        _finding(
            "srs_decline",
            _decline_concern(changes, settings),
            Severity.MEDIUM if falling else Severity.LOW,
            rated[-1],
            context,
            {
                "srs_total": totals[-1],
                "previous_total": totals[-2],
                "previous_session": rated[-2].session_number,
                "decline": round(drop, 1),
                "threshold": settings.srs_decline_points,
                "consecutive_declines": 2 if falling else 1,
                "item_changes": changes,
                "source": SOURCE_SRS_DECLINE,
            },
        )
    ]


def _item_changes(before: SessionObservation, after: SessionObservation) -> dict[str, float] | None:
    """Each SRS item's change from ``before`` to ``after`` (negative: it fell), by neutral item
    id, to the scale's tenth; ``None`` unless both sessions carry all four items (a total-only
    rating has its items unknown, domain.md §2)."""
    a, b = before.alliance_items, after.alliance_items
    if not a or not b or any(i not in a or i not in b for i in SRS.item_ids):
        return None
    return {i: round(b[i] - a[i], 1) for i in SRS.item_ids}


def _decline_concern(changes: Mapping[str, float] | None, settings: RiskSettings) -> Concern:
    """The leg an SRS decline is about: the Bordin leg whose item fell most, when its fall
    exceeds every other leg's by at least ``srs_decline_points`` (the clinic's own step for "this
    moved", domain.md §3); else - legs falling together, only ``overall`` falling (a global
    check, not a leg, domain.md §2), no leg falling, or items unknown - the alliance as a whole:
    naming one leg of several that fell alike would claim more than the ratings show."""
    if changes is None:
        return Concern.GLOBAL_ALLIANCE
    falls = sorted(
        (
            (-v, SRS.item_legs[i])
            for i, v in changes.items()
            if SRS.item_legs.get(i) in _BORDIN_LEGS
        ),
        key=lambda pair: pair[0],
        reverse=True,
    )
    if not falls or falls[0][0] <= 0:
        return Concern.GLOBAL_ALLIANCE
    runner_up = max(falls[1][0], 0.0) if len(falls) > 1 else 0.0
    if not _reaches(falls[0][0] - runner_up, settings.srs_decline_points):
        return Concern.GLOBAL_ALLIANCE
    return _LEG_TO_CONCERN[falls[0][1]]


def weak_wai_subscales(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """A weak or falling WAI-SR client subscale at the latest administration (domain.md §3).

    *Low* means below the clinic's 10th percentile at the same session number when the clinic
    has one, else at or below the heuristic ``wai_floor`` (a subscale equal to the floor is low).
    *Falling* means at least ``wai_decline_points`` below the client's previous administration.
    Low and falling: MEDIUM; low only: LOW; falling only: no finding.

    A leg that stays weak keeps the severity its fall gave it: low now, low at every
    administration since it was last low and falling, and at or below the score it fell to
    then, it stays MEDIUM (bond 12 -> 8 -> 8 is LOW, MEDIUM, MEDIUM; nothing improved, so
    nothing is less urgent). It drops to LOW only once the subscale is back above that score
    (while still low), and the finding goes once the subscale is no longer low. The evidence
    names the fall it is held at (``held_since_session``, ``held_at_score``).
    """
    given = [o for o in obs if o.attended and o.wai_subscales]
    if not given:
        return []
    latest = given[-1]
    previous = given[-2] if len(given) > 1 else None
    findings: list[Finding] = []
    for leg in (Leg.GOAL, Leg.TASK, Leg.BOND):
        value = (latest.wai_subscales or {}).get(leg.value)
        if value is None:
            continue
        low, line, p10 = _wai_low(latest, leg, value, context, settings)
        if not low:
            continue
        before = (previous.wai_subscales or {}).get(leg.value) if previous else None
        falling = before is not None and before - value >= settings.wai_decline_points
        held = None if falling else _wai_last_fall(given, leg, context, settings)
        held = held if held is not None and value <= held[1] + TOLERANCE else None
        findings.append(
            _finding(
                f"weak_wai_{leg.value}",
                _LEG_TO_CONCERN[leg],
                Severity.MEDIUM if falling or held else Severity.LOW,
                latest,
                context,
                {
                    "subscale": leg.value,
                    "score": value,
                    "previous_score": before,
                    "previous_session": previous.session_number if previous else None,
                    "low_line": line,
                    "low_line_is_clinic_decile": p10 is not None,
                    "decline_threshold": settings.wai_decline_points,
                    "held_since_session": held[0] if held else None,
                    "held_at_score": held[1] if held else None,
                    "source": SOURCE_WAI if p10 is not None else SOURCE_WAI_HEURISTIC,
                },
            )
        )
    return findings


def _wai_low(
    o: SessionObservation,
    leg: Leg,
    value: float,
    context: EpisodeContext,
    settings: RiskSettings,
) -> tuple[bool, float, float | None]:
    """Whether ``value`` (the ``leg`` subscale at ``o``) is low, the line it was judged by, and
    the clinic's decile when that was the line (domain.md §3; else the heuristic floor)."""
    reference = (context.wai_reference or {}).get(o.session_number or 0)
    p10 = reference.get(leg.value) if reference else None
    if p10 is not None:
        return value < p10, p10, p10
    return value <= settings.wai_floor, settings.wai_floor, None


def _wai_last_fall(
    given: Sequence[SessionObservation],
    leg: Leg,
    context: EpisodeContext,
    settings: RiskSettings,
) -> tuple[int | None, float] | None:
    """The latest administration before the last at which ``leg`` was low and falling, when the
    subscale has been low at every administration since (session number, score then); ``None``
    when the current run of low scores holds no fall."""
    scored = [
        (o, subscales[leg.value])
        for o in given
        if leg.value in (subscales := o.wai_subscales or {})
    ]
    for index in range(len(scored) - 2, 0, -1):
        o, value = scored[index]
        if not _wai_low(o, leg, value, context, settings)[0]:
            return None
        if scored[index - 1][1] - value >= settings.wai_decline_points:
            return o.session_number, value
    return None


def ors_deterioration(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """An outcome at least the reliable change below intake (domain.md §3/§4).

    MEDIUM for one such score; HIGH (an alert) once ``deterioration_confirm_scores`` scores in
    a row are reliably worse, or one is ``deterioration_large_multiple`` reliable changes below
    intake: a single crossing of a 95% bound, tested at every session, is often noise (see the
    setting). It holds until ``deterioration_clear_sessions`` outcome scores in a row are back
    within the reliable change (one better score after a reliable fall is not recovery: the
    same rule the issue sets for the alliance), and names the latest score that was reliably
    worse. HIGH when any score still holding the finding ends a confirming run or is a large
    fall, so a better score can only lower the severity, whatever the settings.
    """
    scored = _with_outcome(obs)
    intake = _intake(obs, context)
    if not scored or intake is None:
        return []
    reliably_worse = [
        _reaches(intake - o.outcome_total, settings.reliable_change)  # type: ignore[operator]
        for o in scored
    ]
    recent = range(max(0, len(scored) - settings.deterioration_clear_sessions), len(scored))
    worse = [i for i in recent if reliably_worse[i]]
    if not worse:
        return []
    at = scored[worse[-1]]
    change = at.outcome_total - intake  # type: ignore[operator]
    large_fall = settings.deterioration_large_multiple * settings.reliable_change

    def run_to(i: int) -> int:  # reliably worse scores in a row, ending at score i
        run = 0
        while i - run >= 0 and reliably_worse[i - run]:
            run += 1
        return run

    run = max(run_to(i) for i in worse)
    large = any(
        _reaches(intake - scored[i].outcome_total, large_fall)  # type: ignore[operator]
        for i in worse
    )
    confirmed = run >= settings.deterioration_confirm_scores
    finding = _finding(
        "ors_reliable_deterioration",
        Concern.OUTCOME,
        Severity.HIGH if confirmed or large else Severity.MEDIUM,
        at,
        context,
        {
            "outcome_total": at.outcome_total,
            "latest_outcome_total": scored[-1].outcome_total,
            "intake": intake,
            "change": round(change, 1),
            "threshold": -settings.reliable_change,
            "scores_in_a_row": run,
            "alert_after_scores": settings.deterioration_confirm_scores,
            "alert_at_change": -large_fall,
            "clear_after_sessions": settings.deterioration_clear_sessions,
            "source": SOURCE_RELIABLE_CHANGE,
        },
    )
    # Held over from an earlier score (the latest is back within the reliable change): it keeps
    # a live alert open but opens none - not even after the clinician dismissed one.
    return [finding if at is scored[-1] else replace(finding, alerts=False)]


def _tenth(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def not_on_track(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """The latest outcome is below the expected-response band (precomputed, domain.md §5)."""
    scored = _with_outcome(obs)
    # Only the latest outcome counts: an earlier dip that has recovered no longer holds.
    if not scored or scored[-1].on_track is not False:
        return []
    latest = scored[-1]
    model = latest.trajectory_model or "unnamed model"
    return [
        _finding(
            "not_on_track",
            Concern.OUTCOME,
            Severity.MEDIUM,
            latest,
            context,
            {
                "outcome_total": latest.outcome_total,
                # shown to the clinician: to the scale's resolution (a tenth), not float noise
                # such as 11.100000000000001
                "expected_outcome": _tenth(latest.expected_outcome),
                "band_low": _tenth(latest.band_low),
                "model": model,
                "source": SOURCE_ETR,
            },
            {"model": model},
        )
    ]


def no_reliable_improvement(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """No reliable improvement over intake by the discuss / change checkpoints (domain.md §3).

    LOW from ``discuss_checkpoint`` (3: discuss), MEDIUM from ``change_checkpoint`` (6: change
    approach), so the alert escalates rather than duplicates. Clients whose intake is above the
    clinical cut-off stay LOW: little change is expected of them (domain.md §4/§5).

    Change is measured from the baseline, so the checkpoints count sessions from it: with the
    episode's first outcome score as intake (``context.intake_outcome`` is ``None``) that score
    is session 1 of the count, wherever it fell (a late baseline at session 5 puts the discuss
    checkpoint at session 7), and the baseline alone, compared with nothing, is no finding. An
    explicit intake (taken before the episode's sessions) counts from session 1 as before.
    """
    scored = _with_outcome(obs)
    intake = _intake(obs, context)
    if not scored or intake is None:
        return []
    latest = scored[-1]
    baseline_session = 1
    if context.intake_outcome is None:
        if len(scored) < 2:  # the latest score is the baseline itself
            return []
        baseline_session = scored[0].session_number or 1
    session = (latest.session_number or 0) - baseline_session + 1
    if session < settings.discuss_checkpoint:
        return []
    change = latest.outcome_total - intake  # type: ignore[operator]
    if _reaches(change, settings.reliable_change):
        return []
    checkpoint = (
        settings.change_checkpoint
        if session >= settings.change_checkpoint
        else settings.discuss_checkpoint
    )
    due_at = checkpoint + baseline_session - 1  # the session number the checkpoint fell on
    label = (
        str(checkpoint)
        if baseline_session == 1
        else f"{due_at} (session {checkpoint} counted from the baseline at session "
        f"{baseline_session})"
    )
    # the clinic's cut-off rule (domain.md §3: some sites count the cut-off itself as clinical)
    functional = _intake_is_clinical(obs, context, intake) is False
    severity = (
        Severity.MEDIUM
        if checkpoint == settings.change_checkpoint and not functional
        else Severity.LOW
    )
    advice = checkpoint_advice(checkpoint, settings.change_checkpoint, functional)
    return [
        _finding(
            "no_reliable_improvement",
            Concern.OUTCOME,
            severity,
            latest,
            context,
            {
                "outcome_total": latest.outcome_total,
                "intake": intake,
                "change": round(change, 1),
                "reliable_change": settings.reliable_change,
                "checkpoint": checkpoint,
                "baseline_session": baseline_session,
                "guidance_label": advice,
                "intake_above_cutoff": functional,
                "source": SOURCE_NO_CHANGE,
            },
            {"checkpoint": label, "checkpoint_advice": advice},
        )
    ]


def agreement_without_engagement(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """Ceiling SRS at every rated session while the outcome stays flat (domain.md §1).

    HEURISTIC (no published cut-off): at least ``withdrawal_min_sessions`` rated sessions and as
    many outcome scores (the intake is one of them: counted once), every SRS total >=
    ``withdrawal_srs_ceiling``, and the outcome range (intake included) narrower than the
    reliable change. MEDIUM for alerting, but level-neutral (see module docstring).
    """
    rated = _rated(obs)
    if len(rated) < settings.withdrawal_min_sessions:
        return []
    if any(o.srs_total < settings.withdrawal_srs_ceiling for o in rated):  # type: ignore[operator]
        return []
    scored = _with_outcome(obs)
    if len(scored) < settings.withdrawal_min_sessions:
        return []
    outcomes = [o.outcome_total for o in scored]
    intake = _intake(obs, context)
    if intake is not None:  # a range bound only: with no explicit intake it is scored[0] anyway
        outcomes.append(intake)
    spread = max(outcomes) - min(outcomes)  # type: ignore[type-var,operator]
    if _reaches(spread, settings.reliable_change):
        return []
    return [
        _finding(
            "agreement_without_engagement",
            Concern.GLOBAL_ALLIANCE,
            Severity.MEDIUM,
            rated[-1],
            context,
            {
                "srs_totals": [o.srs_total for o in rated],
                "srs_ceiling": settings.withdrawal_srs_ceiling,
                "outcome_range": round(spread, 1),
                "reliable_change": settings.reliable_change,
                "sessions": len(rated),
                "outcome_scores": len(scored),
                "min_sessions": settings.withdrawal_min_sessions,
                "source": SOURCE_WITHDRAWAL,
            },
        )
    ]


def missed_session(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """The latest appointment was missed and not yet followed by an attended one (domain.md §6);
    misses dated on the day of the last attended session do not count (the client came).

    Cancellation LOW, no-show MEDIUM; HIGH when two or more appointments in a row were missed,
    or the last attended session showed an alliance concern (SRS total < 36 or an item < 9).
    The guidance says which: a miss right after a low rating (naming its weak leg when one
    stands out, ``last_srs_weak_leg``) suggests reaching out about that session; a second miss
    in a row says so.

    Before the first attended session (therapy has not started) it is at most MEDIUM, with
    guidance about starting rather than about the way of working: the HIGH grades read a miss
    as a break in an established pattern or a reaction to a weak alliance, and there is neither
    yet. Misses before a first session are still a dropout signal (domain.md §6: no-shows and
    cancellations), so two in a row, or a no-show, stay MEDIUM: listed, the level elevated, an
    alert where the clinic alerts at medium; a single cancellation is LOW, as it is later.
    """
    if not obs or obs[-1].attended:
        return []
    last_attended = next((o for o in reversed(obs) if o.attended), None)
    missed: list[SessionObservation] = []
    for o in reversed(obs):
        if o.attended:
            break
        # A miss on the day of an attended session (same date, recorded after it) is followed
        # by that session: the client came that day.
        if last_attended is None or o.date > last_attended.date:
            missed.append(o)
    if not missed:
        return []
    after_low = last_attended is not None and _alliance_concern(last_attended, settings)
    latest = obs[-1]
    started = last_attended is not None
    if (len(missed) >= 2 or after_low) and started:
        severity = Severity.HIGH
    elif latest.attendance is Attendance.NO_SHOW or len(missed) >= 2:
        severity = Severity.MEDIUM
    else:
        severity = Severity.LOW
    attendance = latest.attendance.value.replace("_", "-")
    # The leg to name when the miss follows a low rating: the one weak Bordin leg, as the
    # alliance rules name it (None when the concern is global, or the items are unknown).
    weak = _weakest_concern(last_attended, settings) if last_attended and after_low else None
    weak_leg = weak.value if weak is not None and weak is not Concern.GLOBAL_ALLIANCE else None
    finding = _finding(
        "missed_session",
        Concern.ATTENDANCE,
        severity,
        latest,
        context,
        {
            "attendance": latest.attendance.value,
            "consecutive_missed": len(missed),
            "after_low_alliance": after_low,
            "therapy_started": started,
            "last_attended_session": last_attended.session_number if last_attended else None,
            "last_srs_total": last_attended.srs_total if last_attended else None,
            "last_srs_weak_leg": weak_leg,
            "source": SOURCE_ATTENDANCE,
        },
        {
            "attendance": attendance,
            "consecutive_missed": len(missed),
            "after_low_alliance": after_low,
            "weak_leg": weak_leg,
        },
    )
    if not started:
        finding = replace(finding, guidance=guidance_before_first_session(attendance, len(missed)))
    return [finding]


def long_gap(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """More than ``max_gap_days`` since the last attended session, as of ``context.today``.

    MEDIUM. Anchored on the last attended session, so it stays one alert however long the gap;
    its day count is counted to ``context.today``, and a live alert's is kept current
    (:class:`fit_service.domain.alerts.Refresh`).
    """
    attended = _attended(obs)
    if not attended:
        return []
    last = attended[-1]
    days = (context.today - last.date).days
    if days <= settings.max_gap_days:
        return []
    return [
        _finding(
            "long_gap",
            Concern.ATTENDANCE,
            Severity.MEDIUM,
            last,
            context,
            {
                "days_since_last_session": days,
                "last_session_date": last.date.isoformat(),
                "threshold_days": settings.max_gap_days,
                "today": context.today.isoformat(),
                "source": SOURCE_ATTENDANCE + "; the day count is a heuristic setting",
            },
            {"days": days},
        )
    ]


def srs_not_completed(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """The SRS was marked not completed at the latest attended session (domain.md §6).

    LOW once; MEDIUM when it was also skipped at the attended session before. One level higher
    (MEDIUM once, HIGH twice) when the skipping began straight after a low rating: the attended
    session just before the run of skipped ones has an SRS total below the concern line or an
    item below the item line (``srs_concern_total``, ``srs_item_concern``, domain.md §3; the
    missed-session rule's "low", :func:`_alliance_concern`) - a rating withheld after a low one
    is a withdrawal signal (domain.md §1, §6: missing ratings). The evidence gives that
    session's total (``previous_srs_total``, ``previous_srs_session``; ``None`` when the session
    before the skips had no SRS total, or there was none) and ``after_low_alliance``.
    """
    attended = _attended(obs)
    if not attended or not attended[-1].alliance_not_completed:
        return []
    twice = len(attended) >= 2 and attended[-2].alliance_not_completed
    skipped = 0
    for o in reversed(attended):
        if not o.alliance_not_completed:
            break
        skipped += 1
    before = attended[-skipped - 1] if skipped < len(attended) else None
    previous_total = before.srs_total if before is not None else None
    after_low = before is not None and _alliance_concern(before, settings)
    severity = Severity.MEDIUM if twice else Severity.LOW
    if after_low:
        severity = Severity(severity + 1)
    return [
        _finding(
            "srs_not_completed",
            Concern.ATTENDANCE,
            severity,
            attended[-1],
            context,
            {
                "consecutive_skipped": 2 if twice else 1,
                "after_low_alliance": after_low,
                "previous_srs_total": previous_total,
                "previous_srs_session": before.session_number if before is not None else None,
                "concern_line": settings.srs_concern_total,
                "source": SOURCE_SKIPPED,
            },
            {
                "after_low_alliance": after_low,
                "previous_srs_total": previous_total,
                "concern_line": settings.srs_concern_total,
            },
        )
    ]


def dropout_risk(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """The clinic's dropout model puts this episode at or above its alert line (HIGH).

    Only when the clinic has a fitted model (``context.dropout_model``). The finding names what
    drives the estimate: the weakest SRS leg when the alliance does, else attendance or outcome.
    """
    model = context.dropout_model
    if model is None or not obs:
        return []
    # Judged after every appointment: a no-show raises the estimate at once. A miss after a
    # session with an alliance concern is judged at the line (outreach now); a miss after one
    # without needs the stricter missed-appointment line (``dropout_missed_odds_factor``;
    # fit_service/domain/dropout_model.py says why). Like an alliance alert, it holds until the
    # estimate has been below the line at ``alliance_clear_sessions`` appointments in a row (one
    # better session is not a repair); held over, or between the two lines at a miss, it keeps
    # a live alert open but opens none. On the daily re-check (``context.recheck``) it opens
    # nothing: the estimate was judged when the appointment was recorded, and a refit moving
    # the line is not news about the client.
    held = 0
    estimate = None
    for back, candidate in enumerate(model.recent_estimates(obs, settings.alliance_clear_sessions)):
        if candidate is not None and candidate.flagged:
            estimate, held = candidate, back
            break
    if estimate is None:
        return []
    opens = not held and estimate.opens and not context.recheck
    obs = obs[: len(obs) - held]
    concern = estimate.main_concern
    if concern is Concern.GLOBAL_ALLIANCE:
        rated = _rated(obs)
        if rated:
            concern = _weakest_concern(rated[-1], settings)
    evidence = model.evidence(estimate)
    signals = [s["label"] for s in evidence["signals"][:3]] or ["how early in therapy it is"]
    finding = _finding(
        "dropout_risk",
        concern,
        Severity.HIGH,
        obs[-1],
        context,
        evidence,
        {
            "percent": f"{estimate.probability:.0%}",
            "line": f"{model.line:.0%}",
            "signals": "; ".join(signals),
        },
    )
    return [finding if opens else replace(finding, alerts=False)]


#: kinds whose signal the clinic's dropout model combines: with a model they no longer open
#: alerts one by one (one dropout-risk alert names them instead). Reliable deterioration is not
#: among them: it is harm, which the clinician hears of (once confirmed, see
#: :func:`ors_deterioration`) whatever the dropout risk. Nor are the signals the model does not
#: encode (SRS decline, WAI-SR, long gaps): they keep their own findings and severities.
DROPOUT_MODEL_KINDS = frozenset(
    {
        "early_low_alliance",
        "low_alliance",
        "low_srs_bond",
        "low_srs_goal",
        "low_srs_task",
        "low_srs_global",
        "not_on_track",
        "missed_session",
        "srs_not_completed",
    }
)

#: One finding, one alert: ``kind -> carriers`` (in order of preference) for findings that say
#: again, on the same outcome score, what a stronger rule's finding already says. Such a finding
#: is folded into the carrier's (:func:`fold_restatements`): the clinician gets one alert, which
#: names the stronger finding and carries the other's facts.
#:
#: * ``no_reliable_improvement`` under ``ors_reliable_deterioration``: a score reliably *worse*
#:   than intake (domain.md §4) has no reliable improvement a fortiori, and the fall - beyond
#:   measurement error, in the harmful direction - is the stronger evidence.
#: * ``not_on_track`` *from the rational model* under either: the rational method has no
#:   expected path of its own (domain.md §5: cut-off and reliable change only); it calls a score
#:   off track exactly when it is reliably worse than intake, or when there is no reliable
#:   improvement from a clinical intake by the change checkpoint
#:   (:class:`fit_service.domain.trajectory.RationalTrajectory`) - the findings of those two
#:   rules on the same score, with the checkpoint, the change and the advice they name. From the
#:   clinic's own ETR, "below where this clinic's similar clients are by now" is evidence of its
#:   own, and it keeps its own alert.
#: * ``low_srs_*`` (one SRS item below the item line) under ``early_low_alliance`` or
#:   ``low_alliance`` on the same rating: the alliance alert already names the weakest leg and
#:   lists every weak leg with the item scores; a clinic alerting at MEDIUM got up to five
#:   alerts, with near-identical advice, for one low rating. An item low while the total is
#:   not (no alliance finding to carry it) keeps its own alert.
_LOW_ALLIANCE = ("early_low_alliance", "low_alliance")
RESTATED_BY: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "no_reliable_improvement": ("ors_reliable_deterioration",),
        "not_on_track": ("ors_reliable_deterioration", "no_reliable_improvement"),
        "low_srs_bond": _LOW_ALLIANCE,
        "low_srs_goal": _LOW_ALLIANCE,
        "low_srs_task": _LOW_ALLIANCE,
        "low_srs_global": _LOW_ALLIANCE,
    }
)

#: every rule, in the order findings are listed
RULES: tuple[Rule, ...] = (
    low_alliance,
    low_srs_items,
    srs_decline,
    weak_wai_subscales,
    ors_deterioration,
    not_on_track,
    no_reliable_improvement,
    agreement_without_engagement,
    missed_session,
    long_gap,
    srs_not_completed,
    dropout_risk,
)

#: every kind a rule can emit (stable ids: stored on alerts, used in settings and reports)
FINDING_KINDS: tuple[str, ...] = (
    "early_low_alliance",
    "low_alliance",
    "low_srs_bond",
    "low_srs_goal",
    "low_srs_task",
    "low_srs_global",
    "srs_decline",
    "weak_wai_goal",
    "weak_wai_task",
    "weak_wai_bond",
    "ors_reliable_deterioration",
    "not_on_track",
    "no_reliable_improvement",
    "agreement_without_engagement",
    "missed_session",
    "long_gap",
    "srs_not_completed",
    "dropout_risk",
)


def check_order(obs: Sequence[SessionObservation]) -> None:
    """Raise :class:`InvalidSession` unless dates and session numbers only move forward."""
    last_date: dt.date | None = None
    last_number = 0
    for index, o in enumerate(obs):
        if last_date is not None and o.date < last_date:
            raise InvalidSession("observations must be in date order", field=f"[{index}].date")
        if o.session_number is not None:
            if o.session_number <= last_number:
                raise InvalidSession(
                    "session numbers must increase", field=f"[{index}].session_number"
                )
            last_number = o.session_number
        last_date = o.date


def _restates(finding: Finding, carrier: Finding) -> bool:
    """Whether ``finding`` says again what ``carrier`` says (:data:`RESTATED_BY`): on the same
    score, no more severely, and the carrier able to open its alert - so folding never costs
    the clinician an alert, or a severity, that the two apart would have given."""
    if finding.kind == "not_on_track" and finding.evidence.get("model") != RATIONAL_LABEL:
        return False
    return (
        carrier.kind in RESTATED_BY.get(finding.kind, ())
        and carrier.alerts
        and carrier.covered_by is None
        and (carrier.session_number, carrier.observed_on)
        == (finding.session_number, finding.observed_on)
        and carrier.severity >= finding.severity
    )


def fold_restatements(findings: Sequence[Finding], context: EpisodeContext) -> list[Finding]:
    """One finding, one alert (:data:`RESTATED_BY`): a finding that restates a stronger one on
    the same score opens no alert of its own (``covered_by`` names the carrier); the carrier's
    evidence lists it under ``also_holds`` (kind, severity and its evidence) and its guidance
    says what it adds (the checkpoint and its advice, the trajectory model), so no fact is lost.
    Both stay listed: the level and the episode's reasons describe every rule that holds."""
    by_kind = {f.kind: f for f in findings}
    carried: dict[str, list[Finding]] = {}
    covered: dict[str, str] = {}
    for kind, carriers in RESTATED_BY.items():  # no_reliable_improvement first: it may carry
        finding = by_kind.get(kind)
        if finding is None:
            continue
        for carrier_kind in carriers:
            carrier = by_kind.get(carrier_kind)
            if carrier is None or carrier_kind in covered or not _restates(finding, carrier):
                continue
            covered[kind] = carrier_kind
            carried.setdefault(carrier_kind, []).append(finding)
            break
    if not covered:
        return list(findings)
    out: list[Finding] = []
    for f in findings:
        if f.kind in covered:
            f = replace(f, alerts=False, covered_by=covered[f.kind], alerts_alone=f.alerts)
        elif f.kind in carried:
            others = carried[f.kind]
            also_holds = [
                {"kind": o.kind, "severity": o.severity.label, **o.evidence} for o in others
            ]
            f = replace(
                f,
                evidence=_frozen_map({**f.evidence, "also_holds": also_holds}),
                guidance=guidance_for(
                    f.kind,
                    f.concern.value,
                    context.goal_sheet,
                    f.guidance_facts,
                    also=[(o.kind, o.guidance_facts) for o in others],
                ),
            )
        out.append(f)
    return out


def evaluate_rules(
    obs: Sequence[SessionObservation],
    context: EpisodeContext,
    settings: RiskSettings | None = None,
    rules: Sequence[Rule] = RULES,
) -> list[Finding]:
    """All findings that hold now, in rule order."""
    settings = settings or RiskSettings()
    check_order(obs)
    findings = [f for rule in rules for f in rule(obs, context, settings)]
    # One finding, one alert: a rule restating a stronger one on the same score rides in its
    # alert (RESTATED_BY). Before the stale marking below, which then applies to both alike
    # (they rest on the same score).
    findings = fold_restatements(findings, context)
    # Old or backfilled evidence opens no alert (module docstring, "Stale evidence"): it is
    # still listed, so the level and reasons describe the episode's record, and a live alert it
    # covers stays open rather than auto-resolving on a finding that still holds.
    horizon = settings.stale_after_days
    findings = [
        replace(f, alerts=False, alerts_alone=False, stale=True)
        if (context.today - f.observed_on).days > horizon
        else f
        for f in findings
    ]
    if context.dropout_model is None:
        return findings
    return [
        replace(f, alerts=False, alerts_alone=False) if f.kind in DROPOUT_MODEL_KINDS else f
        for f in findings
    ]


def risk_level(findings: Sequence[Finding]) -> RiskLevel:
    """The level from findings, as described in the module docstring."""
    counted = [f for f in findings if f.kind not in LEVEL_NEUTRAL_KINDS]
    if any(f.severity >= Severity.HIGH for f in counted):
        return RiskLevel.HIGH
    sources = {f.concern.source for f in counted if f.severity >= Severity.MEDIUM}
    if len(sources) >= 2:
        return RiskLevel.HIGH
    return RiskLevel.ELEVATED if sources else RiskLevel.LOW


def _reason(f: Finding) -> str:
    where = f"session {f.session_number}" if f.session_number else f.observed_on.isoformat()
    neutral = " (does not change the level)" if f.kind in LEVEL_NEUTRAL_KINDS else ""
    stale = " (stale evidence: opens no alert)" if f.stale else ""
    carried = f" (the same finding as {f.covered_by}: in its alert)" if f.covered_by else ""
    return (
        f"{f.kind}: {f.concern.value}, severity {f.severity.label}, {where}"
        f"{neutral}{stale}{carried}"
    )


def assess_episode(
    obs: Sequence[SessionObservation],
    context: EpisodeContext,
    settings: RiskSettings | None = None,
) -> RiskAssessment:
    """Run every rule over one episode and derive its level (see module docstring)."""
    findings = evaluate_rules(obs, context, settings)
    return RiskAssessment(
        level=risk_level(findings),
        findings=tuple(findings),
        reasons=tuple(_reason(f) for f in findings),
    )


def alliance_clear_streak(
    obs: Sequence[SessionObservation], settings: RiskSettings, after_session: int | None = None
) -> int:
    """Consecutive latest attended sessions (after ``after_session``) with SRS >= concern line.

    An attended session without an SRS total breaks the streak: a skipped rating is not evidence
    that the alliance recovered (domain.md §2: "not completed" is not a score).
    """
    streak = 0
    for o in reversed(_attended(obs)):
        if after_session is not None and (o.session_number or 0) <= after_session:
            break
        total = o.srs_total
        if total is None or total < settings.srs_concern_total:
            break
        streak += 1
    return streak
