"""How request bodies are read: JSON with repeated names caught, for every blueprint.

``json.loads`` keeps the last of two equal names in an object silently, so
``{"individual": 40, "individual": 4}`` would be stored as 4 and a body with two
``ending_reason`` names would close an episode with either. Which one the sender meant is
unknown, so such a body is refused (422 ``duplicate_key`` naming the name's path): the parser
marks objects that repeated a name, and the schemas refuse marked objects before loading.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import flask
import flask_smorest
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

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
REPEATED_QUERY_MESSAGE = (
    "Name this parameter once (a list of values goes comma-separated: status=open,acknowledged)."
)


def repeated_parameters(data: Any, names: Iterable[str]) -> dict[str, list[str]]:
    """marshmallow-style messages naming each of ``names`` given more than once in a query
    string (``data``: webargs' proxy over ``request.args``); empty for a JSON body."""
    args = getattr(data, "data", data)
    getlist = getattr(args, "getlist", None)
    if getlist is None:
        return {}
    return {name: [REPEATED_QUERY_MESSAGE] for name in names if len(getlist(name)) > 1}


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


class JsonParser(FlaskParser):
    """webargs' parser, reading JSON bodies with repeated names marked (see _JsonObject)."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        try:
            text = req.get_data(cache=True).decode()  # as webargs reads it: UTF-8
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError(
                f"Bytes decoding error : {exc.reason}", doc=str(exc.object), pos=exc.start
            ) from exc
        return json.loads(text, object_pairs_hook=_json_object)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's blueprint with the parser above: every API blueprint is one of these."""

    ARGUMENTS_PARSER = JsonParser()
