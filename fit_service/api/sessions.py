"""/v1/sessions: record one session, a backfill batch, and read sessions back."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

from flask import g, request
from flask.views import MethodView
from marshmallow import ValidationError

from fit_service.api import docs, problems
from fit_service.api.auth import requires
from fit_service.api.context import principal, run, wiring
from fit_service.api.parsing import Blueprint, canonical_json
from fit_service.api.schemas import (
    BatchIn,
    BatchOut,
    RevisionOut,
    SessionIn,
    SessionOut,
    SessionPage,
    SessionPageArgs,
)
from fit_service.domain.errors import FitError, PayloadTooLarge
from fit_service.services import alerting, reads
from fit_service.services.inputs import SessionInput
from fit_service.services.principals import Permission
from fit_service.services.recording import (
    IDEMPOTENCY_TTL,
    ItemResult,
    RefusedItem,
    record_sessions,
)

blp = Blueprint("sessions", __name__, url_prefix="/v1", description="Therapy sessions and ratings")

_STATUS = {"created": 201, "revised": 200, "unchanged": 200}


_MAX_KEY = 255

#: The header as the OpenAPI document declares it on both POST routes (the rule _idempotency
#: checks, and what a key means).
_IDEMPOTENCY_KEY_DOC = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": _MAX_KEY, "pattern": "^[ -~]+$"},
    "description": f"Optional: makes retries safe. 1-{_MAX_KEY} printable ASCII characters "
    "(else 422 idempotency_key_format); a new key per request, the same key on its retries. "
    f"For {IDEMPOTENCY_TTL // timedelta(hours=1)} hours, a request under a key this clinic "
    "used (on either session route) with the same JSON (whitespace and name order aside) is "
    "answered with the first answer's outcomes, session ids and revision numbers (each "
    "session's body as stored now) and the header Idempotent-Replayed: true; with other JSON "
    "it is a 422 idempotency_key_reused. A request refused as a whole (no session accepted) "
    "is not remembered: its corrected retry can keep the key.",
}


#: The header a replayed answer carries, declared on each answer a replay can be (the first
#: answer's status: 201 or 200 from POST /v1/sessions, 200 from the batch).
_REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "'true' when this is the answer to an earlier request under the same "
        "Idempotency-Key and JSON, replayed (nothing was carried out again); absent on an "
        "answer to a request carried out now.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _idempotency() -> tuple[str, str] | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= _MAX_KEY or not key.isascii() or not key.isprintable():
        raise FitError(
            f"Idempotency-Key must be 1-{_MAX_KEY} printable ASCII characters",
            field="Idempotency-Key",
            rule="idempotency_key_format",
        )
    # The fingerprint is of the JSON, not of its bytes: an EHR that re-serialises the same
    # request (other whitespace or name order) on a retry is sending the same request.
    return key, hashlib.sha256(canonical_json(request.get_data(cache=True))).hexdigest()


def _replay_headers(replayed: bool) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if replayed else {}


@blp.route("/sessions")
class Sessions(MethodView):
    @requires(Permission.SESSIONS_WRITE)
    @blp.arguments(SessionIn)
    @blp.response(
        201, SessionOut, description="A new session was stored.", headers=_REPLAYED_HEADER
    )
    @blp.alt_response(
        200,
        schema=SessionOut,
        description="Identical re-send (nothing stored) or a new revision.",
        headers=_REPLAYED_HEADER,
    )
    @docs.errors(
        blp,
        *docs.BODY,
        404,
        409,
        described={
            422: "Invalid session or rating, or an Idempotency-Key reused with another body."
        },
    )
    @blp.doc(parameters=[_IDEMPOTENCY_KEY_DOC])
    def post(self, item: SessionInput) -> Any:
        """Record one session with its ratings.

        Re-sending the same ``ehr_session_id`` with identical content stores nothing and
        answers 200 with the same body; changed content becomes a new revision (earlier
        revisions stay retrievable). An ``Idempotency-Key`` header is honoured too."""
        results, replayed = record_sessions(
            wiring().uow,
            principal(),
            [item],
            idempotency=_idempotency(),
            on_written=alerting.assess_after_write,
        )
        result = results[0]
        if result.error is not None:
            g.refusal_audited = True
            raise result.error
        return result.view, _STATUS[result.outcome], _replay_headers(replayed)

    @blp.arguments(SessionPageArgs, location="query")
    @blp.response(200, SessionPage)
    @docs.errors(blp, *docs.QUERY)
    def get(self, args: dict[str, Any]) -> Any:
        """List sessions (optionally one client's: an unknown client has none), in the order
        they were first recorded (a backfilled session comes after those recorded before it,
        whatever its date), with cursor pagination."""
        page = run(reads.list_sessions, args["cursor"], _limit(args), args["client_id"])
        return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/sessions/batch")
class SessionBatch(MethodView):
    @requires(Permission.SESSIONS_WRITE)
    @blp.arguments(BatchIn)
    @blp.response(200, BatchOut, headers=_REPLAYED_HEADER)
    @docs.errors(
        blp,
        *docs.BODY,
        409,
        described={
            413: "The body, or the number of sessions, is larger than the service takes.",
            422: "The batch is not a list of objects, or an Idempotency-Key was reused with "
            "another body (a bad item is reported in its result, not here).",
        },
    )
    @blp.doc(parameters=[_IDEMPOTENCY_KEY_DOC])
    def post(self, body: dict[str, Any]) -> Any:
        """Record many sessions (backfills). One result per item, in input order; a bad item
        is reported and does not reject the good ones. A rejected item's problem is the one
        POST /v1/sessions answers for that session alone: its field paths are relative to
        the item (null for the item as a whole), and the result's index places the item."""
        raw = body["sessions"]
        limit = wiring().settings.max_batch_items
        if len(raw) > limit:
            raise PayloadTooLarge(
                f"at most {limit} sessions per batch; got {len(raw)}",
                field="sessions",
                rule="batch_too_large",
            )
        valid, invalid, refused = _load_items(raw)
        results, replayed = record_sessions(
            wiring().uow,
            principal(),
            [item for _, item in valid],
            idempotency=_idempotency(),
            detailed=False,
            on_written=alerting.assess_after_write,
            refused=refused,
        )
        merged: list[dict[str, Any]] = [{}] * len(raw)
        for index, error_body in invalid.items():
            merged[index] = {
                "index": index,
                "status": error_body["status"],
                "outcome": "rejected",
                "session_id": None,
                "revision": None,
                "problem": error_body,
            }
        for (index, _), result in zip(valid, results, strict=True):
            merged[index] = _batch_item(index, result)
        counts = {
            k: sum(1 for m in merged if m["outcome"] == k)
            for k in ("created", "revised", "unchanged", "rejected")
        }
        return {"results": merged, **counts}, 200, _replay_headers(replayed)


def _batch_item(index: int, result: ItemResult) -> dict[str, Any]:
    problem = problems.from_fit_error(result.error) if result.error else None
    return {
        "index": index,
        "status": problem["status"] if problem else _STATUS[result.outcome],
        "outcome": result.outcome,
        "session_id": str(result.session_id) if result.session_id else None,
        "revision": result.revision,
        "problem": problem,
    }


def _load_items(
    raw: list[Any],
) -> tuple[list[tuple[int, SessionInput]], dict[int, dict], list[RefusedItem]]:
    """Validate each batch item on its own, so one bad item cannot sink the batch.

    Returns the loaded items with their indexes, the problem body of each refused one, and
    what the audit trail records of the refused ones (they never reach the domain, which
    audits the rest)."""
    schema = SessionIn()
    valid: list[tuple[int, SessionInput]] = []
    invalid: dict[int, dict[str, Any]] = {}
    refused: list[RefusedItem] = []
    for index, item in enumerate(raw):
        try:
            if item is None:
                # marshmallow would word it "Invalid input type."; say what it is instead
                raise ValidationError(_NULL_ITEM)
            valid.append((index, schema.load(item)))
        except ValidationError as exc:
            # Fields are named within the item, as POST /v1/sessions names them for the
            # session alone; the item as a whole (null, a number, a string, a list) is field
            # null, as a whole body that is no object is there. The result's index places it.
            errors = list(problems.flatten_messages(exc.messages))
            invalid[index] = problems.problem_dict(422, problems.joined_detail(errors), errors)
            refused.append(
                RefusedItem(_refused_record_id(index, item, exc), invalid[index]["status"])
            )
    return valid, invalid, refused


_NULL_ITEM = "Field may not be null."


def _refused_record_id(index: int, item: Any, exc: ValidationError) -> str:
    """What names a schema-refused item in the audit trail: its EHR session id when that
    field itself passed validation (a refused id may hold characters no column can store),
    else its place in the batch. Never anything else of the item: no scores in the audit."""
    ehr_id = item.get("ehr_session_id") if isinstance(item, dict) else None
    messages = exc.messages if isinstance(exc.messages, dict) else {}
    if isinstance(ehr_id, str) and "ehr_session_id" not in messages:
        return ehr_id
    return f"sessions[{index}]"


def _limit(args: dict[str, Any]) -> int:
    settings = wiring().settings
    return min(args.get("limit") or settings.page_size, settings.max_page_size)


@blp.route("/sessions/<uuid:session_id>")
class SessionById(MethodView):
    @blp.response(200, SessionOut)
    @docs.errors(blp, *docs.AUTH, 404)
    def get(self, session_id: uuid.UUID) -> Any:
        """One session with its scores and its episode's current status."""
        return run(reads.get_session, session_id)


@blp.route("/sessions/<uuid:session_id>/revisions")
class SessionRevisions(MethodView):
    @blp.response(200, RevisionOut(many=True))
    @docs.errors(blp, *docs.AUTH, 404)
    def get(self, session_id: uuid.UUID) -> Any:
        """Every revision the EHR sent for this session, oldest first."""
        return run(reads.session_revisions, session_id)
