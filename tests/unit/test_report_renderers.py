"""PDF, JSON and CSV renderings of the monthly report agree with each other (issue 5)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from pypdf import PdfReader

from fit_service.adapters.report_pdf import MonthlyReportPdf
from fit_service.adapters.report_tabular import CSV_COLUMNS, to_csv, to_json_dict, value_cell
from fit_service.domain.effect_sizes import ClusterSpread
from fit_service.domain.monthly_report import (
    HEADLINE_KEYS,
    Activity,
    AllianceSummary,
    CompletenessSummary,
    DropoutSummary,
    Estimate,
    GroupFigures,
    GroupReport,
    MonthlyReport,
    OutcomeCounts,
    SessionStats,
    Share,
    TrendPoint,
    mean_estimate,
    trailing_months,
)
from tests.factories import report_figures

GENERATED = datetime(2024, 6, 3, 7, 30, tzinfo=UTC)


#: The per-clinician tables' columns after the label, in order (the JSON's keys): what the PDF
#: tests read the rows by, written out here rather than taken from the renderer.
CLINICIAN_COLUMNS = (
    "episodes_closed",
    "reliable_improvement",
    "reliable_deterioration",
    "dropout_rate",
    "srs_below_concern",
    "severity_adjusted_es",
)


def figures(scale: int = 1) -> GroupFigures:
    return report_figures(scale)


def trend(scale: int) -> tuple[TrendPoint, ...]:
    return tuple(
        TrendPoint(month, Share(scale + i % 3, 3 * scale), mean_estimate([4.0, 6.0] * scale))
        for i, month in enumerate(trailing_months("2024-05"))
    )


def group(key: str, label: str, scale: int, trailing_scale: int | None = None) -> GroupReport:
    return GroupReport(
        key=key,
        label=label,
        month=figures(scale),
        trailing_12=figures(trailing_scale or 12 * scale),
        trend=trend(scale),
    )


def make_report(**changes: Any) -> MonthlyReport:
    """A clinic with two clinicians and one age band; enough data for every figure."""
    base = MonthlyReport(
        clinic_name="Harbour & Hill Therapy",
        period="2024-05",
        generated_at=GENERATED,
        overall=group("clinic", "Whole clinic", 30),
        clinicians=(group("c-22", "T-22", 12), group("c-05", "T-05", 15)),
        age_bands=(group("adult", "Adults (18+)", 25), group("adolescent", "Adolescents", 5)),
    )
    return replace(base, **changes)


def pdf_text(data: bytes) -> str:
    """All page text with whitespace runs collapsed, so line wraps don't split a figure."""
    reader = PdfReader(io.BytesIO(data))
    return _squash(" ".join(page.extract_text() for page in reader.pages))


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def renderer() -> MonthlyReportPdf:
    return MonthlyReportPdf()


# ---------------------------------------------------------------- JSON


def test_json_carries_numbers_with_their_n_and_ci() -> None:
    """A proportion is a fraction with numerator, n and Wilson CI; counts are plain ints."""
    data = to_json_dict(make_report())
    cell = data["overall"]["month"]["dropout_rate"]
    assert cell["kind"] == "proportion"
    assert cell["value"] == pytest.approx(30 / 120)
    assert cell["numerator"] == 30
    assert cell["n"] == 120
    assert 0 < cell["ci_low"] < cell["value"] < cell["ci_high"] < 1
    assert cell["too_few"] is False
    assert data["overall"]["month"]["sessions_delivered"] == {
        "label": "Sessions delivered",
        "group": "Activity",
        "kind": "count",
        "value": 600,
        "display": "600",
    }


def test_json_too_few_cells_are_null_but_keep_n() -> None:
    """Below min_n the value, numerator and CI are null, too_few is true and n remains."""
    data = to_json_dict(make_report(overall=group("clinic", "Whole clinic", 1)))
    cell = data["overall"]["month"]["reliable_improvement"]
    assert cell == {
        "label": "Reliably improved (recovered or improved)",
        "group": "Outcomes (closed episodes with two or more ORS)",
        "kind": "proportion",
        "value": None,
        "numerator": None,
        "n": 3,
        "ci_low": None,
        "ci_high": None,
        "too_few": True,
        "display": "too few (n=3)",
    }


