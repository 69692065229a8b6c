"""marshmallow schemas at the HTTP boundary. The same schemas validate requests and generate
the OpenAPI document (flask-smorest), so the spec cannot drift from the code.

Item *values* are accepted raw here and checked by the domain (:mod:`fit_service.domain.
scoring`), which knows each instrument's range and resolution and rejects "7", NaN and true.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, pre_load, validate
from marshmallow.types import StrSequenceOrSet, UnknownOption

from fit_service.api.parsing import repeated_names, repeated_parameters
from fit_service.domain.instruments import REGISTRY, AgeBand, Rater
from fit_service.services.inputs import Attendance, EndingReason, RatingInput, SessionInput

# Control characters, and lone UTF-16 surrogates (JSON "\ud800" decodes to one; no database
# driver can encode it, so it must be refused here, not fail as a 500 at the insert).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


CONTROL_CHARACTER_MESSAGE = "Control characters and unpaired surrogates are not allowed."


def no_control_chars(value: str) -> None:
    """Refuse C0 control characters (NUL above all: PostgreSQL cannot store it in text).
    Tabs and line breaks stay allowed, for free-text notes."""
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValidationError(CONTROL_CHARACTER_MESSAGE)


# An identifier (an EHR session id, an instrument, an item id) is one line of text: besides
# the above, no tab or line break of any kind (CR, LF, NEL U+0085, LINE and PARAGRAPH
# SEPARATOR U+2028/9) and no other C1 control. "S\n1" stored as a session id prints as two
# lines in every list, log and CSV, and reads as another id.
_IDENTIFIER_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def no_control_chars_in_identifier(value: str) -> None:
    """Refuse every control character, line break and unpaired surrogate in an identifier."""
    if isinstance(value, str) and _IDENTIFIER_CONTROL.search(value):
        raise ValidationError(CONTROL_CHARACTER_MESSAGE)


def no_control_chars_in_keys(value: Mapping[str, Any]) -> None:
    """The identifier rule for a mapping's keys (rating item ids): a key is echoed in errors
    and kept in stored answers, so a NUL or a lone surrogate in one must not get further."""
    if any(_IDENTIFIER_CONTROL.search(key) for key in value if isinstance(key, str)):
        raise ValidationError(CONTROL_CHARACTER_MESSAGE)


# \Z, not $: "$" also matches before a trailing newline, and "C-1\n" would be a second client.
_EXTERNAL_ID_PATTERN = re.compile(r"[A-Za-z0-9._:\-]+\Z")
_EXTERNAL_ID_MESSAGE = "letters, digits and . _ : - only"
EXTERNAL_ID = validate.And(
    validate.Length(min=1, max=64),
    validate.Regexp(_EXTERNAL_ID_PATTERN, error=_EXTERNAL_ID_MESSAGE),
)


# An EHR session id may hold any printable text, but not only blanks (it names no session), nor
# blanks around it (" S-1" would be a second session beside "S-1", and no EHR means that).
_EHR_SESSION_ID_PATTERN = re.compile(r"\S(?:.*\S)?\Z", re.DOTALL)
# A blank or padded id ("\t", "S-1\n") breaks both rules; the first, "invalid", names it.
EHR_SESSION_ID = validate.And(
    validate.Length(min=1, max=128),
    validate.Regexp(
        _EHR_SESSION_ID_PATTERN, error="not blank, and no whitespace at its start or end"
    ),
    no_control_chars_in_identifier,
)


#: What the OpenAPI document says of EXTERNAL_ID and EHR_SESSION_ID fields, as field metadata
#: (documentation only: the validators above decide). The generator cannot see inside
#: validate.And, and ``\Z`` is no JSON Schema pattern; tests/api/test_service_surface.py
#: holds these to the validators.
EXTERNAL_ID_DOC = {"minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._:-]+$"}
EHR_SESSION_ID_DOC = {
    "minLength": 1,
    "maxLength": 128,
    "description": "The EHR's id of the session: printable text, not blank, without "
    "whitespace at its start or end.",
}


# RFC 3339 full-date, ASCII digits. Python's date.fromisoformat (which fields.Date uses) also
# reads the basic format (20261102) and ISO week dates: "2026-W45" is a whole week, read as
# its Monday, a day nobody sent.
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


class FullDate(fields.Date):
    """A calendar date as YYYY-MM-DD, and nothing else ISO 8601 allows."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if not isinstance(value, str) or not _FULL_DATE.match(value):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON true/false only: "yes", 1 and "true" are not booleans in a clinical record."""

    truthy: set[object] = {True}
    falsy: set[object] = {False}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        # 1 == True in Python, so the sets above alone would let 1, 0, 1.0 and 0.0 through
        if type(value) is not bool:
            raise self.make_error("invalid", input=value)
        return value


