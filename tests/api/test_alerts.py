"""/v1/alerts over HTTP: the feed (scope, filters, pages), one alert with its ETag, and the
lifecycle under If-Match (428 / 412 / 409), tenancy and roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from fit_service.adapters.orm import AuditEvent
from fit_service.services import clinics
from fit_service.services.principals import Role
from tests.conftest import Tenant, audited, session_payload

TODAY = datetime.now(UTC).date()
GOOD = {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5}
LOW = {"relationship": 6.0, "goals": 9.0, "approach": 9.0, "overall": 9.0}
ORS_ITEMS = ("individual", "interpersonal", "social", "overall")


def rupture(client: FlaskClient, tenant: Tenant, who: str = "C-1", clinician: str = "T-1") -> str:
    """Two sessions, the second with a low bond: one early_low_alliance alert; returns its id."""
    for n, (items, weeks) in enumerate(((GOOD, 2), (LOW, 1)), start=1):
        r = client.post(
            "/v1/sessions",
            json=session_payload(
                ehr_session_id=f"{who}-{n}",
                client_id=who,
                clinician_id=clinician,
                date=(TODAY - timedelta(weeks=weeks)).isoformat(),
                ratings=[{"instrument": "srs", "items": items}],
            ),
            headers=tenant.auth(),
        )
        assert r.status_code == 201, r.json
    feed = client.get("/v1/alerts", headers=tenant.auth("manager")).json["items"]
    return next(a["id"] for a in feed if a["client_id"] == who)


def act(
    client: FlaskClient, tenant: Tenant, alert_id: str, verb: str, etag: str | None, **body: Any
) -> Any:
    headers = tenant.auth("clinician")
    if etag is not None:
        headers["If-Match"] = etag
    return client.post(f"/v1/alerts/{alert_id}/{verb}", json=body or None, headers=headers)


def test_feed_is_the_clinicians_own_alerts_and_the_managers_whole_clinic(
    client: FlaskClient, tenant: Tenant
) -> None:
    """A clinician key sees alerts of its own clinician id only; a manager sees all."""
    mine = rupture(client, tenant, "C-1", "T-1")
    theirs = rupture(client, tenant, "C-2", "T-2")
    own = client.get("/v1/alerts", headers=tenant.auth("clinician")).json["items"]
    assert [a["id"] for a in own] == [mine]
    assert own[0]["leg"] == "bond"
    assert own[0]["clinician_id"] == "T-1"
    every = client.get("/v1/alerts", headers=tenant.auth("manager")).json["items"]
    assert {a["id"] for a in every} == {mine, theirs}
    hidden = client.get(f"/v1/alerts/{theirs}", headers=tenant.auth("clinician"))
    assert hidden.status_code == 404


@pytest.mark.parametrize("role", ["ingest", "admin"])
def test_roles_without_alert_access_are_refused(
    client: FlaskClient, tenant: Tenant, role: str
) -> None:
    """Integration and admin keys cannot read the feed (403, problem+json)."""
    r = client.get("/v1/alerts", headers=tenant.auth(role))
    assert r.status_code == 403
    assert r.mimetype == "application/problem+json"


def test_other_clinic_cannot_see_or_act_on_an_alert(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Another clinic gets 404 for the alert and an empty feed."""
    alert_id = rupture(client, tenant)
    r = client.get(f"/v1/alerts/{alert_id}", headers=other_tenant.auth("manager"))
    assert r.status_code == 404
    r = client.post(
        f"/v1/alerts/{alert_id}/acknowledge",
        headers={**other_tenant.auth("manager"), "If-Match": '"1"'},
    )
    assert r.status_code == 404
    assert client.get("/v1/alerts", headers=other_tenant.auth("manager")).json["items"] == []


