"""The monthly report object and its pure statistics (issue 5)."""

from __future__ import annotations

import dataclasses
import math
import statistics
import typing
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fit_service.domain.change import ChangeCategory, classify_many
from fit_service.domain.effect_sizes import proportion, t_quantile_975
from fit_service.domain.errors import FitError, NotFound
from fit_service.domain.instruments import AgeBand
from fit_service.domain.monthly_report import (
    DASH,
    HEADLINE_KEYS,
    Activity,
    AllianceSummary,
    ClassifiedOutcomes,
    CompletenessSummary,
    EpisodeEnding,
    EpisodeFacts,
    EpisodeTable,
    Estimate,
    FiguresBuilder,
    GroupFigures,
    GroupReport,
    MonthlyReport,
    ReportSettings,
    Scope,
    Share,
    TrendPoint,
    Window,
    fit_reference,
    mean_estimate,
    method_notes,
    month_label,
    session_histogram,
    trailing_months,
)
from tests.factories import report_figures

GENERATED = datetime(2024, 6, 3, 7, 30, tzinfo=UTC)


def figures(scale: int = 1) -> GroupFigures:
    return report_figures(scale)


def group(key: str, label: str, scale: int = 10) -> GroupReport:
    return GroupReport(key=key, label=label, month=figures(scale), trailing_12=figures(12 * scale))


def report(**changes: typing.Any) -> MonthlyReport:
    base = MonthlyReport(
        clinic_name="Test Clinic",
        period="2024-05",
        generated_at=GENERATED,
        overall=group("clinic", "Whole clinic", 30),
        clinicians=(group("c-2", "T-02"), group("c-1", "T-01")),
        age_bands=(group("adult", "Adults (18+)", 20),),
    )
    return dataclasses.replace(base, **changes)


# ---------------------------------------------------------------- statistics


def test_share_ci_is_the_wilson_interval_of_effect_sizes() -> None:
    """A printed share's CI is the Wilson interval (0/10 -> 0-27.8%, 26/40 -> 49.5-77.9%),
    taken from fit_service.domain.effect_sizes, and an empty share has none."""
    assert Share(0, 10).ci == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert Share(26, 40).ci == pytest.approx((0.4951, 0.7787), abs=1e-4)
    assert typing.cast(tuple[float, float], Share(10, 10).ci)[1] == pytest.approx(1.0)
    assert Share(0, 0).ci is None


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_share_interval_is_a_sub_interval_of_0_1_around_p(pair: tuple[int, int]) -> None:
    """For any count, a share's interval stays inside [0, 1] and contains the observed share."""
    numerator, denominator = pair
    low, high = typing.cast(tuple[float, float], Share(numerator, denominator).ci)
    assert 0.0 <= low <= numerator / denominator <= high <= 1.0


def test_t_quantiles_match_tables() -> None:
    """The t quantile is the tabled value up to df 30 and within 0.002 of tables beyond."""
    assert t_quantile_975(1) == pytest.approx(12.706)
    assert t_quantile_975(30) == pytest.approx(2.042)
    assert t_quantile_975(60) == pytest.approx(2.000, abs=0.002)
    assert t_quantile_975(120) == pytest.approx(1.980, abs=0.002)


def test_mean_estimate_uses_a_t_interval() -> None:
    """The mean's CI is mean +/- t(n-1) * SD / sqrt(n); one value has no interval."""
    values = [2.0, 4.0, 6.0, 8.0]
    estimate = mean_estimate(values)
    half = 3.182 * statistics.stdev(values) / 2
    assert estimate == Estimate(5.0, 4, pytest.approx(5.0 - half), pytest.approx(5.0 + half))
    assert mean_estimate([3.0]) == Estimate(3.0, 1)
    assert mean_estimate([]) == Estimate.none()


def test_session_histogram_bins() -> None:
    """Sessions fall into 1,2,3,4,5,6-10,11-20,21+; a zero-session episode is refused."""
    assert session_histogram([1, 2, 3, 4, 5, 6, 10, 11, 20, 21, 40]) == (1, 1, 1, 1, 1, 2, 2, 2)
    with pytest.raises(ValueError, match="at least 1"):
        session_histogram([0])