def test_json_is_stable_and_serialisable() -> None:
    """The same report serialises to the same JSON text, with settings and methods included."""
    first = json.dumps(to_json_dict(make_report()))
    assert first == json.dumps(to_json_dict(make_report()))
    data = json.loads(first)
    assert data["settings"]["min_n"] == 10
    assert data["settings"]["dropout_definition"]
    assert data["generated_at"] == "2024-06-03T07:30:00Z"
    assert [c["label"] for c in data["clinicians"]] == ["T-05", "T-22"]
    assert any(b["source"].startswith("Swift & Greenberg 2012") for b in data["benchmarks"])


# ---------------------------------------------------------------- CSV


def test_csv_is_long_format_with_every_figure() -> None:
    """One row per group x window x metric (+ trend rows), under the documented header."""
    report = make_report()
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    per_window = len(report.overall.month.metrics())
    groups = 1 + len(report.clinicians) + len(report.age_bands)
    assert len(rows) == groups * (2 * per_window + 2 * 12)
    dropout = next(
        r
        for r in rows
        if r["section"] == "overall" and r["window"] == "2024-05" and r["metric"] == "dropout_rate"
    )
    assert (dropout["value"], dropout["numerator"], dropout["n"]) == ("0.25", "30", "120")
    assert {r["window"] for r in rows} >= {"2024-05", "2023-06/2024-05", "2023-06"}


def test_csv_too_few_rows_are_blank() -> None:
    """A too-few cell has empty value, numerator and CI, and too_few=true."""
    rows = csv.DictReader(io.StringIO(to_csv(make_report(overall=group("clinic", "x", 1)))))
    row = next(r for r in rows if r["metric"] == "recovered" and r["window"] == "2024-05")
    assert (row["value"], row["numerator"], row["ci_low"], row["n"], row["too_few"]) == (
        "",
        "",
        "",
        "3",
        "true",
    )


def test_csv_clinician_ids_cannot_run_as_spreadsheet_formulas() -> None:
    """An EHR clinician id that starts like a formula is a text cell in Excel ('-prefixed);
    negative numbers stay numbers, and the JSON keeps the id as it is."""
    hostile = ('=HYPERLINK("http://x","a")', "+SUM(1,2)", "-2+3", "@cmd", "\tx")
    report = make_report(
        clinicians=tuple(group(key, key, 12) for key in hostile),
        overall=replace(
            group("clinic", "Whole clinic", 30),
            month=replace(figures(30), pre_post_d=Estimate(-0.25, 30, -0.5, 0.0)),
        ),
    )
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    shown = {r["group"] for r in rows if r["section"] == "clinician"}
    assert shown == {"'" + key for key in hostile}
    effect = next(r for r in rows if r["section"] == "overall" and r["metric"] == "pre_post_d")
    assert effect["value"] == "-0.25"
    assert {c["key"] for c in to_json_dict(report)["clinicians"]} == set(hostile)


# ---------------------------------------------------------------- PDF


def test_pdf_figures_equal_the_json(renderer: MonthlyReportPdf) -> None:
    """Every headline figure's JSON display string, month and trailing 12, is in the PDF text,
    the shown percentage is the JSON value times 100 to one decimal, and each clinician's
    table rows read as the JSON's displays."""
    report = make_report()
    text = pdf_text(renderer.render(report))
    data = to_json_dict(report)
    for window in ("month", "trailing_12"):
        for key in HEADLINE_KEYS:
            cell = data["overall"][window][key]
            assert _squash(cell["display"]) in text, (window, key, cell["display"])
            if cell["kind"] == "proportion" and not cell["too_few"]:
                assert f"{100 * cell['value']:.1f}% (n={cell['n']:,}" in text
    # Each clinician's row of the month and of the trailing-12 table: the label, then every
    # column's JSON display (both clinicians have month outcome figures, so month rows).
    columns = CLINICIAN_COLUMNS
    for clinician in data["clinicians"]:
        for window in ("month", "trailing_12"):
            cells = [_squash(clinician[window][key]["display"]) for key in columns]
            assert " ".join([clinician["label"], *cells]) in text, (clinician["label"], window)


