"""The clinic's WAI-SR bottom decile, against a hand calculation."""

from __future__ import annotations

import math
import random

import pytest

from fit_service.domain.alliance_reference import bottom_deciles


def type7_percentile(values: list[float], p: float) -> float:
    """Hyndman & Fan type 7, written out: h = (n - 1) p, interpolate between order statistics."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * p
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def test_deciles_match_a_hand_calculation_per_session_and_subscale() -> None:
    rng = random.Random(2)
    ratings = []
    for number in (1, 2):
        for _ in range(37):
            ratings.append(
                (number, {"goal": rng.randint(4, 20), "task": rng.randint(4, 20), "bond": 18.0})
            )
    reference = bottom_deciles(ratings, min_ratings=30)
    for number in (1, 2):
        for name in ("goal", "task", "bond"):
            values = [float(s[name]) for n, s in ratings if n == number]
            assert reference[number][name] == pytest.approx(
                round(type7_percentile(values, 0.10), 1)
            )


def test_a_session_number_with_too_few_ratings_has_no_decile() -> None:
    ratings = [(1, {"goal": 10.0 + i % 5}) for i in range(30)] + [(2, {"goal": 12.0})] * 29
    reference = bottom_deciles(ratings, min_ratings=30)
    assert set(reference) == {1}
    assert set(reference[1]) == {"goal"}  # subscales never given have no line either
