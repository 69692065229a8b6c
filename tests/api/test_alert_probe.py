"""Regressions found by probing the alert workflow over HTTP as a clinician and an integrator
(README "Risk alerts for clinicians" and the alert endpoints)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import Tenant, session_payload

TODAY = datetime.now(UTC).date()


def ors(total_item: float, overall: float | None = None) -> dict[str, Any]:
    items = {"individual": total_item, "interpersonal": total_item, "social": total_item}
    return {"instrument": "ors", "items": {**items, "overall": overall or total_item}}


def srs(relationship: float, goals: float, approach: float, overall: float) -> dict[str, Any]:
    items = {"relationship": relationship, "goals": goals, "approach": approach}
    return {"instrument": "srs", "items": {**items, "overall": overall}}


def post(client: FlaskClient, tenant: Tenant, **fields: Any) -> None:
    r = client.post("/v1/sessions", json=session_payload(**fields), headers=tenant.auth())
    assert r.status_code in (200, 201), r.json


def feed(client: FlaskClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = client.get("/v1/alerts?limit=100", headers=tenant.auth("manager"))
    assert r.status_code == 200, r.json
    return r.json["items"]  # type: ignore[no-any-return]


def early_low_alliance(client: FlaskClient, tenant: Tenant) -> dict[str, Any]:
    post(
        client,
        tenant,
        ehr_session_id="P-1",
        date=(TODAY - timedelta(days=3)).isoformat(),
        ratings=[ors(4), srs(9, 6, 8, 9)],
    )
    return next(a for a in feed(client, tenant) if a["kind"] == "early_low_alliance")


@pytest.mark.parametrize(("verb", "field"), [("resolve", "note"), ("dismiss", "reason")])
def test_a_blank_note_or_reason_is_a_422_like_an_empty_one(
    client: FlaskClient, tenant: Tenant, verb: str, field: str
) -> None:
    """A note of white space only says nothing, as an empty one: both are a bad body (422
    naming the field, as a blank goal is), not a conflict with the alert's state (409); the
    alert is left as it was."""
    alert = early_low_alliance(client, tenant)
    headers = {**tenant.auth("clinician"), "If-Match": '"1"'}
    for text in ("", "   ", "\t\n"):
        r = client.post(f"/v1/alerts/{alert['id']}/{verb}", json={field: text}, headers=headers)
        assert r.status_code == 422, (text, r.status_code, r.json)
        assert r.mimetype == "application/problem+json"
        assert r.json["field"] == field
    after = client.get(f"/v1/alerts/{alert['id']}", headers=tenant.auth("clinician")).json
    assert (after["status"], after["version"]) == ("open", 1)


@pytest.mark.parametrize("value", [10.5, 11, 40])
def test_srs_item_concern_beyond_the_item_scale_is_a_422_naming_the_key(
    client: FlaskClient, tenant: Tenant, value: float
) -> None:
    """SRS items run 0-10: an item line above 10 would flag every item of every session (and
    the [0, 40] check it had is the total's scale). Refused, nothing stored."""
    auth = tenant.auth("admin")
    before = client.get("/v1/settings", headers=auth).json
    r = client.put("/v1/settings", json={"risk": {"srs_item_concern": value}}, headers=auth)
    assert r.status_code == 422, r.json
    assert r.json["field"] == "risk.srs_item_concern"
    assert client.get("/v1/settings", headers=auth).json == before
    ok = client.put("/v1/settings", json={"risk": {"srs_item_concern": 10}}, headers=auth)
    assert ok.status_code == 200, ok.json


def test_not_on_track_text_matches_the_scores_when_the_rational_rules_flag_no_change(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Under the rational rules a client in the clinical range with no reliable improvement by
    session 6 is off track although the score sits inside the reliable-change band: the alert
    must not tell the clinician the score is below the band its own evidence shows it above.
    Off track here is the no-change finding itself, so it rides in that one alert (one finding,
    one alert): its facts in the evidence, the rational rules named in the guidance."""
    medium = {"risk": {"alert_min_severity": "medium"}}
    r = client.put("/v1/settings", json=medium, headers=tenant.auth("admin"))
    assert r.status_code == 200, r.json
    for n in range(1, 7):
        post(
            client,
            tenant,
            ehr_session_id=f"N-{n}",
            date=(TODAY - timedelta(days=3 * (7 - n))).isoformat(),
            ratings=[ors(4, 4 + n / 10), srs(9.5, 9.5, 9.5, 9.5)],
        )
    outcome = ("not_on_track", "no_reliable_improvement")
    (alert,) = [a for a in feed(client, tenant) if a["kind"] in outcome]
    assert alert["kind"] == "no_reliable_improvement"
    (evidence,) = [e for e in alert["evidence"]["also_holds"] if e["kind"] == "not_on_track"]
    assert evidence["outcome_total"] >= evidence["band_low"]
    assert "below the expected-response band" not in alert["guidance"]
    assert "No reliable improvement by session 6" in alert["guidance"]
    assert "By the rational rules (rational:cutoff+rc)" in alert["guidance"]


def test_the_same_webhook_url_twice_is_a_409_naming_the_registered_endpoint(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """A registration retried after a timeout must not add a second endpoint with the same
    URL: every alert would then reach the receiver twice, under two webhook-ids it cannot
    de-duplicate. Refused (409) naming the endpoint already there; nothing stored. Another
    clinic may register the same URL, and a deleted one may be registered again."""
    auth = tenant.auth("admin")
    url = "https://93.184.215.14/fit-hooks"
    first = client.post("/v1/webhook-endpoints", json={"url": url}, headers=auth)
    assert first.status_code == 201, first.json
    again = client.post("/v1/webhook-endpoints", json={"url": url}, headers=auth)
    assert again.status_code == 409, again.json
    assert again.mimetype == "application/problem+json"
    assert (again.json["rule"], again.json["field"]) == ("duplicate_endpoint", "url")
    assert first.json["id"] in again.json["detail"]
    listed = client.get("/v1/webhook-endpoints", headers=auth).json
    assert [e["id"] for e in listed] == [first.json["id"]]
    # the same receiver spelled otherwise: default port, scheme case, an empty query, a fragment
    for spelling in (
        "https://93.184.215.14:443/fit-hooks",
        "HTTPS://93.184.215.14/fit-hooks",
        "https://93.184.215.14/fit-hooks?",
        "https://93.184.215.14/fit-hooks#x",
    ):
        other = client.post("/v1/webhook-endpoints", json={"url": spelling}, headers=auth)
        assert (other.status_code, other.json["rule"]) == (409, "duplicate_endpoint"), spelling
    assert [e["id"] for e in client.get("/v1/webhook-endpoints", headers=auth).json] == [
        first.json["id"]
    ]
    theirs = client.post(
        "/v1/webhook-endpoints", json={"url": url}, headers=other_tenant.auth("admin")
    )
    assert theirs.status_code == 201, theirs.json
    gone = client.delete(f"/v1/webhook-endpoints/{first.json['id']}", headers=auth)
    assert gone.status_code == 204
    assert client.post("/v1/webhook-endpoints", json={"url": url}, headers=auth).status_code == 201


@pytest.mark.parametrize(
    "query",
    [
        "status=open&status=acknowledged",
        "min_severity=low&min_severity=high",
        "since=2020-01-01T00:00:00Z&since=2030-01-01T00:00:00Z",
        "limit=1&limit=2",
    ],
)
def test_a_feed_filter_named_twice_is_a_422_not_a_silent_first_value(
    client: FlaskClient, tenant: Tenant, query: str
) -> None:
    """status=open&status=acknowledged read as status=open only: a clinician's tool asking
    for its open and acknowledged alerts silently lost the acknowledged ones. Which value was
    meant is unknown, so the feed refuses it (422 naming the parameter); several statuses are
    comma-separated."""
    alert = early_low_alliance(client, tenant)
    headers = {**tenant.auth("clinician"), "If-Match": '"1"'}
    assert client.post(f"/v1/alerts/{alert['id']}/acknowledge", headers=headers).status_code == 200
    r = client.get(f"/v1/alerts?{query}", headers=tenant.auth("manager"))
    assert r.status_code == 422, r.json
    assert r.json["field"] == f"query.{query.split('=')[0]}"
    both = client.get("/v1/alerts?status=open,acknowledged", headers=tenant.auth("manager"))
    assert alert["id"] in [a["id"] for a in both.json["items"]]


def test_an_intake_on_the_cut_off_is_not_said_to_be_above_it(
    client: FlaskClient, tenant: Tenant
) -> None:
    """ORS 25.0 at intake sits on the adult cut-off (25), non-clinical by default
    (reports.cutoff_is_clinical false): the no-change advice must not call it "above" the
    cut-off, which the clinician can check against the score and find untrue."""
    low = {"risk": {"alert_min_severity": "low"}}
    r = client.put("/v1/settings", json=low, headers=tenant.auth("admin"))
    assert r.status_code == 200, r.json
    for n in range(1, 4):
        post(
            client,
            tenant,
            ehr_session_id=f"F-{n}",
            date=(TODAY - timedelta(days=3 * (3 - n))).isoformat(),
            ratings=[ors(6.2, 6.4), srs(9.5, 9.5, 9.5, 9.5)],
        )
    alert = next(a for a in feed(client, tenant) if a["kind"] == "no_reliable_improvement")
    assert alert["evidence"]["intake"] == 25.0
    assert "above the clinical cut-off" not in alert["guidance"]
    assert "outside the clinical range" in alert["guidance"]
