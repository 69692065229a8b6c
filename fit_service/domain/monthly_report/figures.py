"""One group (clinic, clinician, age band) in one window: its figures as the metrics every
renderer prints, and its 12-month trend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from fit_service.domain.change import (
    ChangeCategory,
)
from fit_service.domain.monthly_report.estimates import SESSION_BINS
from fit_service.domain.monthly_report.periods import _parse_period
from fit_service.domain.monthly_report.summaries import (
    Activity,
    AllianceSummary,
    CompletenessSummary,
    DropoutSummary,
    OutcomeCounts,
    SessionStats,
)
from fit_service.domain.monthly_report.values import DASH, Count, Estimate, Share, Value


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
        walk, so a figure added to :data:`METRIC_SPECS` shows up in PDF, JSON and CSV at once."""
        return tuple([spec.metric_of(self) for spec in METRIC_SPECS])

    def metric(self, key: str) -> Metric:
        """The metric ``key`` alone (``KeyError`` for a key there is none of): a renderer that
        prints a few of a group's metrics need not build all of them."""
        return _SPECS_BY_KEY[key].metric_of(self)


def _bin_key(label: str) -> str:
    return label.replace(DASH, "_").replace("+", "_plus")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """What one metric is, the same in every group and window: its key, label, heading,
    decimals, and where its value is read from a :class:`GroupFigures`.

    The table of these (:data:`METRIC_SPECS`) is the one definition of the metrics.
    :meth:`GroupFigures.metrics` builds its :class:`Metric` list from it, and the JSON and CSV
    renderers read it directly: building ~47 Metric objects per group and window just to
    unpack them again was about 40% of the JSON export's time (measured on a 200-clinician
    report).
    """

    key: str
    #: ``{srs_concern:g}`` in it stands for the clinic's SRS concern line (see :meth:`label_for`)
    label: str
    group: MetricGroup
    value_of: Callable[[GroupFigures], Value]
    decimals: int = 1
    #: whether :attr:`label` needs :meth:`label_for`'s setting filled in (most labels don't)
    templated: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "templated", "{" in self.label)

    def label_for(self, figures: GroupFigures) -> str:
        """The printed label in ``figures``' report (the SRS concern line is a setting)."""
        if self.templated:
            return self.label.format(srs_concern=figures.alliance.srs_concern)
        return self.label

    def metric_of(self, figures: GroupFigures) -> Metric:
        """This metric of ``figures``."""
        return Metric(
            self.key, self.label_for(figures), self.group, self.value_of(figures), self.decimals
        )


def _bin_spec(index: int, label: str) -> MetricSpec:
    """The count of episodes in session bin ``index`` (:data:`SESSION_BINS`)."""
    return MetricSpec(
        f"sessions_bin_{_bin_key(label)}",
        f"Episodes with {label} session{'' if label == '1' else 's'}",
        MetricGroup.SESSIONS,
        lambda f: Count(f.sessions.histogram[index]),
    )


_G = MetricGroup
_CAT = ChangeCategory

