"""The sessions-per-episode chart reads true although its bins differ in width.

:data:`SESSION_BINS` are 1, 2, 3, 4, 5, 6-10, 11-20 and 21+. Drawn as equal-width bars of their
shares, 11-20 stood tallest while it holds the fewest episodes per session count.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from reportlab.graphics.shapes import Rect

from fit_service.adapters.report_pdf import MonthlyReportPdf
from fit_service.adapters.report_tabular import to_json_dict
from fit_service.domain.monthly_report import SESSION_BINS, GroupReport, SessionStats
from tests.unit.test_report_renderers import figures, make_report, pdf_text


@pytest.fixture(scope="module")
def renderer() -> MonthlyReportPdf:
    return MonthlyReportPdf()


def with_sessions(counts: list[int]) -> GroupReport:
    figures_ = replace(
        figures(12), sessions=SessionStats.from_episodes(counts, [7 * c for c in counts])
    )
    return GroupReport("clinic", "Whole clinic", figures_, figures_)


#: Episodes of 1 to 40 sessions: every bin holds some, the open-ended one too.
SESSIONS = [1, 1, 2, 3, 3, 4, 5, 6, 7, 7, 8, 9, 10, 11, 12, 14, 16, 20, 25, 40]


def test_session_bins_are_drawn_as_wide_as_they_span(renderer: MonthlyReportPdf) -> None:
    """The bins are 1, 2, 3, 4, 5, 6-10, 11-20, 21+: as equal-width bars of their shares,
    11-20 stood tallest while it holds the fewest episodes per session count. Each bar now
    spans its bin's session counts, its area its share; the open-ended bin is not drawn."""
    overall = with_sessions(SESSIONS)
    drawing = renderer._distribution_chart(overall, 10, "May 2024")
    layout = renderer.layout
    legend = drawing.height - 12
    filled = [r for r in drawing.contents if isinstance(r, Rect) and r.y < legend]
    trailing = [r for r in filled if r.fillColor == layout.secondary]
    month = [r for r in filled if r.fillColor is None and r.strokeColor == layout.primary]
    drawn = [(low, high) for _label, low, high in SESSION_BINS if high is not None]
    assert len(trailing) == len(month) == len(drawn) == len(SESSION_BINS) - 1
    counts = overall.trailing_12.sessions.histogram[: len(drawn)]
    hairline = 2 * 0.6  # between neighbouring bars
    spans = [bar.width + hairline for bar in trailing]
    unit = spans[0]  # bin "1" spans one session count
    assert spans == pytest.approx([unit * (high - low + 1) for low, high in drawn])
    # Area over share is the same for every bin: the area is the share.
    ratios = [
        span * bar.height / count for span, bar, count in zip(spans, trailing, counts, strict=True)
    ]
    assert ratios == pytest.approx([ratios[0]] * len(ratios))
    assert [(b.x, b.width, b.height) for b in month] == [(b.x, b.width, b.height) for b in trailing]


def test_the_open_ended_bin_is_named_with_its_counts(renderer: MonthlyReportPdf) -> None:
    """The note under the chart says the bins differ in width and gives the open-ended bin's
    counts, which equal the JSON's."""
    report = make_report(overall=with_sessions(SESSIONS))
    text = pdf_text(renderer.render(report))
    month = to_json_dict(report)["overall"]["month"]["sessions_bin_21_plus"]["value"]
    trailing = to_json_dict(report)["overall"]["trailing_12"]["sessions_bin_21_plus"]["value"]
    assert "Bins of unequal width: 1, 2, 3, 4 and 5 each span 1 session count" in text
    assert "6\u201310 spans 5 session counts; 11\u201320 spans 10 session counts" in text
    assert (
        f"21+ sessions, {month} closed episodes in May 2024 and {trailing} in the trailing "
        "12 months" in text
    )
    assert "a wide bin is not a peak" in text
