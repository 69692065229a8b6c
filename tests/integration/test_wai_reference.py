"""A weak WAI-SR subscale is judged against the clinic's own bottom decile at the same session
number once the clinic has enough ratings, and against the labelled floor before that."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from fit_service.adapters.orm import Alert
from fit_service.domain.alliance_reference import MIN_RATINGS
from fit_service.services import alliance_reference
from tests.conftest import Tenant, session_payload

TODAY = datetime.now(UTC).date().isoformat()
GOAL_ITEMS = ("item04", "item06", "item08", "item11")


def wai(goal: tuple[int, int, int, int], rest: int = 5) -> dict[str, Any]:
    items = {f"item{n:02d}": rest for n in range(1, 13)}
    items.update(dict(zip(GOAL_ITEMS, goal, strict=True)))
    return {"instrument": "wai_sr_client", "items": items}


def post(client: FlaskClient, tenant: Tenant, n: str, goal: tuple[int, int, int, int]) -> None:
    body = session_payload(ehr_session_id=n, client_id=n, date=TODAY, ratings=[wai(goal)])
    r = client.post("/v1/sessions", json=body, headers=tenant.auth())
    assert r.status_code == 201, r.json


def goal_alerts(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(Alert.evidence).where(Alert.kind == "weak_wai_goal")).scalars()
        )


def test_weak_subscale_against_the_clinic_decile(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    alliance_reference._cache.clear()
    r = client.put(
        "/v1/settings", json={"risk": {"alert_min_severity": "low"}}, headers=tenant.auth("admin")
    )
    assert r.status_code == 200, r.json
    # Before the clinic has a reference: goal 14 is above the heuristic floor of 12.
    post(client, tenant, "EARLY", (3, 3, 4, 4))
    assert goal_alerts(engine) == []

    # The clinic's clients at session 1 rate the goals leg 16-20: its bottom decile is 16.
    for i in range(MIN_RATINGS + 10):
        post(client, tenant, f"P{i}", (4, 4, 4, 4) if i < 6 else (5, 5, 4 + i % 2, 5))
    alliance_reference._cache.clear()  # the hourly cache, expired
    post(client, tenant, "LATE", (3, 3, 4, 4))
    (evidence,) = goal_alerts(engine)
    assert evidence["score"] == 14.0
    assert evidence["low_line"] == 16.0
    assert evidence["low_line_is_clinic_decile"] is True
    assert "bottom decile" in evidence["source"]
