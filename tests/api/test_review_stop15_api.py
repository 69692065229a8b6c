"""Review stop 15 (black-box API review): a role's 403 before its input is judged, Accept
with media-type parameters, acknowledge's body, and If-Match's strong comparison."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from fit_service.adapters.orm import AuditEvent
from tests.api.test_alerts import rupture
from tests.conftest import Tenant, audited, stored_sessions

_ID = uuid.UUID(int=1)

#: Every write route (method, path) with the roles whose keys may not use it.
_WRITES: list[tuple[str, str, tuple[str, ...]]] = [
    ("POST", "/v1/sessions", ("manager", "clinician", "admin")),
    ("POST", "/v1/sessions/batch", ("manager", "clinician", "admin")),
    ("POST", "/v1/episodes", ("clinician", "admin")),
    ("POST", f"/v1/episodes/{_ID}/close", ("clinician", "admin")),
    ("POST", f"/v1/alerts/{_ID}/acknowledge", ("ingest", "admin")),
    ("POST", f"/v1/alerts/{_ID}/resolve", ("ingest", "admin")),
    ("POST", f"/v1/alerts/{_ID}/dismiss", ("ingest", "admin")),
    ("PUT", f"/v1/episodes/{_ID}/goal-sheet", ("ingest", "admin")),
    ("POST", "/v1/webhook-endpoints", ("ingest", "clinician", "manager")),
    ("DELETE", f"/v1/webhook-endpoints/{_ID}", ("ingest", "clinician", "manager")),
    ("PUT", "/v1/settings", ("ingest", "clinician", "manager")),
    ("PUT", "/v1/clinicians/T-1/email", ("ingest", "clinician", "manager")),
]

#: Inputs a role with the permission would have refused with a 400 or 422.
_BAD_INPUTS: dict[str, dict[str, Any]] = {
    "empty_body": {"json": {}},
    "unknown_field": {"json": {"no_such_field": 1}},
    "malformed_json": {"data": "not json", "content_type": "application/json"},
    "unknown_query": {"json": {}, "query_string": {"no_such_parameter": "1"}},
}


@pytest.mark.parametrize("bad", sorted(_BAD_INPUTS))
@pytest.mark.parametrize(
    ("method", "path", "role"),
    [(method, path, role) for method, path, roles in _WRITES for role in roles],
)
def test_a_role_without_write_access_gets_403_whatever_it_sent(
    client: FlaskClient,
    engine: Engine,
    tenant: Tenant,
    method: str,
    path: str,
    role: str,
    bad: str,
) -> None:
    """A key whose role may not use a write route gets 403 forbidden before its body or query
    is judged (never a 400 or 422 that lets it probe the route), audited as a forbidden
    attempt by that key, as the batch route's refusal always was; nothing is stored."""
    before = stored_sessions(engine)
    request_id = f"rq-forbidden-{role}"
    headers = {**tenant.auth(role), "X-Request-Id": request_id}
    response = client.open(path, method=method, headers=headers, **_BAD_INPUTS[bad])
    assert response.status_code == 403, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["rule"] == "forbidden"
    rows = audited(engine, request_id, AuditEvent.outcome, AuditEvent.status_code)
    assert [row[3:] for row in rows] == [("forbidden", 403)]
    assert rows[0][0].startswith(f"{method} /v1/")
    assert stored_sessions(engine) == before


def test_no_key_is_still_a_401_before_the_role_and_the_body(client: FlaskClient) -> None:
    """Without a key the answer stays 401, whatever the body."""
    for method, path, _ in _WRITES:
        response = client.open(path, method=method, json={})
        assert response.status_code == 401, (method, path)


def test_every_write_route_declares_the_permission_it_needs(app: Flask) -> None:
    """Each POST/PUT/DELETE of /v1 names its permission (auth.requires), so the blueprint
    refuses a role before reading its input: a new write route cannot forget it."""
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        view_class = getattr(app.view_functions[rule.endpoint], "view_class", None)
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            view = getattr(view_class, method.lower(), None)
            if not getattr(view, "required_permissions", None):
                missing.append(f"{method} {rule.rule}")
    assert missing == []


