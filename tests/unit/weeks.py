"""Dates and settings the rule and alert tests share: sessions a week apart from one Monday,
and the settings of a clinic that alerts from MEDIUM up."""

from __future__ import annotations

import datetime as dt

from fit_service.domain.risk import RiskSettings, Severity

DAY0 = dt.date(2024, 3, 4)
MEDIUM_UP = RiskSettings(alert_min_severity=Severity.MEDIUM)


def day(week: int) -> dt.date:
    """The date ``week`` weeks after :data:`DAY0`."""
    return DAY0 + dt.timedelta(weeks=week)
