"""Ingestion benchmark (prints figures; not a test).

Runs, on this machine, in one go:
1. single-session ingestion (``POST /v1/sessions`` with ORS + SRS, every request a new
   session) under gunicorn against PostgreSQL at concurrency 8;
2. the floor: a bare Flask endpoint that inserts one row and reads 20 back, same gunicorn
   settings, same database server, same load generator;
3. batch backfill (``POST /v1/sessions/batch``, 1,000 sessions each with ORS and SRS).

Usage: ``./dev bench-ingest [--seconds 10] [--backfill 20000]``.
The load generator uses one process per connection (keep-alive http.client), so Python's GIL
in the generator does not throttle the servers. Latency = request sent → response read.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fit_service.adapters import migrations  # noqa: E402
from fit_service.adapters.db import make_engine, make_session_factory  # noqa: E402
from fit_service.adapters.unit_of_work import UnitOfWork  # noqa: E402
from fit_service.services import clinics  # noqa: E402
from fit_service.services.principals import Role  # noqa: E402

PG_ADMIN = os.environ.get(
    "FIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
CONCURRENCY = 8
GUNICORN = [
    "--workers",
    "4",
    "--threads",
    "2",
    "--worker-class",
    "gthread",
    "--log-level",
    "warning",
    "--keep-alive",
    "30",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(name: str) -> str:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def start_server(app: str, url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FIT_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    proc = subprocess.Popen(
        [gunicorn, *GUNICORN, "--bind", f"127.0.0.1:{port}", app], cwd=ROOT, env=env
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{app} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def session_body(worker: int, n: int) -> dict[str, Any]:
    """Session n of worker w: clients are partitioned by worker, dates increase per client."""
    client = f"W{worker}-C{n % 500}"
    visit = n // 500
    day = date.today() - timedelta(days=300) + timedelta(days=visit)
    return {
        "ehr_session_id": f"W{worker}-S{n}",
        "client_id": client,
        "client_age_band": "adult",
        "clinician_id": f"T-{n % 20}",
        "date": day.isoformat(),
        "ratings": [
            {
                "instrument": "ors",
                "items": {"individual": 4.5, "interpersonal": 5.1, "social": 6, "overall": 5.5},
            },
            {
                "instrument": "srs",
                "items": {"relationship": 9, "goals": 8.7, "approach": 9.1, "overall": 9.2},
            },
        ],
    }


def load_worker(args: tuple[int, int, str, str, float, str]) -> tuple[list[float], int]:
    worker, port, path, key, seconds, mode = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    errors = 0
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        body = json.dumps(session_body(worker if mode == "fit" else worker + 100, n))
        t0 = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            ok = resp.status in (200, 201)
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            ok = False
        latencies.append(time.perf_counter() - t0)
        errors += 0 if ok else 1
        n += 1
    conn.close()
    return latencies, errors


def run_load(port: int, path: str, key: str, seconds: float, mode: str) -> dict[str, float]:
    # warm-up: let every worker import, connect and fill its pool
    load_worker((99, port, path, key, 1.0, mode + "-warm"))
    with mp.get_context("spawn").Pool(CONCURRENCY) as pool:
        started = time.perf_counter()
        parts = pool.map(
            load_worker, [(w, port, path, key, seconds, mode) for w in range(CONCURRENCY)]
        )
        wall = time.perf_counter() - started
    lat = sorted(x for part, _ in parts for x in part)
    errors = sum(e for _, e in parts)
    return {
        "requests": len(lat),
        "errors": errors,
        "rps": len(lat) / wall,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
    }


def make_key(url: str) -> str:
    engine = make_engine(url)
    migrations.upgrade(engine)
    factory = make_session_factory(engine)
    with UnitOfWork(factory) as uow:
        clinic = clinics.create_clinic(uow, "Bench Clinic")
    with UnitOfWork(factory) as uow:
        issued = clinics.create_api_key(uow, clinic.id, Role.INGEST, "bench")
    engine.dispose()
    return issued.secret


def backfill(port: int, key: str, total: int, batch: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    times = []
    stored = 0
    for start in range(0, total, batch):
        items = [
            session_body(1000 + (start // 50_000), n)
            for n in range(start % 50_000, start % 50_000 + batch)
        ]
        body = json.dumps({"sessions": items})
        t0 = time.perf_counter()
        conn.request("POST", "/v1/sessions/batch", body=body, headers=headers)
        resp = conn.getresponse()
        payload = json.loads(resp.read())
        times.append(time.perf_counter() - t0)
        stored += payload["created"]
        if payload["rejected"]:
            raise RuntimeError(f"backfill rejected items: {payload['results'][:2]}")
    conn.close()
    return {
        "sessions": stored,
        "batches": len(times),
        "median_batch_s": statistics.median(times),
        "sessions_per_s": batch / statistics.median(times),
        "overall_sessions_per_s": stored / sum(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backfill", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    fit_url = fresh_database("fit_bench_service")
    key = make_key(fit_url)
    bare_url = fresh_database("fit_bench_bare")
    engine = create_engine(bare_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_rows (id bigserial PRIMARY KEY, payload text)"))
    engine.dispose()

    results = {}
    for name, app, url, path in (
        ("bare insert+read20", "benchmarks.bare_app:app", bare_url, "/bare"),
        ("fit POST /v1/sessions", "wsgi:app", fit_url, "/v1/sessions"),
    ):
        port = free_port()
        proc = start_server(app, url, port)
        try:
            results[name] = run_load(
                port, path, key, args.seconds, "fit" if "fit" in name else "bare"
            )
            if name.startswith("fit"):
                results["backfill"] = backfill(port, key, args.backfill, args.batch)
        finally:
            stop(proc)

    cpu = os.cpu_count()
    print(
        f"\nIngestion benchmark — {cpu} cores, gunicorn {' '.join(GUNICORN[:6])}, "
        f"concurrency {CONCURRENCY}, {args.seconds:g}s per endpoint, PostgreSQL"
    )
    print(f"{'endpoint':<24}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name in ("bare insert+read20", "fit POST /v1/sessions"):
        r = results[name]
        print(
            f"{name:<24}{r['requests']:>10.0f}{r['errors']:>8.0f}{r['rps']:>10.1f}"
            f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
        )
    ratio = results["fit POST /v1/sessions"]["rps"] / results["bare insert+read20"]["rps"]
    print(f"ratio fit/bare requests/s: {ratio:.2f}  (target >= 0.50; p99 target < 50 ms)")
    b = results["backfill"]
    print(
        f"backfill: {b['sessions']:.0f} sessions (ORS+SRS) in {b['batches']:.0f} batches of "
        f"{args.batch}; median batch {b['median_batch_s'] * 1000:.0f} ms -> "
        f"{b['sessions_per_s']:.0f} sessions/s (overall {b['overall_sessions_per_s']:.0f}/s; "
        "target >= 5,000)"
    )


if __name__ == "__main__":
    main()
