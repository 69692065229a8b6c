"""Monthly report benchmark (prints figures; not a test).

Builds a clinic history directly in the database (bulk Core INSERTs; no HTTP): 200 clinicians,
20,000 episodes and about 200,000 sessions (ORS and SRS on most attended ones) over two years,
on PostgreSQL and on SQLite, and sums its sessions per episode and month as the service's writes
do (``services/episode_months.py``; counted in ``insert``). Then, for one clinic-month report
(the last month, so the trailing 12 months hold half the history):

* ``report JSON`` = ``build_monthly_report`` + JSON rendering, ``report PDF`` = the same + PDF;
* the floor, measured in the same run on the same rows: one SQL aggregate query over the
  sessions and ratings of the report's trailing 12 months (``floor query``) plus ReportLab
  drawing a plain PDF with the same page count and the same text (``floor PDF``);
* peak Python memory (tracemalloc) of one report build, with one year of history and with
  two: the report reads only the trailing 12 months, so the two should match.

Both the report and the floor run under the garbage-collector settings of the service's own
processes (``fit_service/gc_tuning.py``, applied by ``wsgi.py`` to every gunicorn worker and CLI
run); ``--default-gc`` keeps Python's defaults instead.

Usage: ``./dev bench-report [--episodes 20000] [--repeat 5] [--backends postgresql,sqlite]
[--default-gc]``.
Target (issue 5): report within 3x of the floor; memory flat in the history size.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, case, create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pypdf import PdfReader  # noqa: E402
from reportlab.lib.pagesizes import A4  # noqa: E402
from reportlab.pdfgen.canvas import Canvas  # noqa: E402

from fit_service.adapters import migrations  # noqa: E402
from fit_service.adapters.db import make_engine, make_session_factory  # noqa: E402
from fit_service.adapters.orm import (  # noqa: E402
    Alert,
    Client,
    Clinic,
    Clinician,
    Episode,
    Rating,
    TherapySession,
)
from fit_service.adapters.report_pdf import LAYOUT, MonthlyReportPdf  # noqa: E402
from fit_service.adapters.unit_of_work import UnitOfWork  # noqa: E402
from fit_service.domain.monthly_report import Window  # noqa: E402
from fit_service.gc_tuning import tune_for_serving  # noqa: E402
from fit_service.services import episode_months, session_totals  # noqa: E402
from fit_service.services.monthly_reports import FORMATS, build_monthly_report  # noqa: E402
from fit_service.services.principals import Principal, Role  # noqa: E402

PG_ADMIN = os.environ.get(
    "FIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PERIOD = "2026-10"
LAST_DAY = date(2026, 10, 31)
YEARS = 2
CLINICIANS = 200
NOW = datetime(2026, 11, 15, tzinfo=UTC)
BATCH = 20_000


# --------------------------------------------------------------------------- history


def history(episodes: int, seed: int = 1) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Rows per table, oldest year last (so the newest year can be measured on its own).

    Yields ("year", rows...) chunks: each yield is (table name, rows) and a ("mark", [])
    after the newest year."""
    rng = random.Random(seed)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    per_year = episodes // YEARS
    session_id = rating_id = alert_id = 0
    for year in range(YEARS):  # 0 = the newest year
        first = LAST_DAY - timedelta(days=365 * (year + 1) - 1)
        eps, clients, sessions, ratings, alerts = [], [], [], [], []
        for n in range(per_year):
            eid = year * per_year + n + 1
            clinician = 1 + eid % CLINICIANS
            band = rng.choices(("adult", "adolescent", "child"), weights=(7, 2, 1))[0]
            clients.append(
                {
                    "id": eid,
                    "clinic_id": 1,
                    "external_id": f"C{eid}",
                    "age_band": band,
                    "created_at": now,
                }
            )
            opened = first + timedelta(days=rng.randint(0, 364))
            day, number, ors, last_attended = opened, 0, rng.gauss(20, 6), opened
            for i in range(1 + rng.randint(0, 18)):
                attendance = (
                    "attended"
                    if i == 0 or rng.random() < 0.85
                    else rng.choice(("no_show", "cancelled"))
                )
                session_id += 1
                attended = attendance == "attended"
                number += attended
                sessions.append(
                    {
                        "id": session_id,
                        "public_id": uuid.uuid4(),
                        "clinic_id": 1,
                        "episode_id": eid,
                        "client_id": eid,
                        "clinician_id": clinician,
                        "ehr_session_id": f"S{session_id}",
                        "date": day,
                        "number": number if attended else None,
                        "attendance": attendance,
                        "revision": 1,
                        "content_hash": "0" * 64,
                        "created_at": now,
                        "updated_at": now,
                        # Filled below from this session's ratings, as the write path does.
                        **dict.fromkeys(session_totals.COLUMNS),
                    }
                )
                if attended:
                    last_attended = day
                    ors = min(40.0, max(0.0, ors + (rng.gauss(1.2, 3) if i else 0)))
                    for code, total, share in (
                        ("cors" if band == "child" else "ors", round(ors, 1), 0.92),
                        (
                            "csrs" if band == "child" else "srs",
                            round(min(40, rng.gauss(36, 3)), 1),
                            0.85,
                        ),
                    ):
                        if rng.random() < share:
                            sessions[-1][session_totals.column_for(code)] = total
                            rating_id += 1
                            ratings.append(
                                {
                                    "id": rating_id,
                                    "session_id": session_id,
                                    "clinic_id": 1,
                                    "instrument": code,
                                    "rater": "client",
                                    "completeness": "total_only",
                                    "total": total,
                                }
                            )
                day += timedelta(days=rng.randint(6, 10))
            closed = None
            if last_attended < LAST_DAY - timedelta(days=10) and rng.random() < 0.9:
                closed = last_attended + timedelta(days=rng.randint(0, 7))
            eps.append(
                {
                    "id": eid,
                    "public_id": uuid.uuid4(),
                    "clinic_id": 1,
                    "client_id": eid,
                    "clinician_id": clinician,
                    "status": "closed" if closed else "open",
                    "opened_on": opened,
                    "closed_on": closed,
                    "ending_reason": rng.choice(
                        ("planned", "planned", "client_ended", "stopped_attending", "transferred")
                    )
                    if closed
                    else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if rng.random() < 0.1:
                alert_id += 1
                raised = datetime.combine(opened, datetime.min.time(), UTC) + timedelta(days=20)
                ack = raised + timedelta(hours=rng.randint(1, 72)) if rng.random() < 0.7 else None
                # every other acknowledged alert resolved three days later (no draw from rng:
                # the history stays the one earlier runs measured)
                resolved = ack + timedelta(days=3) if ack and alert_id % 2 == 0 else None
                status = "resolved" if resolved else ("acknowledged" if ack else "open")
                alerts.append(
                    {
                        "id": alert_id,
                        "public_id": uuid.uuid4(),
                        "clinic_id": 1,
                        "episode_id": eid,
                        "client_id": eid,
                        "clinician_id": clinician,
                        "kind": "low_srs_bond",
                        "leg": "bond",
                        "severity": 2,
                        "status": status,
                        "evidence": {},
                        "guidance": "",
                        "opened_at": raised,
                        "updated_at": raised,
                        "acknowledged_at": ack,
                        "closed_at": resolved,
                        "version": 1,
                    }
                )
        yield "clients", clients
        yield "episodes", eps
        yield "sessions", sessions
        yield "ratings", ratings
        yield "alerts", alerts
        # Drop the year's rows (inserted by now) before the timings at the mark: held here,
        # their ~1.5 million objects made every full garbage collection during the timed
        # reports walk them, a cost of this script's, not of a service process.
        eps, clients, sessions, ratings, alerts = [], [], [], [], []
        yield "mark", []


TABLES = {
    "clients": Client,
    "episodes": Episode,
    "sessions": TherapySession,
    "ratings": Rating,
    "alerts": Alert,
}


def fresh_engine(backend: str, workdir: Path) -> Engine:
    if backend == "sqlite":
        path = workdir / "bench.sqlite3"
        path.unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{path}")
    else:
        name = "fit_bench_report"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
    migrations.upgrade(engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(Clinic),
            [
                {
                    "id": 1,
                    "public_id": uuid.uuid4(),
                    "name": "Bench Clinic",
                    "timezone": "UTC",
                    "settings": {},
                    "created_at": now,
                }
            ],
        )
        conn.execute(
            insert(Clinician),
            [
                {"id": i, "clinic_id": 1, "external_id": f"T-{i:03d}", "created_at": now}
                for i in range(1, CLINICIANS + 1)
            ],
        )
    return engine


def bulk_insert(engine: Engine, table: str, rows: list[dict[str, Any]]) -> None:
    model = TABLES[table]
    with engine.begin() as conn:
        for start in range(0, len(rows), BATCH):
            conn.execute(insert(model), rows[start : start + BATCH])


def sum_months(engine: Engine) -> None:
    """The sessions summed per episode, clinician and month, as the service's writes keep them
    (``services/episode_months.py``): the rows above were inserted without those writes."""
    with engine.begin() as conn:
        episode_months.refresh_clinic(conn, 1)


def analyse(engine: Engine) -> None:
    """Statistics for the planner, and on PostgreSQL the tables vacuumed too: right after the
    bulk insert, autovacuum would otherwise start on them during the timings (the insert
    threshold), competing for the same cores, and the steady state of a live database is a
    vacuumed one (visibility map set, hint bits written)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
            conn.commit()


# --------------------------------------------------------------------------- timing


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm caches (fonts, query plans)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floor_query(engine: Engine) -> Callable[[], Any]:
    """One aggregate over the trailing 12 months' sessions and their ratings."""
    window = Window.trailing(PERIOD)
    s, r = TherapySession, Rating
    query = (
        select(
            s.clinician_id,
            func.count(),
            func.sum(case((s.attendance == "attended", 1), else_=0)),
            func.avg(r.total),
        )
        .select_from(s)
        .outerjoin(r, and_(r.session_id == s.id, r.rater == "client"))
        .where(s.clinic_id == 1, s.date.between(window.first_day, window.last_day))
        .group_by(s.clinician_id)
    )

    def run() -> Any:
        with engine.connect() as conn:
            return conn.execute(query).all()

    return run


def floor_pdf(pages: list[list[str]]) -> Callable[[], bytes]:
    """ReportLab drawing the same text, page for page, in the same embedded font."""
    MonthlyReportPdf()  # registers the fonts

    def run() -> bytes:
        buffer = io.BytesIO()
        canvas = Canvas(buffer, pagesize=A4, invariant=1)
        for lines in pages:
            canvas.setFont(LAYOUT.font, 7)
            y = A4[1] - 40
            for line in lines:
                canvas.drawString(40, y, line[:160])
                y -= 9
                if y < 40:
                    y = A4[1] - 40
            canvas.showPage()
        canvas.save()
        return buffer.getvalue()

    return run


def report_runner(engine: Engine, fmt: str) -> Callable[[], bytes]:
    factory = make_session_factory(engine)
    principal = Principal(clinic_id=1, api_key_id=None, role=Role.MANAGER)
    render = next(f.render for f in FORMATS if f.name == fmt)

    def run() -> bytes:
        with UnitOfWork(factory) as uow:
            report = build_monthly_report(uow, principal, PERIOD, now=NOW)
        return render(report)

    return run


def peak_memory(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    fn()
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def count_rows(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return (
            conn.scalar(select(func.count()).select_from(Episode)) or 0,
            conn.scalar(select(func.count()).select_from(TherapySession)) or 0,
            conn.scalar(select(func.count()).select_from(Rating)) or 0,
        )


def bench_backend(backend: str, episodes: int, repeat: int, workdir: Path) -> list[list[str]]:
    rows_out = []
    engine = fresh_engine(backend, workdir)
    built = 0.0
    for table, rows in history(episodes):
        if table != "mark":
            started = time.perf_counter()
            bulk_insert(engine, table, rows)
            built += time.perf_counter() - started
            continue
        started = time.perf_counter()
        sum_months(engine)
        built += time.perf_counter() - started
        analyse(engine)
        n_eps, n_sessions, n_ratings = count_rows(engine)
        pdf_run, json_run = report_runner(engine, "pdf"), report_runner(engine, "json")
        sample = pdf_run()
        pages = [
            (page.extract_text() or "").splitlines() for page in PdfReader(io.BytesIO(sample)).pages
        ]
        t_json = median_time(json_run, repeat)
        t_pdf = median_time(pdf_run, repeat)
        t_query = median_time(floor_query(engine), repeat)
        t_floor_pdf = median_time(floor_pdf(pages), repeat)
        floor = t_query + t_floor_pdf
        memory = peak_memory(json_run)
        rows_out.append(
            [
                backend,
                f"{n_eps:,} ep / {n_sessions:,} s / {n_ratings:,} r",
                f"{built:.0f}s",
                f"{1000 * t_json:.0f}",
                f"{1000 * t_pdf:.0f}",
                f"{1000 * t_query:.0f}",
                f"{1000 * t_floor_pdf:.0f}",
                f"{len(pages)}",
                f"{t_json / t_query:.1f}x",
                f"{t_json / floor:.1f}x",
                f"{t_pdf / floor:.1f}x",
                f"{memory:.1f}",
            ]
        )
        print("  " + " | ".join(rows_out[-1]), flush=True)
    engine.dispose()
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's default garbage-collector settings (the service's processes run "
        "with fit_service/gc_tuning.py's: the default times both report and floor under them)",
    )
    args = parser.parse_args()
    if not args.default_gc:
        tune_for_serving()
    header = [
        "backend", "history", "insert", "report JSON ms", "report PDF ms", "floor query ms",
        "floor PDF ms", "pages", "JSON/query", "JSON/floor", "PDF/floor", "peak MB",
    ]  # fmt: skip
    print(f"monthly report {PERIOD}, {CLINICIANS} clinicians, median of {args.repeat}")
    print("  " + " | ".join(header), flush=True)
    table = []
    with tempfile.TemporaryDirectory() as workdir:
        for backend in args.backends.split(","):
            table += bench_backend(backend, args.episodes, args.repeat, Path(workdir))
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
    print()
    for row in [header, *table]:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
    print(
        "\nJSON/query: report JSON vs the floor query alone (stricter than the issue); "
        "JSON/floor, PDF/floor: report vs the issue's floor, floor query + floor PDF "
        "(target <= 3x).\npeak MB: tracemalloc peak of one report build "
        "(first row per backend: 1 year of history; second: 2 years)."
    )


if __name__ == "__main__":
    main()
