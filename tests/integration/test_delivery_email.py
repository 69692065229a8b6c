"""Alert e-mail through a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import socket
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


@pytest.fixture
def smtp_server_with_auth() -> Iterator[tuple[Inbox, int]]:
    # auth_require_tls=False: the test server has no certificate; real relays use STARTTLS.
    yield from _serve(Inbox(), authenticator=_authenticate, auth_require_tls=False)


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


def test_login_is_used_when_configured(smtp_server_with_auth: tuple[Inbox, int]) -> None:
    """With a username and password the sender logs in and the message goes through."""
    inbox, port = smtp_server_with_auth
    settings = SmtpSettings(host="127.0.0.1", port=port, username="fit", password="s3cret")
    assert SmtpEmailSender(settings).send(_email()).delivered
    assert len(inbox.envelopes) == 1


def test_wrong_password_is_a_short_failure(smtp_server_with_auth: tuple[Inbox, int]) -> None:
    """A refused login fails with the SMTP code only, never the password."""
    inbox, port = smtp_server_with_auth
    settings = SmtpSettings(host="127.0.0.1", port=port, username="fit", password="wrong")
    result = SmtpEmailSender(settings).send(_email())
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
