"""Finding of the delivery security review: an SMTP relay's name lookup is bounded by the
send's deadline, so an e-mail send never outlasts the worker's max_send (no network).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from fit_service.adapters.email import SmtpEmailSender, SmtpSettings
from fit_service.domain.delivery import ClinicianEmail, build_alert_email


def _email() -> ClinicianEmail:
    return build_alert_email(to="a@clinic.example", alert_id="a1", base_url="https://f.example")


def test_a_relay_name_that_never_resolves_ends_at_the_send_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """getaddrinfo has no timeout: a nameserver that never answered held the e-mail send past
    its deadline (and the worker's max_send, and the row's lease), for as long as the system
    resolver retried — here 4 s against a 1 s deadline."""
    release = threading.Event()

    def stuck(host: str, port: object, *args: Any, **kwargs: Any) -> list[Any]:
        release.wait(4)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    sender = SmtpEmailSender(SmtpSettings(host="relay.example", timeout=0.5, deadline=1.0))
    started = time.monotonic()
    try:
        result = sender.send(_email())
    finally:
        release.set()
    assert time.monotonic() - started < 2.5
    assert (result.delivered, result.retryable) == (False, True)
