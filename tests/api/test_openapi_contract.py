"""Contract test: the whole HTTP API against its own OpenAPI document (schemathesis).

Schemathesis reads ``/v1/openapi.json`` from the app in-process (WSGI, no network) and sends
every operation requests generated from the document, valid and invalid. Each answer must

* never be a 5xx,
* have a status code the operation documents,
* have the content type the document gives for that status,
* have a body that matches the documented schema,
* and, when it is a 4xx, be ``application/problem+json`` (README: every error is one).

Each operation is called with a key of a role allowed to call it (README, "Roles"), so the
answers are the operation's own, not a uniform 403. Generation is derandomized with a fixed
seed and a small number of examples per operation, so a failure reproduces in CI.
"""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fit_service.app import create_app
from fit_service.config import Settings
from tests.api.test_alerts import TODAY, rupture
from tests.conftest import Tenant, role_for, session_payload

PROBLEM_JSON = "application/problem+json"

CONFIG = {
    "seed": 20261102,
    "generation": {
        "mode": "all",
        "max-examples": 20,
        "deterministic": True,
        "database": "none",
        # The key is sent by the test (a role per operation), never generated.
        "with-security-parameters": False,
    },
    # Examples (none in the document), fuzzing and the coverage phase's boundary values; the
    # stateful phase needs links the document does not declare.
    "phases": {"stateful": {"enabled": False}},
}


def problem_json_for_client_errors(ctx: Any, response: schemathesis.Response, case: Any) -> None:
    """Every 4xx is ``application/problem+json`` (README, "Bad input is refused, clearly")."""
    if 400 <= response.status_code < 500:
        content_type = (response.headers.get("content-type") or [""])[0]
        assert content_type.split(";")[0].strip() == PROBLEM_JSON, (
            f"{response.status_code} answered as {content_type!r}, not {PROBLEM_JSON}"
        )


def status_code_listed(ctx: Any, response: schemathesis.Response, case: Any) -> None:
    """The status is one the operation lists by number. (schemathesis' own
    ``status_code_conformance`` accepts any status where a ``default`` response is documented,
    and flask-smorest documents one on every operation.) A method the path does not have is
    answered 405 on any route, outside any operation's document."""
    if case.method.upper() != case.operation.method.upper():
        return
    listed = {str(code) for code in case.operation.definition.raw.get("responses", {})}
    assert str(response.status_code) in listed, (
        f"{response.status_code} is not listed for {case.operation.label}: "
        f"{sorted(listed - {'default'})}"
    )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    status_code_listed,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    problem_json_for_client_errors,
]


def _document() -> dict[str, Any]:
    """The OpenAPI document as the app serves it. It is built from the code alone (no
    database is read), so one is read at collection time, when schemathesis makes one test per
    operation; each test then runs against its own app and database (the ``app`` fixture).

    (``schemathesis.pytest.from_fixture`` would read it from the ``app`` fixture instead, but
    schemathesis 4.32 renames test ids through a private attribute pytest 9.2 no longer has.)
    """
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(
            Settings(
                database_url=f"sqlite:///{folder}/unused.sqlite3",
                instance_path=Path(folder),
                reports_dir=Path(folder),
            )
        )
        try:
            resp = app.test_client().get("/v1/openapi.json")
        finally:
            app.extensions["fit"].engine.dispose()
    assert resp.status_code == 200, resp.data
    return resp.json  # type: ignore[no-any-return]


schema = schemathesis.openapi.from_dict(_document(), config=schemathesis.Config.from_dict(CONFIG))


@pytest.fixture
def stored(app: Flask, tenant: Tenant) -> dict[str, str]:
    """A clinic with records to read and act on, by the path parameter that names each: two
    clients' sessions (one with an open alert), a webhook endpoint. A random id only ever
    finds nothing (404), so without these no success body would be checked."""
    client = app.test_client()
    alert_id = rupture(client, tenant, who="C-1", clinician="T-1")
    resp = client.post(
        "/v1/sessions",
        json=session_payload(ehr_session_id="C-2-1", client_id="C-2", date=TODAY.isoformat()),
        headers=tenant.auth("ingest"),
    )
    assert resp.status_code == 201, resp.json
    session = resp.json
    resp = client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://127.0.0.1:9/fit"},
        headers=tenant.auth("admin"),
    )
    assert resp.status_code == 201, resp.json
    return {
        "session_id": session["id"],
        "client_id": "C-2",
        "episode_id": session["episode"]["id"],
        "alert_id": alert_id,
        "endpoint_id": resp.json["id"],
        "clinician_id": "T-1",
        "month": TODAY.strftime("%Y-%m"),
    }


