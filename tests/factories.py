"""Shared test data builders (style.md: "factories for test data")."""

from __future__ import annotations

from fit_service.domain.monthly_report import (
    Activity,
    AllianceSummary,
    CompletenessSummary,
    DropoutSummary,
    Estimate,
    GroupFigures,
    OutcomeCounts,
    SessionStats,
    mean_estimate,
)


def report_figures(scale: int = 1) -> GroupFigures:
    """Hand-built, internally consistent report figures whose every n grows with ``scale``
    (1 is small, 10 is plenty)."""
    closed = 4 * scale
    attended = 20 * scale
    return GroupFigures(
        activity=Activity(
            episodes_active=10 * scale,
            episodes_opened=3 * scale,
            episodes_closed=closed,
            sessions_attended=attended,
            no_shows=2 * scale,
            cancellations=scale,
        ),
        sessions=SessionStats.from_episodes([2, 5, 7, 12] * scale, [20, 45, 60, 120] * scale),
        intake_ors=mean_estimate([18.0, 21.5, 15.0, 27.0] * scale),
        intake_srs=mean_estimate([34.0, 36.5, 38.0, 33.0] * scale),
        outcomes=OutcomeCounts(
            recovered=scale,
            improved=scale,
            unchanged=scale,
            deteriorated=0,
            harmed=0,
            functional_at_intake=scale,
            functional_at_intake_reliably_worse=0,
            last_above_cutoff=2 * scale,
        ),
        pre_post_d=Estimate(0.62, 3 * scale, 0.41, 0.83),
        severity_adjusted_es=Estimate(0.7, 3 * scale, 0.45, 0.95),
        dropout=DropoutSummary(
            closed_episodes=closed,
            dropouts=scale,
            planned_endings=3 * scale,
            unilateral_endings=scale,
            unilateral_last_ors_above_cutoff=0,
            unilateral_last_ors_below_cutoff=scale,
        ),
        alliance=AllianceSummary(
            sessions_with_srs=18 * scale,
            srs_below_concern=3 * scale,
            alerts_raised=2 * scale,
            alerts_acknowledged=2 * scale,
            alerts_resolved=scale,
            hours_to_acknowledge=Estimate(12.5, 2 * scale),
            flagged_episodes_followed_up=2 * scale,
            flagged_episodes_in_care_after_follow_up=scale,
        ),
        completeness=CompletenessSummary(attended, 19 * scale, 18 * scale),
    )
