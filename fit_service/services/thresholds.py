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
from dataclasses import dataclass
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
    should a stored value still be refused, defaults are used and the fact logged, because
    failing every session write of a clinic over a setting would be worse."""
    raw = raw or {}
    try:
        reports = ReportSettings.from_mapping(raw.get("reports") or None)
    except FitError as exc:
        log.warning("clinic report settings refused (%s); using defaults", exc.rule)
        reports = ReportSettings()
    risk_raw = {k: v for k, v in (raw.get("risk") or {}).items() if k not in SHARED}
    risk_raw.update({k: getattr(reports, v) for k, v in SHARED.items()})
    try:
        risk = RiskSettings.from_mapping(risk_raw)
    except FitError as exc:
        log.warning("clinic risk settings refused (%s); using defaults", exc.rule)
        risk = RiskSettings.from_mapping({k: getattr(reports, v) for k, v in SHARED.items()})
    return ClinicThresholds(reports, risk)


def load(db: Session, clinic_id: int) -> ClinicThresholds:
    raw = db.scalar(select(Clinic.settings).where(Clinic.id == clinic_id))
    return from_settings(raw)
