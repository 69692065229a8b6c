"""Delivery policy (retry schedule, failing endpoints, thin messages) and webhook URL safety.

No network: URL checks run on an injected resolver.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from fit_service.adapters.email import RecordingEmailSender, SmtpSettings
from fit_service.adapters.webhooks import (
    InvalidWebhookUrl,
    RecordingWebhookSender,
    UnresolvableWebhookHost,
    UnsafeWebhookUrl,
    WebhookEndpoint,
    check_secret,
    check_webhook_url,
    generate_secret,
    sign_headers,
    unsafe_address_reason,
)
from fit_service.config import Settings
from fit_service.domain.delivery import (
    ALERT_EMAIL_SUBJECT,
    DEFAULT_RETRY_DELAYS,
    DeliveryResult,
    EndpointHealth,
    InvalidDeliveryMessage,
    RetryPolicy,
    WebhookMessage,
    build_alert_email,
    build_alert_message,
    build_alert_payload,
    is_endpoint_failing,
    is_too_old,
    message_id_for,
    next_attempt_at,
    retry_delay,
    retry_schedule,
    total_retry_span,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy()


# --- retry schedule ------------------------------------------------------------------------


def test_default_schedule_is_the_documented_svix_one() -> None:
    """The default attempts fall at 0, 5 s, 5 min 5 s, … 27 h 35 min 5 s after the first."""
    assert retry_schedule(POLICY) == [
        timedelta(0),
        timedelta(seconds=5),
        timedelta(minutes=5, seconds=5),
        timedelta(minutes=35, seconds=5),
        timedelta(hours=2, minutes=35, seconds=5),
        timedelta(hours=7, minutes=35, seconds=5),
        timedelta(hours=17, minutes=35, seconds=5),
        timedelta(hours=27, minutes=35, seconds=5),
    ]
    assert POLICY.max_attempts == 8


def test_first_failure_is_retried_after_five_seconds() -> None:
    """Without a jitter key the delay is exact: 5 s after the first failure."""
    assert next_attempt_at(1, T0, T0, POLICY) == T0 + timedelta(seconds=5)


def test_gives_up_when_the_schedule_is_used_up() -> None:
    """After the 8th failed attempt there is no next attempt."""
    now = T0 + total_retry_span(POLICY)
    assert next_attempt_at(7, T0, now - timedelta(hours=10), POLICY) is not None
    assert next_attempt_at(8, T0, now, POLICY) is None


def test_gives_up_when_the_message_is_too_old() -> None:
    """A worker back after two days does not revive a stale alert, even with attempts left."""
    late = T0 + timedelta(hours=47, minutes=59, seconds=58)
    assert next_attempt_at(1, T0, late, POLICY) is None
    assert next_attempt_at(1, T0, late, RetryPolicy(give_up_after=None)) is not None


def test_a_due_message_past_the_age_limit_is_too_old_to_send() -> None:
    """The age limit also stops the attempt a message already has scheduled (or its first one)
    when it falls due late: 48 h is still sendable, a second more is not; no limit, no age."""
    assert not is_too_old(T0, T0 + timedelta(hours=48), POLICY)
    assert is_too_old(T0, T0 + timedelta(hours=48, seconds=1), POLICY)
    assert not is_too_old(T0, T0 + timedelta(days=30), RetryPolicy(give_up_after=None))
    with pytest.raises(ValueError, match="naive"):
        is_too_old(T0.replace(tzinfo=None), T0, POLICY)


def test_the_whole_default_schedule_fits_inside_the_age_limit() -> None:
    """A never-answering endpoint gets all 8 attempts when the worker runs on time."""
    at: datetime | None = T0
    attempts = 0
    while at is not None:
        attempts += 1
        at = next_attempt_at(attempts, T0, at, POLICY, jitter_key="msg_x")
    assert attempts == POLICY.max_attempts


def test_jitter_is_deterministic_per_message_and_attempt() -> None:
    """The same key and attempt give the same retry time; different messages spread out."""
    a1 = next_attempt_at(3, T0, T0, POLICY, jitter_key="msg_a")
    assert a1 == next_attempt_at(3, T0, T0, POLICY, jitter_key="msg_a")
    others = {next_attempt_at(3, T0, T0, POLICY, jitter_key=f"msg_{i}") for i in range(20)}
    assert len(others) > 1


def test_naive_datetimes_are_refused() -> None:
    """A naive datetime is an error, not silently read as UTC or local time."""
    with pytest.raises(ValueError, match="aware"):
        next_attempt_at(1, T0, datetime(2025, 3, 1, 9, 0), POLICY)


def test_non_utc_aware_datetimes_are_converted() -> None:
    """An aware datetime in another zone means the same instant; the answer comes back in UTC."""
    cet = T0.astimezone(timezone(timedelta(hours=1)))
    result = next_attempt_at(1, cet, cet, POLICY)
    assert result == T0 + timedelta(seconds=5)
    assert result is not None
    assert result.utcoffset() == timedelta(0)


def test_policy_rejects_decreasing_delays() -> None:
    """A policy whose delays shrink is a configuration error caught at construction."""
    with pytest.raises(ValueError, match="never decrease"):
        RetryPolicy(delays=(timedelta(hours=1), timedelta(minutes=1)))


delay_lists = st.lists(st.integers(min_value=1, max_value=48 * 3600), min_size=1, max_size=12).map(
    lambda xs: tuple(timedelta(seconds=x) for x in sorted(xs))
)


@given(
    delays=delay_lists,
    max_hours=st.integers(min_value=1, max_value=48),
    jitter=st.floats(min_value=0.0, max_value=0.5),
    key=st.text(min_size=1, max_size=20),
)
def test_delays_never_decrease_and_never_exceed_the_max(
    delays: tuple[timedelta, ...], max_hours: int, jitter: float, key: str
) -> None:
    """For any valid policy, base delays never decrease and no delay (jittered or not) exceeds
    max_delay or falls below base * (1 - jitter)."""
    policy = RetryPolicy(delays=delays, max_delay=timedelta(hours=max_hours), jitter=jitter)
    base = [retry_delay(n, policy) for n in range(1, len(delays) + 4)]
    assert all(a <= b for a, b in itertools.pairwise(base))
    for n, b in enumerate(base, start=1):
        jittered = retry_delay(n, policy, jitter_key=key)
        assert b * (1 - jitter) - timedelta(microseconds=1) <= jittered <= b <= policy.max_delay


@given(
    attempts=st.integers(min_value=1, max_value=20),
    elapsed=st.integers(min_value=0, max_value=72 * 3600),
    key=st.none() | st.text(max_size=10),
)
def test_next_attempt_is_in_the_future_and_within_the_age_limit(
    attempts: int, elapsed: int, key: str | None
) -> None:
    """Any answer lies after now and no later than give_up_after past the first failure."""
    now = T0 + timedelta(seconds=elapsed)
    at = next_attempt_at(attempts, T0, now, POLICY, jitter_key=key)
    if at is not None:
        assert now < at <= T0 + timedelta(hours=48)
        assert attempts < POLICY.max_attempts


@given(key=st.text(max_size=10))
def test_default_schedule_spans_hours_even_with_jitter(key: str) -> None:
    """A failing receiver is retried for more than a day, so an overnight outage loses nothing."""
    at: datetime | None = T0
    last, attempts = T0, 0
    while at is not None:
        last, attempts = at, attempts + 1
        at = next_attempt_at(attempts, T0, at, POLICY, jitter_key=key)
    assert last - T0 >= timedelta(hours=24)
    assert sum(DEFAULT_RETRY_DELAYS, timedelta(0)) > timedelta(hours=24)


# --- failing endpoints ---------------------------------------------------------------------


def test_healthy_endpoint_is_not_failing() -> None:
    """No failure run means not failing."""
    assert not is_endpoint_failing(None, T0, POLICY)


def test_endpoint_is_failing_after_a_day_of_continuous_failure() -> None:
    """The rule fires at failing_after (24 h by default), not a second before."""
    assert not is_endpoint_failing(T0, T0 + timedelta(hours=24) - timedelta(seconds=1), POLICY)
    assert is_endpoint_failing(T0, T0 + timedelta(hours=24), POLICY)


def test_failing_period_is_configurable() -> None:
    """A clinic can choose a shorter failing period."""
    policy = RetryPolicy(failing_after=timedelta(hours=2))
    assert is_endpoint_failing(T0, T0 + timedelta(hours=2), policy)


def test_one_success_resets_the_failure_run() -> None:
    """Failures, a success, then failures: the run is measured from the first new failure."""
    health = EndpointHealth().record(False, T0).record(False, T0 + timedelta(hours=20))
    assert health.failing_since == T0
    assert health.is_failing(T0 + timedelta(hours=25), POLICY)
    health = health.record(True, T0 + timedelta(hours=25))
    assert health.failing_since is None
    health = health.record(False, T0 + timedelta(hours=26))
    assert not health.is_failing(T0 + timedelta(hours=49), POLICY)
    assert health.is_failing(T0 + timedelta(hours=50), POLICY)


# --- thin, deterministic messages ----------------------------------------------------------


def _payload(**overrides: object) -> str:
    fields: dict[str, object] = {
        "event_type": "alert.opened",
        "alert_id": "a1b2c3",
        "kind": "early_low_alliance",
        "severity": "high",
        "occurred_at": T0,
    }
    fields.update(overrides)
    return build_alert_payload(**fields)  # type: ignore[arg-type]


def test_payload_is_compact_sorted_and_identical_every_time() -> None:
    """The same event always serialises to the same bytes (so retries are byte-identical)."""
    body = _payload()
    assert body == _payload()
    assert body == (
        '{"data":{"alert_id":"a1b2c3","kind":"early_low_alliance","severity":"high"},'
        '"timestamp":"2025-03-01T09:00:00Z","type":"alert.opened"}'
    )


def test_payload_carries_only_the_alert_reference() -> None:
    """The data object holds the alert id, kind and severity — nothing about the client."""
    data = json.loads(_payload())["data"]
    assert set(data) == {"alert_id", "kind", "severity"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"alert_id": "Jane Doe"},
        {"kind": "SRS total 31 for client 42"},
        {"severity": "high; client=jane@example.org"},
        {"event_type": "alert"},
        {"alert_id": ""},
    ],
)
def test_free_text_cannot_reach_a_payload(overrides: dict[str, object]) -> None:
    """Anything but a short identifier is refused, so client data cannot slip into a message."""
    with pytest.raises(InvalidDeliveryMessage):
        _payload(**overrides)


def test_message_id_is_stable_and_distinct_per_event() -> None:
    """The same event of the same alert has one webhook-id; another event or clinic another."""
    first = message_id_for("clinic1", "alert.opened", "a1")
    assert first == message_id_for("clinic1", "alert.opened", "a1")
    assert first.startswith("msg_")
    assert "." not in first
    assert first != message_id_for("clinic1", "alert.closed", "a1")
    assert first != message_id_for("clinic2", "alert.opened", "a1")


def test_alert_message_bundles_id_and_body() -> None:
    """build_alert_message gives the outbox the stable id and the exact body to send."""
    msg = build_alert_message(
        clinic_id="c1",
        event_type="alert.opened",
        alert_id="a1",
        kind="early_low_alliance",
        severity="high",
        occurred_at=T0,
    )
    assert msg.id == message_id_for("c1", "alert.opened", "a1")
    assert json.loads(msg.body)["data"]["alert_id"] == "a1"
    assert "body" not in repr(msg)


def test_alert_email_has_reference_and_link_but_no_details() -> None:
    """The e-mail names the alert and links to it, and leaves even the alert kind out."""
    email = build_alert_email(
        to="dr.who@clinic.example", alert_id="a1b2", base_url="https://fit.example/", message_id="m"
    )
    assert email.subject == ALERT_EMAIL_SUBJECT
    assert "Reference: a1b2" in email.body
    assert "https://fit.example/alerts/a1b2" in email.body
    assert "alliance" not in email.body


def test_alert_email_link_template_is_configurable() -> None:
    """A clinic front-end with its own routes can set the link template."""
    email = build_alert_email(
        to="x@y.example",
        alert_id="a1",
        base_url="https://ui.example",
        link_template="{base_url}/#/alert?id={alert_id}",
    )
    assert "https://ui.example/#/alert?id=a1" in email.body


def test_failure_reason_is_bounded() -> None:
    """A failure reason is cut short, so no response body can flood the outbox."""
    assert len(DeliveryResult.failed("x" * 10_000).reason) == 200


# --- secrets and signing -------------------------------------------------------------------


def _message() -> WebhookMessage:
    return build_alert_message(
        clinic_id="c1",
        event_type="alert.opened",
        alert_id="a1",
        kind="early_low_alliance",
        severity="high",
        occurred_at=T0,
    )


def test_generated_secret_has_prefix_and_32_random_bytes() -> None:
    """Secrets are whsec_ + base64 of 32 fresh bytes and never repeat."""
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret != generate_secret()
    assert check_secret(generate_secret(24)) is not None


@pytest.mark.parametrize("bad", ["abc", "whsec_", "whsec_!!notbase64!!", "whsec_" + "QUJD"])
def test_malformed_secrets_are_refused(bad: str) -> None:
    """A secret without the prefix, not base64, or shorter than 24 bytes is an error."""
    with pytest.raises(ValueError, match="secret"):
        WebhookEndpoint(url="https://x.example/hook", secret=bad)


def test_endpoint_repr_hides_the_secret() -> None:
    """Printing or logging an endpoint does not reveal its secret."""
    secret = generate_secret()
    assert secret not in repr(WebhookEndpoint(url="https://x.example/hook", secret=secret))


def test_signed_headers_verify_with_standardwebhooks() -> None:
    """Headers made by sign_headers pass the library's own verification."""
    secret = generate_secret()
    msg = _message()
    headers = sign_headers(secret, msg, datetime.now(UTC))
    assert headers["webhook-id"] == msg.id
    assert Webhook(secret).verify(msg.body, headers)["data"]["alert_id"] == "a1"