def test_feed_filters_by_status_severity_and_time_and_pages(
    client: FlaskClient, tenant: Tenant
) -> None:
    """status, min_severity, since/until filter; limit + cursor walk the feed newest first."""
    first = rupture(client, tenant, "C-1")
    second = rupture(client, tenant, "C-2")
    act(client, tenant, first, "acknowledge", '"1"')
    auth = tenant.auth("manager")

    def ids(query: str) -> list[str]:
        r = client.get(f"/v1/alerts?{query}", headers=auth)
        assert r.status_code == 200, r.json
        return [a["id"] for a in r.json["items"]]

    assert ids("status=open") == [second]
    assert ids("status=open,acknowledged") == [second, first]
    assert ids("min_severity=high") == [second, first]
    assert ids("status=resolved") == []
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert ids(f"since={hour_ago.replace('+', '%2B')}") == [second, first]
    assert ids(f"until={hour_ago.replace('+', '%2B')}") == []
    page = client.get("/v1/alerts?limit=1", headers=auth).json
    assert [a["id"] for a in page["items"]] == [second]
    rest = client.get(f"/v1/alerts?limit=1&cursor={page['next_cursor']}", headers=auth).json
    assert [a["id"] for a in rest["items"]] == [first]
    assert rest["next_cursor"] is None
    bad = client.get("/v1/alerts?status=closed", headers=auth)
    assert bad.status_code == 422
    assert bad.json["field"] == "query.status[0]"


def two_alerts(client: FlaskClient, tenant: Tenant, who: str, clinician: str) -> list[str]:
    """Three sessions, the ORS falling reliably and the bond low: two alerts (deterioration,
    early low alliance) of one client; returns their ids, newest first."""
    steps = ((GOOD, 8.0, 3), (LOW, 5.0, 2), (LOW, 5.0, 1))
    for n, (items, ors, weeks) in enumerate(steps, start=1):
        ratings = [
            {"instrument": "ors", "items": dict.fromkeys(ORS_ITEMS, ors)},
            {"instrument": "srs", "items": items},
        ]
        r = client.post(
            "/v1/sessions",
            json=session_payload(
                ehr_session_id=f"{who}-{n}",
                client_id=who,
                clinician_id=clinician,
                date=(TODAY - timedelta(weeks=weeks)).isoformat(),
                ratings=ratings,
            ),
            headers=tenant.auth(),
        )
        assert r.status_code == 201, r.json
    feed = client.get("/v1/alerts", headers=tenant.auth("manager")).json["items"]
    ids = [a["id"] for a in feed if a["client_id"] == who]
    assert len(ids) == 2, feed
    return ids