ADULT = AgeBand.ADULT


@pytest.mark.parametrize(
    ("first", "last", "category", "clinical"),
    [
        (15.0, 27.0, ChangeCategory.RECOVERED, True),
        (10.0, 16.0, ChangeCategory.IMPROVED, True),
        (26.0, 33.0, ChangeCategory.IMPROVED, False),
        (20.0, 24.9, ChangeCategory.UNCHANGED, True),
        (20.0, 15.0, ChangeCategory.DETERIORATED, True),
        (30.0, 24.0, ChangeCategory.HARMED, False),
        (31.0, 26.0, ChangeCategory.DETERIORATED, False),
    ],
)
def test_outcomes_are_classified_by_the_change_engine(
    first: float, last: float, category: ChangeCategory, clinical: bool
) -> None:
    """Jacobson & Truax categories with the adult cut-off 25 and reliable change 5, as the
    statistics engine (fit_service.domain.change) gives them."""
    classified = ClassifiedOutcomes.of([(ADULT, first, last)], ReportSettings())
    group = (
        classified.summary.clinical_at_intake
        if clinical
        else (classified.summary.functional_at_intake)
    )
    assert group.counts[category] == 1
    engine = classify_many([first], [last], ReportSettings().criteria_for(ADULT))
    assert engine.category(0) is category


def test_cutoff_side_and_age_band_come_from_the_settings() -> None:
    """Where the clinic counts 25 itself as clinical, ending on 25 is not recovery; an
    adolescent is judged against 28, a child against the CORS cut-off 32."""
    default = ClassifiedOutcomes.of([(ADULT, 19.0, 25.0)], ReportSettings()).counts()
    strict = ClassifiedOutcomes.of(
        [(ADULT, 19.0, 25.0)], ReportSettings(cutoff_is_clinical=True)
    ).counts()
    assert (default.recovered, strict.recovered, strict.improved) == (1, 0, 1)
    teen = ClassifiedOutcomes.of([(AgeBand.ADOLESCENT, 20.0, 27.0)], ReportSettings()).counts()
    child = ClassifiedOutcomes.of([(AgeBand.CHILD, 30.0, 33.0)], ReportSettings()).counts()
    assert (teen.improved, teen.recovered) == (1, 0)
    assert child.clinical_at_intake == 1


def test_outcome_counts_keep_functional_intakes_out_of_the_denominator() -> None:
    """Episodes that started functional are counted apart, never in the recovery denominator."""
    counts = ClassifiedOutcomes.of(
        [(ADULT, 15.0, 27.0), (ADULT, 20.0, 22.0), (ADULT, 30.0, 24.0), (ADULT, 30.0, 31.0)],
        ReportSettings(),
    ).counts()
    assert counts.clinical_at_intake == 2
    assert counts.functional_at_intake == 2
    assert counts.functional_at_intake_reliably_worse == 1
    assert counts.reliable_improvement == Share(1, 2)
    assert counts.last_above_cutoff == 2


def test_harm_is_a_share_of_functional_intakes_and_worsening_counts_everyone() -> None:
    """Harm (reliably worse into the clinical range) can only happen to a functional-range
    start, so it is a share of those; a clinical-range start that worsens is deteriorated;
    "reliably worse" counts both groups, as the literature's 5-10% of clients does."""
    counts = ClassifiedOutcomes.of(
        [
            (ADULT, 30.0, 18.0),  # functional -> clinical, 12 worse: harmed
            (ADULT, 34.0, 28.0),  # functional, 6 worse, stays functional: deteriorated
            (ADULT, 31.0, 32.0),  # functional, unchanged
            (ADULT, 20.0, 12.0),  # clinical, 8 worse: deteriorated (cannot cross)
            (ADULT, 15.0, 27.0),  # clinical -> functional: recovered
        ],
        ReportSettings(),
    ).counts()
    assert counts.share(ChangeCategory.HARMED) == Share(1, 3)
    assert counts.share(ChangeCategory.DETERIORATED) == Share(1, 2)
    assert counts.functional_at_intake_reliably_worse == 2
    assert counts.reliable_deterioration == Share(3, 5)
    assert counts.clinical_at_intake == 2


