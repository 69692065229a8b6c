"""Use cases for tenants and their API keys (the CLI and the admin API call these)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import threading
import time
import unicodedata
import uuid
import zoneinfo
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from fit_service.adapters.orm import ApiKey, Clinic, Clinician, utcnow
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.errors import Conflict, FitError, NotFound
from fit_service.services import audit
from fit_service.services.principals import Principal, Role

_KEY_PREFIX = "fit"


def _column_length(column: InstrumentedAttribute[str]) -> int:
    """The declared length of a String column: PostgreSQL refuses longer values (DataError)."""
    return int(column.type.length)


_CLINIC_NAME_MAX = _column_length(Clinic.name)
_KEY_NAME_MAX = _column_length(ApiKey.name)
_CLINICIAN_ID_MAX = _column_length(Clinician.external_id)


def _check_length(value: str, limit: int, field: str) -> None:
    if len(value) > limit:
        raise FitError(
            f"{field} is {len(value)} characters long; at most {limit} are allowed",
            field=field,
            rule="max_length",
        )


def _check_printable(value: str, field: str) -> None:
    """Names are printed one per line by list-clinics and list-keys (and into reports): a
    line break would forge a row, an escape sequence would drive the operator's terminal,
    and PostgreSQL cannot store a NUL. The API refuses control characters the same way."""
    if any(unicodedata.category(c) in {"Cc", "Cs"} for c in value):
        raise FitError(
            f"{field} must not contain control characters (line breaks, tabs, escapes) or "
            "bytes that are not UTF-8",
            field=field,
            rule="control_character",
        )


@dataclass(frozen=True, slots=True)
class ClinicInfo:
    id: uuid.UUID
    name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly created key. ``secret`` exists only here: it is never stored or shown again."""

    prefix: str
    role: Role
    clinic_id: uuid.UUID
    name: str
    secret: str


@dataclass(frozen=True, slots=True)
class KeyInfo:
    prefix: str
    role: Role
    name: str
    clinician: str | None
    created_at: datetime
    revoked_at: datetime | None


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_clinic(uow: UnitOfWork, name: str, timezone: str = "UTC") -> ClinicInfo:
    if not name.strip():
        raise FitError("a clinic needs a name", field="name", rule="required")
    _check_length(name.strip(), _CLINIC_NAME_MAX, "name")
    _check_printable(name, "name")
    if not _is_iana_zone(timezone):
        raise FitError(f"unknown time zone {timezone!r}", field="timezone", rule="iana_time_zone")
    clinic = Clinic(name=name.strip(), timezone=timezone, settings={})
    uow.session.add(clinic)
    uow.session.flush()
    info = ClinicInfo(clinic.public_id, clinic.name, clinic.timezone)
    uow.commit()
    return info


#: In the zone list but no place: the server's own zone (another after a move) and the
#: database's "zone not set" placeholder.
_NOT_A_PLACE = frozenset({"localtime", "Factory"})


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())  # ~7 ms: it lists the zone files


def _is_iana_zone(name: str) -> bool:
    """A zone of the IANA database by its name. ``ZoneInfo`` alone loads any file under the
    system's zoneinfo folder: ``posixrules``, ``right/…`` (leap seconds: every month boundary
    ~27 s off) and ``posix/…`` copies, which a host with zones from the tzdata package lacks."""
    if name in _NOT_A_PLACE or name not in _zone_names():
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def list_clinics(uow: UnitOfWork) -> list[ClinicInfo]:
    rows = uow.session.scalars(select(Clinic).order_by(Clinic.id))
    return [ClinicInfo(c.public_id, c.name, c.timezone) for c in rows]


def _clinic_by_public_id(db: Session, clinic_id: uuid.UUID | str) -> Clinic:
    try:
        public_id = uuid.UUID(str(clinic_id))
    except ValueError:
        raise NotFound(f"no clinic {clinic_id}", field="clinic") from None
    clinic = db.scalar(select(Clinic).where(Clinic.public_id == public_id))
    if clinic is None:
        raise NotFound(f"no clinic {clinic_id}", field="clinic")
    return clinic


