"""The report: the whole clinic, its clinicians and age bands, with its settings and
references; one frozen object that the PDF, JSON and CSV renderers only format.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from fit_service.domain.errors import NotFound
from fit_service.domain.monthly_report.figures import GroupReport
from fit_service.domain.monthly_report.periods import _parse_period, month_label
from fit_service.domain.monthly_report.references import LITERATURE_BENCHMARKS, Benchmark
from fit_service.domain.monthly_report.settings import ReportSettings


class Scope(StrEnum):
    CLINIC = "clinic"
    CLINICIAN = "clinician"


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    """The whole monthly benchmark report for one clinic (or one clinician's view of it).

    ``generated_at`` is passed in (aware, UTC) rather than read from the clock, so the same
    input renders to byte-identical files. ``clinicians`` and ``age_bands`` are kept in the
    order given; renderers sort clinicians by label (a comparison, not a league table).
    """

    clinic_name: str
    period: str  # YYYY-MM
    generated_at: datetime
    overall: GroupReport
    clinicians: tuple[GroupReport, ...] = ()
    age_bands: tuple[GroupReport, ...] = ()
    settings: ReportSettings = field(default_factory=ReportSettings)
    benchmarks: tuple[Benchmark, ...] = LITERATURE_BENCHMARKS
    scope: Scope = Scope.CLINIC
    #: The month had not ended in the clinic's zone when the report was made
    #: (``generated_at`` is then that moment): its figures hold the sessions recorded so far.
    in_progress: bool = False

    def __post_init__(self) -> None:
        _parse_period(self.period)
        offset = self.generated_at.utcoffset()
        if offset is None:
            raise ValueError("generated_at must be timezone-aware")
        if offset != timedelta(0):
            raise ValueError("generated_at must be in UTC (convert at the edge)")
        keys = [group.key for group in self.clinicians]
        if len(keys) != len(set(keys)):
            raise ValueError("clinician keys must be unique")

    @property
    def is_empty(self) -> bool:
        """No episode was active and no session was scheduled in the month."""
        return not self.overall.month.has_data

    @property
    def period_label(self) -> str:
        return month_label(self.period)

    @property
    def min_n(self) -> int:
        return self.settings.min_n

    def benchmark_for(self, metric_key: str) -> Benchmark | None:
        return next((b for b in self.benchmarks if b.metric_key == metric_key), None)

    def clinicians_by_label(self) -> tuple[GroupReport, ...]:
        """Clinicians in label order: the order every renderer prints them in."""
        return tuple(sorted(self.clinicians, key=lambda group: (group.label, group.key)))

    def for_clinician(self, clinician_id: str) -> MonthlyReport:
        """The view one clinician may see: their own figures as the report's subject, and
        nothing about anyone else (no other clinicians, no clinic or age-band totals that
        could be subtracted to reveal a colleague's figures)."""
        own = next((group for group in self.clinicians if group.key == clinician_id), None)
        if own is None:
            raise NotFound(f"no figures for clinician {clinician_id!r} in this report")
        return replace(self, overall=own, clinicians=(own,), age_bands=(), scope=Scope.CLINICIAN)
