"""Delivery policy for alerts leaving the service: what is sent, when to retry, when to give up.

Pure functions over frozen dataclasses; the outbox worker (the imperative shell) loads a pending
delivery, asks :func:`next_attempt_at` what to do after a failure, and stores the answer. The
adapters in ``fit_service.adapters.webhooks`` and ``fit_service.adapters.email`` do the I/O.

Three rules shape everything here:

* **Thin messages.** A webhook or e-mail says *that* an alert needs attention and *which* one,
  never anything about the client: no scores, no client ids, no names. A receiver (or a mail
  relay) that leaks a message leaks nothing clinical; the clinician looks the alert up in the
  service, behind its own access control.
* **At-least-once with a stable id.** Every retry of one message re-sends the byte-identical body
  under the same ``webhook-id`` (Standard Webhooks), so a receiver can de-duplicate.
* **Retries over hours.** Receivers go down for deploys and nights; a clinic's integration may be
  broken for a day. The default schedule (:data:`DEFAULT_RETRY_DELAYS`) is the one Svix documents
  for Standard Webhooks, so integrators meet a familiar pattern.

All datetimes are aware UTC; naive datetimes are refused rather than guessed at.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fit_service.domain.errors import FitError

#: Wait after the 1st, 2nd, … failed attempt (the 1st attempt is immediate). This is the schedule
#: Svix documents for Standard Webhooks: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — 8 attempts
#: spread over about 27.6 hours, then the message is dead.
DEFAULT_RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)

#: An endpoint failing without a single success for this long is marked failing (the clinic is
#: told, sends to it may pause). A day covers a night and a deploy without crying wolf.
DEFAULT_FAILING_AFTER = timedelta(hours=24)

#: Stop retrying a message this long after its first failure even if attempts remain: a worker
#: that was down for days must not deliver week-old "needs attention now" alerts in a burst.
DEFAULT_GIVE_UP_AFTER = timedelta(hours=48)

#: Default jitter: each delay is shortened by up to 10 %, spreading the retries of many messages
#: that failed together (one endpoint outage) so they do not all arrive at the same instant.
DEFAULT_JITTER = 0.1

#: What goes into ids, kinds and severities: short identifiers only. A rule this tight keeps free
#: text (where a client's name could slip in) out of messages by construction.
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_WORD_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
_EVENT_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


class InvalidDeliveryMessage(FitError):
    """A message would carry something other than short identifiers (see the module doc)."""

    rule = "invalid_delivery_message"


def _require_utc(name: str, value: datetime) -> datetime:
    # A naive datetime would be read as local time by some code paths and as UTC by others
    # (standardwebhooks' sign() does the latter); refuse it instead of guessing.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware UTC datetime, got a naive one")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to retry a failed delivery, when to give up, and when an endpoint counts as failing.

    ``delays[i]`` is the wait after the ``i+1``-th failed attempt, so a message gets at most
    ``len(delays) + 1`` attempts. Each delay is capped at ``max_delay``; with a jitter key it is
    then shortened by a deterministic fraction in ``[0, jitter)`` — shortened, never lengthened,
    so the cap holds even with jitter.
    """

    delays: tuple[timedelta, ...] = DEFAULT_RETRY_DELAYS
    max_delay: timedelta = timedelta(hours=10)
    jitter: float = DEFAULT_JITTER
    give_up_after: timedelta | None = DEFAULT_GIVE_UP_AFTER
    failing_after: timedelta = DEFAULT_FAILING_AFTER

    def __post_init__(self) -> None:
        if not self.delays:
            raise ValueError("a retry policy needs at least one delay")
        if any(d <= timedelta(0) for d in self.delays):
            raise ValueError("retry delays must be positive")
        if any(b < a for a, b in itertools.pairwise(self.delays)):
            raise ValueError("retry delays must never decrease")
        if self.max_delay <= timedelta(0):
            raise ValueError("max_delay must be positive")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("jitter must be a fraction in [0, 1)")
        if self.give_up_after is not None and self.give_up_after <= timedelta(0):
            raise ValueError("give_up_after must be positive (or None for no age limit)")
        if self.failing_after <= timedelta(0):
            raise ValueError("failing_after must be positive")

    @property
    def max_attempts(self) -> int:
        """Attempts a message gets in all: the immediate one plus one per delay."""
        return len(self.delays) + 1


