"""An operator's mistakes with the CLI and the FIT_* settings end with one clear line and a
non-zero exit, never a traceback, and never print a secret (README: "Administration (CLI)",
"Configuration")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from fit_service.adapters.orm import ApiKey
from fit_service.app import create_app
from fit_service.config import ConfigError, Settings
from tests.api.test_cli_config import run_cli


def _clinic(app: Flask, name: str = "Ops Clinic") -> str:
    out = app.test_cli_runner().invoke(args=["fit", "create-clinic", name])
    assert out.exit_code == 0, out.output
    match = re.search(r"clinic created: (\S+)", out.output)
    assert match is not None
    return match.group(1)


def _key(app: Flask, clinic_id: str) -> tuple[str, str]:
    out = app.test_cli_runner().invoke(args=["fit", "create-key", clinic_id, "--role", "admin"])
    assert out.exit_code == 0, out.output
    secret = next(line for line in out.output.splitlines() if line.startswith("fit_"))
    return secret.split("_", 2)[1], secret


def test_revoke_key_given_the_whole_key_revokes_it_without_printing_the_secret(
    app: Flask,
) -> None:
    """Pasting the whole key (as the EHR holds it) answered "no API key with prefix fit_…_…":
    the secret echoed to the terminal and its scroll-back, and the key left active."""
    prefix, secret = _key(app, _clinic(app))
    runner = app.test_cli_runner()
    out = runner.invoke(args=["fit", "revoke-key", secret])
    assert out.exit_code == 0, out.output
    assert secret.split("_", 2)[2] not in out.output
    assert f"key {prefix} revoked" in out.output
    with app.extensions["fit"].uow() as uow:
        revoked = uow.session.scalar(select(ApiKey.revoked_at).where(ApiKey.prefix == prefix))
    assert revoked is not None
    again = runner.invoke(args=["fit", "revoke-key", secret])
    assert again.exit_code == 1
    assert "already revoked" in again.output
    assert secret.split("_", 2)[2] not in again.output


def test_revoke_key_never_echoes_an_unknown_full_key(app: Flask) -> None:
    secret = "fit_000000000000_" + "s" * 43
    out = app.test_cli_runner().invoke(args=["fit", "revoke-key", secret])
    assert out.exit_code == 1
    assert "s" * 43 not in out.output
    assert "no API key with prefix '000000000000'" in out.output


@pytest.mark.parametrize(
    "args",
    [
        ["create-clinic", "Evil\nClinic"],
        ["create-clinic", "Red \x1b[31m clinic"],
        ["create-key", "{clinic}", "--role", "manager", "--name", "two\nlines"],
        ["create-key", "{clinic}", "--role", "manager", "--name", "bell\x07"],
    ],
)
def test_names_with_control_characters_are_refused(app: Flask, args: list[str]) -> None:
    """A line break made list-clinics / list-keys print a fake row; an escape sequence drove
    the operator's terminal. The API refuses control characters in every string."""
    clinic_id = _clinic(app)
    runner = app.test_cli_runner()
    out = runner.invoke(args=["fit", *(a.replace("{clinic}", clinic_id) for a in args)])
    assert out.exit_code == 1, out.output
    assert "(name: control_character)" in out.output
    assert len(runner.invoke(args=["fit", "list-clinics"]).output.splitlines()) == 1
    assert runner.invoke(args=["fit", "list-keys", clinic_id]).output == ""


