"""Requests gunicorn refuses before the application sees them still get problem+json.

Run against a real gunicorn started from the repository (as ``./dev run`` starts it, so its
``gunicorn.conf.py`` is read): a test client never goes through gunicorn's parser.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fit_service.api.server_errors import problem_bytes

_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder = tmp_path_factory.mktemp("gunicorn")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FIT_")},
        "FIT_DATABASE_URL": f"sqlite:///{folder / 'fit.sqlite3'}",
        "FIT_INSTANCE_PATH": str(folder),
    }
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "wsgi:app"]
    process = subprocess.Popen(
        command,
        cwd=_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` and read the whole answer (gunicorn closes the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


@pytest.mark.parametrize(
    ("raw", "status", "rule", "field"),
    [
        (
            b"GET /v1/clients?x=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "request_line_too_long",
            "url",
        ),
        (
            b"GET /v1/clients HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
            431,
            "headers_too_large",
            "headers",
        ),
        (b"GET /v1/clients HTTP/9.9\r\nHost: x\r\n\r\n", 400, "malformed_http", None),
    ],
)
def test_gunicorn_refusals_are_problem_json(
    server: int, raw: bytes, status: int, rule: str, field: str | None
) -> None:
    """They were gunicorn's HTML pages, the one place the API answered in another shape."""
    got, headers, body = _exchange(server, raw)
    assert got == status
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert (problem["status"], problem["rule"], problem["field"]) == (status, rule, field)
    assert problem["errors"] == [{"field": field, "rule": rule, "detail": problem["detail"]}]


def test_the_application_still_answers_through_the_same_server(server: int) -> None:
    """Only gunicorn's own error page changed: a normal request reaches the app."""
    got, _headers, body = _exchange(
        server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert got == 200
    assert json.loads(body)["status"] == "ok"


def test_a_server_side_500_says_nothing_of_its_cause() -> None:
    raw = problem_bytes(500, "Internal Server Error", "secret detail")
    assert b"secret detail" not in raw
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["rule"] == "internal_error"