def _jitter_fraction(key: str, attempts: int) -> float:
    """A number in [0, 1) fixed by ``key`` and ``attempts``.

    Derived from a hash, not a random generator, so the same message recomputes the same retry
    time (a crashed worker that re-runs the policy stores the same answer; tests are exact),
    while different messages still spread out.
    """
    digest = hashlib.sha256(f"{key}\x1f{attempts}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def retry_delay(attempts: int, policy: RetryPolicy, *, jitter_key: str | None = None) -> timedelta:
    """The wait after ``attempts`` failed attempts (``attempts >= 1``), before the age limit.

    Past the end of the schedule the last delay repeats; :func:`next_attempt_at` is what stops.
    """
    if attempts < 1:
        raise ValueError("attempts counts failed attempts and starts at 1")
    base = min(policy.delays[min(attempts, len(policy.delays)) - 1], policy.max_delay)
    if jitter_key is None or policy.jitter == 0.0:
        return base
    return base * (1.0 - policy.jitter * _jitter_fraction(jitter_key, attempts))


def next_attempt_at(
    attempts: int,
    first_failed_at: datetime,
    now: datetime,
    policy: RetryPolicy,
    *,
    jitter_key: str | None = None,
) -> datetime | None:
    """When to try a message again after its ``attempts``-th failure, or ``None`` to give up.

    ``attempts`` is the number of attempts made so far, all failed (the worker calls this right
    after recording a failure, so it is at least 1). ``first_failed_at`` is when the first attempt
    failed; ``now`` is when the latest one did. Pass the message id as ``jitter_key`` to spread
    retries deterministically; leave it out for exact delays.

    Gives up when the schedule is used up, or when the next attempt would fall later than
    ``give_up_after`` past the first failure (a worker that was down must not revive stale alerts).
    """
    first = _require_utc("first_failed_at", first_failed_at)
    current = _require_utc("now", now)
    if attempts < 1:
        raise ValueError("attempts counts failed attempts and starts at 1")
    if current < first:
        raise ValueError("now is before first_failed_at")
    if attempts >= policy.max_attempts:
        return None
    at = current + retry_delay(attempts, policy, jitter_key=jitter_key)
    if policy.give_up_after is not None and at - first > policy.give_up_after:
        return None
    return at


def is_too_old(since: datetime, now: datetime, policy: RetryPolicy) -> bool:
    """Whether a due message is past ``give_up_after`` and must not be sent at all.

    ``since`` is when its first attempt failed or, never attempted yet, when it was queued.
    :func:`next_attempt_at` applies the age limit only when it schedules the *next* attempt;
    the attempt it scheduled (or a message's first) can still fall due long after the limit
    when the worker was down, and must then be dropped rather than sent: a worker back after
    days must not deliver the alerts that queued up meanwhile in one burst.
    """
    if policy.give_up_after is None:
        return False
    return _require_utc("now", now) - _require_utc("since", since) > policy.give_up_after


def retry_schedule(policy: RetryPolicy) -> list[timedelta]:
    """Offsets from the first attempt of every attempt a never-answering endpoint gets, without
    jitter: ``[0, 5 s, 5 min 5 s, …]``. For documentation and tests."""
    offsets = [timedelta(0)]
    for delay in policy.delays:
        offsets.append(offsets[-1] + min(delay, policy.max_delay))
    return offsets


def total_retry_span(policy: RetryPolicy) -> timedelta:
    """From the first to the last attempt of a never-answering endpoint, without jitter."""
    return retry_schedule(policy)[-1]


def is_endpoint_failing(failing_since: datetime | None, now: datetime, policy: RetryPolicy) -> bool:
    """Whether an endpoint has failed continuously for at least ``policy.failing_after``.

    ``failing_since`` is the time of the first failure after the endpoint's last success (``None``
    while it is healthy); :meth:`EndpointHealth.record` keeps it. Only *continuous* failure
    counts: one success resets the clock, so a flaky endpoint is retried, not disabled.
    """
    current = _require_utc("now", now)
    if failing_since is None:
        return False
    return current - _require_utc("failing_since", failing_since) >= policy.failing_after


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """The failure run of one endpoint: all the worker stores to apply the failing rule."""

    failing_since: datetime | None = None
    last_success_at: datetime | None = None

    def record(self, delivered: bool, at: datetime) -> EndpointHealth:
        """The health after one attempt at ``at``: a success clears the run, a failure starts
        it (or keeps its original start, so the run is measured from its first failure)."""
        at = _require_utc("at", at)
        if delivered:
            return EndpointHealth(failing_since=None, last_success_at=at)
        return EndpointHealth(
            failing_since=self.failing_since if self.failing_since is not None else at,
            last_success_at=self.last_success_at,
        )

    def is_failing(self, now: datetime, policy: RetryPolicy) -> bool:
        return is_endpoint_failing(self.failing_since, now, policy)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one delivery attempt achieved; the same type for webhooks and e-mail.

    ``reason`` is short and safe to store and log: ``"http 500"``, ``"timeout"``,
    ``"ConnectionRefusedError"`` — never a response body, a secret or the payload.
    ``retryable`` is false only when trying again cannot help (the URL is malformed or cannot be
    written into a request, the mail server rejects the recipient for good with a 5xx, or the
    relay can never take the address as written: a non-ASCII one without SMTPUTF8); the worker
    then gives up at once. A host that resolves to an unsafe address, or not at all, *is* retried:
    DNS can change, and every attempt checks again.
    """

    delivered: bool
    reason: str = "delivered"
    status_code: int | None = None
    retryable: bool = True

    @classmethod
    def ok(cls, status_code: int | None = None) -> DeliveryResult:
        return cls(delivered=True, reason="delivered", status_code=status_code, retryable=False)

    @classmethod
    def failed(
        cls, reason: str, *, status_code: int | None = None, retryable: bool = True
    ) -> DeliveryResult:
        # Bounded so a careless caller cannot stuff a response body into the outbox row.
        return cls(
            delivered=False, reason=reason[:200], status_code=status_code, retryable=retryable
        )


def _check(name: str, value: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidDeliveryMessage(
            f"{name} must be a short identifier matching {pattern.pattern}", field=name
        )
    return value


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as in the Standard Webhooks examples."""
    return _require_utc("timestamp", value).isoformat().replace("+00:00", "Z")


def message_id_for(clinic_id: str, event_type: str, alert_id: str) -> str:
    """The stable ``webhook-id`` of one event of one alert, e.g. ``msg_3f1c…``.

    Derived, not random, so enqueuing the same event twice (a retried request, a re-run job)
    yields the same id: the outbox can hold a unique constraint on it, and a receiver that got
    both copies can de-duplicate. Hex only: the id is part of the signed string
    ``{id}.{timestamp}.{body}``, so it must not contain dots.
    """
    _check("clinic_id", clinic_id, _ID_PATTERN)
    _check("type", event_type, _EVENT_TYPE_PATTERN)
    _check("alert_id", alert_id, _ID_PATTERN)
    digest = hashlib.sha256(f"{clinic_id}\x1f{event_type}\x1f{alert_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """One message as stored in the outbox: its stable id and the exact body to sign and send."""

    id: str
    body: str = field(repr=False)


def build_alert_payload(
    *, event_type: str, alert_id: str, kind: str, severity: str, occurred_at: datetime
) -> str:
    """The JSON body of an alert webhook: the event and the alert's clinic-scoped id, no more.

    Deterministic (sorted keys, compact separators, ASCII) so the body stored in the outbox and
    re-sent on every retry is byte-identical; ``occurred_at`` is the event's time, not the send
    time (the send time goes in the ``webhook-timestamp`` header).
    """
    payload = {
        "type": _check("type", event_type, _EVENT_TYPE_PATTERN),
        "timestamp": format_timestamp(occurred_at),
        "data": {
            "alert_id": _check("alert_id", alert_id, _ID_PATTERN),
            "kind": _check("kind", kind, _WORD_PATTERN),
            "severity": _check("severity", severity, _WORD_PATTERN),
        },
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def build_alert_message(
    *,
    clinic_id: str,
    event_type: str,
    alert_id: str,
    kind: str,
    severity: str,
    occurred_at: datetime,
) -> WebhookMessage:
    """The outbox entry for one alert event: :func:`message_id_for` plus
    :func:`build_alert_payload`."""
    return WebhookMessage(
        id=message_id_for(clinic_id, event_type, alert_id),
        body=build_alert_payload(
            event_type=event_type,
            alert_id=alert_id,
            kind=kind,
            severity=severity,
            occurred_at=occurred_at,
        ),
    )


#: Subject of every alert e-mail. Deliberately says nothing about the alert: subjects are shown
#: on lock screens and kept by relays.
ALERT_EMAIL_SUBJECT = "fit-service: new alert needs your attention"
DEFAULT_ALERT_LINK_TEMPLATE = "{base_url}/alerts/{alert_id}"


@dataclass(frozen=True, slots=True)
class ClinicianEmail:
    """A plain-text e-mail to a clinician. ``message_id`` (a :func:`message_id_for` value) is
    reused on every retry so mail clients can fold duplicates."""

    to: str
    subject: str
    body: str
    message_id: str | None = None


def build_alert_email(
    *,
    to: str,
    alert_id: str,
    base_url: str,
    message_id: str | None = None,
    link_template: str = DEFAULT_ALERT_LINK_TEMPLATE,
) -> ClinicianEmail:
    """The alert e-mail: a reference and a link, nothing about the client or the alert's kind.

    E-mail crosses relays the clinic does not control and sits in inboxes for years, so even the
    alert kind (which says something about a client's therapy) stays behind the link.
    """
    _check("alert_id", alert_id, _ID_PATTERN)
    if not to or any(c in to for c in "\r\n"):
        raise InvalidDeliveryMessage("to must be one e-mail address", field="to")
    link = link_template.format(base_url=base_url.rstrip("/"), alert_id=alert_id)
    body = (
        "Hello,\n\n"
        "fit-service has raised an alert for one of your clients that needs your attention.\n\n"
        f"Reference: {alert_id}\n"
        f"Look it up: {link}\n\n"
        "For privacy this e-mail contains no client details; please sign in to see them.\n"
    )
    return ClinicianEmail(to=to, subject=ALERT_EMAIL_SUBJECT, body=body, message_id=message_id)
