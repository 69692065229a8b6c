"""Layout faults found by rendering real reports: text that left its cell or its page."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader
from reportlab.pdfbase import pdfmetrics

from fit_service.adapters import pdf_flowables, pdf_layout
from fit_service.adapters.report_pdf import MonthlyReportPdf
from tests.unit.test_report_renderers import group, make_report

#: An EHR clinician id without spaces, wider than the clinician column of the group tables.
LONG_ID = "3f2a9c4e-7b1d-4e0a-9c55-1d2e3f4a5b6c"


@pytest.fixture(scope="module")
def renderer() -> MonthlyReportPdf:
    return MonthlyReportPdf()


def test_a_long_clinician_id_wraps_inside_its_table_cell(renderer: MonthlyReportPdf) -> None:
    """The clinician column of the group tables is 15% of the frame: an id without spaces
    wider than that is cut between characters instead of running over the next column."""
    layout = renderer.layout
    column = layout.frame_width * 0.15 - 2 * pdf_flowables._LinesTable._PAD_X
    cell = renderer._text_cell(LONG_ID, bold=True)
    _width, height = cell.wrap(column, 0)
    lines = [line for line, *_rest in cell._lines]
    size = layout.size_small + 0.4
    assert len(lines) > 1
    assert height == pytest.approx(len(lines) * size * 1.3)
    assert "".join(lines) == LONG_ID
    for line in lines:
        assert pdfmetrics.stringWidth(line, layout.font_bold, size) <= column


def test_cells_that_fit_are_split_as_before() -> None:
    font, size = pdf_layout.LAYOUT.font, 7.4
    assert pdf_flowables._split_lines("too few (n=3)", font, size, 200) == ("too few (n=3)",)
    assert pdf_flowables._split_lines("T-001", font, size, 200) == ("T-001",)
    # A single character wider than the cell still gets a line (nothing is dropped).
    assert pdf_flowables._split_lines("W", font, size, 1) == ("W",)


def test_line_breaks_in_a_name_are_spaces_on_the_canvas(renderer: MonthlyReportPdf) -> None:
    """Canvas strings (cover, page header, forest-plot labels) cannot draw a line break:
    it showed as a missing-glyph box."""
    assert pdf_flowables._fit_text("A,B\nnext", pdf_layout.LAYOUT.font, 7, 500) == "A,B next"
    report = make_report(
        clinic_name="Harbour\nHill",
        clinicians=(group("a\nb", "T-07\nnorth", 12),),
    )
    reader = PdfReader(io.BytesIO(renderer.render(report)))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "Harbour Hill" in text
    assert "T-07 north" in text


@pytest.mark.parametrize("clinicians", [23, 41, 56])
def test_forest_plot_heading_is_on_the_page_of_its_plot(
    renderer: MonthlyReportPdf, clinicians: int
) -> None:
    """With these caseload counts the heading used to sit alone at the foot of the tables'
    last page, the plot (whose axis reads 0% 25% 50% 75% 100%) on the next."""
    report = make_report(
        clinicians=tuple(group(f"c{i}", f"T-{i:03d}", 12) for i in range(clinicians))
    )
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(renderer.render(report))).pages]
    page = next(p for p in pages if "Reliable improvement by clinician" in p)
    assert re.search(r"(?<![\d.])75%", page)


def test_clinician_view_title_names_the_clinician(renderer: MonthlyReportPdf) -> None:
    """The document title (what a viewer's title bar and a file list show) of a clinician's
    page said it was the whole clinic's report."""
    view = make_report().for_clinician("c-22")
    meta = PdfReader(io.BytesIO(renderer.render(view))).metadata
    assert meta is not None
    assert meta.title == (
        "Monthly outcome and alliance report: Harbour & Hill Therapy, May 2024"
        " \u2013 clinician view: T-22"
    )
    clinic = PdfReader(io.BytesIO(renderer.render(make_report()))).metadata
    assert clinic is not None
    assert "clinician view" not in clinic.title


def test_forest_plot_keeps_labels_that_differ_at_the_end_apart(
    renderer: MonthlyReportPdf,
) -> None:
    """Forest-plot labels are cut to 84 pt: with the ellipsis at the end, two clinicians
    whose EHR ids differ only in the last digits were printed as the same label."""
    ids = ("clinician-north-region-0001", "clinician-north-region-0002")
    report = make_report(clinicians=tuple(group(key, key, 12) for key in ids))
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(renderer.render(report))).pages]
    plot = next(p for p in pages if "Reliable improvement by clinician" in p)
    shown = [line for line in plot.splitlines() if "\u2026" in line]
    assert len(shown) == 2
    assert "0001" in shown[0]
    assert "0002" in shown[1]
    size = renderer.layout.size_small
    for label in ids:
        cut = pdf_flowables._fit_label(label, renderer.layout.font, size, 84)
        assert pdfmetrics.stringWidth(cut, renderer.layout.font, size) <= 84


def test_greek_cyrillic_and_extended_latin_names_print_as_text(renderer: MonthlyReportPdf) -> None:
    """A clinic or clinician named in Greek, Cyrillic or extended Latin prints as those
    letters (Vera drew missing-glyph boxes, and the PDF's text no longer matched the JSON)."""
    clinic, clinician = "Клиника Åsa — Ψυχή ✓", "Łódź-Ω7"
    face = pdfmetrics.getFont(renderer.layout.font).face
    for char in clinic + clinician:
        assert ord(char) in face.charToGlyph, char
    report = make_report(clinic_name=clinic, clinicians=(group("c-1", clinician, 12),))
    reader = PdfReader(io.BytesIO(renderer.render(report)))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert clinic in text
    assert clinician in text
