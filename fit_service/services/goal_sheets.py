"""Use cases on an episode's goal sheet: the client's own goal, the agreed steps, and what the
client expects of therapy (domain.md §1). Alert guidance is tailored to it, so writing a sheet
refreshes the guidance of the episode's live alerts in the same transaction.

The sheet is versioned like an alert: replacing an existing sheet needs ``If-Match`` (two
clinicians editing at once must not silently overwrite each other); the first one needs none.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from fit_service.adapters.orm import GoalSheet, utcnow
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.errors import (
    FitError,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
)
from fit_service.domain.guidance import Expectation
from fit_service.services import alerting, audit
from fit_service.services.history import load_histories
from fit_service.services.principals import Permission, Principal
from fit_service.services.reads import visible_episode_row


def _view(episode_id: uuid.UUID, sheet: Any) -> dict[str, Any]:
    return {
        "episode_id": str(episode_id),
        "goal": sheet.goal,
        "steps": list((sheet.steps or {}).get("steps", [])),
        "expectation": sheet.expectation,
        "updated_at": sheet.updated_at.isoformat(),
        "version": sheet.version,
    }


def _sheet(uow: UnitOfWork, episode_row: int) -> Any:
    return uow.session.execute(
        select(
            GoalSheet.id,
            GoalSheet.goal,
            GoalSheet.steps,
            GoalSheet.expectation,
            GoalSheet.updated_at,
            GoalSheet.version,
        ).where(GoalSheet.episode_id == episode_row)
    ).first()


def _require_text(goal: str, steps: list[str]) -> None:
    """A goal or a step of white space only says nothing and would be quoted as empty in the
    alerts' guidance: refused (422), as a blank resolve or dismiss note is."""
    if not goal.strip():
        raise FitError("goal must not be blank", field="goal", rule="blank_text")
    for i, step in enumerate(steps):
        if not step.strip():
            raise FitError("a step must not be blank", field=f"steps[{i}]", rule="blank_text")


def get_goal_sheet(uow: UnitOfWork, principal: Principal, episode_id: uuid.UUID) -> dict[str, Any]:
    principal.require(Permission.ALERTS_READ)
    episode_row = visible_episode_row(uow, principal, episode_id)
    sheet = _sheet(uow, episode_row)
    if sheet is None:
        raise NotFound(f"episode {episode_id} has no goal sheet yet", field="episode_id")
    audit.record(
        uow.session, principal, [audit.AuditEntry("goal_sheet.read", "episode", str(episode_id))]
    )
    uow.commit()
    return _view(episode_id, sheet)


def put_goal_sheet(
    uow: UnitOfWork,
    principal: Principal,
    episode_id: uuid.UUID,
    goal: str,
    steps: list[str],
    expectation: Expectation,
    expected_version: int | None,
) -> tuple[dict[str, Any], bool]:
    """Create or replace the sheet; returns its view and whether it was created."""
    principal.require(Permission.GOALS_WRITE)
    _require_text(goal, steps)
    db = uow.session
    episode_row = visible_episode_row(uow, principal, episode_id)
    current = _sheet(uow, episode_row)
    now = utcnow()
    cleaned_steps = [s.strip() for s in steps]
    values = {
        "goal": goal.strip(),
        "steps": {"steps": cleaned_steps},
        "expectation": expectation.value,
        "updated_at": now,
    }
    if current is None:
        if expected_version is not None:
            raise PreconditionFailed(
                "the episode has no goal sheet yet; send no If-Match to create one",
                field="If-Match",
            )
        try:
            db.execute(
                insert(GoalSheet),
                [
                    {
                        **values,
                        "clinic_id": principal.clinic_id,
                        "episode_id": episode_row,
                        "version": 1,
                    }
                ],
            )
        except IntegrityError:
            # Somebody created it in the meantime: their sheet is not silently replaced.
            raise PreconditionFailed(
                "a goal sheet was created meanwhile; re-read it and send If-Match",
                field="If-Match",
            ) from None
        version = 1
    else:
        if expected_version is None:
            raise PreconditionRequired(
                "send If-Match with the goal sheet's ETag to replace it", field="If-Match"
            )
        result = db.execute(
            update(GoalSheet)
            .where(GoalSheet.id == current.id, GoalSheet.version == expected_version)
            # The increment is SQL's: binding expected_version + 1 would overflow the integer
            # column (a 500 on PostgreSQL) for an If-Match naming the largest version there is,
            # which matches no row and must be a plain 412.
            .values(**values, version=GoalSheet.version + 1)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise PreconditionFailed(
                f"the goal sheet changed (now version {current.version}); re-read it",
                field="If-Match",
            )
        version = expected_version + 1
    audit.record(
        db,
        principal,
        [
            audit.AuditEntry(
                "goal_sheet.write",
                "episode",
                str(episode_id),
                status_code=201 if current is None else 200,
            )
        ],
    )
    # Live alerts' guidance quotes the goal and the steps: bring it up to date now.
    histories = load_histories(db, [episode_row])
    alerting.reassess(
        uow,
        principal,
        histories.values(),
        alerting.clinic_today(principal),
        refresh_guidance=True,
        recheck=True,
    )
    view = {
        "episode_id": str(episode_id),
        "goal": values["goal"],
        "steps": cleaned_steps,
        "expectation": expectation.value,
        "updated_at": now.isoformat(),
        "version": version,
    }
    uow.commit()
    return view, current is None
