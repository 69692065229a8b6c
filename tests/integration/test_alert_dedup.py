"""One finding, one alert, through the real pipeline (sessions posted over the API, alerts read
from the feed and the alerts table): the rational outcome rules that restate one another give
the clinician one alert, and a long-gap alert's facts follow the calendar on the scheduled
check instead of keeping the day it opened."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from fit_service.adapters.orm import Alert, Episode, OutboxMessage
from fit_service.services import risk_schedule
from tests.conftest import Tenant, session_payload

TODAY = datetime.now(UTC).date()
#: SRS 36.8: no alliance concern (total >= 36, every item >= 9) and below the ceiling (38) that
#: would add agreement_without_engagement to a flat outcome
FINE = {
    "instrument": "srs",
    "items": {"relationship": 9.2, "goals": 9.2, "approach": 9.2, "overall": 9.2},
}


def ors(total: float) -> dict[str, Any]:
    return {"instrument": "ors", "total": total}


def post(client: FlaskClient, tenant: Tenant, n: str, day: date, total: float, **kw: Any) -> str:
    ratings = [ors(total), FINE]
    body = session_payload(ehr_session_id=n, date=day.isoformat(), ratings=ratings, **kw)
    r = client.post("/v1/sessions", json=body, headers=tenant.auth())
    assert r.status_code in (200, 201), r.json
    return r.json["episode_id"]  # type: ignore[no-any-return]


def every_three_days(
    client: FlaskClient, tenant: Tenant, scores: list[float], first: int = 1, end: int = 0
) -> None:
    """Sessions ``first``.. three days apart, the last ``end`` days ago (no gap to flag), with
    ORS ``scores`` in order."""
    for i, total in enumerate(scores):
        day = TODAY - timedelta(days=end + 3 * (len(scores) - 1 - i))
        post(client, tenant, f"S{first + i}", day, total)


def alert_at(client: FlaskClient, tenant: Tenant, severity: str) -> None:
    r = client.put(
        "/v1/settings",
        json={"risk": {"alert_min_severity": severity}},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 200, r.json


def feed(client: FlaskClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = client.get("/v1/alerts?limit=100", headers=tenant.auth("manager"))
    assert r.status_code == 200, r.json
    return r.json["items"]  # type: ignore[no-any-return]


def live(client: FlaskClient, tenant: Tenant) -> list[dict[str, Any]]:
    return [a for a in feed(client, tenant) if a["status"] in ("open", "acknowledged")]


def reasons(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Episode.risk_reasons)).scalar_one()["reasons"])


def carried(alert: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["kind"]: a for a in alert["evidence"].get("also_holds", [])}


# ------------------------------------------------------------------ one finding, one alert
def test_no_change_by_the_change_checkpoint_is_one_alert_at_medium(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A clinical-range client with no reliable improvement by session 6, alerts from MEDIUM:
    the rational rules' not_on_track is that same finding (no improvement by the change
    checkpoint), so the clinician gets one alert - no_reliable_improvement, which names the
    checkpoint and the advice - carrying the trajectory model's verdict; both stay listed."""
    alert_at(client, tenant, "medium")
    every_three_days(client, tenant, [18.0] * 6)

    (alert,) = live(client, tenant)
    assert (alert["kind"], alert["severity"]) == ("no_reliable_improvement", "medium")
    assert (alert["evidence"]["checkpoint"], alert["evidence"]["change"]) == (6, 0.0)
    also = carried(alert)["not_on_track"]
    assert (also["model"], also["severity"]) == ("rational:cutoff+rc", "medium")
    assert "consider changing the approach" in alert["guidance"]
    assert "rational:cutoff+rc" in alert["guidance"]
    found = reasons(engine)
    assert any(r.startswith("no_reliable_improvement: outcome, severity medium") for r in found)
    assert any(
        r.startswith("not_on_track") and "same finding as no_reliable_improvement" in r
        for r in found
    )


