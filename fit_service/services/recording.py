"""Use case: record therapy sessions (one, or a backfill batch of thousands).

The single-session call is a batch of one, so there is exactly one ingestion mechanism.

Why it is shaped as *plan, then write*:

* every check (scores, dates, episode state, tenancy) runs before anything is written, so a
  rejected item never leaves a half-created client or episode behind;
* the existing state for the whole batch is loaded with a handful of key-list queries and the
  writes go out in bulk (COPY on PostgreSQL, multi-row INSERTs elsewhere), so a 1,000-session
  backfill costs a few dozen round trips rather than thousands;
* re-sending is safe: a session whose canonical content hashes the same as what is stored is
  answered from storage, and changed content becomes a new revision (the old one is kept);
* two requests racing to create the same client hit a unique constraint; the whole use case is
  then retried, and because it is idempotent the retry does the right thing.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, aliased

from fit_service.adapters.db import by_dialect, insert_rows, insert_rows_returning_ids, set_local
from fit_service.adapters.orm import (
    Client,
    Clinician,
    Episode,
    IdempotencyRecord,
    Rating,
    SessionRevision,
    TherapySession,
    utcnow,
)
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.errors import (
    Conflict,
    FitError,
    IdempotencyKeyReused,
    InvalidRating,
    InvalidSession,
    MissingItems,
    NotFound,
    UnknownInstrument,
)
from fit_service.domain.instruments import (
    COLLATERAL_AGE_BANDS,
    COLLATERAL_RATERS,
    CORS,
    CSRS,
    ORS,
    REGISTRY,
    SRS,
    AgeBand,
    Instrument,
    Rater,
    alliance_instrument_for,
    outcome_instrument_for,
)
from fit_service.domain.scoring import Completeness, Score, missing_items, score
from fit_service.services import (
    audit,
    episode_months,
    session_totals,
    thresholds,
    trajectories,
    views,
)
from fit_service.services.history import (
    EpisodeHistory,
    load_histories,
    renumber,
    start_at_first_session,
)
from fit_service.services.inputs import EARLIEST_DATE, Attendance, SessionInput
from fit_service.services.principals import Permission, Principal

_RETRIES = 5
_IN_CHUNK = 900  # below SQLite's default bound-parameter ceilings


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What happened to one input item, in input order."""

    index: int
    outcome: str  # created | revised | unchanged | rejected
    session_id: uuid.UUID | None = None
    revision: int | None = None
    error: FitError | None = None
    view: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RefusedItem:
    """A batch item refused before it reached this module (the HTTP schema): only what the
    audit trail records of it, never its content (no scores in the audit)."""

    record_id: str  # its EHR session id when readable, else its place in the batch
    status_code: int


@dataclass(slots=True)
class _EpisodeState:
    row_id: int | None
    public_id: uuid.UUID
    client_key: str
    status: str
    opened_on: date
    clinician_key: str | None
    new: bool = False
    explicit: bool = False
    # What is stored of the episode, when known: attended sessions and the latest date (lets
    # sessions appended in date order be numbered before they are inserted).
    attended: int | None = None
    last_date: date | None = None


@dataclass(slots=True)
class _SessionState:
    row_id: int | None
    public_id: uuid.UUID
    content_hash: str
    revision: int
    episode: _EpisodeState
    #: the age versions (ors/cors, srs/csrs) the stored session was scored on: a revision may
    #: keep them after the client's band changed (see check_age_versions)
    recorded: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Write:
    index: int
    item: SessionInput
    content: dict[str, Any]
    digest: str
    state: _SessionState
    created: bool
    revision: int  # the revision this item produces (a batch may revise a session twice)


@dataclass(slots=True)
class _Plan:
    """Everything one call will write, keyed by the EHR's ids until rows have ids."""

    new_clients: dict[str, str] = field(default_factory=dict)  # external id -> age band
    age_band_updates: dict[str, str] = field(default_factory=dict)
    #: the session date of the item whose age band stands for each client in this batch
    age_band_dates: dict[str, date] = field(default_factory=dict)
    new_clinicians: set[str] = field(default_factory=set)
    new_episodes: list[_EpisodeState] = field(default_factory=list)
    #: ``id()`` of each of ``new_episodes`` (the same objects; a list's ``in`` compared every
    #: field of every new episode, quadratic in a backfill of new clients)
    new_episode_ids: set[int] = field(default_factory=set)
    writes: list[_Write] = field(default_factory=list)


def canonical_content(item: SessionInput, scores: Sequence[tuple[str, str, Score]]) -> dict:
    """The session as stored: scored values, ratings in a fixed order, so equal content
    hashes equal whatever the JSON key order or number spelling (5 vs 5.0) was."""
    return {
        "ehr_session_id": item.ehr_session_id,
        "client_id": item.client_id,
        "client_age_band": item.client_age_band,
        "clinician_id": item.clinician_id,
        "episode_id": str(item.episode_id) if item.episode_id else None,
        "date": item.date.isoformat(),
        "attendance": item.attendance.value,
        "ratings": [
            {
                "instrument": instrument,
                "rater": rater,
                "completeness": s.completeness.value,
                "total": s.total,
                "items": dict(s.items) if s.items is not None else None,
                "subscales": dict(s.subscales) or None,
            }
            for instrument, rater, s in sorted(scores, key=lambda t: (t[0], t[1]))
        ],
    }


