"""A database holding what the service writes survives a downgrade to each earlier revision
and the upgrade back to head: rows kept, foreign keys intact, episodes' ``opened_explicitly``
(0003) and the sessions' copied totals (0004) re-derived to the same values."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from fit_service.adapters import migrations
from tests.conftest import Tenant, session_payload

_COUNTS = {
    t: text(f"SELECT count(*) FROM {t}")  # noqa: S608 - constant table names
    for t in ("clinics", "clients", "episodes", "sessions", "ratings", "session_revisions")
}
_TOTALS = text(
    "SELECT ehr_session_id, ors_total, srs_total, cors_total, csrs_total FROM sessions ORDER BY id"
)
_EXPLICIT = text("SELECT id, opened_explicitly FROM episodes ORDER BY id")


def _state(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as conn:
        counts = {t: conn.execute(q).scalar_one() for t, q in _COUNTS.items()}
        return counts, conn.execute(_TOTALS).all(), conn.execute(_EXPLICIT).all()


@pytest.mark.parametrize("revision", ["0004", "0003", "0002", "0001"])
def test_down_to_an_earlier_revision_and_up_again_with_data(
    app: Flask, tenant: Tenant, engine: Engine, revision: str
) -> None:
    client = app.test_client()
    for i, day in enumerate(["2026-10-05", "2026-10-12", "2026-10-19"]):
        payload = session_payload(ehr_session_id=f"S-{i}", date=day)
        assert client.post("/v1/sessions", json=payload, headers=tenant.auth()).status_code == 201
    corrected = session_payload(ehr_session_id="S-1", date="2026-10-12")
    corrected["ratings"][0]["items"]["overall"] = 2  # a revision: the copy follows it
    assert client.post("/v1/sessions", json=corrected, headers=tenant.auth()).status_code == 200
    before = _state(engine)
    assert before[0]["session_revisions"] == 4
    migrations.downgrade(engine, revision)
    migrations.upgrade(engine)
    assert _state(engine) == before
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
