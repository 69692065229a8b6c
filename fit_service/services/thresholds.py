"""One set of clinical thresholds per clinic, for every surface.

The episode views, the risk rules, the trajectories and the monthly report all judge the same
scores, so they must use the same cut-offs, the same reliable-change threshold and the same SRS
concern line. Those live in one place — the ``reports`` section of the clinic's settings
(:class:`~fit_service.domain.monthly_report.ReportSettings`, defaults from domain.md §3) — and
the risk settings take them from there. The ``risk`` section may not set them again: the
settings endpoint refuses ``risk.reliable_change`` and ``risk.srs_concern_total``
(:data:`SHARED`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fit_service.adapters.orm import Clinic
from fit_service.domain.change import ChangeCriteria
from fit_service.domain.errors import FitError
from fit_service.domain.instruments import AgeBand
from fit_service.domain.monthly_report import ReportSettings
from fit_service.domain.risk import RiskSettings

log = logging.getLogger(__name__)

#: risk-section key -> the reports-section key that owns the value
SHARED = {"reliable_change": "reliable_change", "srs_concern_total": "srs_concern"}

_SESSIONS = 100
#: Upper bounds of the whole-number risk settings (``RiskSettings`` checks only ``>= 1``).
#: Session numbers and counts stop at 100, where the reports' ``dropout_max_sessions`` and the
#: trajectory horizon stop (two years of weekly sessions; past it no episode could reach the
#: checkpoint). A gap stops at 365 days, as the reports' ``follow_up_days``: a year without a
#: session is no "lengthening gap" left to flag. Without a bound a huge integer was stored and
#: then could not be written back as JSON (64-bit), failing the settings and every alert.
RISK_INT_MAX = {
    "early_window_sessions": _SESSIONS,
    "discuss_checkpoint": _SESSIONS,
    "change_checkpoint": _SESSIONS,
    "withdrawal_min_sessions": _SESSIONS,
    "alliance_clear_sessions": _SESSIONS,
    "deterioration_clear_sessions": _SESSIONS,
    "deterioration_confirm_scores": _SESSIONS,
    "max_gap_days": 365,
    # in units of max_gap_days: 20 gaps is already years at any sensible gap; beyond it the
    # stale-evidence rule would be switched off without saying so
    "stale_evidence_gaps": 20,
}
#: No number setting comes near this (the largest range ends at 1000); an integer beyond it
#: cannot be converted to a float exactly, or at all past ~1e308.
MAX_NUMBER = 2**53


def check_risk_bounds(risk: Mapping[str, Any]) -> None:
    """Refuse (``FitError`` naming the key) an integer above its bound in :data:`RISK_INT_MAX`,
    or any integer too large to be a number (before ``RiskSettings`` converts it)."""
    known = {f.name for f in fields(RiskSettings)}
    for key, value in risk.items():
        if key not in known or isinstance(value, bool) or not isinstance(value, int):
            continue  # RiskSettings names an unknown key and a wrong type
        high = RISK_INT_MAX.get(key)
        if high is not None and value > high:
            detail = f"must be a whole number from 1 to {high}"
        elif abs(value) > MAX_NUMBER:
            detail = "is out of range"
        else:
            continue
        raise FitError(f"risk setting {key}: {detail}", field=key, rule="invalid_risk_setting")


@dataclass(frozen=True)
class ClinicThresholds:
    reports: ReportSettings
    risk: RiskSettings

    def outcome_criteria(self, band: AgeBand) -> ChangeCriteria:
        """Cut-off, reliable change and direction of the band's outcome measure."""
        return self.reports.criteria_for(band)

    def clinical_cutoff(self, band: AgeBand) -> float:
        return self.reports.cutoff_for(band)


DEFAULT = ClinicThresholds(ReportSettings(), RiskSettings())


def from_settings(raw: Mapping[str, Any] | None) -> ClinicThresholds:
    """Thresholds from a clinic's stored settings document. Settings are validated when stored;
    should a stored value still be refused (stored before a bound was tightened), that key's
    default is used and the fact logged - only that key's: the clinic's other choices (its
    alert severity, its minimum n for small cells) stay in force. Failing every session write
    of a clinic over a setting would be worse."""
    raw = raw or {}
    reports = _parse_keeping_the_rest(
        ReportSettings.from_mapping, dict(raw.get("reports") or {}), "reports"
    )
    risk_raw = {k: v for k, v in (raw.get("risk") or {}).items() if k not in SHARED}
    shared = {k: getattr(reports, v) for k, v in SHARED.items()}

    def parse_risk(values: dict[str, Any] | None) -> RiskSettings:
        values = {**(values or {}), **shared}
        check_risk_bounds(values)
        return RiskSettings.from_mapping(values)

    risk = _parse_keeping_the_rest(parse_risk, risk_raw, "risk")
    return ClinicThresholds(reports, risk)


def _parse_keeping_the_rest(parse: Any, values: dict[str, Any], section: str) -> Any:
    """``parse(values)``, leaving out each key it refuses (logged by name and rule, never by
    value) until it accepts the rest; the defaults if no key can be blamed."""
    for _ in range(len(values) + 1):
        try:
            return parse(values or None)
        except FitError as exc:
            key = (exc.field or "").removeprefix(f"{section}.")
            if key not in values:
                break
            log.warning(
                "clinic %s setting %s refused (%s); its default is used", section, key, exc.rule
            )
            del values[key]
    log.warning("clinic %s settings refused; using defaults", section)
    return parse(None)


def load(db: Session, clinic_id: int) -> ClinicThresholds:
    raw = db.scalar(select(Clinic.settings).where(Clinic.id == clinic_id))
    return from_settings(raw)
