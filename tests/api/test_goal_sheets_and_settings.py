"""Goal sheets (versioned, feeding alert guidance), clinic settings and webhook endpoints over
HTTP, with their roles."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from fit_service.adapters.orm import Clinician, WebhookEndpoint
from fit_service.adapters.webhooks import check_secret
from fit_service.domain.risk import RiskSettings, Severity
from fit_service.services import clinic_settings, thresholds
from fit_service.services.principals import Principal, Role
from tests.conftest import Tenant, session_payload

TODAY = datetime.now(UTC).date()
SHEET = {
    "goal": "Sleep through the night and go back to choir",
    "steps": ["Keep a sleep diary", "Call the choir leader"],
    "expectation": "concrete_steps",
}


def episode_with_goal_alert(client: FlaskClient, tenant: Tenant) -> tuple[str, str]:
    """An episode whose second session has a low goals item: (episode id, alert id)."""
    episode = ""
    for n, goals in ((1, 9.5), (2, 5.0)):
        r = client.post(
            "/v1/sessions",
            json=session_payload(
                ehr_session_id=f"S{n}",
                date=(TODAY - timedelta(weeks=3 - n)).isoformat(),
                ratings=[
                    {
                        "instrument": "srs",
                        "items": {"relationship": 9.5, "goals": goals, "approach": 9, "overall": 9},
                    }
                ],
            ),
            headers=tenant.auth(),
        )
        episode = r.json["episode_id"]
    (alert,) = client.get("/v1/alerts", headers=tenant.auth("clinician")).json["items"]
    return episode, alert["id"]


def test_goal_sheet_is_created_read_and_replaced_under_if_match(
    client: FlaskClient, tenant: Tenant
) -> None:
    """PUT without If-Match creates (201); replacing needs the ETag (428 without, 412 stale)."""
    episode, _ = episode_with_goal_alert(client, tenant)
    url = f"/v1/episodes/{episode}/goal-sheet"
    auth = tenant.auth("clinician")
    assert client.get(url, headers=auth).status_code == 404

    r = client.put(url, json=SHEET, headers=auth)
    assert r.status_code == 201, r.json
    assert r.headers["ETag"] == '"1"'
    got = client.get(url, headers=auth)
    assert got.json["steps"] == SHEET["steps"]
    assert got.json["expectation"] == "concrete_steps"

    changed = {**SHEET, "expectation": "to_be_heard"}
    assert client.put(url, json=changed, headers=auth).status_code == 428
    assert client.put(url, json=changed, headers={**auth, "If-Match": '"9"'}).status_code == 412
    # The largest version an ETag may name: a 412 like any stale one (it was a 500 on
    # PostgreSQL, which refused to bind version + 1 = 2**31 into the integer column).
    top = client.put(url, json=changed, headers={**auth, "If-Match": '"2147483647"'})
    assert top.status_code == 412, top.json
    assert top.json["rule"] == "precondition_failed"
    r = client.put(url, json=changed, headers={**auth, "If-Match": '"1"'})
    assert r.status_code == 200
    assert r.json["version"] == 2
    bad = client.put(url, json={**SHEET, "expectation": "magic"}, headers=auth)
    assert bad.status_code == 422


def test_goal_sheet_feeds_the_guidance_of_live_alerts(client: FlaskClient, tenant: Tenant) -> None:
    """Writing the sheet rewrites the open alert's guidance with the client's own goal, steps and
    expectation, and bumps the alert's ETag."""
    episode, alert_id = episode_with_goal_alert(client, tenant)
    before = client.get(f"/v1/alerts/{alert_id}", headers=tenant.auth("clinician"))
    assert "No goal sheet is on file" in before.json["guidance"]
    client.put(f"/v1/episodes/{episode}/goal-sheet", json=SHEET, headers=tenant.auth("manager"))
    after = client.get(f"/v1/alerts/{alert_id}", headers=tenant.auth("clinician"))
    assert SHEET["goal"] in after.json["guidance"]
    assert "Keep a sleep diary" in after.json["guidance"]
    assert "concrete steps" in after.json["guidance"]
    assert after.headers["ETag"] == '"2"'


