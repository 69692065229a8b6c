"""Interval formulas written out by hand, for tests that check the service's figures against an
independent calculation (none of the service's code is imported here)."""

from __future__ import annotations

import math

Z_95 = 1.959963984540054


def wilson(k: int, n: float, total: int | None = None) -> tuple[float, float]:
    """Wilson (1927) 95% score interval of ``k`` of ``total`` (default ``n``), computed on
    ``n`` units: ``n`` < ``total`` is an effective sample size (Korn & Graubard 1998)."""
    total = round(n) if total is None else total
    p = k / total
    z2 = Z_95 * Z_95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == total else min(1.0, centre + half)
    return low, high


def t_975(df: int) -> float:
    """Student's t 97.5% quantile by Newton's method on the distribution function, which is
    integrated from the density by Simpson's rule (no statistics library)."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x: float) -> float:
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    def cdf(t: float, steps: int = 4000) -> float:
        h = t / steps
        inner = sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
        return 0.5 + h / 3 * (density(0.0) + inner + density(t))

    t = Z_95
    for _ in range(50):
        step = (cdf(t) - 0.975) / density(t)
        t -= step
        if abs(step) < 1e-12:
            break
    return t


def effective_n(clusters: list[tuple[int, int]]) -> float:
    """Kish's n/deff of the ratio Σy/Σm over ``(y, m)`` clusters, in floats from the
    linearised with-replacement variance ``C/(C-1) · Σ(y - p·m)² / n²`` (Cochran 1977, ch. 6),
    at most ``n``, and ``n`` when that variance is 0 (p of 0 or 1, or equal rates: NCHS's
    design effect of 1); then times ``(t(n-1)/t(C-1))²`` (Korn & Graubard's degrees of
    freedom, at least one). One cluster: ``n²/Σm²`` = 1 before that correction (the rules
    fit_service documents)."""
    used = [(y, m) for y, m in clusters if m > 0]
    n = sum(m for _, m in used)
    k = sum(y for y, _ in used)
    c = len(used)
    if c < 2:
        size = n * n / sum(m * m for _, m in used)
    else:
        p = k / n
        variance = c / (c - 1) * sum((y - p * m) ** 2 for y, m in used) / n**2
        size = float(n) if variance <= 1e-15 else min(float(n), p * (1 - p) / variance)
    return size if n == 1 else size * (t_975(n - 1) / t_975(max(c - 1, 1))) ** 2
