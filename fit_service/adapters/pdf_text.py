"""The report's text written as PDF text operators, faster than through ReportLab's text object
methods and to the very same operators: strings placed by the flowables of
:mod:`fit_service.adapters.pdf_flowables` are drawn many to a text object
(:func:`_draw_strings`), and what a document has written once is remembered
(:class:`_DocumentText`). Drawing the text of a large clinic's tables was most of the time
spent on them; the tests in ``tests/unit/test_report_pdf_layout.py`` hold these operators
against ReportLab's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from reportlab.lib.colors import Color
from reportlab.lib.rl_accel import escapePDF
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import ShapedStr
from reportlab.pdfgen import textobject
from reportlab.pdfgen.canvas import Canvas
from reportlab.pdfgen.textobject import PDFTextObject

from fit_service.adapters.pdf_layout import Colour


@dataclass
class _DocumentText:
    """What one document's text objects remember: the operators of each string written
    (:class:`_MemoText`) and each font's first subset (:class:`_Subset0`). Both depend on
    the document's font subset assignments, so a canvas holds one for its document
    (``document_text``: :class:`~fit_service.adapters.pdf_flowables._NumberedCanvas`)."""

    memo: dict[tuple[Any, ...], tuple[str, int]] = field(default_factory=dict)
    subset0: dict[str, _Subset0] = field(default_factory=dict)


#: A string placed on the page: (x, baseline y, text, font, size, colour).
_Placed = tuple[float, float, str, str, float, Colour]


def _draw_strings(canvas: Canvas, strings: Iterable[_Placed]) -> None:
    """Draw (x, y, text, font, size, colour) strings as one text object, with a font or colour
    operator only where it changes (far cheaper than a text object per string).

    Writes the operators ``setTextOrigin``, ``_textOut`` and ``setFillColor`` would write,
    without their bookkeeping (the text cursor, which every string resets, and the colour and
    alpha checks): they were a third of the time spent drawing a large clinic's tables. A
    colour the shortcut does not cover (not a plain RGB :class:`Color`, or another alpha than
    the one in force) goes through ``setFillColor``.
    """
    known = getattr(canvas, "document_text", None)
    text = _MemoText(canvas, known) if isinstance(known, _DocumentText) else canvas.beginText()
    if not canvas.bottomup:  # never so here; Tm would need its y flipped
        _draw_strings_slowly(text, strings)
        canvas.drawText(text)
        return
    code = text._code
    fp_str = textobject.fp_str  # looked up now: pdf_layout may have memoized it
    extgstate = canvas._extgstate
    # The alpha setFillColor has put in force in this text object (None: not called yet).
    alpha_set: float | None = None
    font: tuple[str, float] | None = None
    colour_now: Colour | None = None
    for x, y, line, line_font, size, colour in strings:
        if (line_font, size) != font:
            text.setFont(line_font, size)
            font = (line_font, size)
        if colour is not colour_now:
            if (
                type(colour) is Color
                and alpha_set is not None
                and colour.alpha == alpha_set == extgstate.getValue("ca")
                and text._enforceColorSpace is None
            ):
                # What setFillColor writes for it; its setFillAlpha would write nothing.
                code.append(_rg(colour.red, colour.green, colour.blue))
                text._fillColorObj = colour
            else:
                text.setFillColor(colour)
                alpha_set = getattr(colour, "alpha", None)
            colour_now = colour
        code.append(f"1 0 0 1 {fp_str(x, y)} Tm")
        code.append(text._formatText(line))
    canvas.drawText(text)


def _draw_strings_slowly(text: PDFTextObject, strings: Iterable[_Placed]) -> None:
    """:func:`_draw_strings` through the text object's public operators."""
    font: tuple[str, float] | None = None
    colour_now: Colour | None = None
    for x, y, line, line_font, size, colour in strings:
        if (line_font, size) != font:
            text.setFont(line_font, size)
            font = (line_font, size)
        if colour is not colour_now:
            text.setFillColor(colour)
            colour_now = colour
        text.setTextOrigin(x, y)
        text._textOut(line)


@lru_cache(maxsize=256)
def _rg(red: float, green: float, blue: float) -> str:
    """The fill colour operator ``PDFTextObject.setFillColor`` writes for an RGB colour."""
    return f"{textobject.fp_str((red, green, blue))} rg"


#: Each byte's escaped form in a PDF string, as ReportLab's ``escapePDF`` writes it (which
#: escapes byte by byte): applied with ``str.translate``, it escapes a string at C speed.
_ESCAPES: dict[int, str] = {code: escapePDF(bytes([code])) for code in range(256)}


