"""FiguresBuilder's shared rows and columns give exactly the figures computed item by item.

The builder keeps each episode as one row shared by the builders of a window and pulls the
rows apart into arrays once per builder (issue 5, report speed). These tests pin the figures to
the straightforward computations they replaced, to the last bit: the report's outputs are
compared byte for byte across versions.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
import typing
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fit_service.domain.change import ChangeSummary
from fit_service.domain.effect_sizes import (
    ClusterSpread,
    pre_post_d,
    severity_adjusted_es,
    t_quantile_975,
)
from fit_service.domain.instruments import AgeBand, Direction
from fit_service.domain.monthly_report import (
    SESSION_COLUMNS,
    Activity,
    AlertFacts,
    AlertTable,
    ClassifiedOutcomes,
    EpisodeEnding,
    EpisodeFacts,
    EpisodeTable,
    Estimate,
    FiguresBuilder,
    FlaggedEpisode,
    FlaggedTable,
    OutcomeCounts,
    ReportSettings,
    SessionCounts,
    SessionSpread,
    SessionStats,
    Share,
    Window,
    fit_reference,
    mean_estimate,
    mean_estimate_of_array,
    median_estimate,
    trailing_months,
)
from fit_service.domain.monthly_report.builder import _preselected_criteria
from fit_service.domain.monthly_report.estimates import mean_and_median, mean_estimates_of_slices

T = typing.TypeVar("T")
PERIOD = "2024-05"
MONTH = Window.month(PERIOD)
ENDINGS = ["planned", "client_ended", "stopped_attending", "transferred", "other", None]
SCORES = st.floats(0, 40, allow_nan=False).map(lambda x: round(x, 1))


@st.composite
def episodes(draw: st.DrawFn) -> EpisodeFacts:
    """An episode around May 2024: open or closed, before, in or after the month, with or
    without scores and attended sessions."""
    # Mostly around the month (so that most examples have several pairs closed in it).
    early = draw(st.integers(0, 9)) == 0
    opened = date(2023, 4, 1) + timedelta(days=draw(st.integers(0, 430)))
    if not early:
        opened = date(2024, 3, 15) + timedelta(days=draw(st.integers(0, 70)))
    closed = None
    if draw(st.integers(0, 3)):
        closed = opened + timedelta(days=draw(st.integers(0, 60)))
    attended = draw(st.integers(0, 25))
    last_on = None
    if attended and draw(st.integers(0, 9)):
        last_on = opened + timedelta(days=draw(st.integers(0, 150)))
    return EpisodeFacts(
        age_band=draw(st.sampled_from(list(AgeBand))),
        opened_on=opened,
        closed_on=closed,
        ending_reason=draw(st.sampled_from(ENDINGS)),
        attended_sessions=attended,
        last_attended_on=last_on,
        intake_ors=draw(st.none() | SCORES),
        last_ors=draw(SCORES | st.none()),
        ors_count=draw(st.integers(0, 6)),
        intake_srs=draw(st.none() | SCORES),
    )


def _old_mean_estimate(values: list[float]) -> Estimate:
    """mean_estimate as it was written before (fmean, a generator of squares)."""
    n = len(values)
    if n == 0:
        return Estimate.none()
    mean = statistics.fmean(values)
    if n < 2:
        return Estimate(value=mean, n=n)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return Estimate(value=mean, n=n, ci_low=mean - half, ci_high=mean + half)


def _samples(elements: st.SearchStrategy[T]) -> st.SearchStrategy[list[T]]:
    """Small lists, and lists long enough for mean_estimate_of_array's np.unique path."""
    return st.lists(elements, max_size=70) | st.lists(elements, min_size=64, max_size=400)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False) | st.integers(0, 400), max_size=60))
def test_mean_estimate_is_bit_for_bit_the_generator_version(values: list[float]) -> None:
    """The C-level squares and sums give the very same floats as the generator did."""
    assert mean_estimate(values) == _old_mean_estimate(values)


@given(
    _samples(st.integers(0, 40))
    | _samples(st.integers(0, 400).map(lambda x: x / 10))
    | _samples(st.floats(-1e6, 1e6, allow_nan=False))
)
def test_mean_of_an_array_is_bit_for_bit_the_generator_version(values: list[float]) -> None:
    """Squares of distinct values counted by multiplicity give the very same floats, above
    and below the size where the array path starts."""
    assert mean_estimate_of_array(np.array(values)) == _old_mean_estimate(
        [float(v) for v in values]
    )