def test_a_reliable_fall_is_one_alert_at_medium_from_the_first_score_to_session_six(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """ORS 20 -> 14 is reliably worse than intake: the deterioration is the strongest evidence;
    the rational not_on_track (and from session 3 "no reliable improvement") say it again on
    the same score. One alert from the first fall, escalated when confirmed, and still one at
    session 6, where all three rules hold."""
    alert_at(client, tenant, "medium")
    every_three_days(client, tenant, [20.0, 14.0], end=12)
    (alert,) = live(client, tenant)
    assert (alert["kind"], alert["severity"]) == ("ors_reliable_deterioration", "medium")
    assert "not_on_track" in carried(alert)

    every_three_days(client, tenant, [14.0] * 4, first=3)
    (alert,) = live(client, tenant)
    assert (alert["kind"], alert["severity"]) == ("ors_reliable_deterioration", "high")
    assert {"not_on_track", "no_reliable_improvement"} <= set(carried(alert))
    kinds = {r.split(":")[0] for r in reasons(engine)}
    assert {"ors_reliable_deterioration", "not_on_track", "no_reliable_improvement"} <= kinds


def test_when_a_flat_outcome_turns_reliably_worse_the_fall_takes_over_the_alert(
    client: FlaskClient, tenant: Tenant
) -> None:
    """No change by session 6 opens no_reliable_improvement; a reliable fall at session 7 opens
    the deterioration alert, which carries "no reliable improvement" from then on, so the older
    alert closes itself with a note naming the one that carries it: one live alert."""
    alert_at(client, tenant, "medium")
    every_three_days(client, tenant, [18.0] * 6, end=3)
    (first,) = live(client, tenant)
    assert first["kind"] == "no_reliable_improvement"

    post(client, tenant, "S7", TODAY, 12.0)
    (alert,) = live(client, tenant)
    assert alert["kind"] == "ors_reliable_deterioration"
    closed = next(a for a in feed(client, tenant) if a["id"] == first["id"])
    assert closed["status"] == "auto_resolved"
    assert "ors_reliable_deterioration" in closed["closing_note"]


def test_at_the_default_severity_a_confirmed_fall_is_still_one_high_alert(
    client: FlaskClient, tenant: Tenant
) -> None:
    """At the default (alerts from HIGH) the MEDIUM restatements never alerted: a confirmed
    fall opens one HIGH deterioration alert, as before, now with the restating findings' facts
    in its evidence; a flat outcome at session 6 (MEDIUM only) opens none."""
    every_three_days(client, tenant, [20.0, 14.0, 14.0])
    (alert,) = live(client, tenant)
    assert (alert["kind"], alert["severity"]) == ("ors_reliable_deterioration", "high")
    assert set(carried(alert)) == {"not_on_track", "no_reliable_improvement"}

    post(client, tenant, "F1", TODAY - timedelta(days=15), 18.0, client_id="C-2")
    for n in range(2, 7):
        post(client, tenant, f"F{n}", TODAY - timedelta(days=3 * (6 - n)), 18.0, client_id="C-2")
    assert [a["kind"] for a in live(client, tenant)] == ["ors_reliable_deterioration"]


# ------------------------------------------------------------------ long gap, kept current
def test_a_long_gap_alert_counts_the_days_on_each_scheduled_check(
    client: FlaskClient, tenant: Tenant, engine: Engine, app: Flask
) -> None:
    """Opened on day 22 of a gap, the long_gap alert said "22 days" for as long as it stayed
    open. The scheduled check now keeps its evidence and guidance current (day 30: 30 days,
    still tailored to the goal sheet) on the same alert: not reopened or duplicated, no new
    notice, the clinician's acknowledgement kept; a re-run the same day writes nothing."""
    last = TODAY - timedelta(days=30)
    episode = post(client, tenant, "S1", last, 18.0)
    # the sheet first: writing it re-assesses as of the real today (day 30), before alerts are
    # on at MEDIUM, so only the scheduled check below opens and updates the alert
    sheet = {"goal": "Back to work", "steps": [], "expectation": "concrete_steps"}
    r = client.put(
        f"/v1/episodes/{episode}/goal-sheet", json=sheet, headers=tenant.auth("clinician")
    )
    assert r.status_code == 201, r.json
    alert_at(client, tenant, "medium")
    uow = app.extensions["fit"].uow
    assert risk_schedule.check_risks(uow, today=last + timedelta(days=22)).opened == 1
    (alert,) = live(client, tenant)
    assert alert["evidence"]["days_since_last_session"] == 22
    acked = client.post(
        f"/v1/alerts/{alert['id']}/acknowledge",
        headers={**tenant.auth("clinician"), "If-Match": '"1"'},
    )
    assert acked.status_code == 200, acked.json
    with engine.connect() as conn:
        notices = conn.execute(select(OutboxMessage.id)).all()

    summary = risk_schedule.check_risks(uow, today=TODAY)
    assert (summary.opened, summary.escalated, summary.auto_resolved) == (0, 0, 0)
    (now,) = live(client, tenant)
    assert now["id"] == alert["id"]
    assert now["status"] == "acknowledged"
    assert now["acknowledged_at"] == acked.json["acknowledged_at"]
    assert now["evidence"]["days_since_last_session"] == 30
    assert now["evidence"]["today"] == TODAY.isoformat()
    assert now["evidence"]["last_session_date"] == last.isoformat()
    assert now["session_number"] == 1
    assert "It is 30 days since the last session" in now["guidance"]
    assert "concrete steps" in now["guidance"]
    with engine.connect() as conn:
        assert conn.execute(select(OutboxMessage.id)).all() == notices
        version = conn.execute(select(Alert.version)).scalar_one()

    risk_schedule.check_risks(uow, today=TODAY)
    with engine.connect() as conn:
        assert conn.execute(select(Alert.version)).scalar_one() == version
    assert len(feed(client, tenant)) == 1
