"""Migrations and models agree, and migrations run down and up on both databases."""

from __future__ import annotations

from datetime import date

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select

from fit_service.adapters import migrations
from fit_service.adapters.db import make_engine
from fit_service.adapters.orm import Base, EpisodeMonth
from fit_service.services import episode_months


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


def test_upgrading_a_database_that_holds_data(database_url: str) -> None:
    """From 0001 with a clinic, client, two episodes and a rated session, upgrading to head
    keeps the rows (foreign keys hold), marks the episode with no session on its opening date
    as opened explicitly (0003) and copies the client's totals onto the session (0004)."""
    import uuid  # noqa: PLC0415

    from sqlalchemy import text  # noqa: PLC0415

    engine = make_engine(database_url)
    try:
        migrations.downgrade(engine, "0001")
        u = [str(uuid.uuid4()) for _ in range(4)]
        with engine.begin() as conn:
            for statement, params in [
                (
                    "INSERT INTO clinics (id, public_id, name, timezone, settings, created_at) "
                    "VALUES (1, :u0, 'c', 'UTC', '{\"reports\": {\"srs_concern\": 35.4}}', :now)",
                    {},
                ),
                (
                    "INSERT INTO clients (id, clinic_id, external_id, age_band, created_at) "
                    "VALUES (1, 1, 'C', 'adult', :now)",
                    {},
                ),
                (
                    "INSERT INTO clinicians (id, clinic_id, external_id, created_at) "
                    "VALUES (1, 1, 'T', :now)",
                    {},
                ),
                (
                    "INSERT INTO episodes (id, public_id, clinic_id, client_id, clinician_id, "
                    "status, opened_on, created_at, updated_at) VALUES "
                    "(1, :u1, 1, 1, 1, 'open', '2026-01-05', :now, :now), "
                    "(2, :u2, 1, 1, 1, 'closed', '2025-01-01', :now, :now)",
                    {},
                ),
                (
                    "INSERT INTO sessions (id, public_id, clinic_id, episode_id, client_id, "
                    "clinician_id, ehr_session_id, date, attendance, revision, content_hash, "
                    "created_at, updated_at) VALUES (1, :u3, 1, 1, 1, 1, 'S', '2026-01-05', "
                    "'attended', 1, 'h', :now, :now)",
                    {},
                ),
                (
                    "INSERT INTO ratings (id, session_id, clinic_id, instrument, rater, "
                    "completeness, total) VALUES (1, 1, 1, 'ors', 'client', 'total_only', 23.4), "
                    "(2, 1, 1, 'srs', 'therapist', 'total_only', 30), "
                    "(3, 1, 1, 'srs', 'client', 'total_only', 35.5), "
                    "(4, 1, 1, 'cors', 'client', 'incomplete', NULL)",
                    {},
                ),
            ]:
                conn.execute(
                    text(statement),
                    {
                        "u0": u[0],
                        "u1": u[1],
                        "u2": u[2],
                        "u3": u[3],
                        "now": "2026-01-01 00:00:00+00:00",
                        **params,
                    },
                )
        migrations.upgrade(engine)
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT id, opened_explicitly FROM episodes")).all())
            assert conn.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 1
            totals = conn.execute(
                text("SELECT ors_total, cors_total, srs_total, csrs_total FROM sessions")
            ).one()
        # 0004 copied the client's own totals (not the therapist's SRS, not a blank CORS).
        assert tuple(totals) == (23.4, None, 35.5, None)
        assert {k: bool(v) for k, v in rows.items()} == {1: False, 2: True}
        # 0007 summed the session per episode and month, its SRS against the clinic's line
        # (35.5 is not below 35.4), as the service sums them (the session was stored before
        # numbers existed: no packed scores, but a count).
        table = EpisodeMonth.__table__
        months = select(table).order_by(*table.primary_key.columns)
        with engine.begin() as conn:
            built = [r._asdict() for r in conn.execute(months)]
            assert [
                {k: r[k] for k in ("episode_id", "month", "attended", "with_ors", "with_srs")}
                | {k: r[k] for k in ("srs_below", "srs_concern", "ors_count", "first_ors")}
                for r in built
            ] == [
                {
                    "episode_id": 1,
                    "month": date(2026, 1, 1),
                    "attended": 1,
                    "with_ors": 1,
                    "with_srs": 1,
                    "srs_below": 0,
                    "srs_concern": 35.4,
                    "ors_count": 1,
                    "first_ors": None,
                }
            ]
            episode_months.refresh_clinic(conn, 1)
            assert [r._asdict() for r in conn.execute(months)] == built
        assert _diff(engine) == []
    finally:
        engine.dispose()
