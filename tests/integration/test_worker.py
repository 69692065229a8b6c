"""The outbox worker end to end: alerts raised through the API reach a real webhook receiver on
loopback (signatures verified with standardwebhooks) and a real SMTP server (aiosmtpd);
failures are retried under the same id; two workers never double-send; a worker killed with
SIGKILL mid-batch loses nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, update
from standardwebhooks.webhooks import Webhook

from fit_service.adapters.email import SmtpEmailSender, SmtpSettings
from fit_service.adapters.orm import OutboxMessage, WebhookEndpoint
from fit_service.adapters.webhooks import HttpWebhookSender, RecordingWebhookSender
from fit_service.domain.delivery import DeliveryResult
from fit_service.services.delivery_worker import DeliveryWorker
from tests.conftest import Tenant, session_payload

ROOT = Path(__file__).resolve().parents[2]
TODAY = datetime.now(UTC).date()


# --------------------------------------------------------------------------- receivers
@dataclass
class Hook:
    webhook_id: str
    payload: dict[str, Any] | None  # None when the signature did not verify


@dataclass
class ReceiverState:
    secret: str = ""
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    block_first: bool = False
    blocked: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    hooks: list[Hook] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        return [h.webhook_id for h in self.hooks]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            payload = Webhook(state.secret).verify(body, dict(self.headers.items()))
        except Exception:  # noqa: BLE001 - any verification failure is recorded as None
            payload = None
        with state.lock:
            state.hooks.append(Hook(self.headers["webhook-id"], payload))
            first = len(state.hooks) == 1
            status = state.statuses.pop(0) if state.statuses else 200
        if first and state.block_first:
            state.blocked.set()
            state.release.wait(30)  # the worker is killed while we hold its request
        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ReceiverState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@pytest.fixture
def receiver() -> Iterator[tuple[ReceiverState, str]]:
    state = ReceiverState()
    server = _Server(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/fit-hooks"
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.original_content)))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


# --------------------------------------------------------------------------- helpers
def register(client: FlaskClient, tenant: Tenant, url: str) -> str:
    r = client.post("/v1/webhook-endpoints", json={"url": url}, headers=tenant.auth("admin"))
    assert r.status_code == 201, r.json
    return r.json["secret"]  # type: ignore[no-any-return]


def raise_alerts(client: FlaskClient, tenant: Tenant, clients: int) -> None:
    """One early_low_alliance alert per client, through the batch endpoint."""
    srs_ok = {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5}
    srs_low = {"relationship": 6.0, "goals": 9.0, "approach": 9.0, "overall": 9.0}
    sessions = [
        session_payload(
            ehr_session_id=f"C{c}-{n}",
            client_id=f"C-{c}",
            date=(TODAY - timedelta(weeks=3 - n)).isoformat(),
            ratings=[{"instrument": "srs", "items": items}],
        )
        for c in range(clients)
        for n, items in ((1, srs_ok), (2, srs_low))
    ]
    r = client.post("/v1/sessions/batch", json={"sessions": sessions}, headers=tenant.auth())
    assert r.json["created"] == 2 * clients, r.json


def outbox_status(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ).all()
    return dict(rows)  # type: ignore[arg-type]


def worker(app: Flask, clock: Any = None, **kw: Any) -> DeliveryWorker:
    wiring = app.extensions["fit"]
    return DeliveryWorker(
        wiring.session_factory,
        kw.pop("webhooks", HttpWebhookSender(allow_private=True, timeout=5)),
        kw.pop("email", None),
        base_url="https://fit.clinic.example",
        **({"clock": clock} if clock else {}),
        **kw,
    )


# --------------------------------------------------------------------------- tests
def test_webhook_is_signed_and_a_failure_is_retried_under_the_same_id(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    receiver: tuple[ReceiverState, str],
) -> None:
    """An alert's webhook reaches the receiver and verifies; a 500 is retried after the backoff
    under the same webhook-id with the same payload; the endpoint is failing in between."""
    state, url = receiver
    state.secret = register(client, tenant, url)
    state.statuses = [500]
    raise_alerts(client, tenant, 1)
    now = datetime.now(UTC)
    w = worker(app, clock=lambda: now)

    assert w.run_once() == 1
    assert outbox_status(engine) == {"pending": 1}
    assert w.run_once() == 0  # not due yet: the first backoff is about 5 s
    with engine.connect() as conn:
        assert conn.scalar(select(WebhookEndpoint.failing_since)) is not None
        row = conn.execute(select(OutboxMessage)).one()
    assert row.attempts == 1
    assert row.last_error == "http 500"
    assert timedelta(seconds=4) < row.next_attempt_at - now <= timedelta(seconds=5)

    now += timedelta(seconds=6)
    assert w.run_once() == 1
    assert outbox_status(engine) == {"sent": 1}
    first, second = state.hooks
    assert first.webhook_id == second.webhook_id == row.message_id
    assert first.payload == second.payload
    assert second.payload is not None
    assert second.payload["type"] == "alert.opened"
    assert set(second.payload["data"]) == {"alert_id", "kind", "severity"}
    alert = client.get("/v1/alerts", headers=tenant.auth("clinician")).json["items"][0]
    assert second.payload["data"]["alert_id"] == alert["id"]
    with engine.connect() as conn:
        health = conn.execute(
            select(WebhookEndpoint.failing_since, WebhookEndpoint.last_success_at)
        ).one()
    assert health.failing_since is None
    assert health.last_success_at is not None


def test_endpoint_is_marked_failing_after_the_clinics_period(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    receiver: tuple[ReceiverState, str],
) -> None:
    """After a failure the endpoint is not failing under the 24 h default, and is failing once
    the clinic's failing_after_hours (here the shortest, one minute) has passed without a
    success."""
    state, url = receiver
    state.secret = register(client, tenant, url)
    state.statuses = [503]
    raise_alerts(client, tenant, 1)
    worker(app).run_once()
    auth = tenant.auth("admin")
    assert client.get("/v1/webhook-endpoints", headers=auth).json[0]["failing"] is False
    r = client.put("/v1/settings", json={"delivery": {"failing_after_hours": 1 / 60}}, headers=auth)
    assert r.status_code == 200, r.json
    assert client.get("/v1/webhook-endpoints", headers=auth).json[0]["failing"] is False
    with engine.begin() as conn:  # the failure began 61 s ago
        since = conn.scalar(select(WebhookEndpoint.failing_since))
        assert since is not None
        conn.execute(update(WebhookEndpoint).values(failing_since=since - timedelta(seconds=61)))
    (endpoint,) = client.get("/v1/webhook-endpoints", headers=auth).json
    assert endpoint["failing"] is True
    assert endpoint["failing_since"] is not None


def test_alert_email_reaches_the_mailbox_with_a_reference_only(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    mailbox: tuple[Mailbox, int],
) -> None:
    """The clinician's e-mail arrives over SMTP with the alert reference and link; no client
    id, scores or alert kind."""
    box, port = mailbox
    client.post(
        "/v1/sessions",
        json=session_payload(
            ehr_session_id="warm", date=(TODAY - timedelta(weeks=3)).isoformat(), client_id="X"
        ),
        headers=tenant.auth(),
    )
    r = client.put(
        "/v1/clinicians/T-1/email",
        json={"email": "t1@clinic.example"},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 200
    raise_alerts(client, tenant, 1)
    email = SmtpEmailSender(SmtpSettings(host="127.0.0.1", port=port, timeout=5))
    w = worker(app, email=email)
    assert w.drain() == 1
    assert outbox_status(engine) == {"sent": 1}
    ((rcpt, message),) = box.messages
    assert rcpt == ["t1@clinic.example"]
    alert = client.get("/v1/alerts", headers=tenant.auth("clinician")).json["items"][0]
    text = message.get_payload(decode=True).decode()
    assert alert["id"] in text
    assert f"https://fit.clinic.example/alerts/{alert['id']}" in text
    for private in ("C-0", "early_low_alliance", "bond", "T-1"):
        assert private not in text
        assert private not in message["Subject"]


def test_an_address_the_relay_can_never_take_is_dead_after_one_attempt(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
) -> None:
    """A non-ASCII address (accepted when it was set) to a relay without SMTPUTF8 is dead at
    its first attempt, with the reason stored: not retried for two days."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port(), enable_SMTPUTF8=False)
    controller.start()
    try:
        _dead_at_first_attempt(app, client, tenant, engine, controller.port)
    finally:
        controller.stop()
    assert box.messages == []