_REPORT = "/v1/reports/monthly/2025-01"


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("text/csv; charset=utf-8", "text/csv"),  # the CSV answer's own Content-Type
        ("text/csv;charset=UTF-8", "text/csv"),
        ("application/json; charset=utf-8", "application/json"),
        ("application/pdf;q=0.9, text/csv;q=0.5", "application/pdf"),
        ("application/json;q=0.5, text/csv; charset=utf-8; q=0.9", "text/csv"),
        ("text/csv; charset=utf-8; q=0, application/json;q=0.1", "application/json"),
        ("text/*", "text/csv"),
    ],
)
def test_accept_with_media_type_parameters_is_negotiated(
    client: FlaskClient, tenant: Tenant, accept: str, media_type: str
) -> None:
    """A charset parameter naming the charset the format is sent in (UTF-8, any case) does not
    make a media range fail to match; q-values weigh the ranges as before."""
    response = client.get(_REPORT, headers={**tenant.auth("manager"), "Accept": accept})
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == media_type


@pytest.mark.parametrize(
    "accept", ["text/csv; charset=iso-8859-1", "application/pdf; charset=utf-8", "text/csv;q=0"]
)
def test_accept_naming_a_charset_or_parameter_not_offered_is_406(
    client: FlaskClient, tenant: Tenant, accept: str
) -> None:
    """Another charset than the one sent, a charset on a binary format, or q=0: still 406."""
    response = client.get(_REPORT, headers={**tenant.auth("manager"), "Accept": accept})
    assert response.status_code == 406
    assert response.get_json()["rule"] == "not_acceptable"


def _acknowledge(client: FlaskClient, tenant: Tenant, alert_id: str, **body: Any) -> Any:
    headers = {**tenant.auth("clinician"), "If-Match": '"1"'}
    return client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=headers, **body)


def _alert_status(client: FlaskClient, tenant: Tenant, alert_id: str) -> tuple[str, int]:
    view = client.get(f"/v1/alerts/{alert_id}", headers=tenant.auth("clinician")).json
    return view["status"], view["version"]


@pytest.mark.parametrize(
    ("body", "status", "rule", "field"),
    [
        ({"data": "not json", "content_type": "application/json"}, 400, "malformed_json", None),
        ({"json": {"note": "called client"}}, 422, "unknown_field", "note"),
        ({"json": ["called client"]}, 422, "type_object", None),
    ],
)
def test_acknowledge_refuses_a_body_it_does_not_take(
    client: FlaskClient,
    tenant: Tenant,
    body: dict[str, Any],
    status: int,
    rule: str,
    field: str | None,
) -> None:
    """Acknowledge takes no field: malformed JSON is a 400 and a note (or any field) a 422
    naming it, as on the other routes, not a 200 that stored the note nowhere; the alert is
    left open."""
    alert_id = rupture(client, tenant)
    response = _acknowledge(client, tenant, alert_id, **body)
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert (response.json["rule"], response.json["field"]) == (rule, field)
    assert _alert_status(client, tenant, alert_id) == ("open", 1)


@pytest.mark.parametrize(
    "body", [{}, {"json": {}}, {"data": "", "content_type": "application/json"}]
)
def test_acknowledge_takes_no_body_or_an_empty_object(
    client: FlaskClient, tenant: Tenant, body: dict[str, Any]
) -> None:
    """No body, ``{}``, or an empty body labelled JSON: the alert is acknowledged."""
    alert_id = rupture(client, tenant)
    response = _acknowledge(client, tenant, alert_id, **body)
    assert response.status_code == 200, response.get_json()
    assert _alert_status(client, tenant, alert_id) == ("acknowledged", 2)


#: Bodies of JSON's whitespace only (space, tab, CR, LF: RFC 8259 §2), and the empty one.
_BLANK = ["", " ", "\n", " \t\r\n "]


@pytest.mark.parametrize("blank", _BLANK, ids=repr)
def test_a_body_of_json_whitespace_is_no_body_on_acknowledge_and_on_settings(
    client: FlaskClient, tenant: Tenant, blank: str
) -> None:
    """A JSON body of whitespace only holds no JSON value: it is no body, as an empty one is.
    Acknowledge takes it (the alert is acknowledged; it was a 400 malformed_json), and
    PUT /v1/settings refuses it as it refuses no body (422 required, naming the body; it was a
    400), the stored settings kept."""
    alert_id = rupture(client, tenant)
    response = _acknowledge(client, tenant, alert_id, data=blank, content_type="application/json")
    assert response.status_code == 200, response.get_json()
    assert _alert_status(client, tenant, alert_id) == ("acknowledged", 2)

    admin = tenant.auth("admin")
    assert (
        client.put("/v1/settings", json={"reports": {"min_n": 5}}, headers=admin).status_code == 200
    )
    response = client.put(
        "/v1/settings", data=blank, content_type="application/json", headers=admin
    )
    assert (response.status_code, response.mimetype) == (422, "application/problem+json")
    assert (response.json["rule"], response.json["field"]) == ("required", "body")
    assert client.get("/v1/settings", headers=admin).json["reports"] == {"min_n": 5}


