"""Sessions posted through the API raise the right alerts, with evidence and guidance, and the
alert lifecycle follows the data: no duplicates, escalation, auto-resolution, time-based checks.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, func, select, update

from fit_service.adapters.orm import Alert, AuditEvent, Clinician, Episode, OutboxMessage
from fit_service.services import alerting, clinics, risk_schedule
from fit_service.services import alerts as alert_service
from fit_service.services.principals import Role
from tests.conftest import Tenant, session_payload

TODAY = datetime.now(UTC).date()


def srs(r: float, g: float, a: float, o: float) -> dict[str, Any]:
    return {
        "instrument": "srs",
        "items": {"relationship": r, "goals": g, "approach": a, "overall": o},
    }


def ors(total: float) -> dict[str, Any]:
    return {"instrument": "ors", "total": total}


def post(
    client: FlaskClient,
    tenant: Tenant,
    n: str,
    day: date,
    ratings: list[Any] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    body = session_payload(ehr_session_id=n, date=day.isoformat(), ratings=ratings or [], **kw)
    r = client.post("/v1/sessions", json=body, headers=tenant.auth())
    assert r.status_code in (200, 201), r.json
    return r.json  # type: ignore[no-any-return]


def weeks_ago(n: int) -> date:
    return TODAY - timedelta(weeks=n)


def alerts(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Alert).order_by(Alert.id)).all())


def outbox(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(OutboxMessage).order_by(OutboxMessage.id)).all())


def setup_delivery(client: FlaskClient, tenant: Tenant) -> None:
    r = client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook"},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 201


def set_email(client: FlaskClient, tenant: Tenant, email: str = "t1@clinic.example") -> None:
    r = client.put("/v1/clinicians/T-1/email", json={"email": email}, headers=tenant.auth("admin"))
    assert r.status_code == 200, r.json


def test_early_rupture_opens_one_alert_naming_the_weak_leg_with_evidence_and_guidance(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A goals-leg drop at session 2 opens one HIGH early_low_alliance alert on the goal leg,
    with the numbers and their source, leg-specific guidance, a high episode risk level, and
    one webhook + one e-mail in the outbox (thin: no client data)."""
    setup_delivery(client, tenant)
    post(client, tenant, "S1", weeks_ago(3), [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    set_email(client, tenant)
    post(client, tenant, "S2", weeks_ago(2), [ors(19), srs(9.5, 6.0, 8.0, 8.5)])

    (alert,) = alerts(engine)
    assert (alert.kind, alert.leg, alert.severity, alert.status) == (
        "early_low_alliance",
        "goal",
        3,
        "open",
    )
    assert alert.session_number == 2
    assert alert.evidence["srs_total"] == 32.0
    assert alert.evidence["weak_legs"] == ["goal", "task", "global"]
    assert "Sharf" in alert.evidence["source"]
    assert "Re-agree the goals" in alert.guidance
    assert "No goal sheet is on file" in alert.guidance

    client_view = client.get("/v1/clients/C-1", headers=tenant.auth("manager"))
    assert client_view.status_code == 200
    with engine.connect() as conn:
        level, reasons = conn.execute(select(Episode.risk_level, Episode.risk_reasons)).one()
    assert level == "high"
    assert reasons["reasons"][0].startswith("early_low_alliance: goal, severity high")

    rows = outbox(engine)
    assert sorted(r.channel for r in rows) == ["email", "webhook"]
    assert len({r.message_id for r in rows}) == 1
    for r in rows:
        for private in ("C-1", "T-1", "32.0", "goal"):
            assert private not in r.body
    assert str(alert.public_id) in rows[0].body


def test_resent_and_revised_data_never_duplicates_an_alert_or_a_delivery(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Identical re-sends, a batch replay and a revision with the same finding leave one alert
    and one delivery; the periodic check changes nothing either."""
    setup_delivery(client, tenant)
    post(client, tenant, "S1", weeks_ago(3), [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    low = [ors(19), srs(9.5, 6.0, 8.0, 8.5)]
    post(client, tenant, "S2", weeks_ago(2), low)
    post(client, tenant, "S2", weeks_ago(2), low)
    body = session_payload(ehr_session_id="S2", date=weeks_ago(2).isoformat(), ratings=low)
    r = client.post("/v1/sessions/batch", json={"sessions": [body, body]}, headers=tenant.auth())
    assert r.json["unchanged"] == 2
    revised = post(client, tenant, "S2", weeks_ago(2), [ors(19.5), srs(9.5, 6.0, 8.0, 8.5)])
    assert revised["revision"] == 2
    risk_schedule.check_risks(client.application.extensions["fit"].uow, today=TODAY)

    assert len(alerts(engine)) == 1
    assert alerts(engine)[0].version == 1
    assert len(outbox(engine)) == 1


def test_worse_finding_escalates_the_same_alert_and_notifies_again(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """With alerts from MEDIUM: a no-show opens missed_session (medium); a second no-show in a
    row escalates that alert to high — same alert, new version, a second delivery id."""
    r = client.put(
        "/v1/settings",
        json={"risk": {"alert_min_severity": "medium"}},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 200, r.json
    setup_delivery(client, tenant)
    post(client, tenant, "S1", weeks_ago(4), [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    post(client, tenant, "S2", weeks_ago(3), [ors(20), srs(9.5, 9.5, 9.5, 9.5)])
    post(client, tenant, "S3", weeks_ago(2), attendance="no_show")
    (opened,) = [a for a in alerts(engine) if a.kind == "missed_session"]
    assert opened.severity == 2
    assert opened.evidence["attendance"] == "no_show"

    post(client, tenant, "S4", weeks_ago(1), attendance="no_show")
    (escalated,) = [a for a in alerts(engine) if a.kind == "missed_session"]
    assert escalated.id == opened.id
    assert (escalated.severity, escalated.version) == (3, 2)
    assert escalated.evidence["consecutive_missed"] == 2
    ids = [r.message_id for r in outbox(engine) if '"missed_session"' in r.body]
    assert len(set(ids)) == 2
    assert '"type":"alert.escalated"' in outbox(engine)[-1].body


def test_alliance_alert_auto_resolves_after_two_good_sessions_with_a_note(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """One good SRS after the rupture is not a repair; after two at >= 36 the alert closes
    itself with a note, and the episode level drops back to low."""
    post(client, tenant, "S1", weeks_ago(4), [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    post(client, tenant, "S2", weeks_ago(3), [ors(19), srs(9.5, 6.0, 8.0, 8.5)])
    post(client, tenant, "S3", weeks_ago(2), [ors(21), srs(9.5, 9.5, 9.5, 9.5)])
    assert alerts(engine)[0].status == "open"
    post(client, tenant, "S4", weeks_ago(1), [ors(24), srs(9.5, 9.5, 9.5, 9.5)])

    (alert,) = alerts(engine)
    assert alert.status == "auto_resolved"
    assert "2 consecutive sessions since session 2" in alert.closing_note
    assert alert.closed_at is not None
    with engine.connect() as conn:
        assert conn.scalar(select(Episode.risk_level)) == "low"
        actions = set(conn.scalars(select(AuditEvent.action)))
    assert {"alert.open", "alert.auto_resolve"} <= actions


def test_scheduled_check_fires_a_long_gap_without_a_new_session(
    client: FlaskClient, tenant: Tenant, engine: Engine, app: Flask
) -> None:
    """The time-based rule runs on schedule: 21 days after the last session nothing fires, 22
    days after it a long_gap alert opens; a re-run adds nothing."""
    client.put(
        "/v1/settings",
        json={"risk": {"alert_min_severity": "medium"}},
        headers=tenant.auth("admin"),
    )
    last = weeks_ago(1)
    post(client, tenant, "S1", last, [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    uow = app.extensions["fit"].uow

    risk_schedule.check_risks(uow, today=last + timedelta(days=21))
    assert alerts(engine) == []
    summary = risk_schedule.check_risks(uow, today=last + timedelta(days=22))
    assert summary.opened == 1
    (alert,) = alerts(engine)
    assert alert.kind == "long_gap"
    assert alert.evidence["days_since_last_session"] == 22
    assert risk_schedule.check_risks(uow, today=last + timedelta(days=23)).opened == 0
    assert len(alerts(engine)) == 1


def test_closing_the_episode_auto_resolves_its_live_alerts_at_once(
    client: FlaskClient, tenant: Tenant, engine: Engine, app: Flask
) -> None:
    """Closing an episode auto-resolves its live alerts in the same request (note with the
    ending reason, version bump, audit row); other episodes' alerts stay open."""
    post(client, tenant, "S1", weeks_ago(3), [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    view = post(client, tenant, "S2", weeks_ago(2), [ors(19), srs(9.5, 6.0, 8.0, 8.5)])
    for n, items in (("O1", (9.5, 9.5, 9.5, 9.5)), ("O2", (9.5, 6.0, 8.0, 8.5))):
        day = weeks_ago(3 if n == "O1" else 2)
        post(client, tenant, n, day, [ors(18), srs(*items)], client_id="C-2")
    mine, _ = alerts(engine)
    acked = client.post(
        f"/v1/alerts/{mine.public_id}/acknowledge",
        headers={**tenant.auth("manager"), "If-Match": '"1"'},
    )
    assert acked.status_code == 200, acked.json

    r = client.post(
        f"/v1/episodes/{view['episode_id']}/close",
        json={"ending_reason": "client_ended"},
        headers=tenant.auth("manager"),
    )
    assert r.status_code == 200, r.json
    closed, untouched = alerts(engine)
    assert (closed.status, closed.version) == ("auto_resolved", 3)
    assert closed.closing_note.startswith("the episode was closed (client_ended)")
    assert closed.closed_at is not None
    assert (untouched.status, untouched.version) == ("open", 1)
    with engine.connect() as conn:
        audited = set(
            conn.scalars(
                select(AuditEvent.record_id).where(AuditEvent.action == "alert.auto_resolve")
            )
        )
    assert audited == {str(closed.public_id)}
    assert risk_schedule.check_risks(app.extensions["fit"].uow).auto_resolved == 0


def test_scheduled_check_auto_resolves_alerts_left_on_closed_episodes(
    client: FlaskClient, tenant: Tenant, engine: Engine, app: Flask
) -> None:
    """A live alert left on an episode closed without closing it (e.g. before that was done at
    close time) is auto-resolved by the scheduled check, naming the ending reason."""
    post(client, tenant, "S1", weeks_ago(3), [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    post(client, tenant, "S2", weeks_ago(2), [ors(19), srs(9.5, 6.0, 8.0, 8.5)])
    with engine.begin() as conn:
        conn.execute(
            update(Episode).values(status="closed", closed_on=TODAY, ending_reason="planned")
        )
    assert risk_schedule.check_risks(app.extensions["fit"].uow).auto_resolved == 1
    (alert,) = alerts(engine)
    assert (alert.status, alert.version) == ("auto_resolved", 2)
    assert "episode was closed (planned)" in alert.closing_note


def _stale_alerts(monkeypatch: pytest.MonkeyPatch, app: Flask) -> list[Any]:
    """Read the episode's alerts now (the pipeline's read); from then on the pipeline's first
    load returns that read, later loads the database. Returns the list of loads made."""
    original = alerting._load_settings_and_alerts
    with app.extensions["fit"].uow() as uow:
        episode_row, clinic_row = uow.session.execute(select(Episode.id, Episode.clinic_id)).one()
        snapshot = original(uow.session, clinic_row, [episode_row])
    loads: list[Any] = []

    def load(db: Any, clinic_id: int, episode_ids: Any) -> Any:
        loads.append(list(episode_ids))
        return snapshot if len(loads) == 1 else original(db, clinic_id, episode_ids)

    monkeypatch.setattr(alerting, "_load_settings_and_alerts", load)
    return loads


def test_clinicians_concurrent_resolve_wins_over_the_pipelines_auto_resolve(
    client: FlaskClient, tenant: Tenant, engine: Engine, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline read the alert open (version 1); a clinician resolves it with a note before
    the pipeline writes its auto-resolve: the version-conditional UPDATE misses, the episode is
    re-read and re-reconciled, and the clinician's note, status and version 2 stay."""
    post(client, tenant, "S1", weeks_ago(4), [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    post(client, tenant, "S2", weeks_ago(3), [ors(19), srs(9.5, 6.0, 8.0, 8.5)])
    post(client, tenant, "S3", weeks_ago(2), [ors(21), srs(9.5, 9.5, 9.5, 9.5)])
    (alert,) = alerts(engine)
    loads = _stale_alerts(monkeypatch, app)
    note = "Talked it through with the client; the bond is repaired."
    r = client.post(
        f"/v1/alerts/{alert.public_id}/resolve",
        json={"note": note},
        headers={**tenant.auth("clinician"), "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.json

    post(client, tenant, "S4", weeks_ago(1), [ors(24), srs(9.5, 9.5, 9.5, 9.5)])

    (after,) = alerts(engine)
    assert (after.status, after.closing_note, after.version) == ("resolved", note, 2)
    assert len(loads) == 2  # the stale read, then the re-read after the miss
    with engine.connect() as conn:
        actions = list(conn.scalars(select(AuditEvent.action)))
    assert "alert.auto_resolve" not in actions


def test_guidance_refresh_after_a_concurrent_acknowledge_bumps_to_a_new_version(
    client: FlaskClient, tenant: Tenant, engine: Engine, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A goal sheet refreshes an alert the pipeline read at version 1 while a clinician
    acknowledged it (version 2): the refresh lands on top as version 3, still acknowledged —
    never a second state under ETag "2"."""
    view = post(client, tenant, "S1", weeks_ago(3), [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    post(client, tenant, "S2", weeks_ago(2), [ors(19), srs(9.5, 6.0, 8.0, 8.5)])
    (alert,) = alerts(engine)
    _stale_alerts(monkeypatch, app)
    acked = client.post(
        f"/v1/alerts/{alert.public_id}/acknowledge",
        headers={**tenant.auth("clinician"), "If-Match": '"1"'},
    )
    assert acked.status_code == 200, acked.json
    sheet = {"goal": "Back to choir", "steps": ["Call the leader"], "expectation": "to_be_heard"}
    r = client.put(
        f"/v1/episodes/{view['episode_id']}/goal-sheet", json=sheet, headers=tenant.auth("manager")
    )
    assert r.status_code == 201, r.json

    (after,) = alerts(engine)
    assert (after.status, after.version) == ("acknowledged", 3)
    assert "Back to choir" in after.guidance


def test_a_rule_bug_never_refuses_the_session_write(
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any exception from the pure rule code (here a KeyError) leaves the session stored (201)
    and logs the failure by episode row id, without client data."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("C-1")

    monkeypatch.setattr(alerting, "assess_episode", broken)
    with caplog.at_level("ERROR", logger=alerting.__name__):
        r = client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
    assert r.status_code == 201, r.json
    (record,) = [rec for rec in caplog.records if rec.name == alerting.__name__]
    message = record.getMessage()
    assert message.startswith("risk assessment failed for episode row ")
    assert "KeyError" in message
    assert "C-1" not in message
    assert record.exc_info is None
    assert alerts(engine) == []


def test_backfill_batch_is_assessed_with_a_few_queries(
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 300-session backfill over 100 episodes costs the risk hook a fixed handful of
    statements (IN queries, multi-row writes), not one per episode; every episode gets a level
    and every early rupture its alert."""
    setup_delivery(client, tenant)
    sessions = [
        session_payload(
            ehr_session_id=f"B{c}-{k}",
            client_id=f"C-{c}",
            date=weeks_ago(3 - k).isoformat(),
            ratings=[ors(15 + k), srs(9.5, 9.5 if c % 2 else 6.0, 9.5, 9.5)],
        )
        for c in range(100)
        for k in range(3)
    ]
    in_hook: list[str] = []
    active = False

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if active:
            in_hook.append(statement.split()[0])

    original = alerting.assess_after_write

    def hook(*args: Any) -> None:
        nonlocal active
        active = True
        try:
            original(*args)
        finally:
            active = False

    monkeypatch.setattr(alerting, "assess_after_write", hook)
    event.listen(engine, "before_cursor_execute", count)
    try:
        r = client.post("/v1/sessions/batch", json={"sessions": sessions}, headers=tenant.auth())
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert r.json["created"] == 300
    # settings, alerts, episode levels, goal sheets, clinicians, endpoints, alerts, outbox, audit
    # and one COUNT of closed episodes (decides whether the trajectory and dropout models are stale)
    assert 0 < len(in_hook) <= 10, in_hook
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).where(Episode.risk_level.is_not(None))) == 100
        assert conn.scalar(select(func.count()).select_from(Alert)) == 50
        assert conn.scalar(select(func.count()).select_from(OutboxMessage)) == 50


def wai(goal: int, other: int) -> dict[str, Any]:
    """WAI-SR client items: the goal subscale's four items at ``goal``, the rest at ``other``."""
    items = {f"item{n:02d}": goal if n in (4, 6, 8, 11) else other for n in range(1, 13)}
    return {"instrument": "wai_sr_client", "items": items}


def alert_at_medium(client: FlaskClient, tenant: Tenant) -> None:
    r = client.put(
        "/v1/settings",
        json={"risk": {"alert_min_severity": "medium"}},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 200, r.json


def test_wai_alert_auto_resolves_in_a_clinic_that_uses_no_srs(
    client: FlaskClient, tenant: Tenant, engine: Engine, app: Flask
) -> None:
    """A WAI-SR goal alert (no SRS sent) auto-resolves after two sessions with the goal clear."""
    alert_at_medium(client, tenant)
    post(client, tenant, "S1", weeks_ago(6), [ors(18), wai(4, 4)])
    post(client, tenant, "S2", weeks_ago(5), [ors(19), wai(2, 4)])
    (opened,) = [a for a in alerts(engine) if a.kind == "weak_wai_goal"]
    assert (opened.status, opened.severity, opened.leg) == ("open", 2, "goal")
    post(client, tenant, "S3", weeks_ago(4), [ors(21), wai(5, 5)])
    risk_schedule.check_risks(app.extensions["fit"].uow)
    assert [a.status for a in alerts(engine) if a.kind == "weak_wai_goal"] == ["open"]
    post(client, tenant, "S4", weeks_ago(3), [ors(23), wai(5, 5)])

    (closed,) = [a for a in alerts(engine) if a.kind == "weak_wai_goal"]
    assert closed.status == "auto_resolved"
    assert "WAI-SR goal subscale no longer weak" in closed.closing_note
    assert "2 consecutive sessions since session 2" in closed.closing_note


def tenant_in(app: Flask, timezone: str) -> Tenant:
    """A clinic in ``timezone`` with one key per role (clinician key: T-1)."""
    wiring = app.extensions["fit"]
    with wiring.uow() as uow:
        info = clinics.create_clinic(uow, f"Clinic {timezone}", timezone)
    keys = {}
    for role in Role:
        with wiring.uow() as uow:
            clinician = "T-1" if role is Role.CLINICIAN else None
            keys[role.value] = clinics.create_api_key(uow, info.id, role, "k", clinician).secret
    return Tenant(info.id, keys)


def dismiss_at(
    client: FlaskClient,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    alert_id: Any,
    at: datetime,
    reason: str,
    auth: dict[str, str] | None = None,
) -> None:
    """The clinician (the tenant's clinician key unless ``auth`` says another) dismisses the
    alert (version 1) as if at ``at`` (UTC)."""
    monkeypatch.setattr(alert_service, "utcnow", lambda: at)
    r = client.post(
        f"/v1/alerts/{alert_id}/dismiss",
        json={"reason": reason},
        headers={**(auth or tenant.auth("clinician")), "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.json
    monkeypatch.undo()


@pytest.mark.parametrize(
    ("timezone", "miss", "dismissed_at_utc", "second_miss", "reopens"),
    [
        # 18:00 or 19:00 local on day 0 is 02:00 UTC on day 1: a no-show on day 1 is new
        ("America/Los_Angeles", 0, (1, 2), 1, True),
        # 11:00 or 12:00 local on day 0 is 23:00 UTC on day -1: a no-show dated day 0 was seen
        ("Pacific/Auckland", -1, (-1, 23), 0, False),
    ],
)
def test_dismissal_day_is_the_clinics_local_day(
    app: Flask,
    client: FlaskClient,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    timezone: str,
    miss: int,
    dismissed_at_utc: tuple[int, int],
    second_miss: int,
    reopens: bool,
) -> None:
    """A dismissal covers sessions up to the clinic-local day it was made, not the UTC day."""
    local = tenant_in(app, timezone)
    alert_at_medium(client, local)
    day0 = TODAY - timedelta(days=10)
    post(client, local, "S1", day0 - timedelta(days=7), [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    post(client, local, "S2", day0 + timedelta(days=miss), attendance="no_show")
    (alert,) = alerts(engine)
    assert (alert.kind, alert.severity) == ("missed_session", 2)
    days, hour = dismissed_at_utc
    at = datetime.combine(day0 + timedelta(days=days), time(hour), tzinfo=UTC)
    dismiss_at(client, local, monkeypatch, alert.public_id, at, "Rang the client; rebooked.")

    post(client, local, "S3", day0 + timedelta(days=second_miss), attendance="no_show")
    after = [(a.status, a.severity) for a in alerts(engine)]
    assert after == ([("dismissed", 2), ("open", 3)] if reopens else [("dismissed", 2)])


def test_a_dismissal_holds_while_the_low_alliance_persists(
    client: FlaskClient, tenant: Tenant, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a dismissal, later sessions of the same low SRS run open no new alert."""
    post(client, tenant, "S1", weeks_ago(5), [ors(18), srs(8.5, 8.5, 8.5, 8.5)])
    (alert,) = alerts(engine)
    at = datetime.combine(weeks_ago(5), time(15), tzinfo=UTC)  # the day of session 1
    dismiss_at(client, tenant, monkeypatch, alert.public_id, at, "Known; we talk about it weekly.")
    for n, weeks in ((2, 4), (3, 3), (4, 2)):
        post(client, tenant, f"S{n}", weeks_ago(weeks), [ors(18), srs(8.5, 8.5, 8.5, 8.5)])
    assert [(a.kind, a.status) for a in alerts(engine)] == [("early_low_alliance", "dismissed")]


def test_a_dismissal_does_not_hold_for_the_clinician_the_client_moves_to(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """T-1 dismissed the low-alliance alert; the client moves to T-2 and the low SRS persists
    with them: T-2 gets an alert of their own (they never saw the evidence, and the alliance
    is now theirs). Once T-2 dismisses it, their dismissal holds as T-1's did."""
    t2 = {"Authorization": f"Bearer {add_clinician(app, tenant, 'T-2')}"}
    low = [ors(18), srs(8.5, 8.5, 8.5, 8.5)]
    post(client, tenant, "S1", weeks_ago(5), low)
    (first,) = alerts(engine)
    at = datetime.combine(weeks_ago(5), time(15), tzinfo=UTC)
    dismiss_at(client, tenant, monkeypatch, first.public_id, at, "Known; we talk about it weekly.")
    post(client, tenant, "S2", weeks_ago(4), low, clinician_id="T-2")
    found = alerts(engine)
    assert [(a.kind, a.status) for a in found] == [
        ("early_low_alliance", "dismissed"),
        ("early_low_alliance", "open"),
    ]
    assert [clinician_of(engine, a.id) for a in found] == ["T-1", "T-2"]

    later = at + timedelta(weeks=1)
    dismiss_at(client, tenant, monkeypatch, found[1].public_id, later, "Talked it through.", t2)
    for n, weeks in ((3, 3), (4, 2)):
        post(client, tenant, f"S{n}", weeks_ago(weeks), low, clinician_id="T-2")
    assert [a.status for a in alerts(engine)] == ["dismissed", "dismissed"]


def add_clinician(app: Flask, tenant: Tenant, clinician: str) -> str:
    """A clinician key for ``clinician`` in the tenant's clinic (creates the clinician)."""
    with app.extensions["fit"].uow() as uow:
        issued = clinics.create_api_key(uow, tenant.clinic_id, Role.CLINICIAN, "k", clinician)
    return issued.secret


def audited(engine: Engine, action: str) -> list[str]:
    with engine.connect() as conn:
        query = select(AuditEvent.record_id).where(AuditEvent.action == action)
        return list(conn.scalars(query))


def clinician_of(engine: Engine, alert_row: int) -> str:
    with engine.connect() as conn:
        return conn.scalar(  # type: ignore[no-any-return]
            select(Clinician.external_id)
            .join(Alert, Alert.clinician_id == Clinician.id)
            .where(Alert.id == alert_row)
        )


def test_an_escalated_alert_moves_to_the_treating_clinician_and_notifies_them(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A no-show booked with T-2 escalates the alert, moves it to T-2 and e-mails T-2."""
    alert_at_medium(client, tenant)
    setup_delivery(client, tenant)
    add_clinician(app, tenant, "T-2")
    set_email(client, tenant)
    r = client.put(
        "/v1/clinicians/T-2/email",
        json={"email": "t2@clinic.example"},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 200, r.json
    post(client, tenant, "S1", weeks_ago(3), [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    post(client, tenant, "S2", weeks_ago(2), attendance="no_show")
    post(client, tenant, "S3", weeks_ago(1), attendance="no_show", clinician_id="T-2")

    (alert,) = [a for a in alerts(engine) if a.kind == "missed_session"]
    assert (alert.severity, alert.status, alert.version) == (3, "open", 2)
    assert clinician_of(engine, alert.id) == "T-2"
    with engine.connect() as conn:
        t2 = conn.scalar(select(Clinician.id).where(Clinician.external_id == "T-2"))
    escalation = [r for r in outbox(engine) if '"type":"alert.escalated"' in r.body]
    (mail,) = [
        r
        for r in outbox(engine)
        if r.channel == "email" and r.message_id in {e.message_id for e in escalation}
    ]
    assert mail.destination_id == t2
    assert audited(engine, "alert.reassign") == [str(alert.public_id)]


def test_an_acknowledged_alert_moved_to_a_new_clinician_is_open_again(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """T-1's acknowledgement does not carry over: the alert moves to T-2 open, once, audited."""
    setup_delivery(client, tenant)
    add_clinician(app, tenant, "T-2")
    r = client.put(
        "/v1/clinicians/T-2/email",
        json={"email": "t2@clinic.example"},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 200, r.json
    post(client, tenant, "S1", weeks_ago(3), [ors(18), srs(9.5, 9.5, 9.5, 9.5)])
    post(client, tenant, "S2", weeks_ago(2), [ors(19), srs(6.0, 9.0, 9.0, 9.0)])
    (alert,) = alerts(engine)
    acked = client.post(
        f"/v1/alerts/{alert.public_id}/acknowledge",
        headers={**tenant.auth("clinician"), "If-Match": '"1"'},
    )
    assert acked.status_code == 200, acked.json
    low = [ors(19), srs(6.0, 9.0, 9.0, 9.0)]
    post(client, tenant, "S3", weeks_ago(1), low, clinician_id="T-2")
    post(client, tenant, "S3", weeks_ago(1), low, clinician_id="T-2")  # a re-send: no change

    (moved,) = alerts(engine)
    assert (moved.status, moved.acknowledged_at, moved.version) == ("open", None, 3)
    assert clinician_of(engine, moved.id) == "T-2"
    reassigned = [r for r in outbox(engine) if r.message_id != outbox(engine)[0].message_id]
    assert sorted(r.channel for r in reassigned) == ["email", "webhook"]
    assert all('"type":"alert.reassigned"' in r.body for r in reassigned if r.channel == "webhook")
    assert audited(engine, "alert.reassign") == [str(moved.public_id)]


def test_a_cover_session_does_not_undo_the_treating_clinicians_own_dismissal(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """T-1 dismissed the low-alliance alert; one session with a covering colleague (T-2) gets
    T-2 an alert of their own, which T-2 dismisses too; back with T-1 and the same low SRS,
    T-1's own dismissal still holds: T-1 is not alerted again about what they dismissed."""
    t2 = {"Authorization": f"Bearer {add_clinician(app, tenant, 'T-2')}"}
    low = [ors(18), srs(8.5, 8.5, 8.5, 8.5)]
    post(client, tenant, "S1", weeks_ago(5), low)
    (first,) = alerts(engine)
    at = datetime.combine(weeks_ago(5), time(15), tzinfo=UTC)
    dismiss_at(client, tenant, monkeypatch, first.public_id, at, "Known; we talk about it weekly.")
    post(client, tenant, "S2", weeks_ago(4), low, clinician_id="T-2")
    cover = alerts(engine)[1]
    later = at + timedelta(weeks=1)
    dismiss_at(client, tenant, monkeypatch, cover.public_id, later, "Covering; T-1 knows.", t2)
    post(client, tenant, "S3", weeks_ago(3), low)
    assert [a.status for a in alerts(engine)] == ["dismissed", "dismissed"]


def test_a_correction_moving_the_client_gets_the_new_clinician_their_own_alert(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """T-1 dismissed the early-low-alliance alert; an EHR correction then books the same session
    with T-2 (no new session). T-1's dismissal does not hold for T-2 (README): T-2 gets an
    alert of their own on that evidence, and T-1's stays dismissed and theirs."""
    add_clinician(app, tenant, "T-2")
    low = [ors(18), srs(8.5, 8.5, 8.5, 8.5)]
    post(client, tenant, "S1", weeks_ago(2), low)
    (first,) = alerts(engine)
    at = datetime.combine(weeks_ago(1), time(15), tzinfo=UTC)
    dismiss_at(client, tenant, monkeypatch, first.public_id, at, "Known; we talk about it weekly.")
    post(client, tenant, "S1", weeks_ago(2), low, clinician_id="T-2")
    dismissed, own = alerts(engine)
    assert (dismissed.status, clinician_of(engine, dismissed.id)) == ("dismissed", "T-1")
    assert (own.kind, own.status, clinician_of(engine, own.id)) == (
        "early_low_alliance",
        "open",
        "T-2",
    )
