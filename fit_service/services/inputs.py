"""Plain input types of the use cases. The HTTP schemas load into these; so can the CLI and
the benchmark, without going through Flask."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

#: The earliest date a session, an episode's start or a report month may have. The ORS and SRS
#: date from 2000-2003, so no real rating is older; 1900 leaves room for a misdated backfill
#: while keeping year-1 dates (which moved an episode's start to 0001-01-01) out, and keeps the
#: reports' date arithmetic clear of Python's first year.
EARLIEST_DATE = date(1900, 1, 1)


class Attendance(StrEnum):
    ATTENDED = "attended"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class EndingReason(StrEnum):
    """Why an episode ended (domain.md §6: record the reason, define dropout as a setting)."""

    PLANNED = "planned"  # planned or mutual ending
    CLIENT_ENDED = "client_ended"  # the client ended unilaterally
    STOPPED_ATTENDING = "stopped_attending"  # missed sessions and never returned
    TRANSFERRED = "transferred"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RatingInput:
    instrument: str
    rater: str | None = None
    items: Mapping[str, object] | None = None
    total: object | None = None
    not_completed: bool = False


@dataclass(frozen=True, slots=True)
class SessionInput:
    ehr_session_id: str
    client_id: str
    clinician_id: str
    date: date
    attendance: Attendance = Attendance.ATTENDED
    client_age_band: str | None = None
    episode_id: uuid.UUID | None = None
    ratings: tuple[RatingInput, ...] = field(default_factory=tuple)