@given(_samples(st.integers(0, 400)), st.lists(st.integers(0, 400), max_size=12))
def test_means_and_medians_converted_once_are_those_of_each_sample(
    values: list[int], cuts: list[int]
) -> None:
    """mean_and_median and mean_estimates_of_slices (one conversion, then slices) give each
    sample's own mean_estimate_of_array and median_estimate, on both sides of the size where
    the array paths start."""
    array = np.array(values, dtype=np.int64)
    assert mean_and_median(array) == (mean_estimate_of_array(array), median_estimate(array))
    bounds = sorted({0, len(values), *(min(cut, len(values)) for cut in cuts)})
    assert mean_estimates_of_slices(array, bounds) == [
        mean_estimate_of_array(array[low:high]) for low, high in itertools.pairwise(bounds)
    ]


@given(st.lists(st.integers(0, 60) | st.floats(-1e3, 1e3, allow_nan=False), max_size=80))
def test_median_estimate_is_statistics_median(values: list[float]) -> None:
    """The np.sort median is statistics.median's, whether given a list or an array."""
    expected = (
        Estimate(float(statistics.median(values)), len(values)) if values else Estimate.none()
    )
    assert median_estimate(values) == expected
    assert median_estimate(np.array(values, dtype=np.float64)) == expected


@given(
    st.lists(
        st.tuples(st.integers(-1, 4), st.booleans(), st.booleans()),
        max_size=60,
    )
)
def test_outcome_counts_from_codes_equal_the_summary_path(
    rows: list[tuple[int, bool, bool]],
) -> None:
    """One bincount counts exactly what ChangeSummary's per-category mappings count."""
    codes = np.array([code for code, _clinical, _above in rows], dtype=np.int8)
    clinical = np.array([clinical for _code, clinical, _above in rows], dtype=np.bool_)
    clinical &= codes >= 0  # classify_many never marks an unclassifiable row clinical
    # Only scored (classifiable) pairs reach a builder, so only they can be above the cut-off.
    above = sum(above for code, _clinical, above in rows if code >= 0)
    expected = OutcomeCounts.from_summary(ChangeSummary.from_codes(codes, clinical), above)
    assert OutcomeCounts.from_codes(codes, clinical, above) == expected


@given(_samples(st.tuples(st.integers(1, 60), st.integers(0, 400))))
def test_session_stats_from_arrays_equal_from_episodes(rows: list[tuple[int, int]]) -> None:
    sessions = [s for s, _d in rows]
    days = [d for _s, d in rows]
    from_arrays = SessionStats.from_arrays(
        np.array(sessions, dtype=np.int64), np.array(days, dtype=np.int64)
    )
    assert from_arrays == SessionStats.from_episodes(sessions, days)