def content_hash(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def score_ratings(item: SessionInput) -> list[tuple[str, str, Score]]:
    """Validate and score every rating of one session; errors name the rating's path."""
    scored: list[tuple[str, str, Score]] = []
    seen: set[tuple[str, str]] = set()
    if item.attendance is not Attendance.ATTENDED and item.ratings:
        raise InvalidSession(
            f"a session with attendance {item.attendance.value!r} carries no ratings",
            field="ratings",
            rule="ratings_without_attendance",
        )
    for n, rating in enumerate(item.ratings):
        path = f"ratings[{n}]"
        instrument = REGISTRY.get(rating.instrument)
        if instrument is None:
            raise UnknownInstrument(
                f"unknown instrument {rating.instrument!r}; known: {', '.join(REGISTRY)}",
                field=f"{path}.instrument",
            )
        rater = rating.rater or instrument.default_rater.value
        if rater not in Rater.__members__.values():
            raise InvalidRating(f"unknown rater {rater!r}", field=f"{path}.rater", rule="enum")
        if rater not in instrument.raters:
            raise InvalidRating(
                f"{instrument.code} is not rated by the {rater}; its raters: "
                f"{_raters_of(instrument, rater)}",
                field=f"{path}.rater",
                rule="rater_not_for_instrument",
            )
        if (instrument.code, rater) in seen:
            raise InvalidRating(
                f"{instrument.code} by {rater} appears twice in one session",
                field=f"{path}.instrument",
                rule="duplicate_rating",
            )
        seen.add((instrument.code, rater))
        try:
            result = score(
                instrument, rating.items, rating.total, not_completed=rating.not_completed
            )
        except FitError as exc:
            exc.field = f"{path}.{exc.field}" if exc.field else path
            raise
        if result.completeness is Completeness.INCOMPLETE:
            # The core can score partial sets; the API refuses them (issue 2: missing items).
            absent = ", ".join(missing_items(instrument, result))
            raise MissingItems(
                f"{instrument.code}: items missing ({absent}); send all items, only a total, "
                "or not_completed: true",
                field=f"{path}.items",
            )
        scored.append((instrument.code, rater, result))
    return scored


def _raters_of(instrument: Instrument, rater: str) -> str:
    """Who rates ``instrument``, in words, and the form ``rater`` fills in instead if there is
    one (the therapist's WAI-SR is a form of its own): for the error message."""
    names = ", ".join(r.value for r in Rater if r in instrument.raters)
    collateral = [r.value for r in Rater if r in instrument.raters & COLLATERAL_RATERS]
    if collateral:
        names += f" ({', '.join(collateral)}: only of a child or adolescent client)"
    instead = [
        other.code
        for other in REGISTRY.values()
        if other.item_ids == instrument.item_ids and rater in other.raters
    ]
    return names + (f"; the {rater}'s form is {instead[0]}" if instead else "")


def check_collateral_raters(scores: Sequence[tuple[str, str, Score]], band: str) -> None:
    """Refuse a parent's, caregiver's or teacher's rating for an adult client.

    Collateral ratings are of a child's or adolescent's week or session (PCOMS; instruments.
    COLLATERAL_RATERS); an adult rates their own, so such a rating is a misnamed rater field
    (the client's own ORS sent as the parent's would be stored unread, and the adult would have
    no outcome series and no alerts). ``scores`` are in the order of the session's ratings."""
    age = AgeBand(band)
    if age in COLLATERAL_AGE_BANDS:
        return
    for n, (code, rater, _score) in enumerate(scores):
        if rater in COLLATERAL_RATERS:
            raise InvalidRating(
                f"a {rater}'s rating is of a child's or adolescent's week or session, and this "
                f"client's age band is {age.value}: an adult rates their own {code} (send rater "
                "client, or leave it out)",
                field=f"ratings[{n}].rater",
                rule="rater_not_for_age_band",
            )


#: Measures with age versions (domain.md §2/§3): CORS and CSRS for children (6-12), ORS and SRS
#: for adolescents and adults, each with the norms of its own bands (ORS has no cut-off for a
#: child, CORS none for an adolescent or adult), mapped to the version a band uses.
_AGE_VERSIONS: Mapping[str, Callable[[AgeBand], Instrument]] = {
    ORS.code: outcome_instrument_for,
    CORS.code: outcome_instrument_for,
    SRS.code: alliance_instrument_for,
    CSRS.code: alliance_instrument_for,
}


def check_age_versions(
    scores: Sequence[tuple[str, str, Score]], band: str, recorded: frozenset[str] = frozenset()
) -> None:
    """Refuse a rating on the other age version of a measure than the client's band uses.

    Such a score has no norm to be judged by (no cut-off, so no clinical range, recovery or
    risk), and storing it unread would leave the client without an outcome or alliance series
    and without alerts, silently. ``scores`` are in the order of the session's ratings.
    ``recorded``: the versions the session was stored with, which a correction may keep (a
    CORS session from before the client turned 13 is corrected as a CORS session).
    """
    age = AgeBand(band)
    for n, (code, _rater, _score) in enumerate(scores):
        version_for = _AGE_VERSIONS.get(code)
        if version_for is None or code in recorded:
            continue
        expected = version_for(age).code
        if code != expected:
            raise InvalidRating(
                f"{code} is not normed for {age.value} clients; send {expected} (CORS and CSRS "
                "are the versions for children aged 6-12, ORS and SRS for adolescents and "
                "adults)",
                field=f"ratings[{n}].instrument",
                rule="instrument_not_for_age_band",
            )


#: the hook run after the writes, in the same transaction (the risk assessment); it may return
#: the clinic's thresholds and closed-episode count it read, so the session views don't read
#: them again
#: ``on_written(uow, principal, histories, audit_entries)``: runs after the writes, in their
#: transaction; appends the audit entries of what it stores to ``audit_entries`` (the write
#: records them with its own in one insert).
OnWritten = Callable[
    [UnitOfWork, Principal, dict[int, EpisodeHistory], list[audit.AuditEntry]],
    tuple[thresholds.ClinicThresholds, int] | None,
]


def record_sessions(
    uow_factory: Callable[[], UnitOfWork],
    principal: Principal,
    items: Sequence[SessionInput],
    *,
    idempotency: tuple[str, str] | None = None,
    detailed: bool = True,
    on_written: OnWritten | None = None,
    refused: Sequence[RefusedItem] = (),
) -> tuple[list[ItemResult], bool]:
    """Record ``items`` for the principal's clinic; return one result per item, in order,
    and whether the answer was replayed from an ``Idempotency-Key`` record.

    ``idempotency`` is ``(key, request_hash)``; ``on_written`` runs in the same transaction
    after the writes with the touched episodes' histories (risk rules and alerts hook in).
    ``refused`` are items the caller refused before they became ``items``: they are audited
    as rejections in the same transaction as the rest, so every item leaves an audit row.
    """
    principal.require(Permission.SESSIONS_WRITE)
    for attempt in range(_RETRIES):
        try:
            with uow_factory() as uow:
                if idempotency is not None:
                    replay = _replay(uow, principal, *idempotency)
                    if replay is not None:
                        replay = _answer_replay(uow, principal, items, replay, detailed, refused)
                        uow.commit()
                        return replay, True
                results = _record(uow, principal, items, detailed, on_written, refused)
                if idempotency is not None and _carried_out(results):
                    _remember(uow, principal, idempotency, results)
                uow.commit()
                return results, False
        except DBAPIError as exc:
            # A concurrent request created the same client/session/key first, or PostgreSQL
            # broke a deadlock / serialisation conflict. Everything here is idempotent, so
            # running again converges; back off a little, and after a few rounds answer 409
            # (the EHR retries) rather than fail.
            if not _retryable(exc):
                raise
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
    raise Conflict(
        "concurrent writes to the same records did not settle; retry the request",
        field=None,
        rule="concurrent_write",
    )


#: How long an Idempotency-Key is remembered. Retries come within minutes; a day covers an
#: EHR outage overnight without keeping request fingerprints forever.
IDEMPOTENCY_TTL = timedelta(hours=24)


_RETRY_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


def _retryable(exc: DBAPIError) -> bool:
    return isinstance(exc, IntegrityError) or (
        getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES
    )


def _replay(
    uow: UnitOfWork, principal: Principal, key: str, request_hash: str
) -> list[ItemResult] | None:
    row = uow.session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.clinic_id == principal.clinic_id, IdempotencyRecord.key == key
        )
    )
    if row is None:
        return None
    if row.created_at < utcnow() - IDEMPOTENCY_TTL:
        return None  # expired: this request is new (_remember replaces the old record)
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request body",
            field="Idempotency-Key",
        )
    return [_result_from_json(r) for r in row.response["results"]]


