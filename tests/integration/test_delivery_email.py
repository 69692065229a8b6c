"""Alert e-mail through a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from fit_service.adapters.email import SmtpEmailSender, SmtpSettings
from fit_service.domain.delivery import ClinicianEmail, build_alert_email, message_id_for
from tests.tls import Certificate, self_signed

ALERT_ID = "a1b2c3"
#: Things that must never appear in an alert e-mail (the kind and the client's data).
CLIENT_DATA = ["Jane", "Doe", "client-42", "31.5", "early_low_alliance", "alliance"]


class Inbox:
    """aiosmtpd handler that keeps every message and can refuse recipients with a given reply."""

    def __init__(self, rcpt_reply: str | None = None) -> None:
        self.rcpt_reply = rcpt_reply
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def messages(self) -> list[Message]:
        return [message_from_bytes(e.original_content or b"") for e in self.envelopes]


def _free_port() -> int:
    # aiosmtpd's Controller cannot listen on port 0 (it connects to its own port to check that
    # it is up), so borrow a free port from the OS.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _authenticate(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"fit", b"s3cret")
    # handled=False makes aiosmtpd send the 535 itself (its default, handled=True, sends nothing).
    return AuthResult(success=ok, handled=False)


def _serve(handler: Inbox, **kwargs: Any) -> Iterator[tuple[Inbox, int]]:
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), **kwargs)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    yield from _serve(Inbox())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"), "127.0.0.1", "IP:127.0.0.1")


@pytest.fixture
def smtp_server_with_auth(certificate: Certificate) -> Iterator[tuple[Inbox, int]]:
    """Offers STARTTLS and takes AUTH only after it (aiosmtpd's default, as real relays do)."""
    yield from _serve(Inbox(), authenticator=_authenticate, tls_context=certificate.server)


def _email(to: str = "dr.smith@clinic.example") -> ClinicianEmail:
    return build_alert_email(
        to=to,
        alert_id=ALERT_ID,
        base_url="https://fit.clinic.example",
        message_id=message_id_for("c1", "alert.opened", ALERT_ID),
    )


def test_alert_email_arrives_with_reference_and_no_client_data(
    smtp_server: tuple[Inbox, int],
) -> None:
    """The message reaches the server with the alert reference and link and no client data."""
    inbox, port = smtp_server
    sender = SmtpEmailSender(
        SmtpSettings(host="127.0.0.1", port=port, from_address="fit@c.example")
    )
    result = sender.send(_email())
    assert result.delivered
    (envelope,) = inbox.envelopes
    assert envelope.mail_from == "fit@c.example"
    assert envelope.rcpt_tos == ["dr.smith@clinic.example"]
    (msg,) = inbox.messages()
    assert msg["Subject"] == "fit-service: new alert needs your attention"
    assert msg["Message-ID"] == f"<{message_id_for('c1', 'alert.opened', ALERT_ID)}@c.example>"
    raw = (envelope.original_content or b"").decode()
    assert ALERT_ID in raw
    assert f"https://fit.clinic.example/alerts/{ALERT_ID}" in raw
    for forbidden in CLIENT_DATA:
        assert forbidden not in raw


def _login(port: int, password: str = "s3cret", **kwargs: Any) -> SmtpSettings:  # noqa: S107
    return SmtpSettings(
        host="127.0.0.1", port=port, username="fit", password=password, timeout=5, **kwargs
    )


def test_login_is_used_when_configured(
    smtp_server_with_auth: tuple[Inbox, int], certificate: Certificate
) -> None:
    """With a username and password the sender logs in over STARTTLS and the message goes
    through."""
    inbox, port = smtp_server_with_auth
    settings = _login(port, starttls=True)
    assert SmtpEmailSender(settings, ssl_context=certificate.client).send(_email()).delivered
    assert len(inbox.envelopes) == 1


def test_wrong_password_is_a_short_failure(
    smtp_server_with_auth: tuple[Inbox, int], certificate: Certificate
) -> None:
    """A refused login fails with the SMTP code only, never the password."""
    inbox, port = smtp_server_with_auth
    settings = _login(port, "wrong", starttls=True)
    result = SmtpEmailSender(settings, ssl_context=certificate.client).send(_email())
    assert (result.delivered, result.reason, result.status_code) == (False, "smtp 535", 535)
    assert "wrong" not in repr(result)
    assert inbox.envelopes == []


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("550 5.1.1 no such mailbox", False), ("451 4.3.0 try again later", True)],
)
def test_refused_recipient_is_permanent_only_for_5xx(reply: str, retryable: bool) -> None:
    """A 5xx recipient refusal is final (no retries); a 4xx one is retried."""
    for inbox, port in _serve(Inbox(rcpt_reply=reply)):
        result = SmtpEmailSender(SmtpSettings(host="127.0.0.1", port=port)).send(_email())
        assert not result.delivered
        assert result.retryable is retryable
        assert result.reason == f"recipient refused (smtp {reply[:3]})"
        assert inbox.envelopes == []


