"""E-mail to clinicians over SMTP, behind a small :class:`EmailSender` interface.

What an alert e-mail says is decided in :func:`fit_service.domain.delivery.build_alert_email`
(a reference and a link, no client data); this module only puts it on the wire. Like
warehouse's e-mail service, the sender is an interface with an SMTP implementation picked by
configuration and an in-memory one for tests.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, getaddresses
from typing import TYPE_CHECKING, Protocol

from fit_service.adapters.deadline import Deadline
from fit_service.adapters.webhooks import DNS_TIMEOUT, resolve_host
from fit_service.domain.delivery import ClinicianEmail, DeliveryResult

if TYPE_CHECKING:
    from fit_service.config import Settings

logger = logging.getLogger(__name__)

#: Seconds for connecting and for each SMTP command; a hung relay must not hold the worker.
DEFAULT_TIMEOUT = 10.0
#: Seconds for a whole attempt, from the connect to the QUIT. The timeout above bounds each
#: read and write, not their sum: a relay that answers a line every few seconds (``250-…``
#: continuation lines, a greeting, a TLS handshake) would otherwise hold the send — and the
#: worker, and every delivery behind it — as long as it liked, past the row's lease. The same
#: 30 s as a webhook (``webhooks.DEFAULT_DEADLINE``).
DEFAULT_DEADLINE = 30.0
#: Seconds: the longest one :meth:`SmtpEmailSender.send` takes with the defaults. The relay's
#: name is looked up inside the deadline (:func:`_connect_within`), so this is the deadline.
#: The outbox worker never holds a row for a send with less of its lease left than this.
LONGEST_ATTEMPT = DEFAULT_DEADLINE


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach the SMTP relay. The password never appears in ``repr`` or logs."""

    host: str
    port: int = 25
    from_address: str = "fit-service@localhost"
    #: STARTTLS after connecting, or ``tls``: TLS from the first byte (SMTPS). Not both.
    starttls: bool = False
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    deadline: float = DEFAULT_DEADLINE

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("SMTP host is empty (e-mail is disabled)")
        if not 0 < self.timeout <= self.deadline:
            raise ValueError("SMTP timeout must be positive and at most the deadline")
        if (self.username is None) != (self.password is None):
            raise ValueError("SMTP username and password go together")
        if self.starttls and self.tls:
            raise ValueError("SMTP uses STARTTLS or implicit TLS, not both")
        if self.username is not None and not (self.starttls or self.tls):
            raise ValueError("an SMTP login needs STARTTLS or TLS: never a password in clear")

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSettings | None:
        """The SMTP part of the service settings, or ``None`` when e-mail is disabled (no host)."""
        if not settings.smtp_host:
            return None
        # The settings use "" for "not set"; a username without a password is refused above.
        username = settings.smtp_username or None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            from_address=settings.smtp_from,
            starttls=settings.smtp_starttls,
            tls=settings.smtp_tls,
            username=username,
            password=settings.smtp_password if username is not None else None,
        )


class NotOneAddress(ValueError):
    """The recipient string would be read as several addresses (or none); never retried: the
    stored address must be corrected."""


class EmailSender(Protocol):
    """Delivers one e-mail; never raises for delivery failures."""

    def send(self, email: ClinicianEmail) -> DeliveryResult: ...


def _message_id_header(message_id: str, from_address: str) -> str:
    # RFC 5322 wants <left@right>; the sender's domain on the right keeps ids unique per service.
    domain = from_address.rpartition("@")[2] or "fit-service"
    return f"<{message_id}@{domain}>"


def _quit(smtp: smtplib.SMTP) -> None:
    """Say QUIT and close, swallowing any error of the QUIT itself.

    Once the relay has answered 250 to the message, the message is the relay's. ``with SMTP()``
    raises when the QUIT then times out or is answered with anything but 221 (a relay shutting
    down says 421), which would turn a sent e-mail into a failure and send it again on every
    retry. An error before the message was accepted is still raised by the code that met it.
    """
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


def _connect_within(
    deadline: Deadline,
    address: tuple[str, int],
    timeout: float,
    source_address: tuple[str, int] | None,
) -> socket.socket:
    """A TCP connection made within the deadline and watched by it from then on.

    The relay's name is looked up here, bounded by the deadline, rather than inside
    ``socket.create_connection``: ``getaddrinfo`` has no timeout of its own, and the deadline
    can only end a socket once there is one, so a nameserver that never answered held the send
    for as long as the system resolver kept retrying, past the worker's ``max_send`` and the
    row's lease (another worker then sends the row again). The addresses are tried in order,
    as ``create_connection`` does; TLS still checks the certificate against the name.
    """
    host, port = address
    left = deadline.remaining()
    if left <= 0:
        raise TimeoutError("deadline passed before connecting")
    addresses = resolve_host(host, port, timeout=min(DNS_TIMEOUT, left))
    return deadline.connect(addresses, port, timeout, source_address)


