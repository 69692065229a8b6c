"""PDF rendering of the monthly benchmark report (issue 5), after pretix's invoice renderer.

:class:`MonthlyReportPdf` turns a :class:`~fit_service.domain.monthly_report.MonthlyReport` into
bytes. It computes nothing: every number and every "too few" comes from the report object's
``display`` methods, which is what lets the tests check the PDF's text against the JSON export.
One small ``_section`` method per part of the document; every size, colour and font in
:class:`~fit_service.adapters.pdf_layout.Layout`; the flowables and text helpers it builds with
in :mod:`fit_service.adapters.pdf_flowables`.

Determinism: the same report gives byte-identical PDFs. ReportLab's ``invariant`` mode fixes the
document id and timestamps, and the creation date is the report's own ``generated_at`` (never
the clock). Fonts are the DejaVu Sans TTFs bundled in ``fonts/`` (their LICENSE beside them),
embedded as subsets, so the output doesn't depend on the host's fonts. DejaVu Sans is Bitstream
Vera (the TTFs inside ReportLab) with more scripts: the same widths for every Latin character, so
the layout is Vera's, and clinic names and clinician labels in Greek, Cyrillic or extended Latin
print instead of missing-glyph boxes (CJK scripts still do: a font covering them is 15 MB and
more). Both have the minus, ≥ and √ glyphs that the PDF base-14 Helvetica lacks.

Speed: a large clinic's report is dozens of pages of tables, so the renderer takes a few
shortcuts past ReportLab's general machinery, each checked to give the same text at the same
positions: plain-text table cells skip Paragraph when they provably lay out as it would
(``_TextCell``, ``_Lines``), tables draw their cells' strings as one text object
(``_LinesTable``), forest plots are drawn straight onto the canvas (``_Sketch``), the long list
of clinicians without a month row is built as Paragraph fragments without the markup parser
(``_tagged_paragraph``; all in ``pdf_flowables``), the text operators are written directly and
remembered per document (``pdf_text``), and ReportLab's number formatting is memoized and its
shape attribute checking switched off (``pdf_layout``). The tests hold each shortcut against
what ReportLab itself does. The 12-month trends, the sessions histogram and the outcome bars
stay ReportLab chart widgets (issue 5 asks for charts drawn with ReportLab's own graphics).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from fit_service.adapters.pdf_flowables import (
    _FOREST_MIN_ROWS,
    _and,
    _esc,
    _fit_label,
    _fit_text,
    _forest_height,
    _functional_note,
    _IfRoom,
    _interval_bars,
    _Lines,
    _LinesTable,
    _lower_first,
    _MetricsByKey,
    _nice_step,
    _NumberedCanvas,
    _runs,
    _short_labels,
    _short_month,
    _Sketch,
    _SlicedPlot,
    _tagged_paragraph,
    _TextCell,
    _widths,
)
from fit_service.adapters.pdf_layout import LAYOUT, Colour, Layout, _register_fonts
from fit_service.domain.change import ChangeCategory
from fit_service.domain.monthly_report import (
    DASH,
    HEADLINE_KEYS,
    SESSION_BINS,
    GroupFigures,
    GroupReport,
    Metric,
    MetricGroup,
    MonthlyReport,
    Scope,
    Share,
    TrendPoint,
    method_notes,
    month_label,
    trailing_months,
)

#: The categories of clinical-range intakes, best first (the outcome chart's bars). Harm is
#: not among them: only an episode that started in the
#: functional range can cross into the clinical range, so harm is reported with that group.
_OUTCOME_ORDER: tuple[ChangeCategory, ...] = tuple(
    c for c in reversed(ChangeCategory) if c is not ChangeCategory.HARMED
)


#: The figures of the per-group tables (age bands, clinicians), in column order.
_COMPARISON_KEYS: tuple[str, ...] = (
    "episodes_closed",
    "reliable_improvement",
    "reliable_deterioration",
    "dropout_rate",
    "srs_below_concern",
    "severity_adjusted_es",
)
#: Of those, the outcome figures: a clinician has a row in the month's table only when one
#: of them is shown (the episodes closed are a count, and the SRS rate is over sessions,
#: which a month has plenty of even where it has too few episodes for an outcome).
_MONTH_ROW_KEYS: tuple[str, ...] = (
    "reliable_improvement",
    "reliable_deterioration",
    "dropout_rate",
    "severity_adjusted_es",
)


class MonthlyReportPdf:
    """Render a :class:`MonthlyReport` as a PDF: cover, summary, charts, all figures,
    clinicians, methods appendix. ``render`` is the only public method."""

    def __init__(self, layout: Layout = LAYOUT) -> None:
        self.layout = layout
        _register_fonts(layout)
        self._styles = self._make_styles()

    # ---------------------------------------------------------------- public

    def render(self, report: MonthlyReport) -> bytes:
        """The report as PDF bytes; the same report always gives the same bytes."""
        layout = self.layout
        buffer = io.BytesIO()
        doc = BaseDocTemplate(
            buffer,
            pagesize=layout.page_size,
            leftMargin=layout.margin_x,
            rightMargin=layout.margin_x,
            topMargin=layout.margin_top,
            bottomMargin=layout.margin_bottom,
            title=self._title(report),
            author=layout.author,
            subject=f"{report.clinic_name}, {report.period_label}",
            creator=layout.author,
            keywords=["ORS", "SRS", "outcomes", "alliance", "benchmark", report.period],
            invariant=1,
            lang="en",
        )
        height = layout.page_size[1]
        body_height = height - layout.margin_top - layout.margin_bottom
        cover_frame = Frame(
            layout.margin_x,
            layout.margin_bottom,
            layout.frame_width,
            height - layout.cover_band_height - layout.margin_bottom - 10 * mm,
            id="cover",
            leftPadding=0,
            rightPadding=0,
        )
        body_frame = Frame(
            layout.margin_x,
            layout.margin_bottom,
            layout.frame_width,
            body_height,
            id="body",
            leftPadding=0,
            rightPadding=0,
            topPadding=0,
        )
        doc.addPageTemplates(
            [
                PageTemplate("cover", [cover_frame], onPage=partial(self._cover_band, report)),
                PageTemplate("body", [body_frame], onPage=partial(self._page_header, report)),
            ]
        )
        story: list[Flowable] = [
            *self._cover(report),
            NextPageTemplate("body"),
            PageBreak(),
            *self._summary(report),
            PageBreak(),
            *self._charts(report),
            PageBreak(),
            *self._details(report),
            PageBreak(),
            *self._clinicians(report),
            PageBreak(),
            *self._methods(report),
        ]
        generated = report.generated_at
        footer = (
            f"fit-service {DASH} generated {generated:%Y-%m-%d %H:%M} UTC {DASH} aggregate "
            "figures only: no client identifiers, no questionnaire item text"
        )
        doc.build(
            story,
            canvasmaker=partial(
                _NumberedCanvas,
                pdf_date=f"D:{generated:%Y%m%d%H%M%S}+00'00'",
                footer_left=footer,
                layout=layout,
            ),
        )
        return buffer.getvalue()

    # ---------------------------------------------------------------- sections

    def _cover(self, report: MonthlyReport) -> list[Flowable]:
        s = self._styles
        layout = self.layout
        rows = [
            ("Clinic", report.clinic_name),
            (
                "Period",
                f"{report.period_label} ({report.period})"
                + (f" {DASH} in progress" if report.in_progress else ""),
            ),
            ("Compared with", f"the trailing 12 months, {self._trailing_label(report)}"),
            (
                "Generated",
                f"{report.generated_at:%Y-%m-%d %H:%M} UTC"
                + (
                    " (the month is not over: sessions recorded up to then)"
                    if report.in_progress
                    else " (the end of the period: the file is the same whenever it is made "
                    "from the same records)"
                ),
            ),
            (
                "Scope",
                "Whole clinic"
                if report.scope is Scope.CLINIC
                else f"Clinician view: {report.overall.label} (own figures only)",
            ),
            ("Smallest n shown", f"{report.min_n} (smaller cells say 'too few')"),
            ("Dropout definition", report.settings.dropout_definition),
        ]
        meta = Table(
            [[Paragraph(k, s["label"]), Paragraph(_esc(v), s["body"])] for k, v in rows],
            colWidths=[38 * mm, layout.frame_width - 38 * mm],
        )
        meta.setStyle(
            TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LINEBELOW", (0, 0), (-1, -1), 0.4, layout.rule),
                    ("TOPPADDING", (0, 0), (-1, -1), 4),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ]
            )
        )
        flow: list[Flowable] = [
            *self._empty_notice(report),
            meta,
            Spacer(0, 8 * mm),
            Paragraph("Contents", s["h2"]),
        ]
        contents = [
            ("1", "Summary: headline figures, benchmarks and 12-month trends"),
            ("2", "Charts: recovery, sessions, outcome categories"),
            ("3", "All figures, by topic and age band"),
            ("4", "Clinicians, with uncertainty intervals"),
            ("5", "Methods: definitions, thresholds, formulas and sources"),
        ]
        flow += [Paragraph(f"{n}&nbsp;&nbsp;&nbsp;{_esc(t)}", s["body"]) for n, t in contents]
        flow += [
            Spacer(0, 8 * mm),
            Paragraph(
                "How to read this report: every percentage carries its n and a 95% confidence "
                "interval; the interval, not the point, is the honest figure. Differences "
                "between clinicians whose intervals overlap may be chance. Literature "
                "references come from other settings and definitions: context, not targets.",
                s["note"],
            ),
        ]
        return flow

    def _summary(self, report: MonthlyReport) -> list[Flowable]:
        s = self._styles
        layout = self.layout
        month, trailing = report.overall.month, report.overall.trailing_12
        flow: list[Flowable] = [
            Paragraph(f"Summary {DASH} {_esc(report.period_label)}", s["h1"]),
            Paragraph(
                _esc(self._subject(report))
                + ". Headline figures for the month beside the trailing 12 months and the "
                "literature. Percentages of outcome categories are of closed episodes whose "
                "first ORS was in the clinical range.",
                s["lead"],
            ),
            Spacer(0, 3 * mm),
            *self._empty_notice(report),
            self._kpi_tiles(report),
            Spacer(0, 4 * mm),
        ]
        header = ["Figure", report.period_label, "Trailing 12 months", "Literature reference"]
        rows: list[list[Any]] = [[self._plain(h, "th") for h in header]]
        by_key, by_key_12 = _MetricsByKey(month), _MetricsByKey(trailing)
        for key in HEADLINE_KEYS:
            metric, metric_12 = by_key[key], by_key_12[key]
            benchmark = report.benchmark_for(key)
            reference: Any = ""
            if benchmark is not None:
                reference = _TextCell(
                    f"{_esc(benchmark.text)}<br/><font size={layout.size_tiny} "
                    f"color='{layout.muted.hexval()}'><i>{_esc(benchmark.source)}</i></font>",
                    s["cell"],
                    [
                        (benchmark.text, layout.font, s["cell"].fontSize, layout.ink),
                        (benchmark.source, layout.font_italic, layout.size_tiny, layout.muted),
                    ],
                )
            rows.append(
                [
                    self._plain(metric.label),
                    self._value_cell(metric, report.min_n),
                    self._value_cell(metric_12, report.min_n),
                    reference,
                ]
            )
        widths = _widths(layout.frame_width, (0.27, 0.23, 0.23, 0.27))
        flow.append(self._table(rows, widths))
        # The small trends only where the summary page has room for them: pushed over, they
        # were a page of their own before the Charts page, which shows them full size.
        flow += [
            Spacer(0, 4 * mm),
            _IfRoom(
                [
                    Paragraph("12-month trends, with 95% intervals", s["h2"]),
                    self._side_by_side(
                        self._trend_chart(report, "recovery", small=True),
                        self._trend_chart(report, "sessions", small=True),
                    ),
                ],
                [
                    Paragraph(
                        "The 12-month trends are on the next page, with the n of each month.",
                        s["note"],
                    )
                ],
            ),
        ]
        return flow

    def _charts(self, report: MonthlyReport) -> list[Flowable]:
        s = self._styles
        group = report.overall
        return [
            Paragraph("Charts", s["h1"]),
            Paragraph(
                f"{_esc(self._subject(report))}. Months with fewer than {report.min_n} "
                "episodes are left out of the trend lines rather than drawn from a handful "
                "of clients.",
                s["lead"],
            ),
            Spacer(0, 2 * mm),
            Paragraph("Recovery over 12 months", s["h2"]),
            self._trend_chart(report, "recovery", small=False),
            Paragraph("Mean sessions per closed episode over 12 months", s["h2"]),
            self._trend_chart(report, "sessions", small=False),
            Paragraph("Sessions per closed episode", s["h2"]),
            self._distribution_chart(group, report.min_n, report.period_label),
            self._distribution_note(group, report.period_label),
            Paragraph("Outcome categories (clinical-range intakes)", s["h2"]),
            self._outcome_chart(group, report.min_n, report.period_label),
            Paragraph(
                "Started in the functional range (reported apart): "
                f"{_functional_note(group.month.outcomes)} this month, "
                f"{_functional_note(group.trailing_12.outcomes)} in the trailing 12 months.",
                s["note"],
            ),
        ]

    def _details(self, report: MonthlyReport) -> list[Flowable]:
        s = self._styles
        layout = self.layout
        min_n = report.min_n
        month, trailing = report.overall.month, report.overall.trailing_12
        flow: list[Flowable] = [
            Paragraph("All figures", s["h1"]),
            Paragraph(
                f"{_esc(self._subject(report))}: every figure in the report, by topic.",
                s["lead"],
            ),
        ]
        widths = _widths(layout.frame_width, (0.40, 0.30, 0.30))
        pairs = list(zip(month.metrics(), trailing.metrics(), strict=True))
        for topic in MetricGroup:
            rows: list[list[Any]] = [
                [
                    self._plain(topic.value, "th"),
                    self._plain(report.period_label, "th"),
                    self._plain("Trailing 12 months", "th"),
                ]
            ]
            for metric, metric_12 in pairs:
                if metric.group is topic:
                    rows.append(
                        [
                            self._plain(metric.label),
                            self._value_cell(metric, min_n, inline=True),
                            self._value_cell(metric_12, min_n, inline=True),
                        ]
                    )
            # Each topic's table on one page (the longest has a dozen rows): split, a
            # table left two rows under its header at a page's foot and the rest on the next.
            flow += [KeepTogether([Spacer(0, 3 * mm), self._table(rows, widths)])]
        if report.age_bands:
            flow += [
                CondPageBreak(60 * mm),
                Spacer(0, 3 * mm),
                Paragraph("By age band", s["h2"]),
                *self._group_comparison(report, report.age_bands, "Age band"),
            ]
        return flow

    def _clinicians(self, report: MonthlyReport) -> list[Flowable]:
        s = self._styles
        flow: list[Flowable] = [Paragraph("Clinicians", s["h1"])]
        groups = report.clinicians_by_label()
        if report.scope is Scope.CLINICIAN:
            lead = (
                "Your own figures only. Colleagues' figures and clinic totals are not part of "
                "this view."
            )
        else:
            lead = (
                "Listed by label, not ranked. Each figure has its 95% interval: where two "
                "clinicians' intervals overlap, the difference may be chance. Small caseloads "
                "give wide intervals; severity-adjusted effect sizes allow for differences in "
                "intake severity. Clinicians appear under their pseudonymous EHR label."
            )
        flow.append(Paragraph(lead, s["lead"]))
        if not groups:
            flow.append(Paragraph("No clinician had figures in this period.", s["body"]))
            return flow
        if report.scope is Scope.CLINICIAN:
            # One's own page keeps its month row whatever it holds: it is the only row there.
            flow += self._group_comparison(report, groups, "Clinician")
        else:
            flow += self._clinicians_month(report, groups)
            flow += self._comparison_table(
                report,
                groups,
                "Clinician",
                f"Trailing 12 months ({self._trailing_label(report)})",
                lambda g: g.trailing_12,
            )
        heading = Paragraph(
            "Reliable improvement by clinician, trailing 12 months (95% Wilson intervals)",
            s["h2"],
        )
        # One drawing per page-sized slice: a drawing cannot split across pages, and a large
        # clinic's list would not fit on one. A plot that fits a page keeps with its heading
        # (alone, the heading was left at the foot of the tables' last page with the plot on
        # the next). A longer one is split anyway, so it starts under the tables, with room
        # for its heading and a few rows: begun on a fresh page, it left the tables' last
        # page nearly blank.
        layout = self.layout
        per_plot = layout.forest_rows_per_plot
        if len(groups) <= per_plot:
            plot = self._forest_plot(report, groups)
            flow += [CondPageBreak(40 * mm), KeepTogether([heading, plot])]
            return flow
        first = _FOREST_MIN_ROWS
        heading_h = heading.wrap(layout.frame_width, 1e6)[1] + heading.getSpaceBefore()
        room = heading_h + heading.getSpaceAfter() + _forest_height(first, layout)
        flow += [
            CondPageBreak(room),
            heading,
            _SlicedPlot(partial(self._forest_plot, report), groups, layout),
        ]
        return flow

    def _clinicians_month(
        self, report: MonthlyReport, groups: Sequence[GroupReport]
    ) -> list[Flowable]:
        """The month's table, with a row only for clinicians who have an outcome figure to
        show, and the others named in a list under it, each with the episodes they closed.

        One month is short for one clinician's caseload: in a clinic of 200 the month table
        ran to ten pages of rows reading "too few (n=1)" in every outcome column, the SRS
        rate the only number. A clinician whose every month outcome figure rests on fewer
        than ``min_n`` episodes is named instead of given such a row, with the reason and the
        threshold; nobody drops out of the report, and the trailing-12 table and plot that
        follow compare every clinician. (Dropout is a share of the episodes closed, the
        widest denominator of the outcome columns, so a row goes exactly to those who closed
        ``min_n`` or more.)"""
        s = self._styles
        min_n = report.min_n
        month = report.period_label
        with_row: list[GroupReport] = []
        # Each clinician without a row, with the episodes they closed in the month.
        without: list[tuple[GroupReport, str]] = []
        for group in groups:
            by_key = _MetricsByKey(group.month)
            if any(not by_key[key].is_too_few(min_n) for key in _MONTH_ROW_KEYS):
                with_row.append(group)
            else:
                without.append((group, by_key["episodes_closed"].display(min_n)))
        flow: list[Flowable] = []
        if with_row:
            flow += self._comparison_table(report, with_row, "Clinician", month, lambda g: g.month)
        else:
            flow += [Spacer(0, 2 * mm), Paragraph(_esc(month), s["caption"])]
        if not without:
            return flow
        first = _MetricsByKey(groups[0].month)
        # As the columns are headed, in the running text's case.
        outcomes = [
            _lower_first(t) for t in _short_labels([first[k].label for k in _MONTH_ROW_KEYS])
        ]
        srs = _lower_first(first["srs_below_concern"].label)
        if with_row:
            who = f"{len(without):,} of {len(groups):,} clinicians have no row"
        else:
            who = "No clinician has a row"
        reason = (
            f"{who} for {_esc(month)}: each of their outcome figures for the month "
            f"({_esc(_and(outcomes))}) rests on fewer than "
            f"{min_n} episodes, the smallest n this report shows, so it would read 'too few' "
            "or 'no data'. A month is too short for one clinician's outcomes: the trailing 12 "
            "months below compare every clinician, with intervals. Their month figures, "
            f"{_esc(srs)} among them, are in the JSON and CSV exports of this report."
        )
        # Label and count kept on one line (no-break space); a label's own line breaks are
        # spaces. Built from runs, not markup: a few hundred fragments (_tagged_paragraph).
        count_tag = f"font color='{self.layout.muted.hexval()}'"
        runs: list[tuple[str, str]] = [(f"Episodes closed in {month}, by clinician:", "i")]
        for index, (group, count) in enumerate(without):
            runs += [
                ("; " if index else " ", ""),
                (" ".join(group.label.split()) + "\xa0", ""),
                (f"({count})", count_tag),
            ]
        flow += [Paragraph(reason, s["body"]), _tagged_paragraph(runs, s["body"])]
        return flow

    def _methods(self, report: MonthlyReport) -> list[Flowable]:
        s = self._styles
        layout = self.layout
        settings = report.settings
        equal_side = "clinical" if settings.cutoff_is_clinical else "functional"
        setting_rows = [
            ("Smallest n shown", str(settings.min_n)),
            (
                "ORS clinical cut-off",
                f"adult {settings.ors_cutoff_adult:g}, adolescent "
                f"{settings.ors_cutoff_adolescent:g}, CORS {settings.cors_cutoff:g}; a score "
                f"equal to the cut-off is {equal_side}",
            ),
            ("Reliable change", f"{settings.reliable_change:g} points"),
            ("SRS concern", f"total below {settings.srs_concern:g}"),
            ("Dropout definition", settings.dropout_definition),
            ("Alert follow-up", f"{settings.follow_up_days} days"),
            ("Severity reference", settings.severity_reference),
        ]
        flow: list[Flowable] = [
            Paragraph("Methods", s["h1"]),
            Paragraph(
                "Every definition, threshold and formula behind the figures, with its source. "
                "Thresholds are clinic settings; the values used for this report are:",
                s["lead"],
            ),
            self._table(
                [[self._plain("Setting", "th"), self._plain("Value used", "th")]]
                + [[self._plain(k), self._plain(v)] for k, v in setting_rows],
                _widths(layout.frame_width, (0.28, 0.72)),
            ),
            Spacer(0, 4 * mm),
        ]
        rows: list[list[Any]] = [[self._plain(h, "th") for h in ("Term", "Definition", "Source")]]
        rows += [
            [
                self._plain(note.term, emphasis="b"),
                self._plain(note.definition),
                self._plain(note.source, "cell_muted", emphasis="i"),
            ]
            for note in method_notes(settings)
        ]
        flow.append(self._table(rows, _widths(layout.frame_width, (0.2, 0.56, 0.24))))
        ref_rows: list[list[Any]] = [
            [self._plain(h, "th") for h in ("Figure", "Reference", "Source")]
        ]
        labels = {m.key: m.label for m in report.overall.month.metrics()}
        for benchmark in report.benchmarks:
            text = benchmark.text + (f". {benchmark.note}" if benchmark.note else "")
            ref_rows.append(
                [
                    self._plain(labels.get(benchmark.metric_key, benchmark.metric_key)),
                    self._plain(text),
                    self._plain(benchmark.source, "cell_muted", emphasis="i"),
                ]
            )
        # Heading and table on one page: the table is short, and split it left its last row
        # alone under a repeated header on an otherwise empty last page.
        flow += [
            Spacer(0, 3 * mm),
            KeepTogether(
                [
                    Paragraph("Literature references printed beside the headline figures", s["h2"]),
                    self._table(ref_rows, _widths(layout.frame_width, (0.26, 0.46, 0.28))),
                ]
            ),
        ]
        return flow

    # ---------------------------------------------------------------- page furniture

    def _cover_band(self, report: MonthlyReport, canvas: Canvas, doc: BaseDocTemplate) -> None:
        layout = self.layout
        width, height = layout.page_size
        band = layout.cover_band_height
        canvas.saveState()
        canvas.setFillColor(layout.primary)
        canvas.rect(0, height - band, width, band, stroke=0, fill=1)
        canvas.setFillColor(layout.secondary)
        canvas.rect(0, height - band, width, 2.2 * mm, stroke=0, fill=1)
        x = layout.margin_x
        canvas.setFillColor(colors.white)
        canvas.setFont(layout.font, 10)
        canvas.drawString(x, height - 26 * mm, "fit-service  |  feedback-informed treatment")
        canvas.setFont(layout.font_bold, 22)
        canvas.drawString(x, height - 42 * mm, layout.title_prefix)
        canvas.setFont(layout.font, 15)
        name = _fit_text(report.clinic_name, layout.font, 15, layout.frame_width)
        canvas.drawString(x, height - 55 * mm, name)
        canvas.setFont(layout.font_bold, 30)
        canvas.drawString(x, height - 74 * mm, report.period_label)
        if report.scope is Scope.CLINICIAN:
            canvas.setFont(layout.font, 11)
            label = _fit_text(
                f"Clinician view: {report.overall.label}", layout.font, 11, layout.frame_width
            )
            canvas.drawString(x, height - 83 * mm, label)
        canvas.restoreState()

    def _page_header(self, report: MonthlyReport, canvas: Canvas, doc: BaseDocTemplate) -> None:
        layout = self.layout
        width, height = layout.page_size
        y = height - layout.margin_top + 6 * mm
        canvas.saveState()
        canvas.setFont(layout.font_bold, layout.size_small)
        canvas.setFillColor(layout.primary)
        left = _fit_text(report.clinic_name, layout.font_bold, layout.size_small, 95 * mm)
        canvas.drawString(layout.margin_x, y, left)
        canvas.setFont(layout.font, layout.size_small)
        canvas.setFillColor(layout.muted)
        right = f"{layout.title_prefix} {DASH} {report.period_label}"
        if report.scope is Scope.CLINICIAN:
            right += f" {DASH} clinician view"
        canvas.drawRightString(width - layout.margin_x, y, right)
        canvas.setStrokeColor(layout.primary)
        canvas.setLineWidth(0.8)
        canvas.line(layout.margin_x, y - 3, width - layout.margin_x, y - 3)
        canvas.restoreState()

    # ---------------------------------------------------------------- building blocks

    def _kpi_tiles(self, report: MonthlyReport) -> Table:
        s = self._styles
        layout = self.layout
        month = report.overall.month
        keys = (
            "reliable_improvement",
            "dropout_rate",
            "sessions_per_episode_mean",
            "srs_below_concern",
        )
        cells = []
        by_key = _MetricsByKey(month)
        for key in keys:
            metric = by_key[key]
            value = metric.display_value(report.min_n)
            detail = metric.display_detail(report.min_n) or " "
            style = s["kpi"] if not metric.is_too_few(report.min_n) else s["kpi_small"]
            cells.append(
                (
                    Paragraph(_esc(metric.label), s["kpi_label"]),
                    Paragraph(_esc(value), style),
                    Paragraph(_esc(detail), s["tiny"]),
                )
            )
        gap = 3 * mm
        tile = (layout.frame_width - 3 * gap) / 4
        # Label, value and qualifier in rows of their own: a label that wraps to two lines
        # used to push its tile's value below the other three.
        rows: list[list[Any]] = [
            [cells[0][part], "", cells[1][part], "", cells[2][part], "", cells[3][part]]
            for part in range(3)
        ]
        table = Table(
            rows,
            colWidths=[tile, gap, tile, gap, tile, gap, tile],
        )
        commands: list[tuple[Any, ...]] = [
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 6),
            ("RIGHTPADDING", (0, 0), (-1, -1), 6),
            ("TOPPADDING", (0, 0), (-1, 0), 6),
            ("TOPPADDING", (0, 1), (-1, -1), 0),
            ("BOTTOMPADDING", (0, 0), (-1, -2), 0),
            ("BOTTOMPADDING", (0, -1), (-1, -1), 6),
        ]
        for col in (0, 2, 4, 6):
            commands += [
                ("BACKGROUND", (col, 0), (col, -1), layout.primary_light),
                ("LINEABOVE", (col, 0), (col, 0), 2, layout.primary),
            ]
        # A Paragraph's first baseline is one font size below its top: a "too few" in the
        # body size moves down by the difference, onto the line of the large numbers.
        for index, key in enumerate(keys):
            if by_key[key].is_too_few(report.min_n):
                pad = layout.size_kpi - layout.size_body
                commands.append(("TOPPADDING", (2 * index, 1), (2 * index, 1), pad))
        table.setStyle(TableStyle(commands))
        return table

    def _value_cell(self, metric: Metric, min_n: int, *, inline: bool = False) -> _TextCell:
        """Value in bold over its qualifier (beside it when ``inline``): extracted text reads
        exactly as ``display()``."""
        layout = self.layout
        style = self._styles["cell"]
        size = style.fontSize
        muted = layout.muted.hexval()
        value = metric.display_value(min_n)
        detail = metric.display_detail(min_n)
        if metric.is_too_few(min_n) or value.startswith("not computable"):
            return _TextCell(
                f"<font color='{muted}'>{_esc(value)}</font>",
                style,
                [(value, layout.font, size, layout.muted)],
            )
        if not detail:
            return _TextCell(
                f"<b>{_esc(value)}</b>", style, [(value, layout.font_bold, size, layout.ink)]
            )
        join = " " if inline else "<br/>"
        markup = (
            f"<b>{_esc(value)}</b>{join}<font size={layout.size_tiny} "
            f"color='{muted}'>({_esc(detail)})</font>"
        )
        runs = [
            (value, layout.font_bold, size, layout.ink),
            *([(" ", layout.font, size, layout.ink)] if inline else []),
            (f"({detail})", layout.font, layout.size_tiny, layout.muted),
        ]
        return _TextCell(markup, style, runs, inline=inline)

    def _plain(self, text: str, style_name: str = "cell", *, emphasis: str = "") -> _TextCell:
        """``text`` in one paragraph style, in bold (``emphasis="b"``) or italic (``"i"``)."""
        layout = self.layout
        style = self._styles[style_name]
        font = {"": style.fontName, "b": layout.font_bold, "i": layout.font_italic}[emphasis]
        markup = f"<{emphasis}>{_esc(text)}</{emphasis}>" if emphasis else _esc(text)
        return _TextCell(markup, style, [(text, font, style.fontSize, style.textColor)])

    def _figure_cell(self, metric: Metric, min_n: int) -> _Lines:
        """What :meth:`_value_cell` shows (value in bold over its muted qualifier, or a muted
        "too few"), as a :class:`_Lines` cell: for the per-group tables, which hold thousands
        of cells in a large clinic."""
        layout = self.layout
        size = layout.size_small + 0.4  # the "cell" style's size
        value = metric.display_value(min_n)
        if metric.is_too_few(min_n) or value.startswith("not computable"):
            return _Lines([(value, layout.font, size, layout.muted)], size * 1.3)
        detail = metric.display_detail(min_n)
        runs = [(value, layout.font_bold, size, layout.ink)]
        if detail:
            runs.append((f"({detail})", layout.font, layout.size_tiny, layout.muted))
        return _Lines(runs, size * 1.3)

    def _text_cell(self, text: str, *, bold: bool = False, width: float | None = None) -> _Lines:
        """``text`` in the "cell" style. Given the cell's inner ``width``, a text that needs
        two lines and ends in a parenthesis that fits on one ("Children (6 to 12)") breaks
        before the parenthesis, not inside it."""
        layout = self.layout
        size = layout.size_small + 0.4
        font = layout.font_bold if bold else layout.font
        head, paren, tail = text.rpartition(" (")
        if (
            width is not None
            and paren
            and head
            and tail.endswith(")")
            and pdfmetrics.stringWidth(text, font, size) > width
            and pdfmetrics.stringWidth("(" + tail, font, size) <= width
        ):
            runs = [(head, font, size, layout.ink), ("(" + tail, font, size, layout.ink)]
            return _Lines(runs, size * 1.3)
        return _Lines([(text, font, size, layout.ink)], size * 1.3)

    def _table(
        self,
        rows: list[list[Any]],
        widths: Sequence[float],
        *,
        lines_below_header: bool = False,
    ) -> Table:
        """The report's table style, drawn by :class:`_LinesTable`. ``lines_below_header``:
        every row after the header is :class:`_Lines` cells (the per-group tables), whose row
        heights are computed up front."""
        layout = self.layout
        table: Table
        if lines_below_header:
            table = _LinesTable(
                rows,
                colWidths=list(widths),
                rowHeights=[None, *_LinesTable.heights_of(rows[1:], widths)],
                repeatRows=1,
            )
        else:
            table = _LinesTable(rows, colWidths=list(widths), repeatRows=1)
        commands: list[tuple[Any, ...]] = [
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("BACKGROUND", (0, 0), (-1, 0), layout.primary),
            ("LINEBELOW", (0, 1), (-1, -1), 0.3, layout.rule),
            ("TOPPADDING", (0, 0), (-1, -1), 3),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ("LEFTPADDING", (0, 0), (-1, -1), 4),
            ("RIGHTPADDING", (0, 0), (-1, -1), 4),
        ]
        for row in range(2, len(rows), 2):
            commands.append(("BACKGROUND", (0, row), (-1, row), layout.zebra))
        table.setStyle(TableStyle(commands))
        return table

    def _group_comparison(
        self, report: MonthlyReport, groups: Sequence[GroupReport], title: str
    ) -> list[Flowable]:
        """Month and trailing-12 tables of a few key figures per group, with intervals."""
        return [
            *self._comparison_table(report, groups, title, report.period_label, lambda g: g.month),
            *self._comparison_table(
                report,
                groups,
                title,
                f"Trailing 12 months ({self._trailing_label(report)})",
                lambda g: g.trailing_12,
            ),
        ]

    def _comparison_table(
        self,
        report: MonthlyReport,
        groups: Sequence[GroupReport],
        title: str,
        caption: str,
        pick: Callable[[GroupReport], GroupFigures],
    ) -> list[Flowable]:
        """One window's table of :data:`_COMPARISON_KEYS` per group, under its caption."""
        first = _MetricsByKey(groups[0].month)
        labels = [first[k].label for k in _COMPARISON_KEYS]
        header = [title, *_short_labels(labels)]
        rows: list[list[Any]] = [[self._plain(h, "th") for h in header]]
        widths = _widths(self.layout.frame_width, (0.15, 0.10, 0.15, 0.15, 0.15, 0.15, 0.15))
        label_width = widths[0] - 2 * _LinesTable._PAD_X
        for group in groups:
            by_key = _MetricsByKey(pick(group))
            rows.append(
                [self._text_cell(group.label, bold=True, width=label_width)]
                + [self._figure_cell(by_key[k], report.min_n) for k in _COMPARISON_KEYS]
            )
        return [
            Spacer(0, 2 * mm),
            Paragraph(_esc(caption), self._styles["caption"]),
            self._table(rows, widths, lines_below_header=True),
        ]

    def _trend_chart(self, report: MonthlyReport, which: str, *, small: bool) -> Drawing:
        layout = self.layout
        width = (layout.frame_width - 6 * mm) / 2 if small else layout.frame_width
        height = layout.small_chart_height if small else layout.chart_height
        months = trailing_months(report.period)
        by_month = {point.month: point for point in report.overall.trend}
        values: list[float | None] = []
        # Each shown month's 95% interval, as (category index, value, low, high).
        intervals: list[tuple[int, float, float, float]] = []
        for index, month in enumerate(months):
            point = by_month.get(month)
            if point is None:
                values.append(None)
            elif which == "recovery":
                share = point.recovery
                too_few = share.is_too_few(report.min_n)
                value = None if too_few else 100 * share.numerator / share.denominator
                values.append(value)
                if value is not None and share.ci is not None:
                    intervals.append((index, value, 100 * share.ci[0], 100 * share.ci[1]))
            else:
                est = point.mean_sessions
                too_few = est.is_too_few(report.min_n)
                values.append(None if too_few else est.value)
                if not too_few and est.value is not None and est.ci_low is not None:
                    assert est.ci_high is not None  # Estimate has both bounds or neither
                    intervals.append((index, est.value, est.ci_low, est.ci_high))
        title = (
            "Recovered, % of clinical-range intakes"
            if which == "recovery"
            else "Mean sessions per closed episode"
        )
        if not small:
            title += ", with 95% intervals"
        if small:
            title += f" ({_short_month(months[0])} to {_short_month(months[-1])})"
        drawing = Drawing(width, height)
        drawing.add(
            String(
                0,
                height - 9,
                title,
                fontName=layout.font_bold,
                fontSize=layout.size_small,
                fillColor=layout.ink,
            )
        )
        if all(v is None for v in values):
            self._empty_chart(
                drawing, width, height - 14, f"No month with n of {report.min_n} or more"
            )
            return drawing
        chart = HorizontalLineChart()
        chart.x, chart.y = 28, 22
        chart.width, chart.height = width - 40, height - 44
        # One series per unbroken run of months, so a too-few month is a gap, not a bridge.
        chart.data = _runs(values)
        if small:
            # Twelve "Jun 23" labels collide in a half-width chart; the title gives the years.
            names = [month_label(m)[:3] for m in months]
        else:
            # Under each month, the n its point rests on (blank when the month had none).
            names = [f"{_short_month(m)}\n{self._trend_n(by_month.get(m), which)}" for m in months]
        chart.categoryAxis.categoryNames = names
        self._style_axes(chart, small)
        top = max([v for v in values if v is not None] + [high for *_rest, high in intervals])
        if which == "recovery":
            chart.valueAxis.valueMin, chart.valueAxis.valueMax, chart.valueAxis.valueStep = (
                0,
                100,
                25,
            )
        else:
            step = _nice_step(top)
            chart.valueAxis.valueMin = 0
            chart.valueAxis.valueMax = step * (int(top // step) + 1)
            chart.valueAxis.valueStep = step
        for index in range(len(chart.data)):
            chart.lines[index].strokeColor = layout.primary
            chart.lines[index].strokeWidth = 1.6
            chart.lines[index].symbol = makeMarker("FilledCircle", size=3.2)
            chart.lines[index].symbol.fillColor = layout.primary
            chart.lines[index].symbol.strokeColor = layout.primary
        chart.annotations = [partial(_interval_bars, intervals, layout.interval_colour)]
        drawing.add(chart)
        return drawing

    def _trend_n(self, point: TrendPoint | None, which: str) -> str:
        if point is None:
            return "n=0"
        return f"n={point.recovery.n if which == 'recovery' else point.mean_sessions.n}"

    def _distribution_chart(self, group: GroupReport, min_n: int, period_label: str) -> Drawing:
        """Sessions per closed episode as a histogram of :data:`SESSION_BINS`, whose bins are
        not equally wide (1 to 5 one by one, then 6-10 and 11-20, then 21+).

        Drawn as equal-width bars of each bin's share, 11-20 was the tallest bar although it
        holds the fewest episodes per session count: the picture had a peak where episodes
        thin out. Each bar now spans its bin's session counts along the axis and is as high
        as its share divided by that span, so its area is its share. The open-ended last bin
        has no span to divide by and is not drawn (:meth:`_distribution_note` gives its
        counts). The trailing 12 months are filled bars, the month outlines over them."""
        layout = self.layout
        width, height = layout.frame_width, layout.chart_height
        drawing = Drawing(width, height)
        series = [
            (period_label, group.month.sessions.histogram),
            ("Trailing 12 months", group.trailing_12.sessions.histogram),
        ]
        colours = (layout.primary, layout.secondary)
        shown = self._legend(drawing, series, colours, min_n, outlined=(period_label,))
        if not shown:
            self._empty_chart(
                drawing, width, height - 16, f"Too few episodes to chart (n below {min_n})"
            )
            return drawing
        # (index, first and last session count) of each bin with an upper end.
        bins = [(i, low, high) for i, (_label, low, high) in enumerate(SESSION_BINS) if high]
        start, end = bins[0][1] - 0.5, bins[-1][2] + 0.5
        x0, x1, y0, y1 = 30.0, width - 10, 22.0, height - 24
        unit = (x1 - x0) / (end - start)  # one session count along the axis

        def x_of(sessions: float) -> float:
            return x0 + (sessions - start) * unit

        # Per series: its name, colour and each drawn bin's share per session count.
        bars = [
            (name, colour, [shares[i] / (high - low + 1) for i, low, high in bins])
            for name, shares, colour in shown
        ]
        top = max(max(values) for _name, _colour, values in bars)
        step = _nice_step(top)
        ceiling = step * (int(top // step) + 1)

        def y_of(value: float) -> float:
            return y0 + value / ceiling * (y1 - y0)

        tiny = {"fontName": layout.font, "fontSize": layout.size_tiny, "fillColor": layout.muted}
        for tick in range(int(ceiling // step) + 1):
            y = y_of(tick * step)
            drawing.add(Line(x0, y, x1, y, strokeColor=layout.rule, strokeWidth=0.4))
            drawing.add(String(x0 - 5, y - 2, f"{tick * step:g}", textAnchor="end", **tiny))
        # The trailing 12 months as filled bars, the month as outlines over them: side by
        # side, the month's half of a wide bin looked like its own narrower bin.
        for name, colour, values in sorted(bars, key=lambda bar: bar[0] == period_label):
            month = name == period_label
            for (_index, low, high), value in zip(bins, values, strict=True):
                left, right = x_of(low - 0.5) + 0.6, x_of(high + 0.5) - 0.6
                drawing.add(
                    Rect(
                        left,
                        y0,
                        right - left,
                        y_of(value) - y0,
                        fillColor=None if month else colour,
                        strokeColor=colour if month else None,
                        strokeWidth=1.2,
                    )
                )
        drawing.add(Line(x0, y0, x1, y0, strokeColor=layout.muted, strokeWidth=0.5))
        for index, low, high in bins:
            left, right = x_of(low - 0.5), x_of(high + 0.5)
            for x in (left, right):
                drawing.add(Line(x, y0, x, y0 - 3, strokeColor=layout.muted, strokeWidth=0.5))
            label = SESSION_BINS[index][0]
            drawing.add(String((left + right) / 2, y0 - 10, label, textAnchor="middle", **tiny))
        axis_title = "% of closed episodes per session count; sessions per episode along the axis"
        drawing.add(String(0, 4, axis_title, **tiny))
        return drawing

    def _distribution_note(self, group: GroupReport, period_label: str) -> Paragraph:
        """How to read :meth:`_distribution_chart`, and the counts of the bin it leaves out."""
        spans: dict[int, list[str]] = {}
        open_ended: list[tuple[int, str]] = []
        for index, (label, low, high) in enumerate(SESSION_BINS):
            if high is None:
                open_ended.append((index, label))
            else:
                spans.setdefault(high - low + 1, []).append(label)
        parts = [
            f"{_and(labels)} {'each span' if len(labels) > 1 else 'spans'} "
            f"{span} session count{'s' if span > 1 else ''}"
            for span, labels in spans.items()
        ]
        text = (
            f"Bins of unequal width: {'; '.join(parts)}. Each bar covers its bin's session "
            "counts and is as high as its share of closed episodes divided by them, so its "
            "area, not its height, is its share: a wide bin is not a peak."
        )
        for index, label in open_ended:
            month = group.month.sessions.histogram[index]
            trailing = group.trailing_12.sessions.histogram[index]
            text += (
                f" Not drawn, as it has no upper end: {label} sessions, {month:,} closed "
                f"episodes in {period_label} and {trailing:,} in the trailing 12 months."
            )
        return Paragraph(_esc(text), self._styles["note"])

    def _outcome_chart(self, group: GroupReport, min_n: int, period_label: str) -> Drawing:
        def counts(figures: GroupFigures) -> tuple[int, ...]:
            o = figures.outcomes
            return tuple(getattr(o, c.value) for c in _OUTCOME_ORDER)

        return self._share_bars(
            categories=[c.value.capitalize() for c in _OUTCOME_ORDER],
            series=[
                (period_label, counts(group.month)),
                ("Trailing 12 months", counts(group.trailing_12)),
            ],
            min_n=min_n,
            axis_title="% of clinical-range intakes",
            colours=(self.layout.primary, self.layout.secondary),
        )

    def _legend(
        self,
        drawing: Drawing,
        series: Sequence[tuple[str, Sequence[int]]],
        colours: tuple[Colour, Colour],
        min_n: int,
        *,
        outlined: tuple[str, ...] = (),
    ) -> list[tuple[str, list[float], Colour]]:
        """Draw a share chart's legend along the top of ``drawing``; return the series shown,
        each as its name, its counts as percentages of its total, and its colour. A series
        whose total is below ``min_n`` is left out and named in the legend as "too few",
        like every other small cell. Series named in ``outlined`` are drawn as outlines, and
        so is their legend's swatch."""
        layout = self.layout
        height = drawing.height
        shown: list[tuple[str, list[float], Colour]] = []
        legend: list[tuple[str, Colour | None]] = []
        for (name, counts), colour in zip(series, colours, strict=True):
            total = sum(counts)
            share = Share(0, total)
            if share.is_too_few(min_n):
                legend.append((f"{name}: {share.display_value(min_n)}", None))
                continue
            shown.append((name, [100 * c / total for c in counts], colour))
            legend.append((f"{name} (n={total:,})", colour))
        x = 0.0
        for (name, _counts), (text, colour) in zip(series, legend, strict=True):
            if colour is not None:
                swatch = (None, colour) if name in outlined else (colour, None)
                drawing.add(Rect(x, height - 9, 7, 7, fillColor=swatch[0], strokeColor=swatch[1]))
                x += 10
            drawing.add(
                String(
                    x,
                    height - 8,
                    text,
                    fontName=layout.font,
                    fontSize=layout.size_small,
                    fillColor=layout.ink if colour else layout.muted,
                )
            )
            x += pdfmetrics.stringWidth(text, layout.font, layout.size_small) + 14
        return shown

    def _share_bars(
        self,
        *,
        categories: list[str],
        series: list[tuple[str, tuple[int, ...]]],
        min_n: int,
        axis_title: str,
        colours: tuple[Colour, Colour],
    ) -> Drawing:
        """Grouped bars of shares; a series whose total is below ``min_n`` is left out and
        named in the legend as "too few", like every other small cell."""
        layout = self.layout
        width, height = layout.frame_width, layout.chart_height
        drawing = Drawing(width, height)
        shown = self._legend(drawing, series, colours, min_n)
        if not shown:
            self._empty_chart(
                drawing, width, height - 16, f"Too few episodes to chart (n below {min_n})"
            )
            return drawing
        chart = VerticalBarChart()
        chart.x, chart.y = 30, 22
        chart.width, chart.height = width - 40, height - 46
        chart.data = [values for _name, values, _colour in shown]
        chart.categoryAxis.categoryNames = categories
        chart.barSpacing = 1.5
        chart.groupSpacing = 8
        self._style_axes(chart, small=False)
        top = max(max(values) for _n, values, _c in shown)
        step = 10 if top <= 50 else 25
        chart.valueAxis.valueMin = 0
        chart.valueAxis.valueMax = min(100, step * (int(top // step) + 1))
        chart.valueAxis.valueStep = step
        for index, (_name, _values, colour) in enumerate(shown):
            chart.bars[index].fillColor = colour
            chart.bars[index].strokeColor = None
        drawing.add(chart)
        drawing.add(
            String(
                0,
                4,
                axis_title,
                fontName=layout.font,
                fontSize=layout.size_tiny,
                fillColor=layout.muted,
            )
        )
        return drawing

    def _forest_plot(self, report: MonthlyReport, groups: Sequence[GroupReport]) -> _Sketch:
        """Point and 95% interval per clinician against the clinic's value: a comparison that
        shows its uncertainty instead of a league table.

        A :class:`_Sketch`, not a graphics ``Drawing``: a large clinic's plots hold thousands
        of shapes, and the Drawing renderer's per-shape state tracking cost more than the
        rest of the page."""
        layout = self.layout
        min_n = report.min_n
        row_h = layout.forest_row_height
        width = layout.frame_width
        label_w, value_w = 90.0, 130.0
        plot_x0, plot_x1 = label_w, width - value_w - 8
        height = _forest_height(len(groups), layout)
        drawing = _Sketch(width, height)
        top = height - 6

        def x_of(share: float) -> float:
            return plot_x0 + share * (plot_x1 - plot_x0)

        base = 14.0
        drawing.line(plot_x0, base, plot_x1, base, layout.muted, 0.5)
        for tick in (0, 25, 50, 75, 100):
            x = x_of(tick / 100)
            drawing.line(x, base, x, top, layout.rule, 0.4)
            drawing.string(
                x, base - 9, f"{tick}%", layout.font, layout.size_tiny, layout.muted, "middle"
            )
        if report.scope is Scope.CLINIC:
            clinic = report.overall.trailing_12.outcomes.reliable_improvement
            if not clinic.is_too_few(min_n) and clinic.value is not None:
                x = x_of(clinic.value)
                drawing.line(x, base, x, top, layout.notice_border, 1, dash=(3, 2))
                drawing.string(
                    x + 3,
                    top - 7,
                    f"clinic {clinic.display_value(min_n)}",
                    layout.font,
                    layout.size_tiny,
                    layout.notice_border,
                )
        for index, group in enumerate(groups):
            y = top - row_h * (index + 1)
            share = group.trailing_12.outcomes.reliable_improvement
            drawing.string(
                0,
                y - 3,
                _fit_label(group.label, layout.font, layout.size_small, label_w - 6),
                layout.font,
                layout.size_small,
                layout.ink,
            )
            text = share.display_value(min_n)
            if share.is_too_few(min_n) or share.ci is None or share.value is None:
                colour = layout.muted
            else:
                low, high = share.ci
                colour = layout.ink
                drawing.line(x_of(low), y, x_of(high), y, layout.primary, 1.6)
                for end in (low, high):
                    drawing.line(x_of(end), y - 3, x_of(end), y + 3, layout.primary, 1)
                drawing.circle(x_of(share.value), y, 3, layout.primary, colors.white, 0.6)
                text = f"{text} (n={share.n:,})"
            drawing.string(width, y - 3, text, layout.font, layout.size_small, colour, "end")
        return drawing

    def _empty_chart(self, drawing: Drawing, width: float, height: float, text: str) -> None:
        layout = self.layout
        drawing.add(
            Rect(
                0,
                0,
                width,
                height - 4,
                fillColor=layout.zebra,
                strokeColor=layout.rule,
                strokeWidth=0.5,
            )
        )
        drawing.add(
            String(
                width / 2,
                height / 2 - 4,
                text,
                fontName=layout.font,
                fontSize=layout.size_small,
                fillColor=layout.muted,
                textAnchor="middle",
            )
        )

    def _style_axes(self, chart: Any, small: bool) -> None:
        layout = self.layout
        size = layout.size_tiny
        for axis in (chart.categoryAxis, chart.valueAxis):
            axis.labels.fontName = layout.font
            axis.labels.fontSize = size
            axis.labels.fillColor = layout.muted
            axis.strokeColor = layout.rule
        chart.valueAxis.visibleGrid = True
        chart.valueAxis.gridStrokeColor = layout.rule
        chart.valueAxis.gridStrokeWidth = 0.4
        chart.valueAxis.visibleAxis = False
        chart.valueAxis.visibleTicks = False
        chart.categoryAxis.visibleTicks = False
        chart.categoryAxis.labels.dy = -2
        if small:
            chart.categoryAxis.labels.angle = 0

    def _side_by_side(self, left: Flowable, right: Flowable) -> Table:
        gap = 6 * mm
        half = (self.layout.frame_width - gap) / 2
        table = Table([[left, "", right]], colWidths=[half, gap, half])
        table.setStyle(
            TableStyle(
                [
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return table

    def _empty_notice(self, report: MonthlyReport) -> list[Flowable]:
        """A month without data is still a valid report, and says so up front; so does a
        month still running (its figures will change)."""
        flow: list[Flowable] = []
        if report.in_progress:
            flow += [
                self._notice(
                    f"<b>{_esc(report.period_label)} is not over.</b> The figures hold the "
                    f"sessions recorded up to {report.generated_at:%Y-%m-%d %H:%M} UTC and will "
                    "change as the month goes on; compare complete months only."
                ),
                Spacer(0, 5 * mm),
            ]
        if report.is_empty:
            flow += [
                self._notice(
                    f"<b>No data for {_esc(report.period_label)}.</b> No episode was active and "
                    "no session was scheduled in this month. The report is complete and valid; "
                    "figures for the month read 'no data', and the trailing-12-month columns "
                    "show the recent history where there is any."
                ),
                Spacer(0, 5 * mm),
            ]
        return flow

    def _notice(self, html: str) -> Table:
        layout = self.layout
        table = Table([[Paragraph(html, self._styles["body"])]], colWidths=[layout.frame_width])
        table.setStyle(
            TableStyle(
                [
                    ("BACKGROUND", (0, 0), (-1, -1), layout.notice),
                    ("LINEBEFORE", (0, 0), (0, -1), 3, layout.notice_border),
                    ("LEFTPADDING", (0, 0), (-1, -1), 8),
                    ("TOPPADDING", (0, 0), (-1, -1), 6),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
                ]
            )
        )
        return table

    # ---------------------------------------------------------------- text

    def _title(self, report: MonthlyReport) -> str:
        title = f"{self.layout.title_prefix}: {report.clinic_name}, {report.period_label}"
        if report.scope is Scope.CLINICIAN:
            # Otherwise a clinician's file is titled as the whole clinic's report.
            title += f" {DASH} clinician view: {report.overall.label}"
        return title

    def _subject(self, report: MonthlyReport) -> str:
        if report.scope is Scope.CLINICIAN:
            return f"Clinician {report.overall.label}, {report.clinic_name}"
        return f"Whole clinic, {report.clinic_name}"

    def _trailing_label(self, report: MonthlyReport) -> str:
        months = trailing_months(report.period)
        return f"{month_label(months[0])} to {month_label(months[-1])}"

    def _make_styles(self) -> dict[str, ParagraphStyle]:
        layout = self.layout
        base = ParagraphStyle(
            "body",
            fontName=layout.font,
            fontSize=layout.size_body,
            leading=layout.size_body * 1.35,
            textColor=layout.ink,
            alignment=TA_LEFT,
        )

        def derive(name: str, **changes: Any) -> ParagraphStyle:
            return ParagraphStyle(name, parent=base, **changes)

        return {
            "body": base,
            "lead": derive("lead", textColor=layout.muted, spaceAfter=2 * mm),
            "note": derive(
                "note",
                fontSize=layout.size_small,
                leading=layout.size_small * 1.4,
                textColor=layout.muted,
                spaceBefore=2 * mm,
            ),
            "h1": derive(
                "h1",
                fontName=layout.font_bold,
                fontSize=layout.size_h1,
                leading=layout.size_h1 * 1.25,
                textColor=layout.primary,
                spaceAfter=2 * mm,
            ),
            "h2": derive(
                "h2",
                fontName=layout.font_bold,
                fontSize=layout.size_h2,
                leading=layout.size_h2 * 1.3,
                textColor=layout.primary,
                spaceBefore=3 * mm,
                spaceAfter=1.5 * mm,
            ),
            "caption": derive(
                "caption",
                fontName=layout.font_bold,
                fontSize=layout.size_small,
                textColor=layout.muted,
                spaceAfter=1 * mm,
            ),
            "label": derive("label", fontName=layout.font_bold, textColor=layout.muted),
            "th": derive(
                "th",
                fontName=layout.font_bold,
                fontSize=layout.size_small,
                leading=layout.size_small * 1.3,
                textColor=colors.white,
            ),
            "cell": derive(
                "cell", fontSize=layout.size_small + 0.4, leading=(layout.size_small + 0.4) * 1.3
            ),
            "cell_muted": derive(
                "cell_muted",
                fontSize=layout.size_small,
                leading=layout.size_small * 1.3,
                textColor=layout.muted,
            ),
            "kpi_label": derive(
                "kpi_label",
                fontName=layout.font_bold,
                fontSize=layout.size_tiny,
                leading=layout.size_tiny * 1.3,
                textColor=layout.primary,
            ),
            "kpi": derive(
                "kpi",
                fontName=layout.font_bold,
                fontSize=layout.size_kpi,
                leading=layout.size_kpi * 1.25,
                textColor=layout.ink,
            ),
            "kpi_small": derive(
                "kpi_small",
                fontName=layout.font_bold,
                fontSize=layout.size_body,
                leading=layout.size_body * 1.25,
                textColor=layout.muted,
            ),
            "tiny": derive(
                "tiny",
                fontSize=layout.size_tiny,
                leading=layout.size_tiny * 1.3,
                textColor=layout.muted,
                alignment=TA_LEFT,
            ),
            "right": derive("right", alignment=TA_RIGHT),
        }


def render_pdf(report: MonthlyReport, layout: Layout = LAYOUT) -> bytes:
    """Convenience wrapper: ``MonthlyReportPdf(layout).render(report)``."""
    return MonthlyReportPdf(layout).render(report)


__all__ = ["LAYOUT", "Layout", "MonthlyReportPdf", "render_pdf"]
