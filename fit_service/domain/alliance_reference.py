"""The clinic's own WAI-SR reference: the bottom decile of each subscale at each session number.

The WAI-SR has no published clinical cut-off (domain.md §3), so "weak" is judged against the
clinic's own clients at the same point in therapy (alliance scores change over the first
sessions, so session 2 is compared with session 2). A decile is only given where it rests on
at least :data:`MIN_RATINGS` ratings at that session number (HEURISTIC: with fewer, a tenth of
the sample is a couple of clients and the line would move with each new rating); otherwise the
rule falls back to its labelled heuristic floor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from fit_service.domain.instruments import WAI_SR_CLIENT

#: HEURISTIC: ratings needed at a session number before its decile is used (see module doc)
MIN_RATINGS = 30
#: the reference percentile (issue 4 / domain.md §3: "the clinic's bottom decile")
PERCENTILE = 10.0


def bottom_deciles(
    ratings: Iterable[tuple[int, Mapping[str, float]]], min_ratings: int = MIN_RATINGS
) -> dict[int, dict[str, float]]:
    """``{session number: {subscale: 10th percentile}}`` from ``(session number, subscales)``
    pairs, for session numbers with at least ``min_ratings`` values of a subscale.

    The percentile is numpy's default (linear interpolation between order statistics, Hyndman &
    Fan type 7), rounded to one decimal like the scores themselves.
    """
    by_session: dict[int, dict[str, list[float]]] = {}
    for number, subscales in ratings:
        slot = by_session.setdefault(number, {})
        for name in WAI_SR_CLIENT.subscales:
            value = subscales.get(name)
            if value is not None:
                slot.setdefault(name, []).append(float(value))
    reference: dict[int, dict[str, float]] = {}
    for number, values in sorted(by_session.items()):
        deciles = {
            name: round(float(np.percentile(np.array(v), PERCENTILE)), 1)
            for name, v in values.items()
            if len(v) >= min_ratings
        }
        if deciles:
            reference[number] = deciles
    return reference
