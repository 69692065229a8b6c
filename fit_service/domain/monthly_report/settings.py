"""The clinic's report settings and dropout definition, validated, and printed verbatim in
the report.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fit_service.domain.change import (
    ChangeCriteria,
)
from fit_service.domain.errors import FitError
from fit_service.domain.instruments import CORS, ORS, AgeBand, outcome_instrument_for
from fit_service.domain.monthly_report.values import DEFAULT_MIN_N


class DropoutRule(StrEnum):
    """Which closed episodes count as dropouts (domain.md §6: definitions vary, so the clinic
    chooses one; the report prints it). Keys are what ``settings.reports.dropout_definition``
    holds."""

    #: The client ended unilaterally: ending coded ``client_ended`` or ``stopped_attending``.
    UNILATERAL = "unilateral"
    #: Missed the last scheduled session and never returned: ``stopped_attending`` only.
    STOPPED_ATTENDING = "stopped_attending"
    #: Fewer than N attended sessions without a planned ending (transfers excepted).
    EARLY_UNPLANNED = "early_unplanned"

    def describe(self, max_sessions: int) -> str:
        """The definition as printed in every report."""
        if self is DropoutRule.UNILATERAL:
            return (
                "The client ended the episode unilaterally: ending coded 'client ended' or "
                "'stopped attending' (not planned or agreed with the clinician)."
            )
        if self is DropoutRule.STOPPED_ATTENDING:
            return (
                "The client stopped attending and never returned (ending coded 'stopped "
                "attending'); a client's own announced ending is not counted."
            )
        return (
            f"The episode ended after fewer than {max_sessions} attended sessions without a "
            "planned or mutual ending (transfers are not counted)."
        )


#: Ending reasons (``episodes.ending_reason``) coded planned/mutual and unilateral
#: (domain.md §4: "endings coded planned/mutual vs unilateral"); the rest (transferred, other,
#: none recorded) are neither.
PLANNED_ENDINGS = frozenset({"planned"})
UNILATERAL_ENDINGS = frozenset({"client_ended", "stopped_attending"})
_NOT_DROPOUT = frozenset({"planned", "transferred"})


def is_dropout(
    rule: DropoutRule, ending_reason: str | None, attended_sessions: int, max_sessions: int
) -> bool:
    """Does a closed episode count as a dropout under ``rule``?"""
    if rule is DropoutRule.UNILATERAL:
        return ending_reason in UNILATERAL_ENDINGS
    if rule is DropoutRule.STOPPED_ATTENDING:
        return ending_reason == "stopped_attending"
    return ending_reason not in _NOT_DROPOUT and attended_sessions < max_sessions


#: Kept for callers that print the default definition.
DEFAULT_DROPOUT_DEFINITION = DropoutRule.UNILATERAL.describe(3)


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """The clinic's settings a report was computed with, printed in its methods appendix.

    Defaults come from domain.md §3 via :mod:`fit_service.domain.instruments` so there is one
    source for each threshold. ``dropout_definition`` is the printed text; left empty it is
    the chosen rule's standard wording. :meth:`from_mapping` reads a clinic's ``"reports"``
    settings section.
    """

    min_n: int = DEFAULT_MIN_N
    ors_cutoff_adult: float = ORS.clinical_cutoffs[AgeBand.ADULT]  # 25, PCOMS manuals
    ors_cutoff_adolescent: float = ORS.clinical_cutoffs[AgeBand.ADOLESCENT]  # 28, PCOMS norms
    cors_cutoff: float = CORS.clinical_cutoffs[AgeBand.CHILD]  # 32, Duncan et al. 2006
    cutoff_is_clinical: bool = ORS.cutoff_is_clinical  # is a score equal to the cut-off clinical
    reliable_change: float = ORS.reliable_change_points or 5.0  # PCOMS manuals (domain.md §3)
    srs_concern: float = 36.0  # SRS total below this is a concern (domain.md §3)
    dropout_definition: str = ""
    follow_up_days: int = 30  # "still in care a month later"
    severity_reference: str = (
        "the clinic's own clinical-range closed episodes over the trailing 12 months"
    )
    dropout_rule: DropoutRule = DropoutRule.UNILATERAL
    #: N of :attr:`DropoutRule.EARLY_UNPLANNED` ("fewer than N sessions", domain.md §6)
    dropout_max_sessions: int = 3

    def __post_init__(self) -> None:
        if self.min_n < 1:
            raise ValueError("min_n must be at least 1")
        if self.follow_up_days < 1:
            raise ValueError("follow_up_days must be at least 1")
        if not self.dropout_definition.strip():
            text = self.dropout_rule.describe(self.dropout_max_sessions)
            object.__setattr__(self, "dropout_definition", text)

    def cutoff_for(self, age_band: AgeBand) -> float:
        """The clinical cut-off of the outcome measure normed for ``age_band``."""
        if age_band is AgeBand.CHILD:
            return self.cors_cutoff
        if age_band is AgeBand.ADOLESCENT:
            return self.ors_cutoff_adolescent
        return self.ors_cutoff_adult

    def criteria_for(self, age_band: AgeBand) -> ChangeCriteria:
        """Change criteria (fit_service.domain.change) for an age band's outcome measure."""
        return _criteria_for(self, age_band)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> ReportSettings:
        """Validate a clinic's ``"reports"`` settings section; absent keys keep the defaults.

        Raises :class:`FitError` (rule ``invalid_report_setting``) naming the offending key as
        ``reports.<key>``. Unknown keys are refused too: a typo silently ignored would print a
        default the clinic thinks it changed.
        """
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise _setting_error("reports", "must be an object")
        values: dict[str, Any] = {}
        for key, raw in mapping.items():
            spec = _SETTING_SPECS.get(key)
            if spec is None:
                known = ", ".join(sorted(_SETTING_SPECS))
                raise _setting_error(key, f"is not a report setting (known: {known})")
            name, value = spec(key, raw)
            values[name] = value
        return cls(**values)

    def as_mapping(self) -> dict[str, Any]:
        """The settings in the shape :meth:`from_mapping` reads (for a settings endpoint)."""
        return {
            "min_n": self.min_n,
            "dropout_definition": self.dropout_rule.value,
            "dropout_max_sessions": self.dropout_max_sessions,
            "follow_up_days": self.follow_up_days,
            "srs_concern": self.srs_concern,
            "ors_cutoff_adult": self.ors_cutoff_adult,
            "ors_cutoff_adolescent": self.ors_cutoff_adolescent,
            "cors_cutoff": self.cors_cutoff,
            "cutoff_is_clinical": self.cutoff_is_clinical,
            "reliable_change": self.reliable_change,
        }


