"""The error responses each route documents in the OpenAPI document.

Every error the API sends is ``application/problem+json`` (RFC 9457, :mod:`problems`) naming
the field and the rule. flask-smorest documents only the shared ``default`` and, for routes
with arguments, 422; an EHR integrator reading the document should also see which other
statuses a route can answer and why, with the media type they will get.

Every route answers 422 to a query parameter it does not take (``parsing.Blueprint``), a GET
by id too: :func:`errors` documents that 422 on every route it documents, so no route's list
can leave it out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask_smorest import Blueprint

from fit_service.api.schemas import ProblemOut

PROBLEM_JSON = "application/problem+json"

#: What each status means on any route; a route may say more (``described``).
GENERIC = {
    400: "Malformed JSON body.",
    401: "No valid API key (send Authorization: Bearer <key>).",
    403: "The key's role may not do this.",
    404: "No such record in this clinic (another clinic's ids are not found either).",
    406: "Accept names no format this route offers.",
    409: "The record's state does not allow this.",
    412: "If-Match does not name the record's current ETag: stale (somebody changed the "
    "record first; re-read it), weak (W/...: If-Match compares strongly) or *.",
    413: "The body is larger than the service takes.",
    415: "The body is not application/json.",
    422: "A field breaks a rule: the body names the field and the rule.",
    428: "If-Match is missing.",
}

#: The 422 every route answers to a query parameter it does not take (parsing.Blueprint refuses
#: it on a route that reads none, the query schema on one that reads some), added to the text of
#: a route's own 422 ...
UNKNOWN_QUERY = (
    "A query parameter the route does not take is one too (unknown_field, query.<name>)."
)
#: ... or the whole text of the 422 of a route that has no other.
NO_QUERY = "A query parameter was sent: this route takes none (unknown_field, query.<name>)."

#: Any route that needs a key.
AUTH = (401, 403)
#: A route with a JSON body.
BODY = (*AUTH, 400, 413, 415, 422)
#: A route with query parameters.
QUERY = (*AUTH, 422)

F = TypeVar("F", bound=Callable[..., Any])


def errors(
    blp: Blueprint, *statuses: int, described: Mapping[int, str] | None = None
) -> Callable[[F], F]:
    """Document ``statuses`` (and the keys of ``described``, with its texts) as
    problem+json responses of the decorated route, and the 422 every route answers to a query
    parameter it does not take (its text added to the route's own 422, if it has one)."""
    texts = {status: GENERIC[status] for status in statuses} | dict(described or {})
    if 422 not in texts:
        texts[422] = NO_QUERY
    elif "query" not in texts[422]:
        texts[422] = f"{texts[422]} {UNKNOWN_QUERY}"

    def decorate(view: F) -> F:
        for status, text in sorted(texts.items(), reverse=True):
            view = blp.alt_response(
                status, schema=ProblemOut, content_type=PROBLEM_JSON, description=text
            )(view)
        return view

    return decorate
