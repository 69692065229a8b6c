"""Webhook delivery against a real HTTP server on 127.0.0.1.

The receiver is on loopback, so every sender here passes ``allow_private=True`` except the ones
that prove the refusal.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook

from fit_service.adapters import webhooks
from fit_service.adapters.webhooks import (
    USER_AGENT,
    CheckedUrl,
    HttpWebhookSender,
    UnsafeWebhookUrl,
    WebhookEndpoint,
    check_webhook_url,
    generate_secret,
)
from fit_service.domain.delivery import (
    RetryPolicy,
    WebhookMessage,
    build_alert_message,
    next_attempt_at,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ReceiverState:
    """What the test server answers and what it has seen."""

    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    delay: float = 0.0  # seconds to stall before answering (the timeout case)
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        state.requests.append(Received(self.path, dict(self.headers.items()), body))
        if state.delay:
            # Stall past the client's timeout; teardown releases us so the thread ends promptly.
            state.release.wait(state.delay)
        status = state.statuses.pop(0) if state.statuses else 200
        try:
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:  # the client gave up (timeout case): nothing to answer
            pass

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ReceiverState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@dataclass
class Receiver:
    state: ReceiverState
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/fit?clinic=c1"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = ReceiverState()
    server = _Server(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Receiver(state, server.server_address[1])
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


@pytest.fixture
def secret() -> str:
    return generate_secret()


@pytest.fixture
def message() -> WebhookMessage:
    return build_alert_message(
        clinic_id="c1",
        event_type="alert.opened",
        alert_id="a1b2c3",
        kind="early_low_alliance",
        severity="high",
        occurred_at=T0,
    )


def test_delivered_message_is_signed_and_verifies(
    receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    """A 2xx is delivered, and the receiver verifies the request with standardwebhooks."""
    result = HttpWebhookSender(allow_private=True).send(
        WebhookEndpoint(receiver.url, secret), message
    )
    assert result.delivered
    assert result.status_code == 200
    (req,) = receiver.state.requests
    assert req.path == "/hooks/fit?clinic=c1"
    assert req.headers["User-Agent"] == USER_AGENT
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["webhook-id"] == message.id
    payload = Webhook(secret).verify(req.body, req.headers)
    assert payload == json.loads(message.body)
    with pytest.raises(Exception, match="signature"):
        Webhook(generate_secret()).verify(req.body, req.headers)


def test_failure_then_retry_reuses_id_and_body(
    receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    """A 500 fails (retryable, short reason); the retry carries the same id and identical body,
    with a fresh timestamp and a signature that still verifies."""
    receiver.state.statuses = [500]
    clock = iter([datetime.now(UTC) - timedelta(seconds=30), datetime.now(UTC)])
    sender = HttpWebhookSender(allow_private=True, clock=lambda: next(clock))
    endpoint = WebhookEndpoint(receiver.url, secret)

    first = sender.send(endpoint, message)
    assert not first.delivered
    assert (first.reason, first.status_code, first.retryable) == ("http 500", 500, True)
    assert next_attempt_at(1, T0, T0, RetryPolicy()) == T0 + timedelta(seconds=5)

    second = sender.send(endpoint, message)
    assert second.delivered
    a, b = receiver.state.requests
    assert a.headers["webhook-id"] == b.headers["webhook-id"] == message.id
    assert a.body == b.body
    assert a.headers["webhook-timestamp"] != b.headers["webhook-timestamp"]
    for req in (a, b):
        Webhook(secret).verify(req.body, req.headers)


def test_slow_receiver_times_out(receiver: Receiver, secret: str, message: WebhookMessage) -> None:
    """A receiver that does not answer within the timeout is a failed, retryable attempt."""
    receiver.state.delay = 2.0
    sender = HttpWebhookSender(allow_private=True, timeout=0.3)
    started = time.monotonic()
    result = sender.send(WebhookEndpoint(receiver.url, secret), message)
    assert time.monotonic() - started < 1.5
    assert (result.delivered, result.reason, result.retryable) == (False, "timeout", True)


def test_redirect_is_a_failure_and_not_followed(
    receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    """A 302 counts as failed and the Location is never requested (it could be private)."""
    receiver.state.statuses = [302]
    result = HttpWebhookSender(allow_private=True).send(
        WebhookEndpoint(receiver.url, secret), message
    )
    assert not result.delivered
    assert result.status_code == 302
    assert result.reason.startswith("http 302")
    assert [r.path for r in receiver.state.requests] == ["/hooks/fit?clinic=c1"]


def test_connection_refused_is_a_short_retryable_failure(
    secret: str, message: WebhookMessage
) -> None:
    """Nobody listening gives the exception class as the reason, retryable."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    result = HttpWebhookSender(allow_private=True, timeout=1).send(
        WebhookEndpoint(f"http://127.0.0.1:{port}/", secret), message
    )
    assert (result.delivered, result.reason, result.retryable) == (
        False,
        "ConnectionRefusedError",
        True,
    )


