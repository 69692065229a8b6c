"""Bearer API keys. The clinic comes from the key and nothing else."""

from __future__ import annotations

from flask import g, request

from fit_service.api.context import wiring
from fit_service.domain.errors import FitError
from fit_service.services.clinics import authenticate


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
