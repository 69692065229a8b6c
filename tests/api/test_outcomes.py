"""Outcome figures in the API: change since intake, category and trajectory, checked against
arithmetic done independently in the test (ORS: reliable change 5 points, adult cut-off 25)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import Tenant, session_payload

ORS_RC, ADULT_CUTOFF = 5.0, 25.0  # domain.md §3, restated here as the test's own oracle


def ors(total: float) -> dict[str, Any]:
    """Four equal ORS items summing to ``total`` (a multiple of 0.4 keeps tenths exact)."""
    item = round(total / 4, 1)
    return {
        "instrument": "ors",
        "items": {k: item for k in ("individual", "interpersonal", "social", "overall")},
    }


def post_series(
    client: FlaskClient, tenant: Tenant, client_id: str, totals: list[float]
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for n, total in enumerate(totals):
        payload = session_payload(
            ehr_session_id=f"{client_id}-{n}",
            client_id=client_id,
            date=f"2026-10-{n + 1:02d}",
            ratings=[ors(total)],
        )
        resp = client.post("/v1/sessions", json=payload, headers=tenant.auth())
        assert resp.status_code == 201, resp.json
        body = resp.json
    return body


def expected_category(first: float, last: float) -> str:
    """Independent restatement of the Jacobson-Truax categories for ORS."""
    change = last - first
    clinical_first, clinical_last = first < ADULT_CUTOFF, last < ADULT_CUTOFF
    if change >= ORS_RC:
        return "recovered" if clinical_first and not clinical_last else "improved"
    if change <= -ORS_RC:
        return "harmed" if not clinical_first and clinical_last else "deteriorated"
    return "unchanged"


@pytest.mark.parametrize(
    "totals",
    [
        [18.0, 20.0, 23.2, 27.2],  # clinical -> functional, +9.2
        [12.0, 14.0, 18.0],  # +6, still clinical
        [20.0, 22.0, 23.6],  # +3.6
        [28.0, 24.0, 22.0],  # -6, crosses into clinical
        [20.0, 16.0, 14.8],  # -5.2, already clinical
        [30.0, 33.2],  # functional at intake, +3.2
    ],
)
def test_episode_status_matches_independent_arithmetic(
    client: FlaskClient, tenant: Tenant, totals: list[float]
) -> None:
    """The episode's status on the last session equals the test's own categorisation."""
    body = post_series(client, tenant, "C-1", totals)
    outcome = body["episode"]["outcome"]
    assert outcome["intake"] == pytest.approx(totals[0])
    assert outcome["change"] == pytest.approx(totals[-1] - totals[0])
    assert outcome["status"] == expected_category(totals[0], totals[-1])
    assert outcome["clinical_at_intake"] is (totals[0] < ADULT_CUTOFF)


def test_single_score_has_no_category(client: FlaskClient, tenant: Tenant) -> None:
    """One ORS is an intake, not a change: status stays null with a note."""
    outcome = post_series(client, tenant, "C-1", [18.0])["episode"]["outcome"]
    assert outcome["status"] is None
    assert "one outcome score" in outcome["status_note"]


def test_trajectory_endpoint_uses_rational_rules_without_history(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Without closed episodes the trajectory is judged by the rational rules, and says so."""
    body = post_series(client, tenant, "C-1", [16.0, 16.4, 16.0, 15.6, 16.0, 16.4])
    resp = client.get(
        f"/v1/episodes/{body['episode_id']}/trajectory", headers=tenant.auth("manager")
    )
    assert resp.status_code == 200, resp.json
    traj = resp.json
    assert traj["model"] == "rational:cutoff+rc"
    assert [p["session"] for p in traj["points"]] == [1, 2, 3, 4, 5, 6]
    # No reliable improvement by session 6 from a clinical intake: off track (domain.md §3).
    assert traj["points"][-1]["on_track"] is False
    assert traj["points"][2]["on_track"] is True
    assert len(traj["expected_path"]["low"]) == 20


def _improving(c: int, n: int) -> float:
    return 10 + (c % 12) + 2 * n + (c % 3) * 0.4


def close_cohort(
    client: FlaskClient, tenant: Tenant, total: Callable[[int, int], float] = _improving
) -> None:
    """80 closed episodes of 4 sessions: enough for the clinic's own ETR. ``total(c, n)`` is
    client c's ORS at session n+1 (rounded to the 0.4 grid of four items in tenths); by
    default intakes 10-21 improving by 2 a session."""
    items = []
    for c in range(80):
        for n in range(4):
            items.append(
                session_payload(
                    ehr_session_id=f"E{c}-{n}",
                    client_id=f"E{c}",
                    date=f"2026-09-{n + 1:02d}",
                    ratings=[ors(round(total(c, n) / 0.4) * 0.4)],
                )
            )
    resp = client.post("/v1/sessions/batch", json={"sessions": items}, headers=tenant.auth())
    assert resp.json["created"] == len(items)
    listing = client.get(
        "/v1/sessions", query_string={"limit": 500}, headers=tenant.auth("manager")
    ).json["items"]
    for episode_id in {s["episode_id"] for s in listing}:
        closed = client.post(
            f"/v1/episodes/{episode_id}/close",
            json={"ending_reason": "planned"},
            headers=tenant.auth(),
        )
        assert closed.status_code == 200