def _answer_replay(
    uow: UnitOfWork,
    principal: Principal,
    items: Sequence[SessionInput],
    results: list[ItemResult],
    detailed: bool,
    refused: Sequence[RefusedItem],
) -> list[ItemResult]:
    """A replay is a read of what was stored: audited like one, and rendered from storage
    (the record keeps ids and outcomes only, never scores). Items the caller refused again
    are audited as the rejections they are."""

    def record_id(r: ItemResult) -> str | None:
        if r.session_id is not None:
            return str(r.session_id)
        return items[r.index].ehr_session_id if r.index < len(items) else None

    audit.record(
        uow.session,
        principal,
        [
            audit.AuditEntry(
                "session.replay",
                "session",
                record_id(r),
                "success" if r.error is None else "rejected",
                _status_for(r),
            )
            for r in results
        ]
        + _refusal_entries(refused),
    )
    if not detailed:
        return results
    wanted = {r.session_id for r in results if r.session_id is not None}
    rendered = views.sessions_by_public_id(uow, principal.clinic_id, wanted)
    return _with_views(results, rendered)


def _with_views(
    results: Iterable[ItemResult], rendered: Mapping[uuid.UUID, dict[str, Any]]
) -> list[ItemResult]:
    """The results with each stored session's view attached (rejected items have none)."""
    return [
        ItemResult(
            r.index,
            r.outcome,
            r.session_id,
            r.revision,
            r.error,
            rendered.get(r.session_id) if r.session_id else None,
        )
        for r in results
    ]


def _carried_out(results: Sequence[ItemResult]) -> bool:
    """Whether the request was carried out, so its answer is the key's to replay: some item
    was accepted (a partial batch's answer is its result). A request refused as a whole is not
    remembered (as Stripe saves no result for a request refused before it ran): the corrected
    retry under the same key must be processed, not answered ``idempotency_key_reused``."""
    return any(r.error is None for r in results)


def _remember(
    uow: UnitOfWork, principal: Principal, idem: tuple[str, str], results: list[ItemResult]
) -> None:
    # Forget this clinic's expired keys (this one included, if it had expired): fingerprints
    # are kept for IDEMPOTENCY_TTL, not forever. A conditional DELETE is safe under races.
    uow.session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.clinic_id == principal.clinic_id,
            IdempotencyRecord.created_at < utcnow() - IDEMPOTENCY_TTL,
        )
    )
    uow.session.execute(
        insert(IdempotencyRecord),
        [
            {
                "clinic_id": principal.clinic_id,
                "key": idem[0],
                "request_hash": idem[1],
                "status_code": 200,
                "response": {"results": [_result_to_json(r) for r in results]},
                "created_at": utcnow(),
            }
        ],
    )


def _result_to_json(r: ItemResult) -> dict[str, Any]:
    return {
        "index": r.index,
        "outcome": r.outcome,
        "session_id": str(r.session_id) if r.session_id else None,
        "revision": r.revision,
        "error": (
            {
                "detail": r.error.detail,
                "field": r.error.field,
                "rule": r.error.rule,
                "type": type(r.error).__name__,
            }
            if r.error
            else None
        ),
    }


def _result_from_json(d: Mapping[str, Any]) -> ItemResult:
    error = None
    if d["error"]:
        cls = _ERROR_TYPES.get(d["error"]["type"], FitError)
        error = cls(d["error"]["detail"], field=d["error"]["field"], rule=d["error"]["rule"])
    return ItemResult(
        d["index"],
        d["outcome"],
        uuid.UUID(d["session_id"]) if d["session_id"] else None,
        d["revision"],
        error,
    )


_ERROR_TYPES: dict[str, type[FitError]] = {
    c.__name__: c for c in (InvalidRating, InvalidSession, NotFound, MissingItems)
}


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    seq = list(values)
    for start in range(0, len(seq), _IN_CHUNK):
        yield seq[start : start + _IN_CHUNK]


def _clinic_today(principal: Principal) -> date:
    return datetime.now(zoneinfo.ZoneInfo(principal.timezone)).date()


_EPISODE_COLS = (
    Episode.id,
    Episode.public_id,
    Episode.status,
    Episode.opened_on,
    Episode.opened_explicitly,
    Client.external_id.label("client_key"),
)


