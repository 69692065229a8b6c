"""Re-assessment writes are audited: the scheduled check (``fit check-risks``) and a goal-sheet
edit rewrite live alerts' evidence or guidance (``alert.refresh``) and episodes' risk level and
reasons (``episode.risk_level``); re-running with nothing changed adds no row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, select

from fit_service.adapters.orm import AuditEvent, Episode
from fit_service.services import risk_schedule
from tests.api.test_goal_sheets_and_settings import SHEET, episode_with_goal_alert
from tests.conftest import Tenant, session_payload
from tests.integration.test_alert_dedup import alert_at
from tests.integration.test_risk_review import post

TODAY = datetime.now(UTC).date()
ORS = {"instrument": "ors", "total": 20.0}
SRS = {"instrument": "srs", "total": 38.0}
#: what re-assessment writes (alert.open, .escalate, .auto_resolve and .reassign included)
WRITES = ("alert.", "episode.risk_level")


def audit_rows(engine: Engine, after: int = 0) -> list[tuple[Any, ...]]:
    """(id, action, record_id, outcome, actor, status code) of the writes, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                AuditEvent.id,
                AuditEvent.action,
                AuditEvent.record_id,
                AuditEvent.outcome,
                AuditEvent.actor,
                AuditEvent.status_code,
            )
            .where(AuditEvent.id > after)
            .order_by(AuditEvent.id)
        ).all()
    return [
        tuple(r)
        for r in rows
        if r.action.startswith(WRITES) and r.action not in ("alert.list", "alert.read")
    ]


def last_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc())) or 0)


def episode_state(engine: Engine) -> tuple[str, str | None, Any]:
    with engine.connect() as conn:
        r = conn.execute(select(Episode.public_id, Episode.risk_level, Episode.risk_reasons)).one()
    return str(r.public_id), r.risk_level, r.risk_reasons


def long_gap(client: FlaskClient, tenant: Tenant) -> dict[str, Any]:
    r = client.get("/v1/alerts?limit=100", headers=tenant.auth("manager"))
    (alert,) = [a for a in r.json["items"] if a["kind"] == "long_gap"]
    return alert  # type: ignore[no-any-return]


def test_check_risks_audits_the_alerts_it_refreshes_and_the_levels_it_changes(
    client: FlaskClient, tenant: Tenant, app: Flask, engine: Engine
) -> None:
    """A session 30 days ago (a long gap as of today: the episode's level is raised). check-risks
    as of 10 days after it lowers the level again, as of day 25 of the gap raises it and opens a
    long_gap alert, as of day 30 refreshes the alert's evidence (version bump): each write has
    its row by "system" - ``episode.risk_level`` for the episode, ``alert.refresh`` for the
    alert (before: only ``alert.open``). Re-run as of day 30: nothing changed, no row."""
    last = TODAY - timedelta(days=30)
    post(client, tenant, "S-1", last, [ORS, SRS])
    alert_at(client, tenant, "medium")
    uow = app.extensions["fit"].uow
    episode, raised, _ = episode_state(engine)

    mark = last_id(engine)
    assert risk_schedule.check_risks(uow, today=last + timedelta(days=10)).levels_changed == 1
    assert episode_state(engine)[1] != raised
    assert [r[1:] for r in audit_rows(engine, mark)] == [
        ("episode.risk_level", episode, "success", "system", 200)
    ]

    mark = last_id(engine)
    assert risk_schedule.check_risks(uow, today=last + timedelta(days=25)).opened == 1
    alert = long_gap(client, tenant)
    _, level, reasons = episode_state(engine)
    assert level == raised
    assert [r[1:5] for r in audit_rows(engine, mark)] == [
        ("episode.risk_level", episode, "success", "system"),
        ("alert.open", alert["id"], "success", "system"),
    ]

    mark = last_id(engine)
    summary = risk_schedule.check_risks(uow, today=TODAY)
    assert (summary.refreshed, summary.opened) == (1, 0)
    refreshed = long_gap(client, tenant)
    assert refreshed["version"] == alert["version"] + 1
    assert refreshed["evidence"]["days_since_last_session"] == 30
    expected = [("alert.refresh", alert["id"], "success", "system", 200)]
    if episode_state(engine)[1:] != (level, reasons):
        expected.insert(0, ("episode.risk_level", episode, "success", "system", 200))
    assert [r[1:] for r in audit_rows(engine, mark)] == expected

    mark = last_id(engine)
    again = risk_schedule.check_risks(uow, today=TODAY)
    assert (again.refreshed, again.levels_changed) == (0, 0)
    assert long_gap(client, tenant)["version"] == refreshed["version"]
    assert audit_rows(engine, mark) == []


def test_a_goal_sheet_edit_audits_the_guidance_it_rewrites(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """PUT goal-sheet rewrites the live alert's guidance: an ``alert.refresh`` row by the
    caller's key. The same sheet again leaves the guidance as it was: no row, no version bump
    (before: a version bump and no row)."""
    episode, alert_id = episode_with_goal_alert(client, tenant)
    url = f"/v1/episodes/{episode}/goal-sheet"
    auth = tenant.auth("manager")
    mark = last_id(engine)
    r = client.put(url, json=SHEET, headers=auth)
    assert r.status_code == 201, r.json
    rows = audit_rows(engine, mark)
    assert [(a, rec, out, code) for _, a, rec, out, _, code in rows] == [
        ("alert.refresh", alert_id, "success", 200)
    ]
    assert rows[0][4].startswith("key:")
    version = client.get(f"/v1/alerts/{alert_id}", headers=auth).json["version"]

    mark = last_id(engine)
    again = client.put(url, json=SHEET, headers={**auth, "If-Match": '"1"'})
    assert again.status_code == 200, again.json
    assert audit_rows(engine, mark) == []
    assert client.get(f"/v1/alerts/{alert_id}", headers=auth).json["version"] == version


def test_a_session_write_records_its_rows_and_the_risk_rules_in_one_insert(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A new session that sets its episode's risk level (and opens an alert) is audited -
    session.created, episode.risk_level, alert.open - with one INSERT into the audit table,
    not one per layer: the hot path's round trips stay as they were."""
    inserts: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT INTO AUDIT_EVENTS", "COPY AUDIT")):
            inserts.append(statement)

    before = last_id(engine)
    event.listen(engine, "before_cursor_execute", count)
    try:
        r = client.post(
            "/v1/sessions",
            json=session_payload(
                date=TODAY.isoformat(),
                ratings=[ORS, {"instrument": "srs", "items": low_srs_items()}],
            ),
            headers=tenant.auth("ingest"),
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert r.status_code == 201, r.json
    assert len(inserts) == 1, inserts
    with engine.connect() as conn:
        actions = conn.scalars(
            select(AuditEvent.action).where(AuditEvent.id > before).order_by(AuditEvent.id)
        ).all()
    assert {"session.created", "episode.risk_level", "alert.open"} <= set(actions), actions


def low_srs_items() -> dict[str, float]:
    """An early rupture: the goals item well under the item line (an alert at the default
    severity at session 1)."""
    return {"relationship": 9.0, "goals": 5.0, "approach": 8.0, "overall": 7.0}
