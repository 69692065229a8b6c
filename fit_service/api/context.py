"""Per-request access to what ``create_app`` wired: settings, the session factory, the caller."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.config import Settings
from fit_service.services.clinics import KeyCache
from fit_service.services.principals import Principal


@dataclass(frozen=True)
class Wiring:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    key_cache: KeyCache

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)


def wiring() -> Wiring:
    return current_app.extensions["fit"]


def principal() -> Principal:
    """The authenticated caller; the auth hook has already refused anonymous requests."""
    return g.principal


def run(use_case, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Call ``use_case(uow, principal, *args)`` inside a fresh unit of work."""
    with wiring().uow() as uow:
        return use_case(uow, principal(), *args, **kwargs)
