"""One group (clinic, clinician, age band) in one window: its figures as the metrics every
renderer prints, and its 12-month trend.
"""

from __future__ import annotations

from dataclasses import dataclass
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