#: Every metric, in print order (:meth:`GroupFigures.metrics`).
METRIC_SPECS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "episodes_active",
        "Episodes active",
        _G.ACTIVITY,
        lambda f: Count(f.activity.episodes_active),
    ),
    MetricSpec(
        "episodes_opened",
        "Episodes opened",
        _G.ACTIVITY,
        lambda f: Count(f.activity.episodes_opened),
    ),
    MetricSpec(
        "episodes_closed",
        "Episodes closed",
        _G.ACTIVITY,
        lambda f: Count(f.activity.episodes_closed),
    ),
    MetricSpec(
        "sessions_delivered",
        "Sessions delivered",
        _G.ACTIVITY,
        lambda f: Count(f.activity.sessions_attended),
    ),
    MetricSpec("no_show_rate", "No-show rate", _G.ACTIVITY, lambda f: f.activity.no_show_rate),
    MetricSpec(
        "cancellation_rate",
        "Cancellation rate",
        _G.ACTIVITY,
        lambda f: f.activity.cancellation_rate,
    ),
    MetricSpec(
        "sessions_per_episode_mean",
        "Sessions per closed episode (mean)",
        _G.SESSIONS,
        lambda f: f.sessions.per_episode_mean,
    ),
    MetricSpec(
        "sessions_per_episode_median",
        "Sessions per closed episode (median)",
        _G.SESSIONS,
        lambda f: f.sessions.per_episode_median,
    ),
    MetricSpec(
        "days_in_treatment_mean",
        "Days in treatment (mean)",
        _G.SESSIONS,
        lambda f: f.sessions.days_mean,
        0,
    ),
    MetricSpec(
        "days_in_treatment_median",
        "Days in treatment (median)",
        _G.SESSIONS,
        lambda f: f.sessions.days_median,
        0,
    ),
    *(_bin_spec(index, label) for index, (label, _low, _high) in enumerate(SESSION_BINS)),
    MetricSpec("intake_ors_mean", "Mean intake ORS/CORS", _G.INTAKE, lambda f: f.intake_ors),
    MetricSpec("intake_srs_mean", "Mean intake SRS/CSRS", _G.INTAKE, lambda f: f.intake_srs),
    MetricSpec(
        "reliable_improvement",
        "Reliably improved (recovered or improved)",
        _G.OUTCOMES,
        lambda f: f.outcomes.reliable_improvement,
    ),
    MetricSpec("recovered", "Recovered", _G.OUTCOMES, lambda f: f.outcomes.share(_CAT.RECOVERED)),
    MetricSpec(
        "improved",
        "Improved (not recovered)",
        _G.OUTCOMES,
        lambda f: f.outcomes.share(_CAT.IMPROVED),
    ),
    MetricSpec("unchanged", "Unchanged", _G.OUTCOMES, lambda f: f.outcomes.share(_CAT.UNCHANGED)),
    MetricSpec(
        "deteriorated",
        "Deteriorated",
        _G.OUTCOMES,
        lambda f: f.outcomes.share(_CAT.DETERIORATED),
    ),
    MetricSpec(
        "reliable_deterioration",
        "Reliably worse (all intakes)",
        _G.OUTCOMES,
        lambda f: f.outcomes.reliable_deterioration,
    ),
    MetricSpec(
        "functional_at_intake",
        "Started in the functional range (reported apart)",
        _G.OUTCOMES,
        lambda f: Count(f.outcomes.functional_at_intake),
    ),
    MetricSpec(
        "functional_at_intake_reliably_worse",
        "Functional at intake: reliably worse",
        _G.OUTCOMES,
        lambda f: Share(
            f.outcomes.functional_at_intake_reliably_worse, f.outcomes.functional_at_intake
        ),
    ),
    MetricSpec(
        "harmed",
        "Functional at intake: harmed",
        _G.OUTCOMES,
        lambda f: f.outcomes.share(_CAT.HARMED),
    ),
    MetricSpec(
        "last_ors_above_cutoff",
        "Last ORS above the cut-off (all intakes)",
        _G.OUTCOMES,
        lambda f: Share(f.outcomes.last_above_cutoff, f.outcomes.episodes),
    ),
    MetricSpec("pre_post_d", "Pre-post effect size (d)", _G.EFFECT, lambda f: f.pre_post_d, 2),
    MetricSpec(
        "severity_adjusted_es",
        "Severity-adjusted effect size",
        _G.EFFECT,
        lambda f: f.severity_adjusted_es,
        2,
    ),
    MetricSpec("dropout_rate", "Dropout (clinic definition)", _G.DROPOUT, lambda f: f.dropout.rate),
    MetricSpec(
        "planned_endings",
        "Planned or mutual endings",
        _G.DROPOUT,
        lambda f: Share(f.dropout.planned_endings, f.dropout.closed_episodes),
    ),
    MetricSpec(
        "unilateral_endings",
        "Unilateral endings",
        _G.DROPOUT,
        lambda f: Share(f.dropout.unilateral_endings, f.dropout.closed_episodes),
    ),
    MetricSpec(
        "other_endings",
        "Other endings (transferred, other)",
        _G.DROPOUT,
        lambda f: Share(f.dropout.other_endings, f.dropout.closed_episodes),
    ),
    MetricSpec(
        "unilateral_last_ors_above_cutoff",
        "Unilateral: last ORS above cut-off",
        _G.DROPOUT,
        lambda f: Share(f.dropout.unilateral_last_ors_above_cutoff, f.dropout.unilateral_endings),
    ),
    MetricSpec(
        "unilateral_last_ors_below_cutoff",
        "Unilateral: last ORS below cut-off",
        _G.DROPOUT,
        lambda f: Share(f.dropout.unilateral_last_ors_below_cutoff, f.dropout.unilateral_endings),
    ),
    MetricSpec(
        "unilateral_without_ors",
        "Unilateral: no ORS",
        _G.DROPOUT,
        lambda f: Count(f.dropout.unilateral_without_ors),
    ),
    MetricSpec(
        "srs_below_concern",
        "Sessions with SRS below {srs_concern:g}",
        _G.ALLIANCE,
        lambda f: f.alliance.srs_concern_rate,
    ),
    MetricSpec(
        "alerts_raised", "Alerts raised", _G.ALLIANCE, lambda f: Count(f.alliance.alerts_raised)
    ),
    MetricSpec(
        "alerts_acknowledged",
        "Alerts acknowledged",
        _G.ALLIANCE,
        lambda f: Count(f.alliance.alerts_acknowledged),
    ),
    MetricSpec(
        "alerts_resolved",
        "Alerts resolved",
        _G.ALLIANCE,
        lambda f: Count(f.alliance.alerts_resolved),
    ),
    MetricSpec(
        "hours_to_acknowledge_median",
        "Hours to acknowledge an alert (median)",
        _G.ALLIANCE,
        lambda f: f.alliance.hours_to_acknowledge,
    ),
    MetricSpec(
        "flagged_in_care_after_follow_up",
        "Flagged episodes attending a month after the first alert",
        _G.ALLIANCE,
        lambda f: f.alliance.in_care_after_follow_up,
    ),
    MetricSpec(
        "ors_completeness",
        "Attended sessions with ORS",
        _G.COMPLETENESS,
        lambda f: f.completeness.ors_rate,
    ),
    MetricSpec(
        "srs_completeness",
        "Attended sessions with SRS",
        _G.COMPLETENESS,
        lambda f: f.completeness.srs_rate,
    ),
)
#: The same, by key (:meth:`GroupFigures.metric`).
_SPECS_BY_KEY: dict[str, MetricSpec] = {spec.key: spec for spec in METRIC_SPECS}
if len(_SPECS_BY_KEY) != len(METRIC_SPECS):  # checked at import, not an assert (-O)
    raise RuntimeError("two metrics share a key")


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
