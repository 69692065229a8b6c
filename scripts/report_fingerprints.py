"""Fingerprint many monthly reports, to show a change to the report code keeps its output.

    python scripts/report_fingerprints.py out.txt [--episodes 6000] [--backends sqlite,postgresql]

Builds the benchmark's seeded history (``benchmarks/bench_report.py``), roughened so more paths
are taken (a second clinic, episodes without a clinician, therapist-rated and blank ratings, a
child's ORS beside the CORS, resolved and dismissed alerts), then renders JSON, CSV and PDF for
several settings and time-zone variants x months x views (the clinic and clinicians' pages) and
writes one line per report: SHA-256 of the JSON, of the CSV, of the PDF's text (``pdftotext
-layout`` when it is installed, pypdf's otherwise) and of the PDF bytes. Run it on the code before
and after a change (e.g. from a second worktree of the old commit) and ``diff`` the two files:
the JSON, CSV and text columns must match; the PDF bytes may differ when the change is meant to
change them (the same code always gives the same bytes: ``tests/unit/test_report_renderers.py``).

PostgreSQL uses the database ``fit_report_fingerprints`` (dropped and created again).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, text, update
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pypdf import PdfReader  # noqa: E402

from benchmarks import bench_report as bench  # noqa: E402
from fit_service.adapters import migrations  # noqa: E402
from fit_service.adapters.db import make_engine, make_session_factory  # noqa: E402
from fit_service.adapters.orm import Clinic, Clinician  # noqa: E402
from fit_service.adapters.unit_of_work import UnitOfWork  # noqa: E402
from fit_service.services import episode_months, session_totals  # noqa: E402
from fit_service.services.monthly_reports import FORMATS, build_monthly_report  # noqa: E402
from fit_service.services.principals import Principal, Role  # noqa: E402

DATABASE = "fit_report_fingerprints"
NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
MONTHS = ("2026-11", "2026-10", "2026-09", "2026-06", "2026-01", "2025-11", "2025-04")
#: (time zone, the clinic's "reports" settings)
VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("UTC", {}),
    (
        "America/New_York",
        {
            "min_n": 5,
            "srs_concern": 38,
            "follow_up_days": 14,
            "dropout_definition": "early_unplanned",
            "dropout_max_sessions": 4,
        },
    ),
    (
        "Pacific/Auckland",
        {
            "min_n": 20,
            "cutoff_is_clinical": False,
            "reliable_change": 6.0,
            "ors_cutoff_adult": 24.5,
        },
    ),
)
OTHER_CLINIC, OTHER_CLINICIAN = 2, 10_001


def roughened(episodes: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """The benchmark history with odd cases mixed in (seeded, so every run writes the same)."""
    rng = random.Random(7)
    chunks = [(t, rows) for t, rows in bench.history(episodes) if t != "mark"]
    moved: set[int] = set()
    next_rating = 1 + max(r["id"] for t, rows in chunks if t == "ratings" for r in rows)
    child_clients: set[int] = set()
    for table, rows in chunks:
        if table == "clients":
            moved |= {row["id"] for row in rows if row["id"] % 17 == 0}
            child_clients |= {row["id"] for row in rows if row["age_band"] == "child"}
    extra: list[dict[str, Any]] = []
    for table, rows in chunks:
        for row in rows:
            owner = row["id"] if table in ("clients", "episodes") else row.get("episode_id")
            if table == "ratings":
                owner = None
            if owner in moved:
                row["clinic_id"] = OTHER_CLINIC
                if "clinician_id" in row:
                    row["clinician_id"] = OTHER_CLINICIAN
            if table == "episodes" and row["id"] % 53 == 0 and row["clinic_id"] == 1:
                row["clinician_id"] = None
            if table == "alerts":
                roll = rng.random()
                if roll < 0.3:
                    closed = row["opened_at"] + timedelta(hours=rng.randint(1, 24 * 60))
                    row["closed_at"] = closed
                    row["status"] = rng.choice(("resolved", "resolved", "dismissed"))
                elif roll < 0.4:
                    row["opened_at"] -= timedelta(hours=rng.choice((1, 5, 13)))
    sessions = {r["id"]: r for t, rows in chunks if t == "sessions" for r in rows}
    for table, rows in chunks:
        if table != "ratings":
            continue
        for row in rows:
            session = sessions[row["session_id"]]
            row["clinic_id"] = session["clinic_id"]
            roll = rng.random()
            if roll < 0.03:
                row["total"], row["completeness"] = None, "not_completed"
            elif roll < 0.06:
                extra.append(
                    {
                        **row,
                        "id": next_rating + len(extra),
                        "rater": "therapist",
                        "total": round(rng.uniform(0, 40), 1),
                    }
                )
            elif roll < 0.09 and session["client_id"] in child_clients:
                code = {"cors": "ors", "csrs": "srs"}[row["instrument"]]
                extra.append(
                    {
                        **row,
                        "id": next_rating + len(extra),
                        "instrument": code,
                        "total": round(rng.uniform(0, 40), 1),
                    }
                )
    chunks.append(("ratings", extra))
    return chunks


def fresh_engine(backend: str, workdir: Path) -> Engine:
    if backend == "sqlite":
        path = workdir / "fingerprints.sqlite3"
        path.unlink(missing_ok=True)
        return make_engine(f"sqlite:///{path}")
    admin = create_engine(bench.PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    admin.dispose()
    url = make_url(bench.PG_ADMIN).set(database=DATABASE)
    return make_engine(url.render_as_string(hide_password=False))


def build(backend: str, episodes: int, workdir: Path) -> Engine:
    engine = fresh_engine(backend, workdir)
    migrations.upgrade(engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(Clinic),
            [
                {
                    "id": clinic,
                    "public_id": bench.uuid.UUID(int=clinic),
                    "name": f"Clinic {clinic}",
                    "timezone": "UTC",
                    "settings": {},
                    "created_at": now,
                }
                for clinic in (1, OTHER_CLINIC)
            ],
        )
        conn.execute(
            insert(Clinician),
            [
                {"id": i, "clinic_id": 1, "external_id": f"T-{i:03d}", "created_at": now}
                for i in range(1, bench.CLINICIANS + 1)
            ]
            + [{"id": OTHER_CLINICIAN, "clinic_id": 2, "external_id": "T-001", "created_at": now}],
        )
    for table, rows in roughened(episodes):
        if rows:
            bench.bulk_insert(engine, table, rows)
    # The roughening changed ratings behind the sessions' backs: copy the totals again, and
    # sum the sessions per episode and month (all written here without the service's writes).
    with engine.begin() as conn:
        session_totals.recompute(conn)
        for clinic in (1, OTHER_CLINIC):
            episode_months.refresh_clinic(conn, clinic)
    bench.analyse(engine)
    return engine


def pdf_text(pdf: bytes) -> bytes:
    pdftotext = shutil.which("pdftotext")
    if pdftotext:
        done = subprocess.run(  # noqa: S603 (a fixed local tool, no shell)
            [pdftotext, "-layout", "-", "-"], input=pdf, capture_output=True, check=True
        )
        return done.stdout
    return "\f".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages).encode()


def fingerprints(engine: Engine, label: str, out: Any) -> None:
    factory = make_session_factory(engine)
    render = {fmt.name: fmt.render for fmt in FORMATS}
    views: list[tuple[int, str | None]] = [(1, None), (1, "T-001"), (1, "T-137"), (2, None)]
    for zone, settings in VARIANTS:
        with engine.begin() as conn:
            conn.execute(update(Clinic).values(timezone=zone, settings={"reports": settings}))
        for month in MONTHS:
            for clinic, clinician in views:
                principal = Principal(clinic_id=clinic, api_key_id=None, role=Role.MANAGER)
                with UnitOfWork(factory) as uow:
                    report = build_monthly_report(uow, principal, month, clinician, now=NOW)
                pdf = render["pdf"](report)
                digests = [
                    hashlib.sha256(body).hexdigest()[:16]
                    for body in (
                        render["json"](report),
                        render["csv"](report),
                        pdf_text(pdf),
                        pdf,
                    )
                ]
                view = f"{clinic}/{clinician or 'clinic'}"
                line = f"{label} {zone} {month} {view} json={digests[0]} csv={digests[1]}"
                print(f"{line} text={digests[2]} pdf={digests[3]}", file=out, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--episodes", type=int, default=6000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    if shutil.which("pdftotext") is None:
        # pypdf's text differs from pdftotext's: a file written with one does not compare
        # with a file written with the other.
        print(
            "warning: pdftotext not found (Debian: poppler-utils); PDF text via pypdf",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory() as workdir, args.output.open("w") as out:
        for backend in args.backends.split(","):
            engine = build(backend, args.episodes, Path(workdir))
            fingerprints(engine, f"{backend}:{args.episodes}", out)
            engine.dispose()


if __name__ == "__main__":
    main()