# The hot-path statements are built once: constructing and cache-keying a select costs more
# Python than PostgreSQL spends answering it (profiled: ~1.8 ms of an 8 ms request).
# (by_dialect: the keys go as one array on PostgreSQL.)
_CLINIC: BindParameter[int] = bindparam("clinic_id")
_CLOSED = aliased(Episode)
_STORED = aliased(TherapySession)
# Two requests adding sessions to one client's open episode must not both number theirs n+1:
# on PostgreSQL each first locks the clients it writes for, and only then reads their open
# episodes' session counts (READ COMMITTED: that later statement sees what the lock holder
# committed). SQLite serialises writers with BEGIN IMMEDIATE (SQLAlchemy leaves FOR UPDATE
# out there). A deadlock between batches locking in different orders is retried
# (record_sessions).
_LOCK_CLIENTS = by_dialect(
    lambda keys_match: (
        select(Client.id)
        .where(Client.clinic_id == _CLINIC, keys_match(Client.external_id, "keys"))
        .order_by(Client.id)
        .with_for_update()
    )
)
_CLIENTS_WITH_OPEN_EPISODE = by_dialect(
    lambda keys_match: (
        select(
            Client.id.label("client_id"),
            Client.age_band,
            *_EPISODE_COLS,
            # the end of the client's latest closed episode: no new or back-dated episode may
            # start on or before it (episodes of one client never overlap)
            select(func.max(_CLOSED.closed_on))
            .where(_CLOSED.client_id == Client.id, _CLOSED.status == "closed")
            .scalar_subquery()
            .label("last_closed_on"),
            select(func.count())
            .where(_STORED.episode_id == Episode.id, _STORED.attendance == "attended")
            .scalar_subquery()
            .label("attended"),
            select(func.max(_STORED.date))
            .where(_STORED.episode_id == Episode.id)
            .scalar_subquery()
            .label("last_date"),
        )
        .outerjoin(Episode, (Episode.client_id == Client.id) & (Episode.status == "open"))
        .where(Client.clinic_id == _CLINIC, keys_match(Client.external_id, "keys"))
    )
)
_CLINICIANS = by_dialect(
    lambda keys_match: select(Clinician.id, Clinician.external_id).where(
        Clinician.clinic_id == _CLINIC, keys_match(Clinician.external_id, "keys")
    )
)
_EPISODES_BY_PUBLIC_ID = by_dialect(
    lambda keys_match: (
        select(*_EPISODE_COLS)
        .join(Client, Client.id == Episode.client_id)
        .where(Episode.clinic_id == _CLINIC, keys_match(Episode.public_id, "keys"))
    )
)
_SESSIONS_BY_EHR_ID = by_dialect(
    lambda keys_match: (
        select(
            TherapySession.id.label("session_id"),
            TherapySession.public_id.label("session_public_id"),
            TherapySession.ehr_session_id,
            TherapySession.content_hash,
            TherapySession.revision,
            *(getattr(TherapySession, column) for column in session_totals.COLUMNS),
            *_EPISODE_COLS,
        )
        .join(Episode, Episode.id == TherapySession.episode_id)
        .join(Client, Client.id == Episode.client_id)
        .where(
            TherapySession.clinic_id == _CLINIC, keys_match(TherapySession.ehr_session_id, "keys")
        )
        .order_by(TherapySession.ehr_session_id)
        # Two EHR retries revising one session must not both compute revision n+1: on
        # PostgreSQL the second waits here for the first to commit (SQLite serialises writers
        # with BEGIN IMMEDIATE, and SQLAlchemy leaves FOR UPDATE out there).
        .with_for_update(of=TherapySession)
    )
)


class _Loaded:
    """The existing rows a batch refers to: three joined key-list queries (four when explicit
    episode ids are sent), whatever the batch size."""

    def __init__(self, uow: UnitOfWork, clinic_id: int, items: Sequence[SessionInput]) -> None:
        self.clients: dict[str, tuple[int, str]] = {}
        self.last_closed_on: dict[str, date] = {}
        self.clinicians: dict[str, int] = {}
        self.episodes_by_public: dict[uuid.UUID, _EpisodeState] = {}
        self.open_episode: dict[str, _EpisodeState] = {}
        self.sessions: dict[str, _SessionState] = {}
        self._by_row: dict[int, _EpisodeState] = {}
        conn = uow.session.connection()
        self.conn = conn  # for the wording of a refusal (closed_episode_refusal), read then

        def rows(statement: Callable[[Connection], Any], keys: Iterable[Any]) -> Iterable[Any]:
            # Sorted, so concurrent batches lock shared sessions in the same order (no
            # deadlock between two workers whose set orders differ).
            for chunk in _chunks(sorted(set(keys), key=str)):
                yield from conn.execute(statement(conn), {"clinic_id": clinic_id, "keys": chunk})

        client_keys = [i.client_id for i in items]
        if conn.dialect.name == "postgresql":
            list(rows(_LOCK_CLIENTS, client_keys))  # the locks are what count, not the rows
        for row in rows(_CLIENTS_WITH_OPEN_EPISODE, client_keys):
            self.clients[row.client_key] = (row.client_id, row.age_band)
            if row.last_closed_on is not None:
                self.last_closed_on[row.client_key] = row.last_closed_on
            if row.id is not None:
                state = self._remember(row)
                state.attended, state.last_date = row.attended, row.last_date
                self.open_episode[row.client_key] = state
        for tid, ext in rows(_CLINICIANS, (i.clinician_id for i in items)):
            self.clinicians[ext] = tid
        for row in rows(_EPISODES_BY_PUBLIC_ID, (i.episode_id for i in items if i.episode_id)):
            self._remember(row)
        for row in rows(_SESSIONS_BY_EHR_ID, (i.ehr_session_id for i in items)):
            self.sessions[row.ehr_session_id] = _SessionState(
                row.session_id,
                row.session_public_id,
                row.content_hash,
                row.revision,
                self._remember(row),
                frozenset(
                    code
                    for column, code in session_totals.COLUMNS.items()
                    if getattr(row, column) is not None
                ),
            )

    def _remember(self, row: Any) -> _EpisodeState:
        state = self._by_row.get(row.id)
        if state is None:
            state = _EpisodeState(
                row.id,
                row.public_id,
                row.client_key,
                row.status,
                row.opened_on,
                None,
                explicit=row.opened_explicitly,
            )
            self._by_row[row.id] = state
            self.episodes_by_public[row.public_id] = state
        return state


#: From this many sessions a write plans its statements for their parameters (below).
_CUSTOM_PLANS_FROM = 50


