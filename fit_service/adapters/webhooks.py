"""Signed webhooks to clinics (Standard Webhooks): secrets, signing, URL safety and sending.

Signing is done by the ``standardwebhooks`` library, not by hand: receivers verify with the same
library (or one of its ports), so both sides agree on every byte of ``{id}.{timestamp}.{body}``.

Why :mod:`http.client` and not :mod:`urllib.request`: urllib follows redirects and honours the
``HTTP(S)_PROXY`` environment variables, and it resolves the host name itself. Each of those
could carry a request to an address the safety check never saw. Here the host is resolved once
per attempt, every address is checked, and the connection is made to a checked address (the
name still goes in the ``Host`` header and TLS SNI, so certificates verify as usual). That closes
the DNS-rebinding window between "check" and "connect". Redirects are never followed: a 3xx is a
failed attempt.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ipaddress
import logging
import math
import secrets
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from fit_service.adapters.deadline import Deadline
from fit_service.domain.delivery import DeliveryResult, WebhookMessage
from fit_service.domain.errors import FitError

if TYPE_CHECKING:
    from fit_service.config import Settings

logger = logging.getLogger(__name__)

USER_AGENT = "fit-service-webhooks/1"
#: Seconds for connecting and for each read. Short: a receiver should answer 2xx at once and do
#: its work later; a slow one is retried rather than holding a worker.
DEFAULT_TIMEOUT = 10.0
#: Seconds for a whole attempt, from the first connect to the status line. The timeout above
#: bounds each connect, read and write, not their sum: a receiver that drips its headers (or its
#: TLS handshake) a byte every few seconds would otherwise hold the send — and the worker, and
#: every other clinic's deliveries behind it — for as long as it liked, far past the row's lease
#: (another worker then sends the row again). See :data:`LONGEST_ATTEMPT`.
DEFAULT_DEADLINE = 30.0

SECRET_PREFIX = "whsec_"  # noqa: S105 - the public prefix of every secret, not a secret
#: Standard Webhooks asks for secrets of 24 to 64 random bytes; we generate 32.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
DEFAULT_SECRET_BYTES = 32

_DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses``. The default asks the system resolver; tests inject a dict.
Resolver = Callable[[str, int], Sequence[str]]


class InvalidWebhookUrl(FitError):
    """The webhook URL is malformed, has the wrong scheme, or its host does not resolve."""

    rule = "invalid_webhook_url"


#: All an admin (the 422 on registration), the outbox (``last_error``) and the logs are told
#: when a host does not resolve or resolves to an address the guard refuses: one text for both,
#: without the address. Naming the address, or telling "does not resolve" from "resolves to a
#: private address", would let anyone with an admin key map the network the service runs in
#: (which internal names exist, and where they point) by registering URLs.
REFUSED_HOST = "webhook host does not resolve to an address this service may call"


class UnsafeWebhookUrl(InvalidWebhookUrl):
    """The webhook host resolves to an address the service must not call (SSRF guard), or not
    at all (:class:`UnresolvableWebhookHost`); at send time either is worth retrying."""

    rule = "unsafe_webhook_url"


class UnresolvableWebhookHost(UnsafeWebhookUrl):
    """The webhook host does not resolve (now). Answered exactly as :class:`UnsafeWebhookUrl`
    (same rule, same :data:`REFUSED_HOST` detail) so the answer does not tell the two apart;
    the class is for the code and its tests only."""


# --- secrets and signing -------------------------------------------------------------------


def generate_secret(nbytes: int = DEFAULT_SECRET_BYTES) -> str:
    """A new endpoint secret: ``whsec_`` + base64 of ``nbytes`` random bytes (shown once to the
    clinic, stored for signing)."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def check_secret(secret: str) -> str:
    """Return ``secret`` if it is a well-formed ``whsec_`` secret, else raise ``ValueError``.

    ``standardwebhooks`` decodes leniently (junk characters are skipped), so a corrupted secret
    would sign "successfully" with the wrong key; this check makes that a loud error instead.
    The message never contains the secret.
    """
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"webhook secret must start with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("webhook secret is not valid base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"webhook secret must hold {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes")
    return secret