class ItemScores(fields.Dict):
    """Item scores by item id. A score's own error (null) names the item,
    ``ratings[0].items.individual``, where marshmallow names the mapping's inner parts
    (``...individual.value``, ``...individual.key``), which no payload has."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as exc:
            if not isinstance(exc.messages, dict):
                raise
            by_item = {
                key: [message for part in ("key", "value") for message in parts.get(part, [])]
                if isinstance(parts, dict)
                else parts
                for key, parts in exc.messages.items()
            }
            raise ValidationError(by_item, valid_data=exc.valid_data) from None


class _Base(Schema):
    class Meta:
        unknown = RAISE
        ordered = True

    @pre_load
    def _no_repeated_names(self, data: Any, **_: Any) -> Any:
        errors = repeated_names(data) or repeated_parameters(data, self.fields)
        if errors:
            raise ValidationError(errors)
        return data


class RatingIn(_Base):
    instrument = fields.String(
        required=True,
        validate=[validate.Length(max=40), no_control_chars_in_identifier],
        metadata={"description": "One of: " + ", ".join(REGISTRY), "enum": list(REGISTRY)},
    )
    rater = fields.String(
        load_default=None,
        validate=validate.OneOf([r.value for r in Rater]),
        metadata={
            "description": "Who filled the form in; defaults to its own rater (the client; the "
            "therapist for wai_sr_therapist). srs, csrs and wai_sr_client: client only; "
            "wai_sr_therapist: therapist only; ors and cors: the client, or a parent, caregiver "
            "or teacher of a child or adolescent (stored and shown; the outcome, risk alerts and "
            "reports read the client's own)."
        },
    )
    items = ItemScores(
        keys=fields.String(),
        values=fields.Raw(allow_none=False),
        load_default=None,
        validate=no_control_chars_in_keys,
        metadata={
            "description": "Item scores by neutral item id (ORS: individual, interpersonal, "
            "social, overall; SRS: relationship, goals, approach, overall; WAI-SR: "
            "item01..item12). All items, or none with a total, or not_completed.",
        },
    )
    total = fields.Raw(
        load_default=None,
        metadata={"type": "number", "description": "Total; required when items are unknown."},
    )
    not_completed = StrictBoolean(
        load_default=False, metadata={"description": "The measure was offered but not filled in."}
    )


class SessionIn(_Base):
    ehr_session_id = fields.String(
        required=True, validate=EHR_SESSION_ID, metadata={**EHR_SESSION_ID_DOC}
    )
    client_id = fields.String(
        required=True,
        validate=EXTERNAL_ID,
        metadata={
            **EXTERNAL_ID_DOC,
            "description": "The EHR's pseudonymous client id (never a name).",
        },
    )
    client_age_band = fields.String(
        load_default=None,
        validate=validate.OneOf([a.value for a in AgeBand]),
        metadata={
            "description": "Required the first time a client is seen. The band sent with the "
            "client's latest-dated session is theirs; an older session's band judges only it."
        },
    )
    clinician_id = fields.String(required=True, validate=EXTERNAL_ID, metadata={**EXTERNAL_ID_DOC})
    episode_id = fields.UUID(
        load_default=None,
        metadata={"description": "Defaults to the client's open episode (opened if none)."},
    )
    date = FullDate(required=True, metadata={"description": "Session date (clinic-local)."})
    attendance = fields.Enum(Attendance, by_value=True, load_default=Attendance.ATTENDED)
    ratings = fields.List(fields.Nested(RatingIn), load_default=list)

    def load(
        self,
        data: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        many: bool | None = None,
        partial: bool | StrSequenceOrSet | None = None,
        unknown: UnknownOption | None = None,
    ) -> Any:
        # Backfills load thousands of sessions per request, and the field-by-field load was
        # a quarter of a batch's time. A well-formed session takes the shortcut; anything
        # else (including every invalid one) goes through the schema, which words the errors.
        plain = not (many or partial or unknown or self.many or self.partial)
        if plain and self.only is None and not self.exclude:
            loaded = fast_session(data)
            if loaded is not None:
                return loaded
        return super().load(data, many=many, partial=partial, unknown=unknown)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> SessionInput:
        return SessionInput(
            ehr_session_id=data["ehr_session_id"],
            client_id=data["client_id"],
            clinician_id=data["clinician_id"],
            date=data["date"],
            attendance=data["attendance"],
            client_age_band=data["client_age_band"],
            episode_id=data["episode_id"],
            ratings=tuple(RatingInput(**r) for r in data["ratings"]),
        )


_SESSION_KEYS = frozenset(SessionIn._declared_fields)
_RATING_KEYS = frozenset(RatingIn._declared_fields)
_AGE_BANDS = frozenset(a.value for a in AgeBand)
_RATERS = frozenset(r.value for r in Rater)
_ATTENDANCE = {a.value: a for a in Attendance}


def _external_id(value: Any) -> bool:
    return type(value) is str and len(value) <= 64 and _EXTERNAL_ID_PATTERN.match(value) is not None


def fast_session(raw: Any) -> SessionInput | None:
    """What ``SessionIn().load(raw)`` returns, for a session the schema surely accepts; None
    when in any doubt (the caller then runs the schema). It accepts a subset of what the
    schema accepts and returns the same value for it (tests/api/test_session_fast_load.py
    checks both against the schema)."""
    if type(raw) is not dict or not raw.keys() <= _SESSION_KEYS:
        return None
    ehr_id = raw.get("ehr_session_id")
    if type(ehr_id) is not str or not 1 <= len(ehr_id) <= 128 or _IDENTIFIER_CONTROL.search(ehr_id):
        return None
    if not _EHR_SESSION_ID_PATTERN.match(ehr_id):
        return None
    client_id, clinician_id = raw.get("client_id"), raw.get("clinician_id")
    if not (_external_id(client_id) and _external_id(clinician_id)):
        return None
    band = raw.get("client_age_band")
    if band is not None and (type(band) is not str or band not in _AGE_BANDS):
        return None
    episode_id = raw.get("episode_id")
    day = raw.get("date")
    if type(day) is not str or (episode_id is not None and type(episode_id) is not str):
        return None
    if not _FULL_DATE.match(day):
        return None
    try:
        day = date.fromisoformat(day)  # what fields.Date uses
        episode_id = uuid.UUID(episode_id) if episode_id is not None else None
    except ValueError:
        return None
    attendance = raw.get("attendance", Attendance.ATTENDED.value)
    if type(attendance) is not str or attendance not in _ATTENDANCE:
        return None
    ratings = raw.get("ratings", [])
    if type(ratings) is not list:
        return None
    loaded: list[RatingInput] = []
    for rating in ratings:
        one = _fast_rating(rating)
        if one is None:
            return None
        loaded.append(one)
    return SessionInput(
        ehr_session_id=ehr_id,
        # str(): the same objects (checked above to be str), typed as such for mypy
        client_id=str(client_id),
        clinician_id=str(clinician_id),
        date=day,
        attendance=_ATTENDANCE[attendance],
        client_age_band=band,
        episode_id=episode_id,
        ratings=tuple(loaded),
    )


def _fast_rating(raw: Any) -> RatingInput | None:
    if type(raw) is not dict or not raw.keys() <= _RATING_KEYS:
        return None
    instrument = raw.get("instrument")
    if (
        type(instrument) is not str
        or len(instrument) > 40
        or _IDENTIFIER_CONTROL.search(instrument)
    ):
        return None
    rater = raw.get("rater")
    if rater is not None and (type(rater) is not str or rater not in _RATERS):
        return None
    items = raw.get("items")
    if items is not None:
        if type(items) is not dict or None in items.values():
            return None
        if not all(type(k) is str and not _IDENTIFIER_CONTROL.search(k) for k in items):
            return None
        items = dict(items)  # the schema's Dict field returns a copy
    not_completed = raw.get("not_completed", False)
    if not_completed is not True and not_completed is not False:
        return None
    return RatingInput(instrument, rater, items, raw.get("total"), not_completed)


class BatchIn(_Base):
    sessions = fields.List(
        # null items too: each is refused on its own (sessions._load_items), not the batch
        fields.Raw(allow_none=True),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "Sessions as for POST /v1/sessions; each validated alone."},
    )

    @pre_load
    def _no_repeated_names(self, data: Any, **_: Any) -> Any:
        # Only the batch's own names: a repeated name inside a session rejects that session
        # alone (its own load refuses it), as any other bad item does.
        errors = repeated_names(data, deep=False)
        if errors:
            raise ValidationError(errors)
        return data


class RatingOut(Schema):
    instrument = fields.String()
    rater = fields.String()
    completeness = fields.String(metadata={"enum": ["items", "total_only", "not_completed"]})
    total = fields.Float(allow_none=True)
    items = fields.Dict(keys=fields.String(), values=fields.Float(), allow_none=True)
    subscales = fields.Dict(keys=fields.String(), values=fields.Float(), allow_none=True)
    change_since_first = fields.Float(allow_none=True)


class TrajectoryAssessmentOut(Schema):
    """Where the latest outcome score stands against the expected path (services/outcomes)."""

    on_track = fields.Boolean(allow_none=True)
    model = fields.String()
    reason = fields.String()
    guidance = fields.String(allow_none=True)
    expected = fields.Float(allow_none=True)
    band_low = fields.Float(allow_none=True)
    band_high = fields.Float(allow_none=True)


class OutcomeOut(Schema):
    """The episode's outcome so far (null before its first outcome score)."""

    instrument = fields.String(metadata={"description": "ors or cors"})
    intake = fields.Float(metadata={"description": "The episode's first outcome score."})
    intake_session = fields.Integer()
    latest = fields.Float()
    latest_session = fields.Integer()
    change = fields.Float(metadata={"description": "latest - intake"})
    scores = fields.Integer(metadata={"description": "Outcome scores in the episode."})
    clinical_cutoff = fields.Float()
    reliable_change_points = fields.Float()
    clinical_at_intake = fields.Boolean()
    clinical_now = fields.Boolean()
    status = fields.String(
        allow_none=True,
        metadata={
            "enum": ["recovered", "improved", "unchanged", "deteriorated", "harmed", None],
            "description": "Jacobson & Truax category; null with one score.",
        },
    )
    status_note = fields.String()
    trajectory = fields.Nested(TrajectoryAssessmentOut)


