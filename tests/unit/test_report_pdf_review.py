"""Layout faults found reviewing a real 200-clinician report as a board would read it."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
from pypdf import PdfReader
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Line

from fit_service.adapters.report_pdf import MonthlyReportPdf
from fit_service.domain.monthly_report import Estimate, MetricGroup
from tests.unit.test_report_renderers import group, make_report


@pytest.fixture(scope="module")
def renderer() -> MonthlyReportPdf:
    return MonthlyReportPdf()


def _pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def _text_at(data: bytes, page: int, size: float) -> list[tuple[str, float, float]]:
    """(text, x, y) of every string drawn in ``size`` points on page ``page``."""
    found: list[tuple[str, float, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: object, font_size: float) -> None:
        # Effective size and position: the text matrix scaled by the current matrix.
        scale = tm[3] * cm[3] if tm[3] and cm[3] else font_size
        if text.strip() and abs(font_size * abs(scale) - size) < 0.05:
            found.append((text.strip(), tm[4] * cm[0] + cm[4], tm[5] * cm[3] + cm[5]))

    PdfReader(io.BytesIO(data)).pages[page].extract_text(visitor_text=visit)
    return found


def test_headline_tiles_show_their_values_on_one_line(renderer: MonthlyReportPdf) -> None:
    """A tile whose label wraps to two lines ("Reliably improved (recovered or improved)")
    pushed its value below the others: the four headline numbers sat at two heights."""
    data = renderer.render(make_report())
    values = _text_at(data, 1, renderer.layout.size_kpi)
    assert len(values) == 4, values
    assert len({round(y, 1) for _text, _x, y in values}) == 1, values


def test_literature_references_are_not_split_across_pages(renderer: MonthlyReportPdf) -> None:
    """The methods appendix ended with the references table split: its last row (dropout,
    Swift & Greenberg) alone under a repeated header on an otherwise empty last page."""
    report = make_report()
    pages = _pages(renderer.render(report))
    heading = [i for i, p in enumerate(pages) if "Literature references printed" in p]
    assert len(heading) == 1
    page = pages[heading[0]]
    for benchmark in report.benchmarks:
        assert benchmark.source.split(" (")[0] in page, benchmark.source
    assert heading[0] == len(pages) - 1


@pytest.mark.parametrize(
    "changes",
    [
        {"clinic_name": "Riverside Counselling & Family Centre"},
        {"clinic_name": "Harbour & Hill Therapy and Family Counselling Service of the North"},
    ],
)
def test_summary_trends_do_not_spill_onto_a_page_of_their_own(
    renderer: MonthlyReportPdf, changes: dict[str, str]
) -> None:
    """A clinic name long enough to wrap the summary's lead to a third line pushed the
    "12-month trends" pair off the summary page: a page holding two small charts and nothing
    else, before the Charts page that shows the same trends full size."""
    pages = _pages(renderer.render(make_report(**changes)))
    assert "Summary" in pages[1]
    assert pages[2].split("\n")[2].startswith("Charts"), pages[2][:200]
    # The cover's contents name them too.
    trends = [i for i, p in enumerate(pages) if "12-month trends" in p]
    assert trends in ([0], [0, 1])


def test_a_long_forest_plot_starts_under_the_tables_not_on_a_fresh_page(
    renderer: MonthlyReportPdf,
) -> None:
    """With 59 clinicians the trailing-12 table ended with three rows on a page and the
    forest plot (two slices, the first a page tall) began on the next: a page nine-tenths
    blank. A plot longer than a page now fills the rest of the tables' last page first."""
    clinicians = 59
    report = make_report(
        clinicians=tuple(group(f"c{i}", f"T-{i:03d}", 12) for i in range(clinicians))
    )
    pages = _pages(renderer.render(report))
    heading = next(i for i, p in enumerate(pages) if "Reliable improvement by clinician" in p)
    last_row = f"T-{clinicians - 1:03d}"
    assert last_row in pages[heading].split("Reliable improvement by clinician")[0]
    plotted = " ".join(pages[heading:]).split("Methods")[0]
    # Every clinician once in the plot, with its figure and n, and the axis on each page.
    for i in range(clinicians):
        assert len(re.findall(rf"T-{i:03d} [\d.]+% \(n=", plotted)) == 1, i
    for page in pages[heading:]:
        if "Methods" in page:
            break
        assert re.search(r"(?<![\d.])75%", page)


