"""Security: one clinic never sees or changes another's data (404, never revealing that a record
exists), each role gets only what it should, and every access is in the audit trail."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from fit_service.services import clinics
from fit_service.services.principals import Role
from tests.conftest import Tenant, key_actor, session_payload


@pytest.fixture
def stored(client: FlaskClient, tenant: Tenant) -> dict[str, Any]:
    """Clinic A has one client with one session (clinician T-1)."""
    resp = client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
    assert resp.status_code == 201
    return resp.json  # type: ignore[no-any-return]


def make_tenant_key(app: Any, tenant: Tenant, clinician: str) -> dict[str, str]:
    """Auth headers of another clinician's key in ``tenant``'s clinic."""
    with app.extensions["fit"].uow() as uow:
        issued = clinics.create_api_key(
            uow, tenant.clinic_id, Role.CLINICIAN, f"{clinician} key", clinician
        )
    return {"Authorization": f"Bearer {issued.secret}"}


def _endpoints(stored: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/v1/sessions/{stored['id']}", None),
        ("GET", f"/v1/sessions/{stored['id']}/revisions", None),
        ("GET", "/v1/clients/C-1", None),
        ("POST", f"/v1/episodes/{stored['episode_id']}/close", {"ending_reason": "planned"}),
    ]


def test_other_clinic_gets_404_for_every_record(
    client: FlaskClient, other_tenant: Tenant, stored: dict[str, Any]
) -> None:
    """With clinic B's keys, clinic A's session, client and episode are 'not found'."""
    for method, path, body in _endpoints(stored):
        for role in ("ingest", "manager"):
            resp = client.open(path, method=method, json=body, headers=other_tenant.auth(role))
            assert resp.status_code == 404, (method, path, role, resp.json)
            assert resp.mimetype == "application/problem+json"


def test_other_clinic_lists_are_empty(
    client: FlaskClient, other_tenant: Tenant, stored: dict[str, Any]
) -> None:
    """Clinic B's lists do not contain clinic A's clients or sessions."""
    for path in ("/v1/clients", "/v1/sessions"):
        body = client.get(path, headers=other_tenant.auth("manager")).json
        assert body["items"] == [], path
    clinicians = client.get("/v1/clinicians", headers=other_tenant.auth("manager")).json
    assert [c["clinician_id"] for c in clinicians["items"]] == ["T-9"]  # B's own only


def test_other_clinic_cannot_write_into_an_episode(
    client: FlaskClient, other_tenant: Tenant, stored: dict[str, Any], engine: Engine
) -> None:
    """Posting to clinic A's episode id with clinic B's key is a 404 and stores nothing."""
    payload = session_payload(ehr_session_id="B-1", episode_id=stored["episode_id"])
    resp = client.post("/v1/sessions", json=payload, headers=other_tenant.auth())
    assert resp.status_code == 404
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 1


def test_same_ehr_ids_in_two_clinics_are_separate(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant, stored: dict[str, Any]
) -> None:
    """Clinic B may use the same EHR session and client ids without touching clinic A's."""
    resp = client.post("/v1/sessions", json=session_payload(), headers=other_tenant.auth())
    assert resp.status_code == 201
    assert resp.json["id"] != stored["id"]
    mine = client.get(f"/v1/sessions/{stored['id']}", headers=tenant.auth()).json
    assert mine["revision"] == 1


# role -> (method, path template, body) -> expected status
ROLE_MATRIX: list[tuple[str, str, str, int]] = [
    ("ingest", "POST", "/v1/sessions", 200),
    ("clinician", "POST", "/v1/sessions", 403),
    ("manager", "POST", "/v1/sessions", 403),
    ("admin", "POST", "/v1/sessions", 403),
    ("ingest", "GET", "/v1/clients", 200),
    ("clinician", "GET", "/v1/clients", 200),
    ("manager", "GET", "/v1/clients", 200),
    ("admin", "GET", "/v1/clients", 403),
    ("admin", "GET", "/v1/sessions/{id}", 403),
    ("admin", "GET", "/v1/clients/C-1", 403),
    ("manager", "GET", "/v1/clients/C-1", 200),
    ("clinician", "GET", "/v1/clients/C-1", 200),
    ("clinician", "POST", "/v1/episodes/{episode_id}/close", 403),
]