class _MemoText(PDFTextObject):
    """A text object that writes each string's operators once per document, and faster.

    ``_formatText`` (the operators that show a string: its bytes split into the font's subsets,
    escaped, with a font operator where the subset changes) was most of the cost of drawing a
    large clinic's tables, and their strings repeat ("0", "too few (n=3)", the same labels on
    every page). Its result depends on the font, size, leading, the subset in use before and
    the text, and on the document's subset assignments, which are fixed for a character once it
    has been written; its only effect on the text object is the subset in use after. So the
    memo (one per document: :attr:`_DocumentText.memo`) stores both, keyed by all
    five, and the operators are the same as without it.

    A string not in the memo (a large clinic's report has thousands: every interval differs)
    is formatted by :meth:`_format_ttf`, ReportLab's own steps for a TrueType font without
    text shaping, with the escaping done by ``str.translate`` (``escapePDF`` escapes in a
    Python loop, byte by byte): the same operators at half the cost.
    """

    def __init__(self, canvas: Canvas, known: _DocumentText) -> None:
        super().__init__(canvas)
        self._memo = known.memo
        self._subset0 = known.subset0

    #: reportlab's font-subset state, kept by PDFTextObject (untyped there)
    _curSubset: int

    def _formatText(self, text: str) -> str:
        key = (self._fontname, self._fontsize, self._leading, self._curSubset, text)
        known = self._memo.get(key)
        if known is None:
            font = pdfmetrics.getFont(self._fontname)
            if font._dynamicFont and not isinstance(text, ShapedStr):
                formatted = self._format_ttf(font, text)
            else:
                formatted = super()._formatText(text)
            known = self._memo[key] = (formatted, self._curSubset)
        code, self._curSubset = known
        return code

    def _format_ttf(self, font: Any, text: str) -> str:
        """``PDFTextObject._formatText`` for a TrueType font that is not shaped."""
        doc = self._canvas._doc
        fp_str = textobject.fp_str
        subset0 = self._subset0.get(font.fontName)
        if subset0 is None:
            subset0 = self._subset0[font.fontName] = _Subset0(font, doc)
        escaped = subset0.escape(text)
        if escaped is not None:
            shown = f"({escaped}) Tj"
            if self._curSubset == 0:
                return shown
            self._curSubset = 0
            return (
                f"{font.getSubsetInternalName(0, doc)} {fp_str(self._fontsize)} Tf "
                f"{fp_str(self._leading)} TL {shown}"
            )
        parts: list[str] = []
        for subset, chunk in font.splitString(text, doc):
            if subset != self._curSubset:
                parts.append(
                    f"{font.getSubsetInternalName(subset, doc)} "
                    f"{fp_str(self._fontsize)} Tf {fp_str(self._leading)} TL"
                )
                self._curSubset = subset
            parts.append(f"({chunk.decode('latin-1').translate(_ESCAPES)}) Tj")
        subset0.update()
        return " ".join(parts)


class _Subset0:
    """The characters of one TrueType font that a document has already placed in the font's
    first subset, each mapped to its escaped code there: a string of only such characters
    is shown as one chunk of that subset, its codes found by ``str.translate``.

    ``TTFont.splitString`` finds each character's subset and code in a Python loop; most of
    the report's strings are new ones (every interval differs), of characters placed long
    before (digits, letters, the dash), and the loop took most of the time left in writing
    their operators. A string with a character not yet placed, or placed in a later subset,
    goes through ``splitString``, which places it; :meth:`update` then learns what it placed.
    """

    def __init__(self, font: Any, doc: Any) -> None:
        #: ReportLab's record of the document's placements: {character code: subset << 8 | code}
        self._assignments: dict[int, int] = font._assignState(doc).assignments
        self._seen = 0
        self._codes: dict[int, str] = {}
        self._known: set[str] = set()
        self.update()

    def update(self) -> None:
        """Learn the placements made since the last call (new ones are appended)."""
        assignments = self._assignments
        if len(assignments) == self._seen:
            return
        for code, placed in list(assignments.items())[self._seen :]:
            if placed < 256:
                self._codes[code] = _ESCAPES[placed]
                self._known.add(chr(code))
        self._seen = len(assignments)
        if 32 in self._codes:  # splitString shows a no-break space as the space
            self._codes[0xA0] = self._codes[32]
            self._known.add("\xa0")

    def escape(self, text: str) -> str | None:
        """``text``'s escaped codes in the first subset, or None (see the class docstring)."""
        if text and self._known.issuperset(text):
            return text.translate(self._codes)
        return None


def _draw_placed(canvas: Canvas, strings: Iterable[_Placed]) -> None:
    """Draw a cell's own strings (outside a :class:`_LinesTable`) without leaking colours."""
    strings = list(strings)
    if strings:
        canvas.saveState()
        _draw_strings(canvas, strings)
        canvas.restoreState()