def _names_stored_records(case: Any) -> bool:
    """Half the valid requests (by a stable digest of the generated path, so a run is
    reproducible) are pointed at stored records; the other half keep their random ids."""
    return (
        case.meta is not None
        and not case.meta.generation.mode.is_negative
        and (zlib.crc32(case.formatted_path.encode()) % 2 == 0)
    )


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_answers_as_documented(
    case: Any, app: Flask, tenant: Tenant, stored: dict[str, str]
) -> None:
    """Every generated request, valid or not, gets a documented status, content type and body;
    never a 5xx; every 4xx is problem+json. (``app``, ``tenant`` and ``stored`` are made once
    per operation and backend: the examples of one operation share a database.)"""
    if case.path_parameters and _names_stored_records(case):
        for name in case.path_parameters:
            case.path_parameters[name] = stored[name]
    role = role_for(case.method, case.path)
    case.call_and_validate(app=app, headers=tenant.auth(role), checks=CHECKS)


def _call(
    app: Flask, tenant: Tenant, method: str, path: str, role: str, **parts: Any
) -> schemathesis.Response:
    """One hand-made request to an operation of the document, checked as the generated are."""
    case = schema[path][method].Case(**parts)
    return case.call_and_validate(app=app, headers=tenant.auth(role), checks=CHECKS)


def test_the_answers_generation_seldom_reaches_are_as_documented(
    app: Flask, tenant: Tenant, stored: dict[str, str]
) -> None:
    """The success answers random data hardly ever reaches (a valid session; an alert acted on
    under its ETag; a report in each format) and the conflicts after them are as documented."""
    body = session_payload(ehr_session_id="C-3-1", client_id="C-3", date=TODAY.isoformat())
    assert _call(app, tenant, "POST", "/v1/sessions", "ingest", body=body).status_code == 201
    assert _call(app, tenant, "POST", "/v1/sessions", "ingest", body=body).status_code == 200
    batch = {"sessions": [body, {**body, "ehr_session_id": "C-3-2", "client_id": "bad id"}]}
    assert _call(app, tenant, "POST", "/v1/sessions/batch", "ingest", body=batch).status_code == 200
    episode = {"client_id": "C-4", "client_age_band": "adult", "opened_on": TODAY.isoformat()}
    assert _call(app, tenant, "POST", "/v1/episodes", "manager", body=episode).status_code == 201

    episode_id = {"episode_id": stored["episode_id"]}
    sheet = {"goal": "Sleep through the night", "steps": ["a routine"], "expectation": "unsure"}
    path = "/v1/episodes/{episode_id}/goal-sheet"
    for status, headers in ((201, {}), (200, {"If-Match": '"1"'})):
        resp = _call(
            app,
            tenant,
            "PUT",
            path,
            "manager",
            path_parameters=episode_id,
            headers=headers,
            body=sheet,
        )
        assert resp.status_code == status
    assert _call(app, tenant, "GET", path, "manager", path_parameters=episode_id).status_code == 200

    alert_id = {"alert_id": stored["alert_id"]}
    acts = [("acknowledge", None, 200), ("resolve", {"note": "Talked it over."}, 200)]
    acts.append(("dismiss", {"reason": "Already resolved."}, 409))
    for version, (verb, act_body, status) in enumerate(acts, start=1):
        parts: dict[str, Any] = {
            "path_parameters": alert_id,
            "headers": {"If-Match": f'"{version}"'},
        }
        if act_body is not None:
            parts["body"] = act_body
        resp = _call(app, tenant, "POST", f"/v1/alerts/{{alert_id}}/{verb}", "manager", **parts)
        assert resp.status_code == status

    close = {"ending_reason": "planned"}
    path = "/v1/episodes/{episode_id}/close"
    assert (
        _call(
            app, tenant, "POST", path, "manager", path_parameters=episode_id, body=close
        ).status_code
        == 200
    )
    other = {"ending_reason": "client_ended"}
    assert (
        _call(
            app, tenant, "POST", path, "manager", path_parameters=episode_id, body=other
        ).status_code
        == 409
    )

    month = {"month": stored["month"]}
    for accept, status in (
        ("application/json", 200),
        ("text/csv", 200),
        ("application/pdf", 200),
        ("image/png", 406),
    ):
        resp = _call(
            app,
            tenant,
            "GET",
            "/v1/reports/monthly/{month}",
            "manager",
            path_parameters=month,
            headers={"Accept": accept},
        )
        assert resp.status_code == status, accept