class EpisodeSummaryOut(Schema):
    id = fields.String()
    client_id = fields.String()
    clinician_id = fields.String(allow_none=True)
    status = fields.String()
    opened_on = fields.String()
    closed_on = fields.String(allow_none=True)
    ending_reason = fields.String(allow_none=True)
    sessions_attended = fields.Integer()
    outcome = fields.Nested(OutcomeOut, allow_none=True)
    risk = fields.Dict(
        allow_none=True,
        metadata={"description": '{"level": "low|elevated|high", "reasons": [...]}'},
    )


class EpisodeSessionOut(Schema):
    """A session as listed inside its episode."""

    id = fields.String()
    ehr_session_id = fields.String()
    client_id = fields.String()
    clinician_id = fields.String()
    episode_id = fields.String()
    date = fields.String()
    number = fields.Integer(allow_none=True)
    attendance = fields.String()
    revision = fields.Integer()
    updated_at = fields.String()
    ratings = fields.List(fields.Nested(RatingOut))


class SessionOut(EpisodeSessionOut):
    """A session with its episode's current status."""

    episode = fields.Nested(EpisodeSummaryOut)


class EpisodeOut(EpisodeSummaryOut):
    sessions = fields.List(fields.Nested(EpisodeSessionOut))


class ClientOut(Schema):
    client_id = fields.String()
    age_band = fields.String()
    first_seen = fields.String(
        metadata={
            "description": "When the service first received data for this client (UTC), "
            "not the date of their first session (see their episodes for that)."
        }
    )
    episodes = fields.List(fields.Nested(EpisodeOut))


