"""In-process write-path timing (prints figures; not a test): for A/B runs of two checkouts.

Runs the Flask test client (no gunicorn, no HTTP) against a fresh PostgreSQL database: six
1,000-session backfill batches (ORS + SRS), then 300 single ``POST /v1/sessions``, and prints
the batch times, their median and the median single post. The code measured is the checkout
in the current directory, so the same file compares two trees on the same machine::

    cd /path/to/old-checkout && python /path/to/new/benchmarks/bench_write_inprocess.py
    cd /path/to/new-checkout && python benchmarks/bench_write_inprocess.py

Alternate the two a few times; the machine's load moves single runs by ±20%.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.getcwd())

from benchmarks.bench_ingest import fresh_database, make_key, session_body
from fit_service.app import create_app
from fit_service.config import Settings


def main() -> None:
    url = fresh_database(f"fit_write_{os.getpid()}")
    key = make_key(url)
    os.environ["FIT_DATABASE_URL"] = url
    client = create_app(Settings.from_env()).test_client()
    headers = {"Authorization": f"Bearer {key}"}
    batches = []
    for b in range(6):
        start = (b % 5) * 1000
        items = [session_body(3 + b // 5, n) for n in range(start, start + 1000)]
        t0 = time.perf_counter()
        r = client.post("/v1/sessions/batch", json={"sessions": items}, headers=headers)
        batches.append(time.perf_counter() - t0)
        assert r.json is not None
        assert r.json["created"] == 1000, r.json
    single = []
    for n in range(300):
        t0 = time.perf_counter()
        r = client.post("/v1/sessions", json=session_body(50, n), headers=headers)
        single.append(time.perf_counter() - t0)
        assert r.status_code == 201, r.json
    print(
        f"{os.getcwd()}: batches s {[round(x, 3) for x in batches]}, "
        f"median {statistics.median(batches):.3f} s; "
        f"single post median {statistics.median(single) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
