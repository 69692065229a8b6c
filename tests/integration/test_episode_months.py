"""The report's per-episode, per-month sums (``episode_months``) stay equal to the sessions
they sum, through every kind of write, and the report is exact even when a row was counted
against another SRS concern line than the clinic's.

The expected rows are computed here in plain Python from the sessions and their clients
(the independent calculation), not with the service's SQL.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, delete, event, select, text, update

from fit_service.adapters.orm import Client, Clinic, EpisodeMonth, TherapySession
from fit_service.services import episode_months
from tests.conftest import Tenant, session_payload

#: The packing of a session number with a total in tenths (domain.md §2: 0.1 steps, 0-40).
SPAN, STEPS = 401, 10
KEY = ("episode_id", "client_id", "clinician_id", "month")
VALUES = (
    "attended",
    "no_shows",
    "cancelled",
    "with_ors",
    "with_srs",
    "srs_below",
    "srs_concern",
    "last_attended_on",
    "first_ors",
    "last_ors",
    "ors_count",
    "first_srs",
)


def stored(engine: Engine) -> dict[tuple[Any, ...], dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(EpisodeMonth.__table__)).mappings().all()
        return {tuple(r[k] for k in KEY): {v: r[v] for v in VALUES} for r in rows}


def expected(engine: Engine, concern: float) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Sum the sessions by hand: the measure normed for the client's band (CORS/CSRS for a
    child, ORS/SRS otherwise), else the other age version of it."""
    with engine.connect() as conn:
        sessions = conn.execute(
            select(TherapySession.__table__, Client.age_band).join(
                Client, Client.id == TherapySession.client_id
            )
        ).all()
    out: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {
            "attended": 0,
            "no_shows": 0,
            "cancelled": 0,
            "with_ors": 0,
            "with_srs": 0,
            "srs_below": 0,
            "srs_concern": concern,
            "last_attended_on": None,
            "first_ors": None,
            "last_ors": None,
            "ors_count": 0,
            "first_srs": None,
        }
    )

    def pick(own: float | None, other: float | None) -> float | None:
        return own if own is not None else other

    for s in sessions:
        band = s.age_band
        child = band == "child"
        ors = pick(s.cors_total, s.ors_total) if child else pick(s.ors_total, s.cors_total)
        srs = pick(s.csrs_total, s.srs_total) if child else pick(s.srs_total, s.csrs_total)
        row = out[(s.episode_id, s.client_id, s.clinician_id, s.date.replace(day=1))]
        attended = s.attendance == "attended"
        row["attended"] += attended
        row["no_shows"] += s.attendance == "no_show"
        row["cancelled"] += s.attendance == "cancelled"
        row["with_ors"] += attended and ors is not None
        row["with_srs"] += attended and srs is not None
        row["srs_below"] += attended and srs is not None and srs < concern
        if attended and (row["last_attended_on"] is None or s.date > row["last_attended_on"]):
            row["last_attended_on"] = s.date
        if ors is not None:
            row["ors_count"] += 1
        for field, value, better in (
            ("first_ors", ors, min),
            ("last_ors", ors, max),
            ("first_srs", srs, min),
        ):
            if value is None or s.number is None:
                continue
            packed = s.number * SPAN + round(value * STEPS)
            row[field] = packed if row[field] is None else better(row[field], packed)
    return dict(out)