def test_unreachable_server_is_a_retryable_failure() -> None:
    """Nobody listening gives a short, retryable reason."""
    result = SmtpEmailSender(SmtpSettings(host="127.0.0.1", port=_free_port(), timeout=1)).send(
        _email()
    )
    assert (result.delivered, result.reason, result.retryable) == (
        False,
        "ConnectionRefusedError",
        True,
    )


class QuitRefusingInbox(Inbox):
    """Accepts every message, then answers QUIT with a 421 (a relay going down for the night)."""

    async def handle_QUIT(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        return "421 4.3.2 shutting down"


def test_a_message_accepted_before_an_odd_quit_answer_counts_as_sent() -> None:
    """Once the relay has said 250 to the message, a QUIT answered with 421 does not make the
    send a failure (which would mail the clinician again on every retry)."""
    for inbox, port in _serve(QuitRefusingInbox()):
        result = SmtpEmailSender(SmtpSettings(host="127.0.0.1", port=port)).send(_email())
        assert (result.delivered, result.reason) == (True, "delivered")
        assert len(inbox.envelopes) == 1


@pytest.mark.parametrize(
    "to",
    [
        "dr.smith,someone@elsewhere.example",
        "dr.smith;someone@elsewhere.example",
        "dr.smith@clinic.example:25",
        # one address, but not the one stored: the group syntax mails the address inside it
        "team:someone@elsewhere.example",
    ],
)
def test_a_recipient_that_is_not_one_address_is_refused_for_good(
    smtp_server: tuple[Inbox, int], to: str
) -> None:
    """An address the To header reads as two recipients (both pass the settings' address check)
    is sent to nobody and not retried; the reason does not quote it."""
    inbox, port = smtp_server
    result = SmtpEmailSender(SmtpSettings(host="127.0.0.1", port=port)).send(_email(to))
    assert (result.delivered, result.retryable) == (False, False)
    assert result.reason == "recipient is not one address"
    assert inbox.envelopes == []


def test_a_quoted_local_part_is_still_one_address(smtp_server: tuple[Inbox, int]) -> None:
    """A comma inside a quoted local part is part of one address, which is delivered."""
    inbox, port = smtp_server
    to = '"smith,j"@clinic.example'
    assert SmtpEmailSender(SmtpSettings(host="127.0.0.1", port=port)).send(_email(to)).delivered
    assert inbox.envelopes[0].rcpt_tos == [to]


class AuthRecordingInbox(Inbox):
    """Counts AUTH attempts, whatever their outcome."""

    def __init__(self) -> None:
        super().__init__()
        self.logins: list[Any] = []

    def authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        self.logins.append(data)
        return _authenticate(server, session, envelope, mechanism, data)


def test_starttls_not_offered_fails_without_falling_back_to_plaintext(
    certificate: Certificate,
) -> None:
    """A relay that does not advertise STARTTLS (a misconfigured relay, or a man in the middle
    stripping it from the EHLO answer) gets neither the password nor the message: smtplib's
    ``starttls()`` raises rather than carrying on in plaintext. Retried: the relay can be
    fixed, and every try checks again."""
    inbox = AuthRecordingInbox()
    # No tls_context: no STARTTLS in the EHLO answer; AUTH would be taken in plaintext.
    for _, port in _serve(inbox, authenticator=inbox.authenticate, auth_require_tls=False):
        sender = SmtpEmailSender(_login(port, starttls=True), ssl_context=certificate.client)
        result = sender.send(_email())
        assert (result.delivered, result.retryable) == (False, True)
        assert result.reason == "STARTTLS not offered by the relay"
        assert inbox.logins == []
        assert inbox.envelopes == []


def test_a_certificate_the_client_does_not_trust_fails(
    smtp_server_with_auth: tuple[Inbox, int],
) -> None:
    """STARTTLS to a relay whose certificate does not verify (the default context: system CAs)
    ends before the login; retried."""
    inbox, port = smtp_server_with_auth
    result = SmtpEmailSender(_login(port, starttls=True)).send(_email())
    assert (result.delivered, result.retryable) == (False, True)
    assert result.reason == "SSLCertVerificationError"
    assert inbox.envelopes == []


def test_implicit_tls_logs_in_and_delivers(certificate: Certificate) -> None:
    """FIT_SMTP_TLS: TLS from the first byte (SMTPS, usually port 465), then the login."""
    inbox = AuthRecordingInbox()
    # auth_require_tls=False: aiosmtpd counts only STARTTLS as TLS, not a TLS listener.
    for _, port in _serve(
        inbox,
        authenticator=inbox.authenticate,
        auth_require_tls=False,
        ssl_context=certificate.server,
    ):
        sender = SmtpEmailSender(_login(port, tls=True), ssl_context=certificate.client)
        assert sender.send(_email()).delivered
        assert len(inbox.logins) == 1
        assert len(inbox.envelopes) == 1


class DrippingRelay:
    """A relay that answers each line at once but never ends its answer: from ``drip_at`` (the
    greeting, or the answer to the message) it sends a continuation line (``250-…``) every
    ``interval`` seconds, each well inside the sender's per-read timeout. Notes when the client
    closes the connection; gives up after ``give_up`` seconds."""

    def __init__(self, drip_at: str, interval: float = 0.2, give_up: float = 10.0) -> None:
        self.drip_at = drip_at
        self.interval = interval
        self.give_up = give_up
        self.closed_after: float | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DrippingRelay:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._thread.join(self.give_up + 5)
        self._listener.close()

    def _serve(self) -> None:
        conn, _ = self._listener.accept()
        start = time.monotonic()
        with conn, conn.makefile("rb") as lines:
            if self.drip_at == "greeting":
                self._drip(conn, b"220-", start)
                return
            conn.sendall(b"220 relay ready\r\n")
            for line in lines:
                verb = line[:4].upper()
                if verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    for body_line in lines:
                        if body_line == b".\r\n":
                            break
                    self._drip(conn, b"250-", start)
                    return
                conn.sendall(b"250 ok\r\n")

    def _drip(self, conn: socket.socket, prefix: bytes, start: float) -> None:
        while time.monotonic() - start < self.give_up:
            readable, _, _ = select.select([conn], [], [], self.interval)
            if readable:
                try:
                    if conn.recv(4096) == b"":
                        break
                except OSError:
                    break
                continue
            try:
                conn.sendall(prefix + b"still working\r\n")
            except OSError:
                break
        self.closed_after = time.monotonic() - start


@pytest.mark.parametrize("drip_at", ["greeting", "data"])
def test_a_relay_dripping_its_answer_is_cut_off_at_the_deadline(drip_at: str) -> None:
    """The timeout bounds each read, not their sum: a relay answering a line every 0.2 s held
    the send (and the worker) for as long as it liked. The whole attempt has a deadline; past
    it the connection is closed and the attempt is a retryable "timeout"."""
    with DrippingRelay(drip_at) as relay:
        settings = SmtpSettings(host="127.0.0.1", port=relay.port, timeout=1, deadline=1.5)
        start = time.monotonic()
        result = SmtpEmailSender(settings).send(_email())
        elapsed = time.monotonic() - start
    assert (result.delivered, result.reason, result.retryable) == (False, "timeout", True)
    assert 1.4 < elapsed < 4
    assert relay.closed_after is not None
    assert relay.closed_after < 4


def test_the_deadline_is_at_least_the_timeout() -> None:
    with pytest.raises(ValueError, match="deadline"):
        SmtpSettings(host="mail.example", timeout=10, deadline=5)
    assert SmtpSettings(host="mail.example").deadline == 30


@pytest.mark.parametrize("to", ["jürgen@clinic.example", "dr.smith@klinik-müller.example"])
def test_a_non_ascii_address_without_smtputf8_fails_for_good(to: str) -> None:
    """The relay does not offer SMTPUTF8, so it can never take this address (smtplib refuses
    to send it: SMTPNotSupportedError). Not retried for two days: failed at once, visibly, and
    the reason does not quote the address."""
    # aiosmtpd's Controller offers SMTPUTF8 unless told not to; many relays do not.
    for inbox, port in _serve(Inbox(), enable_SMTPUTF8=False):
        result = SmtpEmailSender(SmtpSettings(host="127.0.0.1", port=port)).send(_email(to))
        assert (result.delivered, result.retryable) == (False, False)
        assert result.reason == "recipient needs SMTPUTF8, which the relay does not offer"
        assert inbox.envelopes == []


def test_a_non_ascii_address_goes_out_when_the_relay_offers_smtputf8() -> None:
    for inbox, port in _serve(Inbox()):
        to = "jürgen@clinic.example"
        assert SmtpEmailSender(SmtpSettings(host="127.0.0.1", port=port)).send(_email(to)).delivered
        assert inbox.envelopes[0].rcpt_tos == [to]


class UnencodableRecipient:
    """An smtplib.SMTP stand-in whose send_message meets an address it cannot encode, as
    smtplib's ASCII commands do (``putcmd`` encodes with ``command_encoding``, "ascii")."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        self.closed = False

    def send_message(self, msg: object) -> None:
        "RCPT TO:<jürgen@clinic.example>".encode("ascii")

    def quit(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_an_address_smtplib_cannot_encode_fails_for_good() -> None:
    """UnicodeEncodeError out of smtplib (an address it cannot write in a command) is final."""
    fake = UnencodableRecipient()
    sender = SmtpEmailSender(SmtpSettings(host="mail.example"), smtp_factory=lambda *a, **k: fake)
    result = sender.send(_email("jürgen@clinic.example"))
    assert (result.delivered, result.retryable) == (False, False)
    assert result.reason == "recipient cannot be written in an SMTP command"
    assert fake.closed
