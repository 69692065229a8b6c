"""The read side of the API: episode views, pagination, tenancy and the audit of reads."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import Tenant, session_payload


def _post(client: FlaskClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    resp = client.post("/v1/sessions", json=session_payload(**overrides), headers=tenant.auth())
    assert resp.status_code in (200, 201), resp.json
    return resp.json  # type: ignore[no-any-return]


def _rating(instrument: str, total: float) -> dict[str, Any]:
    """Four equal items summing to ``total`` (ORS/CORS slots)."""
    keys = ("individual", "interpersonal", "social", "overall")
    return {"instrument": instrument, "items": dict.fromkeys(keys, round(total / 4, 1))}


def test_change_since_first_reads_cors_then_ors_as_one_series(
    client: FlaskClient, tenant: Tenant
) -> None:
    """After a child turns 13, an ORS's change since the first session is against the
    episode's first score (the CORS), as the episode's outcome reads it (README)."""
    _post(
        client,
        tenant,
        ehr_session_id="S-1",
        date="2026-10-01",
        client_age_band="child",
        ratings=[_rating("cors", 20.0)],
    )
    body = _post(
        client,
        tenant,
        ehr_session_id="S-2",
        date="2026-10-08",
        client_age_band="adolescent",
        ratings=[_rating("ors", 28.0)],
    )
    assert body["episode"]["outcome"]["intake"] == pytest.approx(20.0)
    assert body["ratings"][0]["change_since_first"] == pytest.approx(8.0)
    episode = client.get("/v1/clients/C-1", headers=tenant.auth()).json["episodes"][0]
    assert episode["sessions"][1]["ratings"][0]["change_since_first"] == pytest.approx(8.0)
    assert episode["outcome"]["change"] == pytest.approx(8.0)