def test_pdf_is_byte_identical_for_the_same_report(renderer: MonthlyReportPdf) -> None:
    """Rendering twice (even with a fresh renderer) gives the same bytes."""
    report = make_report()
    assert renderer.render(report) == MonthlyReportPdf().render(report)


def test_pdf_has_title_author_date_and_page_numbers(renderer: MonthlyReportPdf) -> None:
    """Metadata carries title and author, the creation date is generated_at, and every page
    says 'Page X of Y'."""
    reader = PdfReader(io.BytesIO(renderer.render(make_report())))
    meta = reader.metadata
    assert meta is not None
    assert meta.title == "Monthly outcome and alliance report: Harbour & Hill Therapy, May 2024"
    assert meta.author == "fit-service"
    assert meta["/CreationDate"] == "D:20240603073000+00'00'"
    total = len(reader.pages)
    assert total >= 6
    for number, page in enumerate(reader.pages, start=1):
        assert f"Page {number} of {total}" in page.extract_text()


def test_pdf_has_every_section(renderer: MonthlyReportPdf) -> None:
    """Cover, summary, charts, all figures, clinicians and methods with sources are present."""
    text = pdf_text(renderer.render(make_report()))
    for heading in ("Summary", "Charts", "All figures", "Clinicians", "Methods"):
        assert heading in text
    for source in (
        "Wilson 1927",
        "Jacobson & Truax 1991",
        "Seidel, Miller & Chow 2014",
        "Swift & Greenberg 2012",
        "Hansen, Lambert & Forman 2002",
    ):
        assert source in text
    assert "Generated 2024-06-03 07:30 UTC" in text


def test_empty_month_renders_and_says_so(renderer: MonthlyReportPdf) -> None:
    """A month with no data still renders a valid PDF that says there was no data."""
    empty = GroupReport("clinic", "Whole clinic", GroupFigures.empty(), GroupFigures.empty())
    report = make_report(overall=empty, clinicians=(), age_bands=())
    assert report.is_empty
    data = renderer.render(report)
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    assert "No data for May 2024" in text
    assert "No clinician had figures in this period." in text
    assert to_json_dict(report)["is_empty"] is True


def test_one_client_month_shows_counts_but_no_rates(renderer: MonthlyReportPdf) -> None:
    """With one client (one episode, a few sessions) counts print, every rate says too few."""
    one = GroupFigures(
        activity=Activity(1, 1, 1, 4, 1, 0),
        sessions=SessionStats.from_episodes([4], [28]),
        intake_ors=mean_estimate([17.0]),
        intake_srs=mean_estimate([33.0]),
        outcomes=OutcomeCounts(1, 0, 0, 0, 0, 0, 0, 1),
        pre_post_d=Estimate(None, 1),
        severity_adjusted_es=Estimate(None, 1),
        dropout=DropoutSummary(1, 0, 1, 0, 0, 0),
        alliance=AllianceSummary(4, 1, 1, 1, 1, Estimate(3.0, 1), 0, 0),
        completeness=CompletenessSummary(4, 4, 4),
    )
    clinician = GroupReport("c-1", "T-01", one, figures(1))
    report = make_report(
        overall=GroupReport("clinic", "Whole clinic", one, figures(1)),
        clinicians=(clinician,),
        age_bands=(),
    )
    text = pdf_text(renderer.render(report))
    data = to_json_dict(report)["overall"]["month"]
    assert data["sessions_delivered"]["value"] == 4
    assert data["recovered"]["too_few"] is True
    assert "too few (n=1)" in text
    assert "100.0%" not in text  # one recovered client must not read as a 100% recovery rate


