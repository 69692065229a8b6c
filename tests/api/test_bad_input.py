"""Bad input: a clear 4xx problem+json naming the field and the rule, and nothing stored
changes (the table contents are compared before and after every attempt)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.conftest import SESSION_TABLES, Tenant, session_payload, stored_sessions


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
    ("date in year 1", session_payload(date="0001-01-01"), 422, "date_too_early", "date"),
    ("date before 1900", session_payload(date="1899-12-31"), 422, "date_too_early", "date"),
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
        "ORS item a 400-digit integer",
        session_payload(ratings=[_ors(individual=10**400)]),
        422,
        "item_out_of_range",
        "ratings[0].items.individual",
    ),
    (
        "ORS total a 400-digit integer",
        session_payload(ratings=[{"instrument": "ors", "total": 10**400}]),
        422,
        "total_out_of_range",
        "ratings[0].total",
    ),
    (
        "ORS total-only 20.05 (finer than a tenth)",
        session_payload(ratings=[{"instrument": "ors", "total": 20.05}]),
        422,
        "total_resolution",
        "ratings[0].total",
    ),
    (
        "WAI-SR total-only 30.5 (finer than a point)",
        session_payload(ratings=[{"instrument": "wai_sr_client", "total": 30.5}]),
        422,
        "total_resolution",
        "ratings[0].total",
    ),
    (
        "item id with a lone surrogate",
        session_payload(ratings=[_ors(**{"\ud800": 1})]),
        422,
        "control_character",
        "ratings[0].items",
    ),
    (
        "item id with a NUL",
        session_payload(ratings=[_ors(**{"individual\u0000": 1})]),
        422,
        "control_character",
        "ratings[0].items",
    ),
    (
        "client id with a trailing newline",
        session_payload(client_id="C-1\n"),
        422,
        "invalid",
        "client_id",
    ),
    (
        "clinician id with a trailing newline",
        session_payload(clinician_id="T-1\n"),
        422,
        "invalid",
        "clinician_id",
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
    before = stored_sessions(engine)
    if payload.get("client_age_band", "") is None:
        payload = {k: v for k, v in payload.items() if k != "client_age_band"}
    resp = client.post("/v1/sessions", json=payload, headers=tenant.auth())
    assert resp.status_code == status, resp.json
    assert resp.mimetype == "application/problem+json"
    assert (resp.json["rule"], resp.json["field"]) == (rule, field)
    assert resp.json["status"] == status
    assert resp.json["detail"]
    assert stored_sessions(engine) == before


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


def _rows_kept(
    before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]
) -> bool:
    """Every row stored before is still there, unchanged (new rows may follow it)."""
    return all(after[t][: len(before[t])] == before[t] for t in SESSION_TABLES)


# One bad item each, as found by review: each was a 500 that lost the good items of its batch,
# or (the ids) silently created a second client / clinician.
BAD_BATCH_ITEMS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "400-digit item",
        session_payload(ehr_session_id="S-bad", ratings=[_ors(individual=10**400)]),
        "item_out_of_range",
        "ratings[0].items.individual",
    ),
    (
        "400-digit total",
        session_payload(ehr_session_id="S-bad", ratings=[{"instrument": "ors", "total": 10**400}]),
        "total_out_of_range",
        "ratings[0].total",
    ),
    (
        "total-only 20.05",
        session_payload(ehr_session_id="S-bad", ratings=[{"instrument": "ors", "total": 20.05}]),
        "total_resolution",
        "ratings[0].total",
    ),
    (
        "lone surrogate item id",
        session_payload(ehr_session_id="S-bad", ratings=[_ors(**{"\ud800": 1})]),
        "control_character",
        "ratings[0].items",
    ),
    (
        "client id with newline",
        session_payload(ehr_session_id="S-bad", client_id="C-1\n"),
        "invalid",
        "client_id",
    ),
    (
        "date in year 1",
        session_payload(ehr_session_id="S-bad", date="0001-01-01"),
        "date_too_early",
        "date",
    ),
]


@pytest.mark.parametrize("idempotency_key", [None, "batch-key-1"], ids=["plain", "idempotent"])
@pytest.mark.parametrize(
    ("label", "bad", "rule", "field"), BAD_BATCH_ITEMS, ids=[c[0] for c in BAD_BATCH_ITEMS]
)
def test_a_bad_batch_item_is_rejected_alone(
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    label: str,
    bad: dict[str, Any],
    rule: str,
    field: str,
    idempotency_key: str | None,
) -> None:
    """In a batch (with or without an Idempotency-Key), the bad item is rejected naming its
    field and rule, the good item beside it is created, rows already stored stay unchanged,
    and a retry with the same key replays the same answer."""
    stored = client.post(
        "/v1/sessions", json=session_payload(ehr_session_id="S-0"), headers=tenant.auth()
    )
    assert stored.status_code == 201
    before = stored_sessions(engine)
    headers = tenant.auth()
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    good = session_payload(ehr_session_id="S-good", client_id="C-2")
    body = {"sessions": [good, bad]}
    resp = client.post("/v1/sessions/batch", json=body, headers=headers)
    assert resp.status_code == 200, resp.json
    first, second = resp.json["results"]
    assert (first["outcome"], first["status"]) == ("created", 201)
    assert (second["outcome"], second["status"]) == ("rejected", 422)
    assert (second["problem"]["rule"], second["problem"]["field"]) == (rule, field)
    after = stored_sessions(engine)
    assert _rows_kept(before, after)
    assert len(after["sessions"]) == len(before["sessions"]) + 1
    assert [r.external_id for r in _clients(engine)] == ["C-1", "C-2"]
    if idempotency_key is not None:
        again = client.post("/v1/sessions/batch", json=body, headers=headers)
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert [r["outcome"] for r in again.json["results"]] == ["created", "rejected"]
        assert stored_sessions(engine) == after


def _clients(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT external_id FROM clients ORDER BY id")))


@pytest.mark.parametrize("key", ["\ud800", "individual\u0000"], ids=["surrogate", "nul"])
def test_a_control_character_in_an_item_id_with_an_idempotency_key_is_a_422(
    client: FlaskClient, tenant: Tenant, engine: Engine, key: str
) -> None:
    """A single session whose item id holds a lone surrogate or a NUL, sent with an
    Idempotency-Key, is a 422 control_character naming the items (it was a 500: the error
    text could not be stored in the key's record); a retry answers the same."""
    before = stored_sessions(engine)
    headers = {**tenant.auth(), "Idempotency-Key": "k"}
    payload = session_payload(ratings=[_ors(**{key: 1})])
    for _ in range(2):
        resp = client.post("/v1/sessions", json=payload, headers=headers)
        assert resp.status_code == 422, resp.json
        assert resp.mimetype == "application/problem+json"
        assert (resp.json["rule"], resp.json["field"]) == ("control_character", "ratings[0].items")
    assert stored_sessions(engine) == before


def test_an_error_naming_a_lone_surrogate_can_be_remembered_for_its_idempotency_key(
    app: Flask, tenant: Tenant
) -> None:
    """Below the HTTP checks too (the CLI, the benchmark): an item id with a lone surrogate is
    rejected as unknown_item, the error is stored with the Idempotency-Key's record (the
    surrogate spelled as its escape) and replayed from it, instead of failing the write."""
    from datetime import date  # noqa: PLC0415

    from fit_service.services import clinics  # noqa: PLC0415
    from fit_service.services.inputs import RatingInput, SessionInput  # noqa: PLC0415
    from fit_service.services.recording import record_sessions  # noqa: PLC0415

    wiring = app.extensions["fit"]
    principal = clinics.authenticate(wiring.session_factory, tenant.keys["ingest"])
    assert principal is not None
    bad = SessionInput(
        "S-1", "C-1", "T-1", date(2026, 11, 2), client_age_band="adult",
        ratings=(RatingInput("ors", items={"\ud800": 1}),),
    )  # fmt: skip
    good = SessionInput("S-2", "C-1", "T-1", date(2026, 11, 2), client_age_band="adult")
    results, replayed = record_sessions(wiring.uow, principal, [bad, good], idempotency=("k", "h"))
    assert not replayed
    assert [r.outcome for r in results] == ["rejected", "created"]
    assert results[0].error is not None
    assert (results[0].error.rule, results[0].error.field) == (
        "unknown_item",
        "ratings[0].items.\\ud800",
    )
    again, replayed = record_sessions(wiring.uow, principal, [bad, good], idempotency=("k", "h"))
    assert replayed
    assert [r.outcome for r in again] == ["rejected", "created"]
    assert again[0].error is not None
    assert again[0].error.field == "ratings[0].items.\\ud800"


_DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/sessions", _DEEP),
        ("/v1/sessions/batch", _DEEP),
        ("/v1/episodes", _DEEP),
        ("/v1/sessions/batch", '{"sessions": [' + "[" * 5000 + "]" * 5000 + "]}"),
        ("/v1/sessions", '{"ehr_session_id": "S-1", "client_id": 1' + "0" * 5000 + "}"),
    ],
    ids=["session", "batch", "episode", "batch-item", "5000-digit-integer"],
)
def test_json_the_parser_cannot_read_is_400(
    client: FlaskClient, tenant: Tenant, engine: Engine, path: str, body: str
) -> None:
    """A body nested thousands of levels deep (RecursionError in the parser) or holding an
    integer past Python's 4,300-digit limit is a 400 malformed_json problem, not a 500, and
    nothing stored changes."""
    before = stored_sessions(engine)
    resp = client.post(path, data=body, content_type="application/json", headers=tenant.auth())
    assert resp.status_code == 400, resp.json
    assert resp.mimetype == "application/problem+json"
    assert resp.json["rule"] == "malformed_json"
    assert stored_sessions(engine) == before


