"""Review of the risk rules through the API: a late baseline (the first ORS not at session 1)
is judged by the sessions since it, and a no-show on the day of an attended session is no miss."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from fit_service.adapters.orm import Alert, Episode
from tests.conftest import Tenant, session_payload

TODAY = datetime.now(UTC).date()
GOOD = {
    "instrument": "srs",
    "items": {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5},
}
ORS_NOT_COMPLETED = {"instrument": "ors", "not_completed": True}


def ors(total: float) -> dict[str, Any]:
    return {"instrument": "ors", "total": total}


def post(
    client: FlaskClient, tenant: Tenant, n: str, day: date, ratings: list[Any], **kw: Any
) -> None:
    body = session_payload(ehr_session_id=n, date=day.isoformat(), ratings=ratings, **kw)
    r = client.post("/v1/sessions", json=body, headers=tenant.auth())
    assert r.status_code in (200, 201), r.json


def reasons(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        stored = conn.execute(select(Episode.risk_reasons)).scalar_one()
    return list(stored["reasons"])


def test_a_late_baseline_is_not_judged_by_sessions_nobody_measured(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """ORS not completed at sessions 1-5, ORS 15 at session 6 (the baseline), 16 at session 7:
    one session of measured change is neither "no reliable improvement by session 6" nor off
    the rational trajectory, and the baseline alone was no finding either."""
    start = TODAY - timedelta(days=49)
    for n in range(1, 6):
        post(
            client, tenant, f"S{n}", start + timedelta(days=7 * (n - 1)), [ORS_NOT_COMPLETED, GOOD]
        )
    post(client, tenant, "S6", start + timedelta(days=35), [ors(15.0), GOOD])
    assert not [r for r in reasons(engine) if r.startswith("no_reliable_improvement")]
    post(client, tenant, "S7", start + timedelta(days=42), [ors(16.0), GOOD])
    found = reasons(engine)
    assert not [r for r in found if r.startswith(("no_reliable_improvement", "not_on_track"))]


def test_a_no_show_on_the_day_of_an_attended_session_is_no_missed_session(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    start = TODAY - timedelta(days=14)
    post(client, tenant, "S1", start, [ors(20.0), GOOD])
    post(client, tenant, "S2", start + timedelta(days=7), [ors(21.0), GOOD])
    post(client, tenant, "S2b", start + timedelta(days=7), [], attendance="no_show")
    assert not [r for r in reasons(engine) if r.startswith("missed_session")]


def test_correcting_the_session_an_alliance_alert_rests_on_resolves_it(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """SRS 7.5 on every item (30) at session 2 opens early_low_alliance; the session is then
    corrected (revision 2) to 9.5 on every item: the alert auto-resolves at once."""
    start = TODAY - timedelta(days=7)
    low = {"instrument": "srs", "items": dict.fromkeys(GOOD["items"], 7.5)}  # type: ignore[arg-type]
    post(client, tenant, "S1", start, [ors(20.0), GOOD])
    post(client, tenant, "S2", TODAY, [ors(21.0), low])
    with engine.connect() as conn:
        (alert,) = conn.execute(select(Alert)).all()
    assert (alert.kind, alert.status) == ("early_low_alliance", "open")
    post(client, tenant, "S2", TODAY, [ors(21.0), GOOD])
    with engine.connect() as conn:
        (alert,) = conn.execute(select(Alert)).all()
    assert alert.status == "auto_resolved"
