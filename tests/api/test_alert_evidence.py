"""What a live alert rests on, over HTTP: sessions posted to ``/v1/sessions``, alerts read from
``/v1/alerts``. A later session on the evidence session's day is no correction of it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import Tenant, session_payload

TODAY = datetime.now(UTC).date()
ORS = {"instrument": "ors", "total": 20.0}


def srs_total(total: float) -> dict[str, Any]:
    return {"instrument": "srs", "total": total}


def post(
    client: FlaskClient, tenant: Tenant, n: str, day: date, ratings: list[Any], **kw: Any
) -> None:
    body = session_payload(ehr_session_id=n, date=day.isoformat(), ratings=ratings, **kw)
    r = client.post("/v1/sessions", json=body, headers=tenant.auth())
    assert r.status_code in (200, 201), r.json


def feed(client: FlaskClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = client.get("/v1/alerts?limit=100", headers=tenant.auth("manager"))
    assert r.status_code == 200, r.json
    return r.json["items"]  # type: ignore[no-any-return]


def only(client: FlaskClient, tenant: Tenant, kind: str) -> dict[str, Any]:
    (alert,) = [a for a in feed(client, tenant) if a["kind"] == kind]
    return alert


# ------------------------------------------------------------------ evidence cut at its session
def test_a_later_session_on_the_evidence_day_does_not_auto_resolve_as_corrected(
    client: FlaskClient, tenant: Tenant
) -> None:
    """SRS 40, then 30 (early_low_alliance opens), then a third session on that same day with
    SRS 38: the alert stays open (before: auto-resolved at once as "corrected"); a second good
    session a week later resolves it by the clear streak."""
    post(client, tenant, "S-1", TODAY - timedelta(days=14), [ORS, srs_total(40.0)])
    post(client, tenant, "S-2", TODAY - timedelta(days=7), [ORS, srs_total(30.0)])
    opened = only(client, tenant, "early_low_alliance")
    assert (opened["status"], opened["session_number"]) == ("open", 2)

    post(client, tenant, "S-3", TODAY - timedelta(days=7), [ORS, srs_total(38.0)])
    alert = only(client, tenant, "early_low_alliance")
    assert (alert["id"], alert["status"], alert["closing_note"]) == (opened["id"], "open", None)

    post(client, tenant, "S-4", TODAY, [ORS, srs_total(38.0)])
    alert = only(client, tenant, "early_low_alliance")
    assert alert["status"] == "auto_resolved"
    assert "for 2 consecutive sessions since session 2" in alert["closing_note"]
    assert "corrected" not in alert["closing_note"]