def _closed(first: float, last: float, **changes: typing.Any) -> EpisodeFacts:
    base = EpisodeFacts(
        age_band=ADULT,
        opened_on=date(2024, 3, 1),
        closed_on=date(2024, 5, 20),
        ending_reason="planned",
        attended_sessions=6,
        last_attended_on=date(2024, 5, 15),
        intake_ors=first,
        last_ors=last,
        ors_count=6,
        intake_srs=35.0,
    )
    return dataclasses.replace(base, **changes)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(AgeBand)),
            st.floats(0, 40, allow_nan=False),
            st.floats(0, 40, allow_nan=False),
        ),
        max_size=40,
    )
)
def test_outcomes_classified_once_equal_classifying_the_pairs(
    pairs: list[tuple[AgeBand, float, float]],
) -> None:
    """Outcomes decided once for a table of episodes, then pooled by a builder, give exactly
    what classifying the builder's pairs gives: same counts, same score arrays in the same
    order (the effect sizes sum them in that order)."""
    settings = ReportSettings()
    facts = [_closed(first, last, age_band=band) for band, first, last in pairs]
    table = EpisodeTable.of(facts, settings)
    assert bool(table.paired.all())
    builder = FiguresBuilder(Window.month("2024-05"), settings)
    FiguresBuilder.add_table_to({0: builder}, table, np.zeros(len(table), np.int64))
    pooled = builder.classified()
    direct = ClassifiedOutcomes.of(pairs, settings)
    assert pooled.counts() == direct.counts()
    for name in ("first", "last", "clinical_first", "clinical_last"):
        assert getattr(pooled, name).tobytes() == getattr(direct, name).tobytes(), name


def test_only_closed_episodes_with_two_scores_get_an_outcome() -> None:
    open_episode = _closed(12.0, 30.0, closed_on=None)
    one_score = _closed(12.0, 12.0, ors_count=1)
    table = EpisodeTable.of([open_episode, one_score], ReportSettings())
    assert (table.paired.tolist(), table.codes.tolist()) == ([False, False], [-1, -1])


def test_pre_post_d_is_mean_change_over_intake_sd() -> None:
    """d is mean change over the intake SD (effect_sizes.pre_post_d), with a CI around it."""
    intake = [10.0, 14.0, 18.0, 22.0, 26.0]
    last = [16.0, 19.0, 25.0, 27.0, 30.0]
    builder = FiguresBuilder(Window.month("2024-05"), ReportSettings())
    for a, b in zip(intake, last, strict=True):
        builder.add_episode(_closed(a, b))
    estimate = builder.figures(None).pre_post_d
    expected = statistics.fmean(b - a for a, b in zip(intake, last, strict=True)) / (
        statistics.stdev(intake)
    )
    assert estimate.value == pytest.approx(expected)
    assert estimate.n == 5
    assert typing.cast(float, estimate.ci_low) < expected < typing.cast(float, estimate.ci_high)


def test_severity_adjusted_es_of_the_reference_sample_is_its_own_d() -> None:
    """Against its own reference a sample's SA-ES equals mean change / intake SD (residuals
    average zero); without a reference it is not computed at all."""
    intake = [8.0, 12.0, 15.0, 19.0, 22.0, 24.0]
    last = [15.0, 14.0, 24.0, 22.0, 30.0, 26.0]
    settings = ReportSettings()
    reference = fit_reference([(ADULT, a, b) for a, b in zip(intake, last, strict=True)], settings)
    assert reference is not None
    builder = FiguresBuilder(Window.month("2024-05"), settings)
    for a, b in zip(intake, last, strict=True):
        builder.add_episode(_closed(a, b))
    estimate = builder.figures(reference).severity_adjusted_es
    assert estimate.value == pytest.approx(reference.mean_change / reference.intake_sd)
    assert builder.figures(None).severity_adjusted_es == Estimate(None, 6)