def _custom_plans(uow: UnitOfWork) -> None:
    """PostgreSQL: plan this transaction's statements for their actual parameters.

    psycopg prepares a statement a connection has run five times, and PostgreSQL may then
    keep a generic plan, made without the parameters. For a batch's key-list lookups that
    plan can scan the clinic's sessions instead of using the index, above all while the
    tables have not been analysed yet (a new clinic's first backfill): measured on a fresh
    database, the EHR-session-id lookup took 60-280 ms and the ``episode_months`` upsert
    50-100 ms per 1,000-session batch, growing with every batch. Planning each statement
    for its parameters costs a fraction of a millisecond, nothing beside a batch; single
    posts keep the cached plans (forcing custom plans for them cost +20% in the ninth
    session). ``SET LOCAL`` ends with the transaction."""
    set_local(uow.session.connection(), "plan_cache_mode", "force_custom_plan", since=(12,))


def _record(
    uow: UnitOfWork,
    principal: Principal,
    items: Sequence[SessionInput],
    detailed: bool,
    on_written: OnWritten | None,
    refused: Sequence[RefusedItem] = (),
) -> list[ItemResult]:
    today = _clinic_today(principal)
    if len(items) >= _CUSTOM_PLANS_FROM:
        _custom_plans(uow)
    loaded = _Loaded(uow, principal.clinic_id, items)
    plan = _Plan()
    results: list[ItemResult | None] = [None] * len(items)
    resent = _resent_versions(uow, items, loaded)

    for index, item in enumerate(items):
        if index in resent:
            stored = loaded.sessions[item.ehr_session_id]
            results[index] = ItemResult(index, "unchanged", stored.public_id, resent[index])
            continue
        try:
            outcome = _plan_item(index, item, today, loaded, plan)
        except FitError as exc:
            results[index] = ItemResult(index, "rejected", error=exc)
            continue
        if outcome is not None:
            results[index] = outcome

    touched = _write(uow, principal, plan, loaded)
    for w in plan.writes:
        results[w.index] = ItemResult(
            w.index, "created" if w.created else "revised", w.state.public_id, w.revision
        )

    entries = [
        audit.AuditEntry(
            f"session.{r.outcome}" if r.outcome != "rejected" else "session.reject",
            "session",
            str(r.session_id) if r.session_id else items[r.index].ehr_session_id,
            "success" if r.outcome != "rejected" else "rejected",
            _status_for(r),
        )
        for r in results
        if r is not None
    ] + _refusal_entries(refused)
    # Read the touched episodes back once: renumbering, risk rules and the answer all use it.
    histories = load_histories(uow.session, touched)
    renumbered_from = renumber(uow.session, histories.values())
    # Before the risk rules and the views read the histories, so they see the corrected
    # start. Safe from concurrent writers: every session write locks its client first.
    start_at_first_session(uow.session, histories.values())
    read = None
    if on_written is not None and histories:
        read = on_written(uow, principal, histories, entries)
    if touched or plan.age_band_updates:
        # The report's per-month sums of these episodes (and of every episode of a client
        # whose age band changed: which measure is normed for them changed), after
        # renumbering: they pack session numbers with scores.
        limits = read[0] if read is not None else thresholds.load(uow.session, principal.clinic_id)
        episode_months.refresh(
            uow.session.connection(),
            principal.clinic_id,
            episodes=touched,
            clients={loaded.clients[key][0] for key in plan.age_band_updates},
            concern=limits.reports.srs_concern,
            added_since=_added_since(plan, renumbered_from),
        )
    # One insert for the sessions' rows and those of what the risk rules stored (levels,
    # alerts): a round trip less on every write that changes an episode's level.
    audit.record(uow.session, principal, entries)

    final = [r for r in results if r is not None]
    if detailed:
        wanted = {r.session_id for r in final if r.session_id is not None}
        unchanged_eps = {
            loaded.sessions[items[r.index].ehr_session_id].episode.row_id
            for r in final
            if r.outcome == "unchanged"
        } - set(histories)
        if unchanged_eps:
            histories.update(load_histories(uow.session, {e for e in unchanged_eps if e}))
        limits, closed = read or trajectories.limits_and_closed(uow, principal.clinic_id)
        # the clinic's trajectory models, as the risk rules judged (cached: a COUNT at most)
        models = trajectories.models_for(
            uow, principal.clinic_id, histories.values(), limits, closed
        )
        rendered = views.sessions_from_histories(histories.values(), wanted, limits, models)
        final = _with_views(final, rendered)
    return final


def _added_since(plan: _Plan, renumbered_from: date | None) -> date | None:
    """The earliest date of the sessions ``plan`` adds and of those renumbering changed
    (``renumbered_from``), when the plan only adds sessions: no correction (which can take a
    session out of a month or from a clinician) and no age band change (which changes what
    every month of the client reads). For :func:`episode_months.refresh`."""
    if plan.age_band_updates or not plan.writes or not all(w.created for w in plan.writes):
        return None
    added = min(w.item.date for w in plan.writes)
    return added if renumbered_from is None else min(added, renumbered_from)


def _resent_versions(
    uow: UnitOfWork, items: Sequence[SessionInput], loaded: _Loaded
) -> dict[int, int]:
    """The items that re-send a batch's versions of a stored session: index -> the revision
    each one already is.

    A batch may carry a session and its correction (revisions n and n+1, in input order).
    Sent again, as an EHR retries, the first version no longer equals what is stored (the
    correction does), and it would become revision n+2, the correction n+3, and so on at
    every retry. When the versions a batch holds of a session (a run of equal ones counted
    once) are exactly its latest stored revisions, in order, the items are a re-send: each
    is answered unchanged and nothing is stored. One version alone is handled as always (a
    session sent back to an earlier content is a correction, so a new revision)."""
    positions: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if item.ehr_session_id in loaded.sessions:
            positions.setdefault(item.ehr_session_id, []).append(index)
    repeated = {ehr_id: indexes for ehr_id, indexes in positions.items() if len(indexes) > 1}
    if not repeated:
        return {}
    versions: dict[str, list[tuple[str, list[int]]]] = {}
    for ehr_id, indexes in repeated.items():
        runs = versions.setdefault(ehr_id, [])
        for index in indexes:
            try:
                digest = content_hash(canonical_content(items[index], score_ratings(items[index])))
            except FitError:
                continue  # refused again when it is planned
            if runs and runs[-1][0] == digest:
                runs[-1][1].append(index)
            else:
                runs.append((digest, [index]))
    # keyed by row id: every stored session has one (None only for a session not yet inserted)
    history: dict[int | None, list[tuple[int, str]]] = {}
    for chunk in _chunks(loaded.sessions[ehr_id].row_id for ehr_id in repeated):
        for session_id, revision, digest in uow.session.execute(
            select(
                SessionRevision.session_id, SessionRevision.revision, SessionRevision.content_hash
            )
            .where(SessionRevision.session_id.in_(chunk))
            .order_by(SessionRevision.session_id, SessionRevision.revision)
        ):
            history.setdefault(session_id, []).append((revision, digest))
    resent: dict[int, int] = {}
    for ehr_id, runs in versions.items():
        stored = history.get(loaded.sessions[ehr_id].row_id, [])
        if not 2 <= len(runs) <= len(stored):
            continue
        tail = stored[-len(runs) :]
        if [digest for digest, _ in runs] != [digest for _, digest in tail]:
            continue
        for (_, indexes), (revision, _) in zip(runs, tail, strict=True):
            resent.update(dict.fromkeys(indexes, revision))
    return resent


