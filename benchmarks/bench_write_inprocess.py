"""In-process write-path timing (prints figures; not a test): for A/B runs of two checkouts.

Runs the Flask test client (no gunicorn, no HTTP) against a fresh PostgreSQL database: six
1,000-session backfill batches (ORS + SRS), then 300 single ``POST /v1/sessions``, and prints
the batch times, their median and the median single post. The code measured is the checkout
in the current directory, so the same file compares two trees on the same machine::

    cd /path/to/old-checkout && python /path/to/new/benchmarks/bench_write_inprocess.py
    cd /path/to/new-checkout && python benchmarks/bench_write_inprocess.py

Alternate the two a few times; the machine's load moves single runs by ±20%.
``--history 20000`` first loads the report benchmark's two years of a 200-clinician clinic
(20,000 episodes, ~200,000 sessions) into the clinic written to: costs that grow with a clinic's
past show only there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

sys.path.insert(0, os.getcwd())

from sqlalchemy import insert, text

from benchmarks import bench_report
from benchmarks.bench_ingest import fresh_database, make_key, session_body
from fit_service.adapters import migrations
from fit_service.adapters.db import make_engine, make_session_factory
from fit_service.adapters.orm import Clinic, Clinician
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.app import create_app
from fit_service.config import Settings
from fit_service.services import clinics
from fit_service.services.principals import Role


def history_key(url: str, episodes: int) -> str:
    """An ingest key of clinic 1 after loading the report benchmark's history of ``episodes``
    episodes (two years, 200 clinicians): the write path as a clinic with a past meets it.
    Built from pieces every checkout's bench_report has, so old trees can be measured too."""
    engine = make_engine(url)
    migrations.upgrade(engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    public_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            insert(Clinic),
            [{"id": 1, "public_id": public_id, "name": "Bench", "timezone": "UTC",
              "settings": {}, "created_at": now}],
        )  # fmt: skip
        conn.execute(
            insert(Clinician),
            [
                {"id": i, "clinic_id": 1, "external_id": f"T-{i:03d}", "created_at": now}
                for i in range(1, bench_report.CLINICIANS + 1)
            ],
        )
    for table, rows in bench_report.history(episodes):
        if table != "mark":
            bench_report.bulk_insert(engine, table, rows)
    bench_report.analyse(engine)
    with engine.begin() as conn:  # the rows came with ids: move the sequences past them
        for table in ("clinics", "clinicians", *bench_report.TABLES):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"
                )
            )
    with UnitOfWork(make_session_factory(engine)) as uow:
        secret = clinics.create_api_key(uow, public_id, Role.INGEST, "bench").secret
    engine.dispose()
    return secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="episodes of past history in the clinic first (e.g. 20000; default none)",
    )
    args = parser.parse_args()
    url = fresh_database(f"fit_write_{os.getpid()}")
    key = history_key(url, args.history) if args.history else make_key(url)
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
