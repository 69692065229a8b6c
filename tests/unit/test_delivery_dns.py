"""Name lookups for webhook hosts are bounded in time (getaddrinfo has no timeout of its own)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from fit_service.adapters import webhooks

_INFO = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]


def test_a_lookup_that_never_answers_gives_up_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A nameserver that never answers held the lookup (and the admin's registration request
    or the worker's send) for as long as the system resolver kept retrying."""
    release = threading.Event()

    def stuck(*_args: Any, **_kwargs: Any) -> list[Any]:
        release.wait(10)
        return _INFO

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            webhooks.resolve_host("slow.example", 443, timeout=0.2)
        with pytest.raises(webhooks.UnresolvableWebhookHost):
            webhooks.check_webhook_url(
                "https://slow.example/hook",
                resolver=lambda host, port: webhooks.resolve_host(host, port, timeout=0.2),
            )
    finally:
        release.set()
    assert time.monotonic() - started < 2


def test_a_prompt_lookup_and_a_failed_one_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_a, **_k: _INFO)
    assert webhooks.resolve_host("fast.example", 443) == ["93.184.216.34"]

    def unknown(*_args: Any, **_kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(socket.gaierror):
        webhooks.resolve_host("nowhere.example", 443)
