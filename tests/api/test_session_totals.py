"""The client's ORS/CORS/SRS/CSRS totals kept on each session row follow its ratings.

The monthly report reads these columns instead of joining ``ratings``
(services/session_totals.py), so they must say what the ratings say after every write: a new
session, a batch, a revision that changes or drops a rating. Checked against hand-computed
totals and against :func:`session_totals.recompute` (the SQL derivation from ``ratings``).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update

from fit_service.adapters.orm import TherapySession
from fit_service.services import session_totals
from tests.conftest import Tenant, session_payload

COLUMNS = tuple(session_totals.COLUMNS)


def _stored(engine: Engine) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                TherapySession.ehr_session_id,
                *(getattr(TherapySession, c) for c in COLUMNS),
            )
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def _recomputed(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """What the ratings say, derived in SQL, without keeping the derivation."""
    with engine.connect() as conn:
        transaction = conn.begin()
        session_totals.recompute(conn)
        rows = conn.execute(
            select(
                TherapySession.ehr_session_id,
                *(getattr(TherapySession, c) for c in COLUMNS),
            )
        ).all()
        transaction.rollback()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_totals_follow_new_sessions_batches_and_revisions(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    # One adult session with itemised ORS and SRS.
    resp = client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
    assert resp.status_code == 201, resp.json
    # A batch: a child with CORS and CSRS given as totals, a no-show, and an adolescent whose
    # ORS a parent rated too (not the client's own rating: not copied).
    batch = [
        session_payload(
            ehr_session_id="K-1",
            client_id="C-2",
            client_age_band="child",
            ratings=[
                {"instrument": "cors", "total": 22.3},
                {"instrument": "csrs", "total": 35.9},
            ],
        ),
        session_payload(ehr_session_id="S-2", date="2026-11-09", attendance="no_show", ratings=[]),
        session_payload(
            ehr_session_id="T-1",
            client_id="C-3",
            client_age_band="adolescent",
            ratings=[
                {"instrument": "ors", "rater": "parent", "total": 22.0},
                {"instrument": "ors", "total": 30.1},
            ],
        ),
    ]
    resp = client.post("/v1/sessions/batch", json={"sessions": batch}, headers=tenant.auth())
    assert resp.status_code == 200, resp.json
    assert resp.json["created"] == 3, resp.json
    assert _stored(engine) == {
        "S-1": (18.6, None, 36.6, None),
        "K-1": (None, 22.3, None, 35.9),
        "S-2": (None, None, None, None),
        "T-1": (30.1, None, None, None),
    }

    # A correction of S-1: a different ORS, and no SRS any more.
    revised = session_payload(ratings=[{"instrument": "ors", "total": 12.4}])
    resp = client.post("/v1/sessions", json=revised, headers=tenant.auth())
    assert resp.status_code == 200, resp.json
    assert resp.json["revision"] == 2
    # And in a batch: the child's CSRS corrected, the CORS dropped.
    resp = client.post(
        "/v1/sessions/batch",
        json={
            "sessions": [
                {**batch[0], "ratings": [{"instrument": "csrs", "total": 31.0}]},
            ]
        },
        headers=tenant.auth(),
    )
    assert resp.json["revised"] == 1, resp.json

    stored = _stored(engine)
    assert stored["S-1"] == (12.4, None, None, None)
    assert stored["K-1"] == (None, None, None, 31.0)
    assert stored == _recomputed(engine)


def test_large_batches_and_revisions_within_one_batch(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A backfill-sized batch (PostgreSQL writes it with COPY) where some sessions appear twice,
    the second time corrected: each is stored once, with its final content's totals."""
    items = [
        session_payload(
            ehr_session_id=f"B-{i}",
            client_id=f"C-{i % 7}",
            date=f"2026-10-{1 + i % 28:02d}",
            ratings=[
                {"instrument": "ors", "total": round(10 + i / 10, 1)},
                {"instrument": "srs", "total": 30.0 + i % 10},
            ],
        )
        for i in range(60)
    ]
    corrections = [{**items[i], "ratings": [{"instrument": "ors", "total": 39.9}]} for i in (3, 40)]
    resp = client.post(
        "/v1/sessions/batch", json={"sessions": items + corrections}, headers=tenant.auth()
    )
    assert resp.status_code == 200, resp.json
    assert resp.json["rejected"] == 0, resp.json
    stored = _stored(engine)
    assert len(stored) == 60
    assert stored["B-3"] == (39.9, None, None, None)
    assert stored["B-40"] == (39.9, None, None, None)
    assert stored["B-5"] == (10.5, None, 35.0, None)
    assert stored == _recomputed(engine)


def test_cli_rewrites_totals_a_previous_release_left_empty(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Sessions written by a release before migration 0004 (no copies) get them back from
    ``fit recompute-session-totals``; correct copies stay as they are."""
    client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
    client.post("/v1/sessions", json=session_payload(ehr_session_id="S-2"), headers=tenant.auth())
    with engine.begin() as conn:
        conn.execute(
            update(TherapySession)
            .where(TherapySession.ehr_session_id == "S-2")
            .values(dict.fromkeys(COLUMNS))
        )
    assert _stored(engine)["S-2"] == (None, None, None, None)
    result = app.test_cli_runner().invoke(args=["fit", "recompute-session-totals"])
    assert result.exit_code == 0, result.output
    assert _stored(engine) == {
        "S-1": (18.6, None, 36.6, None),
        "S-2": (18.6, None, 36.6, None),
    }
