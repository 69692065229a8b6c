"""The clinicians' month in the PDF: a row only where there is an outcome figure to show.

A month is short for one clinician's caseload: in a 200-clinician clinic the month table was
ten pages of "too few (n=1)". A clinician whose every month outcome figure rests on fewer
than ``min_n`` episodes is now named in a list under the table, with the episodes they
closed, instead of given such a row; the trailing-12 table still has every clinician.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from typing import Any

import pytest
from pypdf import PdfReader

from fit_service.adapters.report_pdf import MonthlyReportPdf
from fit_service.adapters.report_tabular import to_json_dict
from fit_service.domain.monthly_report import (
    GroupFigures,
    GroupReport,
    MonthlyReport,
)
from tests.unit.test_report_renderers import CLINICIAN_COLUMNS, group, make_report, pdf_text

COLUMNS = CLINICIAN_COLUMNS


@pytest.fixture(scope="module")
def renderer() -> MonthlyReportPdf:
    return MonthlyReportPdf()


def few(key: str, label: str) -> GroupReport:
    """A clinician with 8 episodes closed in the month (every outcome figure 'too few') but
    36 sessions with an SRS (the SRS rate shown), and a full trailing 12 months."""
    return group(key, label, 2, trailing_scale=12)


def idle(key: str, label: str) -> GroupReport:
    """A clinician with nothing in the month at all ('no data') and a trailing 12 months."""
    return replace(group(key, label, 1, trailing_scale=12), month=GroupFigures.empty())


def mixed_report() -> MonthlyReport:
    return make_report(
        clinicians=(
            group("c-1", "T-01", 12),
            few("c-2", "T-02"),
            idle("c-3", "T-03"),
            group("c-4", "T-04", 3),  # 12 closed: dropout shown, the rest too few
            few("c-5", "T-05"),
        )
    )


def row(cells: dict[str, Any], label: str) -> str:
    """A table row as the PDF's text reads it: the label, then each column's JSON display."""
    return " ".join([label, *(re.sub(r"\s+", " ", cells[key]["display"]) for key in COLUMNS)])


def sections(text: str) -> tuple[str, str]:
    """The clinicians section's month part and trailing-12 part."""
    heading = re.search(r"Clinicians (Listed by label|Your own figures)", text)
    assert heading is not None
    clinicians = text[heading.start() :]
    month, trailing = clinicians.split("Trailing 12 months (", 1)
    return month, trailing.split("Reliable improvement by clinician")[0]


def test_a_month_row_only_for_clinicians_with_an_outcome_figure(
    renderer: MonthlyReportPdf,
) -> None:
    """Clinicians with a month outcome figure have their row, every cell the JSON's display;
    the others are named under it with the episodes they closed (the JSON's count), and the
    sentence says why and what the threshold is."""
    report = mixed_report()
    data = to_json_dict(report)
    month, _trailing = sections(pdf_text(renderer.render(report)))
    table, listed = month.split("have no row", 1)
    clinicians = {c["label"]: c["month"] for c in data["clinicians"]}
    for label in ("T-01", "T-04"):
        assert row(clinicians[label], label) in table, label
    for label in ("T-02", "T-03", "T-05"):
        assert label not in table, label
        closed = clinicians[label]["episodes_closed"]["display"]
        assert f"{label} ({closed})" in listed, label
    assert "T-03 (0)" in listed
    assert "3 of 5 clinicians have no row for May 2024" in month
    assert "rests on fewer than 10 episodes" in month
    assert "sessions with SRS below 36 among them, are in the JSON and CSV exports" in month


def test_every_clinician_keeps_a_complete_trailing_12_row(renderer: MonthlyReportPdf) -> None:
    """The trailing-12 table (the comparison with intervals) has a row for every clinician,
    with or without a month row, each cell the JSON's display."""
    report = mixed_report()
    data = to_json_dict(report)
    _month, trailing = sections(pdf_text(renderer.render(report)))
    for clinician in data["clinicians"]:
        assert row(clinician["trailing_12"], clinician["label"]) in trailing


def test_no_clinician_with_a_month_figure_gets_a_sentence_not_an_empty_table(
    renderer: MonthlyReportPdf,
) -> None:
    """When no clinician has a month outcome figure there is no month table at all (its
    header would stand over nothing), only the sentence and the list."""
    report = make_report(clinicians=(few("c-2", "T-02"), idle("c-3", "T-03")))
    month, _trailing = sections(pdf_text(renderer.render(report)))
    assert "No clinician has a row for May 2024" in month
    assert "Closed episodes" not in month  # the tables' column header
    assert "T-02 (8); T-03 (0)" in month


def test_a_large_clinic_lists_its_month_in_a_few_lines(renderer: MonthlyReportPdf) -> None:
    """150 clinicians without a month outcome figure: the list and the start of the
    trailing-12 table share the Clinicians page (it was seven pages of 'too few' rows), and
    every clinician is named in the list and has a trailing-12 row."""
    count = 150
    report = make_report(clinicians=tuple(few(f"c{i}", f"T-{i:03d}") for i in range(count)))
    data = renderer.render(report)
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]
    first = next(i for i, page in enumerate(pages) if "Listed by label" in page)
    assert "Trailing 12 months (" in pages[first]
    month, trailing = sections(pdf_text(data))
    for i in range(count):
        assert f"T-{i:03d} (8)" in month, i
        assert len(re.findall(rf"T-{i:03d} 48 ", trailing)) == 1, i


def test_a_clinicians_own_page_keeps_its_month_row(renderer: MonthlyReportPdf) -> None:
    """On a clinician's own page the month row stays, 'too few' cells and all: it is the only
    row there, and the clinician sees their own figures."""
    view = mixed_report().for_clinician("c-2")
    text = pdf_text(renderer.render(view))
    own = to_json_dict(view)["clinicians"][0]
    month, trailing = sections(text)
    assert row(own["month"], "T-02") in month
    assert row(own["trailing_12"], "T-02") in trailing
    assert "no row" not in text


def test_the_new_layout_is_byte_identical_for_the_same_report(
    renderer: MonthlyReportPdf,
) -> None:
    """Rendering the report with a month list twice, with a fresh renderer, gives the same
    bytes."""
    report = mixed_report()
    assert renderer.render(report) == MonthlyReportPdf().render(report)