def _refusal_entries(refused: Iterable[RefusedItem]) -> list[audit.AuditEntry]:
    """The audit rows of items refused before the domain saw them, worded like the rows of
    items the domain refuses."""
    return [
        audit.AuditEntry("session.reject", "session", r.record_id, "rejected", r.status_code)
        for r in refused
    ]


def _status_for(r: ItemResult) -> int:
    if r.outcome == "created":
        return 201
    if r.outcome == "rejected":
        return 404 if isinstance(r.error, NotFound) else 422
    return 200


def _restates(content: dict[str, Any], existing: _SessionState, loaded: _Loaded) -> bool:
    """Does ``content`` say what the stored session says, leaving out what the service fills
    in or spelling it out? An EHR may send the client's age band only at first contact and
    name the episode or not: the same session without the band (or with the client's band),
    or with the session's own episode named (or not), is a re-send, not a revision. Tried
    only when the content hash differs, so an ordinary re-send costs nothing more."""
    known = loaded.clients.get(content["client_id"])
    own_episode = str(existing.episode.public_id)
    bands: set[str | None] = {content["client_age_band"]}
    if known is not None and content["client_age_band"] in (None, known[1]):
        bands |= {None, known[1]}
    episodes: set[str | None] = {content["episode_id"]}
    if content["episode_id"] in (None, own_episode):
        episodes |= {None, own_episode}
    return any(
        content_hash({**content, "client_age_band": band, "episode_id": episode})
        == existing.content_hash
        for band in bands
        for episode in episodes
        if (band, episode) != (content["client_age_band"], content["episode_id"])
    )


def closed_episode_refusal(
    db: Connection | Session, client_row: int, day: date, what: str, field_name: str
) -> InvalidSession:
    """Why ``day`` (a session's date, a new episode's ``opened_on``) is refused for a client
    whose closed episode ends on or after it: episodes of one client never overlap, a closed
    one takes no sessions, and a new one starts after the latest close. Said truly: the date
    falls *within* the closed episode only from its opening to its close; earlier, it falls
    *before* it (history sent newest first), and the refusal tells the EHR to send a client's
    episodes oldest first. Both keep the rule ``date_in_closed_episode``, which integrators
    already handle. Read only on refusal: the episode the date meets is the client's first
    closed one (by opening) that ends on or after it, as closed episodes never overlap."""
    row = db.execute(
        select(Episode.opened_on, Episode.closed_on)
        .where(
            Episode.client_id == client_row,
            Episode.status == "closed",
            Episode.closed_on >= day,
        )
        .order_by(Episode.opened_on)
        .limit(1)
    ).first()
    if row is None or row.opened_on <= day:
        span = f" (opened {row.opened_on}, closed {row.closed_on})" if row is not None else ""
        detail = (
            f"{what} {day} falls within the client's closed episode{span}; "
            "a closed episode takes no new sessions, and a new episode starts after it"
        )
    else:
        detail = (
            f"{what} {day} falls before the client's later episode (opened {row.opened_on}, "
            f"closed {row.closed_on}); episodes of one client never overlap, and none can be "
            "added before one that is closed: send a client's episodes oldest first"
        )
    return InvalidSession(detail, field=field_name, rule="date_in_closed_episode")


