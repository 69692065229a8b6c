"""Bearer API keys, and what a route's key must be allowed to do. The clinic comes from the key
and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from fit_service.api.context import principal, wiring
from fit_service.domain.errors import FitError
from fit_service.services.clinics import authenticate
from fit_service.services.principals import Permission

F = TypeVar("F", bound=Callable[..., Any])


class NotAuthenticated(FitError):
    rule = "not_authenticated"


def authenticate_request() -> None:
    """``before_request`` hook of the /v1 blueprints (the OpenAPI document is public)."""
    if request.endpoint and request.endpoint.startswith("api-docs"):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated(
            "send an API key as 'Authorization: Bearer <key>'", field="Authorization"
        )
    found = authenticate(
        wiring().session_factory, token.strip(), g.get("request_id"), wiring().key_cache
    )
    if found is None:
        raise NotAuthenticated(
            "unknown or revoked API key", field="Authorization", rule="invalid_api_key"
        )
    g.principal = found


def requires(*permissions: Permission) -> Callable[[F], F]:
    """Declare that a view needs one of ``permissions``. The API blueprints check it
    (:func:`check_permissions`) after the key is authenticated and before anything else the
    request sent is looked at - its query string, its body's type and size, its body, its
    Accept header: a role that may not do this gets a 403 whatever it sent, never a 415, 413,
    422 or 406 that would let a key without the permission probe the route. The use case
    checks again (it is called from the CLI too).
    """

    def declare(view: F) -> F:
        view.required_permissions = permissions  # type: ignore[attr-defined]
        return view

    return declare


def check_permissions(view: Any) -> None:
    """Refuse the caller (403) if ``view`` declares permissions (:func:`requires`) its role
    has none of; called by the API blueprints' ``before_request`` hook."""
    permissions = getattr(view, "required_permissions", None)
    if permissions:
        principal().require(*permissions)
