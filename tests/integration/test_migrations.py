"""Migrations and models agree, and migrations run down and up on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from fit_service.adapters import migrations
from fit_service.adapters.db import make_engine
from fit_service.adapters.orm import Base


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def test_models_and_migrations_agree(database_url: str) -> None:
    """A database built only by migrations matches the SQLAlchemy models exactly."""
    engine = make_engine(database_url)
    try:
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    """Every migration downgrades cleanly and the chain re-applies to the same schema."""
    engine = make_engine(database_url)
    try:
        migrations.downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrations.upgrade(engine)
        assert _diff(engine) == []
        with engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.head_revision()
    finally:
        engine.dispose()
