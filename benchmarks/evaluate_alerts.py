"""Evaluate the dropout-risk alerts on a seeded synthetic cohort and print the table.

    .venv/bin/python benchmarks/evaluate_alerts.py [--seed N] [--no-held-out]

Prints the table for one seed (our rules, the "SRS < 36" baseline and the oracle CEILING),
then the rows pooled over the calibration seeds 1-5, the development seeds 11-15 (held out once,
since looked at) and the held-out seeds 21-25. The cohort's
assumptions, the metric definitions and the ceiling are in ``fit_service/evaluation.py``.
"""

from __future__ import annotations

import argparse
import time

from fit_service.evaluation import DEVELOPMENT_SEEDS, run, run_seed_sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="cohort seed (default 1)")
    parser.add_argument(
        "--no-held-out",
        action="store_true",
        help="skip the pooled calibration (1-5) and held-out (11-15) tables",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    print(run(args.seed))
    if not args.no_held_out:
        print()
        print(run_seed_sets(development=DEVELOPMENT_SEEDS))
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