def test_builder_counts_episodes_by_their_dates_in_the_window() -> None:
    """Active = open at any time in the window; opened/closed by their dates; facts outside
    the window are ignored; an intake is counted for episodes opened in the window."""
    builder = FiguresBuilder(Window.month("2024-05"), ReportSettings())
    builder.add_episode(_closed(15.0, 27.0))  # opened March, closed in May
    builder.add_episode(_closed(15.0, 27.0, opened_on=date(2024, 5, 2), closed_on=None))
    builder.add_episode(_closed(15.0, 27.0, closed_on=date(2024, 4, 30)))  # before the window
    builder.add_episode(_closed(15.0, 27.0, opened_on=date(2024, 6, 1), closed_on=None))
    activity = builder.figures(None).activity
    assert (activity.episodes_active, activity.episodes_opened, activity.episodes_closed) == (
        2,
        1,
        1,
    )
    assert builder.figures(None).intake_ors == Estimate(15.0, 1)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [("unilateral", 2), ("stopped_attending", 1), ("early_unplanned", 1)],
)
def test_dropout_follows_the_clinic_rule(rule: str, expected: int) -> None:
    """The dropout count follows the chosen definition; endings are coded planned,
    unilateral (split by last ORS against the cut-off) or other whatever the rule."""
    settings = ReportSettings.from_mapping({"dropout_definition": rule})
    builder = FiguresBuilder(Window.month("2024-05"), settings)
    builder.add_episode(_closed(15.0, 20.0, ending_reason="client_ended", attended_sessions=5))
    builder.add_episode(_closed(15.0, 27.0, ending_reason="stopped_attending"))
    builder.add_episode(_closed(15.0, 20.0, ending_reason="other", attended_sessions=2))
    builder.add_episode(_closed(15.0, 20.0, ending_reason="planned", attended_sessions=1))
    dropout = builder.figures(None).dropout
    assert dropout.dropouts == expected
    assert (dropout.planned_endings, dropout.unilateral_endings, dropout.other_endings) == (1, 2, 1)
    assert (dropout.unilateral_last_ors_above_cutoff, dropout.unilateral_last_ors_below_cutoff) == (
        1,
        1,
    )


@pytest.mark.parametrize("rule", ["unilateral", "stopped_attending", "early_unplanned"])
def test_table_endings_equal_each_episodes_own_ending(rule: str) -> None:
    """EpisodeTable decides every closed episode's ending with array masks; each row must be
    what EpisodeEnding.of decides for that episode alone (every reason, with and without a
    last score on either side of the cut-off, a child's CORS cut-off, few and many sessions)."""
    settings = ReportSettings.from_mapping({"dropout_definition": rule})
    episodes = [
        _closed(first, last, ending_reason=reason, attended_sessions=sessions, age_band=band)
        for reason in (None, "planned", "client_ended", "stopped_attending", "transferred", "other")
        for sessions in (0, 1, 2, 3, 7)
        for band in AgeBand
        for first, last in ((15.0, 20.0), (15.0, 27.0), (12.0, 31.9), (15.0, 32.0))
    ]
    episodes += [
        _closed(15.0, 20.0, ending_reason="stopped_attending", last_ors=None, ors_count=1),
        _closed(15.0, 20.0, ending_reason="client_ended", closed_on=None),
    ]
    table = EpisodeTable.of(episodes, settings)
    for row, facts in enumerate(episodes):
        want = (
            (0,) * 5
            if facts.closed_on is None
            else dataclasses.astuple(EpisodeEnding.of(facts, settings))
        )
        assert tuple(table.endings[row].tolist()) == want, facts
    builder = FiguresBuilder(Window.month("2024-05"), settings)
    for facts in episodes:
        builder.add_episode(facts)
    assert builder.figures(None).dropout.unilateral_without_ors == 1


