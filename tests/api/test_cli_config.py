"""Bad FIT_* values stop start-up with one line naming the variable (config.py, wsgi.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fit_service.config import ConfigError, Settings

_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # Another PostgreSQL driver passed the check and failed later on an import.
        (
            {"FIT_DATABASE_URL": "postgresql+asyncpg://u@db/fit"},
            "must use the psycopg 3 driver: postgresql+psycopg://…; got 'postgresql+asyncpg'",
        ),
        ({"FIT_DATABASE_URL": "postgresql+pg8000://u@db/fit"}, "psycopg 3 driver"),
        # A malformed port was a ValueError traceback from create_app.
        (
            {"FIT_DATABASE_URL": "postgresql+psycopg://u:secret@db:port/fit"},
            "FIT_DATABASE_URL is not a valid database URL",
        ),
        # No scheme or host: every link in a clinician's e-mail was broken.
        ({"FIT_PUBLIC_BASE_URL": "fit.clinic.example"}, "FIT_PUBLIC_BASE_URL must be an http"),
        ({"FIT_PUBLIC_BASE_URL": "ftp://fit.clinic.example"}, "FIT_PUBLIC_BASE_URL"),
        ({"FIT_PUBLIC_BASE_URL": "https://"}, "FIT_PUBLIC_BASE_URL"),
        ({"FIT_PUBLIC_BASE_URL": "https://fit.example/\r\nx"}, "FIT_PUBLIC_BASE_URL"),
        # urlsplit raised ValueError (a traceback past wsgi's ConfigError handler), or the
        # port was left unchecked and every link carried it
        ({"FIT_PUBLIC_BASE_URL": "http://[fe80::1"}, "FIT_PUBLIC_BASE_URL must be an http"),
        ({"FIT_PUBLIC_BASE_URL": "https://fit.example:abc"}, "FIT_PUBLIC_BASE_URL"),
        ({"FIT_PUBLIC_BASE_URL": "https://fit.example:99999"}, "FIT_PUBLIC_BASE_URL"),
        # the links in every e-mail would carry it
        (
            {"FIT_PUBLIC_BASE_URL": "https://admin:secret@fit.example"},
            "FIT_PUBLIC_BASE_URL must not hold a user name or password",
        ),
        # A file where the instance folder should be: a FileExistsError traceback.
        ({"FIT_INSTANCE_PATH": __file__}, "FIT_INSTANCE_PATH must be a folder"),
    ],
)
def test_bad_settings_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        Settings.from_env(env)
    assert "secret" not in str(refused.value)


def test_good_settings_still_pass() -> None:
    settings = Settings.from_env(
        {
            "FIT_DATABASE_URL": "postgresql+psycopg://u:p@db:5433/fit?sslmode=require",
            "FIT_PUBLIC_BASE_URL": "https://fit.clinic.example/prefix/",
        }
    )
    assert settings.public_base_url == "https://fit.clinic.example/prefix/"
    assert Settings(public_base_url="http://localhost:5000").public_base_url


def run_cli(fit_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app wsgi fit …`` in a process of its own (``list-clinics`` by default), with
    ``fit_env`` as its only FIT_* settings: what an operator's shell would run."""
    command = ["-m", "flask", "--app", "wsgi", "fit", *(args or ("list-clinics",))]
    return _run_python(fit_env, *command)


def _run_python(fit_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python args…`` in the project folder, with ``fit_env`` as its only FIT_* settings."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FIT_")},
        **fit_env,
        "PYTHONPATH": str(_ROOT),
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_reports_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    """Through ``flask --app wsgi``: the message and exit status 3, no traceback."""
    done = run_cli(
        {"FIT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}", "FIT_PAGE_SIZE": "abc"}
    )
    assert done.returncode == 3  # gunicorn's "worker failed to boot": it stops, no respawns
    assert "Traceback" not in done.stderr
    assert (
        "fit-service configuration error: FIT_PAGE_SIZE must be an integer; got 'abc'"
        in done.stderr
    )


def test_the_serving_process_runs_with_the_tuned_garbage_collector(tmp_path: Path) -> None:
    """Importing ``wsgi`` (every gunicorn worker, every CLI run) freezes the start-up objects
    and enlarges the young generation (fit_service/gc_tuning.py); the report benchmark times
    the report under the same settings."""
    probe = (
        "import gc, wsgi; from fit_service.gc_tuning import YOUNG_GENERATION; "
        "print(gc.get_threshold()[0] == YOUNG_GENERATION, gc.get_freeze_count() > 10_000)"
    )
    fit_env = {
        "FIT_DATABASE_URL": f"sqlite:///{tmp_path / 'fit.sqlite3'}",
        "FIT_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    done = _run_python(fit_env, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
