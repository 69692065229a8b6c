"""The order in which a write request is judged, on every write route: the key (401), its
role (403), the body's type (415) and size (413), then the body itself (400, 422).

A caller without a valid key, or whose role may not use the route, hears only that, whatever
it sent: a 415 or 413 first would tell a stranger how the route reads bodies, and an
unauthorised body is never read. (A text/plain body got its 415 before the key was looked
at, and a chunked body past the limit its 413 before the role was.)
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fit_service.adapters.orm import Base
from fit_service.config import Settings
from tests.conftest import Tenant, key_actor, role_for

#: A small body limit, so a body past it is cheap to send.
LIMIT = 4096

#: The bodies a write route judges after the key and the role, each with the answer a caller
#: that may use the route gets: (name, Content-Type, body, sent chunked, status, rule).
BODIES = [
    ("text/plain", "text/plain", b"a=1", False, 415, "content_type"),
    ("text/plain, chunked", "text/plain", b"a=1", True, 415, "content_type"),
    ("over the limit", "application/json", b"[" + b" " * LIMIT + b"]", False, 413, None),
    ("over the limit, chunked", "application/json", b"{" + b" " * 4 * LIMIT, True, 413, None),
    ("not JSON", "application/json", b"{", False, 400, "malformed_json"),
]


#: A key of the service's form that names no key.
_UNKNOWN_KEY = {"Authorization": "Bearer fit_abc_def"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, max_body_bytes=LIMIT)


def _write_operations(client: FlaskClient) -> list[tuple[str, str]]:
    spec = client.get("/v1/openapi.json").json
    found = [
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if method in {"post", "put", "patch"}
    ]
    assert len(found) >= 10
    return found


def _url(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "00000000-0000-4000-8000-000000000000", path)


def _forbidden_role(method: str, path: str) -> str:
    """A role that may not use the operation: admin sees no client data, and the admin's
    routes (settings, delivery) are no other role's."""
    return "ingest" if role_for(method, path) == "admin" else "admin"


def _send(
    client: FlaskClient, method: str, path: str, auth: dict[str, str], body: tuple[Any, ...]
) -> tuple[Any, int]:
    """Send ``body`` (one of :data:`BODIES`); the answer, and how many bytes of the body the
    service read."""
    _, content_type, data, chunked, _, _ = body
    stream = io.BytesIO(data)
    headers = {**auth, "Content-Type": content_type}
    environ: dict[str, Any] = {}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        # what gunicorn and werkzeug's server set for a chunked request they de-chunked
        environ["wsgi.input_terminated"] = True
    else:
        headers["Content-Length"] = str(len(data))
    resp = client.open(
        _url(path),
        method=method,
        input_stream=stream,
        headers=headers,
        environ_overrides=environ,
    )
    return resp, stream.tell()


def _stored(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the audit trail's (which records the refusals)."""
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t.name}"))]  # noqa: S608
            for t in Base.metadata.sorted_tables
            if t.name != "audit_events"
        }


@pytest.mark.parametrize("body", BODIES, ids=[b[0] for b in BODIES])
def test_a_caller_without_a_valid_key_gets_401_whatever_its_body(
    client: FlaskClient, tenant: Tenant, engine: Engine, body: tuple[Any, ...]
) -> None:
    """No key, or an unknown one: 401 on every write route, never the 415, 413 or 400 its
    body would get, and not one byte of the body is read."""
    before = _stored(engine)
    for method, path in _write_operations(client):
        for auth, rule in (({}, "not_authenticated"), (_UNKNOWN_KEY, "invalid_api_key")):
            resp, read = _send(client, method, path, auth, body)
            assert (resp.status_code, resp.json["rule"]) == (401, rule), (method, path, auth)
            assert resp.mimetype == "application/problem+json"
            assert read == 0, (method, path)
    assert _stored(engine) == before


@pytest.mark.parametrize("body", BODIES, ids=[b[0] for b in BODIES])
def test_a_role_that_may_not_use_the_route_gets_403_whatever_its_body(
    client: FlaskClient, tenant: Tenant, engine: Engine, body: tuple[Any, ...]
) -> None:
    """A valid key whose role may not use the write route: 403 forbidden, never the 415, 413
    or 400 its body would get, and not one byte of the body is read."""
    before = _stored(engine)
    for method, path in _write_operations(client):
        auth = tenant.auth(_forbidden_role(method, path))
        resp, read = _send(client, method, path, auth, body)
        assert (resp.status_code, resp.json["rule"]) == (403, "forbidden"), (method, path)
        assert resp.mimetype == "application/problem+json"
        assert read == 0, (method, path)
    assert _stored(engine) == before


@pytest.mark.parametrize("body", BODIES, ids=[b[0] for b in BODIES])
def test_a_role_that_may_use_the_route_gets_the_answer_its_body_earns(
    client: FlaskClient, tenant: Tenant, engine: Engine, body: tuple[Any, ...]
) -> None:
    """A key whose role may use the route gets the body's own refusal: 415 for a body that is
    not JSON, 413 for one past the limit (chunked or not), 400 for JSON it cannot read. A
    chunked body past the limit is read to the limit and a byte beyond, never whole."""
    name, _, data, chunked, status, rule = body
    before = _stored(engine)
    for method, path in _write_operations(client):
        resp, read = _send(client, method, path, tenant.auth(role_for(method, path)), body)
        assert resp.status_code == status, (method, path, resp.json)
        assert resp.mimetype == "application/problem+json"
        if rule is not None:
            assert resp.json["rule"] == rule, (method, path)
        if status == 415:
            assert (resp.json["field"], read) == ("Content-Type", 0), (method, path)
        if status == 413:
            assert (resp.json["rule"], resp.json["field"]) == ("body_too_large", "body")
            assert read <= (LIMIT + 1 if chunked else 0), (method, path, name, read)
            assert read < len(data)
    assert _stored(engine) == before


def test_the_order_is_audited_as_answered(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Each refusal's audit row says what was answered, under the key judged: a 415 names
    its (valid, permitted) key's actor, where it was anonymous, and a role's 403 comes before
    a chunked body's 413."""
    plain, chunked_past_limit = BODIES[0], BODIES[3]
    ingest, admin = tenant.auth("ingest"), tenant.auth("admin")
    with engine.connect() as conn:
        first = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM audit_events")).scalar_one()
    for auth, body in (
        ({}, plain),
        (admin, plain),
        (ingest, plain),
        (admin, chunked_past_limit),
        (ingest, chunked_past_limit),
    ):
        _send(client, "POST", "/v1/sessions", auth, body)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT action, outcome, status_code, actor FROM audit_events "
                "WHERE id > :first ORDER BY id"
            ),
            {"first": first},
        ).all()
    as_admin, as_ingest = key_actor(engine, tenant, "admin"), key_actor(engine, tenant, "ingest")
    assert [tuple(r) for r in rows] == [
        ("POST /v1/sessions", "unauthenticated", 401, "anonymous"),
        ("POST /v1/sessions", "forbidden", 403, as_admin),
        ("POST /v1/sessions", "rejected", 415, as_ingest),
        ("POST /v1/sessions", "forbidden", 403, as_admin),
        ("POST /v1/sessions", "rejected", 413, as_ingest),
    ]
