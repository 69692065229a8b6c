"""One set of thresholds per clinic: a clinic's cut-off changes the episode view, the alert
evidence and the report alike; a child's outcome is read from the CORS everywhere."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.conftest import Tenant, session_payload


def _ors(total: float, instrument: str = "ors") -> dict[str, Any]:
    item = round(total / 4, 1)
    keys = ("individual", "interpersonal", "social", "overall")
    return {"instrument": instrument, "items": dict.fromkeys(keys, item)}


def _episode(
    client: FlaskClient,
    tenant: Tenant,
    client_id: str,
    band: str,
    totals: list[float],
    instrument: str = "ors",
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for n, total in enumerate(totals):
        payload = session_payload(
            ehr_session_id=f"{client_id}-{n}",
            client_id=client_id,
            client_age_band=band,
            date=f"2026-10-{2 + 7 * n:02d}",
            ratings=[_ors(total, instrument)],
        )
        resp = client.post("/v1/sessions", json=payload, headers=tenant.auth())
        assert resp.status_code == 201, resp.json
        body = resp.json
    return body


def _report(client: FlaskClient, tenant: Tenant) -> dict[str, Any]:
    resp = client.get(
        "/v1/reports/monthly/2026-10",
        headers={**tenant.auth("manager"), "Accept": "application/json"},
    )
    assert resp.status_code == 200
    return resp.get_json()  # type: ignore[no-any-return]


def test_a_clinic_cutoff_applies_to_views_and_reports_alike(
    client: FlaskClient, tenant: Tenant
) -> None:
    """With the adult cut-off set to 28, 20 -> 26.4 is 'improved' (still clinical) in the episode
    view and in the report; with the default 25 it would be 'recovered'."""
    settings = {"reports": {"ors_cutoff_adult": 28, "min_n": 1}}
    assert (
        client.put("/v1/settings", json=settings, headers=tenant.auth("admin")).status_code == 200
    )
    body = _episode(client, tenant, "C-1", "adult", [20.0, 23.2, 26.4])
    outcome = body["episode"]["outcome"]
    assert (outcome["clinical_cutoff"], outcome["status"]) == (28.0, "improved")
    close = client.post(
        f"/v1/episodes/{body['episode_id']}/close",
        json={"ending_reason": "planned", "closed_on": "2026-10-20"},
        headers=tenant.auth(),
    )
    assert close.status_code == 200
    month = _report(client, tenant)["overall"]["month"]
    assert month["improved"]["numerator"] == 1
    assert month["recovered"]["numerator"] == 0


def test_a_childs_outcome_is_the_cors_everywhere(client: FlaskClient, tenant: Tenant) -> None:
    """A child's ORS (the adult form, with no norm for 6-12) is refused naming the CORS, so no
    score is stored that no surface reads; the CORS is read by the view and the report."""
    settings = {"reports": {"min_n": 1}}
    client.put("/v1/settings", json=settings, headers=tenant.auth("admin"))
    wrong = session_payload(
        ehr_session_id="K-1-0",
        client_id="K-1",
        client_age_band="child",
        date="2026-10-02",
        ratings=[_ors(12.0, "ors")],
    )
    resp = client.post("/v1/sessions", json=wrong, headers=tenant.auth())
    assert (resp.status_code, resp.json["rule"]) == (422, "instrument_not_for_age_band")
    assert "send cors" in resp.json["detail"]
    right = _episode(client, tenant, "K-2", "child", [12.0, 33.2], instrument="cors")
    assert right["episode"]["outcome"]["instrument"] == "cors"
    assert right["episode"]["outcome"]["status"] == "recovered"
    client.post(
        f"/v1/episodes/{right['episode_id']}/close",
        json={"ending_reason": "planned", "closed_on": "2026-10-20"},
        headers=tenant.auth(),
    )
    child = next(b for b in _report(client, tenant)["age_bands"] if b["key"] == "child")
    assert child["month"]["recovered"]["numerator"] == 1
    assert child["month"]["recovered"]["n"] == 1


def test_the_report_names_the_clinics_srs_concern_line(client: FlaskClient, tenant: Tenant) -> None:
    """With the SRS concern line at 34 the report counts and labels against 34, not 36."""
    client.put(
        "/v1/settings",
        json={"reports": {"srs_concern": 34, "min_n": 1}},
        headers=tenant.auth("admin"),
    )
    payload = session_payload(date="2026-10-05")
    payload["ratings"][1]["items"] = {
        "relationship": 9,
        "goals": 8.6,
        "approach": 8.6,
        "overall": 8.8,
    }  # 35.0: below 36, not below 34
    assert client.post("/v1/sessions", json=payload, headers=tenant.auth()).status_code == 201
    metric = _report(client, tenant)["overall"]["month"]["srs_below_concern"]
    assert metric["label"] == "Sessions with SRS below 34"
    assert (metric["numerator"], metric["n"]) == (0, 1)