def test_trajectory_uses_clinic_etr_once_enough_episodes_closed(
    client: FlaskClient, tenant: Tenant
) -> None:
    """With 80 closed episodes of 4 sessions the clinic's own ETR judges the trajectory."""
    close_cohort(client, tenant)
    body = post_series(client, tenant, "NEW", [14.0, 14.4, 15.2])
    traj = client.get(
        f"/v1/episodes/{body['episode_id']}/trajectory", headers=tenant.auth("manager")
    ).json
    assert traj["model"].startswith("etr:clinic-regression")
    assert traj["expected_path"]["expected"] is not None


def test_an_intake_given_at_session_2_is_the_baseline_not_a_judged_score(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Session 1 had only an SRS; the ORS first given at session 2 is the intake. Under the
    clinic's ETR the episode view must not judge that intake against the session-2
    expectation (it showed 'not on track, 0th percentile' for the client's only score)."""
    close_cohort(client, tenant)
    srs = {
        "instrument": "srs",
        "items": {"relationship": 9, "goals": 9, "approach": 9, "overall": 9},
    }
    for n, ratings in enumerate(([srs], [ors(12.0)])):
        payload = session_payload(
            ehr_session_id=f"LATE-{n}",
            client_id="LATE",
            date=f"2026-10-{n + 1:02d}",
            ratings=ratings,
        )
        assert client.post("/v1/sessions", json=payload, headers=tenant.auth()).status_code == 201
    outcome = client.get("/v1/clients/LATE", headers=tenant.auth("manager")).json["episodes"][0][
        "outcome"
    ]
    assert (outcome["intake_session"], outcome["scores"]) == (2, 1)
    assert outcome["trajectory"]["model"].startswith("etr:clinic-regression")
    assert outcome["trajectory"]["on_track"] is not False, outcome["trajectory"]


def test_trajectory_of_other_clinic_is_404(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Another clinic's episode trajectory is 'not found'."""
    body = post_series(client, tenant, "C-1", [18.0, 19.0])
    resp = client.get(
        f"/v1/episodes/{body['episode_id']}/trajectory", headers=other_tenant.auth("manager")
    )
    assert resp.status_code == 404


def test_views_judge_the_trajectory_by_the_model_of_the_rules_and_the_endpoint(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Write answer, client and session views, trajectory and risk: one model, one verdict."""
    close_cohort(client, tenant)
    body = post_series(client, tenant, "NEW", [15.2, 15.2, 14.0, 14.0])
    manager = tenant.auth("manager")
    traj = client.get(f"/v1/episodes/{body['episode_id']}/trajectory", headers=manager).json
    assert traj["model"].startswith("etr:clinic-regression")
    assert traj["points"][-1]["on_track"] is False
    episode = client.get("/v1/clients/NEW", headers=manager).json["episodes"][0]
    session = client.get(f"/v1/sessions/{body['id']}", headers=manager).json["episode"]
    for shown in (
        body["episode"]["outcome"]["trajectory"],
        episode["outcome"]["trajectory"],
        session["outcome"]["trajectory"],
        traj["outcome"]["trajectory"],
    ):
        assert (shown["model"], shown["on_track"]) == (traj["model"], False)
    assert any(r.startswith("not_on_track") for r in episode["risk"]["reasons"])


def test_views_and_trajectory_judge_at_the_clinics_checkpoints(
    client: FlaskClient, tenant: Tenant
) -> None:
    """No closed episodes (the rational model): at the clinic's checkpoints 4 and 8, six flat
    scores are not yet off track anywhere; at the default 3 and 6 they are, everywhere."""
    manager = tenant.auth("manager")
    flat = [15.2] * 6
    body = post_series(client, tenant, "DEFAULT", flat)
    traj = client.get(f"/v1/episodes/{body['episode_id']}/trajectory", headers=manager).json
    assert traj["model"].startswith("rational")
    assert traj["outcome"]["trajectory"]["on_track"] is False
    settings = {"risk": {"discuss_checkpoint": 4, "change_checkpoint": 8}}
    assert (
        client.put("/v1/settings", json=settings, headers=tenant.auth("admin")).status_code == 200
    )
    body = post_series(client, tenant, "LATER", flat)
    traj = client.get(f"/v1/episodes/{body['episode_id']}/trajectory", headers=manager).json
    episode = client.get("/v1/clients/LATER", headers=manager).json["episodes"][0]
    for shown in (
        body["episode"]["outcome"]["trajectory"],
        episode["outcome"]["trajectory"],
        traj["outcome"]["trajectory"],
    ):
        assert (shown["model"], shown["on_track"]) == (traj["model"], True)
    assert not any(r.startswith("not_on_track") for r in episode["risk"]["reasons"])
