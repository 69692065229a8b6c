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

The modules: ``values`` (Count, Share, Estimate), ``estimates``, ``periods``, ``summaries``,
``figures`` (GroupFigures, GroupReport), ``settings`` (ReportSettings), ``references``
(benchmarks, method notes), ``report`` (MonthlyReport) and ``builder`` (FiguresBuilder);
this package re-exports their public names.

Pure: standard library only (the import-linter contract in ``pyproject.toml`` holds this).
"""

from __future__ import annotations

from fit_service.domain.monthly_report.builder import (
    NO_DAY,
    AlertFacts,
    AlertTable,
    ClassifiedOutcomes,
    EpisodeEnding,
    EpisodeFacts,
    EpisodeTable,
    FiguresBuilder,
    FlaggedEpisode,
    FlaggedTable,
    Window,
    fit_reference,
)
from fit_service.domain.monthly_report.estimates import (
    SESSION_BINS,
    mean_estimate,
    mean_estimate_of_array,
    median_estimate,
    session_histogram,
)
from fit_service.domain.monthly_report.figures import (
    HEADLINE_KEYS,
    GroupFigures,
    GroupReport,
    Metric,
    MetricGroup,
    TrendPoint,
)
from fit_service.domain.monthly_report.periods import (
    month_label,
    trailing_months,
)
from fit_service.domain.monthly_report.references import (
    LITERATURE_BENCHMARKS,
    Benchmark,
    MethodNote,
    method_notes,
)
from fit_service.domain.monthly_report.report import (
    MonthlyReport,
    Scope,
)
from fit_service.domain.monthly_report.settings import (
    DEFAULT_DROPOUT_DEFINITION,
    PLANNED_ENDINGS,
    UNILATERAL_ENDINGS,
    DropoutRule,
    ReportSettings,
    is_dropout,
)
from fit_service.domain.monthly_report.summaries import (
    SESSION_COLUMNS,
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
from fit_service.domain.monthly_report.values import (
    DASH,
    DEFAULT_MIN_N,
    Count,
    Estimate,
    Share,
    Value,
)

__all__ = [
    "DASH",
    "DEFAULT_DROPOUT_DEFINITION",
    "DEFAULT_MIN_N",
    "HEADLINE_KEYS",
    "LITERATURE_BENCHMARKS",
    "NO_DAY",
    "PLANNED_ENDINGS",
    "SESSION_BINS",
    "SESSION_COLUMNS",
    "UNILATERAL_ENDINGS",
    "Activity",
    "AlertFacts",
    "AlertTable",
    "AllianceSummary",
    "Benchmark",
    "ClassifiedOutcomes",
    "CompletenessSummary",
    "Count",
    "DropoutRule",
    "DropoutSummary",
    "EpisodeEnding",
    "EpisodeFacts",
    "EpisodeTable",
    "Estimate",
    "FiguresBuilder",
    "FlaggedEpisode",
    "FlaggedTable",
    "GroupFigures",
    "GroupReport",
    "MethodNote",
    "Metric",
    "MetricGroup",
    "MonthlyReport",
    "OutcomeCounts",
    "ReportSettings",
    "Scope",
    "SessionCounts",
    "SessionMoments",
    "SessionSpread",
    "SessionStats",
    "Share",
    "TrendPoint",
    "Value",
    "Window",
    "fit_reference",
    "is_dropout",
    "mean_estimate",
    "mean_estimate_of_array",
    "median_estimate",
    "method_notes",
    "month_label",
    "session_histogram",
    "trailing_months",
]
