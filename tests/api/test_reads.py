"""The read side of the API: episode views, pagination, tenancy and the audit of reads."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from fit_service.adapters.orm import AuditEvent
from tests.conftest import Tenant, audited, session_payload


def _post(client: FlaskClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    resp = client.post("/v1/sessions", json=session_payload(**overrides), headers=tenant.auth())
    assert resp.status_code in (200, 201), resp.json
    return resp.json  # type: ignore[no-any-return]


def _rating(instrument: str, total: float) -> dict[str, Any]:
    """Four equal items summing to ``total`` (ORS/CORS slots)."""
    keys = ("individual", "interpersonal", "social", "overall")
    return {"instrument": instrument, "items": dict.fromkeys(keys, round(total / 4, 1))}


def test_change_since_first_reads_cors_then_ors_as_one_series(
    client: FlaskClient, tenant: Tenant
) -> None:
    """After a child turns 13, an ORS's change since the first session is against the
    episode's first score (the CORS), as the episode's outcome reads it (README)."""
    _post(
        client,
        tenant,
        ehr_session_id="S-1",
        date="2026-10-01",
        client_age_band="child",
        ratings=[_rating("cors", 20.0)],
    )
    body = _post(
        client,
        tenant,
        ehr_session_id="S-2",
        date="2026-10-08",
        client_age_band="adolescent",
        ratings=[_rating("ors", 28.0)],
    )
    assert body["episode"]["outcome"]["intake"] == pytest.approx(20.0)
    assert body["ratings"][0]["change_since_first"] == pytest.approx(8.0)
    episode = client.get("/v1/clients/C-1", headers=tenant.auth()).json["episodes"][0]
    assert episode["sessions"][1]["ratings"][0]["change_since_first"] == pytest.approx(8.0)
    assert episode["outcome"]["change"] == pytest.approx(8.0)


def _walk(
    client: FlaskClient, path: str, auth: dict[str, str], key: str, **filters: str
) -> list[str]:
    """Every page of a list, two rows at a time, following next_cursor to the end."""
    seen: list[str] = []
    query: dict[str, Any] = {"limit": 2, **filters}
    while True:
        resp = client.get(path, query_string=query, headers=auth)
        assert resp.status_code == 200, resp.json
        seen += [item[key] for item in resp.json["items"]]
        if resp.json["next_cursor"] is None:
            return seen
        query["cursor"] = resp.json["next_cursor"]


def test_pages_list_every_row_once(client: FlaskClient, tenant: Tenant) -> None:
    """Following next_cursor lists every visible row exactly once, also with a filter, after
    backfilled (earlier-dated) sessions and a revision, and for a clinician key."""
    for n in range(7):
        _post(
            client,
            tenant,
            ehr_session_id=f"S-{n}",
            client_id=f"C-{n % 3}",
            clinician_id="T-1" if n % 3 else "T-2",
            date=f"2026-10-{20 - n:02d}",
        )
    _post(client, tenant, ehr_session_id="S-1", client_id="C-1", date="2026-10-01")  # revision
    manager = tenant.auth("manager")
    sessions = _walk(client, "/v1/sessions", manager, "ehr_session_id")
    assert sorted(sessions) == [f"S-{n}" for n in range(7)]
    one = _walk(client, "/v1/sessions", manager, "ehr_session_id", client_id="C-1")
    assert sorted(one) == ["S-1", "S-4"]
    assert _walk(client, "/v1/clients", manager, "client_id") == ["C-0", "C-1", "C-2"]
    assert sorted(_walk(client, "/v1/clinicians", manager, "clinician_id")) == ["T-1", "T-2"]
    # the clinician key (T-1) never saw C-0, whose sessions were all with T-2
    mine = tenant.auth("clinician")
    assert _walk(client, "/v1/clients", mine, "client_id") == ["C-1", "C-2"]
    assert sorted(_walk(client, "/v1/sessions", mine, "ehr_session_id")) == [
        "S-1",
        "S-2",
        "S-4",
        "S-5",
    ]
    assert _walk(client, "/v1/clinicians", mine, "clinician_id") == ["T-1"]


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "a",
        "\u00e9",
        _cursor(b"{}"),
        _cursor(b"[1]"),
        _cursor(b"\xff\xfe"),
        _cursor(b"[" * 140),
        _cursor(b'{"after": -1}'),
        _cursor(b'{"after": 1.5}'),
        _cursor(b'{"after": "1"}'),
        _cursor(b'{"after": true}'),
        _cursor(b'{"after": 9223372036854775808}'),
        _cursor(b'{"after": 1' + b"0" * 130 + b"}"),
    ],
)
def test_a_tampered_cursor_is_a_problem_naming_it(
    client: FlaskClient, tenant: Tenant, cursor: str
) -> None:
    """A cursor the service did not issue is a 422 problem naming the cursor, never a 500."""
    for path in ("/v1/clients", "/v1/sessions", "/v1/clinicians"):
        resp = client.get(path, query_string={"cursor": cursor}, headers=tenant.auth("manager"))
        assert resp.status_code == 422, (path, resp.get_data())
        assert resp.mimetype == "application/problem+json"
        assert (resp.json["field"], resp.json["rule"]) == ("query.cursor", "invalid_cursor")


def test_a_cursor_of_another_list_or_filter_is_refused(client: FlaskClient, tenant: Tenant) -> None:
    """A cursor only continues the list and filter it came from: used elsewhere it would skip
    rows without a word (the alert feed even counts down), so it is a 422 naming the cursor.
    A cursor naming no list could not be checked, so it is refused too (invalid_cursor)."""
    for n in range(3):
        _post(client, tenant, ehr_session_id=f"S-{n}", client_id=f"C-{n}")
    manager = tenant.auth("manager")

    def next_cursor(path: str, **query: str) -> str:
        resp = client.get(path, query_string={"limit": 1, **query}, headers=manager)
        assert resp.status_code == 200, resp.json
        return str(resp.json["next_cursor"])

    clients_cursor = next_cursor("/v1/clients")
    all_sessions = next_cursor("/v1/sessions")
    refused = [
        ("/v1/sessions", {"cursor": clients_cursor}),
        ("/v1/clinicians", {"cursor": clients_cursor}),
        ("/v1/alerts", {"cursor": clients_cursor}),
        ("/v1/sessions", {"cursor": all_sessions, "client_id": "C-0"}),
    ]
    for path, query in refused:
        resp = client.get(path, query_string=query, headers=manager)
        assert resp.status_code == 422, (path, resp.get_data())
        assert resp.mimetype == "application/problem+json"
        assert (resp.json["field"], resp.json["rule"]) == ("query.cursor", "cursor_mismatch")
    # the same list and filter go on
    resp = client.get("/v1/clients", query_string={"cursor": clients_cursor}, headers=manager)
    assert [c["client_id"] for c in resp.json["items"]] == ["C-1", "C-2"]
    # a cursor without its list is refused on every list, filtered or not
    unscoped = _cursor(json.dumps({"after": 1}).encode())
    for path, query in [
        ("/v1/sessions", {}),
        ("/v1/sessions", {"client_id": "C-0"}),
        ("/v1/clients", {}),
        ("/v1/clinicians", {}),
        ("/v1/alerts", {}),
    ]:
        resp = client.get(path, query_string={**query, "cursor": unscoped}, headers=manager)
        assert resp.status_code == 422, (path, resp.get_data())
        assert (resp.json["field"], resp.json["rule"]) == ("query.cursor", "invalid_cursor")


def _audited(engine: Engine, request_id: str) -> list[tuple[Any, ...]]:
    return audited(engine, request_id, AuditEvent.outcome)


def test_a_list_read_is_audited_per_record_returned(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    """A page of clients or sessions leaves one audit row per record on it (the id its single
    read is audited under), so the trail says who saw which client's data; an empty page
    leaves one row naming no record, so the read is still recorded."""
    for n in range(3):
        _post(client, tenant, ehr_session_id=f"S-{n}", client_id=f"C-{n}")
    manager = tenant.auth("manager")

    def listed(path: str, request_id: str, **query: Any) -> list[str]:
        resp = client.get(path, query_string=query, headers={**manager, "X-Request-Id": request_id})
        assert resp.status_code == 200, resp.json
        key = "client_id" if path == "/v1/clients" else "id"
        return [item[key] for item in resp.json["items"]]

    clients = listed("/v1/clients", "rq-clients", limit=2)
    assert clients == ["C-0", "C-1"]
    assert _audited(engine, "rq-clients") == [
        ("client.list", "client", c, "success") for c in clients
    ]
    sessions = listed("/v1/sessions", "rq-sessions")
    assert len(sessions) == 3
    assert _audited(engine, "rq-sessions") == [
        ("session.list", "session", s, "success") for s in sessions
    ]
    one = listed("/v1/sessions", "rq-one", client_id="C-2")
    assert _audited(engine, "rq-one") == [("session.list", "session", one[0], "success")]
    assert listed("/v1/sessions", "rq-none", client_id="C-404") == []
    # found or not, the client looked up is named (a probe of another clinic's id included)
    assert _audited(engine, "rq-none") == [("session.list", "client", "C-404", "success")]
    empty = client.get(
        "/v1/clients", headers={**other_tenant.auth("manager"), "X-Request-Id": "rq-empty"}
    )
    assert (empty.status_code, empty.json["items"]) == (200, [])
    assert _audited(engine, "rq-empty") == [("client.list", "client", None, "success")]