def test_a_moderately_nested_batch_item_is_rejected_alone(
    client: FlaskClient, tenant: Tenant
) -> None:
    """A batch item nested 50 levels deep is readable JSON: only that item is rejected."""
    nested = '{"a": ' * 50 + "1" + "}" * 50
    good = json.dumps(session_payload())
    resp = client.post(
        "/v1/sessions/batch",
        data=f'{{"sessions": [{good}, {nested}]}}',
        content_type="application/json",
        headers=tenant.auth(),
    )
    assert resp.status_code == 200, resp.json
    assert [r["outcome"] for r in resp.json["results"]] == ["created", "rejected"]


def test_a_recursion_error_not_caused_by_the_body_stays_a_500(
    client: FlaskClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the body is blamed with a 400: a RecursionError (or ValueError) while serving a
    shallow, readable body is still the service's own 500."""
    from fit_service.api import sessions  # noqa: PLC0415

    for error in (RecursionError("deep"), ValueError("bad")):

        def fail(*_: Any, error: Exception = error, **__: Any) -> Any:
            raise error

        monkeypatch.setattr(sessions, "record_sessions", fail)
        resp = client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
        assert resp.status_code == 500
        assert resp.json["rule"] == "internal_error"


def test_a_chunked_body_of_the_wrong_type_is_415(client: FlaskClient, tenant: Tenant) -> None:
    """A chunked body (no Content-Length) that is not JSON is a 415 naming Content-Type, like
    any other body (it was taken for no body: 422 'required' on every field); a chunked JSON
    body is still read and recorded."""

    def post_chunked(content_type: str) -> Any:
        return client.post(
            "/v1/sessions",
            input_stream=io.BytesIO(json.dumps(session_payload()).encode()),
            headers={
                **tenant.auth(),
                "Content-Type": content_type,
                "Transfer-Encoding": "chunked",
            },
            # what gunicorn and werkzeug's server set for a chunked request they de-chunked
            environ_overrides={"wsgi.input_terminated": True},
        )

    resp = post_chunked("text/plain")
    assert resp.status_code == 415, resp.json
    assert (resp.json["rule"], resp.json["field"]) == ("content_type", "Content-Type")
    resp = post_chunked("application/json")
    assert resp.status_code == 201, resp.json


@pytest.mark.parametrize(
    "token", ["fit_\x00ab_cd", "fit_ab_c\x00d", "fit_ab\x1f_cd", "fit_ab_cd\x7f"]
)
def test_a_control_character_in_the_api_key_is_a_401(
    client: FlaskClient, tenant: Tenant, token: str
) -> None:
    """An Authorization header whose key holds a NUL or another control character is a 401
    invalid_api_key (the NUL was a 500 on PostgreSQL, which cannot compare text holding it)."""
    resp = client.get("/v1/clients", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401, resp.json
    assert resp.json["rule"] == "invalid_api_key"
    assert client.get("/v1/clients", headers=tenant.auth()).status_code == 200


def test_ids_with_a_trailing_newline_are_refused_everywhere(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """ "$" in the id pattern matched before a trailing newline: "C-1\\n" opened an episode for
    a second client, and listed or reported as a distinct id. Now 422 naming the field."""
    before = stored_sessions(engine)
    resp = client.post(
        "/v1/episodes",
        json={"client_id": "C-2\n", "opened_on": "2026-11-01", "client_age_band": "adult"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 422, resp.json
    assert (resp.json["rule"], resp.json["field"]) == ("invalid", "client_id")
    resp = client.get("/v1/sessions", query_string={"client_id": "C-1\n"}, headers=tenant.auth())
    assert resp.status_code == 422, resp.json
    resp = client.get(
        "/v1/reports/monthly/2026-10",
        query_string={"clinician": "T-1\n"},
        headers={**tenant.auth("manager"), "Accept": "application/json"},
    )
    assert resp.status_code == 422, resp.json
    assert resp.json["field"] == "query.clinician"
    assert stored_sessions(engine) == before