@pytest.mark.parametrize("kind", ["file_as_dir", "file_as_clinic_dir"])
def test_archive_into_a_path_it_cannot_write_says_so(
    settings: Settings, tmp_path: Path, kind: str
) -> None:
    """A file where the archive (or a clinic's) folder should be was an OSError traceback."""
    target = tmp_path / "archive"
    app = create_app(settings.with_overrides(reports_dir=target / "sub"))
    clinic_id = _clinic(app)
    if kind == "file_as_dir":
        target.write_text("not a folder")  # FIT_REPORTS_DIR=archive/sub: checked at start-up
        args = ["fit", "reports", "archive", "--month", "2026-10"]
    else:
        (target / clinic_id).mkdir(parents=True)
        (target / clinic_id / "2026-10").write_text("in the way")
        args = ["fit", "reports", "archive", "--month", "2026-10", "--dir", str(target)]
    out = app.test_cli_runner().invoke(args=args)
    app.extensions["fit"].engine.dispose()
    assert out.exit_code == 1, out.output
    assert isinstance(out.exception, SystemExit), out.exception
    assert "cannot write the report archive" in out.output
    assert "Traceback" not in out.output


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    """FIT_DATABASE_URL naming a file that is not SQLite was a DatabaseError traceback."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are notes, not a database" * 40)
    app = create_app(Settings(database_url=f"sqlite:///{path}", instance_path=tmp_path))
    for args in (["list-clinics"], ["migrate"]):
        out = app.test_cli_runner().invoke(args=["fit", *args])
        assert out.exit_code == 1, out.output
        assert isinstance(out.exception, SystemExit), out.exception
        assert "file is not a database" in out.output


@pytest.mark.parametrize("revision", ["", "  "])
def test_migrate_to_a_blank_revision_is_refused(app: Flask, revision: str) -> None:
    """An empty --revision ended in an AssertionError deep inside Alembic."""
    out = app.test_cli_runner().invoke(args=["fit", "migrate", "--revision", revision])
    assert out.exit_code == 2, out.output
    assert isinstance(out.exception, SystemExit), out.exception
    assert "--revision" in out.output


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # LIMIT 10**20 overflowed the database's integer: every list endpoint answered 500.
        ({"FIT_MAX_PAGE_SIZE": str(10**20)}, "FIT_MAX_PAGE_SIZE must be at most 10000"),
        (
            {"FIT_PAGE_SIZE": str(10**20), "FIT_MAX_PAGE_SIZE": str(10**21)},
            "FIT_MAX_PAGE_SIZE must be at most 10000",
        ),
        # time.monotonic() + 10**400 raised OverflowError on every authenticated request, and
        # a cache of days would keep a revoked key working that long.
        ({"FIT_KEY_CACHE_SECONDS": str(10**400)}, "FIT_KEY_CACHE_SECONDS must be at most 3600"),
        ({"FIT_KEY_CACHE_SECONDS": "86400"}, "FIT_KEY_CACHE_SECONDS must be at most 3600"),
        # A folder setting set but empty meant the current directory, silently.
        ({"FIT_REPORTS_DIR": ""}, "FIT_REPORTS_DIR must not be empty"),
        ({"FIT_INSTANCE_PATH": "  "}, "FIT_INSTANCE_PATH must not be empty"),
        ({"FIT_REPORTS_DIR": __file__}, "FIT_REPORTS_DIR must be a folder"),
    ],
)
def test_settings_that_break_later_are_refused_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(env)


def test_settings_at_the_new_bounds_pass() -> None:
    settings = Settings.from_env(
        {"FIT_MAX_PAGE_SIZE": "10000", "FIT_PAGE_SIZE": "10000", "FIT_KEY_CACHE_SECONDS": "3600"}
    )
    assert settings.max_page_size == 10000
    assert settings.key_cache_seconds == 3600


@pytest.mark.parametrize(
    "zone", ["localtime", "posixrules", "right/Europe/London", "posix/Europe/London", "Factory"]
)
def test_time_zones_that_are_not_a_place_are_refused(app: Flask, zone: str) -> None:
    """zoneinfo loads any file under the system's zoneinfo folder: 'localtime' is whatever
    zone the server is set to (another after a move), 'right/…' counts leap seconds (every
    month boundary off by ~27 s) and neither exists where zones come from the tzdata
    package, so the clinic's every report and session write would fail there."""
    out = app.test_cli_runner().invoke(args=["fit", "create-clinic", "Zone", "--timezone", zone])
    assert out.exit_code == 1, out.output
    assert "(timezone: iana_time_zone)" in out.output
    assert app.test_cli_runner().invoke(args=["fit", "list-clinics"]).output == ""


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12", "UTC", "America/Sao_Paulo"])
def test_iana_zones_are_accepted(app: Flask, zone: str) -> None:
    out = app.test_cli_runner().invoke(args=["fit", "create-clinic", "Zone", "--timezone", zone])
    assert out.exit_code == 0, out.output


def test_an_instance_folder_that_cannot_be_made_stops_start_up_in_one_line(tmp_path: Path) -> None:
    """FIT_INSTANCE_PATH under a file (or on a read-only file system): create_app's mkdir
    raised, and flask and gunicorn printed the OSError's traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    done = run_cli({"FIT_INSTANCE_PATH": str(blocker / "instance")})
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "fit-service cannot start: FIT_INSTANCE_PATH" in done.stderr
    assert str(blocker / "instance") in done.stderr


@pytest.mark.parametrize("host", [" ", "relay.example ", "relay example", "relay\n.example"])
def test_an_smtp_host_with_spaces_is_refused(host: str) -> None:
    """FIT_SMTP_HOST=' ' turned e-mail on with no host: every e-mail failed at send time."""
    with pytest.raises(ConfigError, match="FIT_SMTP_HOST"):
        Settings.from_env({"FIT_SMTP_HOST": host})
    assert Settings.from_env({"FIT_SMTP_HOST": "relay.example"}).smtp_host == "relay.example"


@pytest.mark.parametrize("prefix", ["\udcff", "ab\x00cd"])
def test_revoke_key_with_a_prefix_no_key_can_have_is_not_found(app: Flask, prefix: str) -> None:
    """A byte that is not UTF-8 in the argument (Python hands it on as a lone surrogate) was a
    UnicodeEncodeError traceback from the driver; a NUL one from PostgreSQL."""
    out = app.test_cli_runner().invoke(args=["fit", "revoke-key", prefix])
    assert out.exit_code == 1, out.output
    assert isinstance(out.exception, SystemExit), out.exception
    assert "(prefix: not_found)" in out.output
