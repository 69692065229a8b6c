"""Who is calling, and what each role may do.

The clinic comes only from the API key, never from the request: every service takes a
:class:`Principal` and scopes every query to ``principal.clinic_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fit_service.domain.errors import PermissionDenied


class Role(StrEnum):
    INGEST = "ingest"  # an EHR integration: writes sessions, reads back what it wrote
    CLINICIAN = "clinician"  # its own clients and alerts
    MANAGER = "manager"  # everything of its clinic, reports
    ADMIN = "admin"  # keys and settings; no client data


class Permission(StrEnum):
    SESSIONS_WRITE = "sessions:write"
    EPISODES_WRITE = "episodes:write"
    CLIENTS_READ = "clients:read"  # all of the clinic's clients
    OWN_CLIENTS_READ = "clients:read-own"  # clients the clinician has seen
    ALERTS_READ = "alerts:read"
    ALERTS_ACT = "alerts:act"
    GOALS_WRITE = "goals:write"
    REPORTS_READ = "reports:read"
    KEYS_MANAGE = "keys:manage"
    SETTINGS_MANAGE = "settings:manage"
    WEBHOOKS_MANAGE = "webhooks:manage"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.INGEST: frozenset(
        {Permission.SESSIONS_WRITE, Permission.EPISODES_WRITE, Permission.CLIENTS_READ}
    ),
    Role.CLINICIAN: frozenset(
        {
            Permission.OWN_CLIENTS_READ,
            Permission.ALERTS_READ,
            Permission.ALERTS_ACT,
            Permission.GOALS_WRITE,
            Permission.REPORTS_READ,
        }
    ),
    Role.MANAGER: frozenset(
        {
            Permission.CLIENTS_READ,
            Permission.ALERTS_READ,
            Permission.ALERTS_ACT,
            Permission.GOALS_WRITE,
            Permission.REPORTS_READ,
            Permission.EPISODES_WRITE,
        }
    ),
    Role.ADMIN: frozenset(
        {Permission.KEYS_MANAGE, Permission.SETTINGS_MANAGE, Permission.WEBHOOKS_MANAGE}
    ),
}


@dataclass(frozen=True, slots=True)
class Principal:
    clinic_id: int
    api_key_id: int | None
    role: Role
    #: set for clinician keys: the only clinician whose clients they may read
    clinician_id: int | None = None
    request_id: str | None = None
    #: the clinic's IANA time zone: "today" (future-date checks) is clinic-local
    timezone: str = "UTC"

    @property
    def actor(self) -> str:
        return f"key:{self.api_key_id}" if self.api_key_id is not None else "system"

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, *permissions: Permission) -> None:
        """Pass if the role has *any* of ``permissions`` (e.g. all or own clients)."""
        if not any(self.can(p) for p in permissions):
            raise PermissionDenied(
                f"the {self.role.value} role may not do this "
                f"(needs {' or '.join(p.value for p in permissions)})",
                rule="forbidden",
            )

    @property
    def sees_all_clients(self) -> bool:
        return self.can(Permission.CLIENTS_READ)