@pytest.mark.parametrize(("role", "status"), [("ingest", 403), ("admin", 403)])
def test_goal_sheet_roles(client: FlaskClient, tenant: Tenant, role: str, status: int) -> None:
    """Integration and admin keys may not write a client's goal sheet."""
    episode, _ = episode_with_goal_alert(client, tenant)
    r = client.put(f"/v1/episodes/{episode}/goal-sheet", json=SHEET, headers=tenant.auth(role))
    assert r.status_code == status


def test_other_clinic_cannot_reach_a_goal_sheet(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Another clinic's episode id is a 404 for reads and writes."""
    episode, _ = episode_with_goal_alert(client, tenant)
    url = f"/v1/episodes/{episode}/goal-sheet"
    assert client.put(url, json=SHEET, headers=other_tenant.auth("manager")).status_code == 404
    assert client.get(url, headers=other_tenant.auth("manager")).status_code == 404


def test_settings_are_validated_stored_and_applied(client: FlaskClient, tenant: Tenant) -> None:
    """A bad risk value or unknown section is a 422 naming the field; a shared threshold set
    under risk is refused in favour of its one owner under reports; a good one is stored and
    shows in the effective values; other roles get 403."""
    auth = tenant.auth("admin")
    r = client.put("/v1/settings", json={"risk": {"srs_item_concern": 99}}, headers=auth)
    assert r.status_code == 422
    assert r.json["field"] == "risk.srs_item_concern"
    r = client.put("/v1/settings", json={"risk": {"srs_concern_total": 34}}, headers=auth)
    assert (r.status_code, r.json["rule"]) == (422, "shared_threshold")
    r = client.put("/v1/settings", json={"risk": {"nonsense": 1}}, headers=auth)
    assert r.status_code == 422
    r = client.put("/v1/settings", json={"delivery": {"failing_after_hours": 0}}, headers=auth)
    assert r.json["field"] == "delivery.failing_after_hours"
    assert client.put("/v1/settings", json={"extra": {}}, headers=auth).status_code == 422
    r = client.put("/v1/settings", json={"reports": {"min_n": 0}}, headers=auth)
    assert r.status_code == 422
    assert r.json["field"] == "reports.min_n"

    good = {"risk": {"alert_min_severity": "medium"}, "reports": {"srs_concern": 34}}
    r = client.put("/v1/settings", json=good, headers=auth)
    assert r.status_code == 200, r.json
    got = client.get("/v1/settings", headers=auth).json
    assert got["risk"] == good["risk"]
    assert got["effective"]["risk"]["srs_concern_total"] == 34
    assert got["effective"]["risk"]["alert_min_severity"] == "medium"
    assert got["effective"]["delivery"]["failing_after_hours"] == 24
    assert client.get("/v1/settings", headers=tenant.auth("manager")).status_code == 403


def test_webhook_endpoint_secret_is_shown_once_and_private_urls_are_refused(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Registering returns a whsec_ secret once; listing never shows it; deleting works; a
    loopback URL is refused when private addresses are not allowed."""
    auth = tenant.auth("admin")
    r = client.post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:8080/hook"}, headers=auth
    )
    assert r.status_code == 201, r.json
    check_secret(r.json["secret"])
    listed = client.get("/v1/webhook-endpoints", headers=auth).json
    assert [e["id"] for e in listed] == [r.json["id"]]
    assert "secret" not in listed[0]
    assert listed[0]["failing"] is False
    assert client.get("/v1/webhook-endpoints", headers=tenant.auth("manager")).status_code == 403
    assert client.delete(f"/v1/webhook-endpoints/{r.json['id']}", headers=auth).status_code == 204
    with engine.connect() as conn:
        assert conn.scalar(select(WebhookEndpoint.id)) is None

    wiring = client.application.extensions["fit"]
    client.application.extensions["fit"] = dataclasses.replace(
        wiring, settings=wiring.settings.with_overrides(webhooks_allow_private=False)
    )
    refused = client.post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:8080/hook"}, headers=auth
    )
    assert refused.status_code == 422
    assert refused.json["rule"] == "unsafe_webhook_url"
    ftp = client.post("/v1/webhook-endpoints", json={"url": "ftp://example.org/x"}, headers=auth)
    assert ftp.json["rule"] == "invalid_webhook_url"


def test_clinician_email_is_set_by_admin(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """An admin sets a clinician's alert address; a malformed one is 422; unknown is 404."""
    client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
    auth = tenant.auth("admin")
    url = "/v1/clinicians/T-1/email"
    assert client.put(url, json={"email": "not-an-address"}, headers=auth).status_code == 422
    r = client.put(url, json={"email": "t1@clinic.example"}, headers=auth)
    assert r.status_code == 200
    missing = client.put(
        "/v1/clinicians/T-404/email", json={"email": "x@clinic.example"}, headers=auth
    )
    assert missing.status_code == 404
    with engine.connect() as conn:
        email = conn.scalar(select(Clinician.email).where(Clinician.external_id == "T-1"))
    assert email == "t1@clinic.example"


NUL = "\u0000"


@pytest.mark.parametrize(
    ("what", "field"),
    [
        ("goal", "goal"),
        ("steps", "steps[1]"),
        ("note", "note"),
        ("reason", "reason"),
        ("email", "email"),
        ("url", "url"),
    ],
)
def test_control_characters_in_text_are_a_422_naming_the_field(
    client: FlaskClient, tenant: Tenant, what: str, field: str
) -> None:
    """A NUL in a goal, a step, a resolve note, a dismiss reason, an e-mail address or a
    webhook URL is refused with 422 control_character naming the field (PostgreSQL would
    answer a NUL with a 500)."""
    episode, alert_id = episode_with_goal_alert(client, tenant)
    manager = tenant.auth("manager")
    admin = tenant.auth("admin")
    act = {**tenant.auth("clinician"), "If-Match": '"1"'}
    request = {
        "goal": ("put", f"/v1/episodes/{episode}/goal-sheet", {**SHEET, "goal": f"Sleep{NUL}"}),
        "steps": (
            "put",
            f"/v1/episodes/{episode}/goal-sheet",
            {**SHEET, "steps": ["Keep a diary", f"Call{NUL}"]},
        ),
        "note": ("post", f"/v1/alerts/{alert_id}/resolve", {"note": f"Rang{NUL} her."}),
        "reason": ("post", f"/v1/alerts/{alert_id}/dismiss", {"reason": f"Known{NUL}"}),
        "email": ("put", "/v1/clinicians/T-1/email", {"email": f"t1{NUL}@clinic.example"}),
        "url": ("post", "/v1/webhook-endpoints", {"url": f"http://127.0.0.1:8080/h{NUL}ook"}),
    }[what]
    method, url, body = request
    headers = {"goal": manager, "steps": manager, "email": admin, "url": admin}.get(what, act)
    r = getattr(client, method)(url, json=body, headers=headers)
    assert r.status_code == 422, r.json
    assert (r.json["field"], r.json["rule"]) == (field, "control_character")
    ok = client.get(f"/v1/alerts/{alert_id}", headers=manager).json
    assert (ok["status"], ok["version"]) == ("open", 1)


def test_tabs_and_line_breaks_stay_allowed_in_notes(client: FlaskClient, tenant: Tenant) -> None:
    """Free text may carry tabs and line breaks: a multi-line resolve note is stored as sent."""
    _, alert_id = episode_with_goal_alert(client, tenant)
    note = "Rang the client.\r\n\tAgreed on next steps."
    r = client.post(
        f"/v1/alerts/{alert_id}/resolve",
        json={"note": note},
        headers={**tenant.auth("clinician"), "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.json
    assert r.json["closing_note"] == note


@pytest.mark.parametrize("email", ["t1@clinic.example\n", "t1@clinic.ex\u0000ample", "t1@c.e\x7fx"])
def test_clinician_email_shape_check_refuses_control_characters(
    app: Flask, tenant: Tenant, client: FlaskClient, email: str
) -> None:
    """The service's own e-mail check (behind the schema) refuses control characters and a
    trailing line break, which the old pattern let through."""
    client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
    with app.extensions["fit"].uow() as uow:
        clinic_row = uow.session.scalar(select(Clinician.clinic_id))
        admin = Principal(clinic_row, None, Role.ADMIN)
        with pytest.raises(clinic_settings.InvalidSettings) as refused:
            clinic_settings.set_clinician_email(uow, admin, "T-1", email)
    assert refused.value.rule == "email_format"


@pytest.mark.parametrize(
    "email",
    [
        "dr.smith,someone@elsewhere.example",
        "dr.smith;someone@elsewhere.example",
        "Dr Smith <dr.smith@clinic.example>",
        "<dr.smith@clinic.example>",
        '"dr.smith"@clinic.example',
        "dr.smith@clinic.example:25",  # read as dr.smith@clinic.example and "25"
        "team:dr.smith@clinic.example",  # a group "team" holding dr.smith@clinic.example
    ],
)
def test_an_email_a_to_header_would_read_as_several_or_named_is_a_422(
    app: Flask, client: FlaskClient, tenant: Tenant, email: str
) -> None:
    """An address the To header would read as two recipients (or a display name and one) is
    refused at input naming the field, and the stored address stays."""
    client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
    admin = tenant.auth("admin")
    ok = client.put("/v1/clinicians/T-1/email", json={"email": "t1@clinic.example"}, headers=admin)
    assert ok.status_code == 200, ok.json
    r = client.put("/v1/clinicians/T-1/email", json={"email": email}, headers=admin)
    assert (r.status_code, r.mimetype) == (422, "application/problem+json")
    assert (r.json["field"], r.json["rule"]) == ("email", "email_format")
    with app.extensions["fit"].uow() as uow:
        stored = uow.session.scalar(select(Clinician.email).where(Clinician.external_id == "T-1"))
    assert stored == "t1@clinic.example"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:9/café", "percent-encode"),
        ("http://127.0.0.1:9/x?q=é", "percent-encode"),
        ("http://127.0.0.1:9/a b", "spaces or control characters"),
        ("http://127.0.0.1:9/a\tb", "spaces or control characters"),
        ("http://127.0.0.1:9/a\u00a0b", "spaces or control characters"),
    ],
)
def test_webhook_urls_that_could_never_be_sent_are_refused(
    client: FlaskClient, tenant: Tenant, engine: Engine, url: str, why: str
) -> None:
    """A URL with whitespace, a control character or non-ASCII outside the host is a 422 on
    'url' (it was stored, then failed or raised at every send); the encoded form is fine."""
    auth = tenant.auth("admin")
    r = client.post("/v1/webhook-endpoints", json={"url": url}, headers=auth)
    assert r.status_code == 422, r.json
    assert (r.json["field"], r.json["rule"]) == ("url", "invalid_webhook_url")
    assert why in r.json["detail"]
    with engine.connect() as conn:
        assert conn.scalar(select(WebhookEndpoint.id)) is None
    encoded = {"url": "http://127.0.0.1:9/caf%C3%A9?q=%C3%A9"}
    assert client.post("/v1/webhook-endpoints", json=encoded, headers=auth).status_code == 201


def test_blank_goal_or_step_is_a_422_and_nothing_is_stored(
    client: FlaskClient, tenant: Tenant
) -> None:
    """A goal or a step of white space only is refused naming it; the sheet and alert stay."""
    episode, alert_id = episode_with_goal_alert(client, tenant)
    url = f"/v1/episodes/{episode}/goal-sheet"
    auth = tenant.auth("clinician")
    r = client.put(url, json={**SHEET, "goal": " \u00a0\t "}, headers=auth)
    assert (r.status_code, r.json["field"], r.json["rule"]) == (422, "goal", "blank_text")
    assert r.headers["Content-Type"] == "application/problem+json"
    assert client.get(url, headers=auth).status_code == 404

    assert client.put(url, json=SHEET, headers=auth).status_code == 201
    alert_etag = client.get(f"/v1/alerts/{alert_id}", headers=auth).headers["ETag"]
    blank_step = {**SHEET, "steps": ["Keep a sleep diary", "  "]}
    r = client.put(url, json=blank_step, headers={**auth, "If-Match": '"1"'})
    assert (r.status_code, r.json["field"], r.json["rule"]) == (422, "steps[1]", "blank_text")
    got = client.get(url, headers=auth).json
    assert (got["version"], got["goal"], got["steps"]) == (1, SHEET["goal"], SHEET["steps"])
    assert client.get(f"/v1/alerts/{alert_id}", headers=auth).headers["ETag"] == alert_etag


def test_failing_period_under_a_minute_is_a_422_and_nothing_is_stored(
    client: FlaskClient, tenant: Tenant
) -> None:
    """failing_after_hours below one minute (1e-300 h rounds to zero) is refused; endpoints
    stay readable and registrable; one minute is accepted."""
    auth = tenant.auth("admin")
    before = client.get("/v1/settings", headers=auth).json
    for hours in (1e-300, 0.0002, 0.016):
        r = client.put(
            "/v1/settings", json={"delivery": {"failing_after_hours": hours}}, headers=auth
        )
        assert (r.status_code, r.json["field"]) == (422, "delivery.failing_after_hours"), hours
    assert client.get("/v1/settings", headers=auth).json == before
    r = client.post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:8080/hook"}, headers=auth
    )
    assert r.status_code == 201, r.json
    assert client.get("/v1/webhook-endpoints", headers=auth).status_code == 200
    r = client.put("/v1/settings", json={"delivery": {"failing_after_hours": 1 / 60}}, headers=auth)
    assert r.status_code == 200, r.json
    assert r.json["effective"]["delivery"]["failing_after_hours"] == pytest.approx(1 / 60)


def test_a_zero_failing_period_stored_earlier_reads_as_the_default() -> None:
    """A tiny period stored before the minute floor existed gives the 24 h default, so the
    delivery worker and the endpoint list keep working."""
    stored = {"delivery": {"failing_after_hours": 1e-300}}
    assert clinic_settings.delivery_settings(stored).failing_after == timedelta(hours=24)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("risk", "early_window_sessions", 10**30),
        ("risk", "max_gap_days", 10**30),
        ("risk", "early_window_sessions", 101),
        ("risk", "change_checkpoint", 101),
        ("risk", "max_gap_days", 366),
        ("risk", "stale_evidence_gaps", 10**12),
        ("risk", "stale_evidence_gaps", 21),
        ("risk", "srs_item_concern", 10**400),
        ("reports", "srs_concern", 10**400),
    ],
    ids=lambda v: f"1e{len(str(v)) - 1}" if isinstance(v, int) and v > 10**6 else None,
)
def test_out_of_range_integer_setting_is_a_422_and_nothing_is_stored(
    client: FlaskClient, tenant: Tenant, section: str, key: str, value: int
) -> None:
    """An integer setting above its bound (or beyond any number) is refused naming the key."""
    auth = tenant.auth("admin")
    before = client.get("/v1/settings", headers=auth).json
    body = '{"%s": {"%s": %d}}' % (section, key, value)  # noqa: UP031 - an int json can't write
    r = client.put("/v1/settings", data=body, content_type="application/json", headers=auth)
    assert r.status_code == 422, r.get_data(as_text=True)[:300]
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json["field"] == f"{section}.{key}"
    assert client.get("/v1/settings", headers=auth).json == before


