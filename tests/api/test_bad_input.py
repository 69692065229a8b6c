"""Bad input: a clear 4xx problem+json naming the field and the rule, and nothing stored
changes (the table contents are compared before and after every attempt)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.conftest import Tenant, session_payload

_TABLES = ("clients", "clinicians", "episodes", "sessions", "session_revisions", "ratings")


def _snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY id"))]  # noqa: S608
            for t in _TABLES
        }


def _ors(**items: Any) -> dict[str, Any]:
    base = {"individual": 5, "interpersonal": 5, "social": 5, "overall": 5}
    base.update(items)
    return {"instrument": "ors", "items": base}


CASES: list[tuple[str, dict[str, Any], int, str, str | None]] = [
    (
        "ORS item 10.5",
        session_payload(ratings=[_ors(individual=10.5)]),
        422,
        "item_out_of_range",
        "ratings[0].items.individual",
    ),
    (
        "ORS item -1",
        session_payload(ratings=[_ors(social=-1)]),
        422,
        "item_out_of_range",
        "ratings[0].items.social",
    ),
    (
        "ORS item as string",
        session_payload(ratings=[_ors(overall="7")]),
        422,
        "item_not_a_number",
        "ratings[0].items.overall",
    ),
    (
        "ORS item true",
        session_payload(ratings=[_ors(overall=True)]),
        422,
        "item_not_a_number",
        "ratings[0].items.overall",
    ),
    (
        "ORS item 0.05 (finer than 0.1)",
        session_payload(ratings=[_ors(overall=0.05)]),
        422,
        "item_resolution",
        "ratings[0].items.overall",
    ),
    (
        "missing ORS item",
        session_payload(
            ratings=[{"instrument": "ors", "items": {"individual": 5, "social": 5, "overall": 5}}]
        ),
        422,
        "missing_items",
        "ratings[0].items",
    ),
    (
        "unknown item id",
        session_payload(ratings=[_ors(mood=5)]),
        422,
        "unknown_item",
        "ratings[0].items.mood",
    ),
    (
        "WAI-SR item 0",
        session_payload(
            ratings=[
                {
                    "instrument": "wai_sr_client",
                    "items": {f"item{n:02d}": (0 if n == 4 else 3) for n in range(1, 13)},
                }
            ]
        ),
        422,
        "item_out_of_range",
        "ratings[0].items.item04",
    ),
    (
        "total contradicts items",
        session_payload(ratings=[{**_ors(), "total": 30}]),
        422,
        "total_contradicts_items",
        "ratings[0].total",
    ),
    (
        "unknown instrument",
        session_payload(ratings=[{"instrument": "phq9", "total": 4}]),
        422,
        "unknown_instrument",
        "ratings[0].instrument",
    ),
    ("unknown field", session_payload(mood="great"), 422, "unknown_field", "mood"),
    (
        "missing client id",
        {k: v for k, v in session_payload().items() if k != "client_id"},
        422,
        "required",
        "client_id",
    ),
    ("date in the future", session_payload(date="2999-01-01"), 422, "date_in_future", "date"),
    ("date not a date", session_payload(date="02/11/2026"), 422, "date_format", "date"),
    (
        "ratings on a no-show",
        session_payload(attendance="no_show"),
        422,
        "ratings_without_attendance",
        "ratings",
    ),
    (
        "same instrument twice",
        session_payload(ratings=[_ors(), _ors()]),
        422,
        "duplicate_rating",
        "ratings[1].instrument",
    ),
    (
        "new client without age band",
        session_payload(client_id="C-new", client_age_band=None),
        422,
        "required_for_new_client",
        "client_age_band",
    ),
    (
        "not_completed with scores",
        session_payload(ratings=[{**_ors(), "not_completed": True}]),
        422,
        "not_completed_with_scores",
        "ratings[0].not_completed",
    ),
    (
        "not_completed as string",
        session_payload(ratings=[{"instrument": "srs", "not_completed": "yes"}]),
        422,
        "type_boolean",
        "ratings[0].not_completed",
    ),
    (
        "not_completed as 1",
        session_payload(ratings=[{"instrument": "srs", "not_completed": 1}]),
        422,
        "type_boolean",
        "ratings[0].not_completed",
    ),
    (
        "unknown episode id",
        session_payload(episode_id="3f0c7f0e-8c53-4a4e-9a43-2a0b7b1c5d11"),
        404,
        "not_found",
        "episode_id",
    ),
]


@pytest.mark.parametrize(
    ("label", "payload", "status", "rule", "field"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_session_is_rejected_and_nothing_changes(
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    label: str,
    payload: dict[str, Any],
    status: int,
    rule: str,
    field: str | None,
) -> None:
    """Each malformed session is a problem+json naming field and rule; storage is untouched."""
    # Something is already stored, and must survive the bad request unchanged.
    assert (
        client.post(
            "/v1/sessions", json=session_payload(ehr_session_id="S-0"), headers=tenant.auth()
        ).status_code
        == 201
    )
    before = _snapshot(engine)
    if payload.get("client_age_band", "") is None:
        payload = {k: v for k, v in payload.items() if k != "client_age_band"}
    resp = client.post("/v1/sessions", json=payload, headers=tenant.auth())
    assert resp.status_code == status, resp.json
    assert resp.mimetype == "application/problem+json"
    assert (resp.json["rule"], resp.json["field"]) == (rule, field)
    assert resp.json["status"] == status
    assert resp.json["detail"]
    assert _snapshot(engine) == before


def test_malformed_json_is_400(client: FlaskClient, tenant: Tenant) -> None:
    """A body that is not JSON is a 400 problem, not a 500."""
    resp = client.post(
        "/v1/sessions",
        data='{"ehr_session_id": "S-1",',
        content_type="application/json",
        headers=tenant.auth(),
    )
    assert resp.status_code == 400
    assert resp.json["rule"] == "malformed_json"


def test_nan_literal_is_rejected(client: FlaskClient, tenant: Tenant) -> None:
    """JSON's non-standard NaN literal is refused as an item value."""
    body = (
        '{"ehr_session_id":"S-1","client_id":"C-1","client_age_band":"adult",'
        '"clinician_id":"T-1","date":"2026-11-02","ratings":[{"instrument":"ors","items":'
        '{"individual":NaN,"interpersonal":5,"social":5,"overall":5}}]}'
    )
    resp = client.post(
        "/v1/sessions", data=body, content_type="application/json", headers=tenant.auth()
    )
    assert resp.status_code == 422
    assert resp.json["field"] == "ratings[0].items.individual"


