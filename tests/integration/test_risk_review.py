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


def test_a_late_baseline_is_drawn_and_judged_from_its_own_session(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Baseline ORS at session 3 (none at 1-2), then sessions 4-6: the episode's outcome, the
    trajectory endpoint and the risk rules count sessions from the baseline alike. The
    expected path starts at session 3, and each score is judged against the path's value at
    its own session; before, the view judged session 6 as six sessions of change."""
    start = TODAY - timedelta(days=35)
    for n in (1, 2):
        post(
            client, tenant, f"S{n}", start + timedelta(days=7 * (n - 1)), [ORS_NOT_COMPLETED, GOOD]
        )
    for n, score in ((3, 12.0), (4, 13.0), (5, 13.5), (6, 14.0)):
        post(client, tenant, f"S{n}", start + timedelta(days=7 * (n - 1)), [ors(score), GOOD])
    client_view = client.get("/v1/clients/C-1", headers=tenant.auth("manager")).json
    episode = client_view["episodes"][0]
    outcome = episode["outcome"]
    assert (outcome["intake_session"], outcome["latest_session"]) == (3, 6)
    drawn = client.get(
        f"/v1/episodes/{episode['id']}/trajectory", headers=tenant.auth("manager")
    ).json
    drawn_path = drawn["expected_path"]
    low = dict(zip(drawn_path["sessions"], drawn_path["low"], strict=True))
    assert min(low) == 3  # the path starts at the baseline
    assert low[3] == 12.0
    points = {p["session"]: p for p in drawn["points"]}
    for number in (4, 5, 6):
        assert points[number]["band_low"] == low[number], number
    assert outcome["trajectory"]["band_low"] == points[6]["band_low"]
    assert outcome["trajectory"]["on_track"] == points[6]["on_track"]