def _expected_figures(
    facts: list[EpisodeFacts], settings_: ReportSettings, reference: typing.Any
) -> dict[str, typing.Any]:
    """The figures computed item by item from the facts, the way the builder used to."""
    active = [f for f in facts if f.is_active_in(MONTH)]
    opened = [f for f in active if MONTH.contains(f.opened_on)]
    closed = [f for f in active if MONTH.contains(f.closed_on)]
    counted = [f for f in closed if f.attended_sessions >= 1 and f.last_attended_on is not None]
    pairs = [(f.age_band, f.intake_ors, f.last_ors) for f in closed if f.has_outcome_pair]
    classified = ClassifiedOutcomes.of(pairs, settings_)  # type: ignore[arg-type]
    endings = [EpisodeEnding.of(f, settings_) for f in closed]
    d = pre_post_d(classified.first, classified.last, Direction.HIGHER_IS_BETTER)
    sa_es = severity_adjusted_es(
        classified.clinical_first,
        classified.clinical_last,
        _preselected_criteria(settings_),
        reference=reference,
    )
    return {
        "activity": (len(active), len(opened), len(closed)),
        "sessions": SessionStats.from_episodes(
            [f.attended_sessions for f in counted],
            [(f.last_attended_on - f.opened_on).days for f in counted],  # type: ignore[operator]
        ),
        "intake_ors": mean_estimate([f.intake_ors for f in opened if f.intake_ors is not None]),
        "intake_srs": mean_estimate([f.intake_srs for f in opened if f.intake_srs is not None]),
        "outcomes": classified.counts(),
        "pre_post_d": Estimate.of_effect_size(d, int(classified.first.size)),
        "sa_es": Estimate.of_effect_size(sa_es, int(classified.clinical_first.size)),
        "dropouts": tuple(
            sum(getattr(e, name) for e in endings)
            for name in ("dropout", "planned", "unilateral", "unilateral_below", "unilateral_above")
        ),
        "classified": classified,
    }


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(episodes(), st.integers(-1, 2)), max_size=40),
    st.sampled_from(["unilateral", "early_unplanned"]),
)
def test_builder_figures_equal_the_item_by_item_figures(
    grouped: list[tuple[EpisodeFacts, int]], rule: str
) -> None:
    """Every figure of builders fed one EpisodeTable split by group (array masks, endings and
    outcomes decided once for the table) equals the item-by-item computation over each group's
    own episodes, floats included; rows of no group (-1) count nowhere."""
    settings_ = ReportSettings.from_mapping({"dropout_definition": rule})
    reference = fit_reference(
        [(AgeBand.ADULT, 10.0 + i, 18.0 + (i * 7) % 11) for i in range(20)], settings_
    )
    facts = [f for f, _group in grouped]
    builders = {group: FiguresBuilder(MONTH, settings_) for group in range(3)}
    table = EpisodeTable.of(facts, settings_)
    FiguresBuilder.add_table_to(builders, table, np.array([g for _f, g in grouped], np.int64))
    for group, builder in builders.items():
        own = [f for f, g in grouped if g == group]
        expected = _expected_figures(own, settings_, reference)
        got = builder.figures(reference)
        a = got.activity
        assert (a.episodes_active, a.episodes_opened, a.episodes_closed) == expected["activity"]
        assert got.sessions == expected["sessions"]
        assert got.intake_ors == expected["intake_ors"]
        assert got.intake_srs == expected["intake_srs"]
        assert got.outcomes == expected["outcomes"]
        assert got.pre_post_d == expected["pre_post_d"]
        assert got.severity_adjusted_es == expected["sa_es"]
        dropout = got.dropout
        assert (
            dropout.dropouts,
            dropout.planned_endings,
            dropout.unilateral_endings,
            dropout.unilateral_last_ors_below_cutoff,
            dropout.unilateral_last_ors_above_cutoff,
        ) == expected["dropouts"]
        classified = builder.classified()
        assert classified.counts() == expected["outcomes"]
        for name in ("first", "last", "clinical_first", "clinical_last"):
            want = getattr(expected["classified"], name)
            assert getattr(classified, name).tobytes() == want.tobytes(), name


def test_figures_follow_episodes_added_after_a_first_figures_call() -> None:
    """The columns are remembered between figures() and trend(); an episode added later
    must still count (the remembered columns are rebuilt)."""
    settings_ = ReportSettings()
    base = EpisodeFacts(
        age_band=AgeBand.ADULT,
        opened_on=date(2024, 5, 2),
        closed_on=date(2024, 5, 20),
        ending_reason="planned",
        attended_sessions=4,
        last_attended_on=date(2024, 5, 15),
        intake_ors=15.0,
        last_ors=27.0,
        ors_count=4,
        intake_srs=33.0,
    )
    later = dataclasses.replace(base, intake_ors=12.0, last_ors=14.0, attended_sessions=9)
    builder = FiguresBuilder(MONTH, settings_)
    builder.add_episode(base)
    builder.figures(None)
    builder.trend_point(PERIOD)
    builder.add_episode(later)
    fresh = FiguresBuilder(MONTH, settings_)
    fresh.add_episode(base)
    fresh.add_episode(later)
    assert builder.figures(None) == fresh.figures(None)
    assert builder.trend_point(PERIOD) == fresh.trend_point(PERIOD)
    assert builder.figures(None).outcomes.episodes == 2
    assert builder.pairs == [(AgeBand.ADULT, 15.0, 27.0), (AgeBand.ADULT, 12.0, 14.0)]


