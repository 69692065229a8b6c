"""Random sequences of session writes keep every ``episode_months`` row equal to its month's
sessions: after every request the whole table is compared with the plain-Python sums of
``test_episode_months.expected``. Appends (in and out of date order, several clients and
months per batch, same-day sessions, no-shows), corrections, re-sends, age band changes,
refused items, explicit and closed episodes and idempotent replays are mixed, so a write
the service classes as "only adds" (and upserts from its earliest month) meets every kind
of earlier state."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update

from fit_service.adapters.orm import Client, Clinic, Episode, TherapySession
from fit_service.services import episode_months
from tests.conftest import Tenant, session_payload
from tests.integration.test_episode_months import expected, stored

CLIENTS = ("A", "B", "C")
CLINICIANS = ("T-1", "T-2", "T-3")
BANDS = ("adult", "adolescent", "child")
FIRST_DAY = date(2025, 3, 1)


def _ratings(rng: random.Random, band: str, attendance: str) -> list[dict[str, Any]]:
    if attendance != "attended":
        return []
    child = band == "child"
    out = []
    if rng.random() < 0.8:
        out.append({"instrument": "cors" if child else "ors", "total": rng.randint(0, 400) / 10})
    if rng.random() < 0.7:
        out.append({"instrument": "csrs" if child else "srs", "total": rng.randint(300, 400) / 10})
    return out


class _Script:
    def __init__(self, rng: random.Random, client: FlaskClient, tenant: Tenant, engine: Engine):
        self.rng, self.client, self.tenant, self.engine = rng, client, tenant, engine
        self.bands = {c: rng.choice(BANDS) for c in CLIENTS}
        self.sent: dict[str, dict[str, Any]] = {}
        self.days: dict[str, date] = dict.fromkeys(CLIENTS, FIRST_DAY)
        self.serial = 0
        self.keys: list[tuple[str, list[dict[str, Any]]]] = []
        self.concern = 36.0

    def new(self, client_id: str | None = None) -> dict[str, Any]:
        rng = self.rng
        client_id = client_id or rng.choice(CLIENTS)
        self.serial += 1
        # mostly forward in time, sometimes back-dated, sometimes the same day as the last
        step = rng.choice([0, 0, 3, 7, 14, 30, -10, -40])
        day = max(FIRST_DAY, self.days[client_id] + timedelta(days=step))
        self.days[client_id] = max(self.days[client_id], day)
        attendance = rng.choice(["attended"] * 6 + ["no_show", "cancelled"])
        item = session_payload(
            ehr_session_id=f"S-{self.serial}",
            client_id=client_id,
            client_age_band=self.bands[client_id],
            clinician_id=rng.choice(CLINICIANS),
            date=day.isoformat(),
            attendance=attendance,
            ratings=_ratings(rng, self.bands[client_id], attendance),
        )
        if rng.random() < 0.15:
            episode = self.open_episode(client_id)
            if episode is not None:
                item["episode_id"] = episode
        return item

    def open_episode(self, client_id: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(Episode.public_id)
                .join(Client, Client.id == Episode.client_id)
                .where(Client.external_id == client_id, Episode.status == "open")
            ).first()
        return str(row[0]) if row else None

    def changed(self) -> dict[str, Any] | None:
        if not self.sent:
            return None
        rng = self.rng
        item = dict(self.sent[rng.choice(sorted(self.sent))])
        item["client_age_band"] = self.bands[item["client_id"]]
        what = rng.choice(["date", "clinician", "attendance", "ratings", "same"])
        if what == "date":
            day = date.fromisoformat(item["date"]) + timedelta(days=rng.choice([-35, -1, 1, 35]))
            item["date"] = max(FIRST_DAY, day).isoformat()
        elif what == "clinician":
            item["clinician_id"] = rng.choice(CLINICIANS)
        elif what == "attendance":
            item["attendance"] = rng.choice(["attended", "no_show", "cancelled"])
            item["ratings"] = _ratings(rng, self.bands[item["client_id"]], item["attendance"])
        elif what == "ratings" and item["attendance"] == "attended":
            # a session stored on the other age version keeps it beside the new band's: which
            # one a month reads then depends on the client's band
            fresh = _ratings(rng, self.bands[item["client_id"]], "attended")
            kept = {r["instrument"] for r in fresh}
            old = [r for r in item["ratings"] if r["instrument"] not in kept]
            item["ratings"] = fresh + (old if rng.random() < 0.7 else [])
        return item

    def batch(self) -> list[dict[str, Any]]:
        rng = self.rng
        items: list[dict[str, Any]] = []
        for _ in range(rng.choice([1, 1, 2, 3, 5])):
            roll = rng.random()
            if roll < 0.6:
                items.append(self.new())
            elif roll < 0.75:
                item = self.changed()
                if item is not None:
                    items.append(item)
            elif roll < 0.8:
                # an item the service refuses (a total off the scale)
                bad = self.new()
                bad["ratings"] = [{"instrument": "srs", "total": 40.5}]
                bad["attendance"] = "attended"
                items.append(bad)
            elif roll < 0.9:
                # the client's band changes with this session (ratings of the new band)
                client_id = rng.choice(CLIENTS)
                self.bands[client_id] = rng.choice(BANDS)
                items.append(self.new(client_id))
            else:
                # a session of the batch sent again, as it is or changed
                if items:
                    again = dict(rng.choice(items))
                    if rng.random() < 0.5 and again.get("attendance") == "attended":
                        again["ratings"] = _ratings(rng, self.bands[again["client_id"]], "attended")
                    items.append(again)
        return items or [self.new()]

    def post(self, items: list[dict[str, Any]], key: str | None = None) -> None:
        headers = self.tenant.auth("ingest")
        if key is not None:
            headers = {**headers, "Idempotency-Key": key}
        if len(items) == 1 and self.rng.random() < 0.3 and key is None:
            response = self.client.post("/v1/sessions", json=items[0], headers=headers)
            assert response.status_code in (200, 201, 404, 422), response.get_json()
            if response.status_code in (200, 201):
                self.sent[items[0]["ehr_session_id"]] = items[0]
            return
        response = self.client.post("/v1/sessions/batch", json={"sessions": items}, headers=headers)
        assert response.status_code == 200, response.get_json()
        for item, result in zip(items, response.get_json()["results"], strict=True):
            if result["outcome"] in ("created", "revised"):
                self.sent[item["ehr_session_id"]] = item

    def close(self) -> None:
        client_id = self.rng.choice(CLIENTS)
        episode = self.open_episode(client_id)
        if episode is None:
            return
        closed_on = self.days[client_id] + timedelta(days=1)
        response = self.client.post(
            f"/v1/episodes/{episode}/close",
            json={"ending_reason": "planned", "closed_on": closed_on.isoformat()},
            headers=self.tenant.auth("ingest"),
        )
        assert response.status_code in (200, 409, 422), response.get_json()
        if response.status_code == 200:
            self.days[client_id] = closed_on + timedelta(days=1)

    def legacy(self) -> None:
        """A session as a release before numbering stored it (no number), its rows rebuilt
        (``fit recompute-session-totals``): the next write to its episode numbers it."""
        with self.engine.begin() as conn:
            ids = conn.scalars(
                select(TherapySession.id)
                .where(TherapySession.attendance == "attended")
                .order_by(TherapySession.id)
            ).all()
            if not ids:
                return
            conn.execute(
                update(TherapySession)
                .where(TherapySession.id == self.rng.choice(ids))
                .values(number=None)
            )
            clinic_id = conn.execute(select(Clinic.id)).scalar_one()
            episode_months.refresh_clinic(conn, clinic_id)

    def settings(self) -> None:
        self.concern = self.rng.choice([35.0, 36.0, 37.5])
        response = self.client.put(
            "/v1/settings",
            json={"reports": {"srs_concern": self.concern}},
            headers=self.tenant.auth("admin"),
        )
        assert response.status_code == 200, response.get_json()

    def step(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.03:
            self.settings()
        elif roll < 0.06:
            self.legacy()
        elif roll < 0.1:
            self.close()
        elif roll < 0.14 and self.keys:
            self.post(*reversed(rng.choice(self.keys)))  # an idempotent replay
        elif roll < 0.17:
            # a backfill large enough to plan its statements for their parameters
            self.post([self.new() for _ in range(55)])
        else:
            items = self.batch()
            key = None
            if rng.random() < 0.15:
                key = uuid.uuid4().hex
                self.keys.append((key, items))
            self.post(items, key)


@pytest.mark.parametrize("seed", range(4))
def test_random_writes_keep_every_row_equal_to_its_sessions(
    client: FlaskClient, engine: Engine, tenant: Tenant, seed: int
) -> None:
    script = _Script(random.Random(seed), client, tenant, engine)
    for n in range(50):
        script.step()
        assert stored(engine) == expected(engine, script.concern), f"seed {seed}, step {n}"
