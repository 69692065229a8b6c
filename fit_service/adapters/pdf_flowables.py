"""ReportLab building blocks of the PDF report: flowables that fit what the page has room for,
draw charts straight onto the canvas, and lay plain-text table cells out without Paragraph
where they provably lay out as it would; and the text helpers they measure with.

The renderer's own parts (:mod:`fit_service.adapters.report_pdf` is their one user), hence
the leading underscores.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Group, Line
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Paragraph,
    Table,
)
from reportlab.platypus.paragraph import cleanBlockQuotedText

from fit_service.adapters.pdf_layout import Colour, Layout
from fit_service.adapters.pdf_text import _DocumentText, _draw_placed, _draw_strings, _Placed
from fit_service.domain.monthly_report import (
    GroupFigures,
    GroupReport,
    Metric,
    OutcomeCounts,
    month_label,
)


class _NumberedCanvas(Canvas):
    """A canvas that holds pages back until the end, to print "Page X of Y" on each.

    The creation date is fixed to the report's ``generated_at`` via the date formatter; in
    invariant mode everything else ReportLab would take from the clock is fixed too.
    """

    def __init__(
        self,
        *args: Any,
        pdf_date: str,
        footer_left: str,
        layout: Layout,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []
        #: What this document's text objects remember (see :func:`_draw_strings`).
        self.document_text = _DocumentText()
        self._footer_left = footer_left
        self._layout = layout
        self.setDateFormatter(lambda *_ignored: pdf_date)

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self._footer(number, total)
            super().showPage()
        super().save()

    def _footer(self, number: int, total: int) -> None:
        layout = self._layout
        y = layout.margin_bottom - 9 * mm
        self.saveState()
        self.setStrokeColor(layout.rule)
        self.setLineWidth(0.5)
        self.line(layout.margin_x, y + 9, layout.page_size[0] - layout.margin_x, y + 9)
        self.setFont(layout.font, layout.size_tiny)
        self.setFillColor(layout.muted)
        self.drawString(layout.margin_x, y, self._footer_left)
        self.drawRightString(layout.page_size[0] - layout.margin_x, y, f"Page {number} of {total}")
        self.restoreState()


class _IfRoom(Flowable):
    """``content`` where the frame has room left for all of it, else ``fallback`` (short):
    for something the page can do without, which would otherwise start a page of its own.
    Never split."""

    def __init__(self, content: list[Flowable], fallback: list[Flowable]) -> None:
        super().__init__()
        self._content, self._fallback = content, fallback
        self._shown: list[Flowable] = fallback

    @staticmethod
    def _height(flows: list[Flowable], width: float) -> float:
        return sum(f.getSpaceBefore() + f.wrap(width, 1e6)[1] + f.getSpaceAfter() for f in flows)

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        height = self._height(self._content, availWidth)
        if height <= availHeight:
            self._shown = self._content
        else:
            self._shown = self._fallback
            height = self._height(self._fallback, availWidth)
        self.width, self.height = availWidth, height
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:
        return []

    def draw(self) -> None:
        y = self.height
        for flowable in self._shown:
            y -= flowable.getSpaceBefore()
            _width, height = flowable.wrap(self.width, 1e6)
            y -= height
            flowable.drawOn(self.canv, 0, y)
            y -= flowable.getSpaceAfter()


#: The fewest forest-plot rows worth starting at the foot of a page.
_FOREST_MIN_ROWS = 6


def _forest_height(rows: int, layout: Layout) -> float:
    """Height of a forest plot (:meth:`MonthlyReportPdf._forest_plot`) of ``rows`` rows: a
    row each, one more above for the clinic's label, and the axis below."""
    return layout.forest_row_height * (rows + 1) + 22