def test_loopback_is_refused_without_allow_private(
    receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    """The default sender never connects to loopback: no request reaches the server."""
    result = HttpWebhookSender().send(WebhookEndpoint(receiver.url, secret), message)
    assert not result.delivered
    assert result.reason.startswith("refused:")
    assert receiver.state.requests == []


def test_send_time_check_catches_dns_rebinding(
    receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    """A name that was public at registration but now resolves to loopback is refused."""
    answers = {"hook.example": ["93.184.215.14"]}

    def resolver(host: str, port: int) -> list[str]:
        return answers[host]

    url = f"http://hook.example:{receiver.port}/hooks"
    check_webhook_url(url, resolver=resolver)  # registration: fine
    answers["hook.example"] = ["127.0.0.1"]  # the attacker flips the DNS record
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url(url, resolver=resolver)
    result = HttpWebhookSender(resolver=resolver).send(WebhookEndpoint(url, secret), message)
    assert not result.delivered
    assert receiver.state.requests == []


def test_connection_goes_to_the_checked_address_with_the_name_as_host(
    receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    """The sender connects to the address it checked (no second lookup) and sends the name."""

    def resolver(host: str, port: int) -> list[str]:
        assert host == "hook.invalid"  # a name real DNS can never answer
        return ["127.0.0.1"]

    url = f"http://hook.invalid:{receiver.port}/hooks"
    result = HttpWebhookSender(allow_private=True, resolver=resolver).send(
        WebhookEndpoint(url, secret), message
    )
    assert result.delivered
    (req,) = receiver.state.requests
    assert req.headers["Host"] == f"hook.invalid:{receiver.port}"
    Webhook(secret).verify(req.body, req.headers)


@pytest.mark.parametrize("path", ["/café", "/a b", "/a\tb"])
def test_a_stored_url_that_cannot_be_sent_is_a_permanent_failure(
    secret: str, message: WebhookMessage, path: str
) -> None:
    """send() never raises: a URL stored before registration refused such characters fails
    for good (no two days of retries), rather than with UnicodeEncodeError or InvalidURL."""
    result = HttpWebhookSender(allow_private=True, timeout=1).send(
        WebhookEndpoint(f"http://127.0.0.1:9{path}", secret), message
    )
    assert (result.delivered, result.retryable) == (False, False)


def test_a_request_http_client_cannot_write_is_a_permanent_failure(
    monkeypatch: pytest.MonkeyPatch, secret: str, message: WebhookMessage
) -> None:
    """Should a target ever pass the checks that http.client cannot write, send() still
    answers (not retryable) instead of raising."""
    unsendable = CheckedUrl("http", "127.0.0.1", 9, "/café", ("127.0.0.1",))
    monkeypatch.setattr(webhooks, "check_webhook_url", lambda *_a, **_k: unsendable)
    result = HttpWebhookSender(allow_private=True, timeout=1).send(
        WebhookEndpoint("http://127.0.0.1:9/", secret), message
    )
    assert (result.delivered, result.reason, result.retryable) == (
        False,
        "UnicodeEncodeError",
        False,
    )


def test_an_international_host_name_is_still_accepted() -> None:
    """Non-ASCII is refused outside the host only: a host name goes out in its IDNA form."""
    checked = check_webhook_url(
        "https://bücher.example/hook", resolver=lambda host, port: ["93.184.215.14"]
    )
    assert (checked.host, checked.target) == ("xn--bcher-kva.example", "/hook")


def _dripping_receiver(first: bytes, drip: bytes) -> Iterator[tuple[int, threading.Event]]:
    """A receiver that sends ``first`` at once, then ``drip`` every 0.2 s for up to 10 s: each
    read is quick, the answer as a whole never ends."""
    stop = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(first)
                for _ in range(50):
                    if stop.wait(0.2):
                        return
                    conn.sendall(drip)
                conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")
            except OSError:  # the sender gave up and closed: done
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], stop
    finally:
        stop.set()
        server.close()
        thread.join(timeout=2)


@pytest.mark.parametrize(
    ("first", "drip", "outcome"),
    [
        # the status line never ends: no answer at all
        (b"HTTP/1.1", b" ", (False, "timeout", True)),
        # "200 OK" came, then headers without end: the receiver's answer is its status
        (b"HTTP/1.1 200 OK\r\n", b"X-Drip: 1\r\n", (True, "delivered", False)),
    ],
)
def test_a_receiver_dripping_its_answer_is_cut_off_at_the_deadline(
    secret: str,
    message: WebhookMessage,
    first: bytes,
    drip: bytes,
    outcome: tuple[bool, str, bool],
) -> None:
    """Every read answers within the 0.5 s timeout, but the attempt as a whole ends at its 1 s
    deadline, with whatever status had arrived by then (a retryable timeout if none), instead
    of lasting as long as the receiver likes (here 10 s)."""
    for port, _ in _dripping_receiver(first, drip):
        sender = HttpWebhookSender(allow_private=True, timeout=0.5, deadline=1.0)
        started = time.monotonic()
        result = sender.send(WebhookEndpoint(f"http://127.0.0.1:{port}/hook", secret), message)
        assert time.monotonic() - started < 2.0
        assert (result.delivered, result.reason, result.retryable) == outcome


def test_the_deadline_leaves_a_prompt_answer_alone(
    receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    """A receiver answering within the deadline is delivered, and no timer outlives the send."""
    sender = HttpWebhookSender(allow_private=True, timeout=0.5, deadline=1.0)
    before = threading.active_count()
    assert sender.send(WebhookEndpoint(receiver.url, secret), message).delivered
    time.sleep(0.1)
    assert threading.active_count() <= before
    time.sleep(1.0)  # past the deadline: the next attempt is unaffected
    assert sender.send(WebhookEndpoint(receiver.url, secret), message).delivered