@pytest.mark.parametrize(("role", "method", "path", "status"), ROLE_MATRIX)
def test_role_permissions(
    client: FlaskClient,
    tenant: Tenant,
    stored: dict[str, Any],
    role: str,
    method: str,
    path: str,
    status: int,
) -> None:
    """Each role reaches exactly the endpoints it should."""
    body = session_payload() if path == "/v1/sessions" else None
    if path.endswith("/close"):
        body = {"ending_reason": "planned"}
    resp = client.open(path.format(**stored), method=method, json=body, headers=tenant.auth(role))
    assert resp.status_code == status, resp.json


def test_clinician_sees_only_own_clients(
    client: FlaskClient, tenant: Tenant, stored: dict[str, Any]
) -> None:
    """A clinician key (T-1) sees T-1's client but not a client seen only by T-2."""
    other = session_payload(ehr_session_id="S-9", client_id="C-2", clinician_id="T-2")
    assert client.post("/v1/sessions", json=other, headers=tenant.auth()).status_code == 201
    listed = client.get("/v1/clients", headers=tenant.auth("clinician")).json["items"]
    assert [c["client_id"] for c in listed] == ["C-1"]
    assert client.get("/v1/clients/C-2", headers=tenant.auth("clinician")).status_code == 404
    assert client.get("/v1/clients/C-2", headers=tenant.auth("manager")).status_code == 200


def test_corrected_clinician_moves_the_client_to_the_right_clinician(
    client: FlaskClient, tenant: Tenant, app: Any, stored: dict[str, Any]
) -> None:
    """The EHR sent C-1's first session under the wrong clinician (T-1) and re-sends it under
    T-2: the episode was opened with that session, so it is T-2's now, and T-1's key no
    longer reads the client (nor lists it), while T-2's does."""
    t2 = make_tenant_key(app, tenant, "T-2")
    fixed = session_payload(clinician_id="T-2")
    resent = client.post("/v1/sessions", json=fixed, headers=tenant.auth())
    assert resent.status_code == 200, resent.json
    assert resent.json["revision"] == 2
    assert client.get("/v1/clients/C-1", headers=tenant.auth("clinician")).status_code == 404
    listed = client.get("/v1/clients", headers=tenant.auth("clinician")).json["items"]
    assert listed == []
    seen = client.get("/v1/clients/C-1", headers=t2)
    assert seen.status_code == 200
    assert [e["clinician_id"] for e in seen.json["episodes"]] == ["T-2"]


def test_a_backfilled_earlier_session_makes_its_clinician_the_episodes(
    client: FlaskClient, tenant: Tenant
) -> None:
    """An episode opened by its first session is that session's clinician's: a session backfilled
    before it (another clinician) makes the episode theirs at once, not only after some later,
    unrelated correction re-read the first session."""
    later = session_payload(ehr_session_id="S-22", client_id="C-7", clinician_id="T-2")
    assert client.post("/v1/sessions", json=later, headers=tenant.auth()).status_code == 201
    earlier = session_payload(
        ehr_session_id="S-21", client_id="C-7", clinician_id="T-1", date="2026-10-26"
    )
    assert client.post("/v1/sessions", json=earlier, headers=tenant.auth()).status_code == 201
    seen = client.get("/v1/clients/C-7", headers=tenant.auth("manager")).json
    assert [e["clinician_id"] for e in seen["episodes"]] == ["T-1"]
    fixed = {**later, "ratings": later["ratings"][:1]}  # an unrelated correction
    assert client.post("/v1/sessions", json=fixed, headers=tenant.auth()).status_code == 200
    seen = client.get("/v1/clients/C-7", headers=tenant.auth("manager")).json
    assert [e["clinician_id"] for e in seen["episodes"]] == ["T-1"]


def test_a_new_clients_batch_out_of_order_gives_the_episode_its_first_sessions_clinician(
    client: FlaskClient, tenant: Tenant
) -> None:
    """A backfill batch for a new client, newest first: the episode is the earliest session's
    clinician's, not that of the batch's first item."""
    batch = [
        session_payload(ehr_session_id="S-32", client_id="C-8", clinician_id="T-2"),
        session_payload(
            ehr_session_id="S-31", client_id="C-8", clinician_id="T-1", date="2026-10-26"
        ),
    ]
    resp = client.post("/v1/sessions/batch", json={"sessions": batch}, headers=tenant.auth())
    assert [r["outcome"] for r in resp.json["results"]] == ["created", "created"], resp.json
    seen = client.get("/v1/clients/C-8", headers=tenant.auth("manager")).json
    assert [e["clinician_id"] for e in seen["episodes"]] == ["T-1"]


