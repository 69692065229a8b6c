"""Regressions found by black-box probing of POST /v1/sessions and /v1/sessions/batch: each
bad input is a 4xx problem+json naming the field and the rule, and nothing stored changes."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.conftest import Tenant, session_payload, stored_sessions


def _post_raw(client: FlaskClient, tenant: Tenant, path: str, body: str) -> Any:
    return client.post(path, data=body, content_type="application/json", headers=tenant.auth())


def _stored(client: FlaskClient, tenant: Tenant) -> None:
    resp = client.post(
        "/v1/sessions", json=session_payload(ehr_session_id="S-0"), headers=tenant.auth()
    )
    assert resp.status_code == 201


_SESSION = (
    '"client_id":"C-1","client_age_band":"adult","clinician_id":"T-1","date":"2026-11-02",'
    '"ratings":[{"instrument":"ors","items":{ITEMS}}]'
)
_ITEMS = '"individual":4,"interpersonal":5,"social":4,"overall":5'


def _session_json(ehr_id: str = "S-1", items: str = _ITEMS, head: str = "") -> str:
    return "{" + head + f'"ehr_session_id":"{ehr_id}",' + _SESSION.replace("ITEMS", items) + "}"


def test_duplicate_top_level_key_is_refused(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """{"ehr_session_id": "S-x", "ehr_session_id": "S-1"}: which one the EHR meant is unknown;
    json.loads keeps the last silently. Refused, naming the key."""
    _stored(client, tenant)
    before = stored_sessions(engine)
    resp = _post_raw(client, tenant, "/v1/sessions", _session_json(head='"ehr_session_id":"S-x",'))
    assert resp.status_code == 422, resp.json
    assert resp.mimetype == "application/problem+json"
    assert (resp.json["rule"], resp.json["field"]) == ("duplicate_key", "ehr_session_id")
    assert stored_sessions(engine) == before


def test_duplicate_item_key_is_refused(client: FlaskClient, tenant: Tenant, engine: Engine) -> None:
    """An item sent twice ({"individual": 40, "individual": 4}) is refused, not the last
    value silently kept."""
    _stored(client, tenant)
    before = stored_sessions(engine)
    resp = _post_raw(
        client, tenant, "/v1/sessions", _session_json(items='"individual":40,' + _ITEMS)
    )
    assert resp.status_code == 422, resp.json
    assert resp.mimetype == "application/problem+json"
    assert (resp.json["rule"], resp.json["field"]) == (
        "duplicate_key",
        "ratings[0].items.individual",
    )
    assert stored_sessions(engine) == before


def test_duplicate_key_in_a_batch_item_rejects_only_that_item(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A batch item with a repeated key is rejected in its own result; the good ones are
    stored."""
    bad = _session_json("S-2", items='"social":9,' + _ITEMS)
    good = _session_json("S-3")
    resp = _post_raw(
        client, tenant, "/v1/sessions/batch", '{"sessions":[' + good + "," + bad + "]}"
    )
    assert resp.status_code == 200, resp.json
    results = resp.json["results"]
    assert [r["outcome"] for r in results] == ["created", "rejected"]
    assert (results[1]["problem"]["rule"], results[1]["problem"]["field"]) == (
        "duplicate_key",
        "ratings[0].items.social",
    )
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT ehr_session_id FROM sessions")).scalars().all()
    assert stored == ["S-3"]


