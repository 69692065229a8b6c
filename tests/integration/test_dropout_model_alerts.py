"""A clinic with enough closed episodes gets its own dropout model, fitted from its data through
the API, and one dropout-risk alert replaces the rule-by-rule alerts it combines."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from fit_service.adapters.orm import Alert, Client, Episode
from fit_service.domain.dropout_model import MIN_EVENTS
from fit_service.services import dropout_models, risk_schedule
from tests.conftest import Tenant, session_payload

TODAY = datetime.now(UTC).date()
HISTORY = 2 * MIN_EVENTS + 40


def srs(goals: float, rest: float = 9.6) -> dict[str, Any]:
    return {
        "instrument": "srs",
        "items": {"relationship": rest, "goals": goals, "approach": rest, "overall": rest},
    }


def ors(total: float) -> dict[str, Any]:
    return {"instrument": "ors", "total": total}


def build_history(client: FlaskClient, tenant: Tenant, engine: Engine) -> None:
    """Closed episodes over 40 weeks: those who ended unilaterally mostly rated the goals leg
    lower (noisy, so the model has something to learn but not a perfect separation)."""
    rng = random.Random(11)
    sessions: list[dict[str, Any]] = []
    endings: dict[str, str] = {}
    for c in range(HISTORY):
        dropout = c % 2 == 0
        goals = rng.uniform(5.0, 9.0) if dropout == (rng.random() < 0.8) else rng.uniform(9.0, 10)
        start = TODAY - timedelta(weeks=6 + c % 40, days=c % 5)
        for k in range(2 if dropout else 4):
            sessions.append(
                session_payload(
                    ehr_session_id=f"H{c}-{k}",
                    client_id=f"H{c}",
                    date=(start + timedelta(weeks=k)).isoformat(),
                    ratings=[ors(18 + k), srs(round(goals, 1))],
                )
            )
        endings[f"H{c}"] = "client_ended" if dropout else "planned"
    r = client.post("/v1/sessions/batch", json={"sessions": sessions}, headers=tenant.auth())
    assert r.json["created"] == len(sessions), r.json
    with engine.connect() as conn:
        episodes = conn.execute(
            select(Client.external_id, Episode.public_id).join(
                Episode, Episode.client_id == Client.id
            )
        ).all()
    for external_id, episode_id in episodes:
        r = client.post(
            f"/v1/episodes/{episode_id}/close",
            json={"ending_reason": endings[external_id]},
            headers=tenant.auth(),
        )
        assert r.status_code == 200, r.json


def test_a_clinic_with_history_gets_one_dropout_alert_naming_the_leg(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    dropout_models._cache.clear()
    build_history(client, tenant, engine)

    low = session_payload(
        ehr_session_id="N1", client_id="NEW-1", date=TODAY.isoformat(), ratings=[ors(15), srs(5.5)]
    )
    assert client.post("/v1/sessions", json=low, headers=tenant.auth()).status_code == 201
    fine = session_payload(
        ehr_session_id="N2", client_id="NEW-2", date=TODAY.isoformat(), ratings=[ors(15), srs(10)]
    )
    assert client.post("/v1/sessions", json=fine, headers=tenant.auth()).status_code == 201

    with engine.connect() as conn:
        rows = conn.execute(
            select(Client.external_id, Alert.kind, Alert.leg, Alert.severity, Alert.evidence)
            .join(Client, Client.id == Alert.client_id)
            .where(Client.external_id.in_(["NEW-1", "NEW-2"]))
        ).all()
    # the low goals rating would open early_low_alliance under the rules alone; with the
    # clinic's model it is one dropout-risk alert on the goal leg, with the model's provenance
    assert [(r.external_id, r.kind, r.leg, r.severity) for r in rows] == [
        ("NEW-1", "dropout_risk", "goal", 3)
    ]
    evidence = rows[0].evidence
    assert evidence["model"].startswith(f"clinic dropout model ({HISTORY} closed episodes")
    assert evidence["probability"] >= evidence["line"]
    assert evidence["signals"]
    # the clinic's missed-appointment setting reached the fit (default 3, odds ratio)
    assert missed_odds_ratio(evidence) == pytest.approx(3.0, rel=0.02)

    feed = client.get("/v1/alerts", headers=tenant.auth("manager"))
    assert feed.status_code == 200
    (item,) = [a for a in feed.json["items"] if a["kind"] == "dropout_risk"]
    assert item["leg"] == "goal"
    assert item["model"] == evidence["model"]
    assert item["evidence"]["signals"][0]["label"]
    assert "Estimated dropout risk" in item["guidance"]

    view = client.get("/v1/clients/NEW-1", headers=tenant.auth("manager"))
    assert view.status_code == 200
    risk = view.json["episodes"][0]["risk"]
    assert risk["level"] == "high"
    reasons = " ".join(risk["reasons"])
    assert "dropout_risk" in reasons
    assert "early_low_alliance" in reasons  # still listed: the evidence behind the estimate


def missed_odds_ratio(evidence: dict[str, Any]) -> float:
    line, missed = evidence["line"], evidence["line_at_missed_appointment"]
    return (missed / (1 - missed)) / (line / (1 - line))


def test_the_missed_appointment_setting_refits_the_model(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Changing ``risk.dropout_missed_odds_factor`` gives a model fitted with the new factor
    (it is part of the cache key and passed to the fit), not the cached one."""
    dropout_models._cache.clear()
    build_history(client, tenant, engine)
    # a write before the change fits and caches the model with the default factor
    fine = session_payload(
        ehr_session_id="N0", client_id="NEW-0", date=TODAY.isoformat(), ratings=[ors(15), srs(10)]
    )
    assert client.post("/v1/sessions", json=fine, headers=tenant.auth()).status_code == 201
    assert any(model is not None for _, _, model in dropout_models._cache.values())
    r = client.put(
        "/v1/settings",
        json={"risk": {"dropout_missed_odds_factor": 6}},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 200, r.json
    assert r.json["risk"]["dropout_missed_odds_factor"] == 6
    low = session_payload(
        ehr_session_id="N1", client_id="NEW-1", date=TODAY.isoformat(), ratings=[ors(15), srs(5.5)]
    )
    assert client.post("/v1/sessions", json=low, headers=tenant.auth()).status_code == 201
    with engine.connect() as conn:
        (evidence,) = (
            conn.execute(
                select(Alert.evidence)
                .join(Client, Client.id == Alert.client_id)
                .where(Client.external_id == "NEW-1", Alert.kind == "dropout_risk")
            )
            .scalars()
            .all()
        )
    assert missed_odds_ratio(evidence) == pytest.approx(6.0, rel=0.02)


def test_the_daily_recheck_opens_no_dropout_alert_a_recorded_session_does(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """After a bigger budget lowers the line, the daily schedule re-judges an open episode: the
    estimate is listed on the episode, but only a newly recorded appointment opens the alert
    (a refit moving the line is not news about the client)."""
    dropout_models._cache.clear()
    build_history(client, tenant, engine)
    middling = session_payload(
        ehr_session_id="N1", client_id="NEW-1", date=TODAY.isoformat(), ratings=[ors(15), srs(9.9)]
    )
    assert client.post("/v1/sessions", json=middling, headers=tenant.auth()).status_code == 201

    def dropout_alerts() -> int:
        with engine.connect() as conn:
            return len(
                conn.execute(
                    select(Alert.id)
                    .join(Client, Client.id == Alert.client_id)
                    .where(Client.external_id == "NEW-1", Alert.kind == "dropout_risk")
                ).all()
            )

    assert dropout_alerts() == 0  # below the clinic's line at the default budget
    r = client.put(
        "/v1/settings",
        json={"risk": {"dropout_alerts_per_clinician_week": 40}},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 200, r.json
    risk_schedule.check_risks(client.application.extensions["fit"].uow, today=TODAY)
    assert dropout_alerts() == 0
    view = client.get("/v1/clients/NEW-1", headers=tenant.auth("manager"))
    assert "dropout_risk" in " ".join(view.json["episodes"][0]["risk"]["reasons"])
    later = session_payload(
        ehr_session_id="N2", client_id="NEW-1", date=TODAY.isoformat(), ratings=[ors(15), srs(5.0)]
    )
    assert client.post("/v1/sessions", json=later, headers=tenant.auth()).status_code == 201
    assert dropout_alerts() == 1


def test_a_young_clinic_keeps_the_rules(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    dropout_models._cache.clear()
    low = session_payload(
        ehr_session_id="N1", client_id="NEW-1", date=TODAY.isoformat(), ratings=[ors(15), srs(5.5)]
    )
    assert client.post("/v1/sessions", json=low, headers=tenant.auth()).status_code == 201
    with engine.connect() as conn:
        kinds = conn.execute(select(Alert.kind)).scalars().all()
    assert kinds == ["early_low_alliance"]


def test_one_clinics_model_is_not_another_clinics(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    """The model is per clinic: a clinic without history keeps its rules beside one with it."""
    dropout_models._cache.clear()
    build_history(client, tenant, engine)
    for who, n in ((tenant, "A"), (other_tenant, "B")):
        body = session_payload(
            ehr_session_id=f"N-{n}",
            client_id=f"NEW-{n}",
            date=TODAY.isoformat(),
            ratings=[ors(15), srs(5.5)],
        )
        assert client.post("/v1/sessions", json=body, headers=who.auth()).status_code == 201
    with engine.connect() as conn:
        rows = conn.execute(
            select(Client.external_id, Alert.kind)
            .join(Client, Client.id == Alert.client_id)
            .where(Client.external_id.in_(["NEW-A", "NEW-B"]))
            .order_by(Client.external_id)
        ).all()
    assert [tuple(r) for r in rows] == [("NEW-A", "dropout_risk"), ("NEW-B", "early_low_alliance")]


def test_a_failed_fit_leaves_the_rules_alerting_and_the_write_standing(
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    monkeypatch: Any,
    caplog: Any,
) -> None:
    dropout_models._cache.clear()
    build_history(client, tenant, engine)
    dropout_models._cache.clear()

    def broken(*args: Any) -> None:
        raise ZeroDivisionError("odd data")

    monkeypatch.setattr(dropout_models, "fit_clinic_model", broken)
    body = session_payload(
        ehr_session_id="N1", client_id="NEW-1", date=TODAY.isoformat(), ratings=[ors(15), srs(5.5)]
    )
    with caplog.at_level("ERROR", logger=dropout_models.__name__):
        r = client.post("/v1/sessions", json=body, headers=tenant.auth())
    assert r.status_code == 201
    assert "dropout model fit failed for clinic row" in caplog.text
    assert "NEW-1" not in caplog.text
    with engine.connect() as conn:
        kinds = (
            conn.execute(
                select(Alert.kind)
                .join(Client, Client.id == Alert.client_id)
                .where(Client.external_id == "NEW-1")
            )
            .scalars()
            .all()
        )
    assert kinds == ["early_low_alliance"]
