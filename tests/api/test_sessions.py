"""Recording sessions over HTTP: scores, safe re-sends, revisions, idempotency, batches."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text, update

from fit_service.adapters.orm import IdempotencyRecord, Rating, SessionRevision, TherapySession
from tests.conftest import Tenant, session_payload, stored_sessions


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608
            for t in (
                "clients",
                "clinicians",
                "episodes",
                "sessions",
                "session_revisions",
                "ratings",
                "idempotency_records",
            )
        }


def post(client: FlaskClient, tenant: Tenant, body: Any, **headers: str) -> Any:
    return client.post("/v1/sessions", json=body, headers={**tenant.auth(), **headers})


def test_post_session_stores_and_scores(client: FlaskClient, tenant: Tenant) -> None:
    """A new session answers 201 with totals, subscales, session number and episode."""
    resp = post(client, tenant, session_payload())
    assert resp.status_code == 201, resp.json
    body = resp.json
    ors = next(r for r in body["ratings"] if r["instrument"] == "ors")
    srs = next(r for r in body["ratings"] if r["instrument"] == "srs")
    assert ors["total"] == pytest.approx(18.6)
    assert srs["total"] == pytest.approx(36.6)
    assert srs["subscales"] == {"bond": 9.5, "goal": 9.0, "task": 8.9, "global": 9.2}
    assert body["number"] == 1
    assert body["episode"]["status"] == "open"
    assert body["episode"]["opened_on"] == "2026-11-02"


def test_change_since_first_session(client: FlaskClient, tenant: Tenant) -> None:
    """The second session reports ORS change against the episode's first ORS."""
    post(client, tenant, session_payload())
    second = session_payload(ehr_session_id="S-2", date="2026-11-09")
    second["ratings"][0]["items"] = {
        "individual": 6,
        "interpersonal": 6,
        "social": 6.2,
        "overall": 6,
    }
    body = post(client, tenant, second).json
    ors = next(r for r in body["ratings"] if r["instrument"] == "ors")
    assert ors["change_since_first"] == pytest.approx(24.2 - 18.6)
    assert body["number"] == 2
    assert body["episode"]["outcome"]["change"] == pytest.approx(5.6)


def test_identical_resend_stores_nothing(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Re-sending the same session answers 200 with the same body and stores nothing twice."""
    first = post(client, tenant, session_payload())
    before = _counts(engine)
    # Same content, different key order and number spelling: still identical.
    again_payload = session_payload()
    again_payload["ratings"] = list(reversed(again_payload["ratings"]))
    again_payload["ratings"][1]["items"]["interpersonal"] = 5.0
    again = post(client, tenant, again_payload)
    assert again.status_code == 200
    assert again.json == first.json
    assert _counts(engine) == before


def test_changed_content_becomes_a_revision(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A correction is a new revision; the earlier values stay retrievable."""
    first = post(client, tenant, session_payload()).json
    corrected = session_payload()
    corrected["ratings"][0]["items"]["individual"] = 2.5
    resp = post(client, tenant, corrected)
    assert resp.status_code == 200
    assert resp.json["revision"] == 2
    assert resp.json["id"] == first["id"]
    revisions = client.get(f"/v1/sessions/{first['id']}/revisions", headers=tenant.auth()).json
    assert [r["revision"] for r in revisions] == [1, 2]
    old_ors = next(r for r in revisions[0]["content"]["ratings"] if r["instrument"] == "ors")
    new_ors = next(r for r in revisions[1]["content"]["ratings"] if r["instrument"] == "ors")
    assert old_ors["items"]["individual"] == 4.5
    assert new_ors["items"]["individual"] == 2.5
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(TherapySession)) == 1
        assert conn.scalar(select(func.count()).select_from(SessionRevision)) == 2
        assert conn.scalar(select(func.count()).select_from(Rating)) == 2