def test_trend_means_take_each_months_sessions_in_the_order_added() -> None:
    """Each trend month's mean sessions are over the episodes closed that month only."""
    builder = FiguresBuilder(Window.trailing("2024-05"), ReportSettings())
    for day, sessions in [(date(2024, 5, 3), 4), (date(2024, 3, 9), 10), (date(2024, 5, 28), 6)]:
        builder.add_episode(_closed(15.0, 20.0, closed_on=day, attended_sessions=sessions))
    points = {point.month: point for point in builder.trend(trailing_months("2024-05"))}
    assert points["2024-05"].mean_sessions == mean_estimate([4.0, 6.0])
    assert points["2024-03"].mean_sessions == mean_estimate([10.0])
    assert points["2024-04"].mean_sessions == mean_estimate([])


def test_trailing_months_cross_the_year_boundary() -> None:
    """The trailing-12 window of February 2024 starts in March 2023."""
    months = trailing_months("2024-02")
    assert months[0] == "2023-03"
    assert months[-1] == "2024-02"
    assert len(months) == 12
    assert month_label("2024-02") == "February 2024"


# ---------------------------------------------------------------- values


def test_proportion_display_carries_n_and_ci() -> None:
    """A shown percentage always reads 'x% (n=…, 95% CI a-b)'."""
    assert Share(26, 40).display(10) == f"65.0% (n=40, 95% CI 49.5{DASH}77.9)"


def test_small_cells_say_too_few() -> None:
    """Below min_n a percentage or mean prints 'too few (n=…)', and zero prints 'no data'."""
    assert Share(3, 4).display(10) == "too few (n=4)"
    assert Estimate(5.0, 9, 4.0, 6.0).display(10) == "too few (n=9)"
    assert Share(0, 0).display(10) == "no data (n=0)"
    assert Share(3, 4).display(4).startswith("75.0%")


def test_negative_intervals_use_to() -> None:
    """An interval with a negative end reads 'a to b', never the ambiguous '-0.2-0.3'."""
    assert Estimate(0.05, 12, -0.2, 0.3).display(10, 2) == "0.05 (n=12, 95% CI -0.20 to 0.30)"


def test_estimate_rejects_half_an_interval() -> None:
    """A CI needs both ends; a lone end would print as a misleading bound."""
    with pytest.raises(ValueError, match="both ends"):
        Estimate(1.0, 12, 0.5, None)


def test_impossible_proportion_is_refused() -> None:
    """More successes than trials is an aggregation bug and fails loudly."""
    with pytest.raises(ValueError, match="impossible"):
        Share(5, 4)


# ---------------------------------------------------------------- figures and report


def test_group_figures_refuse_disagreeing_session_counts() -> None:
    """The same count reaching two blocks must agree, or the PDF would print two truths."""
    good = figures(2)
    with pytest.raises(ValueError, match="attended_sessions"):
        dataclasses.replace(good, completeness=CompletenessSummary(1, 0, 0))
    with pytest.raises(ValueError, match="sessions_with_srs"):
        dataclasses.replace(
            good,
            alliance=dataclasses.replace(good.alliance, sessions_with_srs=35, srs_below_concern=0),
        )


def test_metrics_list_covers_every_headline() -> None:
    """Every headline key names a metric, and metric keys are unique."""
    keys = [metric.key for metric in figures().metrics()]
    assert len(keys) == len(set(keys))
    assert set(HEADLINE_KEYS) <= set(keys)


def test_empty_figures_are_printable() -> None:
    """An empty window yields figures whose every metric displays without error."""
    empty = GroupFigures.empty()
    assert not empty.has_data
    assert all(metric.display(10) for metric in empty.metrics())


def test_report_requires_aware_utc_generated_at() -> None:
    """generated_at is passed in as aware UTC, so output never depends on a local clock."""
    with pytest.raises(ValueError, match="aware"):
        report(generated_at=datetime(2024, 6, 3, 7, 30))
    with pytest.raises(ValueError, match="UTC"):
        report(generated_at=datetime(2024, 6, 3, 7, 30, tzinfo=timezone(timedelta(hours=2))))


def test_report_rejects_malformed_period() -> None:
    """The period is YYYY-MM; '2024-13' is refused."""
    with pytest.raises(ValueError, match="YYYY-MM"):
        report(period="2024-13")


def test_report_is_empty_when_the_month_has_no_activity() -> None:
    """A month with no active episode and no scheduled session is 'empty'."""
    empty_month = GroupReport("clinic", "Whole clinic", GroupFigures.empty(), figures(10))
    assert report(overall=empty_month).is_empty
    assert not report().is_empty