def test_feed_filters_by_client_within_the_keys_scope_and_pages(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """?client_id= gives one client's alerts among those the key may see: another clinician's
    client, an unknown one or another clinic's has none (not a 404). Its pages follow the
    cursor; a cursor is refused under another client filter or none, and vice versa."""
    mine = two_alerts(client, tenant, "C-1", "T-1")
    other = rupture(client, tenant, "C-2", "T-1")
    theirs = rupture(client, tenant, "C-3", "T-2")
    clinician, manager = tenant.auth("clinician"), tenant.auth("manager")

    def get(auth: dict[str, str], **query: Any) -> Any:
        return client.get("/v1/alerts", query_string=query, headers=auth)

    def ids(auth: dict[str, str], **query: Any) -> list[str]:
        r = get(auth, **query)
        assert r.status_code == 200, r.json
        return [a["id"] for a in r.json["items"]]

    assert ids(clinician, client_id="C-1") == mine
    assert ids(clinician, client_id="C-2") == [other]
    assert ids(manager, client_id="C-3") == [theirs]
    assert ids(clinician, client_id="C-3") == []  # another clinician's client
    assert ids(clinician, client_id="C-404") == []
    assert ids(other_tenant.auth("manager"), client_id="C-1") == []
    assert ids(manager, client_id="C-1", status="resolved") == []

    first = get(clinician, client_id="C-1", limit=1).json
    assert [a["id"] for a in first["items"]] == [mine[0]]
    rest = get(clinician, client_id="C-1", limit=1, cursor=first["next_cursor"]).json
    assert ([a["id"] for a in rest["items"]], rest["next_cursor"]) == ([mine[1]], None)
    unfiltered = get(manager, limit=1).json["next_cursor"]
    assert unfiltered is not None
    for auth, query in [
        (manager, {"client_id": "C-1", "cursor": unfiltered}),
        (clinician, {"client_id": "C-2", "cursor": first["next_cursor"]}),
        (clinician, {"cursor": first["next_cursor"]}),
    ]:
        r = get(auth, **query)
        assert r.status_code == 422, (query, r.json)
        assert (r.json["field"], r.json["rule"]) == ("query.cursor", "cursor_mismatch")
    for bad in ("C 1", "C-1\n", "", "x" * 65):
        r = get(manager, client_id=bad)
        assert r.status_code == 422, (bad, r.json)
        assert r.json["field"] == "query.client_id"


def _audited(engine: Engine, request_id: str) -> list[tuple[Any, ...]]:
    return audited(engine, request_id, AuditEvent.actor)


def test_the_feed_is_audited_per_alert_returned(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    """A feed page leaves one alert.list row per alert on it (evidence of each client is
    disclosed), a page of one alert one row; an empty feed one row naming no alert."""
    first = rupture(client, tenant, "C-1")
    second = rupture(client, tenant, "C-2")

    def feed(auth: dict[str, str], request_id: str, query: str = "") -> list[str]:
        r = client.get(f"/v1/alerts{query}", headers={**auth, "X-Request-Id": request_id})
        assert r.status_code == 200, r.json
        return [a["id"] for a in r.json["items"]]

    manager = tenant.auth("manager")
    assert feed(manager, "rq-feed") == [second, first]
    rows = _audited(engine, "rq-feed")
    assert [r[:3] for r in rows] == [
        ("alert.list", "alert", second),
        ("alert.list", "alert", first),
    ]
    assert len({r[3] for r in rows}) == 1  # one actor: the manager's key
    assert feed(manager, "rq-page", "?limit=1") == [second]
    assert [r[:3] for r in _audited(engine, "rq-page")] == [("alert.list", "alert", second)]
    assert feed(other_tenant.auth("manager"), "rq-none") == []
    assert [r[:3] for r in _audited(engine, "rq-none")] == [("alert.list", "alert", None)]


def test_acknowledge_then_resolve_with_a_note_through_the_api(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """The clinician reads the alert (ETag), acknowledges it, resolves it with a note; each
    step bumps the ETag and is audited."""
    alert_id = rupture(client, tenant)
    r = client.get(f"/v1/alerts/{alert_id}", headers=tenant.auth("clinician"))
    assert r.headers["ETag"] == '"1"'
    assert "Repair the bond" in r.json["guidance"]

    r = act(client, tenant, alert_id, "acknowledge", r.headers["ETag"])
    assert r.status_code == 200, r.json
    assert r.json["status"] == "acknowledged"
    assert r.json["acknowledged_at"] is not None
    assert r.headers["ETag"] == '"2"'

    note = "Talked about the session; agreed to spend more time on her concerns first."
    r = act(client, tenant, alert_id, "resolve", r.headers["ETag"], note=note)
    assert r.status_code == 200, r.json
    assert (r.json["status"], r.json["closing_note"]) == ("resolved", note)
    again = client.get(f"/v1/alerts/{alert_id}", headers=tenant.auth("manager")).json
    assert (again["status"], again["version"], again["closing_note"]) == ("resolved", 3, note)
    with engine.connect() as conn:
        actions = set(conn.scalars(select(AuditEvent.action)))
    assert {"alert.read", "alert.list", "alert.acknowledge", "alert.resolve"} <= actions


def test_missing_if_match_is_428_and_stale_is_412(client: FlaskClient, tenant: Tenant) -> None:
    """No If-Match: 428; an old version: 412; garbage or *: 412; nothing changes."""
    alert_id = rupture(client, tenant)
    r = act(client, tenant, alert_id, "acknowledge", None)
    assert r.status_code == 428
    assert r.json["rule"] == "precondition_required"
    assert act(client, tenant, alert_id, "acknowledge", '"7"').status_code == 412
    assert act(client, tenant, alert_id, "acknowledge", "nonsense").status_code == 412
    assert act(client, tenant, alert_id, "acknowledge", "*").status_code == 412
    view = client.get(f"/v1/alerts/{alert_id}", headers=tenant.auth("clinician")).json
    assert (view["status"], view["version"]) == ("open", 1)


@pytest.mark.parametrize(
    "etag", ['"99999999999999999999"', '"2147483648"', 'W/"9223372036854775808"', '"0"', '"-1"']
)
def test_if_match_out_of_the_version_range_is_stale_not_a_server_error(
    client: FlaskClient, tenant: Tenant, etag: str
) -> None:
    """An If-Match no version can have (0, negative, beyond 32 bits) is a 412 on both
    databases for alerts and goal sheets; it never reaches the database as a 500."""
    alert_id = rupture(client, tenant)
    r = act(client, tenant, alert_id, "acknowledge", etag)
    assert r.status_code == 412, r.json
    assert r.json["field"] == "If-Match"
    r = act(client, tenant, alert_id, "resolve", etag, note="Rang the client.")
    assert r.status_code == 412, r.json
    episode = client.get(f"/v1/alerts/{alert_id}", headers=tenant.auth("manager")).json[
        "episode_id"
    ]
    sheet = {"goal": "Back to work", "steps": [], "expectation": "to_be_heard"}
    url = f"/v1/episodes/{episode}/goal-sheet"
    assert client.put(url, json=sheet, headers=tenant.auth("manager")).status_code == 201
    r = client.put(url, json=sheet, headers={**tenant.auth("manager"), "If-Match": etag})
    assert r.status_code == 412, r.json
    view = client.get(f"/v1/alerts/{alert_id}", headers=tenant.auth("clinician")).json
    assert (view["status"], view["version"]) == ("open", 2)  # the sheet refreshed its guidance


def test_two_clinicians_acting_on_the_same_version_one_wins(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Two decisions made on ETag "1": the first applies, the second gets 412 and must re-read
    (no lost update)."""
    alert_id = rupture(client, tenant)
    first = act(client, tenant, alert_id, "dismiss", '"1"', reason="Known; discussed today.")
    second = act(client, tenant, alert_id, "resolve", '"1"', note="Rang the client.")
    assert first.status_code == 200
    assert second.status_code == 412
    view = client.get(f"/v1/alerts/{alert_id}", headers=tenant.auth("clinician")).json
    assert (view["status"], view["closing_note"]) == ("dismissed", "Known; discussed today.")


def test_illegal_transitions_and_missing_text_are_refused(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Resolve needs a note, dismiss a reason (422); a closed alert cannot move (409)."""
    alert_id = rupture(client, tenant)
    assert act(client, tenant, alert_id, "resolve", '"1"').status_code == 422
    blank = act(client, tenant, alert_id, "dismiss", '"1"', reason="   ")
    assert blank.status_code == 422
    assert (blank.json["rule"], blank.json["field"]) == ("blank_text", "reason")
    assert act(client, tenant, alert_id, "resolve", '"1"', note="Done.").status_code == 200
    r = act(client, tenant, alert_id, "acknowledge", '"2"')
    assert r.status_code == 409
    assert r.json["rule"] == "illegal_alert_transition"


def test_unknown_alert_is_404(client: FlaskClient, tenant: Tenant) -> None:
    """A well-formed but unknown id is a 404 problem."""
    r = client.get(
        "/v1/alerts/00000000-0000-4000-8000-000000000000", headers=tenant.auth("manager")
    )
    assert r.status_code == 404
    assert r.json["rule"] == "not_found"


@pytest.mark.parametrize(
    ("name", "value"),
    [("since", "0001-01-01T00:00:00+01:00"), ("until", "9999-12-31T23:59:59-01:00")],
)
def test_a_feed_time_outside_the_utc_calendar_is_422_not_500(
    client: FlaskClient, tenant: Tenant, name: str, value: str
) -> None:
    """A since/until that leaves years 1 to 9999 once converted to UTC is a 422 on that field."""
    r = client.get("/v1/alerts", query_string={name: value}, headers=tenant.auth("manager"))
    assert r.status_code == 422
    assert r.mimetype == "application/problem+json"
    assert (r.json["field"], r.json["rule"]) == (f"query.{name}", "invalid")
    assert "years 1 to 9999" in r.json["detail"]
    edge = {"since": "0001-01-01T00:00:00+00:00", "until": "9999-12-31T23:59:59+00:00"}[name]
    ok = client.get("/v1/alerts", query_string={name: edge}, headers=tenant.auth("manager"))
    assert ok.status_code == 200, ok.json


def test_a_moved_alert_is_in_the_new_clinicians_feed_and_theirs_to_act_on(
    app: Flask, client: FlaskClient, tenant: Tenant
) -> None:
    """When the client moves to T-2, the live alert leaves T-1's feed and T-2 can act on it."""
    alert_id = rupture(client, tenant, "C-1", "T-1")
    with app.extensions["fit"].uow() as uow:
        key = clinics.create_api_key(uow, tenant.clinic_id, Role.CLINICIAN, "t2", "T-2").secret
    t2 = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/alerts", headers=t2).json["items"] == []
    r = client.post(
        "/v1/sessions",
        json=session_payload(
            ehr_session_id="C-1-3",
            clinician_id="T-2",
            date=TODAY.isoformat(),
            ratings=[{"instrument": "srs", "items": LOW}],
        ),
        headers=tenant.auth(),
    )
    assert r.status_code == 201, r.json

    feed = client.get("/v1/alerts", headers=t2).json["items"]
    assert [(a["id"], a["clinician_id"], a["version"]) for a in feed] == [(alert_id, "T-2", 2)]
    assert client.get("/v1/alerts", headers=tenant.auth("clinician")).json["items"] == []
    assert client.get(f"/v1/alerts/{alert_id}", headers=tenant.auth("clinician")).status_code == 404
    acked = client.post(f"/v1/alerts/{alert_id}/acknowledge", headers={**t2, "If-Match": '"2"'})
    assert acked.status_code == 200, acked.json


def test_a_closed_alert_is_hidden_from_a_clinician_who_lost_the_client(
    app: Flask, client: FlaskClient, tenant: Tenant
) -> None:
    """T-8 dismisses the early_low_alliance alert of C-70's session; the EHR re-sends the
    session under T-7 (a correction), so T-8 loses access to C-70 - and to the closed alert,
    its scores included: 404 for the alert, not in the feed, not to act on (before: 200 and
    listed). The dismissed alert stays T-8's (closed alerts stay with the clinician who closed
    them; only live ones move with the episode): T-7 does not see it; the manager does."""
    keys = {}
    with app.extensions["fit"].uow() as uow:
        for who in ("T-8", "T-7"):
            secret = clinics.create_api_key(uow, tenant.clinic_id, Role.CLINICIAN, who, who).secret
            keys[who] = {"Authorization": f"Bearer {secret}"}
    payload = session_payload(
        ehr_session_id="C-70-1",
        client_id="C-70",
        clinician_id="T-8",
        date=(TODAY - timedelta(days=7)).isoformat(),
        ratings=[{"instrument": "srs", "items": LOW}],
    )
    assert client.post("/v1/sessions", json=payload, headers=tenant.auth()).status_code == 201
    (alert,) = client.get("/v1/alerts", headers=keys["T-8"]).json["items"]
    assert alert["kind"] == "early_low_alliance"
    t8 = keys["T-8"]
    dismissed = client.post(
        f"/v1/alerts/{alert['id']}/dismiss",
        json={"reason": "Discussed; the client was tired."},
        headers={**t8, "If-Match": f'"{alert["version"]}"'},
    )
    assert dismissed.status_code == 200, dismissed.json
    assert client.get(f"/v1/alerts/{alert['id']}", headers=t8).status_code == 200

    corrected = client.post(
        "/v1/sessions", json={**payload, "clinician_id": "T-7"}, headers=tenant.auth()
    )
    assert corrected.status_code == 200, corrected.json

    assert client.get("/v1/clients/C-70", headers=t8).status_code == 404
    assert client.get(f"/v1/alerts/{alert['id']}", headers=t8).status_code == 404
    assert client.get("/v1/alerts?status=dismissed", headers=t8).json["items"] == []
    assert client.get("/v1/alerts", headers=t8).json["items"] == []
    gone = client.post(
        f"/v1/alerts/{alert['id']}/resolve",
        json={"note": "x"},
        headers={**t8, "If-Match": f'"{dismissed.json["version"]}"'},
    )
    assert gone.status_code == 404

    t7 = client.get("/v1/alerts", headers=keys["T-7"]).json["items"]
    assert alert["id"] not in {a["id"] for a in t7}
    assert client.get(f"/v1/alerts/{alert['id']}", headers=keys["T-7"]).status_code == 404
    manager = tenant.auth("manager")
    assert client.get(f"/v1/alerts/{alert['id']}", headers=manager).status_code == 200
    every = client.get("/v1/alerts?status=dismissed", headers=manager).json["items"]
    assert [a["id"] for a in every] == [alert["id"]]