def test_explicit_episode_keeps_its_clinician_through_a_session_correction(
    client: FlaskClient, tenant: Tenant, app: Any
) -> None:
    """An episode the EHR opened for a named clinician stays theirs when one of its sessions
    is re-attributed: only an episode opened by its first session follows that session."""
    opened = client.post(
        "/v1/episodes",
        json={
            "client_id": "C-5",
            "client_age_band": "adult",
            "clinician_id": "T-1",
            "opened_on": "2026-11-01",
        },
        headers=tenant.auth(),
    )
    assert opened.status_code == 201, opened.json
    first = session_payload(ehr_session_id="S-5", client_id="C-5", clinician_id="T-3")
    assert client.post("/v1/sessions", json=first, headers=tenant.auth()).status_code == 201
    first["clinician_id"] = "T-4"
    assert client.post("/v1/sessions", json=first, headers=tenant.auth()).status_code == 200
    seen = client.get("/v1/clients/C-5", headers=tenant.auth("manager")).json
    assert [e["clinician_id"] for e in seen["episodes"]] == ["T-1"]


def test_missing_and_revoked_keys_are_401(client: FlaskClient, tenant: Tenant, app: Any) -> None:
    """No key, a made-up key and a revoked key are all 401 with WWW-Authenticate."""
    from fit_service.services import clinics  # noqa: PLC0415

    assert client.get("/v1/clients").status_code == 401
    made_up = {"Authorization": "Bearer fit_abc_def"}
    assert client.get("/v1/clients", headers=made_up).status_code == 401
    prefix = tenant.keys["manager"].split("_")[1]
    with app.extensions["fit"].uow() as uow:
        clinics.revoke_api_key(uow, prefix)
    resp = client.get("/v1/clients", headers=tenant.auth("manager"))
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def _audit(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT action, record_id, outcome, status_code, actor "
                    "FROM audit_events ORDER BY id"
                )
            )
        ]