@pytest.mark.parametrize("other", ["\f", "\v", "\u00a0", " \u2003 "], ids=repr)
def test_a_body_of_other_blank_characters_is_malformed_json_on_both_routes(
    client: FlaskClient, tenant: Tenant, other: str
) -> None:
    """Only JSON's own whitespace is none: a form feed, a vertical tab or a Unicode space is
    no JSON: a 400 malformed_json on both routes alike, and nothing changes."""
    alert_id = rupture(client, tenant)
    response = _acknowledge(client, tenant, alert_id, data=other, content_type="application/json")
    assert (response.status_code, response.json["rule"]) == (400, "malformed_json")
    assert _alert_status(client, tenant, alert_id) == ("open", 1)
    admin = tenant.auth("admin")
    response = client.put(
        "/v1/settings", data=other, content_type="application/json", headers=admin
    )
    assert (response.status_code, response.json["rule"]) == (400, "malformed_json")


def test_acknowledge_documents_an_optional_body_without_fields(client: FlaskClient) -> None:
    """The OpenAPI document shows acknowledge's body as optional, with no property, and the
    400 and 422 it can answer."""
    spec = client.get("/v1/openapi.json").json
    operation = spec["paths"]["/v1/alerts/{alert_id}/acknowledge"]["post"]
    assert operation["requestBody"]["required"] is False
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    assert spec["components"]["schemas"][name].get("properties", {}) == {}
    assert {"400", "422"} <= set(operation["responses"])


@pytest.mark.parametrize(("etag", "says"), [('W/"1"', "weak"), ("*", "not *")])
def test_if_match_weak_or_star_is_412_on_alerts(
    client: FlaskClient, tenant: Tenant, etag: str, says: str
) -> None:
    """If-Match compares strongly (RFC 9110 §13.1.1): W/"1" does not match the alert's ETag
    "1"; * names no version read. Both are a 412 precondition_failed that says why (a
    precondition was sent, so not a 428), and the alert is not changed."""
    alert_id = rupture(client, tenant)
    for verb, body in (("acknowledge", None), ("resolve", {"note": "Rang the client."})):
        response = client.post(
            f"/v1/alerts/{alert_id}/{verb}",
            json=body,
            headers={**tenant.auth("clinician"), "If-Match": etag},
        )
        assert response.status_code == 412, (verb, response.get_json())
        problem = response.get_json()
        assert (problem["rule"], problem["field"]) == ("precondition_failed", "If-Match")
        assert says in problem["detail"]
    assert _alert_status(client, tenant, alert_id) == ("open", 1)


@pytest.mark.parametrize("etag", ['W/"1"', "*"])
def test_if_match_weak_or_star_is_412_on_goal_sheets(
    client: FlaskClient, tenant: Tenant, etag: str
) -> None:
    """The goal sheet's If-Match follows the same rules: a weak ETag or * replaces nothing
    (412); the ETag as read does."""
    alert_id = rupture(client, tenant)
    episode = client.get(f"/v1/alerts/{alert_id}", headers=tenant.auth("manager")).json[
        "episode_id"
    ]
    url = f"/v1/episodes/{episode}/goal-sheet"
    auth = tenant.auth("clinician")
    sheet = {"goal": "Back to work", "steps": [], "expectation": "to_be_heard"}
    assert client.put(url, json=sheet, headers=auth).status_code == 201
    changed = {**sheet, "goal": "Sleep through the night"}
    response = client.put(url, json=changed, headers={**auth, "If-Match": etag})
    assert response.status_code == 412, response.get_json()
    assert response.get_json()["rule"] == "precondition_failed"
    assert client.get(url, headers=auth).json["goal"] == "Back to work"
    assert client.put(url, json=changed, headers={**auth, "If-Match": '"1"'}).status_code == 200
