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


def effective_n(clusters: list[tuple[int, int]]) -> float:
    """Kish's n/deff of the ratio Σy/Σm over ``(y, m)`` clusters, in floats from the
    linearised with-replacement variance ``C/(C-1) · Σ(y - p·m)² / n²`` (Cochran 1977, ch. 6),
    at most ``n``; ``n²/Σm²`` with one cluster or when p is 0 or 1, ``n`` when the variance is
    otherwise 0 (the rules fit_service documents)."""
    used = [(y, m) for y, m in clusters if m > 0]
    n = sum(m for _, m in used)
    k = sum(y for y, _ in used)
    if len(used) < 2 or k in (0, n):
        return n * n / sum(m * m for _, m in used)
    p = k / n
    c = len(used)
    variance = c / (c - 1) * sum((y - p * m) ** 2 for y, m in used) / n**2
    if variance <= 1e-15:
        return float(n)
    return min(float(n), p * (1 - p) / variance)