def _plan_item(
    index: int, item: SessionInput, today: date, loaded: _Loaded, plan: _Plan
) -> ItemResult | None:
    scores = score_ratings(item)
    content = canonical_content(item, scores)
    digest = content_hash(content)
    if item.date > today:
        raise InvalidSession(
            f"session date {item.date} is in the future (clinic's today is {today})",
            field="date",
            rule="date_in_future",
        )
    if item.date < EARLIEST_DATE:
        raise InvalidSession(
            f"session date {item.date} is before {EARLIEST_DATE}: not a date of these measures",
            field="date",
            rule="date_too_early",
        )
    existing = loaded.sessions.get(item.ehr_session_id)
    if existing is not None and (
        existing.content_hash == digest or _restates(content, existing, loaded)
    ):
        return ItemResult(index, "unchanged", existing.public_id, existing.revision)
    if existing is not None and existing.episode.client_key != item.client_id:
        raise InvalidSession(
            f"session {item.ehr_session_id} belongs to another client; "
            "a session cannot move between clients",
            field="client_id",
            rule="session_client_fixed",
        )

    # Client: known, planned earlier in this batch, or new (needs an age band).
    band = item.client_age_band
    if band is not None and band not in AgeBand.__members__.values():
        raise InvalidSession(f"unknown age band {band!r}", field="client_age_band", rule="enum")
    known = loaded.clients.get(item.client_id)
    new_client = known is None and item.client_id not in plan.new_clients
    if new_client and band is None:
        raise InvalidSession(
            "client_age_band is required the first time a client is seen "
            "(it selects the norms: child, adolescent, adult)",
            field="client_age_band",
            rule="required_for_new_client",
        )

    # The band this item is judged by: the one it names, else the one an earlier item of the
    # batch set, else the stored one.
    current_band = (
        band
        or plan.age_band_updates.get(item.client_id)
        or plan.new_clients.get(item.client_id)
        or (known[1] if known is not None else None)
    )
    if current_band is not None:
        check_age_versions(scores, current_band, existing.recorded if existing else frozenset())
        # A correction of a stored session is judged by the band it names, if any: one from
        # before the client turned 18 may carry the parent's rating it was stored with (as it
        # keeps its age version above) without naming the band it was given under.
        if existing is None or band is not None:
            check_collateral_raters(scores, band or current_band)

    episode = _choose_episode(item, existing, loaded, plan)
    if episode.client_key != item.client_id:
        raise NotFound(
            f"no episode {item.episode_id} for client {item.client_id}", field="episode_id"
        )
    if episode.status != "open":
        raise InvalidSession(
            "the episode is closed; open a new episode for new sessions",
            field="episode_id",
            rule="episode_closed",
        )
    if item.date < episode.opened_on and episode.explicit:
        raise InvalidSession(
            f"session date {item.date} is before the episode opened ({episode.opened_on})",
            field="date",
            rule="date_before_episode",
        )
    last_closed = loaded.last_closed_on.get(item.client_id)
    if (
        last_closed is not None
        and item.date <= last_closed
        and (episode.new or item.date < episode.opened_on)
    ):
        # Opening (or moving back) an episode into or before the period of the client's
        # closed one would make two episodes overlap (or a session land in a closed one).
        raise closed_episode_refusal(
            loaded.conn, loaded.clients[item.client_id][0], item.date, "session date", "date"
        )

    # All checks passed: commit this item's plan.
    # The band an accepted item names becomes the client's unless a later-dated session
    # (stored, or earlier in this batch) stands for it: backfills and corrections of old
    # sessions arrive in any order, and one from before the client turned 13 must not make an
    # adolescent a child again. Among same-dated items the last sent wins, as one at a time.
    if band is not None and _band_is_current(item, known, loaded, plan):
        plan.age_band_dates[item.client_id] = item.date
        if known is None:
            # first seen here, or a later item for a client this batch creates (a new
            # client's first item always has a band: checked above)
            plan.new_clients[item.client_id] = band
        elif band != known[1]:
            plan.age_band_updates[item.client_id] = band
        else:  # back to the stored band after an earlier item of the batch changed it
            plan.age_band_updates.pop(item.client_id, None)
    if item.clinician_id not in loaded.clinicians:
        plan.new_clinicians.add(item.clinician_id)
    if item.date < episode.opened_on:
        # An episode opened by its first session: a backfilled earlier session is its real
        # start (backfills arrive in any order). Only a new episode's row takes this date;
        # a stored one's start is set from its sessions after the write (history.
        # start_at_first_session), which also covers a first session moved later.
        episode.opened_on = item.date
    if episode.new and id(episode) not in plan.new_episode_ids:
        plan.new_episode_ids.add(id(episode))
        plan.new_episodes.append(episode)
        loaded.open_episode[item.client_id] = episode
        loaded.episodes_by_public[episode.public_id] = episode
    if existing is None:
        state = _SessionState(None, uuid.uuid4(), digest, 1, episode)
        loaded.sessions[item.ehr_session_id] = state
        created = True
    else:
        existing.content_hash = digest
        existing.revision += 1
        state = existing
        created = False
    plan.writes.append(_Write(index, item, content, digest, state, created, state.revision))
    return None


def _band_is_current(
    item: SessionInput, known: tuple[int, str] | None, loaded: _Loaded, plan: _Plan
) -> bool:
    """Whether ``item``'s session is at least as recent as every session whose age band
    stands for the client: those of this batch that set it, and the stored ones (the latest of
    the client's open episode; sessions of closed episodes are older than any accepted item,
    which must fall after the last closed episode)."""
    latest = plan.age_band_dates.get(item.client_id)
    if latest is None and known is not None:
        episode = loaded.open_episode.get(item.client_id)
        latest = episode.last_date if episode is not None else None
    return latest is None or item.date >= latest


def _choose_episode(
    item: SessionInput, existing: _SessionState | None, loaded: _Loaded, plan: _Plan
) -> _EpisodeState:
    if item.episode_id is not None:
        episode = loaded.episodes_by_public.get(item.episode_id)
        if episode is None:
            raise NotFound(f"no episode {item.episode_id}", field="episode_id")
        if existing is not None and existing.episode is not episode:
            raise InvalidSession(
                "a stored session cannot move to another episode",
                field="episode_id",
                rule="session_episode_fixed",
            )
        return episode
    if existing is not None:
        return existing.episode
    open_episode = loaded.open_episode.get(item.client_id)
    if open_episode is not None:
        return open_episode
    # First contact (or first since the last episode closed): open one on the session date.
    return _EpisodeState(
        None,
        uuid.uuid4(),
        item.client_id,
        "open",
        item.date,
        item.clinician_id,
        new=True,
        attended=0,
    )


_Final = tuple[SessionInput, dict[str, Any], str, _SessionState]


def _follow_first_session_clinician(
    db: Session, episode_ids: set[int | None], now: datetime
) -> None:
    """An episode the EHR did not open explicitly was opened by its first session, with that
    session's clinician; when a revision re-attributes sessions, the episode follows its first
    session again. Why: the episode's clinician decides which clinician key reads the client
    (services/reads.visible_clients) and whose figures the episode counts in (the monthly
    report), so a session sent under the wrong clinician and corrected must not leave the
    client with the wrong one. An episode opened for a named clinician keeps them."""
    ids = [i for i in episode_ids if i is not None]
    if not ids:
        return
    first = (
        select(TherapySession.clinician_id)
        .where(TherapySession.episode_id == Episode.id)
        .order_by(TherapySession.date, TherapySession.id)
        .limit(1)
        .correlate(Episode)
        .scalar_subquery()
    )
    db.execute(
        update(Episode)
        .where(
            Episode.id.in_(ids),
            Episode.opened_explicitly.is_(False),
            Episode.clinician_id.is_distinct_from(first),
        )
        .values(clinician_id=first, updated_at=now)
    )


def _numbers_in_order(to_insert: list[_Final], revised: list[_Final]) -> dict[str, int]:
    """Numbers for new attended sessions appended after their episode's stored ones (the
    usual backfill, oldest first), so the renumbering after the read-back has nothing to
    update. Anything else (a back-dated session, a revision in the same episode, an episode
    reached by explicit id) is left to :func:`renumber`, which sets every number right."""
    skip = {id(state.episode) for *_, state in revised}
    groups: dict[int, list[SessionInput]] = {}
    for item, _content, _digest, state in to_insert:
        groups.setdefault(id(state.episode), []).append(item)
    episodes = {id(state.episode): state.episode for *_, state in to_insert}
    numbers: dict[str, int] = {}
    for key, items in groups.items():
        episode = episodes[key]
        if episode.attended is None or key in skip:
            continue
        if episode.last_date is not None and any(i.date < episode.last_date for i in items):
            continue
        n = episode.attended
        # Stable sort: same-date sessions keep insertion order, which is their id order.
        for item in sorted(items, key=lambda i: i.date):
            if item.attendance is Attendance.ATTENDED:
                n += 1
                numbers[item.ehr_session_id] = n
    return numbers