class _SMTP(smtplib.SMTP):
    """:class:`smtplib.SMTP` whose connection is watched by a :class:`Deadline` (the greeting
    is read inside the constructor, so the watch must start at the connect)."""

    def __init__(self, host: str, port: int, *, timeout: float, deadline: Deadline) -> None:
        self._deadline = deadline
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return _connect_within(self._deadline, (host, port), timeout, _source(self))


def _source(smtp: smtplib.SMTP) -> tuple[str, int] | None:
    """The connection's ``source_address``: smtplib keeps the (host, port) it was given, or
    ``None`` (its stubs allow any socket address)."""
    source = smtp.source_address
    return (str(source[0]), int(source[1])) if isinstance(source, tuple) else None


class _SMTPS(smtplib.SMTP_SSL):
    """:class:`smtplib.SMTP_SSL` (implicit TLS) watched by a :class:`Deadline` from the TCP
    connect on, so a handshake that drips is cut off too."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        deadline: Deadline,
        context: ssl.SSLContext,
    ) -> None:
        self._deadline = deadline
        super().__init__(host, port, timeout=timeout, context=context)

    #: set by ``smtplib.SMTP.connect`` before it calls ``_get_socket`` (not in the stubs)
    _host: str

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = _connect_within(self._deadline, (host, port), timeout, _source(self))
        # What SMTP_SSL._get_socket does after its connect.
        return self.context.wrap_socket(sock, server_hostname=self._host)


class Unaddressable(Exception):
    """The relay can never take the recipient as written: never retried (the stored address
    must be corrected). The message says why, without quoting the address."""


def _send_message(smtp: smtplib.SMTP, msg: EmailMessage) -> None:
    """``smtp.send_message(msg)``, with the errors that mean "not this address, ever" told apart.

    A non-ASCII address (``jürgen@clinic.example``, an internationalised domain) can only go
    to a relay that offers SMTPUTF8; smtplib checks the EHLO answer and raises
    ``SMTPNotSupportedError`` before sending anything when it does not (it raises that error in
    ``send_message`` for nothing else). Retrying would not help: a relay's extensions do not
    change between tries, and the row would fail for two days before anyone saw it. An address
    smtplib cannot write into its ASCII commands at all (``UnicodeEncodeError``) is the same.
    The sender address is checked to be ASCII at start-up, so it is the recipient.
    """
    try:
        smtp.send_message(msg)
    except smtplib.SMTPNotSupportedError:
        raise Unaddressable("recipient needs SMTPUTF8, which the relay does not offer") from None
    except UnicodeEncodeError:
        raise Unaddressable("recipient cannot be written in an SMTP command") from None


class _NoStartTls(Exception):
    """STARTTLS is configured but the relay's EHLO answer does not offer it."""


def _starttls(smtp: smtplib.SMTP, context: ssl.SSLContext) -> None:
    """Switch to TLS or raise: never carry on in plaintext (to log in or send) when the relay
    does not offer STARTTLS — a relay misconfigured, or an attacker on the path who removed
    STARTTLS from the EHLO answer. smtplib's ``starttls()`` raises ``SMTPNotSupportedError``
    then (and ``SMTPResponseException`` when the relay answers STARTTLS with anything but 220);
    the check is made here as well so that it does not rest on smtplib alone."""
    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn("starttls"):
        raise _NoStartTls
    try:
        smtp.starttls(context=context)
    except smtplib.SMTPNotSupportedError:
        raise _NoStartTls from None


