"""Ingest edges found in review: float noise at the ends of a scale is read as that end, on
every route, and a date refused for a client's closed episode is described truly."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from fit_service.api.schemas import SessionIn
from tests.conftest import Tenant, session_payload, stored_sessions


def _post(client: FlaskClient, tenant: Tenant, body: Any) -> Any:
    return client.post("/v1/sessions", json=body, headers=tenant.auth())


def _batch(client: FlaskClient, tenant: Tenant, items: list[Any]) -> Any:
    return client.post("/v1/sessions/batch", json={"sessions": items}, headers=tenant.auth())


def _ors(**items: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"individual": 5, "interpersonal": 5, "social": 5, "overall": 5}
    base.update(items)
    return {"instrument": "ors", "items": base}


def _srs(**items: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"relationship": 9, "goals": 9, "approach": 9, "overall": 9}
    base.update(items)
    return {"instrument": "srs", "items": base}


def _rating(body: dict[str, Any], instrument: str) -> dict[str, Any]:
    return next(r for r in body["ratings"] if r["instrument"] == instrument)


# --- float noise at the ends of a scale ---------------------------------------------------


def test_both_session_loads_pass_an_edge_value_on_unchanged() -> None:
    """The shortcut load and the field-by-field schema load hand 10.000001 to scoring as sent
    (neither refuses nor rounds it): the two paths judge it the same, in one place."""
    body = session_payload(ratings=[_ors(individual=10.000001)])
    fast = SessionIn().load(body)
    full = SessionIn(only=tuple(SessionIn._declared_fields)).load(body)
    assert fast == full
    assert fast.ratings[0].items["individual"] == 10.000001


@pytest.mark.parametrize(
    ("ors", "srs", "read_ors", "read_srs"),
    [
        ({"individual": 10.000001}, {"relationship": 10.000001}, 10.0, 10.0),
        ({"social": -1e-7}, {"goals": -1e-7}, 0.0, 0.0),
        ({"overall": 1e-7}, {"approach": 9.9999999}, 0.0, 10.0),
    ],
    ids=["10.000001", "-1e-7", "1e-7 and 9.9999999"],
)
def test_an_item_within_float_noise_of_a_scale_end_is_read_as_that_end(
    client: FlaskClient,
    tenant: Tenant,
    ors: dict[str, float],
    srs: dict[str, float],
    read_ors: float,
    read_srs: float,
) -> None:
    """ORS and SRS items a hair beyond 10 or below 0 are the README's "within one part in a
    million of a tenth, read as that tenth": 201 and stored as 10.0 / 0.0 (10.000001 was a 422
    saying "range from 0 to 10; got 10")."""
    resp = _post(client, tenant, session_payload(ratings=[_ors(**ors), _srs(**srs)]))
    assert resp.status_code == 201, resp.json
    [(ors_item, _)], [(srs_item, _)] = ors.items(), srs.items()
    assert _rating(resp.json, "ors")["items"][ors_item] == read_ors
    assert _rating(resp.json, "srs")["items"][srs_item] == read_srs
    again = _post(client, tenant, session_payload(ratings=[_ors(**ors), _srs(**srs)]))
    assert again.status_code == 200  # stored as the tenth: the same body re-sent is unchanged


def test_a_total_within_float_noise_of_a_scale_end_is_that_end(
    client: FlaskClient, tenant: Tenant
) -> None:
    """A total-only ORS of 40.000001 and SRS of -1e-7 are stored as 40.0 and 0.0, and an ORS
    total of 40.000001 beside items summing to 40 agrees with them."""
    resp = _post(
        client,
        tenant,
        session_payload(
            ratings=[
                {"instrument": "ors", "total": 40.000001},
                {"instrument": "srs", "total": -1e-7},
            ]
        ),
    )
    assert resp.status_code == 201, resp.json
    assert (_rating(resp.json, "ors")["total"], _rating(resp.json, "srs")["total"]) == (40.0, 0.0)
    full = {"individual": 10, "interpersonal": 10, "social": 10, "overall": 10}
    beside = _post(
        client,
        tenant,
        session_payload(
            ehr_session_id="S-2",
            date="2026-11-09",
            ratings=[{"instrument": "ors", "items": full, "total": 40.000001}],
        ),
    )
    assert beside.status_code == 201, beside.json
    assert _rating(beside.json, "ors")["total"] == 40.0


def test_a_wai_sr_item_within_float_noise_of_a_whole_point_end_is_that_point(
    client: FlaskClient, tenant: Tenant
) -> None:
    """WAI-SR items are whole points 1-5; 5.000001 and 0.9999999 are 5 and 1, as a tenth's
    noise is the tenth on the ORS."""
    items: dict[str, Any] = {f"item{n:02d}": 3 for n in range(1, 13)}
    items["item01"], items["item02"] = 5.000001, 0.9999999
    resp = _post(
        client, tenant, session_payload(ratings=[{"instrument": "wai_sr_client", "items": items}])
    )
    assert resp.status_code == 201, resp.json
    stored = _rating(resp.json, "wai_sr_client")["items"]
    assert (stored["item01"], stored["item02"]) == (5.0, 1.0)


@pytest.mark.parametrize(
    ("rating", "field", "rule", "detail"),
    [
        (_ors(individual=10.1), "items.individual", "item_out_of_range", "got 10.1"),
        (_ors(individual=10.05), "items.individual", "item_out_of_range", "got 10.05"),
        (_ors(social=-0.1), "items.social", "item_out_of_range", "got -0.1"),
        (_ors(overall=10.5), "items.overall", "item_out_of_range", "got 10.5"),
        (_ors(overall=10.0001), "items.overall", "item_out_of_range", "got 10.0001"),
        ({"instrument": "ors", "total": 40.1}, "total", "total_out_of_range", "got 40.1"),
        ({"instrument": "ors", "total": 40.0001}, "total", "total_out_of_range", "got 40.0001"),
    ],
    ids=["10.1", "10.05", "-0.1", "10.5", "10.0001", "total 40.1", "total 40.0001"],
)
def test_a_value_clearly_beyond_the_scale_stays_refused_saying_what_was_sent(
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    rating: dict[str, Any],
    field: str,
    rule: str,
    detail: str,
) -> None:
    """Beyond a scale's end by more than float noise is still refused, by POST /v1/sessions and
    by the batch alike, and the message names the value as sent (never a rounded one that
    contradicts the range it quotes); nothing is stored."""
    before = stored_sessions(engine)
    resp = _post(client, tenant, session_payload(ratings=[rating]))
    assert resp.status_code == 422, resp.json
    assert (resp.json["field"], resp.json["rule"]) == (f"ratings[0].{field}", rule)
    assert resp.json["detail"].endswith(detail)
    batch = _batch(client, tenant, [session_payload(ratings=[rating])])
    assert batch.status_code == 200, batch.json
    [result] = batch.json["results"]
    assert (result["outcome"], result["problem"]["rule"]) == ("rejected", rule)
    assert result["problem"]["detail"].endswith(detail)
    assert stored_sessions(engine) == before


def test_the_batch_reads_edge_values_as_the_single_route_does(
    client: FlaskClient, tenant: Tenant
) -> None:
    """A backfill batch takes 10.000001, -1e-7 and a 40.000001 total as the tenths they stand
    for, beside a refused 10.1, which does not sink them."""
    resp = _batch(
        client,
        tenant,
        [
            session_payload(ehr_session_id="B-1", ratings=[_ors(individual=10.000001)]),
            session_payload(ehr_session_id="B-2", date="2026-11-09", ratings=[_ors(social=-1e-7)]),
            session_payload(
                ehr_session_id="B-3",
                date="2026-11-16",
                ratings=[{"instrument": "ors", "total": 40.000001}],
            ),
            session_payload(ehr_session_id="B-4", date="2026-11-17", ratings=[_ors(social=10.1)]),
        ],
    )
    assert resp.status_code == 200, resp.json
    results = resp.json["results"]
    assert [r["outcome"] for r in results] == ["created", "created", "created", "rejected"]
    assert results[3]["problem"]["rule"] == "item_out_of_range"
    assert results[3]["problem"]["detail"].endswith("got 10.1")
    sessions = {
        s["ehr_session_id"]: s
        for s in client.get("/v1/clients/C-1", headers=tenant.auth()).json["episodes"][0][
            "sessions"
        ]
    }
    assert _rating(sessions["B-1"], "ors")["items"]["individual"] == 10.0
    assert _rating(sessions["B-2"], "ors")["items"]["social"] == 0.0
    assert _rating(sessions["B-3"], "ors")["total"] == 40.0


# --- dates refused for a client's closed episode ------------------------------------------


def _closed_c31(client: FlaskClient, tenant: Tenant) -> str:
    """C-31 with sessions on 2026-11-05 and 2026-11-12 in an episode then closed on
    2026-11-12 (the reported case); returns the episode's id."""
    first = _post(
        client, tenant, session_payload(ehr_session_id="C31-1", client_id="C-31", date="2026-11-05")
    )
    assert first.status_code == 201, first.json
    second = _post(
        client, tenant, session_payload(ehr_session_id="C31-2", client_id="C-31", date="2026-11-12")
    )
    assert second.status_code == 201, second.json
    episode: str = first.json["episode_id"]
    closed = client.post(
        f"/v1/episodes/{episode}/close",
        json={"ending_reason": "planned", "closed_on": "2026-11-12"},
        headers=tenant.auth(),
    )
    assert closed.status_code == 200, closed.json
    return episode


