"""The trajectory endpoint with the clinic's own ETR: the drawn band stays on the scale, and the
baseline is not judged against the ETR when the first outcome score came after session 1."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.api.test_outcomes import close_cohort, ors
from tests.conftest import Tenant, session_payload

ORS_MIN, ORS_MAX = 0.0, 40.0  # domain.md §2: ORS total 0-40
SRS_ONLY = {
    "instrument": "srs",
    "items": {"relationship": 9.5, "goals": 9.0, "approach": 8.9, "overall": 9.2},
}


def post(client: FlaskClient, tenant: Tenant, sessions: list[list[dict[str, Any]]]) -> str:
    """Post one client's sessions (one list of ratings each); the episode's public id."""
    body: dict[str, Any] = {}
    for n, ratings in enumerate(sessions):
        payload = session_payload(
            ehr_session_id=f"NEW-{n}", client_id="NEW", date=f"2026-10-{n + 1:02d}", ratings=ratings
        )
        resp = client.post("/v1/sessions", json=payload, headers=tenant.auth())
        assert resp.status_code == 201, resp.json
        body = resp.json
    return str(body["episode_id"])


def trajectory(client: FlaskClient, tenant: Tenant, episode_id: str) -> dict[str, Any]:
    resp = client.get(f"/v1/episodes/{episode_id}/trajectory", headers=tenant.auth("manager"))
    assert resp.status_code == 200, resp.json
    return dict(resp.json)


def test_clinic_etr_band_is_drawn_within_the_ors_range(client: FlaskClient, tenant: Tenant) -> None:
    """A high intake's expected path rises past 40 when ln k is extrapolated to session 20; the
    drawn line and band must stay within the 0-40 total (ClinicEtr.bounds)."""
    close_cohort(client, tenant)
    episode_id = post(client, tenant, [[ors(36.0)], [ors(37.2)]])
    traj = trajectory(client, tenant, episode_id)
    assert traj["model"].startswith("etr:clinic-regression")
    path = traj["expected_path"]
    drawn = path["expected"] + path["low"] + path["high"]
    assert max(drawn) <= ORS_MAX
    assert min(drawn) >= ORS_MIN


def test_intake_after_session_one_is_the_baseline_not_a_judged_score(
    client: FlaskClient, tenant: Tenant
) -> None:
    """ORS first given at session 2: that score is the intake. The clinic's cohort gains about
    2 points a session, so judged as a post-intake score at session 2 the intake itself sat
    below the band and was reported "not on track"; as the baseline it has nothing to compare."""
    close_cohort(client, tenant)
    episode_id = post(client, tenant, [[SRS_ONLY], [ors(12.0)], [ors(16.0)]])
    traj = trajectory(client, tenant, episode_id)
    assert traj["model"].startswith("etr:clinic-regression")
    first = traj["points"][0]
    assert (first["session"], first["score"]) == (2, 12.0)
    assert traj["intake"] == 12.0
    assert first["on_track"] is True
    assert first["expected"] == 12.0
    assert first["percentile"] is None
