"""Findings of the delivery security review for webhooks, end to end: a receiver's TLS
certificate failure is retried (not dead at once), and registration refuses without naming
addresses, or telling a private name from one that does not exist, and refuses port 0.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from fit_service.adapters import webhooks
from fit_service.adapters.orm import OutboxMessage
from fit_service.adapters.webhooks import HttpWebhookSender
from fit_service.app import create_app
from fit_service.config import Settings
from fit_service.domain.delivery import WebhookMessage
from tests.conftest import Tenant
from tests.integration.test_worker import (
    outbox_status,
    raise_alerts,
    register,
    worker,
)
from tests.tls import Certificate, self_signed


# --------------------------------------------------------------------------- TLS receiver
@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(
        tmp_path_factory.mktemp("tls"), "hooks.example", "DNS:hooks.example", "IP:127.0.0.1"
    )


@dataclass
class Received:
    ids: list[str] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _TlsServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.ids.append(self.headers["webhook-id"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received = Received()
        self.context = context

    def get_request(self) -> tuple[socket.socket, Any]:
        # Handshake in the handler's thread (on its first read), not in the accept loop.
        sock, address = super().get_request()
        return self.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The client refusing our certificate ends the handshake: expected, not news."""


@pytest.fixture
def tls_receiver(certificate: Certificate) -> Iterator[tuple[Received, int]]:
    server = _TlsServer(certificate.server)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.received, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


def _message() -> WebhookMessage:
    return WebhookMessage("msg_1", '{"a":1}')


@pytest.mark.parametrize("host", ["hooks.example", "wrong-name.example"])
def test_a_certificate_that_does_not_verify_is_retried_not_dead(
    certificate: Certificate, tls_receiver: tuple[Received, int], host: str
) -> None:
    """ssl.SSLCertVerificationError is an OSError and a ValueError; it was judged a request
    that can never be written (permanent), so a receiver whose certificate was briefly wrong
    (self-signed, expired, another name) lost every alert sent meanwhile. It is retryable; the
    same receiver with a certificate the sender trusts is delivered."""
    received, port = tls_receiver
    url = f"https://{host}:{port}/hook"
    resolver = lambda _host, _port: ["127.0.0.1"]  # noqa: E731
    endpoint = webhooks.WebhookEndpoint(url, webhooks.generate_secret())

    untrusted = HttpWebhookSender(allow_private=True, resolver=resolver, timeout=5)
    result = untrusted.send(endpoint, _message())
    assert (result.delivered, result.reason, result.retryable) == (
        False,
        "SSLCertVerificationError",
        True,
    )
    assert received.ids == []

    trusting = HttpWebhookSender(
        allow_private=True, resolver=resolver, timeout=5, ssl_context=certificate.client
    )
    retried = trusting.send(endpoint, _message())
    if host == "hooks.example":
        assert retried.delivered
        assert received.ids == ["msg_1"]
    else:  # the certificate names another host: still a failure, still retryable
        assert (retried.delivered, retried.retryable) == (False, True)


def test_the_worker_retries_a_delivery_whose_certificate_failed(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    certificate: Certificate,
    tls_receiver: tuple[Received, int],
) -> None:
    """Through the worker: the certificate failure leaves the row pending with its retry time,
    not dead; once the certificate verifies, the retry delivers it under the same id."""
    received, port = tls_receiver
    register(client, tenant, f"https://127.0.0.1:{port}/hook")
    raise_alerts(client, tenant, 1)
    clock = [datetime.now(UTC)]
    first = worker(app, clock=lambda: clock[0], webhooks=HttpWebhookSender(allow_private=True))

    assert first.run_once() == 1
    assert (first.stats.retried, first.stats.dead) == (1, 0)
    with engine.connect() as conn:
        row = conn.execute(select(OutboxMessage)).one()
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "SSLCertVerificationError")
    assert received.ids == []

    clock[0] = row.next_attempt_at + timedelta(seconds=1)
    fixed = HttpWebhookSender(allow_private=True, ssl_context=certificate.client)
    assert worker(app, clock=lambda: clock[0], webhooks=fixed).run_once() == 1
    assert outbox_status(engine) == {"sent": 1}
    assert received.ids == [row.message_id]


# --------------------------------------------------------------------------- registration
_TABLE = {
    "intranet.example": ["10.0.0.1"],
    "mixed.example": ["93.184.215.14", "10.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "public.example": ["93.184.215.14"],
}


def _fake_getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
    if host not in _TABLE:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in _TABLE[host]]


@pytest.fixture
def strict_client(settings: Settings, app: Flask) -> Iterator[FlaskClient]:
    """A client of an app that refuses private addresses (the production default), on the
    same database as ``app`` (so ``tenant``'s keys work)."""
    strict = create_app(settings.with_overrides(webhooks_allow_private=False))
    try:
        yield strict.test_client()
    finally:
        strict.extensions["fit"].engine.dispose()


def test_registration_refusals_name_no_address_and_hide_whether_a_name_exists(
    strict_client: FlaskClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin key could map the service's internal DNS: the 422 named the address a host
    resolved to, and "does not resolve" differed from "resolves privately". Every refused
    host now gets one answer, naming no address; a public name is still registered."""
    monkeypatch.setattr(socket, "getaddrinfo", _fake_getaddrinfo)
    auth = tenant.auth("admin")
    answers = set()
    for host in ["intranet.example", "mixed.example", "metadata.example", "nowhere.example"]:
        r = strict_client.post(
            "/v1/webhook-endpoints", json={"url": f"https://{host}/hook"}, headers=auth
        )
        assert r.status_code == 422, (host, r.json)
        assert r.mimetype == "application/problem+json"
        for text in ("10.0.0.1", "169.254", "private", "link-local", "resolve ("):
            assert text not in r.get_data(as_text=True), (host, r.json)
        answers.add((r.json["rule"], r.json["detail"], r.json["field"]))
    assert len(answers) == 1, answers
    ok = strict_client.post(
        "/v1/webhook-endpoints", json={"url": "https://public.example/hook"}, headers=auth
    )
    assert ok.status_code == 201, ok.json


def test_a_send_refused_at_send_time_leaves_no_address_in_the_outbox_or_the_log(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A name registered while it pointed elsewhere now resolves to a private address: the
    row's last_error and the worker's log say so without the address; it is retried."""
    monkeypatch.setattr(socket, "getaddrinfo", _fake_getaddrinfo)
    register(client, tenant, "https://intranet.example/hook")  # test app: private allowed
    raise_alerts(client, tenant, 1)
    w = worker(app, webhooks=HttpWebhookSender(allow_private=False))
    with caplog.at_level(logging.DEBUG):
        assert w.run_once() == 1
    with engine.connect() as conn:
        status, error = conn.execute(select(OutboxMessage.status, OutboxMessage.last_error)).one()
    assert status == "pending"
    assert error.startswith("refused: ")
    for text in ("10.0.0.1", "private"):
        assert text not in error
        assert text not in caplog.text


def test_port_zero_is_refused_at_registration(client: FlaskClient, tenant: Tenant) -> None:
    """http://host:0/ was registered (201) and then retried for two days: nothing listens on
    port 0. It is refused as a malformed URL, naming the field and the rule."""
    r = client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://93.184.215.14:0/hook"},
        headers=tenant.auth("admin"),
    )
    assert r.status_code == 422, r.json
    assert r.mimetype == "application/problem+json"
    assert (r.json["field"], r.json["rule"]) == ("url", "invalid_webhook_url")
    assert "port" in r.json["detail"]
