"""Engine settings the service relies on when the database misbehaves."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError
from werkzeug.test import TestResponse

from fit_service.adapters import db
from fit_service.app import create_app
from fit_service.config import Settings


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung or overloaded server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_postgresql_connect_gives_up_on_a_server_that_never_answers(
    silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a connect timeout libpq waits forever, and so /readyz (and every request)
    hung instead of answering 503."""
    monkeypatch.setattr(db, "PG_CONNECT_TIMEOUT_S", 2, raising=False)
    app = create_app(
        Settings(database_url=f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/x")
    )
    answers: list[TestResponse] = []
    # In a thread, so a regression fails the test instead of hanging the suite.
    probe = threading.Thread(
        target=lambda: answers.append(app.test_client().get("/readyz")), daemon=True
    )
    probe.start()
    probe.join(timeout=10)
    assert answers, "/readyz did not answer within 10 s"
    response = answers[0]
    assert response.status_code == 503
    assert response.json == {
        "status": "unavailable",
        "database": "unreachable",
        "error": "OperationalError",
    }


def test_a_connect_timeout_in_the_url_wins(silent_server: int) -> None:
    engine = db.make_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/x?connect_timeout=2"
    )
    started = time.monotonic()
    with pytest.raises(OperationalError):
        engine.connect()
    assert time.monotonic() - started < 8
    engine.dispose()