def _write(uow: UnitOfWork, principal: Principal, plan: _Plan, loaded: _Loaded) -> set[int]:
    """Apply the plan with bulk statements; return the touched episodes' row ids."""
    db = uow.session
    clinic_id = principal.clinic_id
    now = utcnow()
    if plan.new_clients:
        keys = list(plan.new_clients)
        ids = insert_rows_returning_ids(
            db,
            Client.__table__,
            [
                {
                    "clinic_id": clinic_id,
                    "external_id": k,
                    "age_band": plan.new_clients[k],
                    "created_at": now,
                }
                for k in keys
            ],
        )
        for k, i in zip(keys, ids, strict=True):
            loaded.clients[k] = (i, plan.new_clients[k])
    for key, band in plan.age_band_updates.items():
        db.execute(update(Client).where(Client.id == loaded.clients[key][0]).values(age_band=band))
    if plan.new_clinicians:
        keys = sorted(plan.new_clinicians)
        ids = insert_rows_returning_ids(
            db,
            Clinician.__table__,
            [{"clinic_id": clinic_id, "external_id": k, "created_at": now} for k in keys],
        )
        loaded.clinicians.update(zip(keys, ids, strict=True))
    if plan.new_episodes:
        ids = insert_rows_returning_ids(
            db,
            Episode.__table__,
            [
                {
                    "public_id": e.public_id,
                    "clinic_id": clinic_id,
                    "client_id": loaded.clients[e.client_key][0],
                    "clinician_id": loaded.clinicians[e.clinician_key] if e.clinician_key else None,
                    "status": "open",
                    "opened_on": e.opened_on,
                    "created_at": now,
                    "updated_at": now,
                }
                for e in plan.new_episodes
            ],
        )
        for e, i in zip(plan.new_episodes, ids, strict=True):
            e.row_id = i

    # Sessions: insert the new ones; for revised ones, update in place (history is kept in
    # session_revisions). A session created and revised in the same batch is inserted once
    # with its final content; each item's revision row is still written.
    final_content: dict[str, _Final] = {}
    for w in plan.writes:
        final_content[w.item.ehr_session_id] = (w.item, w.content, w.digest, w.state)
    to_insert = [v for v in final_content.values() if v[3].row_id is None]
    revised = [v for v in final_content.values() if v[3].row_id is not None]
    if to_insert:
        numbers = _numbers_in_order(to_insert, revised)
        ids = insert_rows_returning_ids(
            db,
            TherapySession.__table__,
            [
                {
                    "public_id": state.public_id,
                    "clinic_id": clinic_id,
                    "episode_id": state.episode.row_id,
                    "client_id": loaded.clients[item.client_id][0],
                    "clinician_id": loaded.clinicians[item.clinician_id],
                    "ehr_session_id": item.ehr_session_id,
                    "date": item.date,
                    "attendance": item.attendance.value,
                    "number": numbers.get(item.ehr_session_id),
                    "revision": state.revision,
                    "content_hash": digest,
                    "created_at": now,
                    "updated_at": now,
                    **session_totals.columns_for(content["ratings"]),
                }
                for item, content, digest, state in to_insert
            ],
        )
        for v, i in zip(to_insert, ids, strict=True):
            v[3].row_id = i
    for item, content, digest, state in revised:
        db.execute(
            update(TherapySession)
            .where(TherapySession.id == state.row_id)
            .values(
                clinician_id=loaded.clinicians[item.clinician_id],
                date=item.date,
                attendance=item.attendance.value,
                revision=state.revision,
                content_hash=digest,
                updated_at=now,
                **session_totals.columns_for(content["ratings"]),
            )
        )
    if revised:
        db.execute(delete(Rating).where(Rating.session_id.in_([v[3].row_id for v in revised])))
    # Episodes whose first session may have changed: a revision (its clinician or date), a new
    # episode given several sessions (its clinician came from the batch's first item for it,
    # not its earliest), or a session inserted before the episode's latest (a backfill out of
    # order). Appending in date order, the usual case, cannot change it and costs no statement.
    revised_states = {id(v[3]) for v in revised}
    # a new episode with one session (first contact, the usual single post) has that session's
    # clinician already: only one the batch gave several sessions can have started elsewhere
    per_new_episode: dict[int, int] = {}
    for v in to_insert:
        if v[3].episode.new:
            episode_key = id(v[3].episode)
            per_new_episode[episode_key] = per_new_episode.get(episode_key, 0) + 1
    moved = {
        state.episode.row_id
        for item, _content, _digest, state in (*revised, *to_insert)
        if not state.episode.explicit
        and (
            id(state) in revised_states
            or per_new_episode.get(id(state.episode), 0) > 1
            or (
                not state.episode.new
                and (state.episode.last_date is None or item.date < state.episode.last_date)
            )
        )
    }
    _follow_first_session_clinician(db, moved, now)

    # One revision row per accepted item: the full history stays retrievable.
    revision_rows = [
        {
            "session_id": w.state.row_id,
            "revision": w.revision,
            "content_hash": w.digest,
            "content": w.content,
            "recorded_at": now,
            "api_key_id": principal.api_key_id,
        }
        for w in plan.writes
    ]
    insert_rows(db, SessionRevision.__table__, revision_rows)

    rating_rows = [
        {
            "session_id": state.row_id,
            "clinic_id": clinic_id,
            "instrument": r["instrument"],
            "rater": r["rater"],
            "completeness": r["completeness"],
            "total": r["total"],
            "items": r["items"],
            "subscales": r["subscales"],
        }
        for _item, content, _digest, state in final_content.values()
        for r in content["ratings"]
    ]
    insert_rows(db, Rating.__table__, rating_rows)

    touched = {w.state.episode.row_id for w in plan.writes}
    return {i for i in touched if i is not None}