def test_integer_settings_at_their_bounds_are_stored(client: FlaskClient, tenant: Tenant) -> None:
    """The largest session count (100) and gap (365 days) are accepted and in force."""
    auth = tenant.auth("admin")
    risk = {"early_window_sessions": 100, "change_checkpoint": 100, "max_gap_days": 365}
    r = client.put("/v1/settings", json={"risk": risk}, headers=auth)
    assert r.status_code == 200, r.json
    for key, value in risk.items():
        assert r.json["effective"]["risk"][key] == value


def test_an_out_of_range_risk_setting_stored_earlier_gives_the_defaults() -> None:
    """A huge integer stored before the bounds existed is not applied: the defaults are."""
    limits = thresholds.from_settings({"risk": {"max_gap_days": 10**30}})
    assert limits.risk.max_gap_days == RiskSettings().max_gap_days


def test_a_setting_refused_after_a_bound_tightened_falls_back_alone() -> None:
    """A value valid when stored (srs_decline_points 0.05, reliable_change 0.5) and refused since
    the bounds were tightened gives that key's default; the clinic's other settings stay: its
    alert severity, WAI floor and minimum n for small cells did not silently reset."""
    stored = {
        "risk": {"srs_decline_points": 0.05, "alert_min_severity": "low", "wai_floor": 6},
        "reports": {"reliable_change": 0.5, "min_n": 5, "srs_concern": 34},
    }
    limits = thresholds.from_settings(stored)
    assert limits.risk.srs_decline_points == RiskSettings().srs_decline_points
    assert limits.risk.alert_min_severity == Severity.LOW
    assert limits.risk.wai_floor == 6
    assert limits.reports.reliable_change == 5.0
    assert (limits.reports.min_n, limits.reports.srs_concern) == (5, 34)
    assert limits.risk.srs_concern_total == 34  # shared from reports