BEFORE = (
    "falls before the client's later episode (opened 2026-11-05, closed 2026-11-12); "
    "episodes of one client never overlap, and none can be added before one that is closed: "
    "send a client's episodes oldest first"
)


def test_a_session_dated_before_a_closed_episode_is_refused_as_before_it(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A session dated 2026-10-01 for a client whose episode ran 2026-11-05 to 2026-11-12 is
    refused as *before* that episode, naming its opening and close (it said "within the
    client's previous episode, which closed on 2026-11-12"), on both routes; nothing stored."""
    _closed_c31(client, tenant)
    before = stored_sessions(engine)
    body = session_payload(ehr_session_id="C31-0", client_id="C-31", date="2026-10-01")
    resp = _post(client, tenant, body)
    assert resp.status_code == 422, resp.json
    assert (resp.json["field"], resp.json["rule"]) == ("date", "date_in_closed_episode")
    assert resp.json["detail"] == f"session date 2026-10-01 {BEFORE}"
    assert "within" not in resp.json["detail"]
    batch = _batch(client, tenant, [body])
    [result] = batch.json["results"]
    assert result["problem"]["detail"] == f"session date 2026-10-01 {BEFORE}"
    assert stored_sessions(engine) == before


@pytest.mark.parametrize("day", ["2026-11-05", "2026-11-08", "2026-11-12"])
def test_a_session_dated_within_a_closed_episode_is_refused_as_within_it(
    client: FlaskClient, tenant: Tenant, day: str
) -> None:
    """From the closed episode's opening to its close (both days included) the date is
    *within* it, and the detail says so, with both dates."""
    _closed_c31(client, tenant)
    resp = _post(
        client, tenant, session_payload(ehr_session_id="C31-9", client_id="C-31", date=day)
    )
    assert (resp.status_code, resp.json["rule"]) == (422, "date_in_closed_episode")
    assert resp.json["detail"] == (
        f"session date {day} falls within the client's closed episode (opened 2026-11-05, "
        "closed 2026-11-12); a closed episode takes no new sessions, and a new episode starts "
        "after it"
    )


def test_opening_an_episode_before_a_closed_one_is_refused_as_before_it(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """POST /v1/episodes opening on 2026-10-01, before the closed 2026-11-05..12 episode, is
    refused as before it; opening within it, as within it; after its close it opens."""
    _closed_c31(client, tenant)
    before = stored_sessions(engine)
    early = client.post(
        "/v1/episodes", json={"client_id": "C-31", "opened_on": "2026-10-01"}, headers=tenant.auth()
    )
    assert early.status_code == 422, early.json
    assert (early.json["field"], early.json["rule"]) == ("opened_on", "date_in_closed_episode")
    assert early.json["detail"] == f"opened_on 2026-10-01 {BEFORE}"
    inside = client.post(
        "/v1/episodes", json={"client_id": "C-31", "opened_on": "2026-11-10"}, headers=tenant.auth()
    )
    assert (inside.status_code, inside.json["rule"]) == (422, "date_in_closed_episode")
    assert inside.json["detail"].startswith(
        "opened_on 2026-11-10 falls within the client's closed episode (opened 2026-11-05, "
        "closed 2026-11-12)"
    )
    assert stored_sessions(engine) == before
    after = client.post(
        "/v1/episodes", json={"client_id": "C-31", "opened_on": "2026-11-13"}, headers=tenant.auth()
    )
    assert after.status_code == 201, after.json


def test_between_two_closed_episodes_the_later_one_is_named(
    client: FlaskClient, tenant: Tenant
) -> None:
    """With two closed episodes (2026-01-05..02-01 and 2026-11-05..12), a date between them is
    before the later one, which the detail names, and a date in the first is within it."""
    first = _post(client, tenant, session_payload(ehr_session_id="A-1", date="2026-01-05"))
    client.post(
        f"/v1/episodes/{first.json['episode_id']}/close",
        json={"ending_reason": "planned", "closed_on": "2026-02-01"},
        headers=tenant.auth(),
    )
    later = _post(client, tenant, session_payload(ehr_session_id="B-1", date="2026-11-05"))
    client.post(
        f"/v1/episodes/{later.json['episode_id']}/close",
        json={"ending_reason": "planned", "closed_on": "2026-11-12"},
        headers=tenant.auth(),
    )
    between = _post(client, tenant, session_payload(ehr_session_id="X-1", date="2026-06-01"))
    assert (between.status_code, between.json["rule"]) == (422, "date_in_closed_episode")
    assert (
        "before the client's later episode (opened 2026-11-05, closed 2026-11-12)"
        in (between.json["detail"])
    )
    inside = _post(client, tenant, session_payload(ehr_session_id="X-2", date="2026-01-20"))
    assert (
        "within the client's closed episode (opened 2026-01-05, closed 2026-02-01)"
        in (inside.json["detail"])
    )


def test_an_open_episode_is_not_moved_back_before_a_closed_one(
    client: FlaskClient, tenant: Tenant
) -> None:
    """A backfilled session that would move the client's open episode (opened by its first
    session, after the closed one) back before the closed episode is refused as before it."""
    _closed_c31(client, tenant)
    now = _post(
        client, tenant, session_payload(ehr_session_id="C31-3", client_id="C-31", date="2026-11-20")
    )
    assert now.status_code == 201, now.json
    back = _post(
        client, tenant, session_payload(ehr_session_id="C31-0", client_id="C-31", date="2026-10-01")
    )
    assert (back.status_code, back.json["detail"]) == (422, f"session date 2026-10-01 {BEFORE}")
