"""SQLAlchemy 2 typed models. The schema is created only by Alembic migrations
(``migrations/versions``); ``tests/integration/test_migrations.py`` proves the two agree.

Conventions:
* integer surrogate keys internally; records the API exposes by id (episodes, sessions, alerts)
  carry a random ``public_id`` so ids reveal neither counts nor other clinics' activity;
* every table holding client data has ``clinic_id`` so each query can be scoped to one tenant;
* aware UTC timestamps (:class:`UTCDateTime`); session and episode dates are plain dates;
* uniqueness is a database constraint, never check-then-insert.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so migrations can refer to them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: BIGINT on PostgreSQL; INTEGER on SQLite, where only "INTEGER PRIMARY KEY" autoincrements.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and always returned aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # Every model here maps one Table (no joined or select-mapped classes), so say so: the bulk
    # writers take ``Model.__table__`` where SQLAlchemy declares only a FromClause.
    __table__: ClassVar[Table]
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Clinic(Base):
    __tablename__ = "clinics"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    #: IANA zone; "today" for future-date checks and report months are clinic-local.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: Per-clinic overrides of the domain defaults (thresholds, dropout definition, ...).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Clinician(Base):
    __tablename__ = "clinicians"
    __table_args__ = (UniqueConstraint("clinic_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    #: The EHR's pseudonymous clinician id.
    external_id: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Client(Base):
    """A client known only by the EHR's pseudonymous id and an age band: no names, no
    birth dates (data minimisation for health data)."""

    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("clinic_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(64))
    age_band: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Episode(Base):
    __tablename__ = "episodes"
    __table_args__ = (
        # At most one open episode per client: the default target of a new session.
        Index(
            "uq_episodes_one_open_per_client",
            "client_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    clinician_id: Mapped[int | None] = mapped_column(ForeignKey("clinicians.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_on: Mapped[date] = mapped_column(Date)
    #: True when opened by POST /v1/episodes (its date is a fact: earlier sessions are
    #: refused); False when opened by its first session (a backfilled earlier session moves
    #: ``opened_on`` back instead).
    opened_explicitly: Mapped[bool] = mapped_column(default=False, server_default=false())
    closed_on: Mapped[date | None] = mapped_column(Date)
    ending_reason: Mapped[str | None] = mapped_column(String(32))
    ending_note: Mapped[str | None] = mapped_column(Text)
    #: low / elevated / high, from the latest risk assessment (issue 4), with its reasons
    risk_level: Mapped[str | None] = mapped_column(String(16))
    risk_reasons: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TherapySession(Base):
    """One therapy session as the EHR last described it; earlier descriptions live in
    :class:`SessionRevision`, so a correction never destroys what was stored."""

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("clinic_id", "ehr_session_id"),
        Index("ix_sessions_episode_date", "episode_id", "date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    clinician_id: Mapped[int] = mapped_column(ForeignKey("clinicians.id"), index=True)
    ehr_session_id: Mapped[str] = mapped_column(String(128))
    date: Mapped[date] = mapped_column(Date)
    #: Ordinal among the episode's *attended* sessions (None for no-shows / cancellations).
    number: Mapped[int | None] = mapped_column(Integer)
    attendance: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The client's own totals of the four brief scales, copied from this session's ratings
    # whenever they are written (services/session_totals.py), so the monthly report reads
    # one table instead of joining every session to its ratings twice. ``ratings`` stays the
    # record; these are None when the client gave no total on that scale.
    ors_total: Mapped[float | None] = mapped_column(Float)
    cors_total: Mapped[float | None] = mapped_column(Float)
    srs_total: Mapped[float | None] = mapped_column(Float)
    csrs_total: Mapped[float | None] = mapped_column(Float)


class EpisodeMonth(Base):
    """An episode's sessions of one calendar month with one clinician, summed: what the monthly
    report reads instead of every session (services/episode_months.py says how it is kept).

    A copy, like the totals on :class:`TherapySession`: derived from the sessions in the
    same transaction as every write that changes them, and re-derivable at any time. The
    outcome and alliance figures are those of the measure normed for the client's age band
    (ORS/SRS, CORS/CSRS for children); ``first_*``/``last_ors`` pack a session number with
    a total (``episode_months.NumberedTotal``) so MIN/MAX over months keep the first and the
    latest score.
    """

    __tablename__ = "episode_months"
    __table_args__ = (Index("ix_episode_months_clinic_month", "clinic_id", "month"),)

    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), primary_key=True)
    client_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinician_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: the month's first day
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    attended: Mapped[int] = mapped_column(Integer)
    no_shows: Mapped[int] = mapped_column(Integer)
    cancelled: Mapped[int] = mapped_column(Integer)
    #: attended sessions with an outcome total, with an alliance total, and with an alliance
    #: total below ``srs_concern`` (the clinic's SRS concern line when the row was written)
    with_ors: Mapped[int] = mapped_column(Integer)
    with_srs: Mapped[int] = mapped_column(Integer)
    srs_below: Mapped[int] = mapped_column(Integer)
    srs_concern: Mapped[float] = mapped_column(Float)
    last_attended_on: Mapped[date | None] = mapped_column(Date)
    first_ors: Mapped[int | None] = mapped_column(BigInteger)
    last_ors: Mapped[int | None] = mapped_column(BigInteger)
    ors_count: Mapped[int] = mapped_column(Integer)
    first_srs: Mapped[int | None] = mapped_column(BigInteger)


class SessionRevision(Base):
    """Append-only history of what the EHR sent for a session (canonical JSON)."""

    __tablename__ = "session_revisions"
    __table_args__ = (UniqueConstraint("session_id", "revision"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    revision: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))


class Rating(Base):
    """The current scores of one instrument in one session by one rater."""

    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("session_id", "instrument", "rater"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    instrument: Mapped[str] = mapped_column(String(32))
    rater: Mapped[str] = mapped_column(String(16))
    #: items / total_only / incomplete / not_completed (fit_service.domain.scoring)
    completeness: Mapped[str] = mapped_column(String(16))
    total: Mapped[float | None] = mapped_column(Float)
    items: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    subscales: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ApiKey(Base):
    """An API key: only a SHA-256 of the secret is stored (keys are 256-bit random, so a
    slow password hash buys nothing). ``prefix`` finds the row without a scan."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    clinician_id: Mapped[int | None] = mapped_column(ForeignKey("clinicians.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class AuditEvent(Base):
    """Append-only: triggers installed by the migrations refuse UPDATE and DELETE (0001), on
    SQLite an INSERT OR REPLACE of an existing row (0005), on PostgreSQL TRUNCATE (0006)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_clinic_at", "clinic_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    record_type: Mapped[str | None] = mapped_column(String(32))
    record_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(64))


class IdempotencyRecord(Base):
    """The first answer given to an ``Idempotency-Key``, replayed to retries."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("clinic_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- Risk alerts and their delivery (issue 4) ---------------------------------------------


