"""What the risk rules are fed through the API decides the alerts: scores exactly at a threshold,
the age version of a measure, old or backfilled sessions, episodes that never started, the
clinic's cut-off rule and checkpoints, and a change of age band mid-episode."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from fit_service.adapters.orm import Alert, Client, Episode
from tests.conftest import Tenant, session_payload

TODAY = datetime.now(UTC).date()


def srs(r: float, g: float, a: float, o: float, instrument: str = "srs") -> dict[str, Any]:
    return {
        "instrument": instrument,
        "items": {"relationship": r, "goals": g, "approach": a, "overall": o},
    }


def ors(total: float, instrument: str = "ors") -> dict[str, Any]:
    return {"instrument": instrument, "total": total}


GOOD = srs(9.5, 9.5, 9.5, 9.5)


def send(
    client: FlaskClient, tenant: Tenant, n: str, day: date, ratings: list[Any], **kw: Any
) -> Any:
    body = session_payload(ehr_session_id=n, date=day.isoformat(), ratings=ratings, **kw)
    return client.post("/v1/sessions", json=body, headers=tenant.auth())


def post(
    client: FlaskClient, tenant: Tenant, n: str, day: date, ratings: list[Any], **kw: Any
) -> dict[str, Any]:
    r = send(client, tenant, n, day, ratings, **kw)
    assert r.status_code in (200, 201), r.json
    return r.json  # type: ignore[no-any-return]


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


def alerts(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Alert).order_by(Alert.id)).all())


def reasons(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        stored = conn.execute(select(Episode.risk_reasons)).scalar_one()
    return list(stored["reasons"])


def put_settings(client: FlaskClient, tenant: Tenant, settings: dict[str, Any]) -> None:
    r = client.put("/v1/settings", json=settings, headers=tenant.auth("admin"))
    assert r.status_code == 200, r.json


# ------------------------------------------------------------------------------ thresholds
def test_an_ors_fall_of_exactly_five_with_decimals_opens_the_deterioration_alert(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """ORS 20.4 -> 15.4 -> 15.4 is 5 points below intake twice (the episode view says
    deteriorated): the confirmed ors_reliable_deterioration alert opens."""
    for n, (day, total) in enumerate(((21, 20.4), (14, 15.4), (7, 15.4)), start=1):
        post(client, tenant, f"S{n}", days_ago(day), [ors(total), GOOD])
    assert [(a.kind, a.severity) for a in alerts(engine)] == [("ors_reliable_deterioration", 3)]
    assert alerts(engine)[0].evidence["change"] == -5.0


def test_the_clinics_cutoff_rule_judges_the_intake_for_no_reliable_improvement(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Where the clinic counts the cut-off itself as clinical, an intake of 25.0 with no change
    by session 6 is a clinical-range client: MEDIUM no_reliable_improvement (an alert at
    medium), intake_above_cutoff false - as the rational trajectory already judged it."""
    put_settings(
        client,
        tenant,
        {"reports": {"cutoff_is_clinical": True}, "risk": {"alert_min_severity": "medium"}},
    )
    for n in range(1, 7):
        post(client, tenant, f"S{n}", days_ago(7 * (7 - n)), [ors(25.0), GOOD])
    found = {a.kind: a for a in alerts(engine)}
    assert found["no_reliable_improvement"].severity == 2
    assert found["no_reliable_improvement"].evidence["intake_above_cutoff"] is False


