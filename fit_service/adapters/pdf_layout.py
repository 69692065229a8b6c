"""Every size, colour and font of the PDF report in one place (:class:`Layout`, after pretix's
invoice renderer), the bundled fonts' registration, and ReportLab's memoized number
formatting (see :mod:`fit_service.adapters.report_pdf` on determinism and speed).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeAlias

from reportlab import rl_config
from reportlab.lib import colors, rl_accel
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

Colour: TypeAlias = colors.Color
#: The bundled fonts (see the module docstring).
_FONTS = Path(__file__).resolve().parent / "fonts"


def _hex(value: str) -> Colour:
    return colors.HexColor(value)


@dataclass(frozen=True)
class Layout:
    """Every layout constant of the report in one place (pretix keeps its invoice's here too)."""

    page_size: tuple[float, float] = A4
    margin_x: float = 18 * mm
    margin_top: float = 20 * mm
    margin_bottom: float = 18 * mm
    cover_band_height: float = 92 * mm

    font: str = "FitSans"
    font_bold: str = "FitSansBd"
    font_italic: str = "FitSansIt"
    font_bold_italic: str = "FitSansBI"
    font_files: tuple[tuple[str, str], ...] = (
        ("FitSans", str(_FONTS / "DejaVuSans.ttf")),
        ("FitSansBd", str(_FONTS / "DejaVuSans-Bold.ttf")),
        ("FitSansIt", str(_FONTS / "DejaVuSans-Oblique.ttf")),
        ("FitSansBI", str(_FONTS / "DejaVuSans-BoldOblique.ttf")),
    )

    size_body: float = 8.6
    size_small: float = 7.0
    size_tiny: float = 6.4
    size_h1: float = 15.0
    size_h2: float = 10.5
    size_kpi: float = 17.0

    ink: Colour = field(default_factory=lambda: _hex("#1d2733"))
    muted: Colour = field(default_factory=lambda: _hex("#5d6878"))
    rule: Colour = field(default_factory=lambda: _hex("#d3d9e1"))
    zebra: Colour = field(default_factory=lambda: _hex("#f4f6f9"))
    primary: Colour = field(default_factory=lambda: _hex("#1f4e79"))
    primary_light: Colour = field(default_factory=lambda: _hex("#dce7f2"))
    secondary: Colour = field(default_factory=lambda: _hex("#8fb3d6"))
    notice: Colour = field(default_factory=lambda: _hex("#fff4e0"))
    notice_border: Colour = field(default_factory=lambda: _hex("#e0a54a"))
    #: The 95% interval bars of the trend charts.
    interval_colour: Colour = field(default_factory=lambda: _hex("#7f9bb8"))

    chart_height: float = 124.0
    small_chart_height: float = 118.0
    forest_row_height: float = 15.0
    forest_rows_per_plot: int = 40

    author: str = "fit-service"
    title_prefix: str = "Monthly outcome and alliance report"

    @property
    def frame_width(self) -> float:
        return self.page_size[0] - 2 * self.margin_x


LAYOUT = Layout()
#: The ReportLab modules on this renderer's path that bound ``fp_str`` (its number formatter for
#: PDF operators) at import time: :func:`_cache_fp_str` replaces it in each.
_FP_STR_MODULES: tuple[str, ...] = (
    "reportlab.lib.colors",
    "reportlab.pdfbase.pdfdoc",
    "reportlab.pdfbase.ttfonts",
    "reportlab.pdfgen.canvas",
    "reportlab.pdfgen.pathobject",
    "reportlab.pdfgen.textobject",
    "reportlab.platypus.flowables",
    "reportlab.platypus.tables",
    "reportlab.graphics.shapes",
)


def _cache_fp_str() -> None:
    """Make ReportLab format each number tuple once per process, not once per operator.

    Without its C extension (``rl_accel``, not a dependency here: it rounds differently, so the
    bytes would depend on whether it is installed) ReportLab formats every coordinate, size and
    colour of every operator with the pure-Python ``fp_str``: a fifth of a large report's
    rendering time, for values that repeat endlessly (column positions, row baselines, the
    palette, font sizes). Each module that imported ``fp_str`` gets a memoized wrapper of the
    very same function, so every string, and hence every PDF byte, is unchanged. The cache is
    bounded; arguments that cannot be hashed (a list of numbers) are formatted uncached.
    Idempotent: a second call finds the wrapper already in place.
    """
    original = rl_accel.fp_str
    if getattr(original, "_fit_cached", False):
        return
    cached = lru_cache(maxsize=1 << 16)(original)

    def fp_str(*numbers: Any) -> str:
        try:
            return cached(*numbers)
        except TypeError:  # unhashable, e.g. fp_str([r, g, b])
            return original(*numbers)

    fp_str._fit_cached = True  # type: ignore[attr-defined]
    rl_accel.fp_str = fp_str
    for name in _FP_STR_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "fp_str", None) is original:
            module.fp_str = fp_str  # type: ignore[attr-defined]


def _register_fonts(layout: Layout) -> None:
    """Register the bundled DejaVu TTFs once per process (ReportLab's registry is global).

    Also switch off ReportLab's ASCII85 stream encoding (a process-wide setting, and this is
    the process's only PDF writer): its pure-Python encoder took a tenth of a large report's
    rendering time, for streams that are zlib-compressed binary anyway (ASCII85 makes them
    a quarter larger). Set here, before any page is drawn, so every PDF of the process is written
    the same way; likewise the memoized number formatting of :func:`_cache_fp_str`.

    And switch off ReportLab's attribute validation of graphics shapes and widgets
    (``shapeChecking``, a development aid: every assignment to a chart, axis, label or shape
    attribute is checked against its type): measured at about 12 ms of the 35 ms the charts
    of a large report took to draw, and it only ever raises for code that assigns a wrong
    type. ``validateSetattr`` reads the setting at each assignment, so it takes effect even
    though ReportLab's graphics modules are already imported. It changes no byte of the PDF.
    """
    rl_config.useA85 = 0
    rl_config.shapeChecking = 0
    _cache_fp_str()
    registered = set(pdfmetrics.getRegisteredFontNames())
    for name, filename in layout.font_files:
        if name not in registered:
            pdfmetrics.registerFont(TTFont(name, filename))
    pdfmetrics.registerFontFamily(
        layout.font,
        normal=layout.font,
        bold=layout.font_bold,
        italic=layout.font_italic,
        boldItalic=layout.font_bold_italic,
    )