def test_duplicate_sessions_key_of_a_batch_is_refused(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    before = stored_sessions(engine)
    body = '{"sessions":[' + _session_json("S-4") + '],"sessions":[' + _session_json("S-5") + "]}"
    resp = _post_raw(client, tenant, "/v1/sessions/batch", body)
    assert resp.status_code == 422, resp.json
    assert (resp.json["rule"], resp.json["field"]) == ("duplicate_key", "sessions")
    assert stored_sessions(engine) == before


def test_negative_zero_is_stored_as_zero(client: FlaskClient, tenant: Tenant) -> None:
    """-0.0 is 0: stored (and hashed) as 0, so re-sending the session with 0 is unchanged,
    not a spurious revision 2."""
    items = {"individual": -0.0, "interpersonal": 5, "social": 4, "overall": 5}
    first = client.post(
        "/v1/sessions",
        json=session_payload(ratings=[{"instrument": "ors", "items": items}]),
        headers=tenant.auth(),
    )
    assert first.status_code == 201
    assert str(first.json["ratings"][0]["items"]["individual"]) == "0.0"
    again = client.post(
        "/v1/sessions",
        json=session_payload(ratings=[{"instrument": "ors", "items": {**items, "individual": 0}}]),
        headers=tenant.auth(),
    )
    assert again.status_code == 200
    assert again.json["revision"] == 1
    total_only = client.post(
        "/v1/sessions",
        json=session_payload(ehr_session_id="S-2", ratings=[{"instrument": "ors", "total": -0.0}]),
        headers=tenant.auth(),
    )
    assert total_only.status_code == 201
    assert str(total_only.json["ratings"][0]["total"]) == "0.0"


def test_blank_or_padded_ehr_session_id_is_refused(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A whitespace-only EHR session id names no session, and " S-1" would be a second
    session beside "S-1": both refused, in a single call and in a batch."""
    _stored(client, tenant)
    before = stored_sessions(engine)
    for ehr_id in ("   ", " S-0", "S-0 ", "\t", "S-0\n"):
        resp = client.post(
            "/v1/sessions", json=session_payload(ehr_session_id=ehr_id), headers=tenant.auth()
        )
        assert resp.status_code == 422, (ehr_id, resp.json)
        assert resp.mimetype == "application/problem+json"
        assert (resp.json["rule"], resp.json["field"]) == ("invalid", "ehr_session_id")
        batch = client.post(
            "/v1/sessions/batch",
            json={"sessions": [session_payload(ehr_session_id=ehr_id)]},
            headers=tenant.auth(),
        )
        assert batch.status_code == 200
        assert batch.json["results"][0]["outcome"] == "rejected"
    assert stored_sessions(engine) == before


def test_resending_a_batch_that_revises_a_session_stores_nothing(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A batch holding two versions of one session (revisions 1 and 2), sent again as an EHR
    retry does, is a re-send: both items answer unchanged and no revision 3 and 4 appear."""
    v1 = session_payload()
    v2 = session_payload(ratings=[{"instrument": "ors", "total": 30}])
    other = session_payload(ehr_session_id="S-2")
    body = {"sessions": [v1, other, v2]}
    first = client.post("/v1/sessions/batch", json=body, headers=tenant.auth())
    assert [(r["outcome"], r["revision"]) for r in first.json["results"]] == [
        ("created", 1),
        ("created", 1),
        ("revised", 2),
    ]
    before = stored_sessions(engine)
    again = client.post("/v1/sessions/batch", json=body, headers=tenant.auth())
    assert again.status_code == 200
    assert [(r["outcome"], r["revision"]) for r in again.json["results"]] == [
        ("unchanged", 1),
        ("unchanged", 1),
        ("unchanged", 2),
    ]
    assert stored_sessions(engine) == before
    # sending the first version alone is a correction back to it: a new revision
    back = client.post("/v1/sessions", json=v1, headers=tenant.auth())
    assert (back.status_code, back.json["revision"]) == (200, 3)


def _post_chunked(client: FlaskClient, tenant: Tenant, path: str, body: bytes) -> Any:
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={
            **tenant.auth(),
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
        # what gunicorn and werkzeug's server set for a chunked request they de-chunked
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_chunked_body_over_the_limit_is_413(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A chunked body (no Content-Length) larger than FIT_MAX_BODY_BYTES was cut at the limit
    and read: a valid session followed by padding was stored (201), anything else was a 400
    malformed_json. It is a 413 body_too_large, as with a Content-Length; one just at the limit
    is still read."""
    limit = app.config["MAX_CONTENT_LENGTH"]
    session = json.dumps(session_payload()).encode()
    before = stored_sessions(engine)
    for path, body in (
        ("/v1/sessions", session),
        ("/v1/sessions/batch", b'{"sessions": [' + session + b"]}"),
    ):
        resp = _post_chunked(client, tenant, path, body + b" " * (limit + 1 - len(body)))
        assert resp.status_code == 413, resp.json
        assert resp.mimetype == "application/problem+json"
        assert (resp.json["rule"], resp.json["field"]) == ("body_too_large", "body")
    assert stored_sessions(engine) == before
    resp = _post_chunked(client, tenant, "/v1/sessions", session + b" " * (limit - len(session)))
    assert resp.status_code == 201, resp.json


@pytest.mark.parametrize("day", ["2026-W45", "2026-W45-1", "20261102", "2026W451"])
def test_a_date_that_is_not_yyyy_mm_dd_is_refused(
    client: FlaskClient, tenant: Tenant, engine: Engine, day: str
) -> None:
    """Python reads ISO week dates ("2026-W45": a whole week, taken as its Monday) and the
    basic format: a session was stored on a day nobody sent. Dates are YYYY-MM-DD (RFC 3339
    full-date, as the OpenAPI document says), for sessions and for opening and closing an
    episode."""
    _stored(client, tenant)
    before = stored_sessions(engine)
    resp = client.post("/v1/sessions", json=session_payload(date=day), headers=tenant.auth())
    assert resp.status_code == 422, resp.json
    assert (resp.json["rule"], resp.json["field"]) == ("date_format", "date")
    batch = client.post(
        "/v1/sessions/batch",
        json={"sessions": [session_payload(ehr_session_id="S-9", date=day)]},
        headers=tenant.auth(),
    )
    assert batch.json["results"][0]["problem"]["rule"] == "date_format"
    opened = client.post(
        "/v1/episodes",
        json={"client_id": "C-9", "opened_on": day, "client_age_band": "adult"},
        headers=tenant.auth(),
    )
    assert (opened.status_code, opened.json["rule"]) == (422, "date_format")
    episode = client.get("/v1/clients/C-1", headers=tenant.auth()).json["episodes"][0]["id"]
    closed = client.post(
        f"/v1/episodes/{episode}/close",
        json={"ending_reason": "planned", "closed_on": day},
        headers=tenant.auth(),
    )
    assert (closed.status_code, closed.json["rule"]) == (422, "date_format")
    assert stored_sessions(engine) == before


def test_every_endpoint_refuses_repeated_names_and_chunked_bodies_past_the_limit(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """The body rules hold for every endpoint, not only the sessions ones: closing an episode
    with two ending reasons named ("planned", then "other") closed it as "other"; a chunked
    body past the limit was cut and read."""
    _stored(client, tenant)
    episode = client.get("/v1/clients/C-1", headers=tenant.auth()).json["episodes"][0]["id"]
    before = stored_sessions(engine)
    close = f"/v1/episodes/{episode}/close"
    resp = _post_raw(client, tenant, close, '{"ending_reason":"planned","ending_reason":"other"}')
    assert resp.status_code == 422, resp.json
    assert resp.mimetype == "application/problem+json"
    assert (resp.json["rule"], resp.json["field"]) == ("duplicate_key", "ending_reason")
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = b'{"ending_reason":"planned"}'
    resp = _post_chunked(client, tenant, close, body + b" " * (limit + 1 - len(body)))
    assert resp.status_code == 413, resp.json
    assert (resp.json["rule"], resp.json["field"]) == ("body_too_large", "body")
    assert stored_sessions(engine) == before
    resp = _post_chunked(client, tenant, close, body + b" " * (limit - len(body)))
    assert resp.status_code == 200, resp.json


def test_a_resend_without_the_age_band_or_naming_its_episode_is_unchanged(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """The EHR sends the age band at first contact only, or names the episode the service
    chose: the same session is a re-send (200, same revision), not revision 2. A change of
    content still revises."""
    first = client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
    assert first.status_code == 201
    episode = first.json["episode_id"]
    before = stored_sessions(engine)
    no_band = {k: v for k, v in session_payload().items() if k != "client_age_band"}
    variants = [no_band, {**no_band, "episode_id": episode}, session_payload(episode_id=episode)]
    for variant in variants:
        resp = client.post("/v1/sessions", json=variant, headers=tenant.auth())
        assert (resp.status_code, resp.json["revision"]) == (200, 1), variant
    batch = client.post(
        "/v1/sessions/batch", json={"sessions": variants}, headers=tenant.auth()
    ).json
    assert [r["outcome"] for r in batch["results"]] == ["unchanged"] * 3
    assert stored_sessions(engine) == before
    changed = {**no_band, "date": "2026-11-01"}
    resp = client.post("/v1/sessions", json=changed, headers=tenant.auth())
    assert (resp.status_code, resp.json["revision"]) == (200, 2)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/sessions?client_id=C-1&client_id=C-2", "client_id"),
        ("/v1/clients?limit=1&limit=2", "limit"),
        ("/v1/alerts?status=open&status=acknowledged", "status"),
        ("/v1/reports/monthly/2026-10?clinician=T-1&clinician=T-2", "clinician"),
    ],
)
def test_a_query_parameter_named_twice_is_refused_everywhere(
    client: FlaskClient, tenant: Tenant, path: str, name: str
) -> None:
    """client_id=C-1&client_id=C-2 listed C-1's sessions only, silently; which value was
    meant is unknown, so every endpoint refuses it (422 naming the parameter)."""
    resp = client.get(path, headers=tenant.auth("manager"))
    assert resp.status_code == 422, resp.get_data()
    assert resp.mimetype == "application/problem+json"
    assert (resp.json["field"], resp.json["rule"]) == (f"query.{name}", "repeated_parameter")