def test_signing_a_non_utc_timestamp_signs_the_same_instant() -> None:
    """A timestamp in another zone signs as the same instant (the library alone would not)."""
    secret = generate_secret()
    msg = _message()
    now = datetime.now(UTC)
    headers = sign_headers(secret, msg, now.astimezone(timezone(timedelta(hours=-5))))
    assert headers == sign_headers(secret, msg, now)
    Webhook(secret).verify(msg.body, headers)


# --- URL safety ----------------------------------------------------------------------------


class FakeResolver:
    """A resolver from a fixed table that remembers which hosts it was asked about."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise OSError("no such host")
        return self.table[host]


UNSAFE = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata service
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",  # unspecified
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
]


@pytest.mark.parametrize("address", UNSAFE)
def test_private_and_special_addresses_are_refused(address: str) -> None:
    """Loopback, private, link-local, multicast, reserved, unspecified, v6 and mapped forms."""
    resolver = FakeResolver({"hook.example": [address]})
    assert unsafe_address_reason(ipaddress.ip_address(address)) is not None
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url("https://hook.example/x", resolver=resolver)


@pytest.mark.parametrize("address", UNSAFE)
def test_ip_literal_urls_are_checked_too(address: str) -> None:
    """A URL with an IP literal is judged by that address, without asking the resolver."""
    resolver = FakeResolver({})
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url(f"http://{host}/hook", resolver=resolver)
    assert resolver.calls == []


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    """A host that resolves only to public addresses passes, with its addresses kept."""
    resolver = FakeResolver({"hook.example": [address]})
    checked = check_webhook_url("https://hook.example:8443/in?x=1#frag", resolver=resolver)
    assert (checked.host, checked.port, checked.target) == ("hook.example", 8443, "/in?x=1")
    assert checked.addresses == (address,)


def test_one_private_record_among_public_ones_is_refused() -> None:
    """Every resolved address must be public, not just the first."""
    resolver = FakeResolver({"hook.example": ["8.8.8.8", "10.0.0.5"]})
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url("https://hook.example/", resolver=resolver)


def test_allow_private_lets_loopback_through() -> None:
    """allow_private=True (tests, on-premises receivers) accepts private addresses."""
    resolver = FakeResolver({"intranet": ["10.0.0.5"]})
    checked = check_webhook_url("http://intranet/hook", allow_private=True, resolver=resolver)
    assert checked.addresses == ("10.0.0.5",)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hook.example/x",
        "file:///etc/passwd",
        "gopher://hook.example/",
        "javascript:alert(1)",
        "https://user:pw@hook.example/",
        "https:///nohost",
        "https://hook.example:99999/",
    ],
)
def test_non_http_and_malformed_urls_are_refused(url: str) -> None:
    """Only plain http(s) URLs without credentials are accepted, even with allow_private."""
    resolver = FakeResolver({"hook.example": ["8.8.8.8"]})
    with pytest.raises(InvalidWebhookUrl):
        check_webhook_url(url, allow_private=True, resolver=resolver)


def test_unresolvable_host_is_its_own_error() -> None:
    """A host that does not resolve is reported as such (retryable at send time)."""
    with pytest.raises(UnresolvableWebhookHost):
        check_webhook_url("https://nowhere.example/", resolver=FakeResolver({}))


# --- test doubles and settings -------------------------------------------------------------


def test_recording_webhook_sender_records_and_replays_scripted_results() -> None:
    """The fake records each call and answers with the scripted results, then delivered."""
    sender = RecordingWebhookSender([DeliveryResult.failed("http 500", status_code=500)])
    endpoint = WebhookEndpoint(url="https://x.example/h", secret=generate_secret())
    msg = _message()
    assert not sender.send(endpoint, msg).delivered
    assert sender.send(endpoint, msg).delivered
    assert [s.message.id for s in sender.sent] == [msg.id, msg.id]


def test_recording_email_sender_records_and_replays_scripted_results() -> None:
    """The e-mail fake behaves like the webhook fake."""
    sender = RecordingEmailSender()
    sender.will_return(DeliveryResult.failed("timeout"))
    email = build_alert_email(to="a@b.example", alert_id="a1", base_url="https://f.example")
    assert sender.send(email).reason == "timeout"
    assert sender.send(email).delivered
    assert sender.sent == [email, email]


def test_smtp_settings_come_from_service_settings() -> None:
    """E-mail is off without a host; with one, the password stays out of repr."""
    assert SmtpSettings.from_settings(Settings()) is None
    smtp = SmtpSettings.from_settings(
        Settings(
            smtp_host="mail.example",
            smtp_username="u",
            smtp_password="hunter2",
            smtp_starttls=True,
        )
    )
    assert smtp is not None
    assert (smtp.username, smtp.password) == ("u", "hunter2")
    assert "hunter2" not in repr(smtp)
