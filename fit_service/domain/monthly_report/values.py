"""Printed values: every figure the report prints is a :class:`Count`, a :class:`Share` or an
:class:`Estimate`, each carrying its n and saying "too few" below the clinic's ``min_n``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fit_service.domain.effect_sizes import (
    ClusterSpread,
    EffectSize,
    proportion,
)

#: Default smallest n printed as a number (issue 5: "a cell with n below a setting (default 10)
#: says 'too few'"). Small cells are both statistically meaningless and re-identifying.
DEFAULT_MIN_N = 10

#: Range separator in printed figures ("95% CI 50.5\u201377.4"); an escape because the en dash
#: looks like a hyphen in source code.
DASH = "\u2013"


def _fmt(value: float, decimals: int) -> str:
    text = f"{value:,.{decimals}f}"
    # "-0.0" reads as a direction that isn't there.
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text


def _too_few(n: int) -> str:
    return "no data (n=0)" if n == 0 else f"too few (n={n})"


@dataclass(frozen=True, slots=True)
class Count:
    """A plain count (episodes, sessions, alerts). Counts are never suppressed: they describe
    the clinic's activity, not a rate that small numbers would make misleading."""

    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("a count cannot be negative")

    def display(self, min_n: int = DEFAULT_MIN_N, decimals: int = 0) -> str:
        return f"{self.value:,}"


@dataclass(frozen=True, slots=True)
class Share:
    """A printed percentage with its n: ``numerator`` of ``denominator``, Wilson 95% CI.

    A presentation type: the interval itself comes from
    :func:`fit_service.domain.effect_sizes.proportion` (Wilson 1927), the one place the
    project computes it. (Named ``Share`` so it is not confused with that module's
    ``Proportion`` result type.) ``spread``: for a rate over sessions, how they sit in
    clients; the interval is then on the effective sample size (see
    :class:`~fit_service.domain.effect_sizes.ClusterSpread`).
    """

    numerator: int
    denominator: int
    spread: ClusterSpread | None = None
    #: The Wilson interval, computed on first use and kept (a renderer asks for it up to
    #: three times per cell: low, high and the printed text). Not part of equality.
    _ci: tuple[float, float] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )
    #: The effective n, likewise (``None``: no spread, or not computed yet).
    _effective_n: float | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if not 0 <= self.numerator <= self.denominator:
            raise ValueError(f"proportion {self.numerator}/{self.denominator} is impossible")

    @property
    def n(self) -> int:
        return self.denominator

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    @property
    def ci(self) -> tuple[float, float] | None:
        if self._ci is None and self.denominator:
            result = proportion(self.numerator, self.denominator, self.effective_n)
            assert result is not None  # a positive denominator always has an interval
            object.__setattr__(self, "_ci", (result.ci_low, result.ci_high))
        return self._ci

    @property
    def ci_low(self) -> float | None:
        ci = self.ci
        return None if ci is None else ci[0]

    @property
    def ci_high(self) -> float | None:
        ci = self.ci
        return None if ci is None else ci[1]

    @property
    def clusters(self) -> int | None:
        """How many clients the rate's sessions come from (``None``: not a rate over
        sessions)."""
        return None if self.spread is None else self.spread.clusters

    @property
    def effective_n(self) -> float | None:
        """The n the interval is computed on, when it is not :attr:`n` itself."""
        if self.spread is None or not self.denominator:
            return None
        if self._effective_n is None:
            size = self.spread.effective_n(self.numerator, self.denominator)
            object.__setattr__(self, "_effective_n", size)
        return self._effective_n

    def is_too_few(self, min_n: int) -> bool:
        return self.denominator < max(min_n, 1)

    def display_value(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        """The number alone ("65.0%"), or "too few (n=4)"."""
        if self.is_too_few(min_n):
            return _too_few(self.denominator)
        return self._value_text(decimals)

    def display_detail(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        """What qualifies the number ("n=40, 95% CI 50.5-77.4"); empty when suppressed."""
        if self.is_too_few(min_n):
            return ""
        return self._detail_text(decimals)

    def display(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        """The one printed form: "65.0% (n=40, 95% CI 49.5-77.9)" or "too few (n=4)"."""
        # What _join(display_value, display_detail) gives, deciding "too few" once: the JSON
        # export prints this for every cell of every group.
        if self.is_too_few(min_n):
            return _too_few(self.denominator)
        return f"{self._value_text(decimals)} ({self._detail_text(decimals)})"

    def _value_text(self, decimals: int) -> str:
        return f"{100 * self.numerator / self.denominator:.{decimals}f}%"

    def _detail_text(self, decimals: int) -> str:
        low, high = self.ci or (0.0, 0.0)
        low_text, high_text = f"{100 * low:.{decimals}f}", f"{100 * high:.{decimals}f}"
        return f"n={self.denominator:,}, 95% CI {low_text}{DASH}{high_text}"


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean, median or effect size with its n and, when there is one, a 95% CI.

    ``value`` is ``None`` when the figure can't be computed (no data, no spread); the n still
    says how many observations there were.
    """

    value: float | None
    n: int
    ci_low: float | None = None
    ci_high: float | None = None

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n cannot be negative")
        if (self.ci_low is None) != (self.ci_high is None):
            raise ValueError("a confidence interval needs both ends")
        if self.value is None and self.ci_low is not None:
            raise ValueError("an interval without a value")

    @classmethod
    def none(cls) -> Estimate:
        """No observations at all."""
        return cls(value=None, n=0)

    @classmethod
    def of_effect_size(cls, effect: EffectSize | None, n: int) -> Estimate:
        """Present an :class:`~fit_service.domain.effect_sizes.EffectSize` (computed there, the
        one place effect sizes are computed); ``None`` means not computable from ``n`` pairs."""
        if effect is None:
            return cls(value=None, n=n)
        return cls(value=effect.value, n=effect.n, ci_low=effect.ci_low, ci_high=effect.ci_high)

    def is_too_few(self, min_n: int) -> bool:
        return self.n < max(min_n, 1)

    def display_value(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        if self.n < max(min_n, 1):
            return _too_few(self.n)
        if self.value is None:
            return f"not computable (n={self.n})"
        return _fmt(self.value, decimals)

    def display_detail(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        if self.is_too_few(min_n) or self.value is None:
            return ""
        if self.ci_low is None or self.ci_high is None:
            return f"n={self.n:,}"
        low, high = _fmt(self.ci_low, decimals), _fmt(self.ci_high, decimals)
        # "-0.20-0.35" reads as a subtraction; say "to" whenever a bound is negative.
        sep = " to " if low.startswith("-") or high.startswith("-") else DASH
        return f"n={self.n:,}, 95% CI {low}{sep}{high}"

    def display(self, min_n: int = DEFAULT_MIN_N, decimals: int = 1) -> str:
        return _join(self.display_value(min_n, decimals), self.display_detail(min_n, decimals))


def _join(value: str, detail: str) -> str:
    return f"{value} ({detail})" if detail else value


Value = Count | Share | Estimate