def test_trend_points_must_be_in_order() -> None:
    """Trend months are unique and ascending, so charts never zig-zag in time."""
    point = TrendPoint("2024-05", Share(1, 2), Estimate(3.0, 2))
    earlier = TrendPoint("2024-04", Share(1, 2), Estimate(3.0, 2))
    with pytest.raises(ValueError, match="in order"):
        GroupReport("clinic", "x", figures(), figures(), trend=(point, earlier))


def test_for_clinician_shows_only_their_own_figures() -> None:
    """A clinician's view holds their figures alone: no colleagues, no clinic or age totals."""
    full = report()
    view = full.for_clinician("c-1")
    assert view.scope is Scope.CLINICIAN
    assert view.overall.key == "c-1"
    assert [g.key for g in view.clinicians] == ["c-1"]
    assert view.age_bands == ()
    assert view.overall.month == full.clinicians[1].month


def test_for_clinician_unknown_id_is_not_found() -> None:
    """Asking for a clinician not in the report raises NotFound, revealing nothing else."""
    with pytest.raises(NotFound):
        report().for_clinician("nobody")


def test_clinicians_are_listed_by_label() -> None:
    """Clinicians print in label order (a comparison, not a league table)."""
    assert [g.label for g in report().clinicians_by_label()] == ["T-01", "T-02"]


def test_method_notes_state_the_settings_used() -> None:
    """The methods appendix prints the clinic's own dropout definition and thresholds."""
    settings = ReportSettings(min_n=7, dropout_definition="Fewer than 3 sessions, no planned end.")
    text = " ".join(f"{n.term} {n.definition} {n.source}" for n in method_notes(settings))
    assert "Fewer than 3 sessions, no planned end." in text
    assert "fewer than 7 observations" in text
    for source in ("Wilson 1927", "Jacobson & Truax 1991", "Seidel, Miller & Chow 2014"):
        assert source in text


def test_report_types_have_no_client_identifier_fields() -> None:
    """No dataclass reachable from MonthlyReport has a client or item field: the object
    cannot carry a client identifier or item text to any renderer."""
    seen: set[type] = set()
    pending: list[type] = [MonthlyReport]
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert "client" not in f.name
            assert "item" not in f.name
            for arg in _type_args(hints[f.name]):
                if dataclasses.is_dataclass(arg):
                    pending.append(arg)  # type: ignore[arg-type]
    assert {GroupFigures, Activity, AllianceSummary} <= seen  # the walk really went deep


def _type_args(hint: object) -> list[object]:
    args = typing.get_args(hint)
    if not args:
        return [hint]
    out: list[object] = []
    for arg in args:
        out += _type_args(arg)
    return out


def test_wilson_ci_is_reported_in_percent_display_consistently() -> None:
    """The displayed CI is effect_sizes' Wilson interval rounded to one decimal of a percent."""
    p = Share(7, 23)
    wilson = proportion(7, 23)
    assert wilson is not None
    assert p.display(10).endswith(f"{100 * wilson.ci_low:.1f}{DASH}{100 * wilson.ci_high:.1f})")
    assert math.isclose(typing.cast(float, p.ci_low), wilson.ci_low)


# ---------------------------------------------------------------- settings