def test_idempotency_key_replays_and_rejects_other_body(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Same Idempotency-Key + same body replays the answer; a different body is a 422."""
    first = post(client, tenant, session_payload(), **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    before = _counts(engine)
    again = post(client, tenant, session_payload(), **{"Idempotency-Key": "k-1"})
    assert again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    other = post(client, tenant, session_payload(date="2026-11-03"), **{"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert other.json["rule"] == "idempotency_key_reused"
    assert _counts(engine) == before


def test_idempotent_replay_is_audited_and_stores_no_scores(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A replayed answer is audited as a read, and the idempotency record holds no scores."""
    post(client, tenant, session_payload(), **{"Idempotency-Key": "k-2"})
    post(client, tenant, session_payload(), **{"Idempotency-Key": "k-2"})
    with engine.connect() as conn:
        actions = [a for (a,) in conn.execute(text("SELECT action FROM audit_events"))]
        stored = conn.execute(text("SELECT response FROM idempotency_records")).scalar_one()
    assert actions.count("session.replay") == 1
    assert "18.6" not in str(stored)
    assert "individual" not in str(stored)


def test_session_on_closed_episode_is_rejected(client: FlaskClient, tenant: Tenant) -> None:
    """Once an episode is closed, a session naming it is a 422 and nothing changes."""
    body = post(client, tenant, session_payload()).json
    closed = client.post(
        f"/v1/episodes/{body['episode_id']}/close",
        json={"ending_reason": "planned"},
        headers=tenant.auth(),
    )
    assert closed.status_code == 200, closed.json
    assert closed.json["status"] == "closed"
    resp = post(
        client,
        tenant,
        session_payload(ehr_session_id="S-2", date="2026-11-09", episode_id=body["episode_id"]),
    )
    assert resp.status_code == 422
    assert resp.json["rule"] == "episode_closed"
    # Without an episode id, the next session opens a new episode.
    fresh = post(client, tenant, session_payload(ehr_session_id="S-3", date="2026-11-16"))
    assert fresh.status_code == 201
    assert fresh.json["episode_id"] != body["episode_id"]


def test_date_before_an_explicitly_opened_episode_is_rejected(
    client: FlaskClient, tenant: Tenant
) -> None:
    """An episode opened explicitly on a date refuses earlier sessions (422 naming the date)."""
    opened = client.post(
        "/v1/episodes",
        json={"client_id": "C-1", "client_age_band": "adult", "opened_on": "2026-11-02"},
        headers=tenant.auth(),
    )
    assert opened.status_code == 201, opened.json
    resp = post(client, tenant, session_payload(ehr_session_id="S-0", date="2026-10-01"))
    assert resp.status_code == 422
    assert (resp.json["field"], resp.json["rule"]) == ("date", "date_before_episode")


def test_an_episode_cannot_be_opened_before_1900(client: FlaskClient, tenant: Tenant) -> None:
    """POST /v1/episodes with opened_on in year 1 is a 422 date_too_early; nothing is opened."""
    body = {"client_id": "C-1", "client_age_band": "adult", "opened_on": "0001-01-01"}
    resp = client.post("/v1/episodes", json=body, headers=tenant.auth())
    assert (resp.status_code, resp.json["field"], resp.json["rule"]) == (
        422,
        "opened_on",
        "date_too_early",
    )
    assert client.get("/v1/clients/C-1", headers=tenant.auth("manager")).status_code == 404


def test_out_of_order_backfill_moves_an_auto_opened_episode_back(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Sessions may arrive in any order: an episode opened by its first session starts at the
    earliest session, and numbering follows dates."""
    late = session_payload(ehr_session_id="S-2", date="2026-11-10")
    early = session_payload(ehr_session_id="S-1", date="2026-11-03")
    resp = client.post(
        "/v1/sessions/batch", json={"sessions": [late, early]}, headers=tenant.auth()
    )
    assert [r["outcome"] for r in resp.json["results"]] == ["created", "created"]
    earlier = post(client, tenant, session_payload(ehr_session_id="S-0", date="2026-10-27"))
    assert earlier.status_code == 201, earlier.json
    assert earlier.json["episode"]["opened_on"] == "2026-10-27"
    body = client.get("/v1/clients/C-1", headers=tenant.auth()).json
    assert len(body["episodes"]) == 1
    assert [(s["ehr_session_id"], s["number"]) for s in body["episodes"][0]["sessions"]] == [
        ("S-0", 1),
        ("S-1", 2),
        ("S-2", 3),
    ]


def test_totals_only_and_not_completed(client: FlaskClient, tenant: Tenant) -> None:
    """A total without items is stored as such; 'not completed' is stored without a zero."""
    payload = session_payload(
        ratings=[
            {"instrument": "ors", "total": 21.3},
            {"instrument": "srs", "not_completed": True},
        ]
    )
    body = post(client, tenant, payload).json
    ors = next(r for r in body["ratings"] if r["instrument"] == "ors")
    srs = next(r for r in body["ratings"] if r["instrument"] == "srs")
    assert (ors["completeness"], ors["total"], ors["items"]) == ("total_only", 21.3, None)
    assert (srs["completeness"], srs["total"]) == ("not_completed", None)


def test_no_show_is_recorded_without_a_number(client: FlaskClient, tenant: Tenant) -> None:
    """A no-show is stored, has no session number, and later sessions are numbered 1, 2."""
    post(client, tenant, session_payload())
    ns = post(
        client,
        tenant,
        session_payload(ehr_session_id="S-2", date="2026-11-09", attendance="no_show", ratings=[]),
    )
    assert ns.status_code == 201
    assert ns.json["number"] is None
    third = post(client, tenant, session_payload(ehr_session_id="S-3", date="2026-11-16"))
    assert third.json["number"] == 2


def test_backfilled_earlier_session_renumbers(client: FlaskClient, tenant: Tenant) -> None:
    """A session backfilled between two others takes its place in the numbering."""
    a = post(client, tenant, session_payload()).json
    c = post(client, tenant, session_payload(ehr_session_id="S-3", date="2026-11-16")).json
    b = post(client, tenant, session_payload(ehr_session_id="S-2", date="2026-11-09")).json
    assert b["number"] == 2
    c_now = client.get(f"/v1/sessions/{c['id']}", headers=tenant.auth()).json
    assert (a["number"], c_now["number"]) == (1, 3)


BATCH_SIZE = 1000


def test_batch_of_a_thousand_with_bad_items(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A 1,000-session batch answers one result per item in order; bad items don't sink it."""
    items = []
    for n in range(BATCH_SIZE):
        p = session_payload(
            ehr_session_id=f"B-{n}",
            client_id=f"C-{n % 50}",
            date=f"2026-{1 + n // 100:02d}-{1 + n % 28:02d}",
        )
        items.append(p)
    # Deliberately not in date order per client (backfills arrive in any order); the three
    # bad items sit at known places.
    bad_indexes = {3: "item_out_of_range", 500: "unknown_field", 999: "required"}
    items[3]["ratings"][0]["items"]["social"] = 11
    items[500]["unexpected"] = True
    del items[999]["clinician_id"]
    resp = client.post("/v1/sessions/batch", json={"sessions": items}, headers=tenant.auth())
    assert resp.status_code == 200
    results = resp.json["results"]
    assert [r["index"] for r in results] == list(range(BATCH_SIZE))
    for index, rule in bad_indexes.items():
        assert results[index]["outcome"] == "rejected"
        assert results[index]["problem"]["rule"] == rule
    assert resp.json["created"] == BATCH_SIZE - len(bad_indexes)
    assert _counts(engine)["sessions"] == BATCH_SIZE - len(bad_indexes)
    # Re-sending the whole batch stores nothing new.
    again = client.post("/v1/sessions/batch", json={"sessions": items}, headers=tenant.auth())
    assert again.json["unchanged"] == BATCH_SIZE - len(bad_indexes)
    assert _counts(engine)["session_revisions"] == BATCH_SIZE - len(bad_indexes)


def test_bulk_batches_number_sessions_by_date(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Batches large enough for the bulk write path store the same session numbers as one
    post at a time would: in date order, no-shows unnumbered, back-dated sessions shifting
    the later ones, and every session with its ratings and one revision."""

    def item(c: int, day: int, attendance: str = "attended") -> dict[str, Any]:
        p = session_payload(
            ehr_session_id=f"N-{c}-{day}",
            client_id=f"C-{c}",
            date=f"2026-03-{day:02d}",
            attendance=attendance,
        )
        if attendance != "attended":
            p["ratings"] = []
        return p

    # 8 clients x 5 sessions, in date order; client 0 misses one, client 1 has two on one day.
    first = [item(c, day) for day in (2, 9, 16, 23, 24) for c in range(8)]
    first[8] = item(0, 9, "no_show")
    first[-7] = item(1, 23)  # (1, 24) -> a second session for client 1 on the 23rd
    first[-7]["ehr_session_id"] = "N-1-23b"
    # Later: each client's next session, and one back-dated session for client 2.
    second = [item(c, day) for day in (26, 27, 28, 30) for c in range(8)] + [item(2, 5)]
    for batch in (first, second):
        resp = client.post("/v1/sessions/batch", json={"sessions": batch}, headers=tenant.auth())
        assert resp.json["created"] == len(batch), resp.json

    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT c.external_id, s.ehr_session_id, s.attendance, s.number"
                " FROM sessions s JOIN clients c ON c.id = s.client_id"
                " ORDER BY c.external_id, s.date, s.id"
            )
        ).all()
    counts = _counts(engine)
    expected_number: dict[str, int] = {}
    for client_id in {row[0] for row in stored}:
        attended = [r for r in stored if r[0] == client_id and r[2] == "attended"]
        expected_number.update({r[1]: n for n, r in enumerate(attended, start=1)})
    assert [(r[1], r[3]) for r in stored] == [(r[1], expected_number.get(r[1])) for r in stored]
    assert expected_number["N-1-23b"] == expected_number["N-1-23"] + 1
    assert expected_number["N-2-9"] == 3  # after the back-dated 5th
    total = len(first) + len(second)
    assert (counts["sessions"], counts["session_revisions"]) == (total, total)
    assert counts["ratings"] == 2 * (total - 1)  # the no-show has none


def test_batch_revising_one_session_twice(client: FlaskClient, tenant: Tenant) -> None:
    """Two versions of one session in a batch give revisions 1 and 2, in input order."""
    v1 = session_payload()
    v2 = copy.deepcopy(v1)
    v2["ratings"][0]["items"]["social"] = 7
    resp = client.post("/v1/sessions/batch", json={"sessions": [v1, v2]}, headers=tenant.auth())
    assert [(r["outcome"], r["revision"]) for r in resp.json["results"]] == [
        ("created", 1),
        ("revised", 2),
    ]
    sid = resp.json["results"][0]["session_id"]
    stored = client.get(f"/v1/sessions/{sid}", headers=tenant.auth()).json
    ors = next(r for r in stored["ratings"] if r["instrument"] == "ors")
    assert ors["items"]["social"] == 7


def test_oversized_batch_is_413(client: FlaskClient, tenant: Tenant, app: Any) -> None:
    """More items than FIT_MAX_BATCH_ITEMS is a 413 and nothing is stored."""
    limit = app.extensions["fit"].settings.max_batch_items
    items = [session_payload(ehr_session_id=f"X-{n}") for n in range(limit + 1)]
    resp = client.post("/v1/sessions/batch", json={"sessions": items}, headers=tenant.auth())
    assert resp.status_code == 413
    assert resp.json["rule"] == "batch_too_large"


def test_cursor_pagination_walks_every_client(client: FlaskClient, tenant: Tenant) -> None:
    """Pages of 2 over 5 clients visit each client exactly once, then stop."""
    for n in range(5):
        post(client, tenant, session_payload(ehr_session_id=f"S-{n}", client_id=f"C-{n}"))
    seen, cursor = [], None
    for _ in range(5):
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/clients", query_string=query, headers=tenant.auth("manager")).json
        seen += [c["client_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"C-{n}" for n in range(5)]


def test_client_read_has_episodes_with_scores(client: FlaskClient, tenant: Tenant) -> None:
    """GET /v1/clients/{id} returns episodes with session-by-session scores."""
    post(client, tenant, session_payload())
    post(client, tenant, session_payload(ehr_session_id="S-2", date="2026-11-09"))
    body = client.get("/v1/clients/C-1", headers=tenant.auth("manager")).json
    assert len(body["episodes"]) == 1
    sessions = body["episodes"][0]["sessions"]
    assert [s["number"] for s in sessions] == [1, 2]
    assert all(any(r["instrument"] == "ors" for r in s["ratings"]) for s in sessions)


def test_opening_an_episode_for_a_new_client_needs_its_age_band(
    client: FlaskClient, tenant: Tenant
) -> None:
    """POST /v1/episodes for an unknown client without client_age_band names that field."""
    resp = client.post(
        "/v1/episodes", json={"client_id": "C-9", "opened_on": "2026-11-02"}, headers=tenant.auth()
    )
    assert resp.status_code == 422
    assert (resp.json["field"], resp.json["rule"]) == ("client_age_band", "required_for_new_client")


def test_episodes_of_one_client_never_overlap(client: FlaskClient, tenant: Tenant) -> None:
    """A session dated within the client's previous (closed) episode is refused rather than
    opening or back-dating a new episode over it."""
    first = post(client, tenant, session_payload(ehr_session_id="A-1", date="2026-01-10")).json
    client.post(
        f"/v1/episodes/{first['episode_id']}/close",
        json={"ending_reason": "planned", "closed_on": "2026-02-01"},
        headers=tenant.auth(),
    )
    post(client, tenant, session_payload(ehr_session_id="B-1", date="2026-03-01"))
    inside = post(client, tenant, session_payload(ehr_session_id="B-0", date="2026-01-20"))
    assert inside.status_code == 422
    assert (inside.json["field"], inside.json["rule"]) == ("date", "date_in_closed_episode")
    after = post(client, tenant, session_payload(ehr_session_id="B-00", date="2026-02-10"))
    assert after.status_code == 201
    assert after.json["episode"]["opened_on"] == "2026-02-10"


def test_an_expired_idempotency_key_starts_afresh(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """After IDEMPOTENCY_TTL a key is forgotten: the same key with another body is accepted
    (not a 422), and expired records are purged."""
    from datetime import timedelta  # noqa: PLC0415

    from fit_service.services.recording import IDEMPOTENCY_TTL  # noqa: PLC0415

    assert post(client, tenant, session_payload(), **{"Idempotency-Key": "k-9"}).status_code == 201
    aged = datetime.now(UTC) - IDEMPOTENCY_TTL - timedelta(minutes=1)
    with engine.begin() as conn:  # through the typed column, as the service stores it
        conn.execute(update(IdempotencyRecord).values(created_at=aged))
    other = post(
        client,
        tenant,
        session_payload(ehr_session_id="S-2", date="2026-11-03"),
        **{"Idempotency-Key": "k-9"},
    )
    assert other.status_code == 201
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM idempotency_records")).scalar_one() == 1


def _batch(client: FlaskClient, tenant: Tenant, items: list[Any], **headers: str) -> Any:
    return client.post(
        "/v1/sessions/batch", json={"sessions": items}, headers={**tenant.auth(), **headers}
    )


@pytest.mark.parametrize(("bad", "rule"), [(None, "not_null"), (5, "type_object")])
def test_a_null_batch_item_is_refused_alone(
    client: FlaskClient, tenant: Tenant, engine: Engine, bad: Any, rule: str
) -> None:
    """A null (or non-object) batch item is refused on its own; the valid item is stored."""
    resp = _batch(client, tenant, [session_payload(), bad])
    assert resp.status_code == 200, resp.json
    results = resp.json["results"]
    assert [r["outcome"] for r in results] == ["created", "rejected"]
    assert (results[1]["status"], results[1]["problem"]["rule"]) == (422, rule)
    assert _counts(engine)["sessions"] == 1


def test_an_explicit_episode_cannot_overlap_the_clients_closed_one(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """POST /v1/episodes opening on or before the end of the client's closed episode is a 422
    naming opened_on, stores nothing, and later sessions in that period stay refused."""
    first = post(client, tenant, session_payload(ehr_session_id="A-1", date="2026-09-01")).json
    closed = client.post(
        f"/v1/episodes/{first['episode_id']}/close",
        json={"ending_reason": "planned", "closed_on": "2026-10-01"},
        headers=tenant.auth(),
    )
    assert closed.status_code == 200, closed.json
    before = _counts(engine)
    for opened_on in ("2026-05-01", "2026-09-15", "2026-10-01"):
        resp = client.post(
            "/v1/episodes", json={"client_id": "C-1", "opened_on": opened_on}, headers=tenant.auth()
        )
        assert resp.status_code == 422, (opened_on, resp.json)
        assert resp.mimetype == "application/problem+json"
        assert (resp.json["field"], resp.json["rule"]) == ("opened_on", "date_in_closed_episode")
    assert _counts(engine) == before
    inside = post(client, tenant, session_payload(ehr_session_id="A-2", date="2026-06-01"))
    assert (inside.status_code, inside.json["rule"]) == (422, "date_in_closed_episode")
    after = client.post(
        "/v1/episodes", json={"client_id": "C-1", "opened_on": "2026-10-02"}, headers=tenant.auth()
    )
    assert after.status_code == 201, after.json


def test_correcting_the_first_session_later_moves_the_episode_start(
    client: FlaskClient, tenant: Tenant
) -> None:
    """An episode opened by its first session starts at its earliest session even when that
    session's date is corrected to a later one, alone or with later sessions stored."""
    one = post(client, tenant, session_payload(ehr_session_id="A-1", date="2026-01-05")).json
    moved = post(client, tenant, session_payload(ehr_session_id="A-1", date="2026-11-02"))
    assert (moved.status_code, moved.json["revision"]) == (200, 2)
    assert moved.json["episode"]["opened_on"] == "2026-11-02"
    episode = client.get("/v1/clients/C-1", headers=tenant.auth()).json["episodes"][0]
    assert (episode["id"], episode["opened_on"]) == (one["episode_id"], "2026-11-02")

    for ehr_id, day in (("B-1", "2026-01-05"), ("B-2", "2026-01-12"), ("B-3", "2026-01-19")):
        post(client, tenant, session_payload(ehr_session_id=ehr_id, client_id="C-2", date=day))
    # In a batch, so the batch path moves it as well as the single-session one.
    resp = _batch(
        client, tenant, [session_payload(ehr_session_id="B-1", client_id="C-2", date="2026-01-26")]
    )
    assert resp.json["revised"] == 1, resp.json
    episode = client.get("/v1/clients/C-2", headers=tenant.auth()).json["episodes"][0]
    assert episode["opened_on"] == "2026-01-12"
    assert [(s["ehr_session_id"], s["number"]) for s in episode["sessions"]] == [
        ("B-2", 1),
        ("B-3", 2),
        ("B-1", 3),
    ]


def test_an_explicitly_opened_episode_keeps_its_date_when_sessions_move(
    client: FlaskClient, tenant: Tenant
) -> None:
    """An episode opened by POST /v1/episodes keeps its opened_on when its first session is
    corrected to a later date."""
    opened = client.post(
        "/v1/episodes",
        json={"client_id": "C-1", "client_age_band": "adult", "opened_on": "2026-01-01"},
        headers=tenant.auth(),
    )
    assert opened.status_code == 201, opened.json
    post(client, tenant, session_payload(ehr_session_id="A-1", date="2026-01-05"))
    moved = post(client, tenant, session_payload(ehr_session_id="A-1", date="2026-02-01"))
    assert moved.status_code == 200, moved.json
    assert moved.json["episode"]["opened_on"] == "2026-01-01"


@pytest.mark.parametrize(
    ("stored", "bands", "expected"),
    [
        (None, ["adult", "adolescent"], "adolescent"),  # a client new in this batch
        (None, ["adult", None], "adult"),  # no band later: the earlier one stays
        ("adult", ["adolescent", "adult"], "adult"),  # back to the stored band
        ("adult", ["child", "adolescent"], "adolescent"),
    ],
)
def test_a_batch_sets_the_age_band_as_one_at_a_time_would(
    client: FlaskClient,
    tenant: Tenant,
    stored: str | None,
    bands: list[str | None],
    expected: str,
) -> None:
    """Within a batch, the last age band sent for a client wins, as when sent one by one."""
    if stored is not None:
        seed = session_payload(ehr_session_id="P-0", date="2026-10-01", client_age_band=stored)
        assert post(client, tenant, seed).status_code == 201
    # No ratings: ORS and SRS would be refused for a child (instrument_not_for_age_band).
    items = [
        session_payload(
            ehr_session_id=f"P-{n}", date=f"2026-11-0{n}", client_age_band=band, ratings=[]
        )
        for n, band in enumerate(bands, start=1)
    ]
    resp = _batch(client, tenant, items)
    assert [r["outcome"] for r in resp.json["results"]] == ["created"] * len(items), resp.json
    assert client.get("/v1/clients/C-1", headers=tenant.auth()).json["age_band"] == expected


def _cors() -> dict[str, Any]:
    return {
        "instrument": "cors",
        "items": {"individual": 4, "interpersonal": 4, "social": 4, "overall": 4},
    }


@pytest.mark.parametrize("as_batch", [False, True], ids=["one_at_a_time", "batch"])
def test_an_older_session_naming_an_earlier_age_band_does_not_set_the_clients_band(
    client: FlaskClient, tenant: Tenant, as_batch: bool
) -> None:
    """The client is an adolescent now; a backfilled session from when they were 12 (a child,
    with a CORS) is stored as sent but leaves the band at adolescent, so the client's next
    ORS is taken. Newer sessions still move the band, whatever order they arrive in."""
    newer = session_payload(ehr_session_id="S-2", date="2026-11-02", client_age_band="adolescent")
    older = session_payload(
        ehr_session_id="S-1", date="2026-10-01", client_age_band="child", ratings=[_cors()]
    )
    if as_batch:
        resp = _batch(client, tenant, [newer, older])
        assert [r["outcome"] for r in resp.json["results"]] == ["created", "created"], resp.json
    else:
        assert post(client, tenant, newer).status_code == 201
        assert post(client, tenant, older).status_code == 201
    assert client.get("/v1/clients/C-1", headers=tenant.auth()).json["age_band"] == "adolescent"
    nxt = session_payload(ehr_session_id="S-3", date="2026-11-03", client_age_band=None)
    nxt.pop("client_age_band")
    assert post(client, tenant, nxt).status_code == 201
    latest = session_payload(
        ehr_session_id="S-4", date="2026-11-04", client_age_band="adult", ratings=[]
    )
    assert post(client, tenant, latest).status_code == 201
    assert client.get("/v1/clients/C-1", headers=tenant.auth()).json["age_band"] == "adult"


def test_closing_again_the_same_way_is_answered_like_the_first_close(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """An EHR that lost the answer to a close re-sends it: the same ending (and note, and date
    if it sent one) answers 200 with the closed episode and changes nothing; a different close
    of a closed episode is still a 409."""
    body = post(client, tenant, session_payload()).json
    url = f"/v1/episodes/{body['episode_id']}/close"
    request = {"ending_reason": "planned", "note": "goals met"}
    first = client.post(url, json=request, headers=tenant.auth())
    assert first.status_code == 200, first.json
    before = stored_sessions(engine)
    again = client.post(url, json=request, headers=tenant.auth())
    assert again.status_code == 200, again.json
    assert again.json == first.json
    dated = client.post(
        url, json={**request, "closed_on": first.json["closed_on"]}, headers=tenant.auth()
    )
    assert dated.status_code == 200, dated.json
    assert stored_sessions(engine) == before
    for other in (
        {"ending_reason": "client_ended", "note": "goals met"},
        {"ending_reason": "planned"},
        {**request, "closed_on": "2026-11-03"},
    ):
        refused = client.post(url, json=other, headers=tenant.auth())
        assert refused.status_code == 409, (other, refused.json)
        assert refused.json["rule"] == "episode_closed"
    assert stored_sessions(engine) == before