def test_an_age_band_label_breaks_before_its_parenthesis(renderer: MonthlyReportPdf) -> None:
    """The age-band column is narrow: "Children (6 to 12)" was broken as "Children (6 to" over
    "12)", the age range cut in two. A label that needs two lines breaks before "(" when
    the parenthesis then fits on a line; one that fits stays on one line."""
    report = make_report(
        age_bands=(
            group("child", "Children (6 to 12)", 5),
            group("adolescent", "Adolescents (13 to 17)", 5),
            group("adult", "Adults (18+)", 25),
        )
    )
    text = "\n".join(_pages(renderer.render(report)))
    assert "(6 to\n12)" not in text
    assert "Children\n(6 to 12)" in text
    assert "Adolescents\n(13 to 17)" in text
    assert "Adults (18+)" in text


def test_a_too_few_tile_reads_on_the_line_of_the_other_values(
    renderer: MonthlyReportPdf,
) -> None:
    """A small clinic's (or a clinician's) tiles mix "too few (n=6)" with numbers: the small
    grey text hung at the top of its row, above the line the large numbers stand on."""
    layout = renderer.layout
    data = renderer.render(make_report(overall=group("clinic", "Whole clinic", 3)))
    numbers = _text_at(data, 1, layout.size_kpi)
    too_few = [t for t in _text_at(data, 1, layout.size_body) if t[0].startswith("too few")]
    assert numbers
    assert too_few
    assert {round(y, 1) for *_t, y in numbers + too_few} == {round(numbers[0][2], 1)}


def _lines_in(node: object) -> list[object]:
    found = []
    for child in getattr(node, "contents", []):
        if isinstance(child, Line):
            found.append(child)
        found += _lines_in(child)
    return found


@pytest.mark.parametrize("which", ["recovery", "sessions"])
@pytest.mark.parametrize("small", [True, False])
def test_trend_points_carry_their_intervals(
    renderer: MonthlyReportPdf, which: str, small: bool
) -> None:
    """The report says the interval, not the point, is the honest figure, yet its trend
    charts drew bare monthly points: month-to-month wiggles of a small clinic (n=13) read as
    changes. Each month's point now has its 95% interval, and the axis holds the intervals."""
    report = make_report()
    drawing = renderer._trend_chart(report, which, small=small)
    chart = next(c for c in drawing.contents if isinstance(c, HorizontalLineChart))
    group = chart.draw()
    caps = [
        line
        for line in _lines_in(group)
        if line.strokeColor == renderer.layout.interval_colour and line.y1 == line.y2
    ]
    months = list(report.overall.trend)
    assert len(caps) == 2 * len(months)
    highs = [
        100 * p.recovery.ci[1] if which == "recovery" else p.mean_sessions.ci_high for p in months
    ]
    assert chart.valueAxis.valueMax >= max(highs)


def test_a_topic_table_of_all_figures_is_not_split_across_pages(
    renderer: MonthlyReportPdf,
) -> None:
    """The "Endings and dropout" table (six rows) was split two rows to four over a page
    break, its header repeated: the dropout rate on one page, its unilateral split on the
    next."""
    report = make_report()
    pages = _pages(renderer.render(report))
    for topic in MetricGroup:
        header = f"{topic.value} {report.period_label} Trailing 12 months"
        holding = [i for i, p in enumerate(pages) if header in " ".join(p.split())]
        assert len(holding) == 1, (topic.value, holding)


def test_an_interval_below_the_axis_is_cut_at_it(renderer: MonthlyReportPdf) -> None:
    """Nine one-session episodes and one of 40: the mean's t-interval runs to about -3.9
    sessions, below the axis at 0; its bar is cut at the axis (no cap there) instead of
    hanging into the month labels."""
    report = make_report()
    skewed = Estimate(value=4.9, n=10, ci_low=-3.9, ci_high=13.7)
    trend = tuple(
        dataclasses.replace(point, mean_sessions=skewed) if index == 3 else point
        for index, point in enumerate(report.overall.trend)
    )
    report = dataclasses.replace(report, overall=dataclasses.replace(report.overall, trend=trend))
    drawing = renderer._trend_chart(report, "sessions", small=False)
    chart = next(c for c in drawing.contents if isinstance(c, HorizontalLineChart))
    group = chart.draw()
    axis_y = chart.valueAxis.scale(0)
    bars = [
        line for line in _lines_in(group) if line.strokeColor == renderer.layout.interval_colour
    ]
    assert bars
    assert min(min(line.y1, line.y2) for line in bars) >= axis_y - 1e-6
