"""Render a sample monthly report (PDF, plus JSON and CSV beside it) for eyeballing.

    python scripts/render_sample_report.py reports/sample.pdf
    python scripts/render_sample_report.py reports/empty.pdf --empty
    python scripts/render_sample_report.py reports/t07.pdf --clinician T-07

The figures come from a small seeded simulation of closed episodes, aggregated here in a
deliberately simple way: it is sample data for looking at the layout, not the service's
aggregation (that lives in the service layer and reads the database).
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fit_service.adapters.report_pdf import MonthlyReportPdf
from fit_service.adapters.report_tabular import to_csv, to_json_dict
from fit_service.domain.change import ChangeCategory
from fit_service.domain.effect_sizes import (
    SeverityReference,
    pre_post_d,
    severity_adjusted_es,
)
from fit_service.domain.instruments import AgeBand, Direction
from fit_service.domain.monthly_report import (
    Activity,
    AllianceSummary,
    ClassifiedOutcomes,
    CompletenessSummary,
    DropoutSummary,
    Estimate,
    GroupFigures,
    GroupReport,
    MonthlyReport,
    ReportSettings,
    SessionStats,
    TrendPoint,
    mean_estimate,
    trailing_months,
)

PERIOD = "2024-05"
CLINICIANS = ("T-03", "T-07", "T-11", "T-12", "T-19", "T-24")
AGE_LABELS = {
    AgeBand.CHILD: "Children (6 to 12)",
    AgeBand.ADOLESCENT: "Adolescents (13 to 17)",
    AgeBand.ADULT: "Adults (18+)",
}
SETTINGS = ReportSettings()


@dataclass(frozen=True)
class Episode:
    """One simulated closed episode (no identifiers: nothing here could name a client)."""

    clinician: str
    age_band: AgeBand
    closed: str
    sessions: int
    days: int
    intake_ors: float
    last_ors: float
    intake_srs: float
    ending: str  # planned | unilateral | other


def _cutoff(band: AgeBand) -> float:
    return {
        AgeBand.CHILD: SETTINGS.cors_cutoff,
        AgeBand.ADOLESCENT: SETTINGS.ors_cutoff_adolescent,
        AgeBand.ADULT: SETTINGS.ors_cutoff_adult,
    }[band]


def simulate(seed: int = 2024) -> list[Episode]:
    rng = random.Random(seed)
    episodes = []
    for month in trailing_months(PERIOD):
        for _ in range(rng.randint(18, 30)):
            band = rng.choices(list(AGE_LABELS), weights=(15, 20, 65))[0]
            sessions = max(1, min(34, int(rng.expovariate(1 / 6.5)) + 1))
            intake = round(min(40.0, max(2.0, rng.gauss(19.5, 7.0))), 1)
            gain = rng.gauss(1.0 + 0.55 * min(sessions, 12), 6.0)
            last = round(min(40.0, max(0.0, intake + gain)), 1)
            ending = rng.choices(("planned", "unilateral", "other"), weights=(64, 28, 8))[0]
            episodes.append(
                Episode(
                    clinician=rng.choice(CLINICIANS),
                    age_band=band,
                    closed=month,
                    sessions=sessions,
                    days=sessions * rng.randint(6, 13),
                    intake_ors=intake,
                    last_ors=last,
                    intake_srs=round(min(40.0, rng.gauss(35.5, 3.5)), 1),
                    ending=ending,
                )
            )
    return episodes


def _all_clinical():  # type: ignore[no-untyped-def]
    """Criteria for pairs already restricted to clinical-range intakes (as the domain does)."""
    from fit_service.domain.monthly_report.builder import _preselected_criteria  # noqa: PLC0415

    return _preselected_criteria(SETTINGS)


def _reference(reference_pairs: list[tuple[float, float]]) -> SeverityReference | None:
    """The reference pairs are clinical-range intakes already (each against its band)."""
    return SeverityReference.fit(
        [a for a, _ in reference_pairs],
        [b for _, b in reference_pairs],
        _all_clinical(),
        source=SETTINGS.severity_reference,
    )


def aggregate(episodes: list[Episode], reference_pairs: list[tuple[float, float]]) -> GroupFigures:
    """Figures for a set of episodes (all closed within the window, for simplicity)."""
    if not episodes:
        return GroupFigures.empty()
    rng = random.Random(len(episodes) * 7919 + sum(e.sessions for e in episodes))
    closed = len(episodes)
    attended = sum(e.sessions for e in episodes)
    pairs = [(e.age_band, e.intake_ors, e.last_ors) for e in episodes if e.sessions >= 2]
    outcomes = ClassifiedOutcomes.of(pairs, SETTINGS)
    reference = _reference(reference_pairs)
    sa_es = None
    if reference is not None:
        sa_es = severity_adjusted_es(
            outcomes.clinical_first,
            outcomes.clinical_last,
            _all_clinical(),
            reference=reference,
        )
    unilateral = [e for e in episodes if e.ending == "unilateral"]
    with_ors = round(attended * rng.uniform(0.86, 0.97))
    with_srs = round(attended * rng.uniform(0.78, 0.93))
    alerts = round(with_srs * rng.uniform(0.05, 0.09))
    acknowledged = round(alerts * rng.uniform(0.75, 0.95))
    followed = round(alerts * 0.8)
    return GroupFigures(
        activity=Activity(
            episodes_active=closed * 3 + rng.randint(0, 5),
            episodes_opened=closed + rng.randint(-3, 3) if closed > 3 else closed,
            episodes_closed=closed,
            sessions_attended=attended,
            no_shows=round(attended * rng.uniform(0.05, 0.11)),
            cancellations=round(attended * rng.uniform(0.06, 0.12)),
        ),
        sessions=SessionStats.from_episodes(
            [e.sessions for e in episodes], [e.days for e in episodes]
        ),
        intake_ors=mean_estimate([e.intake_ors for e in episodes]),
        intake_srs=mean_estimate([e.intake_srs for e in episodes]),
        outcomes=outcomes.counts(),
        pre_post_d=Estimate.of_effect_size(
            pre_post_d(outcomes.first, outcomes.last, Direction.HIGHER_IS_BETTER), len(pairs)
        ),
        severity_adjusted_es=Estimate.of_effect_size(sa_es, int(outcomes.clinical_first.size)),
        dropout=DropoutSummary(
            closed_episodes=closed,
            dropouts=len(unilateral),
            planned_endings=sum(e.ending == "planned" for e in episodes),
            unilateral_endings=len(unilateral),
            unilateral_last_ors_above_cutoff=sum(
                e.last_ors >= _cutoff(e.age_band) for e in unilateral if e.sessions > 1
            ),
            unilateral_last_ors_below_cutoff=sum(
                e.last_ors < _cutoff(e.age_band) for e in unilateral if e.sessions > 1
            ),
        ),
        alliance=AllianceSummary(
            sessions_with_srs=with_srs,
            srs_below_concern=round(with_srs * rng.uniform(0.08, 0.16)),
            alerts_raised=alerts,
            alerts_acknowledged=acknowledged,
            alerts_resolved=round(acknowledged * 0.8),
            hours_to_acknowledge=Estimate(round(rng.uniform(6, 40), 1), acknowledged),
            flagged_episodes_followed_up=followed,
            flagged_episodes_in_care_after_follow_up=round(followed * rng.uniform(0.6, 0.85)),
        ),
        completeness=CompletenessSummary(attended, with_ors, with_srs),
    )


def group_report(
    key: str, label: str, episodes: list[Episode], reference: list[tuple[float, float]]
) -> GroupReport:
    month_eps = [e for e in episodes if e.closed == PERIOD]
    trend = []
    for month in trailing_months(PERIOD):
        figures = aggregate([e for e in episodes if e.closed == month], reference)
        trend.append(
            TrendPoint(
                month=month,
                recovery=figures.outcomes.share(ChangeCategory.RECOVERED),
                mean_sessions=figures.sessions.per_episode_mean,
            )
        )
    return GroupReport(
        key=key,
        label=label,
        month=aggregate(month_eps, reference),
        trailing_12=aggregate(episodes, reference),
        trend=tuple(trend),
    )


def build_sample_report(*, empty: bool = False) -> MonthlyReport:
    """A seeded, plausible clinic report (or an empty month with a 12-month history)."""
    episodes = simulate()
    if empty:
        episodes = [e for e in episodes if e.closed != PERIOD]
    reference = [
        (e.intake_ors, e.last_ors)
        for e in episodes
        if e.sessions > 1 and e.intake_ors < _cutoff(e.age_band)
    ]
    return MonthlyReport(
        clinic_name="Riverside Counselling & Family Centre",
        period=PERIOD,
        generated_at=datetime(2024, 6, 3, 7, 30, tzinfo=UTC),
        overall=group_report("clinic", "Whole clinic", episodes, reference),
        clinicians=tuple(
            group_report(c, c, [e for e in episodes if e.clinician == c], reference)
            for c in CLINICIANS
        ),
        age_bands=tuple(
            group_report(b.value, label, [e for e in episodes if e.age_band is b], reference)
            for b, label in AGE_LABELS.items()
        ),
        settings=SETTINGS,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="where to write the PDF")
    parser.add_argument("--empty", action="store_true", help="render a month with no data")
    parser.add_argument("--clinician", help="render one clinician's view (e.g. T-07)")
    args = parser.parse_args()
    report = build_sample_report(empty=args.empty)
    if args.clinician:
        report = report.for_clinician(args.clinician)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(MonthlyReportPdf().render(report))
    args.output.with_suffix(".json").write_text(
        json.dumps(to_json_dict(report), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    args.output.with_suffix(".csv").write_text(to_csv(report), encoding="utf-8")
    print(f"wrote {args.output} (+ .json, .csv)")


if __name__ == "__main__":
    main()
