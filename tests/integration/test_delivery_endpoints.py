"""Webhook endpoint registration under concurrency: the per-clinic cap holds."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from flask import Flask

from fit_service.adapters import webhooks
from fit_service.services import webhook_endpoints
from tests.conftest import Tenant


def test_two_registrations_at_once_cannot_pass_the_cap(
    app: Flask, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nine endpoints registered, two admins registering the tenth at the same moment
    get one 201 and one 409: the count and the insert are not a check-then-insert race."""
    auth = tenant.auth("admin")
    client = app.test_client()
    for n in range(webhook_endpoints.MAX_ENDPOINTS_PER_CLINIC - 1):
        r = client.post(
            "/v1/webhook-endpoints", json={"url": f"https://93.184.215.14/{n}"}, headers=auth
        )
        assert r.status_code == 201, r.json

    # Both requests have counted before either inserts, unless the first one's count holds the
    # second back (then the barrier times out and the first goes on alone).
    barrier = threading.Barrier(2)
    real = webhooks.generate_secret

    def generate_secret_when_both_counted(*args: Any) -> str:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=2)
        return real(*args)

    monkeypatch.setattr(webhook_endpoints, "generate_secret", generate_secret_when_both_counted)
    statuses: list[int] = []

    def register(n: int) -> None:
        r = app.test_client().post(
            "/v1/webhook-endpoints", json={"url": f"https://93.184.215.14/x{n}"}, headers=auth
        )
        statuses.append(r.status_code)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(statuses) == [201, 409]
    listed = client.get("/v1/webhook-endpoints", headers=auth).json
    assert len(listed) == webhook_endpoints.MAX_ENDPOINTS_PER_CLINIC


def test_one_clinics_endpoints_are_invisible_to_another(
    app: Flask, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Clinic B's admin neither sees clinic A's endpoint nor can delete it (404, as for an
    endpoint that does not exist), and A's endpoint is untouched."""
    client = app.test_client()
    a, b = tenant.auth("admin"), other_tenant.auth("admin")
    r = client.post("/v1/webhook-endpoints", json={"url": "https://93.184.215.14/a"}, headers=a)
    assert r.status_code == 201
    assert client.get("/v1/webhook-endpoints", headers=b).json == []
    gone = client.delete(f"/v1/webhook-endpoints/{r.json['id']}", headers=b)
    assert gone.status_code == 404
    assert gone.json["field"] == "endpoint_id"
    assert [e["id"] for e in client.get("/v1/webhook-endpoints", headers=a).json] == [r.json["id"]]
