"""The client's ORS/CORS/SRS/CSRS totals kept on each session row, beside its ratings.

Why: the monthly report reads every session of a clinic's trailing 12 months (and the earlier
sessions of its active episodes). Joining each of those sessions to its ratings, twice, was
about half of the report's database time; with the four totals on the session row the read
is one table (and the client's age band). ``ratings`` stays the record of what was rated:
these columns are a copy, written in the same statement as the session
(:func:`columns_for`) and re-derivable from the ratings at any time (:func:`recompute`, behind
``fit recompute-session-totals``; used by the fingerprint script, which writes ratings
directly, and by the tests as the independent calculation; migration 0004 did the same in its
own frozen SQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select, update

from fit_service.adapters.orm import Rating, TherapySession
from fit_service.domain.instruments import CORS, CSRS, ORS, SRS, Rater

#: Session column -> the instrument whose client-rated total it copies.
COLUMNS: dict[str, str] = {
    "ors_total": ORS.code,
    "cors_total": CORS.code,
    "srs_total": SRS.code,
    "csrs_total": CSRS.code,
}
_BY_INSTRUMENT = {code: column for column, code in COLUMNS.items()}

#: Only the client's own ratings are copied: a therapist-rated SRS is not the client's view
#: of the alliance (the report, like the risk rules, reads the client's).
CLIENT = Rater.CLIENT.value


def column_for(instrument_code: str) -> str:
    """The session column holding the client's total of this instrument."""
    return _BY_INSTRUMENT[instrument_code]


def columns_for(ratings: Iterable[Mapping[str, Any]]) -> dict[str, float | None]:
    """The four columns for a session with these stored ratings (dicts with ``instrument``,
    ``rater`` and ``total``, as the write path stores them)."""
    values: dict[str, float | None] = dict.fromkeys(COLUMNS)
    for rating in ratings:
        column = _BY_INSTRUMENT.get(rating["instrument"])
        if column is not None and rating["rater"] == CLIENT:
            values[column] = rating["total"]
    return values


def recompute(connection: Connection, clinic_id: int | None = None) -> None:
    """Set the four columns of every session (of one clinic, or all) from its ratings."""
    values = {
        column: select(Rating.total)
        .where(
            Rating.session_id == TherapySession.id,
            Rating.instrument == code,
            Rating.rater == CLIENT,
        )
        .scalar_subquery()
        for column, code in COLUMNS.items()
    }
    statement = update(TherapySession).values(**values)
    if clinic_id is not None:
        statement = statement.where(TherapySession.clinic_id == clinic_id)
    connection.execute(statement)
