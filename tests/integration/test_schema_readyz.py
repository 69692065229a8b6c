"""/readyz by where the database's schema stands against this code's migrations."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from fit_service.adapters import migrations


@pytest.fixture
def set_revision(engine: Engine) -> Iterator[Callable[[str], None]]:
    """Write a revision into alembic_version (the shared test database gets head back)."""

    def write(revision: str) -> None:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})

    yield write
    write(migrations.head_revision() or "")


def test_a_database_migrated_by_a_newer_release_keeps_this_instance_ready(
    app: Flask, set_revision: Callable[[str], None]
) -> None:
    """README: "fit migrate, then start the new release". The old instances answered 503
    from the moment of the migration, so all of them left the load balancer before any new
    one was up."""
    set_revision("9999")
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 200
    assert resp.json == {
        "status": "ok",
        "database": "reachable",
        "schema": {"current": "9999", "expected": migrations.head_revision(), "ahead": True},
    }


def test_a_database_behind_this_code_is_not_ready(
    app: Flask, set_revision: Callable[[str], None]
) -> None:
    set_revision("0002")
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.json["schema"] == {"current": "0002", "expected": migrations.head_revision()}


def test_a_database_at_head_is_ready(app: Flask) -> None:
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 200
    assert resp.json["schema"] == {"current": migrations.head_revision()}
