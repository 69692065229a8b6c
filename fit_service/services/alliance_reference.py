"""Use case: the clinic's WAI-SR bottom-decile reference for the weak-subscale rule.

Read from the clinic's stored WAI-SR client ratings (:mod:`fit_service.domain.alliance_reference`
computes the deciles). Cached per process for :data:`TTL_SECONDS`: a decile over hundreds of
ratings barely moves with one more, so it is not worth a query on every write; and only loaded
when an assessed episode actually has WAI-SR ratings (most PCOMS clinics have none).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from sqlalchemy import select

from fit_service.adapters.orm import Rating, TherapySession
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.alliance_reference import bottom_deciles
from fit_service.domain.instruments import WAI_SR_CLIENT

TTL_SECONDS = 3600.0
#: session numbers beyond this are too sparse to have a decile of their own
MAX_SESSION = 52
_MAX_ENTRIES = 256

Reference = Mapping[int, Mapping[str, float]]
_cache: dict[tuple[str, int], tuple[float, Reference]] = {}
_lock = threading.Lock()


def clinic_wai_reference(uow: UnitOfWork, clinic_id: int) -> Reference:
    """``{session number: {subscale: 10th percentile}}`` for the clinic (may be empty)."""
    key = (uow.database, clinic_id)
    hit = _cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    rows = uow.session.execute(
        select(TherapySession.number, Rating.subscales)
        .join(Rating, Rating.session_id == TherapySession.id)
        .where(
            TherapySession.clinic_id == clinic_id,
            TherapySession.number.is_not(None),
            TherapySession.number <= MAX_SESSION,
            Rating.instrument == WAI_SR_CLIENT.code,
            Rating.rater == "client",
            Rating.subscales.is_not(None),
        )
    ).all()
    reference = bottom_deciles((number, subscales) for number, subscales in rows if subscales)
    with _lock:
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        _cache[key] = (time.monotonic() + TTL_SECONDS, reference)
    return reference