def test_the_rational_trajectory_uses_the_clinics_checkpoints(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """With the checkpoints at 4 and 8, no reliable improvement at session 6 is not yet "not on
    track"; at session 8 it is, and the finding says session 8."""
    put_settings(client, tenant, {"risk": {"discuss_checkpoint": 4, "change_checkpoint": 8}})
    post(client, tenant, "S1", days_ago(60), [ors(18.0), GOOD])
    for n in range(2, 7):
        post(client, tenant, f"S{n}", days_ago(60 - 7 * n), [ors(19.0), GOOD])
    assert not any(r.startswith("not_on_track") for r in reasons(engine))
    assert any(r.startswith("no_reliable_improvement") for r in reasons(engine))
    post(client, tenant, "S7", days_ago(8), [ors(19.0), GOOD])
    post(client, tenant, "S8", days_ago(1), [ors(19.0), GOOD])
    assert any(r.startswith("not_on_track") for r in reasons(engine))


# ------------------------------------------------------------------------------ age versions
def test_a_measure_not_normed_for_the_clients_age_band_is_refused_by_name(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A child's ORS or SRS (and an adult's CORS or CSRS) is refused with 422
    instrument_not_for_age_band naming the version to send; nothing is stored."""
    cases = [
        ("child", [ors(30.0), srs(9.5, 6.0, 9.0, 9.0, "csrs")], "ratings[0].instrument", "cors"),
        ("child", [ors(30.0, "cors"), srs(9.5, 6.0, 9.0, 9.0)], "ratings[1].instrument", "csrs"),
        ("adult", [ors(30.0, "cors"), GOOD], "ratings[0].instrument", "ors"),
        (
            "adolescent",
            [ors(30.0), srs(9.5, 6.0, 9.0, 9.0, "csrs")],
            "ratings[1].instrument",
            "srs",
        ),
    ]
    for n, (band, ratings, field, expected) in enumerate(cases):
        r = send(
            client, tenant, f"S{n}", days_ago(7), ratings, client_id=f"K-{n}", client_age_band=band
        )
        assert r.status_code == 422, r.json
        assert (r.json["rule"], r.json["field"]) == ("instrument_not_for_age_band", field)
        assert f"send {expected}" in r.json["detail"]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Client)) == 0


def test_a_batch_refuses_the_wrong_age_version_per_item(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """In a batch only the child's ORS item is refused; the child's CORS items and the band
    named by an earlier item of the batch decide, as when sent one at a time."""
    items = [
        session_payload(ehr_session_id="B1", client_id="K-1", client_age_band="child",
                        date=days_ago(14).isoformat(), ratings=[ors(30.0, "cors")]),
        session_payload(ehr_session_id="B2", client_id="K-1", client_age_band=None,
                        date=days_ago(7).isoformat(), ratings=[ors(20.0)]),
        session_payload(ehr_session_id="B3", client_id="K-1", client_age_band=None,
                        date=days_ago(7).isoformat(), ratings=[ors(20.0, "cors")]),
    ]  # fmt: skip
    r = client.post("/v1/sessions/batch", json={"sessions": items}, headers=tenant.auth())
    assert r.status_code == 200, r.json
    results = r.json["results"]
    assert [x["outcome"] for x in results] == ["created", "rejected", "created"]
    assert (results[1]["status"], results[1]["problem"]["rule"]) == (
        422,
        "instrument_not_for_age_band",
    )


def test_a_change_of_age_band_mid_episode_keeps_the_episodes_history(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """CORS 30, 20, 20 as a child opens a deterioration alert; the next session as an
    adolescent (ORS 20, still 10 below the intake) keeps it open instead of auto-resolving it
    as if the episode had started again; two ORS scores back near the intake resolve it."""
    for n, (day, total) in enumerate(((35, 30.0), (28, 20.0), (21, 20.0)), start=1):
        ratings = [ors(total, "cors"), srs(9.5, 9.5, 9.5, 9.5, "csrs")]
        post(client, tenant, f"S{n}", days_ago(day), ratings, client_age_band="child")
    (alert,) = alerts(engine)
    assert (alert.kind, alert.status) == ("ors_reliable_deterioration", "open")
    post(client, tenant, "S4", days_ago(14), [ors(20.0), GOOD], client_age_band="adolescent")
    (alert,) = alerts(engine)
    assert alert.status == "open"
    assert alert.evidence["intake"] == 30.0
    post(client, tenant, "S5", days_ago(7), [ors(29.0), GOOD])
    post(client, tenant, "S6", days_ago(1), [ors(29.0), GOOD])
    assert alerts(engine)[0].status == "auto_resolved"


def test_a_session_from_before_a_band_change_is_corrected_on_its_own_version(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A CORS session recorded while the client was a child is corrected (revision 2) after
    the client became an adolescent, without naming a band and without moving the client's
    band back; a new CORS session is still refused for the adolescent."""
    post(client, tenant, "S1", days_ago(35), [ors(20.0, "cors")], client_age_band="child")
    post(client, tenant, "S2", days_ago(28), [ors(22.0, "cors")], client_age_band="child")
    post(client, tenant, "S3", days_ago(21), [ors(24.0)], client_age_band="adolescent")
    r = send(client, tenant, "S1", days_ago(35), [ors(20.5, "cors")], client_age_band=None)
    assert (r.status_code, r.json["revision"]) == (200, 2), r.json
    with engine.connect() as conn:
        assert conn.scalar(select(Client.age_band)) == "adolescent"
    r = send(client, tenant, "S4", days_ago(14), [ors(25.0, "cors")], client_age_band=None)
    assert (r.status_code, r.json["rule"]) == (422, "instrument_not_for_age_band")


def test_views_trajectory_and_rules_share_one_intake_across_a_band_change(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """CORS 38 as a child, then ORS 28 three times as an adolescent: the write answer, the
    client view and the trajectory endpoint all take the CORS 38 as intake (change -10,
    reliably worse), as the risk rules do; none restarts the series at the first ORS."""
    post(client, tenant, "S1", days_ago(28), [ors(38.0, "cors")], client_age_band="child")
    for n, day in ((2, 21), (3, 14)):
        post(
            client, tenant, f"S{n}", days_ago(day), [ors(28.0), GOOD], client_age_band="adolescent"
        )
    body = post(client, tenant, "S4", days_ago(7), [ors(28.0), GOOD], client_age_band=None)
    manager = tenant.auth("manager")
    episode = client.get("/v1/clients/C-1", headers=manager).json["episodes"][0]
    trajectory = client.get(f"/v1/episodes/{episode['id']}/trajectory", headers=manager).json
    for outcome in (body["episode"]["outcome"], episode["outcome"], trajectory["outcome"]):
        assert (outcome["intake"], outcome["change"]) == (38.0, -10.0), outcome
    assert trajectory["intake"] == 38.0
    assert any(r.startswith("ors_reliable_deterioration") for r in episode["risk"]["reasons"])


# ------------------------------------------------------------------------------ stale evidence
def test_a_lone_session_a_year_ago_opens_no_gap_alert_but_six_weeks_ago_does(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """At medium alerting, a first session dated 365 days ago opens nothing (its gap is listed,
    marked stale); a client seen once 6 weeks ago and never again gets a long_gap alert."""
    put_settings(client, tenant, {"risk": {"alert_min_severity": "medium"}})
    post(client, tenant, "S1", days_ago(365), [ors(18.0), GOOD])
    assert alerts(engine) == []
    (reason,) = [r for r in reasons(engine) if r.startswith("long_gap")]
    assert "stale evidence" in reason
    post(client, tenant, "S2", days_ago(42), [ors(18.0), GOOD], client_id="C-2")
    assert [(a.kind, a.evidence["days_since_last_session"]) for a in alerts(engine)] == [
        ("long_gap", 42)
    ]


def test_a_backfilled_early_rupture_a_year_old_opens_no_alert(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Sessions dated 400 and 393 days ago with a goals item of 6 are listed as an early low
    alliance (the level is high, the reason marked stale) but open no HIGH alert today."""
    post(client, tenant, "S1", days_ago(400), [ors(18.0), srs(9.5, 6.0, 9.0, 9.0)])
    post(client, tenant, "S2", days_ago(393), [ors(18.0), srs(9.5, 6.0, 9.0, 9.0)])
    assert alerts(engine) == []
    early = [r for r in reasons(engine) if r.startswith("early_low_alliance")]
    assert len(early) == 1
    assert "stale evidence" in early[0]


# ------------------------------------------------------------------------------ not started
def test_cancellations_before_a_first_session_are_not_a_high_alert(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Two cancellations and no attended session open no HIGH alert by default; at medium the
    alert is MEDIUM with guidance about starting, not about the way of working."""
    post(client, tenant, "S1", days_ago(8), [], attendance="cancelled")
    post(client, tenant, "S2", days_ago(1), [], attendance="cancelled")
    assert alerts(engine) == []
    put_settings(client, tenant, {"risk": {"alert_min_severity": "medium"}})
    post(client, tenant, "S3", days_ago(8), [], attendance="cancelled", client_id="C-2")
    post(client, tenant, "S4", days_ago(1), [], attendance="cancelled", client_id="C-2")
    (alert,) = alerts(engine)
    assert (alert.kind, alert.severity) == ("missed_session", 2)
    assert "not attended a first session" in alert.guidance
    assert "way of working" not in alert.guidance
