"""An unhandled error: a 500 problem whose request id finds one log line, and that line holds
no row values (a PostgreSQL error's DETAIL quotes them) and no bound parameters."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.exc import IntegrityError

from tests.conftest import Tenant, session_payload

SECRET = "C-SECRET"


class _DriverError(Exception):
    """Stands in for psycopg's UniqueViolation: the DETAIL line quotes the row."""


def test_a_database_error_is_logged_once_with_the_request_id_and_no_row_values(
    client: FlaskClient,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A forced IntegrityError whose driver text quotes ``C-SECRET`` in its DETAIL line (and
    whose parameters hold it too): 500 problem+json naming the request id; one ERROR record,
    which names the request id and the error's type and first line, and whose text, traceback
    included, never holds ``C-SECRET`` (before: logged twice, by Flask and by the handler, with
    the whole exception text and without the request id)."""
    from fit_service.api import sessions  # noqa: PLC0415

    def fail(*_: Any, **__: Any) -> Any:
        raise IntegrityError(
            "INSERT INTO clients (clinic_id, external_id) VALUES (%(c)s, %(e)s)",
            {"c": 1, "e": SECRET},
            _DriverError(
                'duplicate key value violates unique constraint "uq_clients_external_id"\n'
                f"DETAIL:  Key (external_id)=({SECRET}) already exists."
            ),
        )

    monkeypatch.setattr(sessions, "record_sessions", fail)
    caplog.set_level(logging.INFO)
    resp = client.post(
        "/v1/sessions",
        json=session_payload(client_id=SECRET),
        headers={**tenant.auth(), "X-Request-Id": "req-500-check"},
    )
    assert resp.status_code == 500
    assert resp.mimetype == "application/problem+json"
    assert resp.json["rule"] == "internal_error"
    assert resp.json["request_id"] == "req-500-check"
    assert SECRET not in resp.get_data(as_text=True)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    (record,) = errors
    text = logging.Formatter().format(record)
    assert "req-500-check" in text
    assert "IntegrityError" in text
    assert "uq_clients_external_id" in text
    assert "in fail" in text  # the frames are kept
    assert SECRET not in text
    assert "DETAIL" not in text
    assert SECRET not in caplog.text


def test_an_unhandled_error_is_logged_with_its_frames_not_its_locals(
    client: FlaskClient,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any other unhandled error: one ERROR record with the request id, the type, the first
    line of the message and the traceback's frames."""
    from fit_service.api import sessions  # noqa: PLC0415

    def fail(*_: Any, **__: Any) -> Any:
        raise RuntimeError("first line\nsecond line with " + SECRET)

    monkeypatch.setattr(sessions, "record_sessions", fail)
    resp = client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
    assert resp.status_code == 500
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    text = logging.Formatter().format(record)
    assert resp.headers["X-Request-Id"] in text
    assert "RuntimeError: first line" in text
    assert SECRET not in text
    assert "test_unhandled_errors.py" in text


def test_a_postgresql_error_is_summarised_by_its_codes_not_its_message(engine: Any) -> None:
    """PostgreSQL's first line can quote the value it refused (``invalid input syntax for type
    uuid: "C-SECRET"``): the summary names the SQLSTATE and the type, never the message. (On
    SQLite, whose messages name columns rather than values, the first line is kept.)"""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's diagnostics: SQLite has none")
    from sqlalchemy import text  # noqa: PLC0415
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415

    from fit_service.app import error_summary  # noqa: PLC0415

    with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(text("SELECT CAST(:v AS uuid)"), {"v": SECRET})
    summary = error_summary(caught.value)
    assert "sqlstate 22P02" in summary
    assert SECRET not in summary


def test_a_connection_failure_keeps_its_first_line() -> None:
    """psycopg's own errors (no SQLSTATE: the server never answered) say what failed in their
    first line, which names the server, not data: kept, so a 500 from a database outage says
    so in the log."""
    import psycopg  # noqa: PLC0415
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    from fit_service.app import error_summary  # noqa: PLC0415

    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect("host=127.0.0.1 port=1 connect_timeout=2")
    summary = error_summary(OperationalError("SELECT 1", None, caught.value))
    assert "Connection refused" in summary or "connection" in summary.lower(), summary
    assert summary != "OperationalError (OperationalError)"