def test_wrong_content_type_is_415(client: FlaskClient, tenant: Tenant) -> None:
    """A form-encoded body is a 415 naming Content-Type."""
    resp = client.post("/v1/sessions", data="a=1", content_type="text/plain", headers=tenant.auth())
    assert resp.status_code == 415
    assert resp.json["field"] == "Content-Type"


def test_oversized_body_is_413(app: Flask, client: FlaskClient, tenant: Tenant) -> None:
    """A body over FIT_MAX_BODY_BYTES is a 413 problem."""
    limit = app.extensions["fit"].settings.max_body_bytes
    resp = client.post(
        "/v1/sessions",
        data=b"[" + b" " * limit + b"]",
        content_type="application/json",
        headers=tenant.auth(),
    )
    assert resp.status_code == 413
    assert resp.mimetype == "application/problem+json"


def test_unknown_route_and_method_are_problems(client: FlaskClient, tenant: Tenant) -> None:
    """404 and 405 come out as problem+json too."""
    assert client.get("/v1/nope", headers=tenant.auth()).mimetype == "application/problem+json"
    resp = client.delete("/v1/sessions", headers=tenant.auth())
    assert resp.status_code == 405
    assert resp.mimetype == "application/problem+json"


def test_nul_in_a_string_is_a_422_not_a_500(client: FlaskClient, tenant: Tenant) -> None:
    """A NUL character (PostgreSQL cannot store it) is refused at the boundary, naming the
    field."""
    resp = client.post(
        "/v1/sessions", json=session_payload(ehr_session_id="S-\u0000"), headers=tenant.auth()
    )
    assert resp.status_code == 422
    assert (resp.json["field"], resp.json["rule"]) == ("ehr_session_id", "control_character")


def test_a_lone_surrogate_is_a_422_and_sinks_no_batch(client: FlaskClient, tenant: Tenant) -> None:
    """JSON "\\ud800" decodes to an unpaired surrogate that no database driver can encode: it is
    refused at the boundary (it was a 500, and sank the whole batch)."""
    bad = session_payload(ehr_session_id="S-\ud800")
    resp = client.post("/v1/sessions", json=bad, headers=tenant.auth())
    assert resp.status_code == 422
    assert (resp.json["field"], resp.json["rule"]) == ("ehr_session_id", "control_character")
    good = [session_payload(ehr_session_id=f"S-{i}", client_id=f"C-{i}") for i in range(40)]
    resp = client.post(
        "/v1/sessions/batch",
        json={"sessions": [*good[:20], bad, *good[20:]]},
        headers=tenant.auth(),
    )
    assert resp.status_code == 200, resp.json
    assert resp.json["created"] == 40
    assert resp.json["results"][20]["status"] == 422


def test_nul_in_a_path_is_not_found(client: FlaskClient, tenant: Tenant) -> None:
    """A control character in a path id is a 404 problem, not a database error."""
    resp = client.get("/v1/clients/C%00x", headers=tenant.auth())
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"


@pytest.mark.parametrize("after", ["true", "100000000000000000000000000000", "-1", '"x"'])
def test_forged_cursors_are_refused(client: FlaskClient, tenant: Tenant, after: str) -> None:
    """A cursor not issued by the service (bool, out of BIGINT range, negative) is a 422."""
    import base64  # noqa: PLC0415

    cursor = base64.urlsafe_b64encode(f'{{"after": {after}}}'.encode()).decode()
    resp = client.get("/v1/sessions", query_string={"cursor": cursor}, headers=tenant.auth())
    assert resp.status_code == 422
    assert resp.json["rule"] == "invalid_cursor"


def test_long_ehr_id_in_a_refused_item_is_audited_without_error(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A 128-character EHR id on a refused session still fits the audit row (no 500)."""
    payload = session_payload(ehr_session_id="E" * 128, client_id="C-new")
    del payload["client_age_band"]
    resp = client.post("/v1/sessions", json=payload, headers=tenant.auth())
    assert resp.status_code == 422
    with engine.connect() as conn:
        ids = [
            r
            for (r,) in conn.execute(
                text("SELECT record_id FROM audit_events WHERE action = 'session.reject'")
            )
        ]
    assert len(ids) == 1
    assert ids[0].startswith("E" * 40)
    assert len(ids[0]) <= 64
