"""GET /v1/reports/monthly/{YYYY-MM}: formats by Accept, roles, tenancy, errors, audit."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from fit_service.adapters.orm import AuditEvent
from tests.conftest import Tenant, session_payload

URL = "/v1/reports/monthly/2026-10"
_FULL_WIDTH_2026_11 = "\uff12\uff10\uff12\uff16-11"  # digits \d matches, int() reads


def _post(client: FlaskClient, tenant: Tenant, **changes: Any) -> None:
    response = client.post("/v1/sessions", json=session_payload(**changes), headers=tenant.auth())
    assert response.status_code == 201, response.get_json()


@pytest.fixture
def october(client: FlaskClient, tenant: Tenant) -> None:
    """Two clients of two clinicians with October sessions."""
    _post(client, tenant, ehr_session_id="S-1", date="2026-10-05")
    _post(client, tenant, ehr_session_id="S-2", date="2026-10-12")
    _post(
        client, tenant, ehr_session_id="S-3", client_id="C-2", clinician_id="T-2", date="2026-10-06"
    )


def _get(
    client: FlaskClient, tenant: Tenant, role: str = "manager", url: str = URL, **headers: str
) -> Any:
    return client.get(url, headers={**tenant.auth(role), **headers})


def test_pdf_is_the_default_answer(client: FlaskClient, tenant: Tenant, october: None) -> None:
    """Without an Accept header, or with */*, the manager downloads the PDF as an attachment."""
    for headers in ({}, {"Accept": "*/*"}):
        response = _get(client, tenant, **headers)
        assert response.status_code == 200
        assert response.mimetype == "application/pdf"
        assert response.data.startswith(b"%PDF-")
        assert response.headers["Content-Disposition"] == (
            'attachment; filename="monthly-report-2026-10.pdf"'
        )
        assert response.headers["Vary"] == "Accept"


@pytest.mark.parametrize("accept", ["application/pdf", "application/json", "text/csv"])
def test_every_header_a_report_answer_carries_is_declared_on_its_200(
    client: FlaskClient, tenant: Tenant, october: None, accept: str
) -> None:
    """Content-Disposition, Vary and Cache-Control, sent with each format, are declared on
    the report's 200 in the OpenAPI document, as required (every answer carries them)."""
    response = _get(client, tenant, Accept=accept)
    assert response.status_code == 200
    spec = client.get("/v1/openapi.json").json
    declared = spec["paths"]["/v1/reports/monthly/{month}"]["get"]["responses"]["200"]
    headers = declared.get("headers", {})
    sent = {name for name, _ in response.headers.items()}
    own = sent - {"Content-Type", "Content-Length", "X-Request-Id"}
    assert own == {"Content-Disposition", "Vary", "Cache-Control"}
    assert own <= set(headers), sorted(own - set(headers))
    assert all(headers[name]["required"] is True for name in own)


def test_json_and_csv_by_accept(client: FlaskClient, tenant: Tenant, october: None) -> None:
    """Accept picks JSON or CSV; both carry the month's figures."""
    data = _get(client, tenant, Accept="application/json").get_json()
    assert data["period"] == "2026-10"
    assert data["overall"]["month"]["sessions_delivered"]["value"] == 3
    assert {c["key"] for c in data["clinicians"]} == {"T-1", "T-2"}
    csv = _get(client, tenant, Accept="text/csv")
    assert csv.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "overall,clinic,2026-10,sessions_delivered,3," in csv.get_data(as_text=True)
    preferred = _get(client, tenant, Accept="text/csv;q=0.5, application/json")
    assert preferred.mimetype == "application/json"


def test_unsupported_accept_is_a_406_problem(client: FlaskClient, tenant: Tenant) -> None:
    """An Accept header naming no offered format gets a 406 problem naming Accept."""
    response = _get(client, tenant, Accept="text/html")
    assert response.status_code == 406
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert (body["rule"], body["field"]) == ("not_acceptable", "Accept")


@pytest.mark.parametrize(
    "month",
    [
        "2026-13",
        "2026-1",
        "october",
        "2026-00",
        "0000-01",
        "0001-01",
        "1899-12",
        _FULL_WIDTH_2026_11,
    ],
)
def test_malformed_month_is_422_naming_the_field(
    client: FlaskClient, tenant: Tenant, month: str
) -> None:
    """A month that is not YYYY-MM in ASCII digits from 1900 on is a 422 on field 'month'."""
    url = f"/v1/reports/monthly/{quote(month)}"
    response = _get(client, tenant, url=url, Accept="application/json")
    assert response.status_code == 422
    assert (response.get_json()["field"], response.get_json()["rule"]) == ("month", "month_format")
    assert "Content-Disposition" not in response.headers


def test_the_first_reportable_month_is_served(client: FlaskClient, tenant: Tenant) -> None:
    """1900-01, the earliest month reported on, is a valid (empty) report, not an error."""
    response = _get(client, tenant, url="/v1/reports/monthly/1900-01", Accept="application/json")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["period"] == "1900-01"


