"""Query strings after review: unknown parameters are refused on every route, a parameter named
twice is told how to send a list only where a list is taken, and a cursor must name its list."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from tests.conftest import Tenant, session_payload, stored_sessions


def _session(client: FlaskClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    resp = client.post("/v1/sessions", json=session_payload(**overrides), headers=tenant.auth())
    assert resp.status_code == 201, resp.json
    return resp.json  # type: ignore[no-any-return]


def _assert_unknown(resp: Any, name: str) -> None:
    assert resp.status_code == 422, resp.get_data()
    assert resp.mimetype == "application/problem+json"
    assert (resp.json["field"], resp.json["rule"]) == (f"query.{name}", "unknown_field")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/sessions?clientid=C-1",
        "/v1/sessions?client_id=C-1&clientid=C-1",
        "/v1/clients?clientid=C-1",
        "/v1/clinicians?clientid=C-1",
        "/v1/alerts?clientid=C-1",
        "/v1/alerts?status=open&clientid=C-1",
        "/v1/reports/monthly/2026-10?clientid=C-1",
    ],
)
def test_an_unknown_query_parameter_of_a_list_is_a_422_naming_it(
    client: FlaskClient, tenant: Tenant, path: str
) -> None:
    """?clientid=C-1 (client_id mistyped) answered every session of the clinic as if it were
    filtered: an unknown query parameter is a 422 unknown_field naming it, on every list."""
    _session(client, tenant)
    _assert_unknown(client.get(path, headers=tenant.auth("manager")), "clientid")


def test_an_unknown_query_parameter_of_a_route_that_reads_none_is_a_422(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A route that reads no query parameter refuses any (a one-record read, an episode's
    trajectory option mistyped, a write with ?dry_run=true that would not be one), and
    nothing is stored; authentication still comes first."""
    stored = _session(client, tenant)
    manager = tenant.auth("manager")
    episode = stored["episode_id"]
    for path in (
        f"/v1/sessions/{stored['id']}?fields=id",
        f"/v1/sessions/{stored['id']}/revisions?fields=id",
        "/v1/clients/C-1?fields=id",
        f"/v1/episodes/{episode}/trajectory?horizn=5",
    ):
        _assert_unknown(client.get(path, headers=manager), path.split("?")[1].split("=")[0])
    before = stored_sessions(engine)
    resp = client.post(
        "/v1/sessions?dry_run=true",
        json=session_payload(ehr_session_id="S-2", date="2026-11-09"),
        headers=tenant.auth(),
    )
    _assert_unknown(resp, "dry_run")
    assert stored_sessions(engine) == before
    no_key = client.get(f"/v1/sessions/{stored['id']}?fields=id")
    assert no_key.status_code == 401
    # the known parameters still work
    ok = client.get(f"/v1/episodes/{episode}/trajectory?horizon=5", headers=manager)
    assert ok.status_code == 200, ok.json
    assert client.get(f"/v1/sessions/{stored['id']}", headers=manager).status_code == 200


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/sessions?limit=1&limit=2", "limit"),
        ("/v1/sessions?client_id=C-1&client_id=C-2", "client_id"),
        ("/v1/clients?cursor=a&cursor=b", "cursor"),
        ("/v1/alerts?min_severity=low&min_severity=high", "min_severity"),
    ],
)
def test_a_parameter_named_twice_that_takes_no_list_is_not_told_to_send_one(
    client: FlaskClient, tenant: Tenant, path: str, name: str
) -> None:
    """limit=1,2 or client_id=C-1,C-2 is no list the service takes, so the refusal of a
    parameter named twice says only to name it once."""
    resp = client.get(path, headers=tenant.auth("manager"))
    assert resp.status_code == 422, resp.json
    assert (resp.json["field"], resp.json["rule"]) == (f"query.{name}", "repeated_parameter")
    assert [e["detail"] for e in resp.json["errors"]] == ["Name this parameter once."]
    assert "separated" not in resp.json["detail"]
    assert "," not in resp.json["detail"]


def test_a_list_parameter_named_twice_is_told_how_to_send_a_list(
    client: FlaskClient, tenant: Tenant
) -> None:
    """status=open&status=acknowledged is refused (repeated_parameter) with the hint that a
    list of statuses goes in one parameter: status=open,acknowledged."""
    resp = client.get("/v1/alerts?status=open&status=acknowledged", headers=tenant.auth("manager"))
    assert resp.status_code == 422, resp.json
    assert (resp.json["field"], resp.json["rule"]) == ("query.status", "repeated_parameter")
    assert "status=open,acknowledged" in resp.json["detail"]
    assert [e["rule"] for e in resp.json["errors"]] == ["repeated_parameter"]  # one error
    listed = client.get("/v1/alerts?status=open,acknowledged", headers=tenant.auth("manager"))
    assert listed.status_code == 200, listed.json


def _cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "payload",
    [{"after": 1}, {"after": 1, "for": None}, {"after": 1, "for": 5}, {"after": 1, "for": []}],
    ids=["no-for", "null-for", "number-for", "list-for"],
)
@pytest.mark.parametrize(
    "path", ["/v1/sessions", "/v1/sessions?client_id=C-1", "/v1/clients", "/v1/alerts"]
)
def test_a_cursor_naming_no_list_is_refused(
    client: FlaskClient, tenant: Tenant, path: str, payload: dict[str, Any]
) -> None:
    """A cursor without its list's tag (or with one that is not a tag) could not be checked
    against the list it is used on, and would skip rows silently there: 422 invalid_cursor."""
    _session(client, tenant)
    sep = "&" if "?" in path else "?"
    resp = client.get(f"{path}{sep}cursor={_cursor(payload)}", headers=tenant.auth("manager"))
    assert resp.status_code == 422, resp.get_data()
    assert (resp.json["field"], resp.json["rule"]) == ("query.cursor", "invalid_cursor")