def test_reads_writes_and_refusals_are_audited(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    """Writes, reads and refused attempts each leave an audit row; no scores in it."""
    created = client.post("/v1/sessions", json=session_payload(), headers=tenant.auth()).json
    client.get("/v1/clients/C-1", headers=tenant.auth("manager"))
    client.get(f"/v1/sessions/{created['id']}", headers=other_tenant.auth("manager"))
    client.get("/v1/clients")
    rows = _audit(engine)
    actions = [(r[0], r[2], r[3]) for r in rows]
    assert ("session.created", "success", 201) in actions
    assert ("client.read", "success", 200) in actions
    assert ("GET /v1/sessions/<uuid:session_id>", "not_found", 404) in actions
    assert ("GET /v1/clients", "unauthenticated", 401) in actions
    flat = repr(rows)
    assert "18.6" not in flat
    assert "individual" not in flat


def test_audit_trail_is_append_only(client: FlaskClient, tenant: Tenant, engine: Engine) -> None:
    """The database itself refuses to update or delete audit rows."""
    client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
    for statement in ("UPDATE audit_events SET outcome = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(statement))
    assert _audit(engine)


def test_batch_items_refused_by_the_schema_are_audited_without_scores(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Every batch item refused by the schema leaves a session.reject row naming its EHR id
    (or, when that is unreadable, its index), with no scores, on first send and on replay."""
    unknown_field = session_payload(ehr_session_id="X-1", foo=1)
    bad_id = session_payload(ehr_session_id="X\x002")
    items = [unknown_field, session_payload(ehr_session_id="X-3"), None, bad_id]
    for _ in range(2):  # the second is an Idempotency-Key replay
        resp = client.post(
            "/v1/sessions/batch",
            json={"sessions": items},
            headers={**tenant.auth(), "Idempotency-Key": "k-audit"},
        )
        assert resp.status_code == 200, resp.json
        assert (resp.json["created"], resp.json["rejected"]) == (1, 3)
    rows = _audit(engine)
    refusals = sorted(r[1:4] for r in rows if r[0] == "session.reject")
    once = [
        ("X-1", "rejected", 422),
        ("sessions[2]", "rejected", 422),
        ("sessions[3]", "rejected", 422),
    ]
    assert refusals == sorted(2 * once)
    actions = [r[0] for r in rows]
    assert (actions.count("session.created"), actions.count("session.replay")) == (1, 1)
    flat = repr(rows)
    assert "18.6" not in flat
    assert "4.5" not in flat
    assert "individual" not in flat


def test_refusals_of_a_body_type_or_a_path_are_audited(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    """A 415 (wrong body type) is audited under the key judged before it (a key of another
    clinic too: the body's type is judged before the episode is looked up); a 404 for a
    control character in the path, answered before the key is looked at, as anonymous, the
    control character escaped."""
    created = client.post("/v1/sessions", json=session_payload(), headers=tenant.auth()).json
    episode = created["episode_id"]
    before = len(_audit(engine))
    plain = {"data": "a=1", "content_type": "text/plain"}
    assert client.post("/v1/sessions", headers=tenant.auth(), **plain).status_code == 415
    close = f"/v1/episodes/{episode}/close"
    assert client.post(close, headers=other_tenant.auth(), **plain).status_code == 415
    assert client.get("/v1/clients/C%01", headers=tenant.auth("manager")).status_code == 404
    assert client.get("/v1/clients/C%00x", headers=tenant.auth("manager")).status_code == 404
    ingest, other_ingest = (
        key_actor(engine, tenant, "ingest"),
        key_actor(engine, other_tenant, "ingest"),
    )
    assert _audit(engine)[before:] == [
        ("POST /v1/sessions", None, "rejected", 415, ingest),
        ("POST /v1/episodes/<uuid:episode_id>/close", episode, "rejected", 415, other_ingest),
        ("GET /v1/clients/<string:client_id>", "C\\x01", "not_found", 404, "anonymous"),
        ("GET /v1/clients/<string:client_id>", "C\\x00x", "not_found", 404, "anonymous"),
    ]


def test_a_request_to_no_route_is_audited_under_its_valid_key(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    """A path /v1 does not have (404) or a method its route does not take (405) is answered
    alike with any key or none; the refusal's row names a valid key's actor and clinic, and
    stays anonymous for no key or an unknown one."""
    session = "/v1/sessions/8f2c3a52-5a1b-4d0e-9c7a-0b6f1e2d3c4b"
    bad_key = {"Authorization": "Bearer fit_abc_def"}
    requests = [
        ("rq-1", "GET", "/v1/nonexistent", tenant.auth("manager"), 404),
        ("rq-2", "DELETE", session, tenant.auth("manager"), 405),
        ("rq-3", "PUT", "/v1/clients", other_tenant.auth("clinician"), 405),
        ("rq-4", "GET", "/v1/nonexistent", {}, 404),
        ("rq-5", "DELETE", session, bad_key, 405),
    ]
    for request_id, method, path, headers, status in requests:
        resp = client.open(path, method=method, headers={**headers, "X-Request-Id": request_id})
        assert resp.status_code == status, (path, resp.json)
        assert resp.mimetype == "application/problem+json"
        if status == 405:
            assert "GET" in resp.headers["Allow"]
    for request_id, auth in (
        ("rq-own", tenant.auth("manager")),
        ("rq-other", other_tenant.auth("clinician")),
    ):
        read = client.get("/v1/clients", headers={**auth, "X-Request-Id": request_id})
        assert read.status_code == 200  # the key's actor, as its successful read names it
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.request_id, a.action, a.outcome, a.status_code, a.actor, c.public_id "
                "FROM audit_events a LEFT JOIN clinics c ON c.id = a.clinic_id "
                "WHERE a.request_id LIKE 'rq-%' ORDER BY a.id"
            )
        ).all()
    actors = {r[0]: r[4] for r in rows if r[0] in ("rq-own", "rq-other")}
    assert actors["rq-own"].startswith("key:")
    assert actors["rq-other"] != actors["rq-own"]

    def clinic(value: Any) -> str | None:
        return None if value is None else str(value).replace("-", "")

    refused = [(r[0], r[1], r[2], r[3], r[4], clinic(r[5])) for r in rows if r[3] >= 400]
    assert refused == [
        ("rq-1", "GET /v1/nonexistent", "not_found", 404, actors["rq-own"], tenant.clinic_id.hex),
        ("rq-2", f"DELETE {session}", "rejected", 405, actors["rq-own"], tenant.clinic_id.hex),
        (
            "rq-3",
            "PUT /v1/clients",
            "rejected",
            405,
            actors["rq-other"],
            other_tenant.clinic_id.hex,
        ),
        ("rq-4", "GET /v1/nonexistent", "not_found", 404, "anonymous", None),
        ("rq-5", f"DELETE {session}", "rejected", 405, "anonymous", None),
    ]
