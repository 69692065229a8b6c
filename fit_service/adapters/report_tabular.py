"""JSON and CSV renderings of a :class:`~fit_service.domain.monthly_report.MonthlyReport`.

Both walk :meth:`GroupFigures.metrics`, the same list the PDF prints, so the three formats carry
the same figures under the same keys. Conventions (also the API documentation of the export):

* **Proportions** are fractions (0.65, not 65), with ``numerator``, ``n`` (the denominator) and a
  Wilson 95% CI as ``ci_low``/``ci_high``. A rate over sessions (no-shows, cancellations,
  completeness, SRS below the concern line) also carries ``clusters`` (the clients its
  sessions come from) and ``effective_n`` (the n its interval is computed on: one client's
  sessions are not independent, see the report's methods).
* **Estimates** (means, medians, effect sizes) carry ``value``, ``n`` and, where there is one, the
  95% CI; a median has ``ci_low``/``ci_high`` null.
* **Too few**: when n is below ``settings.min_n`` the cell keeps its ``n`` and says
  ``"too_few": true``; ``value``, ``numerator``, the CI (and ``clusters``, ``effective_n``) are
  null, so a small cell is no more revealing here than in the PDF.
* **Counts** are plain integers and are never suppressed.
* Every cell also carries ``display``: the exact string the PDF prints.
* Numbers are unrounded floats; key order is fixed (``sort_keys`` is not needed and not used).

CSV is long format, one figure per row::

    section,group,window,metric,value,numerator,n,ci_low,ci_high,too_few

``section`` is ``overall``, ``clinician`` or ``age_band``; ``group`` the group's key;
``window`` the month (``2024-05``), the trailing 12 months (``2023-06/2024-05``) or a trend month
with metric ``trend_recovery`` / ``trend_mean_sessions``. Empty fields are nulls. A text field
that a spreadsheet would read as a formula (a clinician id starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) is prefixed with ``'`` (OWASP's advice on CSV injection):
managers open this file in Excel. The JSON keeps the key as it is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from fit_service.domain.monthly_report import (
    Count,
    GroupFigures,
    GroupReport,
    MonthlyReport,
    Share,
    Value,
    method_notes,
    trailing_months,
)
from fit_service.domain.monthly_report.figures import METRIC_SPECS, MetricSpec

_T = TypeVar("_T")

#: Bumped when a key is renamed or removed (adding keys is not a breaking change).
SCHEMA = "fit-service/monthly-report/1"

CSV_COLUMNS: tuple[str, ...] = (
    "section",
    "group",
    "window",
    "metric",
    "value",
    "numerator",
    "n",
    "ci_low",
    "ci_high",
    "too_few",
)


def _numbers(value: Value, min_n: int) -> tuple[Any, int | None, int | None, Any, Any, bool]:
    """``value``'s ``(value, numerator, n, ci_low, ci_high, too_few)``, with the too-few rule
    applied (see the module docstring): the one place both JSON and CSV take them from."""
    if isinstance(value, Count):
        return value.value, None, None, None, None, False
    if isinstance(value, Share):
        if value.is_too_few(min_n):
            return None, None, value.denominator, None, None, True
        # The interval is read once (not once per end): this runs for every cell.
        low, high = value.ci or (None, None)
        return value.value, value.numerator, value.denominator, low, high, False
    if value.is_too_few(min_n):
        return None, None, value.n, None, None, True
    return value.value, None, value.n, value.ci_low, value.ci_high, False


def value_cell(value: Value, min_n: int, decimals: int = 1) -> dict[str, Any]:
    """One figure as a JSON object, applying the too-few rule (see the module docstring)."""
    if isinstance(value, Count):
        return {"kind": "count", "value": value.value, "display": value.display()}
    number, numerator, n, low, high, too_few = _numbers(value, min_n)
    if isinstance(value, Share):
        cell = {
            "kind": "proportion",
            "value": number,
            "numerator": numerator,
            "n": n,
            "ci_low": low,
            "ci_high": high,
            "too_few": too_few,
            "display": value.display(min_n, decimals),
        }
        if value.spread is not None:
            # Both hidden in a too-few cell, as the numerator is: how many clients a handful
            # of sessions came from says more about them than the cell may.
            cell["clusters"] = None if too_few else value.clusters
            cell["effective_n"] = None if too_few else value.effective_n
        return cell
    return {
        "kind": "estimate",
        "value": number,
        "n": n,
        "ci_low": low,
        "ci_high": high,
        "too_few": too_few,
        "display": value.display(min_n, decimals),
    }


class _Memo(Generic[_T]):
    """A per-cell result (a JSON cell, a CSV row's numbers) for one report's render, each
    distinct cell worked out once.

    Most cells repeat within a report: the 200-clinician benchmark has ~9,000 proportions
    without a clustered interval but ~1,000 distinct (numerator, n) pairs, and every too-few
    estimate of one n reads the same. Each distinct one's Wilson interval and printed text
    are computed once here (~4.5 us a proportion; a lookup ~0.3 us). Kept for one render only:
    the API renders a report once, so a cache across renders would only flatter benchmarks.
    """

    __slots__ = ("_known", "_make", "_min_n")

    def __init__(self, min_n: int, make: Callable[[Value, int], _T]) -> None:
        """``make(value, decimals)``: the result, for this ``min_n``."""
        self._min_n = min_n
        self._make = make
        self._known: dict[Hashable, _T] = {}

    def __call__(self, value: Value, decimals: int = 1) -> _T:
        """``make(value, decimals)``, shared between equal cells: copy it before changing it."""
        key = _cell_key(value, self._min_n, decimals)
        if key is None:
            return self._make(value, decimals)
        known = self._known.get(key)
        if known is None:
            known = self._known[key] = self._make(value, decimals)
        return known


def _cell_key(value: Value, min_n: int, decimals: int) -> Hashable | None:
    """Everything ``value_cell(value, min_n, decimals)`` depends on, for one ``min_n``; ``None``
    for a cell not worth remembering (a clustered rate's or a shown estimate's numbers rarely
    repeat)."""
    if isinstance(value, Count):
        return ("count", value.value)
    if isinstance(value, Share):
        if value.spread is not None:
            return None
        return ("proportion", value.numerator, value.denominator, decimals)
    if value.is_too_few(min_n):
        # Value and interval are hidden and "too few (n=4)" has no decimals: n is all there is.
        return ("estimate", value.n)
    return None


#: Each metric with its heading as the plain string the JSON prints (``MetricGroup.value``
#: looked up once, not per cell).
_SPECS: tuple[tuple[MetricSpec, str], ...] = tuple(
    (spec, spec.group.value) for spec in METRIC_SPECS
)


def _figures(figures: GroupFigures, cells: _Memo[dict[str, Any]]) -> dict[str, Any]:
    # Straight from the metric table rather than figures.metrics(): building the Metric
    # objects only to unpack them here was ~40% of the JSON export's time.
    return {
        spec.key: {
            "label": spec.label_for(figures),
            "group": group,
            **cells(spec.value_of(figures), spec.decimals),
        }
        for spec, group in _SPECS
    }


def _group(group: GroupReport, cells: _Memo[dict[str, Any]]) -> dict[str, Any]:
    return {
        "key": group.key,
        "label": group.label,
        "month": _figures(group.month, cells),
        "trailing_12": _figures(group.trailing_12, cells),
        "trend": [
            {
                "month": point.month,
                "recovery": dict(cells(point.recovery)),
                "mean_sessions": dict(cells(point.mean_sessions)),
            }
            for point in group.trend
        ],
    }


def to_json_dict(report: MonthlyReport) -> dict[str, Any]:
    """The report as a JSON-able dict (``json.dumps`` it as is; key order is stable)."""
    min_n = report.min_n
    cells = _Memo(min_n, lambda value, decimals: value_cell(value, min_n, decimals))
    settings = report.settings
    return {
        "schema": SCHEMA,
        "clinic": report.clinic_name,
        "period": report.period,
        "period_label": report.period_label,
        "generated_at": report.generated_at.isoformat().replace("+00:00", "Z"),
        "scope": report.scope.value,
        "is_empty": report.is_empty,
        "in_progress": report.in_progress,
        "settings": {
            "min_n": settings.min_n,
            "ors_cutoff_adult": settings.ors_cutoff_adult,
            "ors_cutoff_adolescent": settings.ors_cutoff_adolescent,
            "cors_cutoff": settings.cors_cutoff,
            "cutoff_is_clinical": settings.cutoff_is_clinical,
            "reliable_change": settings.reliable_change,
            "srs_concern": settings.srs_concern,
            "dropout_definition": settings.dropout_definition,
            "follow_up_days": settings.follow_up_days,
            "severity_reference": settings.severity_reference,
        },
        "overall": _group(report.overall, cells),
        "clinicians": [_group(group, cells) for group in report.clinicians_by_label()],
        "age_bands": [_group(group, cells) for group in report.age_bands],
        "benchmarks": [
            {
                "metric": b.metric_key,
                "text": b.text,
                "source": b.source,
                "note": b.note,
                "low": b.low,
                "high": b.high,
            }
            for b in report.benchmarks
        ],
        "methods": [
            {"term": note.term, "definition": note.definition, "source": note.source}
            for note in method_notes(settings)
        ],
    }


#: What a spreadsheet takes as the start of a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(text: str) -> str:
    """``text`` as a CSV cell that Excel and LibreOffice show as text, never run as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_number(number: float | int | None) -> str:
    return "" if number is None else repr(number)


def _csv_numbers(value: Value, min_n: int) -> tuple[str, ...]:
    """A figure's columns from ``value`` to ``too_few``."""
    number, numerator, n, low, high, too_few = _numbers(value, min_n)
    return (
        _csv_number(number),
        _csv_number(numerator),
        _csv_number(n),
        _csv_number(low),
        _csv_number(high),
        "true" if too_few else "false",
    )


#: The metric column of each metric row and of the two trend rows, escaped once.
_CSV_METRICS: tuple[tuple[MetricSpec, str], ...] = tuple(
    (spec, _csv_text(spec.key)) for spec in METRIC_SPECS
)
_CSV_TREND_RECOVERY = _csv_text("trend_recovery")
_CSV_TREND_MEAN_SESSIONS = _csv_text("trend_mean_sessions")


def to_csv(report: MonthlyReport) -> str:
    """The report's figures in long format (see the module docstring for the columns)."""
    min_n = report.min_n
    months = trailing_months(report.period)
    trailing = f"{months[0]}/{months[-1]}"
    sections = (
        [("overall", report.overall)]
        + [("clinician", group) for group in report.clinicians_by_label()]
        + [("age_band", group) for group in report.age_bands]
    )
    # The CSV prints no text, so the decimals don't matter: every cell asks with the default.
    numbers = _Memo(min_n, lambda value, _decimals: _csv_numbers(value, min_n))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for section, group in sections:
        for window, figures in ((report.period, group.month), (trailing, group.trailing_12)):
            where = (_csv_text(section), _csv_text(group.key), _csv_text(window))
            # Straight from the metric table, as the JSON does (no Metric objects).
            writer.writerows(
                (*where, metric, *numbers(spec.value_of(figures))) for spec, metric in _CSV_METRICS
            )
        for point in group.trend:
            where = (_csv_text(section), _csv_text(group.key), _csv_text(point.month))
            writer.writerow((*where, _CSV_TREND_RECOVERY, *numbers(point.recovery)))
            writer.writerow((*where, _CSV_TREND_MEAN_SESSIONS, *numbers(point.mean_sessions)))
    return buffer.getvalue()
