"""How requests are read, for every blueprint: JSON with repeated names caught, query strings
with unknown and repeated parameters refused, and a body's JSON written canonically (the
Idempotency-Key's fingerprint).

``json.loads`` keeps the last of two equal names in an object silently, so
``{"individual": 40, "individual": 4}`` would be stored as 4 and a body with two
``ending_reason`` names would close an episode with either. Which one the sender meant is
unknown, so such a body is refused (422 ``duplicate_key`` naming the name's path): the parser
marks objects that repeated a name, and the schemas refuse marked objects before loading.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import flask
import flask_smorest
from marshmallow import RAISE
from webargs import core
from webargs.fields import DelimitedList
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge

from fit_service.api import auth
from fit_service.domain.errors import FitError

DUPLICATE_KEY_MESSAGE = "This name appears more than once in its JSON object."


class _JsonObject(dict[str, Any]):
    """A JSON object whose text repeated a name (``repeated``: those names)."""

    __slots__ = ("repeated",)
    repeated: tuple[str, ...]


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj  # a plain dict: the fast load path (schemas.fast_session) takes it
    seen: set[str] = set()
    repeated = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    marked = _JsonObject(obj)
    marked.repeated = tuple(dict.fromkeys(repeated))
    return marked


#: A query parameter named twice (``status=open&status=acknowledged``) was read as its first
#: value only, silently; which one was meant is unknown, so it is refused, as a JSON name twice.
REPEATED_QUERY_MESSAGE = "Name this parameter once."


def _list_hint(name: str, field: DelimitedList) -> str:
    """How a parameter that takes a list takes several values, with an example of its own
    (``status=open,acknowledged``): said only of such parameters, since ``limit=1,2`` or
    ``client_id=C-1,C-2`` is no list (the one is not a number, the other no client)."""
    enum = getattr(field.inner, "enum", None)
    if enum is not None:
        by_value = getattr(field.inner, "by_value", False)
        values = [str(m.value if by_value else m.name) for m in enum][:2]
    else:
        values = ["a", "b"]
    return f"A list of values goes in one parameter: {name}={field.delimiter.join(values)}."


def repeated_parameters(data: Any, fields: Mapping[str, Any]) -> dict[str, list[str]]:
    """marshmallow-style messages naming each of ``fields`` (a schema's, by name) given more
    than once in a query string (``data``: webargs' proxy over ``request.args``); empty for a
    JSON body. A parameter that takes a list also gets the hint how to send several values."""
    args = getattr(data, "data", data)
    getlist = getattr(args, "getlist", None)
    if getlist is None:
        return {}
    errors: dict[str, list[str]] = {}
    for name, field in fields.items():
        if len(getlist(name)) > 1:
            message = REPEATED_QUERY_MESSAGE
            if isinstance(field, DelimitedList):
                # One message, so the error names one rule (api/problems reads it off the
                # message's start): repeated_parameter, with the hint after it.
                message = f"{message} {_list_hint(name, field)}"
            errors[name] = [message]
    return errors


def repeated_names(value: Any, *, deep: bool = True) -> dict[Any, Any]:
    """marshmallow-style messages naming every repeated JSON name in ``value`` (nested
    objects and arrays too when ``deep``); empty when there is none."""
    errors: dict[Any, Any] = {}
    if isinstance(value, _JsonObject):
        errors.update((name, [DUPLICATE_KEY_MESSAGE]) for name in value.repeated)
    if not deep:
        return errors
    children: Iterable[tuple[Any, Any]] = ()
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    for key, child in children:
        if key not in errors and (inner := repeated_names(child)):
            errors[key] = inner
    return errors


class _RepeatedName(Exception):
    """Raised while parsing when an object repeats a name (see canonical_json)."""


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _RepeatedName
    return obj


def canonical_json(body: bytes) -> bytes:
    """``body``'s JSON written one way: names sorted, no whitespace, strings and numbers as
    parsed (``1.50`` is ``1.5``; ``"\\u00e9"`` and ``"é"`` are one string), so equal JSON is
    equal bytes whatever the sender's whitespace or name order. A body that cannot be written
    so stays as it is, and equal bytes stay equal: one that is not JSON, nested past Python's
    recursion limit, or repeating a name in an object (``{"a": 1, "a": 2}`` is not
    ``{"a": 2}``; such an object is refused anyway, so its retries are the same bytes)."""
    try:
        value = json.loads(body, object_pairs_hook=_unique_names)
    except (ValueError, RecursionError, _RepeatedName):
        return body
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


#: JSON's whitespace (RFC 8259 §2). A body of nothing else holds no JSON value: it is no body,
#: as an empty one is, on every route (acknowledging an alert takes it; a settings PUT refuses
#: it as it refuses an empty one). Other characters (a form feed, a no-break space) are not
#: JSON: such a body is malformed (400), as json.loads and the JSON grammar have it.
JSON_WHITESPACE = b" \t\n\r"


def is_blank(body: bytes) -> bool:
    """Is ``body`` empty or JSON whitespace only (no JSON value in it)?"""
    return not body.strip(JSON_WHITESPACE)


class JsonParser(FlaskParser):
    """webargs' parser, reading JSON bodies with repeated names marked (see _JsonObject), and
    refusing unknown query parameters as unknown body fields are refused (422 unknown_field
    naming ``query.<name>``): webargs drops them silently by default, so ``?clientid=C-1``
    (a typo of client_id) answered every session of the clinic as if it were filtered."""

    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE,
        "querystring": RAISE,
    }

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        if is_blank(data):
            # No JSON value at all, as webargs takes an empty body (a missing one): a
            # whitespace-only body was a 400 where an empty one was taken.
            return core.missing
        try:
            text = data.decode()  # as webargs reads it: UTF-8
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError(
                f"Bytes decoding error : {exc.reason}", doc=str(exc.object), pos=exc.start
            ) from exc
        return json.loads(text, object_pairs_hook=_json_object)


#: marshmallow's own words for a name no schema field takes (the rule ``unknown_field``).
UNKNOWN_FIELD_MESSAGE = "Unknown field."


class UnsupportedContentType(FitError):
    """A request body that is not ``application/json`` (415: api/problems)."""

    rule = "content_type"


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's blueprint with the parser above: every API blueprint is one of these.

    A route that reads query parameters refuses the ones it does not know (the parser); a
    route that reads none refuses any (``_refuse_unread_query``), for the same reason: a
    parameter the service ignores silently is a filter or option the caller thinks applied.

    What a request sent is judged in one order on every route: the key (401, the app's own
    hook), the key's role (403, ``_check_permissions``), the body's type and, sent chunked,
    its size (415, 413: ``_check_body``), the query string (422), and only then the body
    itself (a Content-Length over the limit is its 413 as it is read). A caller without a
    valid key, or with one whose role may not use the route, hears only that, whatever it
    sent, and its body is never read.
    """

    ARGUMENTS_PARSER = JsonParser()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Hooks run in the order registered, after the app's (which authenticates).
        self.before_request(_check_permissions)
        self.before_request(_check_body)
        self.before_request(_refuse_unread_query)

    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any) -> Any:
        decorate = super().arguments(schema, location=location, **kwargs)
        if location not in {"query", "querystring"}:
            return decorate

        def reads_query(view: Any) -> Any:
            view = decorate(view)
            view.reads_query = True  # copied onto the outer decorators' wrappers (wraps)
            return view

        return reads_query


def _view() -> Any:
    """The function that will answer this request: its MethodView's method for the request's
    method (HEAD's is GET's), where the decorators' marks are (``reads_query``,
    ``required_permissions``); ``None`` when no route matched."""
    if flask.request.endpoint is None:
        return None
    view = flask.current_app.view_functions.get(flask.request.endpoint)
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        method = flask.request.method.lower()
        view = getattr(view_class, method, None) or (
            getattr(view_class, "get", None) if method == "head" else None
        )
    return view


def _check_permissions() -> None:
    """Refuse (403) a key whose role may not use the route, before its input is read."""
    view = _view()
    if view is not None:
        auth.check_permissions(view)


_BODY_METHODS = {"POST", "PUT", "PATCH"}


def _check_body() -> None:
    """Refuse a body that is not JSON (415 ``content_type``, whether the route reads a body or
    not) and a chunked one past the size limit (413). Runs after the key and its role are
    judged (see :class:`Blueprint`): those refusals must not depend on what the body is, and
    an unauthorised caller's body is never read."""
    if flask.request.method not in _BODY_METHODS or not _has_body():
        return
    if flask.request.mimetype != "application/json":
        raise UnsupportedContentType("send the body as application/json", field="Content-Type")
    if _chunked_past_limit():
        raise RequestEntityTooLarge()


def _has_body() -> bool:
    """Does the request carry a body? A chunked one has no Content-Length, yet is a body."""
    if flask.request.content_length:
        return True
    return "chunked" in flask.request.headers.get("Transfer-Encoding", "").lower()


def _chunked_past_limit() -> bool:
    """Does a chunked body (no Content-Length) go on past ``MAX_CONTENT_LENGTH``?

    werkzeug reads such a body up to the limit and stops there without a word, so a session
    padded past it would be read as if it fitted, and anything else would be cut into
    malformed JSON. Read (once, cached for the parser) up to the limit, never further; one
    byte more in the de-chunked input makes it a 413, as a Content-Length over the limit is.
    (A Content-Length over the limit is refused by werkzeug when the body is first read,
    before any of it is.)"""
    request = flask.request
    limit = request.max_content_length
    if request.content_length is not None or limit is None:
        return False
    if len(request.get_data(cache=True)) < limit:
        return False
    try:
        more = request.environ["wsgi.input"].read(1)
    except (OSError, ValueError):
        more = b""
    return bool(more)


def _refuse_unread_query() -> None:
    """Refuse a query string on a route that reads no query parameter (after authentication,
    which the app's own hook does first): 422 ``unknown_field`` naming each parameter."""
    if not flask.request.args:
        return
    view = _view()
    if view is None or getattr(view, "reads_query", False):
        return
    flask_smorest.abort(
        422, messages={"query": {name: [UNKNOWN_FIELD_MESSAGE] for name in flask.request.args}}
    )