def sign_headers(secret: str, message: WebhookMessage, timestamp: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for sending ``message`` at ``timestamp``.

    ``timestamp`` is the time of *this attempt* (receivers reject ones older than 5 minutes), so
    a retry gets a fresh timestamp and signature but the same ``webhook-id`` and body.
    """
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be an aware UTC datetime")
    # standardwebhooks' sign() *replaces* the tzinfo with UTC rather than converting, so an aware
    # non-UTC datetime would be signed as the wrong instant: convert first.
    at = timestamp.astimezone(UTC)
    signature = Webhook(check_secret(secret)).sign(
        msg_id=message.id, timestamp=at, data=message.body
    )
    return {
        "webhook-id": message.id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": signature,
    }


# --- URL safety ----------------------------------------------------------------------------


#: How long one name lookup may take. ``getaddrinfo`` has no timeout of its own: with the
#: usual resolver settings a nameserver that never answers holds it for up to ~30 s, inside an
#: admin's registration request or ahead of a send's own deadline.
DNS_TIMEOUT = 5.0
#: Seconds: the longest one :meth:`HttpWebhookSender.send` takes with the defaults, the name
#: lookup and then the attempt's deadline. The outbox worker never holds a row for a send with
#: less of its lease left than this (``delivery_worker.MIN_MAX_SEND``).
LONGEST_ATTEMPT = DNS_TIMEOUT + DEFAULT_DEADLINE


def resolve_host(host: str, port: int, timeout: float = DNS_TIMEOUT) -> list[str]:
    """Every address ``host`` resolves to (the system resolver, TCP only); ``TimeoutError``
    (an ``OSError``, so "does not resolve") after ``timeout`` seconds.

    The lookup runs in a daemon thread that is left to finish on its own when it takes too
    long (the resolver cannot be interrupted); the worker sends one message at a time and
    each lookup is bounded by the resolver's own retries, so few such threads are ever alive.
    """
    found: list[list[str]] = []
    failed: list[OSError | UnicodeError] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            found.append([str(info[4][0]) for info in infos])
        except (OSError, UnicodeError) as exc:
            failed.append(exc)

    thread = threading.Thread(target=lookup, name="fit-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if found:
        return found[0]
    if failed:
        raise failed[0]
    raise TimeoutError(f"name lookup took longer than {timeout:g} s")


def _networks(
    version: type[ipaddress.IPv4Network] | type[ipaddress.IPv6Network],
    table: Iterable[tuple[str, str]],
) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    return tuple((version(net), name) for net, name in table)


#: Where a webhook never goes: every block of the IANA IPv4 Special-Purpose Address Registry
#: (RFC 6890, iana.org/assignments/iana-ipv4-special-registry), multicast and the reserved
#: 240.0.0.0/4. Written out rather than read from ``ipaddress``'s ``is_private`` /
#: ``is_global`` flags: those differ between Python releases (3.11 lets 192.0.0.9, the rest
#: of 192.0.0.0/24 but two small blocks, through) and a guard must not loosen with the
#: interpreter. Some blocks here are reachable on the internet (AS112, PCP anycast): no
#: clinic's receiver lives there, so refusing them costs nothing.
_DENIED_V4 = _networks(
    ipaddress.IPv4Network,
    (
        ("0.0.0.0/8", "this network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),  # the cloud metadata service
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.31.196.0/24", "AS112"),
        ("192.52.193.0/24", "AMT"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("192.175.48.0/24", "AS112 direct delegation"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # 255.255.255.255, the broadcast address, too
    ),
)
#: Global unicast: IANA has allocated no other IPv6 space to the internet. Everything outside
#: is refused, which takes in the unspecified and loopback addresses, IPv4-mapped and -compatible
#: forms, NAT64 (64:ff9b::/96 and /48), discard-only 100::/64, SRv6 5f00::/16, unique-local
#: fc00::/7, link-local fe80::/10, site-local fec0::/10 and multicast ff00::/8.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
#: The IANA IPv6 Special-Purpose Address Registry's blocks inside global unicast
#: (iana.org/assignments/iana-ipv6-special-registry).
_DENIED_V6 = _networks(
    ipaddress.IPv6Network,
    (
        ("2001::/23", "IETF protocol assignments"),  # Teredo, benchmarking, ORCHID, …
        ("2001:db8::/32", "documentation"),
        ("2620:4f:8000::/48", "AS112 direct delegation"),
        ("3fff::/20", "documentation"),
    ),
)
#: 6to4 (RFC 3056) embeds an IPv4 address: judged by that address.
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def unsafe_address_reason(ip: IPAddress) -> str | None:
    """Which refused block ``ip`` is in (see :data:`_DENIED_V4`, :data:`_DENIED_V6`), or
    ``None`` when the service may connect to it. For the code and its tests: what an admin
    or the outbox is told is :data:`REFUSED_HOST`, never this.

    A 6to4 address (``2002::/16``) is judged by the IPv4 address it embeds: ``2002:7f00:1::``
    is loopback. The other IPv6 forms that embed one (IPv4-mapped, NAT64) lie outside global
    unicast and are refused whatever they embed.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip not in _GLOBAL_UNICAST_V6:
            return "not global unicast (outside 2000::/3)"
        if ip in _SIX_TO_FOUR:
            embedded = ip.sixtofour
            assert embedded is not None  # every address in 2002::/16 embeds one
            reason = unsafe_address_reason(embedded)
            return f"6to4 around {reason}" if reason else None
        denied: Iterable[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = _DENIED_V6
    else:
        denied = _DENIED_V4
    return next((f"{name} ({net})" for net, name in denied if ip in net), None)


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    """A webhook URL that passed the checks, with the addresses it resolved to just now."""

    scheme: str
    host: str
    port: int
    target: str  # path and query, sent in the request line
    addresses: tuple[str, ...]


def _parse_ip(text: str) -> IPAddress:
    # getaddrinfo may append an IPv6 zone ("fe80::1%eth0"); the zone does not change the class.
    return ipaddress.ip_address(text.split("%", 1)[0])


def _unsendable_character(url: str) -> str | None:
    """Why ``url`` cannot go into an HTTP request line as written, or ``None``.

    Whitespace and control characters: http.client refuses them at send time (InvalidURL,
    retried for two days), and a URL with a space was never what the receiver meant.
    Non-ASCII in the path, query or fragment is refused rather than percent-encoded here: the
    request line is ASCII (RFC 9112), and encoding on the service's side would send a URL other
    than the one registered and shown back (UTF-8? already encoded parts encoded twice?). The
    clinic registers the encoded form (``/caf%C3%A9``) and sees exactly what is sent. A
    non-ASCII *host* stays allowed: it is sent in its IDNA form, as every client does.
    """
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "webhook URL must not contain spaces or control characters"
    if url.isascii():
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None  # malformed: the caller says so
    userinfo, _, host_and_port = parts.netloc.rpartition("@")
    port = host_and_port.rpartition("]")[2].partition(":")[2]  # an IDN holds no ":" or "]"
    if not (parts.scheme + userinfo + port + parts.path + parts.query + parts.fragment).isascii():
        return (
            "webhook URL must be ASCII outside its host name: percent-encode other characters "
            "(e.g. é as %C3%A9)"
        )
    return None


def _parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, ASCII host, port, path and query) of a webhook URL, or
    :class:`InvalidWebhookUrl`; no DNS."""
    if reason := _unsendable_character(url):
        raise InvalidWebhookUrl(reason, field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidWebhookUrl("webhook URL is malformed", field="url") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidWebhookUrl("webhook URL must use http or https", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("webhook URL must not contain credentials", field="url")
    host = parts.hostname
    if not host:
        raise InvalidWebhookUrl("webhook URL has no host", field="url")
    try:
        # IDNA: the Host header and the resolver both need the ASCII form of the name.
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidWebhookUrl("webhook URL host is not a valid name", field="url") from None
    if port == 0:
        # Nothing listens on port 0: the URL could never be delivered, only retried for days.
        raise InvalidWebhookUrl("webhook URL port must be between 1 and 65535", field="url")
    port = port if port is not None else _DEFAULT_PORTS[scheme]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, target


def receiver_key(url: str) -> tuple[str, str, int, str] | None:
    """What identifies the receiver a URL reaches: scheme, host (case and IDNA folded), port
    (the default spelled out or not) and path with query; ``None`` for a URL that does not
    parse. ``https://Hooks.example/x`` and ``https://hooks.example:443/x`` are one receiver."""
    try:
        return _parse(url)
    except InvalidWebhookUrl:
        return None


def check_webhook_url(
    url: str, *, allow_private: bool = False, resolver: Resolver = resolve_host
) -> CheckedUrl:
    """Check a webhook URL and resolve its host; raise :class:`InvalidWebhookUrl` (or its
    subclass :class:`UnsafeWebhookUrl`) when the service must not call it.

    Call it when a clinic registers the URL (to refuse early, with a clear error) *and* before
    every send (DNS can change in between). Only ``http``/``https``; no credentials in the URL;
    no port 0; every resolved address must be public unless ``allow_private`` (tests,
    on-premises receivers) — one private record among public ones is a classic bypass. A host
    that does not resolve and one that resolves to a refused address get the same
    :data:`REFUSED_HOST`, without the address (see there why). Whitespace and
    control characters are refused anywhere, and non-ASCII characters outside the host name:
    the request line carries the URL as it is (see :func:`_unsendable_character`).
    """
    scheme, host, port, target = _parse(url)
    try:
        # An IP literal needs no resolver (and must not reach an injected one in tests).
        addresses: Sequence[str] = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = resolver(host, port)
        except (OSError, UnicodeError):
            raise UnresolvableWebhookHost(REFUSED_HOST, field="url") from None
    if not addresses:
        raise UnresolvableWebhookHost(REFUSED_HOST, field="url")
    if not allow_private and any(unsafe_address_reason(_parse_ip(a)) for a in addresses):
        raise UnsafeWebhookUrl(REFUSED_HOST, field="url")
    return CheckedUrl(scheme, host, port, target, tuple(dict.fromkeys(addresses)))


# --- sending -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """Where one clinic's webhooks go, and the secret that signs them (never in ``repr``)."""

    url: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        check_secret(self.secret)


class WebhookSender(Protocol):
    """Delivers one signed message to one endpoint; never raises for delivery failures."""

    def send(self, endpoint: WebhookEndpoint, message: WebhookMessage) -> DeliveryResult: ...


def _pinned_connector(addresses: Sequence[str], deadline: Deadline) -> Callable[..., socket.socket]:
    """A stand-in for ``socket.create_connection`` that connects to the checked addresses only,
    whatever the host name would resolve to now, and within the attempt's deadline."""

    def connect(
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        return deadline.connect(addresses, address[1], timeout, source_address)

    return connect


def _utcnow() -> datetime:
    return datetime.now(UTC)


class HttpWebhookSender:
    """POSTs signed messages with :mod:`http.client` (see the module doc for why not urllib)."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        allow_private: bool = False,
        resolver: Resolver = resolve_host,
        clock: Callable[[], datetime] = _utcnow,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        if not 0 < timeout <= deadline:
            raise ValueError("timeout must be positive and at most the deadline")
        self.timeout = timeout
        self.deadline = deadline
        self.allow_private = allow_private
        self._resolver = resolver
        self._clock = clock
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._user_agent = user_agent

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> HttpWebhookSender:
        return cls(allow_private=settings.webhooks_allow_private, **overrides)  # type: ignore[arg-type]

    def send(self, endpoint: WebhookEndpoint, message: WebhookMessage) -> DeliveryResult:
        """One attempt: check the URL again, sign with the current time, POST, judge the status.

        Only 2xx counts as delivered. Logs carry the message id, host and reason — never the
        secret, the body or the URL path (paths often hold tokens).
        """
        try:
            checked = check_webhook_url(
                endpoint.url, allow_private=self.allow_private, resolver=self._resolver
            )
        except UnsafeWebhookUrl as exc:  # refused or unresolvable: REFUSED_HOST, no address
            # Retryable: DNS may answer (or point back to a public address) later, and every
            # attempt re-checks, so retrying never reaches an address that is unsafe *then*.
            return self._log(message, None, DeliveryResult.failed(f"refused: {exc.detail}"))
        except InvalidWebhookUrl as exc:
            # A malformed URL or a wrong scheme stays wrong until the clinic re-registers it.
            return self._log(message, None, DeliveryResult.failed(exc.detail, retryable=False))

        headers = {
            "Content-Type": "application/json",
            "User-Agent": self._user_agent,
            **sign_headers(endpoint.secret, message, self._clock()),
        }
        deadline = Deadline(self.deadline)
        conn = self._connection(checked, deadline)
        try:
            with deadline:
                conn.request(
                    "POST", checked.target, body=message.body.encode("utf-8"), headers=headers
                )
                status = conn.getresponse().status
        except TimeoutError:
            result = DeliveryResult.failed("timeout")
        except http.client.InvalidURL as exc:
            # The request line cannot be written (a URL http.client refuses): it never will be,
            # so no retry. Registration refuses such URLs; a row stored before that check must
            # still not raise out of here.
            result = DeliveryResult.failed(type(exc).__name__, retryable=False)
        except (OSError, http.client.HTTPException) as exc:
            # Before ValueError, and it matters: ssl.SSLCertVerificationError is an OSError
            # *and* a ValueError. A receiver's certificate that does not verify (expired, not
            # yet renewed, the wrong name or chain for an hour) is fixed on their side and
            # checked again at every attempt: retried like any network failure, not dead at
            # the first try with every alert sent meanwhile. After the deadline the connection
            # was shut down under the read: a timeout.
            result = DeliveryResult.failed("timeout" if deadline.expired else type(exc).__name__)
        except ValueError as exc:
            # Text http.client cannot encode into the request (UnicodeEncodeError): it never
            # will, so no retry.
            result = DeliveryResult.failed(type(exc).__name__, retryable=False)
        else:
            if 200 <= status < 300:
                result = DeliveryResult.ok(status)
            elif 300 <= status < 400:
                result = DeliveryResult.failed(
                    f"http {status} (redirects are not followed)", status_code=status
                )
            else:
                result = DeliveryResult.failed(f"http {status}", status_code=status)
        finally:
            # The body is never read: a receiver's answer is its status code, nothing more.
            conn.close()
        return self._log(message, checked.host, result)

    def _connection(self, checked: CheckedUrl, deadline: Deadline) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if checked.scheme == "https":
            conn = http.client.HTTPSConnection(
                checked.host, checked.port, timeout=self.timeout, context=self._ssl_context
            )
        else:
            conn = http.client.HTTPConnection(checked.host, checked.port, timeout=self.timeout)
        # Instance attribute read by HTTPConnection.connect(); SNI and Host still use the name.
        conn._create_connection = _pinned_connector(checked.addresses, deadline)  # type: ignore[attr-defined]
        return conn

    @staticmethod
    def _log(message: WebhookMessage, host: str | None, result: DeliveryResult) -> DeliveryResult:
        if result.delivered:
            logger.info("webhook %s delivered to %s", message.id, host)
        else:
            logger.warning("webhook %s to %s failed: %s", message.id, host, result.reason)
        return result


# --- test double ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentWebhook:
    endpoint: WebhookEndpoint
    message: WebhookMessage


class RecordingWebhookSender:
    """In-memory :class:`WebhookSender` for tests of the outbox worker.

    Records every call in :attr:`sent` and answers with the scripted results in order (then
    "delivered"): ``RecordingWebhookSender([DeliveryResult.failed("http 500")])`` fails once.
    """

    def __init__(self, results: Iterable[DeliveryResult] = ()) -> None:
        self.sent: list[SentWebhook] = []
        self._results: deque[DeliveryResult] = deque(results)

    def will_return(self, *results: DeliveryResult) -> None:
        """Script the answers to the next calls."""
        self._results.extend(results)

    def send(self, endpoint: WebhookEndpoint, message: WebhookMessage) -> DeliveryResult:
        self.sent.append(SentWebhook(endpoint, message))
        return self._results.popleft() if self._results else DeliveryResult.ok(200)
