"""Each episode's sessions summed per clinician and calendar month (``episode_months``), kept
in step with the sessions, for the monthly report.

Why: a clinic-month report needs, for every episode active in its trailing 12 months, facts
over all its sessions up to the window's end (attended sessions, the last attended date, the
first and the latest outcome score, the first alliance score), and the 12 months' sessions
counted per client and clinician. Read from the sessions, that is two aggregates over every
session of those episodes (~120,000 rows for a clinic of 200 clinicians): most of the
report's time. The report reads these rows instead, about a third as many, with the same
figures (``benchmarks/RESULTS.md``, eleventh session).

How it stays exact:

* every write that changes an episode's sessions (new sessions, corrections, renumbering)
  or its client's age band calls :func:`refresh` for those episodes in its own transaction,
  after renumbering (``services/recording.py``); a row is a pure function of its month's
  sessions (and the client's band), recomputed from them, never adjusted by increments
  (a write that only adds sessions recomputes the months from the earliest it touched);
* ``srs_below`` depends on a clinic setting (the SRS concern line) and is stored with the line
  it was counted against. The report counts a row's sessions again, from the sessions, when
  its line is not the clinic's current one (``monthly_reports``), so a report is exact even
  right after the setting changed; the settings change counts the clinic's rows again
  (:func:`recount_below`) so that stays the exception;
* ``fit recompute-session-totals`` (which rewrites the sessions' totals) rebuilds them too;
  migration 0007 built them for the sessions stored before.

Which total: the measure normed for the client's age band (CORS/CSRS for children, ORS/SRS
otherwise; ``instruments.outcome_instrument_for``), else its other age version (stored only
from before a band change: recording refuses the other version otherwise), as the episode
views and the risk rules read it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    Date,
    Float,
    Integer,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import BindParameter

from fit_service.adapters.db import by_dialect, month_start
from fit_service.adapters.orm import Client, Clinic, Episode, EpisodeMonth
from fit_service.adapters.orm import TherapySession as S
from fit_service.domain.instruments import (
    AgeBand,
    alliance_instrument_for,
    outcome_instrument_for,
)
from fit_service.services import session_totals, thresholds


class NumberedTotal:
    """A session's number and a total packed into one integer, ``number * SPAN + steps``.

    Why: the intake score is the total of the episode's *first* scored session and the latest
    the total of its *last*; ``MIN``/``MAX`` of the packed value pick that session and carry
    its total along, in the same ``GROUP BY`` pass, and again over an episode's months. (A
    self-join back to the sessions did the same at a third of the report's database time;
    ``ROW_NUMBER()`` windows were slower still.) Exact, not approximate: every total the
    service stores is rounded to its scale's resolution (0.1 for ORS/CORS/SRS/CSRS,
    domain.md §2; services/recording validates it), so ``round(total * STEPS)`` is an integer
    in ``[0, SPAN)`` and :meth:`totals` gives back the same float (the nearest double to
    ``steps / STEPS``, which is what was stored).
    """

    SCALES = (
        outcome_instrument_for(AgeBand.ADULT),
        outcome_instrument_for(AgeBand.CHILD),
        alliance_instrument_for(AgeBand.ADULT),
        alliance_instrument_for(AgeBand.CHILD),
    )
    STEPS = 10 ** max(scale.decimals for scale in SCALES)
    SPAN = round(max(scale.total_max for scale in SCALES) * STEPS) + 1
    if min(scale.total_min for scale in SCALES) < 0:  # checked at import, not an assert (-O)
        raise RuntimeError("packing a session number with a total needs totals >= 0")

    @classmethod
    def sql(cls, number: Any, total: Any) -> Any:
        return number * cls.SPAN + cast(func.round(total * cls.STEPS), Integer)

    @classmethod
    def totals(cls, packed: Iterable[int | None]) -> np.ndarray:
        """The totals of packed values, as floats (``NaN`` for ``None``). Exact: packed values
        are far below 2**53, so float64 holds them exactly, ``%`` is exact and the division
        is correctly rounded, giving the nearest double to ``steps / STEPS``."""
        values = np.array(list(packed), dtype=np.float64)  # None -> NaN
        return np.mod(values, cls.SPAN) / cls.STEPS


def _client_total(codes: dict[bool, str]) -> Any:
    """The session's client-rated total of the measure normed for the client's age band
    (``codes``: is-a-child -> instrument code) or, failing that, of the measure's other age
    version (a CORS from before the client turned 13: one series across a band change), from
    the totals kept on the session row (services/session_totals.py): no join to ``ratings``."""
    child = Client.age_band == AgeBand.CHILD.value
    columns = {
        is_child: getattr(S, session_totals.column_for(code)) for is_child, code in codes.items()
    }
    return case(
        (child, func.coalesce(columns[True], columns[False])),
        else_=func.coalesce(columns[False], columns[True]),
    )


#: The session's outcome (ORS/CORS) and alliance (SRS/CSRS) totals; needs ``clients`` joined.
OUTCOME = _client_total(
    {
        True: outcome_instrument_for(AgeBand.CHILD).code,
        False: outcome_instrument_for(AgeBand.ADULT).code,
    }
)
ALLIANCE = _client_total(
    {
        True: alliance_instrument_for(AgeBand.CHILD).code,
        False: alliance_instrument_for(AgeBand.ADULT).code,
    }
)
_ATTENDED = S.attendance == "attended"


def _count(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _selection(where: Any, concern: Any) -> tuple[list[str], Any]:
    """The rows of the sessions matching ``where``: (column names, ``SELECT``)."""
    month = month_start(S.date)
    ors, srs = OUTCOME, ALLIANCE
    keys = {
        "episode_id": S.episode_id,
        "client_id": S.client_id,
        "clinician_id": S.clinician_id,
        "month": month,
        "clinic_id": S.clinic_id,
    }
    values = {
        "attended": _count(_ATTENDED),
        "no_shows": _count(S.attendance == "no_show"),
        "cancelled": _count(S.attendance == "cancelled"),
        "with_ors": _count(and_(_ATTENDED, ors.is_not(None))),
        "with_srs": _count(and_(_ATTENDED, srs.is_not(None))),
        "srs_below": _count(and_(_ATTENDED, srs < concern)),
        "srs_concern": cast(concern, EpisodeMonth.srs_concern.type),
        "last_attended_on": func.max(case((_ATTENDED, S.date))),
        "first_ors": func.min(NumberedTotal.sql(S.number, ors)),
        "last_ors": func.max(NumberedTotal.sql(S.number, ors)),
        "ors_count": func.count(ors),
        "first_srs": func.min(NumberedTotal.sql(S.number, srs)),
    }
    query = (
        select(*keys.values(), *values.values())
        .select_from(S)
        .join(Client, Client.id == S.client_id)
        .where(where)
        .group_by(*keys.values())
    )
    return [*keys, *values], query


def _rows_of(where: Any, concern: Any) -> Any:
    """``INSERT ... SELECT`` of the rows of the sessions matching ``where``."""
    return insert(EpisodeMonth).from_select(*_selection(where, concern))


def _upserts(match: Any) -> dict[str, Any]:
    """Per dialect, ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` of the rows of the
    sessions of ``episodes`` (bound by ``match``) from the month starting ``since`` on: each
    row written whether it is new or not."""
    columns, query = _selection(
        and_(
            S.clinic_id == _CLINIC,
            match(S.__table__.c.episode_id, "episodes"),
            S.date >= _SINCE,
        ),
        _CONCERN,
    )
    key = [column.name for column in EpisodeMonth.__table__.primary_key.columns]
    upserts = {}
    for dialect, insert_for in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert)):
        upsert = insert_for(EpisodeMonth).from_select(columns, query)
        upserts[dialect] = upsert.on_conflict_do_update(
            index_elements=key,
            set_={name: upsert.excluded[name] for name in columns if name not in key},
        )
    return upserts


def srs_below(row: Any, concern: Any) -> Any:
    """The attended sessions of one ``episode_months`` row (a correlated subquery) with an
    alliance total below ``concern``: what the row's ``srs_below`` holds when it was counted
    against ``concern``. For rows counted against another line (the report's fallback)."""
    return (
        select(func.count())
        .select_from(S)
        .join(Client, Client.id == S.client_id)
        .where(
            S.episode_id == row.episode_id,
            S.client_id == row.client_id,
            S.clinician_id == row.clinician_id,
            month_start(S.date) == row.month,
            _ATTENDED,
            concern > ALLIANCE,
        )
        .scalar_subquery()
    )


_CLINIC: BindParameter[int] = bindparam("clinic")
_CONCERN: BindParameter[float] = bindparam("concern", type_=Float())
_SINCE: BindParameter[date] = bindparam("since", type_=Date())

#: The statements of :func:`refresh` (and :func:`refresh_clinic`), built once per dialect:
#: building and caching the insert's expression tree again on every write cost ~1.5 ms of
#: Python, ten times what the database spends on one episode's rows.
_FIND_EPISODES = by_dialect(
    lambda match: select(Episode.id).where(
        Episode.clinic_id == _CLINIC, match(Episode.__table__.c.client_id, "clients")
    )
)


def _delete_by(key: str, name: str) -> Any:
    """DELETE the clinic's rows whose ``key`` column is among the list bound as ``name``."""
    rows = EpisodeMonth.__table__
    return by_dialect(
        lambda match: delete(rows).where(rows.c.clinic_id == _CLINIC, match(rows.c[key], name))
    )


def _insert_by(key: str, name: str) -> Any:
    """INSERT the rows of the clinic's sessions whose ``key`` column is among ``name``."""
    sessions = S.__table__
    return by_dialect(
        lambda match: _rows_of(
            and_(sessions.c.clinic_id == _CLINIC, match(sessions.c[key], name)), _CONCERN
        )
    )


_DELETE_OF_EPISODES = _delete_by("episode_id", "episodes")
_INSERT_OF_EPISODES = _insert_by("episode_id", "episodes")
_UPSERT_OF_EPISODES = by_dialect(_upserts)
_DELETE_OF_CLIENTS = _delete_by("client_id", "clients")
_INSERT_OF_CLIENTS = _insert_by("client_id", "clients")


def refresh(
    connection: Connection,
    clinic_id: int,
    *,
    episodes: Collection[int] = (),
    clients: Collection[int] = (),
    concern: float,
    added_since: date | None = None,
) -> None:
    """Recompute the rows of ``episodes`` and of every episode of ``clients`` (one clinic's)
    from their sessions, ``srs_below`` against ``concern`` (the clinic's SRS concern line).

    ``added_since``: the write only added sessions (the usual single post and backfill; no
    correction, no age band changed), and neither they nor any session renumbering changed
    lie before this day. Then no row can lose its last session, and the rows of earlier
    months are as they were, so one upsert writes the rows from that month on. Otherwise
    (``None``) every row of the episodes is deleted and inserted again, two statements.
    Either way the number of statements does not grow with the number of episodes (a
    batch's are refreshed together); a third finds the episodes of ``clients``, if any.
    (Refreshing whole episodes on every append made a backfill's batches ~15% slower by its
    twentieth batch, as the clients' histories grew.)"""
    wanted = set(episodes)
    if clients:
        wanted.update(
            connection.scalars(
                _FIND_EPISODES(connection), {"clinic": clinic_id, "clients": sorted(clients)}
            )
        )
    if not wanted:
        return
    keys = {"clinic": clinic_id, "episodes": sorted(wanted), "concern": concern}
    if added_since is not None:
        upsert = _UPSERT_OF_EPISODES(connection)[connection.dialect.name]
        connection.execute(upsert, {**keys, "since": added_since.replace(day=1)})
        return
    connection.execute(_DELETE_OF_EPISODES(connection), keys)
    connection.execute(_INSERT_OF_EPISODES(connection), keys)


def refresh_clinic(connection: Connection, clinic_id: int, concern: float | None = None) -> None:
    """Recompute every row of one clinic from its sessions (after its sessions' totals were
    rewritten; data loaded without the service's writes); ``concern`` defaults to the
    clinic's stored SRS concern line.

    Safe beside the service's writes: on PostgreSQL it first locks the clinic's clients, as
    every write does before it touches their sessions (in id order, so neither waits on the
    other in a cycle), and rebuilds the rows of those clients only. A client created after
    that lock is not locked, so writes to it may run meanwhile, keeping its rows themselves:
    rebuilt here too, from a snapshot without such a write (a session moved to another
    month), its old row would outlive the write (committed after the write's delete looked)
    and count the session twice. SQLite runs one writer at a time."""
    if concern is None:
        settings = connection.scalar(select(Clinic.settings).where(Clinic.id == clinic_id))
        concern = thresholds.from_settings(settings).reports.srs_concern
    if connection.dialect.name != "postgresql":
        connection.execute(delete(EpisodeMonth).where(EpisodeMonth.clinic_id == clinic_id))
        connection.execute(_rows_of(S.clinic_id == clinic_id, concern))
        return
    locked = {
        "clients": connection.scalars(
            select(Client.id)
            .where(Client.clinic_id == clinic_id)
            .order_by(Client.id)
            .with_for_update()
        ).all()
    }
    connection.execute(_DELETE_OF_CLIENTS(connection), {"clinic": clinic_id, **locked})
    connection.execute(
        _INSERT_OF_CLIENTS(connection), {"clinic": clinic_id, "concern": concern, **locked}
    )


def recount_below(connection: Connection, clinic_id: int, concern: float) -> None:
    """Count every row's sessions below a new SRS concern line (the clinic's setting
    changed), in place. Rows a concurrent write stores meanwhile against the old line stay
    exact in the report (its fallback counts them from the sessions) until their month is
    written again (a correction, or a session added in or before it) or the clinic is
    rebuilt; an update in place, unlike a rebuild, never collides with such a row.

    On PostgreSQL the rows a write holds (its episodes' rows, deleted and stored again by
    :func:`refresh`) are left to it (``SKIP LOCKED``): it stores them against the line it
    read, which the report's fallback covers. Waiting for them instead, holding the rows
    counted so far, could deadlock with a write that wants one of those next (the two go
    through the rows in different orders), and fail the settings change."""
    rows = EpisodeMonth.__table__
    key = rows.primary_key.columns
    free = rows.alias("free")
    unlocked = select(*(free.c[column.name] for column in key)).where(free.c.clinic_id == clinic_id)
    if connection.dialect.name == "postgresql":
        unlocked = unlocked.with_for_update(skip_locked=True)
    connection.execute(
        update(rows)
        .where(rows.c.clinic_id == clinic_id, tuple_(*key).in_(unlocked))
        .values(
            srs_below=case((rows.c.with_srs == 0, 0), else_=srs_below(rows.c, concern)),
            srs_concern=concern,
        )
    )
