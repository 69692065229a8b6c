"""The trajectory endpoint with the clinic's own ETR: the drawn band stays on the scale, and the
baseline is not judged against the ETR when the first outcome score came after session 1."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from fit_service.domain.risk import RiskSettings
from fit_service.domain.trajectory import ClinicEtr, Guidance, select_trajectory_model
from fit_service.services.trajectories import with_checkpoints
from tests.api.test_outcomes import close_cohort, ors
from tests.conftest import Tenant, session_payload
from tests.unit.test_trajectory import ORS_ADULT, _short_episodes

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


def close_high_cohort(client: FlaskClient, tenant: Tenant) -> None:
    """80 closed episodes of 4 sessions, intakes 24-36.8 gaining 1.6 a session up to the 40
    ceiling: clients near the top of the scale, as functional-range intakes are."""
    close_cohort(
        client,
        tenant,
        lambda c, n: min(ORS_MAX, 24.0 + 0.8 * (c % 17) + 1.6 * n + 0.4 * (c % 3)),
    )


def test_clinic_etr_band_is_drawn_within_the_ors_range(client: FlaskClient, tenant: Tenant) -> None:
    """An intake of 36 is expected near 40 by session 4, so the band's upper edge lies past
    40; the drawn line and bands, and each point's band, must stay within the 0-40 total
    (ClinicEtr.bounds, domain.md §2)."""
    close_high_cohort(client, tenant)
    episode_id = post(client, tenant, [[ors(36.0)], [ors(37.2)], [ors(38.4)], [ors(39.6)]])
    traj = trajectory(client, tenant, episode_id)
    assert traj["model"].startswith("etr:clinic-regression")
    path = traj["expected_path"]
    drawn = path["expected"] + path["low"] + path["high"]
    drawn += [p[edge] for p in traj["points"] for edge in ("band_low", "band_high")]
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


def test_etr_fallback_judges_at_the_clinics_checkpoints() -> None:
    """Beyond its fitted sessions the clinic's ETR hands over to the rational rules, which judge
    at the clinic's own checkpoints (domain.md §3: a per-clinic setting), here 8 and 12."""
    model = select_trajectory_model(_short_episodes(), ORS_ADULT)
    assert isinstance(model, ClinicEtr)
    risk = RiskSettings.from_mapping({"discuss_checkpoint": 8, "change_checkpoint": 12})
    clinic = with_checkpoints(model, risk)
    assert isinstance(clinic, ClinicEtr)
    # intake 20, score 21 at session 10: no reliable change; off track at the default 6,
    # only "discuss" at the clinic's 8/12
    assert model.assess(20.0, 10, 21.0).on_track is False
    judged = clinic.assess(20.0, 10, 21.0)
    assert (judged.on_track, judged.guidance) == (True, Guidance.DISCUSS)


def test_an_intake_outside_the_fitted_range_names_the_model_that_judged_it(
    client: FlaskClient, tenant: Tenant
) -> None:
    """The clinic's ETR was fitted on intakes 10-22; an intake of 30 is judged, and its line
    drawn, by the rational rules, and the answer's model says so (it named the ETR, while the
    outcome beside it named the rational model)."""
    close_cohort(client, tenant)
    episode_id = post(client, tenant, [[ors(30.0)], [ors(31.0)], [ors(32.0)]])
    traj = trajectory(client, tenant, episode_id)
    judged_by = traj["outcome"]["trajectory"]["model"]
    assert not judged_by.startswith("etr:")
    assert traj["model"] == judged_by
    assert all("intake outside" in p["reason"] for p in traj["points"][1:])


def test_a_client_at_the_scale_maximum_is_not_below_an_expectation_beyond_it(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Intake 36.8 and 40/40 at every later session: the curve's expectation runs past 40, and
    a client at the ceiling was shown 'not on track, beyond the worst 10%'."""
    close_high_cohort(client, tenant)
    episode_id = post(client, tenant, [[ors(36.8)], [ors(40.0)], [ors(40.0)], [ors(40.0)]])
    traj = trajectory(client, tenant, episode_id)
    assert traj["model"].startswith("etr:clinic-regression")
    for point in traj["points"][1:]:
        assert point["on_track"] is True, point