class _SlicedPlot(Flowable):
    """A forest plot of many groups, split between pages where the frame ends: each part a
    plot of its own (axis, clinic line) of as many rows as fit, at most
    ``forest_rows_per_plot``, at least :data:`_FOREST_MIN_ROWS` (or all that are left)."""

    def __init__(
        self,
        plot: Callable[[Sequence[GroupReport]], _Sketch],
        groups: Sequence[GroupReport],
        layout: Layout,
    ) -> None:
        super().__init__()
        self._plot, self._groups, self._layout = plot, groups, layout

    def _slices(self) -> list[Sequence[GroupReport]]:
        per = self._layout.forest_rows_per_plot
        return [self._groups[i : i + per] for i in range(0, len(self._groups), per)]

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        self.width = availWidth
        self.height = sum(_forest_height(len(part), self._layout) for part in self._slices())
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:
        layout = self._layout
        fit = int((availHeight - _forest_height(0, layout)) // layout.forest_row_height)
        rows = min(fit, layout.forest_rows_per_plot, len(self._groups))
        if rows < min(_FOREST_MIN_ROWS, len(self._groups)):
            return []
        first = self._plot(self._groups[:rows])
        if rows == len(self._groups):
            return [first]
        return [first, _SlicedPlot(self._plot, self._groups[rows:], layout)]

    def draw(self) -> None:
        y = self.height
        for part in self._slices():
            sketch = self._plot(part)
            y -= sketch.height
            sketch.drawOn(self.canv, 0, y)


class _Sketch(Flowable):
    """A fixed-size picture of lines, circles and strings drawn straight onto the canvas:
    what a graphics ``Drawing`` of plain shapes shows, without its renderer's per-shape state
    tracking. Shapes are drawn in the order added, then every string, in the order added, in
    one text object (strings are placed as the Drawing renderer places them: ``textAnchor``
    "start", "middle" or "end")."""

    def __init__(self, width: float, height: float) -> None:
        super().__init__()
        self.width, self.height = width, height
        self._shapes: list[tuple[Any, ...]] = []
        self._strings: list[tuple[float, float, str, str, float, Colour]] = []

    def line(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        colour: Colour,
        width: float,
        *,
        dash: tuple[float, ...] | None = None,
    ) -> None:
        self._shapes.append(("line", (x1, y1, x2, y2), colour, width, dash))

    def circle(
        self, x: float, y: float, r: float, fill: Colour, stroke: Colour, width: float
    ) -> None:
        self._shapes.append(("circle", (x, y, r), stroke, width, None, fill))

    def string(
        self,
        x: float,
        y: float,
        text: str,
        font: str,
        size: float,
        colour: Colour,
        anchor: str = "start",
    ) -> None:
        if anchor != "start":
            shift = pdfmetrics.stringWidth(text, font, size)
            x -= shift if anchor == "end" else shift * 0.5
        self._strings.append((x, y, text, font, size, colour))

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        canvas = self.canv
        # The stroke's colour, width and dash each set only where it changes: a plot's rows
        # change the width three times each and nothing else (a colour and a dash operator
        # each time were a third of the time spent drawing the plots).
        colour_now: Colour | None = None
        width_now: float | None = None
        dash_now: tuple[float, ...] | bool | None = False  # False: not set yet
        for kind, args, colour, width, dash, *fill in self._shapes:
            if colour is not colour_now:
                canvas.setStrokeColor(colour)
                colour_now = colour
            if width != width_now:
                canvas.setLineWidth(width)
                width_now = width
            if dash != dash_now:
                canvas.setDash(list(dash) if dash else [])
                dash_now = dash
            if kind == "line":
                canvas.line(*args)
            else:
                canvas.setFillColor(fill[0])
                canvas.circle(*args, stroke=1, fill=1)
        _draw_strings(canvas, self._strings)


class _LinesTable(Table):
    """A :class:`Table` (every table of the report body) whose plain-text cells, :class:`_Lines`
    and :class:`_TextCell`, are laid out and drawn cheaply.

    * Their text is drawn after the table's backgrounds and rules, as one text object per
      run of such cells (a font or colour operator only where it changes), not one translated
      text object per cell and line. Every line lands where the cell's own ``drawOn`` (and
      the Paragraph it stands for) would put it; cells are drawn in Table's order.
    * When every row after the header is :class:`_Lines` cells (the per-group tables:
      thousands of cells in a large clinic), their row heights can be computed once, up front
      (:meth:`heights_of`, the same sums ReportLab's ``_calc_height`` makes), instead of
      wrapping every cell again each time the table is split across a page.

    Other cells (a :class:`_TextCell` that had to be a Paragraph after all, a Paragraph) are
    drawn by :class:`Table`, in their turn. Assumes the style of :meth:`MonthlyReportPdf._table`:
    cells aligned top left, the same paddings everywhere, no spans.
    """

    #: The style's paddings (``MonthlyReportPdf._table``).
    _PAD_X, _PAD_Y = 4, 3

    @classmethod
    def heights_of(cls, rows: Sequence[Sequence[_Lines]], widths: Sequence[float]) -> list[float]:
        """Each row's height as ``Table._calc_height`` would compute it: the tallest cell
        wrapped to the column's width less the paddings, plus the paddings."""
        pad_x, pad_y = cls._PAD_X, cls._PAD_Y
        return [
            max(
                cell.wrap(width - pad_x - pad_x, 0)[1]
                for cell, width in zip(row, widths, strict=True)
            )
            + (pad_y + pad_y)
            for row in rows
        ]

    def draw(self) -> None:
        # Table.draw paints the backgrounds and rules and hands each cell to _drawCell, which
        # only notes it down; the cells are then drawn here, in Table's order (so text is
        # extracted in reading order), consecutive plain-text cells as one text object.
        self._pending: list[tuple[float, float, _Lines | _TextCell] | tuple[Any, ...]] = []
        super().draw()
        canvas = self.canv
        canvas.saveState()  # the text objects' colours must not leak into what follows
        strings: list[_Placed] = []
        for item in self._pending:
            if len(item) == 3:
                x, y, cell = item
                strings += cell.placed(x, y)
                continue
            if strings:
                _draw_strings(canvas, strings)
                strings = []
            super()._drawCell(*item)
        if strings:
            _draw_strings(canvas, strings)
        canvas.restoreState()

    def _drawCell(
        self, cellval: Any, cellstyle: Any, pos: tuple[float, float], size: tuple[float, float]
    ) -> None:
        cell = cellval[0] if isinstance(cellval, list | tuple) and len(cellval) == 1 else cellval
        if isinstance(cell, _Lines | _TextCell):
            (colpos, rowpos), (colwidth, rowheight) = pos, size
            # Table._drawCell for one flowable aligned top left (no space before or after).
            _width, height = cell.wrap(colwidth - cellstyle.leftPadding - cellstyle.rightPadding, 0)
            if cell.fast:
                y = rowpos + rowheight - cellstyle.topPadding
                self._pending.append((colpos + cellstyle.leftPadding, y - height, cell))
                return
        self._pending.append((cellval, cellstyle, pos, size))


class _Lines(Flowable):
    """Runs of plain text, each in its own font, size and colour, each starting a new line and
    wrapped at spaces to the cell's width: a table cell without Paragraph's mini-HTML parsing
    and re-flowing, which dominated rendering a large clinic's per-clinician tables. Laid out
    like the "cell" Paragraph it replaces (same leading, first baseline one font size down).
    """

    def __init__(self, runs: Sequence[tuple[str, str, float, Colour]], leading: float) -> None:
        super().__init__()
        self._runs = runs
        self._leading = leading
        self._lines: list[tuple[str, str, float, Colour]] = []
        self._wrapped_at: float | None = None

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        if availWidth != self._wrapped_at:
            self._lines = [
                (line, font, size, colour)
                for text, font, size, colour in self._runs
                for line in _split_lines(text, font, size, availWidth)
            ]
            self._wrapped_at = availWidth
        self.width, self.height = availWidth, self._leading * len(self._lines)
        return self.width, self.height

    #: Always laid out here (see :attr:`_TextCell.fast`).
    fast = True

    def drawOn(self, canvas: Canvas, x: float, y: float, _sW: float = 0) -> None:
        """All lines in one text object placed at the cell's page coordinates.

        Flowable.drawOn would translate the canvas (q/cm/Q) and ``draw`` would open one text
        object per line, each re-selecting the font: most of the time spent drawing a large
        clinic's tables. The lines land where they did before, so the text reads the same.
        """
        _draw_placed(canvas, self.placed(self._hAlignAdjust(x, _sW), y))

    def placed(self, x: float, y: float) -> Iterator[_Placed]:
        """Each wrapped line at its baseline, when the cell's bottom left is at (x, y)."""
        if not self._lines:
            return
        top = y + self.height - self._lines[0][2]
        for index, (line, font, size, colour) in enumerate(self._lines):
            yield x, top - index * self._leading, line, font, size, colour

    def draw(self) -> None:
        self.drawOn(self.canv, 0, 0)


class _TextCell(Flowable):
    """A table cell that stands for ``Paragraph(markup, style)`` and, whenever it can tell
    that its plain-text runs lay out exactly as that Paragraph would at the width it is given,
    skips the Paragraph: no mini-HTML parsing, no fragment-by-fragment line breaking, and its
    strings join the table's single text object (:class:`_LinesTable`). Paragraph cells were
    the most expensive part of drawing the summary, all-figures and methods tables.

    ``runs`` are (text, font, size, colour), the fragments the markup makes, and say what the
    Paragraph draws:

    * one run: the text in one style, broken into lines as ReportLab breaks a single-fragment
      Paragraph (:func:`_paragraph_lines`);
    * several runs, ``inline=False``: each run on a line of its own (``<br/>`` between them),
      used only when each fits on its line, so no line breaking is involved;
    * several runs, ``inline=True``: one after another on one line (a run may be a space: the
      space between two differently styled words is drawn in its own fragment's font), used
      only when all of them fit on the line.

    Otherwise, say a label wider than its column or a word that ReportLab would split, the
    cell is the Paragraph (built on demand) and is drawn as one. Every line is placed where
    the Paragraph places it: left aligned, the style's leading, the first baseline the
    largest font size below the top.
    """

    #: Room left at a line's end before a multi-run line counts as fitting: ReportLab measures
    #: the space after a word in that word's font (up to a quarter point wider than the drawn
    #: space), and sums widths in another order than ``stringWidth``.
    _FIT_MARGIN = 1.0

    def __init__(
        self,
        markup: str,
        style: ParagraphStyle,
        runs: Sequence[tuple[str, str, float, Colour]],
        *,
        inline: bool = False,
    ) -> None:
        super().__init__()
        self._markup, self._style, self._runs, self._inline = markup, style, runs, inline
        self._leading: float = style.leading
        self.spaceBefore, self.spaceAfter = style.spaceBefore, style.spaceAfter
        self._layout: list[tuple[float, int, str, str, float, Colour]] | None = None
        self._paragraph: Paragraph | None = None
        self._wrapped_at: float | None = None

    @property
    def fast(self) -> bool:
        """Laid out here (True) or by the Paragraph (False), at the last width wrapped to."""
        return self._layout is not None

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        if availWidth != self._wrapped_at:
            self._layout = self._lay_out(availWidth)
            self._wrapped_at = availWidth
        if self._layout is None:
            if self._paragraph is None:
                self._paragraph = Paragraph(self._markup, self._style)
                self._paragraph_at: float | None = None
            # A table wraps each cell several times at the same width; Paragraph would break
            # its lines afresh every time (its line breaking does not depend on the height).
            if self._paragraph_at != availWidth:
                self._paragraph.wrap(availWidth, availHeight)
                self._paragraph_at = availWidth
            self.width, self.height = self._paragraph.width, self._paragraph.height
        else:
            self.width = availWidth
            self.height = self._leading * (self._layout[-1][1] + 1)
        return self.width, self.height

    def _lay_out(self, width: float) -> list[tuple[float, int, str, str, float, Colour]] | None:
        """(x offset, line number, text, font, size, colour) per string, or None when only
        the Paragraph itself would be sure to lay the runs out right."""
        runs = self._runs
        if len(runs) == 1:
            text, font, size, colour = runs[0]
            if _esc(text) != text:
                # Each entity (&amp; &lt; &gt;) is a fragment of its own to ReportLab's parser,
                # and a paragraph of several fragments breaks its lines by other rules.
                return None
            lines = _paragraph_lines(text, font, size, width, self._style.spaceShrinkage)
            if lines is None:
                return None
            return [(0.0, index, line, font, size, colour) for index, line in enumerate(lines)]
        widths = [pdfmetrics.stringWidth(text, font, size) for text, font, size, _c in runs]
        room = width - self._FIT_MARGIN
        if not self._inline:
            if max(widths) > room:
                return None
            return [(0.0, index, *run) for index, run in enumerate(runs)]
        if sum(widths) > room:
            return None
        offsets = [sum(widths[:index]) for index in range(len(runs))]
        return [(offset, 0, *run) for offset, run in zip(offsets, runs, strict=True)]

    def placed(self, x: float, y: float) -> Iterator[_Placed]:
        """Each string at its baseline, when the cell's bottom left is at (x, y)."""
        layout = self._layout
        if not layout:
            return
        # The largest size on the first line sets its baseline (Paragraph's line metrics).
        top = y + self.height - max(size for _x, line, _t, _f, size, _c in layout if line == 0)
        for dx, line, text, font, size, colour in layout:
            yield x + dx, top - line * self._leading, text, font, size, colour

    def drawOn(self, canvas: Canvas, x: float, y: float, _sW: float = 0) -> None:
        if self._paragraph is not None and self._layout is None:
            self._paragraph.drawOn(canvas, x, y, _sW)
            return
        _draw_placed(canvas, self.placed(self._hAlignAdjust(x, _sW), y))

    def draw(self) -> None:
        self.drawOn(self.canv, 0, 0)


@lru_cache(maxsize=4096)
def _paragraph_lines(
    text: str, font: str, size: float, width: float, shrinkage: float
) -> tuple[str, ...] | None:
    """The lines ReportLab's ``Paragraph.breakLines`` makes of a single-fragment, left-aligned
    paragraph ``text`` at ``width``, or None where it would do more than this replicates.

    Its rule for one fragment (``kind == 0``) with hyphenation off, the default: words are
    split at spaces and added to a line while the line's width (words plus one space between
    each) stays within ``width``, which may be exceeded by ``shrinkage`` of a space width per
    word already on the line; a word that does not fit starts the next line. The same widths
    summed in the same order, so the same decisions. None for text that Paragraph would first
    normalise (other whitespace than single spaces, soft hyphens), when a word is wider than
    the line (Paragraph splits such a word) and when a line runs over into its shrinkage
    (Paragraph squeezes its spaces). Remembered: the methods appendix and the labels are the
    same in every report of a process.
    """
    if not text or text != " ".join(text.split()) or "\xad" in text:
        return None
    space = pdfmetrics.stringWidth(" ", font, size)
    shrink = shrinkage * space
    lines: list[str] = []
    line: list[str] = []
    current = -space

    def squeezed() -> bool:
        # Paragraph draws a line that runs over (into its shrinkage) with a negative word
        # spacing: left to the Paragraph.
        return width - current <= -1e-8 and len(line) > 1

    for word in text.split(" "):
        word_width = pdfmetrics.stringWidth(word, font, size)
        new_width = current + space + word_width
        if new_width > width + shrink * len(line):
            if word_width > width:
                return None
            if line:
                if squeezed():
                    return None
                lines.append(" ".join(line))
                line, current = [word], word_width
                continue
        line.append(word)
        current = new_width
    if squeezed():
        return None
    lines.append(" ".join(line))
    return tuple(lines)


@lru_cache(maxsize=4096)
def _split_lines(text: str, font: str, size: float, width: float) -> tuple[str, ...]:
    """``simpleSplit``, remembered: a large clinic's tables repeat the same few cell texts
    ("too few (n=3)", "0", column widths) thousands of times, and measuring each word's width
    is the costly part. A pure function of its arguments (fonts are registered once).

    ``simpleSplit`` leaves a word wider than the cell on a line of its own, running into the
    next column; such a line (a long EHR clinician id, say) is cut between characters, as
    Paragraph cuts a long word, so it stays inside its cell."""
    lines: list[str] = []
    for line in simpleSplit(text, font, size, width):
        # The tolerance keeps a line that simpleSplit fitted (its sums in another order)
        # as it was.
        while len(line) > 1 and pdfmetrics.stringWidth(line, font, size) > width + 1e-6:
            cut = len(line) - 1
            while cut > 1 and pdfmetrics.stringWidth(line[:cut], font, size) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
        lines.append(line)
    return tuple(lines)


#: The characters :func:`_markup` writes as entities: the parser makes each its own fragment.
_ENTITY_SPLIT = re.compile("([&<>\xa0])")


def _tagged_paragraph(runs: Sequence[tuple[str, str]], style: ParagraphStyle) -> Paragraph:
    """``Paragraph(markup, style)`` for ``runs`` of (plain text, tag), the markup being each
    run escaped and wrapped in its tag (``""``: none; ``"i"``; ``"font color='#5d6878'"``),
    without ReportLab parsing that markup.

    The list of clinicians without a month row is one such paragraph, a few hundred
    differently coloured fragments long: parsing its markup (ReportLab's mini-HTML parser,
    on Python's ``html.parser``) took 6 ms of a large report's 170. The fragments are built
    as the parser builds them: each tag's style from parsing that tag once (on one
    character), the text split as the parser splits it, which is a fragment per entity and
    one per stretch of text between tags or entities. Markup the parser would first clean
    (runs of spaces, line breaks) is left to the parser.
    """
    merged: list[list[str]] = []
    for text, tag in runs:
        if merged and merged[-1][1] == tag:
            merged[-1][0] += text
        elif text:
            merged.append([text, tag])
    markup = "".join(
        f"<{tag}>{_markup(text)}</{tag.split()[0]}>" if tag else _markup(text)
        for text, tag in merged
    )
    if markup != cleanBlockQuotedText(markup):
        return Paragraph(markup, style)
    prototypes: dict[str, Any] = {}
    frags: list[Any] = []
    for text, tag in merged:
        prototype = prototypes.get(tag)
        if prototype is None:
            sample = f"<{tag}>x</{tag.split()[0]}>" if tag else "x"
            prototype = prototypes[tag] = Paragraph(sample, style).frags[0]
        frags += [prototype.clone(text=piece) for piece in _ENTITY_SPLIT.split(text) if piece]
    return Paragraph(markup, style, frags=frags)


def _markup(text: str) -> str:
    """``text`` in ReportLab's mini-HTML (:func:`_esc`), no-break spaces as ``&nbsp;``."""
    return _esc(text).replace("\xa0", "&nbsp;")


class _MetricsByKey:
    """A window's metrics by key, each built when first asked for (``GroupFigures.metric``):
    the PDF prints a handful of most groups' ~47 metrics, and building every one of them for
    each of a 200-clinician report's ~400 group-windows was ~27 ms of a ~130 ms render."""

    __slots__ = ("_figures", "_made")

    def __init__(self, figures: GroupFigures) -> None:
        self._figures = figures
        self._made: dict[str, Metric] = {}

    def __getitem__(self, key: str) -> Metric:
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = self._figures.metric(key)
        return made


def _esc(text: str) -> str:
    """Escape text for ReportLab's mini-HTML (clinic names may contain '&' or '<')."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _functional_note(outcomes: OutcomeCounts) -> str:
    """How many started functional, and how many of them were harmed (reliably worse into
    the clinical range: only they can be, so the chart of clinical-range intakes has no
    harm bar)."""
    return f"{outcomes.functional_at_intake:,} ({outcomes.harmed:,} harmed)"


def _widths(total: float, fractions: Sequence[float]) -> list[float]:
    return [total * f for f in fractions]


def _short_labels(labels: Sequence[str]) -> list[str]:
    short = {
        "Episodes closed": "Closed episodes",
        "Reliably improved (recovered or improved)": "Reliably improved",
        "Reliably worse (all intakes)": "Reliably worse",
        "Dropout (clinic definition)": "Dropout",
        "Severity-adjusted effect size": "Severity-adj. ES",
    }
    # "Sessions with SRS below <the clinic's concern line>" -> "SRS below …"
    return [
        label.replace("Sessions with SRS", "SRS", 1)
        if label.startswith("Sessions with SRS below")
        else short.get(label, label)
        for label in labels
    ]


def _and(items: Sequence[str]) -> str:
    """Items in a sentence: "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _lower_first(text: str) -> str:
    """A label inside a sentence: "Reliably worse" -> "reliably worse" (but "SRS" stays)."""
    return text[:1].lower() + text[1:]


def _short_month(period: str) -> str:
    label = month_label(period)
    return f"{label[:3]} {label[-2:]}"


def _interval_bars(
    intervals: Sequence[tuple[int, float, float, float]],
    colour: Colour,
    chart: HorizontalLineChart,
    category_scale: Callable[[int], tuple[float, float]],
    value_scale: Callable[[float], float],
) -> Group:
    """A line chart's annotation: each month's 95% interval, ``(index, value, low, high)``,
    as a thin capped vertical bar through its point (placed as ``calcPositions`` places the
    point), left open around the point's marker. An interval past the value axis (a mean's
    t-interval can go below 0 sessions) is cut at the axis and drawn without its cap there,
    so it never runs into the month labels."""
    group = Group()
    gap = 2.2  # a little over the marker's radius
    floor, ceiling = chart.valueAxis.valueMin, chart.valueAxis.valueMax
    for index, value, low, high in intervals:
        x = category_scale(index)[0] + chart._hngs
        shown_low = low if floor is None else max(low, floor)
        shown_high = high if ceiling is None else min(high, ceiling)
        y_low, y_value = value_scale(shown_low), value_scale(value)
        y_high = value_scale(shown_high)
        for start, end in ((y_low, y_value - gap), (y_value + gap, y_high)):
            if end > start:
                group.add(Line(x, start, x, end, strokeColor=colour, strokeWidth=0.8))
        for y, cut in ((y_low, shown_low != low), (y_high, shown_high != high)):
            if not cut:
                group.add(Line(x - 2, y, x + 2, y, strokeColor=colour, strokeWidth=0.8))
    return group


def _runs(values: Sequence[float | None]) -> list[list[float | None]]:
    """Split a series at its gaps: one padded series per unbroken run of values."""
    runs: list[list[float | None]] = []
    current: list[float | None] | None = None
    for index, value in enumerate(values):
        if value is None:
            current = None
            continue
        if current is None:
            current = [None] * len(values)
            runs.append(current)
        current[index] = value
    return runs


def _nice_step(top: float) -> float:
    for step in (1, 2, 5, 10, 20, 50):
        if top / step <= 5:
            return step
    return 100


def _fit_text(text: str, font: str, size: float, width: float) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``width`` (one-line canvas strings).
    Line breaks and tabs become spaces: a canvas string draws them as a missing glyph."""
    text = " ".join(text.split())
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def _fit_label(text: str, font: str, size: float, width: float) -> str:
    """Shorten a clinician's label to ``width`` with the ellipsis in the middle: ids that
    differ only at the end ("clinician-north-00012", "clinician-north-00013") stay apart,
    where an ellipsis at the end made them read the same."""
    text = " ".join(text.split())
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    head, tail = text[: (len(text) + 1) // 2], text[(len(text) + 1) // 2 :]
    while (head or tail) and pdfmetrics.stringWidth(head + "…" + tail, font, size) > width:
        if len(head) > len(tail):
            head = head[:-1]
        else:
            tail = tail[1:]
    return head + "…" + tail