def test_future_month_is_422(client: FlaskClient, tenant: Tenant) -> None:
    """A month that has not started in the clinic's time zone is refused."""
    response = _get(client, tenant, url="/v1/reports/monthly/2099-01", Accept="application/json")
    assert response.status_code == 422
    assert response.get_json()["rule"] == "month_in_future"


@pytest.mark.parametrize("role", ["ingest", "admin"])
def test_ingest_and_admin_keys_may_not_read_reports(
    client: FlaskClient, tenant: Tenant, role: str
) -> None:
    """Reports are for managers and clinicians; other roles get 403."""
    response = _get(client, tenant, role=role, Accept="application/json")
    assert response.status_code == 403


@pytest.mark.parametrize("role", ["ingest", "admin"])
@pytest.mark.parametrize(
    ("url", "accept"),
    [
        ("/v1/reports/monthly/2026-11", "image/png"),  # no format offered: 406 for a reader
        ("/v1/reports/monthly/2026-11?foo=1", "application/json"),  # unknown parameter: 422
        ("/v1/reports/monthly/2026-13", "application/json"),  # malformed month: 422
    ],
)
def test_a_role_without_reports_is_refused_before_anything_else(
    client: FlaskClient, engine: Engine, tenant: Tenant, role: str, url: str, accept: str
) -> None:
    """The role is checked first: a key that may not read reports gets 403 whatever its
    Accept, query or month, audited as a forbidden attempt by that key."""
    response = _get(client, tenant, role=role, url=url, Accept=accept)
    assert response.status_code == 403, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["rule"] == "forbidden"
    with engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent.action, AuditEvent.outcome, AuditEvent.status_code, AuditEvent.actor)
        ).all()
    refused = [tuple(r) for r in rows if r.action.startswith("GET ")]
    assert len(refused) == 1
    assert refused[0][:3] == ("GET /v1/reports/monthly/<string:month>", "forbidden", 403)
    assert refused[0][3].startswith("key:")


def test_clinician_key_reads_only_its_own_page(
    client: FlaskClient, tenant: Tenant, october: None
) -> None:
    """The clinician key (T-1) gets its own page; asking for a colleague's is 403."""
    own = _get(client, tenant, role="clinician", Accept="application/json").get_json()
    assert own["scope"] == "clinician"
    assert own["overall"]["key"] == "T-1"
    assert own["overall"]["month"]["sessions_delivered"]["value"] == 2
    assert "T-2" not in str(own)
    same = _get(
        client, tenant, role="clinician", url=URL + "?clinician=T-1", Accept="application/json"
    )
    assert same.status_code == 200
    other = _get(
        client, tenant, role="clinician", url=URL + "?clinician=T-2", Accept="application/json"
    )
    assert other.status_code == 403
    assert other.get_json()["rule"] == "own_report_only"


def test_clinician_without_data_gets_a_valid_empty_page(
    client: FlaskClient, tenant: Tenant
) -> None:
    """A clinician with no sessions gets their own page saying there is no data, not a 404."""
    page = _get(client, tenant, role="clinician", Accept="application/json").get_json()
    assert page["is_empty"] is True
    assert page["overall"]["key"] == "T-1"


def test_manager_may_pick_a_clinician_and_unknown_ones_are_404(
    client: FlaskClient, tenant: Tenant, october: None
) -> None:
    """?clinician= gives a manager that clinician's page; an unknown id is a 404; an unknown
    query parameter is a 422."""
    page = _get(client, tenant, url=URL + "?clinician=T-2", Accept="application/json").get_json()
    assert page["overall"]["key"] == "T-2"
    assert page["overall"]["month"]["sessions_delivered"]["value"] == 1
    assert _get(client, tenant, url=URL + "?clinician=T-99").status_code == 404
    assert _get(client, tenant, url=URL + "?clinic=1").status_code == 422


def test_reports_never_cross_clinics(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant, october: None
) -> None:
    """Another clinic's manager sees an empty report of its own clinic and cannot name this
    clinic's clinicians."""
    data = _get(client, other_tenant, Accept="application/json").get_json()
    assert data["clinic"] == "Clinic B"
    assert data["is_empty"] is True
    assert data["clinicians"] == []
    assert _get(client, other_tenant, url=URL + "?clinician=T-2").status_code == 404


def test_report_reads_are_audited(
    client: FlaskClient, engine: Engine, tenant: Tenant, october: None
) -> None:
    """Each download leaves an audit row naming the month (and the clinician page)."""
    _get(client, tenant, Accept="application/json")
    _get(client, tenant, url=URL + "?clinician=T-2", Accept="application/json")
    with engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent.action, AuditEvent.record_id, AuditEvent.outcome).where(
                AuditEvent.action == "report.read"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("report.read", "2026-10", "success"),
        ("report.read", "2026-10/T-2", "success"),
    ]
