"""The scheduled risk check (``flask --app wsgi fit check-risks``): time-based signals.

Some findings depend on the calendar, not on a new session: "it is N days since the last
session" (``long_gap``) has to fire when nothing arrives. This runs the same rules as the
ingestion hook (:func:`fit_service.services.alerting.reassess`) over every open episode, with
each clinic's own "today", in chunks of episodes (one transaction each, so a long run holds no
long locks). It also closes the loop on closed episodes: a live alert on an episode that has
since been closed is auto-resolved with a note, since no rule runs on it any more.

Run it daily (cron, a systemd timer, a Kubernetes CronJob); running it more often is harmless —
re-assessing unchanged data changes nothing.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fit_service.adapters.orm import Clinic, Episode
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.services.alerting import (
    AssessmentSummary,
    reassess,
    resolve_alerts_of_closed_episodes,
)
from fit_service.services.history import load_histories
from fit_service.services.principals import Principal, Role

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 500
_RETRIES = 3


def check_risks(
    uow_factory: Callable[[], UnitOfWork],
    *,
    today: date | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> AssessmentSummary:
    """Re-assess every open episode of every clinic; ``today`` overrides each clinic's date
    (tests, catching up)."""
    with uow_factory() as uow:
        clinics = uow.session.execute(select(Clinic.id, Clinic.timezone).order_by(Clinic.id)).all()
    total = AssessmentSummary()
    for clinic_id, tz in clinics:
        # The system acts for the clinic: audit rows carry actor "system" (no API key).
        principal = Principal(clinic_id, None, Role.MANAGER, timezone=tz)
        clinic_day = today or datetime.now(zoneinfo.ZoneInfo(tz)).date()
        after: int | None = 0
        while after is not None:
            done, after = _chunk(uow_factory, principal, clinic_day, after, chunk)
            total.add(done)
        total.auto_resolved += _close_out(uow_factory, principal)
    return total


def _chunk(
    uow_factory: Callable[[], UnitOfWork],
    principal: Principal,
    today: date,
    after: int,
    size: int,
) -> tuple[AssessmentSummary, int | None]:
    for attempt in range(_RETRIES):
        try:
            with uow_factory() as uow:
                ids = list(
                    uow.session.scalars(
                        select(Episode.id)
                        .where(
                            Episode.clinic_id == principal.clinic_id,
                            Episode.status == "open",
                            Episode.id > after,
                        )
                        .order_by(Episode.id)
                        .limit(size)
                    ).all()
                )
                if not ids:
                    return AssessmentSummary(), None
                histories = load_histories(uow.session, ids)
                summary = reassess(uow, principal, histories.values(), today, recheck=True)
                uow.commit()
                return summary, ids[-1]
        except IntegrityError:
            # A session write opened the same alert meanwhile; re-assessing converges.
            if attempt == _RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _close_out(uow_factory: Callable[[], UnitOfWork], principal: Principal) -> int:
    """Auto-resolve live alerts of episodes closed since the alert opened (closing an episode
    does so at once; this catches any left behind, e.g. episodes closed before that)."""
    with uow_factory() as uow:
        closed = resolve_alerts_of_closed_episodes(uow.session, principal)
        uow.commit()
        return closed
