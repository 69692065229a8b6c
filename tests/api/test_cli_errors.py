"""CLI commands end with a clear message and an exit code, not a traceback, when the database
is missing or unmigrated, a migration cannot be found, or an option's value cannot work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text

from fit_service.adapters import migrations
from fit_service.app import create_app
from fit_service.config import Settings


@pytest.fixture
def unmigrated_app(tmp_path: Path) -> Flask:
    return create_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'new.sqlite3'}", instance_path=tmp_path)
    )


@pytest.mark.parametrize(
    "args",
    [
        ["create-clinic", "Clinic A"],
        ["list-clinics"],
        ["revoke-key", "abc"],
        ["recompute-session-totals"],
        ["reports", "archive", "--month", "2026-10"],
    ],
)
def test_commands_on_an_unmigrated_database_say_so(unmigrated_app: Flask, args: list[str]) -> None:
    out = unmigrated_app.test_cli_runner().invoke(args=["fit", *args])
    assert out.exit_code == 1, out.output
    assert isinstance(out.exception, SystemExit), out.exception  # not an OperationalError
    assert "database error (OperationalError: no such table:" in out.output
    assert "'fit migrate'" in out.output
    assert "INSERT" not in out.output  # no SQL echoed
    assert "SELECT" not in out.output


def test_migrate_to_an_unknown_revision_says_so(app: Flask) -> None:
    out = app.test_cli_runner().invoke(args=["fit", "migrate", "--revision", "0099"])
    assert out.exit_code == 1, out.output
    assert isinstance(out.exception, SystemExit), out.exception
    assert "migration failed: Can't locate revision identified by '0099'" in out.output


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--lease-seconds", "0"], "'--lease-seconds': 0.0 is not in the range x>0"),
        (["--batch", "0"], "'--batch': 0 is not in the range x>=1"),
        (["--poll-seconds", "-1"], "'--poll-seconds': -1.0 is not in the range x>0"),
        (["--max-send-seconds", "0"], "'--max-send-seconds': 0.0 is not in the range x>0"),
        (
            ["--lease-seconds", "30", "--max-send-seconds", "30"],
            "--max-send-seconds: 30 is not shorter than --lease-seconds 30",
        ),
    ],
)
def test_worker_refuses_option_values_that_cannot_work(
    app: Flask, args: list[str], complaint: str
) -> None:
    """A zero lease or send limit crashed with a ValueError traceback; a zero or negative
    poll interval was accepted and would have polled the outbox in a busy loop."""
    out = app.test_cli_runner().invoke(args=["fit", "worker", "--once", *args])
    assert out.exit_code == 2, out.output
    assert complaint in out.output
    assert "claimed" not in out.output  # the worker did not start


def test_migrate_to_an_older_revision_does_not_claim_it_got_there(app: Flask) -> None:
    """Alembic does nothing for an upgrade to an older revision; the command said
    "database at migration 0002" while the database stayed at head."""
    head = migrations.head_revision()
    runner = app.test_cli_runner()
    out = runner.invoke(args=["fit", "migrate", "--revision", "0002"])
    assert out.exit_code == 1, out.output
    assert f"database stays at migration {head}: 0002 is older" in out.output
    with app.extensions["fit"].engine.connect() as conn:
        assert migrations.current_revision(conn) == head
    again = runner.invoke(args=["fit", "migrate"])
    assert again.exit_code == 0, again.output
    assert again.output == f"database at migration {head}\n"


def test_migrate_leaves_a_database_a_newer_release_migrated_alone(app: Flask) -> None:
    """During a rolling upgrade or after a rollback an older instance runs 'fit migrate' as it
    starts: a revision it does not know is a newer release's, left as it is (exit 0, as
    /readyz answers 200 "ahead"), not a failure that keeps the instance from starting."""
    engine = app.extensions["fit"].engine
    head = migrations.head_revision()
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    try:
        out = app.test_cli_runner().invoke(args=["fit", "migrate"])
        with engine.connect() as conn:
            found = migrations.current_revision(conn)
        ready = app.test_client().get("/readyz")
    finally:
        # The PostgreSQL test database is shared by the process's tests (its tables are
        # emptied between them, not its alembic_version).
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert out.exit_code == 0, out.output
    assert "database at migration 9999, newer than this release knows" in out.output
    assert found == "9999"
    assert (ready.status_code, ready.json["schema"]["ahead"]) == (200, True)


@pytest.mark.parametrize("offset", [2, 400])
def test_check_risks_refuses_a_today_in_the_future(app: Flask, offset: int) -> None:
    """A mistyped ``--today`` a year ahead would open a long-gap alert for every open episode
    and send them to clinicians; a date past any clinic's today (UTC today + 1 day, the
    furthest ahead a time zone is) is refused before anything is assessed."""
    day = (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()
    with app.app_context():
        out = app.test_cli_runner().invoke(args=["fit", "check-risks", "--today", day])
    assert out.exit_code == 2, out.output
    assert "'--today'" in out.output
    assert "is in the future" in out.output


def test_check_risks_accepts_today(app: Flask) -> None:
    day = datetime.now(UTC).date().isoformat()
    with app.app_context():
        out = app.test_cli_runner().invoke(args=["fit", "check-risks", "--today", day])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("episodes 0,")