@functools.lru_cache(maxsize=64)
def _criteria_for(settings: ReportSettings, age_band: AgeBand) -> ChangeCriteria:
    # Built once per settings and band: a report asks for the same three criteria tens of
    # thousands of times (every classified pair, every unilateral ending). Both arguments are
    # frozen and hashable, and ChangeCriteria is immutable, so sharing one is safe.
    return ChangeCriteria.for_instrument(
        outcome_instrument_for(age_band),
        age_band,
        cutoff=settings.cutoff_for(age_band),
        cutoff_is_clinical=settings.cutoff_is_clinical,
        reliable_change_points=settings.reliable_change,
    )


def _setting_error(key: str, problem: str) -> FitError:
    field_name = key if key == "reports" else f"reports.{key}"
    return FitError(f"{field_name} {problem}", field=field_name, rule="invalid_report_setting")


def _int_setting(low: int, high: int) -> Any:
    def parse(key: str, raw: object) -> tuple[str, int]:
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            raise _setting_error(key, f"must be a whole number from {low} to {high}")
        return key, raw

    return parse


def _number_setting(low: float, high: float) -> Any:
    def parse(key: str, raw: object) -> tuple[str, float]:
        ok = (
            not isinstance(raw, bool)
            and isinstance(raw, int | float)
            and math.isfinite(raw)
            and low <= raw <= high
        )
        if not ok:
            raise _setting_error(key, f"must be a number from {low:g} to {high:g}")
        return key, float(raw)  # type: ignore[arg-type]

    return parse


def _bool_setting(key: str, raw: object) -> tuple[str, bool]:
    if not isinstance(raw, bool):
        raise _setting_error(key, "must be true or false")
    return key, raw


def _dropout_setting(key: str, raw: object) -> tuple[str, DropoutRule]:
    if isinstance(raw, str) and raw in {rule.value for rule in DropoutRule}:
        return "dropout_rule", DropoutRule(raw)
    known = ", ".join(rule.value for rule in DropoutRule)
    raise _setting_error(key, f"must be one of {known}")


#: ``"reports"`` settings keys -> parser returning (field name, value). Ranges: ORS/SRS totals
#: run 0-40 (domain.md §2). A cut-off, concern line or reliable change below one point is no
#: clinical threshold but a typo (1e-12 was stored and made every unchanged score a "reliable"
#: change, and its reciprocal overflowed the dropout model's features), so they start at 1.
_SETTING_SPECS: dict[str, Any] = {
    "min_n": _int_setting(1, 1000),
    "dropout_definition": _dropout_setting,
    "dropout_max_sessions": _int_setting(1, 100),
    "follow_up_days": _int_setting(1, 365),
    "srs_concern": _number_setting(1.0, 40.0),
    "ors_cutoff_adult": _number_setting(1.0, 40.0),
    "ors_cutoff_adolescent": _number_setting(1.0, 40.0),
    "cors_cutoff": _number_setting(1.0, 40.0),
    "cutoff_is_clinical": _bool_setting,
    "reliable_change": _number_setting(1.0, 40.0),
}
