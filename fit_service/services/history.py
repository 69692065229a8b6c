"""Loading an episode's whole history as plain data (no ORM objects escape the session).

Risk rules, outcome figures and the read views all work from :class:`EpisodeHistory`, so there
is one loader and one shape, loaded with three queries however many episodes are asked for.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import Text, bindparam, cast, select, update
from sqlalchemy.orm import Session

from fit_service.adapters.db import by_dialect
from fit_service.adapters.orm import (
    Client,
    Clinician,
    Episode,
    Rating,
    TherapySession,
    utcnow,
)

_CHUNK = 900


@dataclass(frozen=True, slots=True)
class RatingRecord:
    instrument: str
    rater: str
    completeness: str
    total: float | None
    items: dict[str, float] | None
    subscales: dict[str, float] | None


@dataclass(slots=True)
class SessionRecord:
    row_id: int
    public_id: uuid.UUID
    ehr_session_id: str
    date: date
    number: int | None
    attendance: str
    revision: int
    clinician: str
    updated_at: datetime
    ratings: list[RatingRecord] = field(default_factory=list)

    def rating(self, instrument: str, rater: str = "client") -> RatingRecord | None:
        for r in self.ratings:
            if r.instrument == instrument and r.rater == rater:
                return r
        return None


@dataclass(slots=True)
class EpisodeHistory:
    row_id: int
    public_id: uuid.UUID
    clinic_id: int
    client_row_id: int
    client: str
    age_band: str
    status: str
    opened_on: date
    closed_on: date | None
    ending_reason: str | None
    clinician: str | None
    risk_level: str | None = None
    risk_reasons: dict[str, Any] | None = None
    sessions: list[SessionRecord] = field(default_factory=list)
    #: opened by POST /v1/episodes (its date is a fact), not by its first session
    opened_explicitly: bool = False


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    seq = list(values)
    for start in range(0, len(seq), _CHUNK):
        yield seq[start : start + _CHUNK]


# Built once (see recording.py: building a select costs more than running it); by_dialect: the
# ids go as one array on PostgreSQL.
_EPISODES = by_dialect(
    lambda ids_match: (
        select(
            Episode.id,
            Episode.public_id,
            Episode.clinic_id,
            Episode.client_id,
            Client.external_id,
            Client.age_band,
            Episode.status,
            Episode.opened_on,
            Episode.closed_on,
            Episode.ending_reason,
            Clinician.external_id.label("clinician"),
            Episode.risk_level,
            Episode.risk_reasons,
            Episode.opened_explicitly,
        )
        .join(Client, Client.id == Episode.client_id)
        .outerjoin(Clinician, Clinician.id == Episode.clinician_id)
        .where(ids_match(Episode.id, "ids"))
    )
)
_SESSION_COLS = (
    TherapySession.id,
    TherapySession.episode_id,
    TherapySession.public_id,
    TherapySession.ehr_session_id,
    TherapySession.date,
    TherapySession.number,
    TherapySession.attendance,
    TherapySession.revision,
    Clinician.external_id,
    TherapySession.updated_at,
)
# The JSON columns come back as text and are decoded here with orjson (the driver's JSON
# loader was most of a batch read's time).
_RATING_COLS = (
    Rating.instrument,
    Rating.rater,
    Rating.completeness,
    Rating.total,
    cast(Rating.items, Text),
    cast(Rating.subscales, Text),
)
_SESSIONS = by_dialect(
    lambda ids_match: (
        select(*_SESSION_COLS)
        .join(Clinician, Clinician.id == TherapySession.clinician_id)
        .where(ids_match(TherapySession.episode_id, "ids"))
        .order_by(TherapySession.episode_id, TherapySession.date, TherapySession.id)
    )
)
# Many episodes (a batch): ratings apart from their sessions. Joined, every session's columns
# came back once per rating, and the wide rows made PostgreSQL sort 20,000 of them on disk.
# Looked up by the ids of the sessions just read, not by episode: a session another writer
# commits between the two statements must not bring ratings without their session.
_RATINGS = by_dialect(
    lambda ids_match: (
        select(Rating.session_id, *_RATING_COLS)
        .where(ids_match(Rating.session_id, "ids"))
        .order_by(Rating.session_id, Rating.instrument, Rating.rater)
    )
)


# A few episodes (a single session's write, a read): sessions and ratings in one LEFT JOIN,
# one round trip less.
_SESSIONS_WITH_RATINGS = by_dialect(
    lambda ids_match: (
        select(*_SESSION_COLS, *_RATING_COLS)
        .join(Clinician, Clinician.id == TherapySession.clinician_id)
        .outerjoin(Rating, Rating.session_id == TherapySession.id)
        .where(ids_match(TherapySession.episode_id, "ids"))
        .order_by(
            TherapySession.episode_id,
            TherapySession.date,
            TherapySession.id,
            Rating.instrument,
            Rating.rater,
        )
    )
)
_FEW_EPISODES = 8


def load_histories(db: Session, episode_ids: Iterable[int]) -> dict[int, EpisodeHistory]:
    """Episodes by row id, each with its sessions in date order and their current ratings
    (two queries for a few episodes, three for many)."""
    ids = sorted(set(episode_ids))
    out: dict[int, EpisodeHistory] = {}
    conn = db.connection()
    for chunk in _chunks(ids):
        for row in conn.execute(_EPISODES(conn), {"ids": chunk}):
            out[row.id] = EpisodeHistory(
                row.id,
                row.public_id,
                row.clinic_id,
                row.client_id,
                row.external_id,
                row.age_band,
                row.status,
                row.opened_on,
                row.closed_on,
                row.ending_reason,
                row.clinician,
                row.risk_level,
                row.risk_reasons,
                opened_explicitly=row.opened_explicitly,
            )
    if not ids:
        return out
    if len(ids) <= _FEW_EPISODES:
        current: SessionRecord | None = None
        for joined in conn.execute(_SESSIONS_WITH_RATINGS(conn), {"ids": ids}).all():
            if current is None or current.row_id != joined[0]:
                current = _session(joined)
                out[joined[1]].sessions.append(current)
            if joined[10] is not None:
                current.ratings.append(_rating(joined[10:]))
        return out
    by_id: dict[int, SessionRecord] = {}
    for chunk in _chunks(ids):
        for session_row in conn.execute(_SESSIONS(conn), {"ids": chunk}).all():
            record = by_id[session_row[0]] = _session(session_row)
            out[session_row[1]].sessions.append(record)
    for chunk in _chunks(by_id):
        for rating_row in conn.execute(_RATINGS(conn), {"ids": chunk}).all():
            by_id[rating_row[0]].ratings.append(_rating(rating_row[1:]))
    return out


def _session(row: Any) -> SessionRecord:
    """A SessionRecord from a row starting with _SESSION_COLS."""
    (sid, _episode, public_id, ehr_id, day, number, attendance, revision, clinician, at) = row[:10]
    return SessionRecord(sid, public_id, ehr_id, day, number, attendance, revision, clinician, at)


def _rating(row: Any) -> RatingRecord:
    """A RatingRecord from the _RATING_COLS of a row."""
    instrument, rater, completeness, total, items, subscales = row
    return RatingRecord(
        instrument,
        rater,
        completeness,
        total,
        None if items is None else orjson.loads(items),
        None if subscales is None else orjson.loads(subscales),
    )


_SESSIONS_TABLE = TherapySession.__table__
_RENUMBER = (
    update(_SESSIONS_TABLE)
    .where(_SESSIONS_TABLE.c.id == bindparam("row_id"))
    .values(number=bindparam("new_number"))
)


def renumber(db: Session, histories: Iterable[EpisodeHistory]) -> date | None:
    """Session ``number`` = ordinal among the episode's *attended* sessions by date, so a
    backfilled earlier session shifts the later ones ("by session 3" rules and the ETR use
    it). Updates only rows whose number changed, in one executemany; returns the earliest
    date of those (``None`` if none changed)."""
    changes = []
    earliest: date | None = None
    for history in histories:
        attended = 0
        for s in history.sessions:
            new: int | None = None
            if s.attendance == "attended":
                attended += 1
                new = attended
            if new != s.number:
                s.number = new
                changes.append({"row_id": s.row_id, "new_number": new})
                earliest = s.date if earliest is None else min(earliest, s.date)
    if changes:
        db.connection().execute(_RENUMBER, changes)
    return earliest


_EPISODES_TABLE = Episode.__table__
_RESTART = (
    update(_EPISODES_TABLE)
    .where(_EPISODES_TABLE.c.id == bindparam("row_id"))
    .values(opened_on=bindparam("new_opened_on"), updated_at=bindparam("now"))
)


def start_at_first_session(db: Session, histories: Iterable[EpisodeHistory]) -> None:
    """An episode opened by its first session starts on its earliest session's date,
    whichever way that moved: a backfilled earlier session moves it back, and the first
    session corrected to a later date moves it forward (otherwise the episode would claim
    weeks of care that never happened, and its length in the views and reports would be
    wrong). An episode opened explicitly keeps its date: that is a fact the EHR sent. Sets
    ``opened_on`` in the histories too, and updates only changed rows, in one executemany."""
    changes = []
    now = utcnow()
    for history in histories:
        if history.opened_explicitly or not history.sessions:
            continue
        first = history.sessions[0].date  # sessions are loaded in date order
        if first != history.opened_on:
            history.opened_on = first
            changes.append({"row_id": history.row_id, "new_opened_on": first, "now": now})
    if changes:
        db.connection().execute(_RESTART, changes)