def _dead_at_first_attempt(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine, port: int
) -> None:
    r = client.put(
        "/v1/clinicians/T-1/email",
        json={"email": "jürgen@clinic.example"},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 200, r.json
    raise_alerts(client, tenant, 1)
    email = SmtpEmailSender(SmtpSettings(host="127.0.0.1", port=port, timeout=5))
    w = worker(app, email=email)
    assert w.drain() == 1
    assert outbox_status(engine) == {"dead": 1}
    with engine.connect() as conn:
        attempts, error = conn.execute(
            select(OutboxMessage.attempts, OutboxMessage.last_error)
        ).one()
    assert (attempts, error) == (1, "recipient needs SMTPUTF8, which the relay does not offer")


def test_two_workers_at_once_send_every_message_exactly_once(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    receiver: tuple[ReceiverState, str],
) -> None:
    """Two workers draining 30 deliveries concurrently (SKIP LOCKED + lease on PostgreSQL,
    BEGIN IMMEDIATE on SQLite) deliver each exactly once."""
    state, url = receiver
    state.secret = register(client, tenant, url)
    raise_alerts(client, tenant, 30)
    workers = [worker(app, batch=3), worker(app, batch=3)]
    threads = [threading.Thread(target=w.drain) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outbox_status(engine) == {"sent": 30}
    assert len(state.ids()) == 30
    assert len(set(state.ids())) == 30
    assert all(h.payload is not None for h in state.hooks)
    assert all(w.stats.claimed > 0 for w in workers)


def test_alerts_queued_while_the_worker_was_down_for_days_are_not_sent(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A worker back three days after an alert was queued (never attempted) and two days and
    a minute after another one's first failure sends neither: both are dead as "expired",
    with no attempt counted and the endpoint's health untouched. A row just inside the limit
    is still sent."""
    register(client, tenant, "http://127.0.0.1:9/hook")
    raise_alerts(client, tenant, 3)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        ids = list(conn.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))
        conn.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == ids[0])
            .values(created_at=now - timedelta(days=3), next_attempt_at=now - timedelta(days=3))
        )
        conn.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == ids[1])
            .values(
                attempts=1,
                first_failed_at=now - timedelta(hours=48, minutes=1),
                next_attempt_at=now - timedelta(hours=48),
            )
        )
        conn.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == ids[2])
            .values(
                attempts=1,
                first_failed_at=now - timedelta(hours=47),
                next_attempt_at=now - timedelta(hours=46),
            )
        )
    sender = RecordingWebhookSender()
    w = worker(app, clock=lambda: now, webhooks=sender)

    assert w.run_once() == 3
    with engine.connect() as conn:
        rows = conn.execute(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        health = conn.execute(select(WebhookEndpoint.failing_since)).scalar_one()
    assert [s.message.id for s in sender.sent] == [rows[2].message_id]
    assert [(r.status, r.last_error, r.attempts) for r in rows] == [
        ("dead", "expired", 0),
        ("dead", "expired", 1),
        ("sent", None, 2),
    ]
    assert health is None
    assert (w.stats.dead, w.stats.sent) == (2, 1)


class DeletingSender:
    """Records sends; during the first one the clinic's admin deletes the endpoint."""

    def __init__(self, client: FlaskClient, tenant: Tenant) -> None:
        self.client, self.tenant = client, tenant
        self.sent = RecordingWebhookSender()

    def send(self, endpoint: Any, message: Any) -> DeliveryResult:
        if not self.sent.sent:
            auth = self.tenant.auth("admin")
            (hook,) = self.client.get("/v1/webhook-endpoints", headers=auth).json
            r = self.client.delete(f"/v1/webhook-endpoints/{hook['id']}", headers=auth)
            assert r.status_code == 204
        return self.sent.send(endpoint, message)


def test_an_endpoint_deleted_mid_batch_gets_nothing_more(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """The admin deletes the endpoint while the worker is sending the first of three claimed
    rows: the other two (dropped by the deletion) are not sent to it any more."""
    register(client, tenant, "http://127.0.0.1:9/hook")
    raise_alerts(client, tenant, 3)
    sender = DeletingSender(client, tenant)
    w = worker(app, webhooks=sender)

    assert w.run_once() == 3
    assert len(sender.sent.sent) == 1
    assert outbox_status(engine) == {"dead": 3}


def test_a_failure_recorded_by_a_worker_whose_clock_is_behind_is_still_recorded(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Workers on two hosts: the first failure was stamped by a clock 10 s ahead of this
    worker's. The second failure is recorded and retried (measured from this worker's now),
    instead of raising out of the batch and leaving the row to loop on its lease."""
    register(client, tenant, "http://127.0.0.1:9/hook")
    raise_alerts(client, tenant, 1)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            update(OutboxMessage).values(
                attempts=1,
                first_failed_at=now + timedelta(seconds=10),
                next_attempt_at=now - timedelta(seconds=1),
            )
        )
    sender = RecordingWebhookSender([DeliveryResult.failed("http 503")])
    w = worker(app, clock=lambda: now, webhooks=sender)

    assert w.run_once() == 1
    with engine.connect() as conn:
        row = conn.execute(select(OutboxMessage)).one()
    assert (row.status, row.attempts, row.last_error) == ("pending", 2, "http 503")
    assert row.next_attempt_at > now
    assert w.stats.retried == 1


def test_an_unreachable_endpoint_is_tried_once_per_batch_not_once_per_row(
    app: Flask, client: FlaskClient, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    """Clinic A's endpoint times out and has five alerts queued before clinic B's one: A's
    endpoint is tried once, its four other rows are deferred untried to that row's retry time,
    and B's alert goes out in the same batch instead of after five timeouts. When A's endpoint
    answers again, its backlog is delivered."""
    register(client, tenant, "http://127.0.0.1:9/clinic-a")
    raise_alerts(client, tenant, 5)
    register(client, other_tenant, "http://127.0.0.1:9/clinic-b")
    raise_alerts(client, other_tenant, 1)
    sender = RecordingWebhookSender([DeliveryResult.failed("timeout")])
    now = datetime.now(UTC)
    clock = [now]
    w = worker(app, clock=lambda: clock[0], webhooks=sender)

    assert w.run_once() == 6
    assert [s.endpoint.url.rsplit("/", 1)[1] for s in sender.sent] == ["clinic-a", "clinic-b"]
    assert (w.stats.retried, w.stats.deferred, w.stats.sent) == (1, 4, 1)
    with engine.connect() as conn:
        pending = conn.execute(
            select(OutboxMessage.attempts, OutboxMessage.next_attempt_at).where(
                OutboxMessage.status == "pending"
            )
        ).all()
    assert sorted(p.attempts for p in pending) == [0, 0, 0, 0, 1]
    assert len({p.next_attempt_at for p in pending}) == 1  # all due with the failed row
    assert pending[0].next_attempt_at > now

    clock[0] = pending[0].next_attempt_at + timedelta(seconds=1)
    assert w.run_once() == 5
    assert outbox_status(engine) == {"sent": 6}


class SlowSender:
    """A webhook sender whose every send takes ``seconds`` on the test clock; it notes how much
    of the row's lease (as stored) was left when the send began, and can run ``during_first``
    inside the first send (another worker taking over)."""

    def __init__(self, engine: Engine, clock: list[datetime], seconds: float) -> None:
        self.engine, self.clock, self.seconds = engine, clock, seconds
        self.sent = RecordingWebhookSender()
        self.lease_left: list[timedelta] = []
        self.during_first: Any = None

    def send(self, endpoint: Any, message: Any) -> DeliveryResult:
        result = self.sent.send(endpoint, message)
        with self.engine.connect() as conn:
            locked_until = conn.scalar(
                select(OutboxMessage.locked_until).where(OutboxMessage.message_id == message.id)
            )
        if locked_until is None:  # not leased at all (any more): no time left
            self.lease_left.append(timedelta.min)
        else:
            aware = locked_until if locked_until.tzinfo else locked_until.replace(tzinfo=UTC)
            self.lease_left.append(aware - self.clock[0])
        self.clock[0] += timedelta(seconds=self.seconds)
        if self.during_first is not None and len(self.lease_left) == 1:
            self.during_first()
        return result


def test_a_lease_too_short_for_the_next_send_is_renewed_first(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Sends of 50 s under a 120 s lease (max_send 60 s by default): the third row would be
    sent with 20 s left, so its lease is renewed first; every send starts with at least the
    send's time left on its lease, and all are delivered once."""
    register(client, tenant, "http://127.0.0.1:9/hook")
    raise_alerts(client, tenant, 3)
    clock = [datetime.now(UTC)]
    sender = SlowSender(engine, clock, seconds=50)
    w = worker(app, clock=lambda: clock[0], webhooks=sender, lease=timedelta(seconds=120))

    assert w.run_once() == 3
    assert len(sender.sent.sent) == 3
    assert all(left >= timedelta(seconds=50) for left in sender.lease_left), sender.lease_left
    assert w.stats.renewed == 1
    assert outbox_status(engine) == {"sent": 3}


def test_a_row_whose_lease_was_taken_over_is_never_sent_after_expiry(
    app: Flask, client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """The first send outlives the whole batch's lease and a second worker claims the rows
    meanwhile: the first worker sends nothing more (the rows are the other worker's), and
    every message is delivered once in all."""
    register(client, tenant, "http://127.0.0.1:9/hook")
    raise_alerts(client, tenant, 3)
    clock = [datetime.now(UTC)]
    slow = SlowSender(engine, clock, seconds=400)
    first = worker(app, clock=lambda: clock[0], webhooks=slow)
    fast = RecordingWebhookSender()
    second = worker(app, clock=lambda: clock[0], webhooks=fast)
    slow.during_first = second.run_once

    assert first.run_once() == 3
    assert len(slow.sent.sent) == 1  # only the row it started while its lease held
    assert slow.lease_left == [timedelta(seconds=300)]
    assert first.stats.lost == 2
    # The second worker took all three over (the first row again: at least once, same id).
    assert second.stats.claimed == 3
    assert len({s.message.id for s in fast.sent}) == 3
    assert slow.sent.sent[0].message.id in {s.message.id for s in fast.sent}
    assert outbox_status(engine) == {"sent": 3}


def test_max_send_must_be_shorter_than_the_lease(app: Flask) -> None:
    """A send bound as long as the lease could never be honoured: refused at start."""
    with pytest.raises(ValueError, match="max_send"):
        worker(app, lease=timedelta(seconds=60), max_send=timedelta(seconds=60))
    assert worker(app, lease=timedelta(seconds=100)).max_send == timedelta(seconds=50)


def _worker_process(database_url: str, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIT_")}
    env.update(
        FIT_DATABASE_URL=database_url,
        FIT_INSTANCE_PATH=str(tmp_path / "worker-instance"),
        FIT_WEBHOOKS_ALLOW_PRIVATE="true",
        PYTHONPATH=str(ROOT),
    )
    flask = Path(sys.executable).with_name("flask")
    return subprocess.Popen(
        [str(flask), "--app", "wsgi", "fit", "worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_worker_killed_mid_batch_loses_nothing(
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    database_url: str,
    tmp_path: Path,
    receiver: tuple[ReceiverState, str],
) -> None:
    """A real `flask fit worker` is SIGKILLed while the receiver holds its first request; after
    the lease a restarted worker delivers everything — the interrupted one again, same id."""
    state, url = receiver
    state.secret = register(client, tenant, url)
    state.block_first = True
    raise_alerts(client, tenant, 6)

    proc = _worker_process(database_url, tmp_path, "--batch", "4")
    try:
        assert state.blocked.wait(30), proc.stderr.read1().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)  # reap it and close its pipes
    state.release.set()
    assert outbox_status(engine) == {"pending": 6}  # nothing was recorded: all still due
    interrupted = state.ids()[0]

    # The dead worker's batch stays leased (no lease can be shorter than the longest send, so
    # waiting for one to run out would take minutes): its lease is moved into the past instead.
    now = datetime.now(UTC)
    with engine.begin() as conn:
        leases = list(
            conn.scalars(
                select(OutboxMessage.locked_until).where(OutboxMessage.locked_until.is_not(None))
            )
        )
        conn.execute(
            update(OutboxMessage)
            .where(OutboxMessage.locked_until.is_not(None))
            .values(locked_until=now - timedelta(seconds=1))
        )
    assert len(leases) == 4
    rerun = _worker_process(database_url, tmp_path, "--once")
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err.decode()
    assert b"sent 6" in out

    assert outbox_status(engine) == {"sent": 6}
    with engine.connect() as conn:
        expected = set(conn.scalars(select(OutboxMessage.message_id)))
    assert set(state.ids()) == expected
    assert state.ids().count(interrupted) == 2  # at least once: the cut-off one came again
    assert len(state.ids()) == 7
    assert all(h.payload is not None for h in state.hooks)
