"""Errors gunicorn answers itself, in the service's one error shape.

Some bad requests never reach the application: a request line longer than gunicorn's limit
(4,094 bytes: a URL with a runaway query string), a header over its limit (8,190 bytes) or too
many headers, a request line or header that is not HTTP. gunicorn answers those itself with an
HTML page; an EHR's integration code expects ``application/problem+json`` naming the field and
the rule like every other refusal (api/problems.py). gunicorn has no hook for that page, so
:func:`install` replaces the one function that writes it (``gunicorn.util.write_error``, called
by every worker class's ``handle_error``); ``gunicorn.conf.py`` calls it in the master, before
the workers fork. These requests are refused before any key is read or any record touched, so
there is nothing to audit (and no request id: the application never saw them).
"""

from __future__ import annotations

import json
import socket
from typing import Any

#: gunicorn's status -> (rule, field) of the problem. Anything else is a malformed request.
_RULES: dict[int, tuple[str, str | None]] = {
    414: ("request_line_too_long", "url"),
    431: ("headers_too_large", "headers"),
    417: ("expectation_failed", "headers.Expect"),
    501: ("unsupported_transfer_coding", "headers.Transfer-Encoding"),
}
_MALFORMED = ("malformed_http", None)
_TITLES = {
    400: "Bad request",
    403: "Forbidden",
    414: "URI too long",
    417: "Expectation failed",
    431: "Request header fields too large",
    500: "Internal server error",
    501: "Not implemented",
}


def problem_bytes(status: int, reason: str, message: str) -> bytes:
    """The whole HTTP response gunicorn sends for ``status``: a problem+json body, and
    ``Connection: close`` as gunicorn's own page has (the connection is not reusable)."""
    if status >= 500 and status != 501:
        # gunicorn's 500 here is an error in the application or its configuration: say
        # nothing about it (the server log has it), as the application's own 500s do.
        rule, field, detail = "internal_error", None, "internal error"
    else:
        rule, field = _RULES.get(status, _MALFORMED)
        detail = message or reason
    body: dict[str, Any] = {
        "type": f"urn:fit-service:problem:{rule}",
        "title": _TITLES.get(status, reason),
        "status": status,
        "detail": detail,
        "rule": rule,
        "field": field,
        "errors": [{"field": field, "rule": rule, "detail": detail}],
    }
    payload = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode("latin-1") + payload


def write_problem(sock: socket.socket, status: int, reason: str, message: str) -> None:
    """Drop-in for ``gunicorn.util.write_error`` (same arguments)."""
    from gunicorn import util  # noqa: PLC0415 - gunicorn is the server, not a library we call

    util.write_nonblock(sock, problem_bytes(status, reason, message))


def install() -> None:
    """Make gunicorn answer its own refusals with :func:`write_problem`."""
    from gunicorn import util  # noqa: PLC0415

    util.write_error = write_problem