class ProblemOut(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    rule = fields.String()
    field = fields.String(allow_none=True)
    errors = fields.List(fields.Dict())
    request_id = fields.String()


class BatchResultOut(Schema):
    index = fields.Integer(
        metadata={"description": "The item's place in the request's sessions (from 0)."}
    )
    status = fields.Integer()
    outcome = fields.String(metadata={"enum": ["created", "revised", "unchanged", "rejected"]})
    session_id = fields.String(allow_none=True)
    revision = fields.Integer(allow_none=True)
    problem = fields.Nested(
        ProblemOut,
        allow_none=True,
        metadata={
            "description": "Why the item was rejected, as POST /v1/sessions answers for that "
            "session alone: every field path is relative to the item "
            "(ratings[0].items.individual, not sessions[3].ratings[0]...), and field is null "
            "when the item as a whole is not a session object (null, a number, a string, a "
            "list); index says which item it is."
        },
    )


class BatchOut(Schema):
    results = fields.List(fields.Nested(BatchResultOut))
    created = fields.Integer()
    revised = fields.Integer()
    unchanged = fields.Integer()
    rejected = fields.Integer()


class PageArgs(_Base):
    cursor = fields.String(load_default=None, validate=[validate.Length(max=200), no_control_chars])
    limit = fields.Integer(load_default=None, validate=validate.Range(min=1))


def client_filter(what: str) -> fields.String:
    """The optional ``client_id`` filter of a list (one EHR client id, the sessions' own rule
    and documented pattern), for a list of ``what``."""
    return fields.String(
        load_default=None,
        validate=EXTERNAL_ID,
        metadata={**EXTERNAL_ID_DOC, "description": f"Only this client's {what} (one id)."},
    )


class SessionPageArgs(PageArgs):
    client_id = client_filter("sessions")


class ClientListItem(Schema):
    client_id = fields.String()
    age_band = fields.String()
    first_seen = fields.String(
        metadata={
            "description": "When the service first received data for this client (UTC), "
            "not the date of their first session (see their episodes for that)."
        }
    )


class ClientPage(Schema):
    items = fields.List(fields.Nested(ClientListItem))
    next_cursor = fields.String(allow_none=True)


class ClinicianListItem(Schema):
    clinician_id = fields.String()


class ClinicianPage(Schema):
    items = fields.List(fields.Nested(ClinicianListItem))
    next_cursor = fields.String(allow_none=True)


class SessionListItem(Schema):
    id = fields.String()
    ehr_session_id = fields.String()
    client_id = fields.String()
    episode_id = fields.String()
    date = fields.String()
    number = fields.Integer(allow_none=True)
    attendance = fields.String()
    revision = fields.Integer()


class SessionPage(Schema):
    items = fields.List(fields.Nested(SessionListItem))
    next_cursor = fields.String(allow_none=True)


class RevisionOut(Schema):
    revision = fields.Integer()
    recorded_at = fields.String()
    content = fields.Dict()


class EpisodeOpenIn(_Base):
    # The ids' rule in the OpenAPI document as well as in the validator (as on the sessions).
    client_id = fields.String(required=True, validate=EXTERNAL_ID, metadata={**EXTERNAL_ID_DOC})
    opened_on = FullDate(required=True)
    clinician_id = fields.String(
        load_default=None, validate=EXTERNAL_ID, metadata={**EXTERNAL_ID_DOC}
    )
    client_age_band = fields.String(
        load_default=None, validate=validate.OneOf([a.value for a in AgeBand])
    )


class EpisodeCloseIn(_Base):
    ending_reason = fields.Enum(EndingReason, by_value=True, required=True)
    closed_on = FullDate(load_default=None)
    note = fields.String(load_default=None, validate=[validate.Length(max=2000), no_control_chars])


class TrajectoryArgs(_Base):
    horizon = fields.Integer(load_default=20, validate=validate.Range(min=2, max=100))


class TrajectoryPoint(Schema):
    session = fields.Integer()
    score = fields.Float()
    on_track = fields.Boolean()
    expected = fields.Float(allow_none=True)
    band_low = fields.Float()
    band_high = fields.Float()
    percentile = fields.Float(allow_none=True)
    reason = fields.String()


class ExpectedPathOut(Schema):
    sessions = fields.List(fields.Integer())
    expected = fields.List(fields.Float(), allow_none=True)
    low = fields.List(fields.Float())
    high = fields.List(fields.Float())


class TrajectoryOut(Schema):
    episode_id = fields.String()
    instrument = fields.String()
    model = fields.String(metadata={"description": "Which model judged the scores."})
    intake = fields.Float(allow_none=True)
    clinical_cutoff = fields.Float()
    points = fields.List(fields.Nested(TrajectoryPoint))
    expected_path = fields.Nested(ExpectedPathOut, allow_none=True)
    outcome = fields.Dict(allow_none=True)
