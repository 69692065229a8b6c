"""Findings of the delivery security review for the outbox worker: it sends only to the row's
own clinic, and a send never outlives its lease.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update

from fit_service.adapters import webhooks
from fit_service.adapters.email import RecordingEmailSender
from fit_service.adapters.orm import Clinician, OutboxMessage, WebhookEndpoint
from fit_service.adapters.webhooks import RecordingWebhookSender
from fit_service.services.delivery_worker import DeliveryWorker
from tests.conftest import Tenant, session_payload
from tests.integration.test_worker import (
    SlowSender,
    outbox_status,
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


# --------------------------------------------------------------------------- lease and send
#: The longest one webhook send takes with the adapter's defaults: name lookup, then deadline.
LONGEST_SEND = timedelta(seconds=webhooks.DNS_TIMEOUT + webhooks.DEFAULT_DEADLINE)


@pytest.mark.parametrize("lease", [45, 60, 70, 100, 300, 3600])
def test_max_send_is_never_below_the_longest_send(app: Flask, lease: int) -> None:
    """A 60 s lease gave a 30 s max_send (half the lease), shorter than a webhook send can
    take (35 s): a row could start its send with 31 s left, run past its lease, and be sent
    again by another worker."""
    w = worker(app, lease=timedelta(seconds=lease))
    assert LONGEST_SEND < w.max_send < w.lease


@pytest.mark.parametrize(
    ("lease", "max_send"), [(40, None), (30, None), (300, 20), (300, 35), (40, 39)]
)
def test_a_lease_or_max_send_too_short_for_a_send_is_refused(
    app: Flask, lease: int, max_send: int | None
) -> None:
    """With --lease-seconds 40 the worker ran with a 20 s max_send."""
    with pytest.raises(ValueError, match="max_send"):
        DeliveryWorker(
            app.extensions["fit"].session_factory,
            RecordingWebhookSender(),
            None,
            base_url="https://fit.clinic.example",
            lease=timedelta(seconds=lease),
            max_send=timedelta(seconds=max_send) if max_send is not None else None,
        )


def test_every_send_starts_with_the_longest_send_left_on_its_lease(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Sends of 28 s under a 60 s lease: the second row's send began with 32 s of lease left
    (not renewed: more than the 30 s max_send), though a real send may take 35 s. Each send
    now starts with more than the longest send left."""
    register(client, tenant, "http://127.0.0.1:9/hook")
    raise_alerts(client, tenant, 3)
    clock = [datetime.now(UTC)]
    sender = SlowSender(engine, clock, seconds=28)
    w = worker(app, clock=lambda: clock[0], webhooks=sender, lease=timedelta(seconds=60))

    assert w.run_once() == 3
    assert all(left > LONGEST_SEND for left in sender.lease_left), sender.lease_left
    assert outbox_status(engine) == {"sent": 3}


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--lease-seconds", "40"], "--lease-seconds: 40 is not longer than the longest"),
        (
            ["--lease-seconds", "300", "--max-send-seconds", "20"],
            "--max-send-seconds: 20 is shorter than the longest",
        ),
    ],
)
def test_the_worker_command_refuses_a_lease_or_max_send_too_short(
    app: Flask, args: list[str], complaint: str
) -> None:
    out = app.test_cli_runner().invoke(args=["fit", "worker", "--once", *args])
    assert out.exit_code == 2, out.output
    assert complaint in out.output
    assert "claimed" not in out.output  # the worker did not start
