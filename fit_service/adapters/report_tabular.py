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
from typing import Any

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


#: Each metric with its heading as the plain string the JSON prints (``MetricGroup.value``
#: looked up once, not per cell).
_SPECS: tuple[tuple[MetricSpec, str], ...] = tuple(
    (spec, spec.group.value) for spec in METRIC_SPECS
)


def _figures(figures: GroupFigures, min_n: int) -> dict[str, Any]:
    # Straight from the metric table rather than figures.metrics(): building the Metric
    # objects only to unpack them here was ~40% of the JSON export's time.
    return {
        spec.key: {
            "label": spec.label_for(figures),
            "group": group,
            **value_cell(spec.value_of(figures), min_n, spec.decimals),
        }
        for spec, group in _SPECS
    }


def _group(group: GroupReport, min_n: int) -> dict[str, Any]:
    return {
        "key": group.key,
        "label": group.label,
        "month": _figures(group.month, min_n),
        "trailing_12": _figures(group.trailing_12, min_n),
        "trend": [
            {
                "month": point.month,
                "recovery": value_cell(point.recovery, min_n),
                "mean_sessions": value_cell(point.mean_sessions, min_n),
            }
            for point in group.trend
        ],
    }


def to_json_dict(report: MonthlyReport) -> dict[str, Any]:
    """The report as a JSON-able dict (``json.dumps`` it as is; key order is stable)."""
    min_n = report.min_n
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
        "overall": _group(report.overall, min_n),
        "clinicians": [_group(group, min_n) for group in report.clinicians_by_label()],
        "age_bands": [_group(group, min_n) for group in report.age_bands],
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


def _csv_row(where: tuple[str, ...], metric: str, value: Value, min_n: int) -> list[str]:
    """One figure's row: ``where`` and ``metric`` are already :func:`_csv_text` cells (they
    repeat for every row of a group, so they are escaped once, not per row)."""
    number, numerator, n, low, high, too_few = _numbers(value, min_n)
    return [
        *where,
        metric,
        _csv_number(number),
        _csv_number(numerator),
        _csv_number(n),
        _csv_number(low),
        _csv_number(high),
        "true" if too_few else "false",
    ]


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
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for section, group in sections:
        for window, figures in ((report.period, group.month), (trailing, group.trailing_12)):
            where = (_csv_text(section), _csv_text(group.key), _csv_text(window))
            # Straight from the metric table, as the JSON does (no Metric objects).
            writer.writerows(
                _csv_row(where, metric, spec.value_of(figures), min_n)
                for spec, metric in _CSV_METRICS
            )
        for point in group.trend:
            where = (_csv_text(section), _csv_text(group.key), _csv_text(point.month))
            writer.writerow(_csv_row(where, _CSV_TREND_RECOVERY, point.recovery, min_n))
            writer.writerow(_csv_row(where, _CSV_TREND_MEAN_SESSIONS, point.mean_sessions, min_n))
    return buffer.getvalue()