def test_session_counts_are_summed_and_their_clusters_kept() -> None:
    """add_sessions takes one row per cluster; sessions sums them field by field, and the
    rates over sessions get intervals from the clusters (SessionSpread)."""
    builder = FiguresBuilder(Window.trailing(PERIOD), ReportSettings())
    assert builder.sessions == SessionCounts()
    builder.add_sessions(np.array([[5, 1, 2, 4, 3, 1]]))
    builder.add_sessions(np.array([[7, 0, 1, 6, 7, 2], [0, 3, 0, 0, 0, 0]]))
    assert builder.sessions == SessionCounts(12, 4, 3, 10, 10, 3)
    assert builder.trend(trailing_months(PERIOD))[-1].mean_sessions == Estimate.none()
    figures = builder.figures(None)
    no_shows = figures.activity.no_show_rate
    assert (no_shows.numerator, no_shows.n, no_shows.clusters) == (4, 19, 3)
    # one no-show in 8 scheduled, none in 8, 3 of 3: the clusters differ, so the interval
    # is wider than the 19 sessions alone would give
    assert no_shows.spread == ClusterSpread.of([1, 0, 3], [8, 8, 3])
    plain = Share(4, 19)
    assert no_shows.ci is not None
    assert plain.ci is not None
    assert no_shows.ci[0] < plain.ci[0]
    assert no_shows.ci[1] > plain.ci[1]
    assert figures.completeness.ors_rate.spread == ClusterSpread.of([4, 6, 0], [5, 7, 0])
    assert figures.alliance.srs_concern_rate.spread == ClusterSpread.of([1, 2], [3, 7])
    with pytest.raises(ValueError, match="one column per"):
        builder.add_sessions(np.array([[1, 2, 3]]))


def test_builders_of_another_window_are_refused() -> None:
    month = FiguresBuilder(MONTH, ReportSettings())
    trailing = FiguresBuilder(Window.trailing(PERIOD), ReportSettings())
    episode = EpisodeFacts(
        AgeBand.ADULT, date(2024, 5, 1), None, None, 0, None, None, None, 0, None
    )
    table = EpisodeTable.of([episode], ReportSettings())
    with pytest.raises(ValueError, match="one window"):
        FiguresBuilder.add_table_to({0: month, 1: trailing}, table, np.zeros(1, np.int64))


def test_negative_counts_still_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"Activity\.no_shows cannot be negative"):
        Activity(1, 1, 1, 1, -1, 0)


def _edges(*windows: Window) -> list[date]:
    """Each window's first and last day and the days either side of them."""
    return [
        day + timedelta(days=shift)
        for window in windows
        for day in (window.first_day, window.last_day)
        for shift in (-1, 0, 1)
    ]


#: Days around the report's month and trailing 12 months, their edges drawn often.
DAYS = st.one_of(
    st.sampled_from(_edges(MONTH, Window.trailing(PERIOD))),
    st.dates(date(2023, 1, 1), date(2025, 3, 31)),
)


