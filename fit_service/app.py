"""``create_app``: the one place that wires settings, database, HTTP layer and CLI together.

Nothing happens at import time; tests build apps with their own :class:`Settings`.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid
from types import TracebackType
from typing import Any

from flask import Flask, Response, g, request
from flask_smorest import Api
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from fit_service.adapters.db import make_engine, make_session_factory
from fit_service.api import alerts, auth, clients, health, problems, reports, sessions
from fit_service.api.context import Wiring
from fit_service.api.schemas import ProblemOut
from fit_service.config import Settings
from fit_service.domain.errors import FitError
from fit_service.services.audit import AuditEntry, record_refusal
from fit_service.services.clinics import KeyCache

_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}\Z")  # \Z: "$" would allow a trailing "\n"
_CONTROL_IN_PATH = re.compile(r"[\x00-\x1f\x7f]")
#: A RecursionError while serving a JSON body nested deeper than this is blamed on the body.
#: Nothing this API takes nests more than a few levels; Python's parser gives up near 1,000.
_JSON_DEPTH_BLAMED = 100
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(rb"[^\[\]{}]+")
_FIRST_LINE_MAX = 300

log = logging.getLogger(__name__)


class FitFlask(Flask):
    """Flask, logging an unhandled error once and without what its text may quote."""

    def log_exception(
        self,
        exc_info: tuple[type, BaseException, TracebackType] | tuple[None, None, None],
    ) -> None:
        """The one log record of an unhandled error (the 500 handler, api/problems.py, does not
        log it again): the request id the 500 problem names, the route (its pattern: a path may
        hold a client id), the exception's type and the first line of its message
        (:func:`error_summary`: of a PostgreSQL error, its codes and names only), and the
        traceback's frames (file, line, function, source line; never locals). Not the whole
        exception text: a database error's later lines quote row values (PostgreSQL's
        ``DETAIL: Key (clinic_id, external_id)=(1, C-1)``, ``Failing row contains …``) and its
        statement, which ``hide_parameters`` does not hide - as the CLI does (cli._FitGroup)."""
        _, error, tb = exc_info
        if error is None:
            return
        log.error(
            "unhandled error in request %s (%s %s): %s\nTraceback (frames only):\n%s",
            g.get("request_id") or "-",
            request.method,
            request.url_rule or "(no route)",
            error_summary(error),
            "".join(traceback.format_tb(tb)).rstrip(),
        )


#: What a PostgreSQL error's diagnostics name that is never a value (psycopg ``Error.diag``).
_DIAG_NAMES = ("sqlstate", "constraint_name", "table_name", "column_name", "datatype_name")


def error_summary(error: BaseException) -> str:
    """``Type: first line of the message``. A database error: the driver's error and, from
    PostgreSQL, its SQLSTATE and the constraint, table, column and type it names - not its
    message, whose first line can quote a value too (``invalid input syntax for type uuid:
    "…"``), nor the SQL, the parameters or the DETAIL lines; from another driver (SQLite, whose
    messages name columns, not values), or psycopg's own errors without a SQLSTATE (connection
    refused, server gone), the first line."""
    source: BaseException = error
    name = type(error).__name__
    if isinstance(error, DBAPIError) and error.orig is not None:
        source = error.orig
        name = f"{name} ({type(source).__name__})"
        diag = getattr(source, "diag", None)
        if diag is not None and getattr(diag, "sqlstate", None):
            named = [f"{k} {getattr(diag, k)}" for k in _DIAG_NAMES if getattr(diag, k, None)]
            return f"{name}: {', '.join(named)}"
        # no SQLSTATE: the driver's own error (connection refused, server gone), whose first
        # line names the server, not data
    first = next(iter(str(source).strip().splitlines()), "")
    if len(first) > _FIRST_LINE_MAX:
        first = first[:_FIRST_LINE_MAX] + "…"
    return f"{name}: {first}" if first else name


class ProblemApi(Api):
    """flask-smorest's Api, with every HTTP error rendered as problem+json."""

    #: Documents the shared error responses (``default``, 422): ``None`` left them pointing at
    #: a schema named "None" that the document does not hold.
    ERROR_SCHEMA = ProblemOut

    def _register_responses(self) -> None:
        # Every error this API sends is application/problem+json (RFC 9457): document the
        # shared error responses so, not as flask-smorest's application/json.
        self.DEFAULT_RESPONSE_CONTENT_TYPE = "application/problem+json"
        try:
            super()._register_responses()
        finally:
            del self.DEFAULT_RESPONSE_CONTENT_TYPE  # back to the class's, for every other use

    def handle_http_exception(self, error: HTTPException) -> Response:
        body = problems.from_http_exception(error)
        _audit_refusal(body["status"], body["rule"])
        headers = {}
        if body["status"] == 405 and error.get_response().headers.get("Allow"):
            headers["Allow"] = error.get_response().headers["Allow"]
        return problems.problem_response(body, headers)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    if settings.is_sqlite:
        settings.instance_path.mkdir(parents=True, exist_ok=True)
    logging.getLogger("fit_service").setLevel(settings.log_level.upper())

    app = FitFlask(__name__, instance_path=str(settings.instance_path.resolve()))
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="fit-service",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Feedback-informed treatment measurement: session ratings "
                "in (ORS, SRS, WAI-SR by neutral item ids), risk alerts and reports out. "
                "Errors are application/problem+json naming the field and the rule.",
            },
            "components": {"securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
            "security": [{"apiKey": []}],
        },
    )
    engine = make_engine(settings.database_url)
    app.extensions["fit"] = Wiring(
        settings, engine, make_session_factory(engine), KeyCache(settings.key_cache_seconds)
    )

    api = ProblemApi(app)
    blueprints = (sessions.blp, clients.blp, alerts.blp, reports.blp)
    authenticated = {b.name for b in blueprints}
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    app.register_blueprint(health.blp)

    @app.before_request
    def _request_context() -> Any:
        supplied = request.headers.get("X-Request-Id", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        if _CONTROL_IN_PATH.search(request.path):
            # No record id contains one, and PostgreSQL cannot even compare text with NUL.
            body = problems.problem_dict(404, "no such resource", rule="not_found", field="path")
            _audit_refusal(body["status"], body["rule"])
            return problems.problem_response(body)
        if request.blueprint in authenticated:
            # The key first: a caller without a valid one gets the 401 whatever it sent. The
            # blueprint's own hooks then judge the role, then the body's type and size
            # (parsing.Blueprint), and only then is the body read.
            auth.authenticate_request()
        elif request.path.startswith("/v1/") and isinstance(
            request.routing_exception, NotFound | MethodNotAllowed
        ):
            _identify_key()
        return None

    @app.after_request
    def _request_id_header(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response

    @app.errorhandler(FitError)
    def _fit_error(error: FitError) -> Response:
        body = problems.from_fit_error(error)
        headers = {}
        if isinstance(error, auth.NotAuthenticated):
            body = problems.problem_dict(401, error.detail, body["errors"])
            headers["WWW-Authenticate"] = 'Bearer realm="fit-service"'
        _audit_refusal(body["status"], body["rule"])
        return problems.problem_response(body, headers)

    @app.errorhandler(RecursionError)
    @app.errorhandler(ValueError)
    def _unreadable_json(error: Exception) -> Response:
        # webargs maps a JSONDecodeError to 400 but lets the parser's other failures through:
        # a body nested thousands of levels deep (RecursionError) or an integer of more than
        # 4,300 digits (ValueError). They are the body's fault, so a 400, not a 500; anything
        # else goes on to the 500 it always was.
        reason = _unreadable_json_body(error)
        if reason is None:
            raise error
        body = problems.malformed_json(reason)
        _audit_refusal(body["status"], body["rule"])
        return problems.problem_response(body)

    from fit_service import cli  # noqa: PLC0415 - CLI imports the app's pieces, not vice versa

    cli.register(app)
    return app


def _identify_key() -> None:
    """Who sent a request to no route (404) or no method of a route (405) under /v1, for its
    refusal's audit row. Such a request is refused alike with any key or none, so the key is
    only looked up (as the authenticated routes' hook does), never a reason to answer
    otherwise: a valid key's actor and clinic go into the row; a missing, unknown or revoked
    key leaves the request anonymous and the 404/405 as it was."""
    try:
        auth.authenticate_request()
    except auth.NotAuthenticated:
        return
    except Exception as exc:  # noqa: BLE001 - any failure: the 404/405 goes out anyway
        # The refusal is answered whatever the key lookup met (the audit row, in a
        # transaction of its own, says whatever it can); logged as unhandled errors are.
        log.error("could not identify the key of a request to no route: %s", error_summary(exc))


def _unreadable_json_body(error: Exception) -> str | None:
    """Why the request's JSON body cannot be read, when that is what ``error`` came from;
    ``None`` when the body is not to blame. Runs on the error path only: parsing the body
    again there costs nothing on the requests that succeed."""
    if request.mimetype != "application/json" or not request.path.startswith("/v1/"):
        return None
    data = request.get_data(cache=True)
    if isinstance(error, RecursionError):
        depth = _json_nesting_depth(data)
        if depth <= _JSON_DEPTH_BLAMED:
            return None
        return f"it nests {depth} levels deep, too deep to read"
    try:
        json.loads(data.decode())  # as webargs reads it: UTF-8
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # webargs answers these itself: not where this error came from
    except RecursionError:
        return "it nests too deep to read"
    except ValueError:
        # the one other ValueError the parser raises: an integer past Python's digit limit
        return "a number in it has too many digits to read"
    return None


def _json_nesting_depth(data: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings ignored)."""
    brackets = _NOT_A_BRACKET.sub(b"", _JSON_STRING.sub(b"", data))
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _audit_refusal(status: int, rule: str) -> None:
    """Refused requests to /v1 are audited too (who tried what, and why it was refused)."""
    if not request.path.startswith("/v1/") or request.path.endswith("openapi.json"):
        return
    if g.get("refusal_audited"):
        return  # the use case already recorded it inside its own transaction
    from fit_service.api.context import wiring  # noqa: PLC0415

    record_id = next(iter((request.view_args or {}).values()), None)
    action = f"{request.method} {request.url_rule or request.path}"
    outcome = {401: "unauthenticated", 403: "forbidden", 404: "not_found"}.get(status, "rejected")
    try:
        record_refusal(
            wiring().session_factory,
            g.get("principal"),
            AuditEntry(
                _escape_controls(action),
                None,
                _escape_controls(str(record_id)) if record_id is not None else None,
                outcome,
                status,
            ),
            g.get("request_id"),
        )
    except Exception:
        logging.getLogger(__name__).exception("could not audit a refused request")


def _escape_controls(value: str) -> str:
    """A refused path's control characters written as ``\\xNN`` for the audit row: PostgreSQL
    cannot store a NUL in text, and a raw one would lose the refusal's row."""
    return _CONTROL_IN_PATH.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
