"""Health checks, the OpenAPI document, the app factory and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fit_service.app import create_app
from fit_service.config import ConfigError, Settings


def test_healthz_and_readyz(client: FlaskClient) -> None:
    """/healthz answers; /readyz sees a reachable database at the latest migration."""
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["database"] == "reachable"


def test_readyz_is_503_before_migrations(tmp_path: Path) -> None:
    """An unmigrated database is reported not ready, with the expected revision."""
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}", instance_path=tmp_path)
    )
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.json["schema"]["current"] is None
    app.extensions["fit"].engine.dispose()


def test_openapi_document_is_generated_from_schemas(client: FlaskClient) -> None:
    """/v1/openapi.json is public and describes the session schema the API validates with."""
    spec = client.get("/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/v1/sessions" in spec["paths"]
    assert "/v1/sessions/batch" in spec["paths"]
    session_in = spec["components"]["schemas"]["SessionIn"]
    assert {"ehr_session_id", "client_id", "clinician_id", "date"} <= set(session_in["required"])
    assert session_in["additionalProperties"] is False


def test_create_app_makes_no_connection_at_import(tmp_path: Path) -> None:
    """Creating the app with an unreachable database succeeds; only /readyz notices."""
    app = create_app(
        Settings(
            database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
            instance_path=tmp_path,
        )
    )
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.json["database"] == "unreachable"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FIT_DATABASE_URL": "mysql://x"}, "FIT_DATABASE_URL"),
        ({"FIT_DATABASE_URL": "postgresql://x/y"}, "psycopg"),
        ({"FIT_MAX_BATCH_ITEMS": "lots"}, "FIT_MAX_BATCH_ITEMS"),
        ({"FIT_DATABSE_URL": "sqlite://"}, "unknown setting"),
        ({"FIT_WEBHOOKS_ALLOW_PRIVATE": "maybe"}, "true or false"),
    ],
)
def test_bad_settings_fail_at_start_with_a_clear_message(env: dict[str, str], message: str) -> None:
    """A malformed FIT_* variable stops start-up with a message naming it."""
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_tooling_variables_are_not_settings_errors() -> None:
    """./dev's FIT_PORT and the suite's FIT_TEST_POSTGRES_URL don't trip the typo check."""
    settings = Settings.from_env({"FIT_PORT": "5001", "FIT_TEST_POSTGRES_URL": "x"})
    assert settings.max_batch_items == 5000


def test_cli_creates_clinic_and_keys(app: Flask) -> None:
    """The CLI creates a clinic and a key that then authenticates, and revokes it."""
    runner = app.test_cli_runner()
    out = runner.invoke(args=["fit", "create-clinic", "CLI Clinic"])
    assert out.exit_code == 0, out.output
    clinic_id = out.output.split()[2]
    key_out = runner.invoke(args=["fit", "create-key", clinic_id, "--role", "manager"])
    assert key_out.exit_code == 0, key_out.output
    secret = key_out.output.strip().splitlines()[1]
    client = app.test_client()
    assert (
        client.get("/v1/clients", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    )
    prefix = secret.split("_")[1]
    assert runner.invoke(args=["fit", "revoke-key", prefix]).exit_code == 0
    assert (
        client.get("/v1/clients", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    )
    listed = runner.invoke(args=["fit", "list-keys", clinic_id]).output
    assert prefix in listed
    assert "revoked" in listed
    assert secret not in listed
