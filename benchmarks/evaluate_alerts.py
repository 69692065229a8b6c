"""Evaluate the dropout-risk alerts on a seeded synthetic cohort and print the table.

    .venv/bin/python benchmarks/evaluate_alerts.py [--seed N]

The cohort's assumptions and the metric definitions are in ``fit_service/evaluation.py``.
"""

from __future__ import annotations

import argparse
import time

from fit_service.evaluation import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="cohort seed (default 1)")
    args = parser.parse_args()
    started = time.perf_counter()
    print(run(args.seed))
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