def test_effective_settings_include_the_reports_section(
    client: FlaskClient, tenant: Tenant
) -> None:
    """GET /v1/settings shows the report values in force: defaults, then the clinic's own."""
    auth = tenant.auth("admin")
    effective = client.get("/v1/settings", headers=auth).json["effective"]
    assert sorted(effective) == ["delivery", "reports", "risk"]
    assert effective["reports"]["min_n"] == 10
    assert effective["reports"]["ors_cutoff_adult"] == 25
    assert effective["reports"]["dropout_definition"] == "unilateral"
    mine = {"min_n": 5, "dropout_definition": "early_unplanned", "cors_cutoff": 30}
    assert client.put("/v1/settings", json={"reports": mine}, headers=auth).status_code == 200
    effective = client.get("/v1/settings", headers=auth).json["effective"]
    assert {k: effective["reports"][k] for k in mine} == mine
    assert effective["reports"]["ors_cutoff_adolescent"] == 28


def test_a_settings_put_without_a_body_is_refused_and_changes_nothing(
    client: FlaskClient, tenant: Tenant
) -> None:
    """PUT /v1/settings with no body is a 422 (it would reset every section to its defaults);
    the stored settings stay; "{}" still resets on purpose; a non-admin gets 403 first."""
    admin = tenant.auth("admin")
    stored = {"reports": {"min_n": 5}}
    assert client.put("/v1/settings", json=stored, headers=admin).status_code == 200
    r = client.put("/v1/settings", headers=admin)
    assert (r.status_code, r.mimetype, r.json["rule"]) == (
        422,
        "application/problem+json",
        "required",
    )
    assert client.get("/v1/settings", headers=admin).json["reports"] == {"min_n": 5}
    assert client.put("/v1/settings", headers=tenant.auth("manager")).status_code == 403
    assert client.put("/v1/settings", json={}, headers=admin).json["reports"] == {}


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("reports", "reliable_change", 1e-12),
        ("reports", "reliable_change", 5e-324),
        ("reports", "reliable_change", 0.5),
        ("reports", "srs_concern", 1e-300),
        ("reports", "ors_cutoff_adult", 0.5),
        ("reports", "cors_cutoff", 5e-324),
        ("risk", "srs_decline_points", 1e-12),
        ("risk", "srs_decline_points", 0.05),
        ("risk", "wai_decline_points", 0.5),
        ("risk", "dropout_alerts_per_clinician_week", 5e-324),
    ],
)
def test_thresholds_too_small_to_mean_anything_are_a_422(
    client: FlaskClient, tenant: Tenant, section: str, key: str, value: float
) -> None:
    """A reliable change of 1e-12 was stored and opened a deterioration alert for three
    unchanged ORS scores (change 0 "reliable" against a threshold of -1e-12), and 5e-324 broke
    the dropout model's fit; a decline finer than the scale's grid cannot be observed."""
    auth = tenant.auth("admin")
    before = client.get("/v1/settings", headers=auth).json
    r = client.put("/v1/settings", json={section: {key: value}}, headers=auth)
    assert r.status_code == 422, r.json
    assert r.json["field"] == f"{section}.{key}"
    assert client.get("/v1/settings", headers=auth).json == before


def test_the_smallest_meaningful_thresholds_are_stored(client: FlaskClient, tenant: Tenant) -> None:
    auth = tenant.auth("admin")
    body = {
        "reports": {"reliable_change": 1, "srs_concern": 1, "ors_cutoff_adult": 1},
        "risk": {"srs_decline_points": 0.1, "wai_decline_points": 1},
    }
    r = client.put("/v1/settings", json=body, headers=auth)
    assert r.status_code == 200, r.json
    assert r.json["effective"]["reports"]["reliable_change"] == 1
    assert r.json["effective"]["risk"]["srs_decline_points"] == 0.1
