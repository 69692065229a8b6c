"""A rupture corrected out of the record and then put back (the EHR re-sends the first version
of the session after its correction) alerts again: the auto-resolution for the correction
covers nothing once the finding is back at the same session, since no clinician closed it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient

from tests.conftest import Tenant, session_payload

TODAY = datetime.now(UTC).date()
LOW = {"relationship": 7, "goals": 8, "approach": 8, "overall": 7}
GOOD = {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5}


def _send(client: FlaskClient, tenant: Tenant, srs: dict[str, float]) -> None:
    payload = session_payload(
        ehr_session_id="S-900",
        client_id="C-900",
        clinician_id="T-1",
        date=(TODAY - timedelta(days=1)).isoformat(),
        ratings=[{"instrument": "srs", "items": srs}],
    )
    r = client.post("/v1/sessions", json=payload, headers=tenant.auth())
    assert r.status_code in (200, 201), r.json


def _alerts(client: FlaskClient, tenant: Tenant) -> list[dict]:
    r = client.get("/v1/alerts?client_id=C-900", headers=tenant.auth("manager"))
    assert r.status_code == 200, r.json
    return r.json["items"]


def test_a_correction_undone_opens_the_alert_again(client: FlaskClient, tenant: Tenant) -> None:
    _send(client, tenant, LOW)  # revision 1: a low first-session SRS
    (first,) = _alerts(client, tenant)
    assert first["kind"] == "early_low_alliance"
    assert first["status"] == "open"

    _send(client, tenant, GOOD)  # revision 2: the rating was a typo
    closed = client.get(f"/v1/alerts/{first['id']}", headers=tenant.auth("manager")).json
    assert closed["status"] == "auto_resolved"
    assert "corrected" in closed["closing_note"]

    _send(client, tenant, LOW)  # revision 3: the first version again (a late retry, an undo)
    episode = client.get("/v1/clients/C-900", headers=tenant.auth("manager")).json
    assert episode["episodes"][0]["risk"]["level"] == "high"
    live = [
        a
        for a in client.get("/v1/alerts?client_id=C-900", headers=tenant.auth("clinician")).json[
            "items"
        ]
        if a["status"] in ("open", "acknowledged")
    ]
    assert [a["kind"] for a in live] == ["early_low_alliance"]
    assert live[0]["id"] != first["id"]  # a new alert; the closed one stays closed (final)
    assert live[0]["leg"] == "bond"