def test_report_settings_from_mapping_reads_the_reports_section() -> None:
    """Keys of a clinic's "reports" section override the defaults; absent ones keep them, and
    the printed dropout definition follows the chosen rule."""
    settings = ReportSettings.from_mapping(
        {"min_n": 5, "dropout_definition": "early_unplanned", "dropout_max_sessions": 4}
    )
    assert settings.min_n == 5
    assert "fewer than 4 attended sessions" in settings.dropout_definition
    assert settings.follow_up_days == ReportSettings().follow_up_days
    assert ReportSettings.from_mapping(None) == ReportSettings()
    assert ReportSettings.from_mapping(settings.as_mapping()) == settings


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({"min_n": 0}, "reports.min_n"),
        ({"min_n": True}, "reports.min_n"),
        ({"min_n": "10"}, "reports.min_n"),
        ({"dropout_definition": "whenever"}, "reports.dropout_definition"),
        ({"follow_up_days": 0}, "reports.follow_up_days"),
        ({"srs_concern": 41}, "reports.srs_concern"),
        ({"reliable_change": float("nan")}, "reports.reliable_change"),
        ({"cutoff_is_clinical": "yes"}, "reports.cutoff_is_clinical"),
        ({"min_nn": 5}, "reports.min_nn"),
        (["min_n"], "reports"),
    ],
)
def test_report_settings_from_mapping_rejects_bad_values(mapping: typing.Any, field: str) -> None:
    """An invalid or unknown report setting raises FitError naming the key and the rule."""
    with pytest.raises(FitError) as caught:
        ReportSettings.from_mapping(mapping)
    assert caught.value.field == field
    assert caught.value.rule == "invalid_report_setting"


def test_trend_from_the_trailing_builder_equals_one_builder_per_month() -> None:
    """The trend read off the trailing-12 builder (one classification) is point for point
    what a separate builder per month gives: same recovery share, same mean sessions."""
    period = "2024-05"
    settings = ReportSettings()
    trailing = FiguresBuilder(Window.trailing(period), settings)
    per_month = {m: FiguresBuilder(Window.month(m), settings) for m in trailing_months(period)}
    scores = [(15.0, 27.0), (10.0, 16.0), (20.0, 22.0), (30.0, 24.0), (27.0, 33.0)]
    bands = [ADULT, AgeBand.ADOLESCENT, AgeBand.CHILD]
    for index in range(60):
        first, last = scores[index % len(scores)]
        facts = _closed(
            first,
            last,
            age_band=bands[index % 3],
            opened_on=date(2023, 5, 1),
            closed_on=date(2023, 6, 1) + timedelta(days=6 * index),
            attended_sessions=1 + index % 9,
            last_attended_on=date(2023, 5, 20),
            ors_count=1 if index % 7 == 0 else 4,
        )
        trailing.add_episode(facts)
        for builder in per_month.values():
            builder.add_episode(facts)
    expected = tuple(builder.trend_point(m) for m, builder in per_month.items())
    assert trailing.trend(trailing_months(period)) == expected
    assert any(point.recovery.numerator for point in expected)


def test_trends_of_many_builders_equal_one_builder_per_group_and_month() -> None:
    """FiguresBuilder.trends (every group's trend worked out together, as a report does) is,
    group by group and point by point, what a separate builder per group and month gives,
    an empty group included."""
    period = "2024-05"
    settings = ReportSettings()
    groups = 4  # the last one gets no episode
    trailing = [FiguresBuilder(Window.trailing(period), settings) for _ in range(groups)]
    per_month = [
        {m: FiguresBuilder(Window.month(m), settings) for m in trailing_months(period)}
        for _ in range(groups)
    ]
    scores = [(15.0, 27.0), (10.0, 16.0), (20.0, 22.0), (30.0, 24.0), (27.0, 33.0)]
    for index in range(90):
        first, last = scores[index % len(scores)]
        facts = _closed(
            first,
            last,
            opened_on=date(2023, 5, 1),
            closed_on=date(2023, 6, 1) + timedelta(days=(7 * index) % 360),
            attended_sessions=1 + (index * 5) % 11,
            last_attended_on=date(2023, 5, 20),
            ors_count=1 if index % 7 == 0 else 4,
        )
        group = index % (groups - 1)
        trailing[group].add_episode(facts)
        for builder in per_month[group].values():
            builder.add_episode(facts)
    expected = [
        tuple(builder.trend_point(m) for m, builder in months.items()) for months in per_month
    ]
    assert FiguresBuilder.trends(trailing, trailing_months(period)) == expected
    assert all(point.mean_sessions.n == 0 for point in expected[-1])
    assert all(any(point.mean_sessions.n for point in trend) for trend in expected[:-1])
    assert FiguresBuilder.trends([], trailing_months(period)) == []
    assert FiguresBuilder.trends(trailing, ()) == [()] * groups
