"""The PDF renderer's shortcuts past ReportLab lay text out exactly as ReportLab would.

``report_pdf`` skips Paragraph for plain-text table cells (``_TextCell``, whose line breaking
is ``_paragraph_lines``), builds the fragments of its long tagged paragraph without the markup
parser (``_tagged_paragraph``), writes its text operators itself (``_draw_strings``) and
memoizes ReportLab's number formatter (``_cache_fp_str``). These are only worth having if the
PDF reads and looks the same, so these tests hold them against ReportLab itself: Paragraph's
own parsing and line breaking, the text object's own operators, and the uncached formatter.
"""

from __future__ import annotations

import io
import random

import pytest
from reportlab.lib import rl_accel
from reportlab.lib.colors import Color
from reportlab.pdfgen import canvas, textobject
from reportlab.platypus import Paragraph

from fit_service.adapters import pdf_flowables, pdf_text
from fit_service.adapters.report_pdf import MonthlyReportPdf

SAMPLE = (
    "a an the ORS SRS CORS clinical cut-off (n=12, 95% CI 50.5\u201377.4) reliable change "
    "index episode 18+), dropout \u2265 \u221a Jacobson and Truax 1991; Duncan et al. 2006 "
    "severity-adjusted effect sizes allow for differences in intake"
)
WORDS = SAMPLE.split()


@pytest.fixture(scope="module")
def renderer() -> MonthlyReportPdf:
    return MonthlyReportPdf()  # registers the fonts, installs the fp_str cache


def paragraph_lines(text: str, style: object, width: float) -> list[str]:
    """The lines ReportLab's own Paragraph breaks ``text`` into at ``width``."""
    paragraph = Paragraph(pdf_flowables._esc(text), style)
    paragraph.wrap(width, 10_000)
    return [" ".join(words) for _extra, words in paragraph.blPara.lines]


@pytest.mark.parametrize("style_name", ["cell", "th", "cell_muted"])
def test_line_breaking_matches_paragraph(renderer: MonthlyReportPdf, style_name: str) -> None:
    style = renderer._styles[style_name]
    rng = random.Random(5)
    compared = 0
    for _ in range(400):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30)))
        width = rng.uniform(30, 300)
        lines = pdf_flowables._paragraph_lines(
            text, style.fontName, style.fontSize, width, style.spaceShrinkage
        )
        if lines is None:  # left to the Paragraph itself
            continue
        compared += 1
        assert list(lines) == paragraph_lines(text, style, width), (text, width)
    assert compared > 300  # the shortcut is the common case, not the exception


def test_lines_that_paragraph_would_squeeze_or_split_are_left_to_it(
    renderer: MonthlyReportPdf,
) -> None:
    style = renderer._styles["cell"]
    font, size = style.fontName, style.fontSize
    word = pdf_flowables.pdfmetrics.stringWidth("Jacobson", font, size)
    assert pdf_flowables._paragraph_lines("Jacobson", font, size, word - 1, 0.05) is None
    two = pdf_flowables.pdfmetrics.stringWidth("Jacobson Truax", font, size)
    # Fits only by shrinking its space: Paragraph draws it with a negative word spacing.
    assert pdf_flowables._paragraph_lines("Jacobson Truax", font, size, two - 0.05, 0.05) is None
    assert pdf_flowables._paragraph_lines("Jacobson  Truax", font, size, 500, 0.05) is None
    assert pdf_flowables._paragraph_lines("Jacobson Truax", font, size, two, 0.05) == (
        "Jacobson Truax",
    )


def test_text_with_entities_is_left_to_the_paragraph(renderer: MonthlyReportPdf) -> None:
    # "&" is a fragment of its own to ReportLab's parser: another line-breaking rule.
    cell = renderer._plain("Jacobson & Truax 1991")
    cell.wrap(500, 100)
    assert not cell.fast
    assert renderer._plain("Jacobson and Truax 1991").wrap(500, 100) == cell.wrap(500, 100)


def test_text_cell_falls_back_to_the_paragraph_when_it_cannot_be_sure(
    renderer: MonthlyReportPdf,
) -> None:
    layout = renderer.layout
    style = renderer._styles["cell"]
    runs = [
        ("65.0%", layout.font_bold, style.fontSize, layout.ink),
        (" ", layout.font, style.fontSize, layout.ink),
        ("(n=40, 95% CI 49.5\u201377.9)", layout.font, layout.size_tiny, layout.muted),
    ]
    markup = "<b>65.0%</b> <font size=6.4>(n=40, 95% CI 49.5\u201377.9)</font>"
    wide = pdf_flowables._TextCell(markup, style, runs, inline=True)
    assert wide.wrap(200, 100) == (200, style.leading)
    assert wide.fast
    narrow = pdf_flowables._TextCell(markup, style, runs, inline=True)
    width, height = narrow.wrap(60, 100)
    paragraph = Paragraph(markup, style)
    assert not narrow.fast
    assert (width, height) == paragraph.wrap(60, 100)


