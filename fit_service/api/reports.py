"""/v1/reports: monthly benchmark reports (PDF, JSON, CSV by Accept).

``GET /v1/reports/monthly/{YYYY-MM}`` answers in the format the ``Accept`` header prefers among
``application/pdf`` (also the answer to ``*/*`` or no Accept header: the document a manager
downloads), ``application/json`` and ``text/csv``; anything else is a 406 problem. All three are
renderings of the same report object, so their figures agree. Managers get the clinic's report,
or one clinician's page with ``?clinician=<EHR clinician id>``; clinician keys get their own
page only; other roles (ingest, admin) get a 403 before the query, the Accept header or the
month is looked at. The month is the clinic's own (its time zone).
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, request
from flask.views import MethodView
from marshmallow import RAISE, fields

from fit_service.api import docs, problems
from fit_service.api.auth import requires
from fit_service.api.context import principal, run, wiring
from fit_service.api.parsing import Blueprint
from fit_service.api.schemas import EXTERNAL_ID, EXTERNAL_ID_DOC, _Base
from fit_service.services import audit, monthly_reports
from fit_service.services.principals import Permission

blp = Blueprint("reports", __name__, url_prefix="/v1", description="Monthly benchmark reports")

_MEDIA_TYPES = [fmt.media_type for fmt in monthly_reports.FORMATS]

#: The formats written in UTF-8 (and said so: the CSV answer is ``text/csv; charset=utf-8``;
#: JSON is UTF-8 by definition, RFC 8259).
_UTF8 = {"application/json", "text/csv"}

#: Each format as Accept may name it -> its media type, in the order of preference. werkzeug
#: matches a media range with parameters only to an offer with the same parameters (names
#: and values compared case-insensitively), so ``text/csv; charset=utf-8``, the very
#: Content-Type of the CSV answer, matched none of the bare types and was a 406. A text
#: format is offered with its charset too: ``charset=utf-8`` (any case) matches it, another
#: charset or a parameter it does not have does not. q-values are werkzeug's as ever.
_OFFERS = {
    spelling: media_type
    for media_type in _MEDIA_TYPES
    for spelling in (
        (media_type, f"{media_type}; charset=utf-8") if media_type in _UTF8 else (media_type,)
    )
}


class ReportArgs(_Base):
    clinician = fields.String(
        load_default=None,
        validate=EXTERNAL_ID,  # the sessions' own rule, so a trailing newline is refused too
        metadata={
            **EXTERNAL_ID_DOC,
            "description": "EHR clinician id: that clinician's page (managers only).",
        },
    )


def _not_acceptable() -> Response:
    body = problems.problem_dict(
        406,
        f"this report is available as {', '.join(_MEDIA_TYPES)}; send one of them in Accept",
        rule="not_acceptable",
        field="Accept",
    )
    audit.record_refusal(
        wiring().session_factory,
        principal(),
        audit.AuditEntry("report.read", "report", None, "rejected", 406),
        g.get("request_id"),
    )
    return problems.problem_response(body)


def _negotiate() -> str | None:
    """The offered media type Accept prefers; PDF when the header is absent (RFC 9110: no
    Accept means any type)."""
    if not request.headers.get("Accept", "").strip():
        return _MEDIA_TYPES[0]
    best = request.accept_mimetypes.best_match(_OFFERS)
    return None if best is None else _OFFERS[best]


#: The three renderings of one report (``Accept`` picks; PDF when it names none).
_REPORT_CONTENT = {
    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"type": "object"}},
    "text/csv": {"schema": {"type": "string"}},
}


#: The headers every report answer carries (``MonthlyReport.get``), declared on its 200.
_REPORT_HEADERS = {
    "Content-Disposition": {
        "description": "An attachment, named for the month (and the clinician, for one "
        'clinician\'s page): attachment; filename="monthly-report-2026-10.pdf".',
        "required": True,
        "schema": {"type": "string"},
    },
    "Vary": {
        "description": "Accept: the format depends on it.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "private, no-store: a report holds clinical figures.",
        "required": True,
        "schema": {"type": "string"},
    },
}


#: The month as the document states it (services/monthly_reports.parse_period is the rule).
_MONTH_PARAMETER = {
    "in": "path",
    "name": "month",
    "required": True,
    "description": "The report's month, YYYY-MM (clinic-local); not a future month.",
    "schema": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"},
}


@blp.route("/reports/monthly/<string:month>", parameters=[_MONTH_PARAMETER])
class MonthlyReport(MethodView):
    # checked before the query is parsed and Accept negotiated (see auth.requires)
    @requires(Permission.REPORTS_READ)
    @blp.arguments(ReportArgs, location="query", unknown=RAISE)
    @blp.response(
        200,
        description="The report as PDF (default), JSON or CSV, chosen by Accept.",
        content_type="application/pdf",
    )
    # Keyed 200, as the decorator above keys it: keyed "200", it replaced that response
    # whole in the document, its required description lost (no valid OpenAPI 3).
    @blp.doc(responses={200: {"content": _REPORT_CONTENT, "headers": _REPORT_HEADERS}})
    @docs.errors(
        blp,
        *docs.AUTH,
        406,
        described={
            403: "The key's role may not read reports, or a clinician asked for another's page.",
            404: "No such clinician in this clinic.",
            422: "Malformed or future month, or an unknown query parameter.",
        },
    )
    def get(self, args: dict[str, Any], month: str) -> Any:
        """A clinic's monthly benchmark report for YYYY-MM, or one clinician's page."""
        media_type = _negotiate()
        if media_type is None:
            return _not_acceptable()
        rendered = run(monthly_reports.monthly_report_file, month, media_type, args["clinician"])
        response = Response(rendered.body, status=200, mimetype=rendered.media_type)
        if rendered.media_type == "text/csv":
            response.headers["Content-Type"] = "text/csv; charset=utf-8"
        response.headers["Content-Disposition"] = f'attachment; filename="{rendered.filename}"'
        response.headers["Vary"] = "Accept"
        response.headers["Cache-Control"] = "private, no-store"
        return response