class Alert(Base):
    """A finding a clinician should act on. At most one *live* (open or acknowledged) alert
    per episode and kind — a partial unique index, so concurrent writers can't duplicate it."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_one_live_per_episode_kind",
            "episode_id",
            "kind",
            unique=True,
            sqlite_where=text("status IN ('open', 'acknowledged')"),
            postgresql_where=text("status IN ('open', 'acknowledged')"),
        ),
        Index("ix_alerts_clinic_status", "clinic_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    clinician_id: Mapped[int | None] = mapped_column(ForeignKey("clinicians.id"), index=True)
    kind: Mapped[str] = mapped_column(String(48))
    leg: Mapped[str] = mapped_column(String(24))
    severity: Mapped[int] = mapped_column(Integer)
    #: open / acknowledged / resolved / dismissed / auto_resolved
    status: Mapped[str] = mapped_column(String(16), default="open")
    session_number: Mapped[int | None] = mapped_column(Integer)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    guidance: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    #: the clinician's note of what was done (resolved), the reason (dismissed), or the
    #: system's note (auto-resolved)
    closing_note: Mapped[str | None] = mapped_column(Text)
    closed_by_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    #: optimistic-concurrency version, exposed as the ETag
    version: Mapped[int] = mapped_column(Integer, default=1)


class GoalSheet(Base):
    """The client's own goal, the agreed steps, and what they expect of therapy."""

    __tablename__ = "goal_sheets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), unique=True)
    goal: Mapped[str] = mapped_column(Text, default="")
    steps: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"steps": [...]}
    #: concrete_steps / to_be_heard / unsure
    expectation: Mapped[str] = mapped_column(String(24), default="unsure")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    #: Standard Webhooks signing secret (whsec_…); needed in clear to sign
    secret: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(default=True)
    failing_since: Mapped[datetime | None] = mapped_column()
    last_success_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(Base):
    """A delivery written in the same transaction as the alert that caused it, and sent by
    a worker afterwards (at least once; ``message_id`` lets receivers de-duplicate)."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("channel", "destination_id", "message_id"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    #: webhook / email
    channel: Mapped[str] = mapped_column(String(16))
    #: webhook_endpoints.id or clinicians.id, by channel
    destination_id: Mapped[int] = mapped_column(BigId)
    message_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    #: pending / sent / dead
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_failed_at: Mapped[datetime | None] = mapped_column()
    #: a worker's lease: another worker may take the row after this time (crash recovery)
    locked_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