@st.composite
def alerts(draw: st.DrawFn) -> AlertFacts:
    raised = draw(DAYS)
    opened_at = datetime(raised.year, raised.month, raised.day, 9, tzinfo=UTC)
    acknowledged_at = None
    if draw(st.booleans()):
        acknowledged_at = opened_at + timedelta(
            hours=draw(st.integers(0, 24 * 90)), seconds=draw(st.integers(0, 3599))
        )
    resolved = draw(st.one_of(st.none(), DAYS))
    return AlertFacts(
        raised_on=raised,
        opened_at=opened_at,
        acknowledged_on=acknowledged_at.date() if acknowledged_at else None,
        acknowledged_at=acknowledged_at,
        resolved_on=resolved,
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(alerts(), st.integers(-1, 3)), max_size=40),
    st.lists(
        st.tuples(DAYS, st.one_of(st.none(), DAYS, st.integers(-2, 2)), st.integers(-1, 3)),
        max_size=40,
    ),
    st.sampled_from([MONTH, Window.trailing(PERIOD)]),
    st.integers(1, 60),
)
def test_alerts_and_flagged_episodes_by_group_equal_a_plain_count(
    alert_rows: list[tuple[AlertFacts, int]],
    drawn_flagged: list[tuple[date, date | int | None, int]],
    window: Window,
    follow_up_days: int,
) -> None:
    """add_alerts_to / add_flagged_to hand each row to its group's builder (group -1: none)
    and count it where its day falls in the window; counted here alert by alert, with the
    rules as the methods state them."""
    report_settings = ReportSettings(follow_up_days=follow_up_days)
    # a last attended session drawn as a shift is that many days from the follow-up's end
    flagged_rows = [
        (
            first,
            first + timedelta(days=follow_up_days + last) if isinstance(last, int) else last,
            group,
        )
        for first, last, group in drawn_flagged
    ]
    builders = {key: FiguresBuilder(window, report_settings) for key in range(4)}
    FiguresBuilder.add_alerts_to(
        builders,
        AlertTable.of([alert for alert, _ in alert_rows]),
        np.array([group for _, group in alert_rows], np.int64),
    )
    flagged = [FlaggedEpisode(first, last) for first, last, _ in flagged_rows]
    FiguresBuilder.add_flagged_to(
        builders,
        FlaggedTable.of(flagged),
        np.array([group for *_, group in flagged_rows], np.int64),
    )

    def within(day: date | None) -> bool:
        return day is not None and window.first_day <= day <= window.last_day

    for key, builder in builders.items():
        mine = [alert for alert, group in alert_rows if group == key]
        assert builder.alerts_raised == sum(within(a.raised_on) for a in mine)
        assert builder.alerts_acknowledged == sum(within(a.acknowledged_on) for a in mine)
        assert builder.alerts_resolved == sum(within(a.resolved_on) for a in mine)
        assert builder.hours_to_acknowledge == [
            (a.acknowledged_at - a.opened_at).total_seconds() / 3600
            for a in mine
            if a.acknowledged_at is not None and within(a.acknowledged_on)
        ]
        dues = [
            (first + timedelta(days=follow_up_days), last)
            for first, last, group in flagged_rows
            if group == key
        ]
        assert builder.flagged_followed_up == sum(within(due) for due, _ in dues)
        assert builder.flagged_in_care == sum(
            within(due) and last is not None and last >= due for due, last in dues
        )


@st.composite
def clusters(draw: st.DrawFn) -> list[int]:
    """One cluster's session counts, consistent (what a client's sessions can add up to)."""
    attended, no_shows, cancelled = (draw(st.integers(0, 12)) for _ in range(3))
    with_ors, with_srs = draw(st.integers(0, attended)), draw(st.integers(0, attended))
    return [attended, no_shows, cancelled, with_ors, with_srs, draw(st.integers(0, with_srs))]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(clusters(), st.integers(-1, 4)), max_size=30))
def test_session_sums_by_group_equal_each_groups_own(rows: list[tuple[list[int], int]]) -> None:
    """add_sessions_to (every group's clusters summed in one pass) gives each builder the
    session counts and spreads that its own clusters give alone (SessionSpread.of, the
    matrix path), an empty group and the skipped group -1 included, and the builder of
    every row those of all of them."""
    counts = np.array([row for row, _ in rows], np.int64).reshape(-1, len(SESSION_COLUMNS))
    groups = np.array([group for _, group in rows], np.int64)
    builders = {key: FiguresBuilder(MONTH, ReportSettings()) for key in range(5)}
    everyone = FiguresBuilder(MONTH, ReportSettings())
    FiguresBuilder.add_sessions_to(builders, counts, groups, every_row_to=everyone)
    assert everyone.sessions == SessionCounts(*counts.sum(axis=0).tolist())
    assert everyone.session_spread == SessionSpread.of(counts)
    for key, builder in builders.items():
        own = counts[groups == key]
        assert builder.sessions == SessionCounts(*own.sum(axis=0).tolist())
        assert builder.session_spread == SessionSpread.of(own)
        alone = FiguresBuilder(MONTH, ReportSettings())
        for row in own:  # one cluster at a time: the sums add up
            alone.add_sessions(row[None, :])
        assert alone.session_spread == builder.session_spread
    with pytest.raises(ValueError, match="numerator <= denominator"):
        FiguresBuilder.add_sessions_to(
            builders, np.array([[1, 0, 0, 2, 0, 0]]), np.zeros(1, np.int64)
        )
