"""Shared fixtures. Database-backed tests run once per backend: SQLite and PostgreSQL.

* ``FIT_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``)
  names a server where a throw-away ``fit_test_*`` database is created and migrated once.
* When PostgreSQL cannot be reached, the PostgreSQL half **fails** under ``CI=true`` and is
  skipped (loudly) on a developer's machine without it.
* Isolation: each test gets a fresh copy of a migrated SQLite file, or a PostgreSQL database
  whose tables were truncated — cheaper than migrating per test, and it keeps services'
  real commits (the code under test commits; we don't wrap it in a rollback).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url

from fit_service.adapters import migrations
from fit_service.adapters.db import make_engine
from fit_service.adapters.orm import ApiKey, AuditEvent, Base, Clinic
from fit_service.app import create_app
from fit_service.config import Settings
from fit_service.services import clinics, trajectories
from fit_service.services.principals import Role

PG_ADMIN_URL = os.environ.get(
    "FIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = [b for b in os.environ.get("FIT_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    problem = _pg_reachable()
    if problem is not None:
        message = (
            f"PostgreSQL unreachable at {make_url(PG_ADMIN_URL).render_as_string()}: {problem}"
        )
        if IN_CI:
            pytest.fail(message + " (CI requires PostgreSQL)", pytrace=False)
        pytest.skip(message)
    name = f"fit_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrations.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


_TABLES = [t.name for t in reversed(Base.metadata.sorted_tables)]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "fit.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    engine = create_engine(url)
    with engine.begin() as conn:
        # The audit trail refuses TRUNCATE (migration 0006); a test database is emptied as
        # replication would apply changes, with user triggers off for this transaction only.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    # The same URL and, with RESTART IDENTITY, the same clinic ids as the previous test: the
    # per-process trajectory models (keyed by URL, clinic and count of closed episodes) were
    # that test's, so a test with another cohort of the same size was judged by its model.
    trajectories.clear_caches()
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        instance_path=tmp_path / "instance",
        reports_dir=tmp_path / "reports",
        webhooks_allow_private=True,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    yield application
    application.extensions["fit"].engine.dispose()


@pytest.fixture
def engine(app: Flask) -> Engine:
    return app.extensions["fit"].engine  # type: ignore[no-any-return]


@dataclass
class Tenant:
    """A clinic with one key per role, as a test sees it."""

    clinic_id: uuid.UUID
    keys: dict[str, str]

    def auth(self, role: str = "ingest") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


def make_tenant(app: Flask, name: str = "Clinic A", clinician: str = "T-1") -> Tenant:
    wiring = app.extensions["fit"]
    with wiring.uow() as uow:
        info = clinics.create_clinic(uow, name)
    keys = {}
    for role in Role:
        with wiring.uow() as uow:
            issued = clinics.create_api_key(
                uow,
                info.id,
                role,
                f"{role.value} key",
                clinician if role is Role.CLINICIAN else None,
            )
        keys[role.value] = issued.secret
    return Tenant(info.id, keys)


#: Operations (method, path as the OpenAPI document writes it) whose role is not ``manager``
#: (the role that reads and runs everything of its clinic's client data). Ingestion is the
#: EHR's (``ingest``); delivery and clinic settings are ``admin``'s, which sees no client data.
ROLE_FOR: dict[tuple[str, str], str] = {
    ("POST", "/v1/sessions"): "ingest",
    ("POST", "/v1/sessions/batch"): "ingest",
    ("GET", "/v1/webhook-endpoints"): "admin",
    ("POST", "/v1/webhook-endpoints"): "admin",
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): "admin",
    ("GET", "/v1/settings"): "admin",
    ("PUT", "/v1/settings"): "admin",
    ("PUT", "/v1/clinicians/{clinician_id}/email"): "admin",
}


def role_for(method: str, path: str) -> str:
    """A role allowed to call the operation (README, "Roles"): its answers are its own, not
    a uniform 403."""
    return ROLE_FOR.get((method.upper(), path), "manager")


def key_actor(engine: Engine, tenant: Tenant, role: str) -> str:
    """The audit trail's ``actor`` of ``tenant``'s key of ``role`` (``key:<row id>``)."""
    with engine.connect() as conn:
        key_id = conn.execute(
            select(ApiKey.id)
            .join(Clinic, Clinic.id == ApiKey.clinic_id)
            .where(Clinic.public_id == tenant.clinic_id, ApiKey.role == role)
        ).scalar_one()
    return f"key:{key_id}"


@pytest.fixture
def tenant(app: Flask) -> Tenant:
    return make_tenant(app)


@pytest.fixture
def other_tenant(app: Flask) -> Tenant:
    return make_tenant(app, "Clinic B", clinician="T-9")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


#: The tables a session write touches: what a refused request must leave as it was.
SESSION_TABLES = (
    "clients",
    "clinicians",
    "episodes",
    "sessions",
    "session_revisions",
    "ratings",
    "episode_months",
)
#: Their order (by primary key)
_ORDER = {"episode_months": "episode_id, client_id, clinician_id, month"}


def stored_sessions(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of :data:`SESSION_TABLES`, to compare before and after a refused request."""
    with engine.connect() as conn:
        return {
            t: [
                tuple(r)
                for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY {_ORDER.get(t, 'id')}"))  # noqa: S608
            ]
            for t in SESSION_TABLES
        }


def session_payload(**overrides: Any) -> dict[str, Any]:
    """A valid session with ORS and SRS; override any field."""
    payload: dict[str, Any] = {
        "ehr_session_id": "S-1",
        "client_id": "C-1",
        "client_age_band": "adult",
        "clinician_id": "T-1",
        "date": "2026-11-02",
        "ratings": [
            {
                "instrument": "ors",
                "items": {"individual": 4.5, "interpersonal": 5, "social": 4.1, "overall": 5},
            },
            {
                "instrument": "srs",
                "items": {"relationship": 9.5, "goals": 9, "approach": 8.9, "overall": 9.2},
            },
        ],
    }
    payload.update(overrides)
    return payload


def audited(engine: Engine, request_id: str, *more: Any) -> list[tuple[Any, ...]]:
    """(action, record_type, record_id, *more columns) of one request's audit rows, in order."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent.action, AuditEvent.record_type, AuditEvent.record_id, *more)
            .where(AuditEvent.request_id == request_id)
            .order_by(AuditEvent.id)
        ).all()
    return [tuple(r) for r in rows]
