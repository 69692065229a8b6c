"""Each episode's sessions summed per clinician and month, for the monthly report
(services/episode_months.py says why and how they are kept), built here for the sessions
already stored.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 01:00:00
"""

import math
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: Frozen here (a migration must not follow later code): the SRS concern line's default and
#: range (domain.md §3; ReportSettings), the packing of a session number with a total
#: (services/episode_months.NumberedTotal: totals in tenths, up to 40.0).
_DEFAULT_CONCERN = 36.0
_SPAN = 401
_STEPS = 10

_MONTH = {
    "postgresql": "CAST(date_trunc('month', CAST(s.date AS TIMESTAMP)) AS DATE)",
    "sqlite": "date(s.date, 'start of month')",
}

# The measure normed for the client's band, else its other age version (as the report reads).
_ROWS = """
INSERT INTO episode_months (episode_id, client_id, clinician_id, month, clinic_id, attended,
    no_shows, cancelled, with_ors, with_srs, srs_below, last_attended_on, first_ors,
    last_ors, ors_count, first_srs, srs_concern)
SELECT s.episode_id, s.client_id, s.clinician_id, {month}, s.clinic_id,
    SUM(CASE WHEN s.attendance = 'attended' THEN 1 ELSE 0 END),
    SUM(CASE WHEN s.attendance = 'no_show' THEN 1 ELSE 0 END),
    SUM(CASE WHEN s.attendance = 'cancelled' THEN 1 ELSE 0 END),
    SUM(CASE WHEN s.attendance = 'attended' AND s.ors IS NOT NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN s.attendance = 'attended' AND s.srs IS NOT NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN s.attendance = 'attended' AND s.srs < :concern THEN 1 ELSE 0 END),
    MAX(CASE WHEN s.attendance = 'attended' THEN s.date END),
    MIN(s.number * {span} + CAST(round(s.ors * {steps}) AS INTEGER)),
    MAX(s.number * {span} + CAST(round(s.ors * {steps}) AS INTEGER)),
    COUNT(s.ors),
    MIN(s.number * {span} + CAST(round(s.srs * {steps}) AS INTEGER)),
    :concern
FROM (
    SELECT sessions.episode_id, sessions.client_id, sessions.clinician_id, sessions.clinic_id,
        sessions.date, sessions.number, sessions.attendance,
        CASE WHEN clients.age_band = 'child'
            THEN coalesce(sessions.cors_total, sessions.ors_total)
            ELSE coalesce(sessions.ors_total, sessions.cors_total) END AS ors,
        CASE WHEN clients.age_band = 'child'
            THEN coalesce(sessions.csrs_total, sessions.srs_total)
            ELSE coalesce(sessions.srs_total, sessions.csrs_total) END AS srs
    FROM sessions JOIN clients ON clients.id = sessions.client_id
    WHERE sessions.clinic_id = :clinic
) AS s
GROUP BY s.episode_id, s.client_id, s.clinician_id, {month}, s.clinic_id
"""


def _concern(settings: object) -> float:
    """The clinic's SRS concern line as the service read it at this revision: the reports
    section's ``srs_concern`` when it is a number from 1 to 40, else the default. (A row
    counted against another line is still reported right: the report counts such rows
    again from the sessions.)"""
    reports = settings.get("reports") if isinstance(settings, dict) else None
    value = reports.get("srs_concern") if isinstance(reports, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value) if abs(value) < 1e300 else math.inf
        if 1.0 <= number <= 40.0:
            return number
    return _DEFAULT_CONCERN


def upgrade() -> None:
    op.create_table(
        "episode_months",
        sa.Column("episode_id", _ID, nullable=False),
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("clinician_id", _ID, nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("clinic_id", _ID, nullable=False),
        sa.Column("attended", sa.Integer(), nullable=False),
        sa.Column("no_shows", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("with_ors", sa.Integer(), nullable=False),
        sa.Column("with_srs", sa.Integer(), nullable=False),
        sa.Column("srs_below", sa.Integer(), nullable=False),
        sa.Column("srs_concern", sa.Float(), nullable=False),
        sa.Column("last_attended_on", sa.Date(), nullable=True),
        sa.Column("first_ors", sa.BigInteger(), nullable=True),
        sa.Column("last_ors", sa.BigInteger(), nullable=True),
        sa.Column("ors_count", sa.Integer(), nullable=False),
        sa.Column("first_srs", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_episode_months_clinic_id_clinics")
        ),
        sa.ForeignKeyConstraint(
            ["episode_id"], ["episodes.id"], name=op.f("fk_episode_months_episode_id_episodes")
        ),
        sa.PrimaryKeyConstraint(
            "episode_id", "client_id", "clinician_id", "month", name=op.f("pk_episode_months")
        ),
    )
    op.create_index(
        "ix_episode_months_clinic_month", "episode_months", ["clinic_id", "month"], unique=False
    )
    bind = op.get_bind()
    statement = sa.text(
        _ROWS.format(month=_MONTH[bind.dialect.name], span=_SPAN, steps=_STEPS)
    ).bindparams(sa.bindparam("concern", type_=sa.Float()))
    clinics = sa.table("clinics", sa.column("id"), sa.column("settings", sa.JSON()))
    for clinic_id, settings in bind.execute(sa.select(clinics.c.id, clinics.c.settings)).all():
        bind.execute(statement, {"clinic": clinic_id, "concern": _concern(settings)})


def downgrade() -> None:
    op.drop_index("ix_episode_months_clinic_month", table_name="episode_months")
    op.drop_table("episode_months")