def test_inline_runs_sit_side_by_side_on_one_baseline(renderer: MonthlyReportPdf) -> None:
    layout = renderer.layout
    style = renderer._styles["cell"]
    runs = [
        ("65.0%", layout.font_bold, style.fontSize, layout.ink),
        (" ", layout.font, style.fontSize, layout.ink),
        ("(n=40)", layout.font, layout.size_tiny, layout.muted),
    ]
    cell = pdf_flowables._TextCell("", style, runs, inline=True)
    cell.wrap(200, 100)
    placed = list(cell.placed(10, 20))
    bold = pdf_flowables.pdfmetrics.stringWidth("65.0%", layout.font_bold, style.fontSize)
    space = pdf_flowables.pdfmetrics.stringWidth(" ", layout.font, style.fontSize)
    assert [x for x, *_rest in placed] == [10, 10 + bold, 10 + bold + space]
    # One line: its baseline one (largest) font size below the top, like Paragraph's.
    assert {y for _x, y, *_rest in placed} == {20 + style.leading - style.fontSize}


def test_cached_fp_str_formats_like_reportlabs_own(renderer: MonthlyReportPdf) -> None:
    original = rl_accel._py_funcs.get("fp_str") or rl_accel._c_funcs["fp_str"]
    assert textobject.fp_str is rl_accel.fp_str is canvas.fp_str
    assert textobject.fp_str is not original
    rng = random.Random(7)
    values = [0, -0.0, 1e-8, 1, -1, 0.5, 2.22, 841.89, 1e6, 123456.789, -0.000123]
    values += [rng.uniform(-1000, 1000) for _ in range(2000)]
    values += [round(rng.uniform(0, 600), rng.randint(0, 4)) for _ in range(2000)]
    for value in values:
        assert textobject.fp_str(value) == original(value)
        assert textobject.fp_str(value, value / 3) == original(value, value / 3)
    assert textobject.fp_str([0.25, 0.5]) == original([0.25, 0.5])  # unhashable: uncached


def frag_fields(paragraph: Paragraph) -> list[dict[str, object]]:
    return [dict(vars(frag)) for frag in paragraph.frags]


@pytest.mark.parametrize(
    "label", ["T-001", "A&B <x>", "&&", "<", "Ünïcode label", "a  b", " lead", ""]
)
def test_tagged_paragraph_has_the_fragments_the_parser_makes(
    renderer: MonthlyReportPdf, label: str
) -> None:
    style = renderer._styles["body"]
    muted = f"font color='{renderer.layout.muted.hexval()}'"
    runs = [("Episodes closed in <May> & June, by clinician:", "i")]
    for index in range(3):
        runs += [("; " if index else " ", ""), (f"{label}{index}\xa0", ""), (f"({index})", muted)]
    built = pdf_flowables._tagged_paragraph(runs, style)
    parsed = Paragraph(built.text, style)
    assert frag_fields(built) == frag_fields(parsed)
    for paragraph in (built, parsed):
        paragraph.wrap(120, 10_000)
    assert line_fields(built) == line_fields(parsed)


def line_fields(paragraph: Paragraph) -> list[tuple[object, ...]]:
    """Each line as Paragraph will draw it: its room left and its fragments."""
    return [
        (line.extraSpace, [(w.text, w.fontName, w.textColor) for w in line.words])
        for line in paragraph.blPara.lines
    ]


def test_text_operators_are_reportlabs_own(renderer: MonthlyReportPdf) -> None:
    """``_draw_strings`` writes what the text object's own methods write."""
    layout = renderer.layout
    faded = Color(0.2, 0.4, 0.6, alpha=0.5)
    strings = [
        (10.5, 700.25, "plain", layout.font, 7.4, layout.ink),
        (20, 690, "(escaped) \\ back\u2265\u221a", layout.font_bold, 7.4, layout.muted),
        (30, 680, "same colour", layout.font_bold, 6.4, layout.muted),
        (40, 670, "transparent", layout.font, 6.4, faded),
        (50, 660, "ink again", layout.font, 6.4, layout.ink),
        (60, 650, "plain", layout.font, 7.4, layout.ink),
        # New strings of characters placed before (_Subset0), a no-break space, nothing.
        (70, 640, "lain pa\xa0in", layout.font, 7.4, layout.ink),
        (80, 630, "(\u2265 \\)", layout.font_bold, 7.4, layout.ink),
        (90, 620, "", layout.font, 7.4, layout.ink),
    ]

    def page(fast: bool) -> list[str]:
        pdf = pdf_flowables._NumberedCanvas(
            io.BytesIO(), pdf_date="D:20260101000000+00'00'", footer_left="", layout=layout
        )
        if fast:  # a _MemoText, its strings formatted by _format_ttf (or _Subset0)
            pdf_text._draw_strings(pdf, strings)
            assert pdf.document_text.memo
            assert pdf.document_text.subset0
        else:
            text = pdf.beginText()
            pdf_text._draw_strings_slowly(text, strings)
            pdf.drawText(text)
        return pdf._code

    quick = page(fast=True)
    assert quick == page(fast=False)
    assert any(" gs " in line for line in quick)  # the alpha went through