class SmtpEmailSender:
    """Sends plain-text e-mail through one SMTP relay, one connection per message.

    One connection per message is slower than a pooled one but cannot leak state between
    messages; alert e-mails are few.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        smtp_factory: Callable[..., smtplib.SMTP] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``smtp_factory(host, port, timeout=…)`` replaces the connection (tests); it then
        owns implicit TLS too. ``ssl_context`` (default: the system's CAs, host names checked)
        is used for STARTTLS and implicit TLS."""
        self.settings = settings
        self._smtp_factory = smtp_factory
        self._ssl_context = ssl_context

    def _tls_context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _connect(self, deadline: Deadline) -> smtplib.SMTP:
        s = self.settings
        if self._smtp_factory is not None:
            smtp = self._smtp_factory(s.host, s.port, timeout=s.timeout)
            sock = getattr(smtp, "sock", None)
            if isinstance(sock, socket.socket):
                deadline.watch(sock)
            return smtp
        if s.tls:
            return _SMTPS(
                s.host, s.port, timeout=s.timeout, deadline=deadline, context=self._tls_context()
            )
        return _SMTP(s.host, s.port, timeout=s.timeout, deadline=deadline)

    def build_message(self, email: ClinicianEmail) -> EmailMessage:
        """The MIME message; the default policy refuses line breaks in headers (no injection).

        ``email.to`` must read as exactly one address: ``send_message`` takes its recipients
        from the ``To`` header, where ``dr.smith,other@elsewhere.example`` (one string to the
        address check in the settings) is two — an alert notice to a mailbox nobody chose. So
        is one that reads as another address than the one stored (``team:x@clinic.example``,
        a group, is mailed to ``x@clinic.example``).
        """
        parsed = getaddresses([email.to])
        if len(parsed) != 1 or not parsed[0][1] or parsed[0][1] != email.to:
            raise NotOneAddress("the recipient is not exactly one e-mail address")
        msg = EmailMessage()
        msg["From"] = self.settings.from_address
        msg["To"] = email.to
        msg["Subject"] = email.subject
        msg["Date"] = formatdate(usegmt=True)
        if email.message_id:
            msg["Message-ID"] = _message_id_header(email.message_id, self.settings.from_address)
        msg.set_content(email.body)
        return msg

    def send(self, email: ClinicianEmail) -> DeliveryResult:
        """One attempt. Logs the message id and outcome only — never the address, the body or
        the SMTP password."""
        s = self.settings
        deadline = Deadline(s.deadline)
        try:
            msg = self.build_message(email)
            with deadline:
                smtp = self._connect(deadline)
                try:
                    if s.starttls:
                        _starttls(smtp, self._tls_context())
                    if s.username is not None and s.password is not None:
                        smtp.login(s.username, s.password)
                    _send_message(smtp, msg)
                finally:
                    _quit(smtp)
        except Unaddressable as exc:
            result = DeliveryResult.failed(str(exc), retryable=False)
        except _NoStartTls:
            # Retried: the relay can be fixed, and every attempt asks again.
            result = DeliveryResult.failed("STARTTLS not offered by the relay")
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            # 5xx is the server's final word on this address; 4xx (mailbox busy …) may pass later.
            permanent = bool(codes) and all(code >= 500 for code in codes)
            result = DeliveryResult.failed(
                f"recipient refused (smtp {max(codes, default=0)})",
                status_code=max(codes, default=None),
                retryable=not permanent,
            )
        except smtplib.SMTPResponseException as exc:
            result = DeliveryResult.failed(f"smtp {exc.smtp_code}", status_code=exc.smtp_code)
        except TimeoutError:
            result = DeliveryResult.failed("timeout")
        except (smtplib.SMTPException, OSError) as exc:
            # After the deadline the connection was shut down under the read or write: the
            # relay dropping it (SMTPServerDisconnected) or a reset is then the deadline's doing.
            result = DeliveryResult.failed("timeout" if deadline.expired else type(exc).__name__)
        except NotOneAddress:
            result = DeliveryResult.failed("recipient is not one address", retryable=False)
        except ValueError as exc:
            # A header the e-mail policy refused (e.g. a line break in the address): not fixable
            # by retrying. Only the class name is kept: the message would quote the address.
            result = DeliveryResult.failed(type(exc).__name__, retryable=False)
        else:
            result = DeliveryResult.ok()
        if result.delivered:
            logger.info("e-mail %s sent via %s", email.message_id, s.host)
        else:
            logger.warning("e-mail %s via %s failed: %s", email.message_id, s.host, result.reason)
        return result


class RecordingEmailSender:
    """In-memory :class:`EmailSender` for tests of the outbox worker.

    Records every e-mail in :attr:`sent` and answers with the scripted results in order (then
    "delivered").
    """

    def __init__(self, results: Iterable[DeliveryResult] = ()) -> None:
        self.sent: list[ClinicianEmail] = []
        self._results: deque[DeliveryResult] = deque(results)

    def will_return(self, *results: DeliveryResult) -> None:
        """Script the answers to the next calls."""
        self._results.extend(results)

    def send(self, email: ClinicianEmail) -> DeliveryResult:
        self.sent.append(email)
        return self._results.popleft() if self._results else DeliveryResult.ok()
