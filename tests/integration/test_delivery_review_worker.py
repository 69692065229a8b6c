"""Findings of the delivery security review for the outbox worker: it sends only to the row's
own clinic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update

from fit_service.adapters.email import RecordingEmailSender
from fit_service.adapters.orm import Clinician, OutboxMessage, WebhookEndpoint
from fit_service.adapters.webhooks import RecordingWebhookSender
from tests.conftest import Tenant, session_payload
from tests.integration.test_worker import (
    raise_alerts,
    register,
    worker,
)

TODAY = datetime.now(UTC).date()


# --------------------------------------------------------------------------- one clinic only
def test_a_row_naming_another_clinics_endpoint_is_not_sent_there(
    app: Flask, client: FlaskClient, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    """Defence in depth: an outbox row of clinic A that names clinic B's endpoint (which no
    service writes; a bug or a hand edit could) is dead unsent, and B's endpoint health is
    untouched."""
    register(client, tenant, "http://127.0.0.1:9/clinic-a")
    register(client, other_tenant, "http://127.0.0.1:9/clinic-b")
    raise_alerts(client, tenant, 1)
    with engine.begin() as conn:
        theirs = conn.scalar(
            select(WebhookEndpoint.id).where(WebhookEndpoint.url.endswith("/clinic-b"))
        )
        conn.execute(update(OutboxMessage).values(destination_id=theirs))
    sender = RecordingWebhookSender()
    w = worker(app, webhooks=sender)

    assert w.run_once() == 1
    assert sender.sent == []
    with engine.connect() as conn:
        row = conn.execute(select(OutboxMessage.status, OutboxMessage.last_error)).one()
        health = conn.execute(
            select(WebhookEndpoint.failing_since, WebhookEndpoint.last_success_at)
        ).all()
    assert tuple(row) == ("dead", "destination belongs to another clinic")
    assert [tuple(h) for h in health] == [(None, None), (None, None)]


def test_a_row_naming_another_clinics_clinician_is_not_mailed(
    app: Flask, client: FlaskClient, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    """The same for e-mail: clinic A's alert row pointing at clinic B's clinician is dead
    unsent, not mailed to B's clinician."""
    warm = (TODAY - timedelta(weeks=3)).isoformat()
    for who, address in ((tenant, "a@clinic-a.example"), (other_tenant, "b@clinic-b.example")):
        client.post(
            "/v1/sessions",
            json=session_payload(ehr_session_id="warm", date=warm, client_id="X"),
            headers=who.auth(),
        )
        r = client.put(
            "/v1/clinicians/T-1/email", json={"email": address}, headers=who.auth("admin")
        )
        assert r.status_code == 200, r.json
    raise_alerts(client, tenant, 1)
    with engine.begin() as conn:
        theirs = conn.scalar(select(Clinician.id).where(Clinician.email == "b@clinic-b.example"))
        conn.execute(update(OutboxMessage).values(destination_id=theirs))
    email = RecordingEmailSender()
    w = worker(app, email=email)

    assert w.drain() == 1
    assert email.sent == []
    with engine.connect() as conn:
        row = conn.execute(select(OutboxMessage.status, OutboxMessage.last_error)).one()
    assert tuple(row) == ("dead", "destination belongs to another clinic")