def tiny_figures() -> GroupFigures:
    """A window where every n behind a rate or mean is below 10."""
    return GroupFigures(
        activity=Activity(6, 2, 3, 7, 1, 1),
        sessions=SessionStats.from_episodes([1, 2, 4], [0, 14, 30]),
        intake_ors=mean_estimate([15.0, 22.0, 19.5]),
        intake_srs=mean_estimate([31.0, 37.0, 35.0]),
        outcomes=OutcomeCounts(1, 0, 1, 0, 0, 1, 0, 2),
        pre_post_d=Estimate(0.5, 3, 0.1, 0.9),
        severity_adjusted_es=Estimate(0.4, 2, -0.2, 1.0),
        dropout=DropoutSummary(3, 1, 2, 1, 0, 1),
        alliance=AllianceSummary(6, 2, 2, 1, 1, Estimate(5.0, 1), 2, 1),
        completeness=CompletenessSummary(7, 6, 6),
    )


def test_all_small_n_month_says_too_few_everywhere(renderer: MonthlyReportPdf) -> None:
    """When every n is below min_n, no percentage, mean or interval is printed, only 'too few'."""
    small = GroupReport("clinic", "Whole clinic", tiny_figures(), tiny_figures(), trend(1))
    report = make_report(
        overall=small,
        clinicians=(replace(small, key="c-1", label="T-01"),),
        age_bands=(replace(small, key="adult", label="Adults (18+)"),),
    )
    data = to_json_dict(report)
    for window in ("month", "trailing_12"):
        rates = [c for c in data["overall"][window].values() if c["kind"] != "count"]
        assert all(c["too_few"] and c["value"] is None for c in rates)
    text = pdf_text(renderer.render(report))
    before_methods = text[: text.index("Methods Every definition")]
    assert "too few (n=7)" in before_methods
    # No figure's own interval (literature references keep theirs, e.g. "19.7% (95% CI ...").
    assert not re.search(r"n=[\d,]+, 95% CI", before_methods)
    assert not re.search(r"\d%\s\(n=", before_methods)


def test_clinician_view_hides_other_clinicians(renderer: MonthlyReportPdf) -> None:
    """A clinician's PDF and JSON mention their own label and no colleague's or clinic totals."""
    full = make_report()
    view = full.for_clinician("c-22")
    text = pdf_text(renderer.render(view))
    assert "T-22" in text
    assert "T-05" not in text
    assert "Clinician view" in text
    dumped = json.dumps(to_json_dict(view))
    assert "T-05" not in dumped
    assert "c-05" not in dumped
    assert to_json_dict(view)["overall"]["key"] == "c-22"
    clinic_total = to_json_dict(full)["overall"]["month"]["episodes_active"]["value"]
    assert to_json_dict(view)["overall"]["month"]["episodes_active"]["value"] != clinic_total


def test_pdf_contains_no_identifiers_or_item_ids(renderer: MonthlyReportPdf) -> None:
    """The PDF text holds only group labels it was given: no client ids, no item ids/text."""
    text = pdf_text(renderer.render(make_report())).lower()
    for forbidden in ("client_id", "client id:", "interpersonal", "relationship", "item01"):
        assert forbidden not in text


def test_clinicians_are_not_ranked(renderer: MonthlyReportPdf) -> None:
    """Clinicians appear in label order, not by performance, and with intervals."""
    text = pdf_text(renderer.render(make_report()))
    clinicians = text[text.index("Clinicians Listed by label") :]
    assert clinicians.index("T-05") < clinicians.index("T-22")
    assert "95% Wilson intervals" in clinicians


def test_a_too_few_rate_over_sessions_hides_its_clients_too() -> None:
    """The number of clients behind a suppressed rate is as revealing as its numerator."""
    spread = ClusterSpread.of([1, 2], [3, 4])
    small = value_cell(Share(3, 7, spread), min_n=10)
    assert (small["too_few"], small["clusters"], small["effective_n"]) == (True, None, None)
    assert small["n"] == 7
    shown = value_cell(Share(3, 7, spread), min_n=5)
    assert (shown["too_few"], shown["clusters"]) == (False, 2)
    assert 0 < shown["effective_n"] <= 7
