"""Use cases for a clinic's settings (admin): read and replace ``Clinic.settings``, and the
clinicians' e-mail addresses alerts are sent to.

``Clinic.settings`` is one JSON object with these sections, each validated before it is stored
(a setting that cannot be applied is refused at once, not discovered at the next session write):

* ``risk``: overrides of :class:`fit_service.domain.risk.RiskSettings` (thresholds, the
  alerting severity), checked by ``RiskSettings.from_mapping``;
* ``reports``: overrides of the monthly report settings, checked by
  ``ReportSettings.from_mapping``;
* ``delivery``: ``failing_after_hours`` — how long an endpoint may fail without one success
  before it is shown as failing (default 24 h, ``domain.delivery.DEFAULT_FAILING_AFTER``; one
  minute to 30 days).

Whole-number risk settings have upper bounds too (:data:`thresholds.RISK_INT_MAX`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from fit_service.adapters.orm import Clinic, Clinician
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain import monthly_report
from fit_service.domain.delivery import DEFAULT_FAILING_AFTER
from fit_service.domain.errors import FitError, NotFound
from fit_service.domain.risk import RiskSettings, Severity
from fit_service.services import audit, episode_months, thresholds
from fit_service.services.principals import Permission, Principal

SECTIONS = ("risk", "reports", "delivery")
#: A simple shape check only: deliverability is the SMTP relay's business. No white space and
#: no control character (NUL cannot be stored by PostgreSQL; CR/LF would break SMTP headers),
#: and none of the characters that make a To header hold more than one address, a group or a
#: display name (, ; : < > ( ) [ ] \ and "): "dr.smith,other@elsewhere.example" was stored and
#: then read as two recipients, "x@clinic.example:25" as "x@clinic.example" and "25" (the
#: sender now refuses such a recipient; this says so at input).
_ADDRESS_CHAR = r"[^@\s\x00-\x1f\x7f,;:<>()\[\]\\\"]"
_EMAIL = re.compile(rf"^{_ADDRESS_CHAR}{{1,64}}@{_ADDRESS_CHAR}{{1,253}}\.{_ADDRESS_CHAR}{{2,}}$")
_MAX_FAILING_HOURS = 24 * 30
#: One minute. Shorter is no health signal: the worker retries a failed delivery after 5 s and
#: then 5 min (domain.delivery.DEFAULT_RETRY_DELAYS), so a shorter period marks an endpoint
#: failing on its first failed attempt; and a tiny value (1e-300 h) rounds to a zero timedelta,
#: which the delivery policy cannot take at all.
_MIN_FAILING_HOURS = 1 / 60


class InvalidSettings(FitError):
    rule = "invalid_settings"


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    failing_after: timedelta = DEFAULT_FAILING_AFTER

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> DeliverySettings:
        raw = raw or {}
        unknown = sorted(set(raw) - {"failing_after_hours"})
        if unknown:
            raise InvalidSettings(
                f"unknown delivery setting(s) {', '.join(unknown)}; known: failing_after_hours",
                field=f"delivery.{unknown[0]}",
            )
        hours = raw.get("failing_after_hours")
        if hours is None:
            return cls()
        if isinstance(hours, bool) or not isinstance(hours, int | float):
            raise InvalidSettings(
                "failing_after_hours must be a number", field="delivery.failing_after_hours"
            )
        if not _MIN_FAILING_HOURS <= hours <= _MAX_FAILING_HOURS:
            raise InvalidSettings(
                f"failing_after_hours must be from {_MIN_FAILING_HOURS:.4g} (one minute) to "
                f"{_MAX_FAILING_HOURS}",
                field="delivery.failing_after_hours",
            )
        return cls(timedelta(hours=float(hours)))


def delivery_settings(raw: Mapping[str, Any]) -> DeliverySettings:
    """The stored delivery section; defaults if it were ever unreadable."""
    try:
        return DeliverySettings.from_mapping(raw.get("delivery"))
    except FitError:
        return DeliverySettings()


def _effective_risk(settings: RiskSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        out[f.name] = value.label if isinstance(value, Severity) else value
    return out


def validate(body: Mapping[str, Any]) -> dict[str, Any]:
    """The settings document to store, or :class:`InvalidSettings` naming the bad field."""
    unknown = sorted(set(body) - set(SECTIONS))
    if unknown:
        raise InvalidSettings(
            f"unknown settings section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}",
            field=unknown[0],
        )
    for name in SECTIONS:
        if name in body and not isinstance(body[name], Mapping):
            raise InvalidSettings(f"{name} must be an object", field=name)
    risk = dict(body.get("risk") or {})
    for key, owner in thresholds.SHARED.items():
        if key in risk:
            raise InvalidSettings(
                f"set reports.{owner} instead: one value serves the episode views, the alerts "
                "and the reports",
                field=f"risk.{key}",
                rule="shared_threshold",
            )
    try:
        thresholds.check_risk_bounds(risk)
        RiskSettings.from_mapping(risk)
    except FitError as exc:
        raise InvalidSettings(exc.detail, field=f"risk.{exc.field}", rule=exc.rule) from None
    reports = dict(body.get("reports") or {})
    _validate_reports(reports)
    delivery = dict(body.get("delivery") or {})
    DeliverySettings.from_mapping(delivery)
    return {"risk": risk, "reports": reports, "delivery": delivery}


def _validate_reports(reports: dict[str, Any]) -> None:
    try:
        for key, value in reports.items():
            # before ReportSettings, whose range check cannot take an int beyond a float
            if isinstance(value, int) and abs(value) > thresholds.MAX_NUMBER:
                raise FitError(
                    f"reports.{key} is out of range",
                    field=f"reports.{key}",
                    rule="invalid_report_setting",
                )
        monthly_report.ReportSettings.from_mapping(reports)
    except FitError as exc:
        field = exc.field or "reports"
        if not field.startswith("reports"):
            field = f"reports.{field}"
        raise InvalidSettings(exc.detail, field=field, rule=exc.rule) from None


def _view(stored: Mapping[str, Any]) -> dict[str, Any]:
    risk = stored.get("risk") or {}
    delivery = delivery_settings(stored)
    effective = thresholds.from_settings(stored)
    return {
        "risk": dict(risk),
        "reports": dict(stored.get("reports") or {}),
        "delivery": dict(stored.get("delivery") or {}),
        "effective": {
            "risk": _effective_risk(effective.risk),
            "reports": effective.reports.as_mapping(),
            "delivery": {"failing_after_hours": delivery.failing_after.total_seconds() / 3600},
        },
    }


def get_settings(uow: UnitOfWork, principal: Principal) -> dict[str, Any]:
    principal.require(Permission.SETTINGS_MANAGE)
    stored = uow.session.scalar(select(Clinic.settings).where(Clinic.id == principal.clinic_id))
    audit.record(uow.session, principal, [audit.AuditEntry("settings.read", "clinic", None)])
    uow.commit()
    return _view(stored or {})


def put_settings(uow: UnitOfWork, principal: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
    """Replace the clinic's settings (sections left out go back to their defaults)."""
    principal.require(Permission.SETTINGS_MANAGE)
    document = validate(body)
    before = uow.session.scalar(select(Clinic.settings).where(Clinic.id == principal.clinic_id))
    uow.session.execute(
        update(Clinic).where(Clinic.id == principal.clinic_id).values(settings=document)
    )
    concern = thresholds.from_settings(document).reports.srs_concern
    if concern != thresholds.from_settings(before).reports.srs_concern:
        # The report's per-month counts of sessions below the line, counted again against
        # the new one (services/episode_months.py; the report would be right without it,
        # but slower, counting such rows from the sessions).
        episode_months.recount_below(uow.session.connection(), principal.clinic_id, concern)
    audit.record(uow.session, principal, [audit.AuditEntry("settings.write", "clinic", None)])
    uow.commit()
    return _view(document)


def set_clinician_email(
    uow: UnitOfWork, principal: Principal, clinician: str, email: str | None
) -> dict[str, Any]:
    """Where a clinician's alert e-mails go (``None`` stops them)."""
    principal.require(Permission.SETTINGS_MANAGE)
    if email is not None and not _EMAIL.fullmatch(email):
        raise InvalidSettings("not an e-mail address", field="email", rule="email_format")
    result = uow.session.execute(
        update(Clinician)
        .where(Clinician.clinic_id == principal.clinic_id, Clinician.external_id == clinician)
        .values(email=email)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound(f"no clinician {clinician}", field="clinician_id")
    audit.record(
        uow.session, principal, [audit.AuditEntry("clinician.email", "clinician", clinician)]
    )
    uow.commit()
    return {"clinician_id": clinician, "email": email}