def post(client: FlaskClient, tenant: Tenant, *sessions: dict[str, Any]) -> None:
    response = client.post(
        "/v1/sessions/batch", json={"sessions": list(sessions)}, headers=tenant.auth("ingest")
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["rejected"] == 0, response.get_json()


def visit(ehr: str, client_id: str, day: str, **more: Any) -> dict[str, Any]:
    return session_payload(ehr_session_id=ehr, client_id=client_id, date=day, **more)


def totals(ors: float, srs: float, child: bool = False) -> list[dict[str, Any]]:
    return [
        {"instrument": "cors" if child else "ors", "total": ors},
        {"instrument": "csrs" if child else "srs", "total": srs},
    ]


def test_the_sums_follow_every_kind_of_write(
    client: FlaskClient, engine: Engine, tenant: Tenant
) -> None:
    # Two clinicians, three months, every attendance, scores on both sides of the SRS line.
    post(
        client,
        tenant,
        visit("A-1", "A", "2026-08-03", ratings=totals(12.5, 35.9)),
        visit("A-2", "A", "2026-08-20", attendance="no_show", ratings=[]),
        visit("A-3", "A", "2026-09-01", clinician_id="T-2", ratings=totals(15.0, 36.0)),
        visit("A-4", "A", "2026-09-15", attendance="cancelled", ratings=[]),
        visit("A-5", "A", "2026-10-02", ratings=[]),
        visit("B-1", "B", "2026-08-05", client_age_band="child", ratings=totals(20.1, 30, True)),
        visit("B-2", "B", "2026-09-05", client_age_band="child", ratings=totals(24.4, 39, True)),
    )
    assert stored(engine) == expected(engine, 36.0)
    assert len(stored(engine)) == 6

    # A session dated before the episode's first: every session is numbered again.
    post(client, tenant, visit("A-0", "A", "2026-07-30", ratings=totals(9.9, 31.2)))
    assert stored(engine) == expected(engine, 36.0)

    # A correction that moves a session to another month and clinician and attends it.
    post(
        client,
        tenant,
        visit("A-4", "A", "2026-10-09", clinician_id="T-3", ratings=totals(30.0, 38.8)),
    )
    assert stored(engine) == expected(engine, 36.0)
    with engine.connect() as conn:
        a = conn.execute(select(Client.id).where(Client.external_id == "A")).scalar_one()
    # September keeps only the T-2 session: the row the moved session left is gone
    assert len([k for k in stored(engine) if k[1] == a and k[3] == date(2026, 9, 1)]) == 1

    # B turns 13: ORS/SRS from now on; a correction of a CORS session keeps its CORS and adds
    # an ORS, so which version is read depends on the band (one row of each band's choice).
    post(
        client,
        tenant,
        visit("B-3", "B", "2026-10-05", client_age_band="adolescent", ratings=totals(26, 37)),
    )
    post(
        client,
        tenant,
        visit(
            "B-1",
            "B",
            "2026-08-05",
            client_age_band="adolescent",
            ratings=[*totals(20.1, 30, True), {"instrument": "ors", "total": 33.3}],
        ),
    )
    rows = stored(engine)
    assert rows == expected(engine, 36.0)
    august_b = [v for k, v in rows.items() if k[3] == date(2026, 8, 1) and v["ors_count"]]
    assert any(v["first_ors"] % SPAN == 333 for v in august_b)  # the ORS, not the CORS

    # The clinic moves its SRS concern line: every row is counted again against it.
    response = client.put(
        "/v1/settings", json={"reports": {"srs_concern": 37}}, headers=tenant.auth("admin")
    )
    assert response.status_code == 200, response.get_json()
    assert stored(engine) == expected(engine, 37.0)
    # 35.9, 36.0, 31.2 and the child's 30 lie below 37; 36.0 did not lie below 36
    assert sum(v["srs_below"] for v in stored(engine).values()) == 4
    assert sum(v["srs_below"] for v in expected(engine, 36.0).values()) == 3


def test_a_refused_write_leaves_the_sums_as_they_were(
    client: FlaskClient, engine: Engine, tenant: Tenant
) -> None:
    post(client, tenant, visit("A-1", "A", "2026-08-03"), visit("A-2", "A", "2026-09-03"))
    before = stored(engine)
    bad = visit("A-3", "A", "2026-10-03", ratings=[{"instrument": "ors", "total": 40.5}])
    response = client.post("/v1/sessions", json=bad, headers=tenant.auth("ingest"))
    assert response.status_code == 422
    assert stored(engine) == before


def test_rows_counted_against_another_srs_line_are_reported_exactly(
    client: FlaskClient, engine: Engine, tenant: Tenant
) -> None:
    """The clinic's line changed without the rows being counted again (a write that read the
    old setting committed after the change; a database migrated with another line): the
    report counts those rows' sessions below the line again, from the sessions."""
    post(
        client,
        tenant,
        *(
            visit(f"S-{n}", f"C-{n % 7}", f"2026-10-{1 + n % 28:02d}", ratings=totals(20, srs))
            for n, srs in enumerate([30.0, 34.9, 35.0, 35.5, 36.0, 36.5, 38.0, 39.9] * 4)
        ),
    )

    def report() -> dict[str, Any]:
        response = client.get(
            "/v1/reports/monthly/2026-10",
            headers={**tenant.auth("manager"), "Accept": "application/json"},
        )
        assert response.status_code == 200
        body = response.get_json()
        body.pop("generated_at", None)
        return body

    with engine.begin() as conn:
        conn.execute(update(Clinic).values(settings={"reports": {"srs_concern": 35.5, "min_n": 1}}))
    lines = {v["srs_concern"] for v in stored(engine).values()}
    assert lines == {36.0}  # counted against the old line
    stale = report()
    with engine.begin() as conn:
        clinic_id = conn.execute(select(Clinic.id)).scalar_one()
        episode_months.refresh_clinic(conn, clinic_id)
    assert {v["srs_concern"] for v in stored(engine).values()} == {35.5}
    fresh = report()
    assert stale == fresh
    below = fresh["overall"]["month"]["srs_below_concern"]
    # 3 of each 8 ratings lie below 35.5 (30.0, 34.9, 35.0; not 35.5 itself)
    assert (below["numerator"], below["n"]) == (12, 32), below


def test_the_cli_rebuilds_sums_an_older_release_left_out(
    app: Flask, client: FlaskClient, engine: Engine, tenant: Tenant
) -> None:
    """Sessions a release from before migration 0007 wrote after it are missing from the sums
    (and their totals from the sessions' copies): ``fit recompute-session-totals`` puts both
    back, against the clinic's SRS line."""
    post(client, tenant, visit("A-1", "A", "2026-08-03"), visit("B-1", "B", "2026-09-03"))
    response = client.put(
        "/v1/settings", json={"reports": {"srs_concern": 37}}, headers=tenant.auth("admin")
    )
    assert response.status_code == 200
    with engine.begin() as conn:
        conn.execute(delete(EpisodeMonth).where(EpisodeMonth.month == date(2026, 9, 1)))
    assert stored(engine) != expected(engine, 37.0)
    result = app.test_cli_runner().invoke(args=["fit", "recompute-session-totals"])
    assert result.exit_code == 0, result.output
    assert stored(engine) == expected(engine, 37.0)
    assert len(stored(engine)) == 2


def _until_blocked_or_done(engine: Engine, thread: threading.Thread) -> None:
    """Wait (at most 10 s) until ``thread`` has finished or some connection waits for a lock."""
    deadline = time.monotonic() + 10
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    with engine.connect() as conn:
        while thread.is_alive() and time.monotonic() < deadline:
            if conn.execute(waiting).scalar():
                return
            conn.rollback()
            time.sleep(0.02)


def test_a_rebuild_beside_writes_to_a_client_it_did_not_lock(
    app: Flask, client: FlaskClient, engine: Engine, tenant: Tenant, database_url: str
) -> None:
    """``refresh_clinic`` locks the clinic's clients; a client created after that is written
    meanwhile. Its session moved from October to November while the rebuild ran must leave
    one row (November), not the rebuild's October row beside the write's: the report would
    count the session twice, and the episode's attended sessions too."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time")
    post(client, tenant, visit("A-1", "A", "2026-10-05"))
    with engine.connect() as conn:
        clinic_id = conn.execute(select(Clinic.id)).scalar_one()
    statuses: list[int] = []

    def correction() -> None:
        statuses.append(
            app.test_client()
            .post(
                "/v1/sessions/batch",
                json={"sessions": [visit("X-1", "X", "2026-11-05")]},
                headers=tenant.auth("ingest"),
            )
            .status_code
        )

    writer = threading.Thread(target=correction)

    def between_statements(_conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("DELETE FROM episode_months"):
            # after the clients were locked: a new client's first session, in October
            post(client, tenant, visit("X-1", "X", "2026-10-07"))
        elif statement.startswith("INSERT INTO episode_months"):
            # its correction to November, while the rebuild is under way
            writer.start()
            _until_blocked_or_done(engine, writer)

    with engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", between_statements)
        with conn.begin():
            episode_months.refresh_clinic(conn, clinic_id)
        event.remove(conn, "before_cursor_execute", between_statements)
    writer.join()
    assert statuses == [200]
    rows = stored(engine)
    assert rows == expected(engine, 36.0)
    assert sorted(key[3] for key in rows) == [date(2026, 10, 1), date(2026, 11, 1)]  # A, X


def test_a_settings_change_beside_a_write_does_not_deadlock(
    app: Flask, client: FlaskClient, engine: Engine, tenant: Tenant, database_url: str
) -> None:
    """A write rewrites its episodes' rows (``refresh``: one DELETE, in its own order), while
    a change of the SRS line counts the clinic's rows again in place, in another order. Had
    the recount waited for a row the write holds while holding one the write wants next, one
    of the two would fail (here PUT /v1/settings, with a 500). The recount leaves a write's
    rows to it (counted against the line the write read: the report counts such rows from
    the sessions)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time")
    post(
        client,
        tenant,
        visit("A-1", "A", "2026-09-05", ratings=totals(20, 35)),
        visit("B-1", "B", "2026-10-05", ratings=totals(20, 30)),
    )
    with engine.connect() as conn:
        clinic_id = conn.execute(select(Clinic.id)).scalar_one()
        a, b = (
            conn.execute(select(Client.id).where(Client.external_id == name)).scalar_one()
            for name in ("A", "B")
        )
        episode_a, episode_b = (
            conn.execute(
                select(TherapySession.episode_id).where(TherapySession.client_id == c)
            ).scalar_one()
            for c in (a, b)
        )
    statuses: list[int] = []

    def settings_change() -> None:
        body = {"reports": {"srs_concern": 37}}
        response = app.test_client().put("/v1/settings", json=body, headers=tenant.auth("admin"))
        statuses.append(response.status_code)

    changer = threading.Thread(target=settings_change)
    with engine.connect() as conn, conn.begin():
        # a write's refresh of two episodes, the second's rows reached after the recount
        # took the first's
        episode_months.refresh(conn, clinic_id, episodes=[episode_b], concern=36.0)
        changer.start()
        _until_blocked_or_done(engine, changer)
        episode_months.refresh(conn, clinic_id, episodes=[episode_a], concern=36.0)
    changer.join()
    assert statuses == [200]
    # the write stored both episodes' rows after the recount, against the line it read
    assert stored(engine) == expected(engine, 36.0)


def test_an_append_refreshes_the_earlier_months_renumbering_changed(
    client: FlaskClient, engine: Engine, tenant: Tenant
) -> None:
    """Adding sessions refreshes only the months from the earliest session it added or
    renumbered: a session whose number renumbering changes (here one stored without a
    number, as by a release before numbering) gets its month's row written again."""
    post(
        client,
        tenant,
        visit("A-1", "A", "2026-07-06", ratings=totals(12.0, 30)),
        visit("A-2", "A", "2026-08-03", ratings=totals(14.0, 33)),
    )
    with engine.begin() as conn:
        conn.execute(
            update(TherapySession).where(TherapySession.ehr_session_id == "A-1").values(number=None)
        )
        clinic_id = conn.execute(select(Clinic.id)).scalar_one()
        episode_months.refresh_clinic(conn, clinic_id)
    july = [v for k, v in stored(engine).items() if k[3] == date(2026, 7, 1)]
    assert [v["first_ors"] for v in july] == [None]  # no number, so nothing packed
    post(client, tenant, visit("A-3", "A", "2026-09-07", ratings=totals(16.0, 35)))
    assert stored(engine) == expected(engine, 36.0)
    july = [v for k, v in stored(engine).items() if k[3] == date(2026, 7, 1)]
    assert [v["first_ors"] for v in july] == [1 * SPAN + 120]
