"""Risk assessment after sessions are written: findings → alerts → outbox (same transaction).

Called by :func:`fit_service.services.recording.record_sessions` through its ``on_written``
hook with the histories of the episodes a call touched.
"""

from __future__ import annotations

from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.services.history import EpisodeHistory
from fit_service.services.principals import Principal


def assess_after_write(
    uow: UnitOfWork, principal: Principal, histories: dict[int, EpisodeHistory]
) -> None:
    """Run the risk rules over each touched episode and reconcile its alerts."""