def create_api_key(
    uow: UnitOfWork,
    clinic_id: uuid.UUID | str,
    role: Role,
    name: str = "",
    clinician: str | None = None,
) -> IssuedKey:
    """Issue a key for one clinic. A clinician key is bound to one clinician (by EHR id).

    Lengths are checked here; the clinician id's form (the API's external-id rule) is the
    caller's to check: :mod:`fit_service.api.schemas` holds that rule (see ``fit create-key``).
    """
    _check_length(name, _KEY_NAME_MAX, "name")
    _check_printable(name, "name")
    if clinician is not None:
        _check_length(clinician, _CLINICIAN_ID_MAX, "clinician")
    db = uow.session
    clinic = _clinic_by_public_id(db, clinic_id)
    clinician_row_id: int | None = None
    if role is Role.CLINICIAN:
        if not clinician:
            raise FitError(
                "a clinician key must name its clinician (the EHR's clinician id)",
                field="clinician",
                rule="required",
            )
        clinician_row_id = _get_or_create_clinician(db, clinic.id, clinician)
    elif clinician:
        raise FitError("only clinician keys name a clinician", field="clinician", rule="forbidden")
    prefix = secrets.token_hex(6)
    secret = f"{_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    db.add(
        ApiKey(
            clinic_id=clinic.id,
            prefix=prefix,
            key_hash=hash_key(secret),
            role=role.value,
            clinician_id=clinician_row_id,
            name=name,
        )
    )
    _audit_key(db, clinic.id, "api_key.create", prefix)
    uow.commit()
    return IssuedKey(prefix, role, clinic.public_id, name, secret)


def _get_or_create_clinician(db: Session, clinic_id: int, external_id: str) -> int:
    found = db.scalar(
        select(Clinician.id).where(
            Clinician.clinic_id == clinic_id, Clinician.external_id == external_id
        )
    )
    if found is not None:
        return found
    row = Clinician(clinic_id=clinic_id, external_id=external_id)
    db.add(row)
    db.flush()
    return row.id


def revoke_api_key(uow: UnitOfWork, prefix: str) -> None:
    # Prefixes are hex: anything else names no key, and a lone surrogate (a byte that is not
    # UTF-8 on the command line) or a NUL cannot even be sent to the database.
    key = (
        uow.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if prefix.isascii() and prefix.isprintable()
        else None
    )
    if key is None:
        raise NotFound(f"no API key with prefix {prefix!r}", field="prefix")
    if key.revoked_at is not None:
        raise Conflict(f"key {prefix} is already revoked", field="prefix")
    key.revoked_at = utcnow()
    _audit_key(uow.session, key.clinic_id, "api_key.revoke", prefix)
    uow.commit()


def _audit_key(db: Session, clinic_id: int, action: str, prefix: str) -> None:
    """Who may reach a clinic's health data changed: audited like the data itself, by the
    system (keys are issued and revoked from the CLI), naming the key by its public prefix."""
    audit.record(
        db, Principal(clinic_id, None, Role.ADMIN), [audit.AuditEntry(action, "api_key", prefix)]
    )


def list_api_keys(uow: UnitOfWork, clinic_id: uuid.UUID | str) -> list[KeyInfo]:
    db = uow.session
    clinic = _clinic_by_public_id(db, clinic_id)
    rows = db.execute(
        select(ApiKey, Clinician.external_id)
        .outerjoin(Clinician, Clinician.id == ApiKey.clinician_id)
        .where(ApiKey.clinic_id == clinic.id)
        .order_by(ApiKey.id)
    )
    return [
        KeyInfo(k.prefix, Role(k.role), k.name, ext, k.created_at, k.revoked_at) for k, ext in rows
    ]


class KeyCache:
    """Recently verified keys, so a busy EHR doesn't cost a key lookup per request.

    Only successful lookups are cached, under the key's SHA-256 (never the key). Revoking a
    key in this process clears the cache at once; other processes see a revocation within
    ``ttl_seconds`` (default 10 s) — the trade-off is stated in the README.
    """

    def __init__(self, ttl_seconds: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + self.ttl, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def authenticate(
    factory: sessionmaker[Session],
    token: str,
    request_id: str | None = None,
    cache: KeyCache | None = None,
) -> Principal | None:
    """The principal a bearer token stands for, or ``None`` (unknown, malformed, revoked)."""
    if not (token.isascii() and token.isprintable()):
        # Keys are URL-safe ASCII; anything else is no key. Refused before the query because
        # PostgreSQL cannot even compare text holding a NUL (psycopg raises: it was a 500).
        return None
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != _KEY_PREFIX:
        return None
    digest = hash_key(token)
    cached = cache.get(digest) if cache is not None else None
    if cached is not None:
        return replace(cached, request_id=request_id)
    with factory() as db:
        row = db.execute(
            select(
                ApiKey.id,
                ApiKey.clinic_id,
                ApiKey.key_hash,
                ApiKey.role,
                ApiKey.clinician_id,
                Clinic.timezone,
            )
            .join(Clinic, Clinic.id == ApiKey.clinic_id)
            .where(ApiKey.prefix == parts[1], ApiKey.revoked_at.is_(None))
        ).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    principal = Principal(
        row.clinic_id, row.id, Role(row.role), row.clinician_id, request_id, row.timezone
    )
    if cache is not None:
        cache.put(digest, principal)
    return principal


__all__ = [
    "ClinicInfo",
    "IssuedKey",
    "KeyInfo",
    "authenticate",
    "create_api_key",
    "create_clinic",
    "list_api_keys",
    "list_clinics",
    "revoke_api_key",
]
