"""Benchmark the outcome statistics engine against the floor of doing only the arithmetic.

Run:  .venv/bin/python benchmarks/bench_statistics.py

1. Classification of 1,000,000 closed episodes (first, last ORS; 2% with a missing score):
   engine = ``classify_many`` + ``summary()``; floor = a plain-Python loop that only computes the
   difference, compares it with the threshold and the cut-off, and bumps a counter.
2. Fitting the clinic ETR on 100,000 episodes (3-17 sessions, about 1M scores):
   engine = ``fit_clinic_etr`` (grouping, qualifying episodes, regression, residual bands);
   floor = ``numpy.linalg.lstsq`` alone on the same, already built, design matrix.

Each timing is the median of several runs; the target is engine <= 3x floor.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from fit_service.domain.change import ChangeCriteria, classify, classify_many
from fit_service.domain.instruments import ORS, AgeBand, Direction
from fit_service.domain.trajectory import EtrSample, fit_clinic_etr

SEED = 20240601
N_CLASSIFY = 1_000_000
N_ETR_EPISODES = 100_000
N_SCALAR = 100_000
RUNS = 5
TARGET_RATIO = 3.0
CRITERIA = ChangeCriteria.for_instrument(ORS, AgeBand.ADULT)


def median_seconds(task: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        task()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------- classification


def make_pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    first = np.round(np.clip(rng.normal(19, 7, n), 0, 40), 1)
    last = np.round(np.clip(first + rng.normal(4, 6, n), 0, 40), 1)
    first[rng.random(n) < 0.02] = np.nan
    return first, last


def floor_classify(first: list[float], last: list[float]) -> list[int]:
    """Only the arithmetic: difference, threshold, cut-off, a counter per category."""
    threshold, cutoff = 5.0 - 1e-9, 25.0  # the engine's float tolerance, for equal counts
    counts = [0, 0, 0, 0, 0, 0]  # harmed, deteriorated, unchanged, improved, recovered, n/a
    for a, b in zip(first, last, strict=True):
        if a != a or b != b:  # NaN
            counts[5] += 1
            continue
        diff = b - a
        if diff >= threshold:
            counts[4 if a < cutoff <= b else 3] += 1
        elif -diff >= threshold:
            counts[0 if b < cutoff <= a else 1] += 1
        else:
            counts[2] += 1
    return counts


def engine_classify(first: np.ndarray, last: np.ndarray) -> object:
    return classify_many(first, last, CRITERIA).summary()


def engine_scalar(first: list[float], last: list[float]) -> int:
    return sum(classify(a, b, CRITERIA) is not None for a, b in zip(first, last, strict=True))


# --------------------------------------------------------------------------- ETR


def make_etr_sample(rng: np.random.Generator, n_episodes: int) -> EtrSample:
    counts = rng.integers(3, 18, size=n_episodes)
    episode = np.repeat(np.arange(n_episodes), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    session = np.arange(episode.size) - starts + 1
    intake = np.repeat(np.clip(rng.normal(19, 7, n_episodes), 0, 40), counts)
    log_k = np.log(session)
    score = 2.0 + 0.9 * intake + (5.0 - 0.12 * intake) * log_k + rng.normal(0, 3, session.size)
    score = np.where(session == 1, intake, np.clip(score, 0, 40))
    return EtrSample.from_arrays(episode, session, np.round(score, 1))


def etr_design(sample: EtrSample) -> tuple[np.ndarray, np.ndarray]:
    """The design matrix the engine solves (post-intake points of qualifying episodes)."""
    starts = np.flatnonzero(np.r_[True, sample.episode[1:] != sample.episode[:-1]])
    counts = np.diff(np.r_[starts, sample.episode.size])
    intake = np.repeat(sample.score[starts], counts)
    later = sample.session >= 2
    i, k = intake[later], np.log(sample.session[later])
    return np.column_stack((np.ones_like(i), i, k, i * k)), sample.score[later]


def floor_etr(design: np.ndarray, y: np.ndarray) -> object:
    return np.linalg.lstsq(design, y, rcond=None)


# --------------------------------------------------------------------------- report


def row(
    task: str, size: str, floor: float | None, engine: float, note: str = "", judged: bool = True
) -> str:
    """One table line; only ``judged`` lines are held to the 3x target (others are context)."""
    floor_ms = "" if floor is None else f"{floor * 1e3:10.1f}"
    ratio = "" if floor is None else f"{engine / floor:6.2f}x"
    verdict = ""
    if floor is not None and judged:
        verdict = "ok" if engine <= TARGET_RATIO * floor else "SLOW"
    return (
        f"{task:<34} {size:>12} {floor_ms:>10} {engine * 1e3:10.1f} {ratio:>7} {verdict:>4}  {note}"
    )


def main() -> None:
    rng = np.random.default_rng(SEED)
    first, last = make_pairs(rng, N_CLASSIFY)
    first_list, last_list = first.tolist(), last.tolist()
    sample = make_etr_sample(rng, N_ETR_EPISODES)
    design, y = etr_design(sample)

    # The engine and the floor must agree before their speed is worth comparing.
    counts = engine_classify(first, last).overall.counts  # type: ignore[attr-defined]
    assert [counts[c] for c in sorted(counts, key=lambda c: c.rank)] == floor_classify(
        first_list, last_list
    )[:5], "engine and floor disagree"
    model = fit_clinic_etr(sample, Direction.HIGHER_IS_BETTER)
    reference = floor_etr(design, y)[0]  # type: ignore[index]
    assert np.allclose(model.coefficients, reference, atol=1e-6), "ETR fit disagrees with lstsq"

    cls_floor = median_seconds(lambda: floor_classify(first_list, last_list), runs=3)
    cls_engine = median_seconds(lambda: engine_classify(first, last))
    scalar = median_seconds(
        lambda: engine_scalar(first_list[:N_SCALAR], last_list[:N_SCALAR]), runs=3
    )
    etr_floor = median_seconds(lambda: floor_etr(design, y))
    etr_engine = median_seconds(lambda: fit_clinic_etr(sample, Direction.HIGHER_IS_BETTER))
    order = rng.permutation(sample.score.size)
    shuffled = EtrSample(sample.episode[order], sample.session[order], sample.score[order])
    etr_shuffled = median_seconds(lambda: fit_clinic_etr(shuffled, Direction.HIGHER_IS_BETTER))

    header = f"{'task':<34} {'size':>12} {'floor ms':>10} {'engine ms':>10} {'ratio':>7} {'':>4}"
    print(f"median of {RUNS} runs (floors of plain-Python loops: 3 runs); seed {SEED}")
    print(header)
    print("-" * len(header))
    print(
        row(
            "classify + summarise",
            f"{N_CLASSIFY:,} ep",
            cls_floor,
            cls_engine,
            "floor: plain-Python loop",
        )
    )
    print(
        row(
            "  scalar classify() per episode",
            f"{N_SCALAR:,} ep",
            None,
            scalar,
            "(info: one call per episode)",
        )
    )
    print(
        row(
            "fit clinic ETR",
            f"{N_ETR_EPISODES:,} ep",
            etr_floor,
            etr_engine,
            f"floor: np.linalg.lstsq on the built design ({y.size:,} scores)",
        )
    )
    print(
        row(
            "  fit clinic ETR, rows shuffled",
            f"{N_ETR_EPISODES:,} ep",
            etr_floor,
            etr_shuffled,
            "(info: includes sorting by episode, session)",
            judged=False,
        )
    )


if __name__ == "__main__":
    main()
