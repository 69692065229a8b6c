"""Every error leaves the service in one shape: RFC 9457 ``application/problem+json``.

One table maps domain errors to status codes; the domain knows nothing of HTTP. Each problem
names the ``field`` and the ``rule`` (first error at the top level, all of them in ``errors``)
because an integrator fixing a payload needs both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Response, g, request
from werkzeug.exceptions import HTTPException

from fit_service.api.parsing import (
    DUPLICATE_KEY_MESSAGE,
    REPEATED_QUERY_MESSAGE,
    UnsupportedContentType,
)
from fit_service.domain.errors import (
    Conflict,
    FitError,
    IdempotencyKeyReused,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PreconditionFailed,
    PreconditionRequired,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

#: Domain error class -> HTTP status. Anything else that is a FitError is a 422.
STATUS_FOR: dict[type[FitError], int] = {
    NotFound: 404,
    PermissionDenied: 403,
    Conflict: 409,
    PreconditionFailed: 412,
    PreconditionRequired: 428,
    IdempotencyKeyReused: 422,
    PayloadTooLarge: 413,
    UnsupportedContentType: 415,
}

_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    428: "Precondition required",
    500: "Internal server error",
}

# marshmallow's messages -> rule names, so clients can branch on a stable token.
_RULES = {
    "Unknown field.": "unknown_field",
    "Missing data for required field.": "required",
    "Field may not be null.": "not_null",
    "Not a valid string.": "type_string",
    "Not a valid integer.": "type_integer",
    "Not a valid number.": "type_number",
    "Not a valid boolean.": "type_boolean",
    "Not a valid date.": "date_format",
    "Not a valid UUID.": "uuid_format",
    "Not a valid list.": "type_list",
    "Not a valid mapping type.": "type_object",
    "Invalid input type.": "type_object",
    "Invalid JSON body.": "malformed_json",
    "Control characters and unpaired surrogates are not allowed.": "control_character",
    DUPLICATE_KEY_MESSAGE: "duplicate_key",
    REPEATED_QUERY_MESSAGE: "repeated_parameter",
}


def status_for(error: FitError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_FOR:
            return STATUS_FOR[cls]
    return 422


def problem_dict(
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    *,
    rule: str | None = None,
    field: str | None = None,
) -> dict[str, Any]:
    errors = errors or []
    first = errors[0] if errors else {}
    rule = rule or first.get("rule") or _TITLES.get(status, "error").lower().replace(" ", "_")
    body: dict[str, Any] = {
        "type": f"urn:fit-service:problem:{rule}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "rule": rule,
        "field": field if field is not None else first.get("field"),
        "errors": errors,
    }
    if getattr(g, "request_id", None):
        body["request_id"] = g.request_id
    return body


def problem_response(body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    resp = Response(json.dumps(body), status=body["status"], mimetype=PROBLEM_JSON)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def malformed_json(reason: str) -> dict[str, Any]:
    """The 400 for a body the JSON parser cannot read, shaped like webargs' own (same rule)."""
    detail = f"the request body is not valid JSON: {reason}"
    return problem_dict(400, detail, [{"field": None, "rule": "malformed_json", "detail": detail}])


def from_fit_error(error: FitError) -> dict[str, Any]:
    status = status_for(error)
    return problem_dict(
        status,
        error.detail,
        [{"field": error.field, "rule": error.rule, "detail": error.detail}],
    )


def flatten_messages(messages: Any, prefix: str = "") -> Iterator[dict[str, Any]]:
    """marshmallow's nested {"ratings": {0: {"items": [...]}}} -> ``ratings[0].items``."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif key == "_schema":
                path = prefix
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            yield from flatten_messages(value, path)
    elif isinstance(messages, list | tuple):
        for message in messages:
            if isinstance(message, Mapping | list):
                yield from flatten_messages(message, prefix)
            else:
                text = str(message)
                yield {"field": prefix or None, "rule": _rule_of(text), "detail": text}
    else:
        text = str(messages)
        yield {"field": prefix or None, "rule": _rule_of(text), "detail": text}


def joined_detail(errors: list[dict[str, Any]]) -> str:
    """One ``detail`` of several errors (the first five): each as ``field: detail``, or its
    detail alone when it names no field (the body, or a batch item, as a whole)."""
    return "; ".join(
        f"{e['field']}: {e['detail']}" if e["field"] else e["detail"] for e in errors[:5]
    )


def _rule_of(message: str) -> str:
    """The rule of a marshmallow message (a repeated list parameter's carries a hint after
    the fixed text)."""
    if message.startswith(REPEATED_QUERY_MESSAGE):
        return "repeated_parameter"
    return _RULES.get(message, "invalid")


def from_http_exception(error: HTTPException) -> dict[str, Any]:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if messages:
        # webargs nests by location: {"json": {...}} / {"query": {...}} / {"headers": {...}}
        errors: list[dict[str, Any]] = []
        for location, inner in messages.items():
            for e in flatten_messages(inner):
                if location != "json" and e["field"]:
                    e["field"] = f"{location}.{e['field']}"
                errors.append(e)
        if any(e["rule"] == "malformed_json" for e in errors):
            return problem_dict(400, "the request body is not valid JSON", errors)
        return problem_dict(status, joined_detail(errors), errors)
    if status == 413:
        return problem_dict(
            413,
            "the request body is larger than this service accepts",
            rule="body_too_large",
            field="body",
        )
    if status >= 500:
        if getattr(error, "original_exception", None) is None:
            # an unhandled exception was logged once already, with its request id
            # (FitFlask.log_exception); a 5xx raised as such has nothing more to say
            log.error("%s (request %s)", type(error).__name__, g.get("request_id") or "-")
        return problem_dict(
            500, "internal error; the request id identifies it in the logs", rule="internal_error"
        )
    description = error.description or _TITLES.get(status, "error")
    return problem_dict(status, description)


def refusal_rule(request_rule: str | None) -> str:
    return request_rule or request.path
