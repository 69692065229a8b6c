"""What a live alert rests on, over HTTP: sessions posted to ``/v1/sessions``, alerts read from
``/v1/alerts``. A later session on the evidence session's day is no correction of it; a live
alert's evidence, leg and guidance follow its finding (a newer low rating, another no-show, a
longer gap on the scheduled check) on the same alert, without a new notice, keeping the facts it
opened with; ``fit check-risks`` says how many alerts it brought up to date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from fit_service.adapters.orm import OutboxMessage
from fit_service.services import risk_schedule
from tests.conftest import Tenant
from tests.integration.test_alert_dedup import alert_at
from tests.integration.test_risk_review import post

TODAY = datetime.now(UTC).date()
ORS = {"instrument": "ors", "total": 20.0}


def srs_total(total: float) -> dict[str, Any]:
    return {"instrument": "srs", "total": total}


def srs(bond: float, goal: float, task: float, overall: float) -> dict[str, Any]:
    srs_items = {"relationship": bond, "goals": goal, "approach": task, "overall": overall}
    return {"instrument": "srs", "items": srs_items}


def feed(client: FlaskClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = client.get("/v1/alerts?limit=100", headers=tenant.auth("manager"))
    assert r.status_code == 200, r.json
    return r.json["items"]  # type: ignore[no-any-return]


def only(client: FlaskClient, tenant: Tenant, kind: str) -> dict[str, Any]:
    (alert,) = [a for a in feed(client, tenant) if a["kind"] == kind]
    return alert


def acknowledge(client: FlaskClient, tenant: Tenant, alert: dict[str, Any]) -> dict[str, Any]:
    r = client.post(
        f"/v1/alerts/{alert['id']}/acknowledge",
        headers={**tenant.auth("clinician"), "If-Match": f'"{alert["version"]}"'},
    )
    assert r.status_code == 200, r.json
    return r.json  # type: ignore[no-any-return]


def with_webhook(client: FlaskClient, tenant: Tenant) -> None:
    r = client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook"},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 201, r.json


def notices(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count(OutboxMessage.id))) or 0)


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


# ------------------------------------------------------------------ facts that follow the finding
def test_a_lower_rating_moves_the_alerts_evidence_leg_and_guidance_to_the_new_session(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """early_low_alliance opens at session 1 (SRS 32, bond lowest) and is acknowledged; session
    2 scores SRS 24 with goals lowest. The same alert, still acknowledged and without a new
    notice, now shows session 2, SRS 24, the goal leg and goal guidance; ``opened_with`` keeps
    session 1's facts (before: it kept showing session 1, SRS 32, bond)."""
    with_webhook(client, tenant)
    post(client, tenant, "S-1", TODAY - timedelta(days=14), [ORS, srs(7.0, 8.5, 8.5, 8.0)])
    opened = only(client, tenant, "early_low_alliance")
    assert (opened["leg"], opened["session_number"], opened["evidence"]["srs_total"]) == (
        "bond",
        1,
        32.0,
    )
    acked = acknowledge(client, tenant, opened)
    sent = notices(engine)

    post(client, tenant, "S-2", TODAY - timedelta(days=7), [ORS, srs(7.0, 5.0, 6.0, 6.0)])
    now = only(client, tenant, "early_low_alliance")
    assert now["id"] == opened["id"]
    assert (now["status"], now["acknowledged_at"]) == ("acknowledged", acked["acknowledged_at"])
    assert (now["severity"], now["leg"], now["session_number"]) == ("high", "goal", 2)
    assert now["evidence"]["srs_total"] == 24.0
    assert now["evidence"]["weak_legs"][0] == "goal"
    assert now["evidence"]["observed_on"] == (TODAY - timedelta(days=7)).isoformat()
    assert "Re-agree the goals" in now["guidance"]
    first = now["evidence"]["opened_with"]
    assert (first["session_number"], first["srs_total"], first["concern"]) == (1, 32.0, "bond")
    assert first["observed_on"] == (TODAY - timedelta(days=14)).isoformat()
    assert notices(engine) == sent

    # the same session sent again: nothing moves
    post(client, tenant, "S-2", TODAY - timedelta(days=7), [ORS, srs(7.0, 5.0, 6.0, 6.0)])
    assert only(client, tenant, "early_low_alliance")["version"] == now["version"]


def test_a_missed_session_alert_counts_each_no_show_after_it_escalates(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """With alerts from MEDIUM: a no-show opens missed_session, the second escalates it to HIGH
    with the evidence that escalated it (2 in a row), and the third - no escalation left - still
    brings ``consecutive_missed`` to 3 on the same alert, acknowledgement kept, no new notice
    (before: it stayed at 2); ``opened_with`` is the first no-show."""
    alert_at(client, tenant, "medium")
    with_webhook(client, tenant)
    post(client, tenant, "S-1", TODAY - timedelta(days=12), [ORS, srs(9.5, 9.5, 9.5, 9.5)])
    post(client, tenant, "S-2", TODAY - timedelta(days=10), [ORS, srs(9.5, 9.5, 9.5, 9.5)])
    post(client, tenant, "N-1", TODAY - timedelta(days=8), [], attendance="no_show")
    opened = only(client, tenant, "missed_session")
    assert (opened["severity"], opened["evidence"]["consecutive_missed"]) == ("medium", 1)

    post(client, tenant, "N-2", TODAY - timedelta(days=6), [], attendance="no_show")
    escalated = only(client, tenant, "missed_session")
    assert (escalated["id"], escalated["severity"]) == (opened["id"], "high")
    assert escalated["evidence"]["consecutive_missed"] == 2
    acknowledge(client, tenant, escalated)
    sent = notices(engine)

    post(client, tenant, "N-3", TODAY - timedelta(days=4), [], attendance="no_show")
    now = only(client, tenant, "missed_session")
    assert (now["id"], now["status"], now["severity"]) == (opened["id"], "acknowledged", "high")
    assert now["evidence"]["consecutive_missed"] == 3
    assert now["evidence"]["observed_on"] == (TODAY - timedelta(days=4)).isoformat()
    # the escalation kept how it opened, and the refresh kept that (not the escalated facts)
    assert now["evidence"]["opened_with"]["consecutive_missed"] == 1
    assert now["evidence"]["opened_with"]["severity"] == "medium"
    assert notices(engine) == sent
    assert len(feed(client, tenant)) == 1


def test_check_risks_prints_how_many_alerts_it_brought_up_to_date(
    client: FlaskClient, tenant: Tenant, app: Flask
) -> None:
    """A long_gap alert opened on day 25 of a gap; ``fit check-risks`` on day 30 refreshes it
    and its summary line says so (before: the count was not printed)."""
    post(client, tenant, "S-1", TODAY - timedelta(days=30), [ORS, srs(9.5, 9.5, 9.5, 9.5)])
    alert_at(client, tenant, "medium")
    uow = app.extensions["fit"].uow
    assert risk_schedule.check_risks(uow, today=TODAY - timedelta(days=5)).opened == 1
    with app.app_context():
        out = app.test_cli_runner().invoke(
            args=["fit", "check-risks", "--today", TODAY.isoformat()]
        )
    assert out.exit_code == 0, out.output
    assert "alerts opened 0, escalated 0, refreshed 1, auto-resolved 0" in out.output
    assert only(client, tenant, "long_gap")["evidence"]["days_since_last_session"] == 30
