"""Report months (``YYYY-MM``): parsing, printed labels, the trailing-12-month window."""

from __future__ import annotations

import functools
import re

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])\Z")  # \Z: "$" lets "2024-05\n" through
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def month_label(period: str) -> str:
    """``"2024-05"`` -> ``"May 2024"`` without the locale (strftime's %B is locale-dependent)."""
    year, month = _parse_period(period)
    return f"{_MONTH_NAMES[month - 1]} {year}"


def trailing_months(period: str, count: int = 12) -> tuple[str, ...]:
    """The ``count`` months ending with ``period``, oldest first (the trailing-12 window)."""
    year, month = _parse_period(period)
    index = year * 12 + month - 1
    return tuple(f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count + 1, index + 1))


@functools.lru_cache(maxsize=256)
def _parse_period(period: str) -> tuple[int, int]:
    # Cached: a report parses the same dozen periods thousands of times (every trend point
    # and month window checks its own).
    match = _PERIOD.match(period)
    if match is None:
        raise ValueError(f"period must look like YYYY-MM, got {period!r}")
    return int(match.group(1)), int(match.group(2))
