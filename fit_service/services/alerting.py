"""Risk assessment after sessions are written: findings → alerts → outbox (same transaction).

Called by :func:`fit_service.services.recording.record_sessions` through its ``on_written``
hook with the histories of the episodes a call touched, by the scheduled check
(:mod:`fit_service.services.risk_schedule`) for time-based signals, and after a goal sheet
changes (to refresh the guidance of live alerts).

This runs on the ingestion hot path, so it is built to cost a fixed handful of queries per call
whatever the batch size (``IN`` queries, multi-row writes):

* always: the clinic's settings with the episodes' alerts (1 query); an ``UPDATE`` of the
  episodes whose risk level or reasons changed;
* only when an alert opens, escalates or moves to another clinician: goal sheets (1, not for a
  move), clinicians (1), webhook endpoints (1), the alert ``INSERT`` and one outbox ``INSERT``;
  a refresh (below) reads the goal sheets too;
* one ``UPDATE`` per alert that escalates, auto-resolves, moves, gets new guidance or has its
  facts refreshed (few: most calls change no stored alert), each conditional on the version it
  was decided on (below);
* the goal sheet only changes the guidance text, so the rules first run without it and are run
  again (pure, in memory) for the few episodes whose alerts open, escalate or are refreshed.

A live alert's facts are kept current: while its finding holds at the alert's severity, each
assessment rewrites the alert's evidence, leg and guidance when they moved
(:class:`fit_service.domain.alerts.Refresh`) - a later low rating, a third no-show, and on the
scheduled check the days of a ``long_gap`` - with a version bump like any change of what the
alert says, but no notice, and its status and acknowledgement stay. An escalation rewrites them
likewise (with its notice). Both keep the facts the alert opened with under ``opened_with``
(:func:`fit_service.domain.alerts.evidence_after`).

Trajectory ("not on track") uses the clinic's own ETR once it has enough closed episodes,
else the rational model (cut-off and reliable change, domain.md §5) — the model comes from
:func:`fit_service.services.trajectories.clinic_model`, cached per process and refitted when
the clinic's count of closed episodes changes (one COUNT per call). Likewise the clinic's
dropout model (:mod:`fit_service.services.dropout_models`, one more COUNT): once fitted, one
dropout-risk alert combines the signals the rules would otherwise alert on one by one. When an
episode has WAI-SR ratings, the clinic's bottom decile per subscale and session number
(:mod:`fit_service.services.alliance_reference`, cached hourly) is the "weak" line, else the
labelled heuristic floor.

Clinician: a live (open or acknowledged) alert belongs to the clinician treating the episode
now, the one its latest appointment was booked with (:func:`treating_clinician`; the same rule
that names the clinician of a new alert). When the client moves to another clinician, each live
alert moves with its next assessment: the new clinician sees it in their feed, gets the
notices (an ``alert.reassigned`` webhook and e-mail, or the escalation's), and the move is
audited (``alert.reassign``). An acknowledgement was the previous clinician's, so a moved
acknowledged alert is open again (:func:`fit_service.domain.alerts.reassigned_status`). Closed
alerts stay with the clinician who closed them or saw them close.

Dates: an alert's closing day is the clinic's local day (``clinics.timezone``), the calendar
session dates are written in, so a dismissal in the evening in Los Angeles (the next day in UTC)
covers that day's sessions and no more.

Audit: every stored change has its row in the caller's transaction, by the caller's principal
(``system`` for the scheduled check): ``alert.open``, ``alert.escalate``, ``alert.auto_resolve``,
``alert.reassign``, ``alert.refresh`` (evidence or guidance rewritten) and ``episode.risk_level``
(the episode's level or reasons changed). What did not change is neither written nor audited.

Concurrency: a clinician may acknowledge, resolve or dismiss an alert between the moment this
code reads it and the moment it writes. Every ``UPDATE`` of a stored alert here is therefore
``WHERE id = :id AND version = :read`` with ``version = version + 1`` (the same optimistic check
:func:`fit_service.services.alerts.change_status` makes), so no state is overwritten and no two
states share one ETag. On a miss the episode's alerts are read again (this transaction's own
writes included) and reconciled again, so the clinician's decision wins: a resolved or dismissed
alert is left alone, an acknowledged one may still be escalated or auto-resolved from its new
version. After a few misses in a row the episode's remaining alert actions are left to the next
assessment (logged by row id).
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fit_service.adapters.orm import (
    Alert,
    Clinic,
    Clinician,
    Episode,
    GoalSheet,
    OutboxMessage,
    WebhookEndpoint,
    utcnow,
)
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain import alerts as lifecycle
from fit_service.domain.delivery import build_alert_message, message_id_for
from fit_service.domain.dropout_model import DropoutModel
from fit_service.domain.guidance import Expectation
from fit_service.domain.guidance import GoalSheet as DomainGoalSheet
from fit_service.domain.instruments import WAI_SR_CLIENT, AgeBand
from fit_service.domain.risk import (
    Concern,
    EpisodeContext,
    RiskAssessment,
    RiskSettings,
    SessionObservation,
    Severity,
    assess_episode,
)
from fit_service.services import (
    alliance_reference,
    audit,
    dropout_models,
    thresholds,
    trajectories,
)
from fit_service.services.history import EpisodeHistory
from fit_service.services.principals import Principal
from fit_service.services.risk_inputs import observations, trajectory_model

log = logging.getLogger(__name__)

_CHUNK = 900  # below SQLite's bound-parameter ceiling

#: Outbox channels and the webhook event types (Standard Webhooks ``type``).
WEBHOOK = "webhook"
EMAIL = "email"
EVENT_OPENED = "alert.opened"
EVENT_ESCALATED = "alert.escalated"
EVENT_REASSIGNED = "alert.reassigned"


# --------------------------------------------------------------------------- settings
def risk_settings(raw: Mapping[str, Any]) -> RiskSettings:
    """The clinic's risk settings, sharing cut-offs, reliable change and the SRS concern line
    with the views and the reports (:mod:`fit_service.services.thresholds`)."""
    return thresholds.from_settings(raw).risk


def clinic_today(principal: Principal) -> date:
    return datetime.now(zoneinfo.ZoneInfo(principal.timezone)).date()


def _context(
    history: EpisodeHistory,
    today: date,
    goal_sheet: DomainGoalSheet | None,
    limits: thresholds.ClinicThresholds = thresholds.DEFAULT,
    dropout_model: DropoutModel | None = None,
    wai_reference: Mapping[int, Mapping[str, float]] | None = None,
    recheck: bool = False,
) -> EpisodeContext:
    band = AgeBand(history.age_band)
    return EpisodeContext(
        intake_outcome=None,  # the first outcome score of the episode
        clinical_cutoff=limits.clinical_cutoff(band),
        age_band=band,
        today=today,
        goal_sheet=goal_sheet,
        wai_reference=wai_reference,
        dropout_model=dropout_model,
        recheck=recheck,
    )


# --------------------------------------------------------------------------- stored alerts
@dataclass(slots=True)
class _Stored:
    row_id: int
    public_id: uuid.UUID
    kind: str
    leg: str
    severity: int
    status: str
    session_number: int | None
    observed_on: date
    version: int
    clinician_id: int | None
    closed_on: date | None = None
    #: the EHR id of ``clinician_id`` (compared with the episode's treating clinician)
    clinician: str | None = None
    #: the stored evidence (the facts a refresh compares with; ``lifecycle.Refresh``)
    evidence: dict[str, Any] | None = None
    #: the stored guidance (a goal-sheet refresh rewrites, and audits, only a changed text)
    guidance: str | None = None
    #: the note it was closed with (an auto-resolution's says why: lifecycle reads it)
    closing_note: str | None = None

    @property
    def live(self) -> bool:
        return lifecycle.AlertStatus(self.status).is_active

    def domain(self) -> lifecycle.Alert:
        return lifecycle.Alert(
            alert_id=str(self.public_id),
            kind=self.kind,
            concern=Concern(self.leg),
            severity=Severity(self.severity),
            status=lifecycle.AlertStatus(self.status),
            session_number=self.session_number,
            observed_on=self.observed_on,
            closed_on=self.closed_on,
            clinician=self.clinician,
            evidence=self.evidence,
            note=self.closing_note,
        )


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    seq = list(values)
    for start in range(0, len(seq), _CHUNK):
        yield seq[start : start + _CHUNK]


def _load_settings_and_alerts(
    db: Session, clinic_id: int, episode_ids: Sequence[int]
) -> tuple[dict[str, Any], dict[int, list[_Stored]]]:
    """The clinic's settings and every alert of the episodes, in one round trip per chunk
    (clinics LEFT JOIN alerts: the hot path pays for one query, not two), and the clinic's count
    of closed episodes (what the cached trajectory and dropout models are checked against; kept
    for a minute, :func:`fit_service.services.trajectories.closed_episodes`). An alert's
    evidence and closing days are the clinic's local days (session dates are local: a UTC day
    would be off by one for evening or early-morning dismissals)."""
    settings: dict[str, Any] = {}
    out: dict[int, list[_Stored]] = {i: [] for i in episode_ids}
    for chunk in _chunks(episode_ids):
        for r in db.execute(
            select(
                Clinic.settings,
                Clinic.timezone,
                Alert.id,
                Alert.public_id,
                Alert.episode_id,
                Alert.kind,
                Alert.leg,
                Alert.severity,
                Alert.status,
                Alert.session_number,
                Alert.evidence,
                Alert.guidance,
                Alert.closing_note,
                Alert.opened_at,
                Alert.closed_at,
                Alert.version,
                Alert.clinician_id,
                Clinician.external_id.label("clinician"),
            )
            .select_from(Clinic)
            .outerjoin(Alert, (Alert.clinic_id == Clinic.id) & Alert.episode_id.in_(chunk))
            .outerjoin(Clinician, Clinician.id == Alert.clinician_id)
            .where(Clinic.id == clinic_id)
        ):
            settings = dict(r.settings or {})
            if r.id is None:
                continue
            tz = zoneinfo.ZoneInfo(r.timezone or "UTC")
            observed = (r.evidence or {}).get("observed_on")
            out[r.episode_id].append(
                _Stored(
                    r.id,
                    r.public_id,
                    r.kind,
                    r.leg,
                    r.severity,
                    r.status,
                    r.session_number,
                    date.fromisoformat(observed) if observed else _local_day(r.opened_at, tz),
                    r.version,
                    r.clinician_id,
                    _local_day(r.closed_at, tz) if r.closed_at else None,
                    r.clinician,
                    dict(r.evidence or {}),
                    r.guidance,
                    r.closing_note,
                )
            )
    return settings, out


def _local_day(at: datetime, tz: zoneinfo.ZoneInfo) -> date:
    """The clinic-local calendar day of a stored (UTC) timestamp."""
    return at.astimezone(tz).date()


def treating_clinician(history: EpisodeHistory) -> str | None:
    """The EHR id of the clinician treating the episode now: the one its latest appointment
    (attended or not) was booked with, else the clinician it was opened with."""
    latest = history.sessions[-1].clinician if history.sessions else None
    return latest or history.clinician


def load_goal_sheets(db: Session, episode_ids: Iterable[int]) -> dict[int, DomainGoalSheet]:
    out: dict[int, DomainGoalSheet] = {}
    for chunk in _chunks(set(episode_ids)):
        for r in db.execute(
            select(
                GoalSheet.episode_id, GoalSheet.goal, GoalSheet.steps, GoalSheet.expectation
            ).where(GoalSheet.episode_id.in_(chunk))
        ):
            out[r.episode_id] = DomainGoalSheet(
                client_goal=r.goal,
                agreed_steps=tuple((r.steps or {}).get("steps", [])),
                expectation=Expectation(r.expectation),
            )
    return out


# --------------------------------------------------------------------------- the use case
@dataclass(slots=True)
class AssessmentSummary:
    """What one run changed (the scheduled check prints it)."""

    episodes: int = 0
    opened: int = 0
    escalated: int = 0
    auto_resolved: int = 0
    reassigned: int = 0
    #: live alerts whose facts or guidance were brought up to date (no notice)
    refreshed: int = 0
    deliveries: int = 0
    levels_changed: int = 0
    failed_episodes: list[int] = field(default_factory=list)
    #: the clinic's thresholds as read for this run (``None`` when nothing was assessed), so a
    #: caller rendering views in the same transaction need not read the settings again
    limits: thresholds.ClinicThresholds | None = None
    #: the clinic's count of closed episodes as read for this run (what the cached trajectory
    #: models are checked against), for the same reason
    closed_episodes: int | None = None

    def add(self, other: AssessmentSummary) -> None:
        for name in (
            "episodes",
            "opened",
            "escalated",
            "auto_resolved",
            "reassigned",
            "refreshed",
            "deliveries",
            "levels_changed",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed_episodes.extend(other.failed_episodes)


@dataclass(slots=True)
class _Episode:
    history: EpisodeHistory
    obs: list[SessionObservation]
    assessment: RiskAssessment
    actions: list[lifecycle.AlertAction]
    context: EpisodeContext


def assess_after_write(
    uow: UnitOfWork,
    principal: Principal,
    histories: dict[int, EpisodeHistory],
    audit_entries: list[audit.AuditEntry],
) -> tuple[thresholds.ClinicThresholds, int] | None:
    """Run the risk rules over each touched episode and reconcile its alerts; returns the
    clinic's thresholds and closed-episode count when it read them (the session views judge
    by the same, without reading them again). The audit entries of what it stores go to
    ``audit_entries``: the write records them with its own."""
    summary = reassess(
        uow, principal, histories.values(), clinic_today(principal), audit_into=audit_entries
    )
    if summary.limits is None or summary.closed_episodes is None:
        return None
    return summary.limits, summary.closed_episodes


def reassess(
    uow: UnitOfWork,
    principal: Principal,
    histories: Iterable[EpisodeHistory],
    today: date,
    *,
    refresh_guidance: bool = False,
    recheck: bool = False,
    audit_into: list[audit.AuditEntry] | None = None,
) -> AssessmentSummary:
    """Assess open episodes as of ``today``; store levels, alert actions and deliveries in the
    caller's transaction (the caller commits). ``refresh_guidance`` also rewrites the guidance
    of live alerts whose finding still holds (after the goal sheet changed). ``recheck``: no
    appointment was recorded (the daily schedule, a goal-sheet edit), so the dropout model
    opens no alert (:func:`fit_service.domain.risk.dropout_risk`). ``audit_into``: a list
    the audit entries go to, for a caller that records them with its own; else they are
    recorded here."""
    db = uow.session
    summary = AssessmentSummary()
    open_histories = [
        h for h in histories if h.status == "open" and h.clinic_id == principal.clinic_id
    ]
    if not open_histories:
        return summary
    raw_settings, stored = _load_settings_and_alerts(
        db, principal.clinic_id, [h.row_id for h in open_histories]
    )
    closed = trajectories.closed_episodes(uow, principal.clinic_id)
    limits = thresholds.from_settings(raw_settings)
    summary.limits, summary.closed_episodes = limits, closed
    settings = limits.risk
    sheets: dict[int, DomainGoalSheet] = {}
    if refresh_guidance:
        sheets = load_goal_sheets(db, [h.row_id for h in open_histories])

    models = {
        band: trajectory_model(uow, principal.clinic_id, AgeBand(band), limits, closed)
        for band in {h.age_band for h in open_histories}
    }
    dropout = dropout_models.clinic_dropout_model(uow, principal.clinic_id, limits, today, closed)
    wai = None
    if any(s.rating(WAI_SR_CLIENT.code) for h in open_histories for s in h.sessions):
        wai = alliance_reference.clinic_wai_reference(uow, principal.clinic_id)
    assessed: list[_Episode] = []
    for history in open_histories:
        try:
            obs = observations(history, settings, models[history.age_band])
            context = _context(
                history, today, sheets.get(history.row_id), limits, dropout, wai, recheck
            )
            assessment = assess_episode(obs, context, settings)
            actions = lifecycle.reconcile(
                [a.domain() for a in stored[history.row_id]],
                assessment.findings,
                obs,
                settings,
                context=context,
                treating=treating_clinician(history),
            )
        except Exception as exc:  # noqa: BLE001 - any rule bug: KeyError, ZeroDivisionError…
            # Never let a rule bug or odd data refuse the session write; the episode keeps its
            # previous level and is named (by row id, no client data) in the log. Only pure code
            # runs in this block (no database call), so the transaction is still usable.
            log.error("risk assessment failed for episode row %s: %s", history.row_id, _where(exc))
            summary.failed_episodes.append(history.row_id)
            continue
        assessed.append(_Episode(history, obs, assessment, actions, context))
    summary.episodes = len(assessed)

    entries = _store_levels(db, assessed, summary)

    # the episodes whose alerts get new text: opened, escalated, or refreshed (facts counted to
    # today, lifecycle.Refresh) - a refresh must not write sheet-less guidance over tailored
    notifying = [
        e
        for e in assessed
        if any(
            isinstance(a, lifecycle.Open | lifecycle.Escalate | lifecycle.Refresh)
            for a in e.actions
        )
    ]
    if notifying and not refresh_guidance:
        # Guidance is tailored to the goal sheet: load sheets only for the episodes that need
        # text now and re-run their rules (pure and cheap) with it.
        sheets = load_goal_sheets(db, [e.history.row_id for e in notifying])
        for e in notifying:
            sheet = sheets.get(e.history.row_id)
            if sheet is None:
                continue
            try:
                context = _context(e.history, today, sheet, limits, dropout, wai, recheck)
                assessment = assess_episode(e.obs, context, settings)
                actions = lifecycle.reconcile(
                    [a.domain() for a in stored[e.history.row_id]],
                    assessment.findings,
                    e.obs,
                    settings,
                    context=context,
                    treating=treating_clinician(e.history),
                )
            except Exception as exc:  # noqa: BLE001 - as above; guidance stays sheet-less
                log.error(
                    "risk assessment with the goal sheet failed for episode row %s: %s",
                    e.history.row_id,
                    _where(exc),
                )
                continue
            e.assessment, e.actions, e.context = assessment, actions, context
    _apply_actions(db, principal, assessed, stored, summary, refresh_guidance, settings, entries)
    if audit_into is not None:
        audit_into.extend(entries)
    elif entries:
        audit.record(db, principal, entries)
    return summary


_EPISODES = Episode.__table__
# Built once, run as a Core executemany: the ORM's bulk UPDATE by primary key cost several
# milliseconds of Python per single-session write (profiled).
_STORE_LEVEL = (
    update(_EPISODES)
    .where(_EPISODES.c.id == bindparam("row_id"))
    .values(
        risk_level=bindparam("risk_level"),
        risk_reasons=bindparam("risk_reasons"),
        updated_at=bindparam("updated_at"),
    )
)


def _store_levels(
    db: Session, assessed: Sequence[_Episode], summary: AssessmentSummary
) -> list[audit.AuditEntry]:
    """Write the episodes' risk level and reasons where they changed; returns their audit
    entries (``episode.risk_level``, recorded with the call's other entries in one insert)."""
    now = utcnow()
    changes = []
    entries = []
    for e in assessed:
        level = e.assessment.level.value
        reasons = {"reasons": list(e.assessment.reasons)}
        if e.history.risk_level == level and e.history.risk_reasons == reasons:
            continue
        e.history.risk_level = level
        e.history.risk_reasons = reasons
        changes.append(
            {
                "row_id": e.history.row_id,
                "risk_level": level,
                "risk_reasons": reasons,
                "updated_at": now,
            }
        )
        entries.append(audit.AuditEntry("episode.risk_level", "episode", str(e.history.public_id)))
    if changes:
        db.connection().execute(_STORE_LEVEL, changes)
        summary.levels_changed = len(changes)
    return entries


@dataclass(frozen=True, slots=True)
class _Event:
    event_type: str
    alert_id: uuid.UUID
    kind: str
    severity: Severity
    clinician_id: int | None
    #: the alert's version after a move (``alert.reassigned`` happens once per version)
    version: int | None = None


def _where(exc: BaseException) -> str:
    """The exception's type and innermost frame, for the log: never its message or locals,
    which may quote client data."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno} in {last.name}"


@dataclass(slots=True)
class _Pending:
    """What one call collects while storing alert actions: written after every episode."""

    now: datetime
    events: list[_Event]
    entries: list[audit.AuditEntry]
    summary: AssessmentSummary


#: Re-reads of one episode's alerts after version misses before its actions are left for later.
_RECONCILE_TRIES = 3


def _update_alert(db: Session, alert: _Stored, values: Mapping[str, Any]) -> bool:
    """``UPDATE`` one alert if it is still at the version read; ``False`` when somebody changed
    it meanwhile (nothing is written then)."""
    result = db.execute(
        update(Alert)
        .where(Alert.id == alert.row_id, Alert.version == alert.version)
        .values(**values, version=Alert.version + 1)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def _moved(alert: _Stored, target: int | None) -> dict[str, Any]:
    """The column values that move a live alert to clinician row ``target`` (nothing when it is
    there already, or the episode's clinician is unknown): an acknowledged one is open again."""
    if target is None or alert.clinician_id == target or not alert.live:
        return {}
    status = lifecycle.reassigned_status(lifecycle.AlertStatus(alert.status))
    values: dict[str, Any] = {"clinician_id": target}
    if status.value != alert.status:
        values.update(status=status.value, acknowledged_at=None)
    return values


def _update_stored(
    db: Session,
    principal: Principal,
    e: _Episode,
    alerts: list[_Stored],
    settings: RiskSettings,
    refresh_guidance: bool,
    out: _Pending,
    target: int | None = None,
) -> None:
    """Store the episode's escalations, auto-resolutions, moves of live alerts to ``target``
    (the row id of the episode's treating clinician) and (``refresh_guidance``) guidance
    refreshes, one conditional ``UPDATE`` per alert on the version read (module doc,
    "Concurrency"). On a miss the episode's alerts are re-read and reconciled again and the
    new actions applied; after :data:`_RECONCILE_TRIES` attempts ``e.actions`` is emptied
    (nothing opens either) and the next assessment converges. Leaves ``e.actions`` matching
    what was stored."""
    now, events, entries, summary = out.now, out.events, out.entries, out.summary
    row_id = e.history.row_id
    done: set[int] = set()  # alerts this call already updated (never bumped twice)
    for attempt in range(_RECONCILE_TRIES):
        if attempt:
            _, fresh = _load_settings_and_alerts(db, principal.clinic_id, [row_id])
            alerts = fresh[row_id]
            try:
                e.actions = lifecycle.reconcile(
                    [a.domain() for a in alerts],
                    e.assessment.findings,
                    e.obs,
                    settings,
                    context=e.context,
                    treating=treating_clinician(e.history),
                )
            except Exception as exc:  # noqa: BLE001 - pure code; see reassess
                log.error("alert reconcile failed for episode row %s: %s", row_id, _where(exc))
                e.actions = []
                return
        by_id = {str(a.public_id): a for a in alerts}
        missed = False
        touched: set[int] = set()
        # written with the alert's other changes below (a move, new guidance): one UPDATE
        refreshing = {
            action.alert_id: action.finding
            for action in e.actions
            if isinstance(action, lifecycle.Refresh)
        }
        for action in e.actions:
            if isinstance(action, lifecycle.Open | lifecycle.Refresh):
                continue
            a = by_id[action.alert_id]
            touched.add(a.row_id)
            if isinstance(action, lifecycle.Escalate):
                f = action.finding
                move = _moved(a, target)
                values: dict[str, Any] = {
                    "severity": int(action.severity),
                    "leg": f.concern.value,
                    "session_number": f.session_number,
                    "evidence": lifecycle.evidence_after(a.domain(), f),
                    "guidance": f.guidance,
                    "model": f.evidence.get("model"),
                    "updated_at": now,
                    **move,
                }
                if not _update_alert(db, a, values):
                    missed = True
                    continue
                # the notice goes to the clinician the alert is with now
                clinician = move.get("clinician_id", a.clinician_id)
                events.append(
                    _Event(EVENT_ESCALATED, a.public_id, a.kind, action.severity, clinician)
                )
                entries.append(audit.AuditEntry("alert.escalate", "alert", action.alert_id))
                if move:
                    entries.append(audit.AuditEntry("alert.reassign", "alert", action.alert_id))
                    summary.reassigned += 1
                summary.escalated += 1
            else:
                values = {
                    "status": lifecycle.AlertStatus.AUTO_RESOLVED.value,
                    "closing_note": action.note,
                    "closed_at": now,
                    "updated_at": now,
                }
                if not _update_alert(db, a, values):
                    missed = True
                    continue
                entries.append(audit.AuditEntry("alert.auto_resolve", "alert", action.alert_id))
                summary.auto_resolved += 1
            done.add(a.row_id)
        holding = {f.kind: f for f in e.assessment.findings} if refresh_guidance else {}
        for a in alerts:
            if not a.live or a.row_id in touched or a.row_id in done:
                continue
            move = _moved(a, target)
            current = refreshing.get(str(a.public_id))
            finding = current or holding.get(a.kind)
            # only a changed text is written (and audited): the same goal sheet sent again, or
            # one the guidance does not quote, leaves the alert and its ETag as they were
            new_guidance = finding is not None and finding.guidance != a.guidance
            values = {
                **move,
                **({"guidance": finding.guidance} if finding and new_guidance else {}),
            }
            if current is not None:
                # the finding's facts as of this assessment (newer evidence, days counted to
                # today); the status, and with it an acknowledgement, stays (no notice: not news)
                values.update(
                    evidence=lifecycle.evidence_after(a.domain(), current),
                    leg=current.concern.value,
                    session_number=current.session_number,
                    model=current.evidence.get("model"),
                )
            if not values:
                continue
            if not _update_alert(db, a, {**values, "updated_at": now}):
                missed = True
                continue
            done.add(a.row_id)
            if current is not None or new_guidance:
                entries.append(audit.AuditEntry("alert.refresh", "alert", str(a.public_id)))
                summary.refreshed += 1
            if move:
                events.append(
                    _Event(
                        EVENT_REASSIGNED,
                        a.public_id,
                        a.kind,
                        Severity(a.severity),
                        target,
                        a.version + 1,
                    )
                )
                entries.append(audit.AuditEntry("alert.reassign", "alert", str(a.public_id)))
                summary.reassigned += 1
        if not missed:
            return
    log.warning(
        "alerts of episode row %s changed under every attempt; left to the next assessment",
        row_id,
    )
    e.actions = []


def _apply_actions(
    db: Session,
    principal: Principal,
    assessed: Sequence[_Episode],
    stored: Mapping[int, list[_Stored]],
    summary: AssessmentSummary,
    refresh_guidance: bool,
    settings: RiskSettings,
    entries: list[audit.AuditEntry],
) -> None:
    """Store the alert actions, adding their audit entries to ``entries`` (those of the call
    so far: the episodes' level changes; the caller records them all in one insert)."""
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    events: list[_Event] = []
    pending_clinician: list[tuple[dict[str, Any], str | None]] = []

    # The clinicians the episodes' alerts go to, read before any write: an escalation moves
    # its alert in the same versioned UPDATE (never two bumps in one call).
    treating = {e.history.row_id: treating_clinician(e.history) for e in assessed}
    wanted: set[str] = set()
    current: set[int | None] = set()
    for e in assessed:
        ext = treating[e.history.row_id]
        live = [a for a in stored[e.history.row_id] if a.live]
        moving = ext is not None and any(a.clinician != ext for a in live)
        if moving or any(isinstance(a, lifecycle.Open | lifecycle.Escalate) for a in e.actions):
            if ext is not None:
                wanted.add(ext)
            current.update(a.clinician_id for a in live)
    clinicians = _clinicians(db, principal.clinic_id, wanted, current)
    by_external = {c[1]: c[0] for c in clinicians.values()}

    for e in assessed:
        ext = treating[e.history.row_id]
        # Updates first: a version miss re-reconciles the episode, which may change its Opens.
        _update_stored(
            db,
            principal,
            e,
            stored[e.history.row_id],
            settings,
            refresh_guidance,
            _Pending(now, events, entries, summary),
            by_external.get(ext) if ext else None,
        )
        for action in e.actions:
            if not isinstance(action, lifecycle.Open):
                continue
            f = action.finding
            public_id = uuid.uuid4()
            row = {
                "public_id": public_id,
                "clinic_id": principal.clinic_id,
                "episode_id": e.history.row_id,
                "client_id": e.history.client_row_id,
                "clinician_id": None,  # filled below from the clinicians query
                "kind": action.kind,
                "leg": f.concern.value,
                "severity": int(action.severity),
                "status": lifecycle.AlertStatus.OPEN.value,
                "session_number": f.session_number,
                "evidence": lifecycle.evidence_record(f),
                "guidance": f.guidance,
                "model": f.evidence.get("model"),
                "opened_at": now,
                "updated_at": now,
                "version": 1,
            }
            inserts.append(row)
            pending_clinician.append((row, ext))
            entries.append(audit.AuditEntry("alert.open", "alert", str(public_id), status_code=201))
            summary.opened += 1

    # A re-reconcile after a version miss may have opened or escalated what the first read did
    # not: read any clinician still missing (rare; usually no query).
    missing_ext = {ext for _, ext in pending_clinician if ext and ext not in by_external}
    missing_ids = {ev.clinician_id for ev in events if ev.clinician_id not in clinicians}
    if missing_ext or missing_ids - {None}:
        clinicians.update(_clinicians(db, principal.clinic_id, missing_ext, missing_ids))
        by_external = {c[1]: c[0] for c in clinicians.values()}
    opened: list[_Event] = []
    for row, ext in pending_clinician:
        row["clinician_id"] = by_external.get(ext) if ext else None
        opened.append(
            _Event(
                EVENT_OPENED,
                row["public_id"],
                row["kind"],
                Severity(row["severity"]),
                row["clinician_id"],
            )
        )
    events = opened + events

    if inserts:
        db.execute(insert(Alert), inserts)
    if events:
        summary.deliveries = _enqueue(db, principal.clinic_id, events, clinicians, now)


def _clinicians(
    db: Session, clinic_id: int, external_ids: set[str], row_ids: set[int | None]
) -> dict[int, tuple[int, str, str | None]]:
    """Clinicians by row id: (id, external id, e-mail), for the given external or row ids."""
    ids = {i for i in row_ids if i is not None}
    if not external_ids and not ids:
        return {}
    rows = db.execute(
        select(Clinician.id, Clinician.external_id, Clinician.email).where(
            Clinician.clinic_id == clinic_id,
            or_(Clinician.external_id.in_(sorted(external_ids)), Clinician.id.in_(sorted(ids))),
        )
    )
    return {r.id: (r.id, r.external_id, r.email) for r in rows}


def outbox_insert(db: Session) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` on the outbox's (channel, destination, message id):
    enqueuing the same event twice is a no-op, on both databases."""
    dialect = db.get_bind().dialect.name
    table = OutboxMessage.__table__
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return stmt.on_conflict_do_nothing(index_elements=["channel", "destination_id", "message_id"])


def _message_id(clinic_id: int, event: _Event) -> str:
    """Stable per event: an alert opens once, escalates at most once per severity, and moves
    to another clinician at most once per version."""
    key = str(event.alert_id)
    if event.event_type == EVENT_ESCALATED:
        key = f"{event.alert_id.hex}_{event.severity.label}"
    elif event.event_type == EVENT_REASSIGNED:
        key = f"{event.alert_id.hex}_v{event.version}"
    return message_id_for(str(clinic_id), event.event_type, key)


def _enqueue(
    db: Session,
    clinic_id: int,
    events: Sequence[_Event],
    clinicians: Mapping[int, tuple[int, str, str | None]],
    now: datetime,
) -> int:
    """One webhook per enabled endpoint of the clinic and one e-mail per clinician with an
    address, per event. Thin: the alert id, its kind and severity; the e-mail's text (a
    reference and a link, built by the worker with ``build_alert_email``) holds even less."""
    endpoints = db.scalars(
        select(WebhookEndpoint.id).where(
            WebhookEndpoint.clinic_id == clinic_id, WebhookEndpoint.enabled.is_(True)
        )
    ).all()
    rows: list[dict[str, Any]] = []
    base = {"clinic_id": clinic_id, "status": "pending", "attempts": 0, "next_attempt_at": now}
    for event in events:
        message = build_alert_message(
            clinic_id=str(clinic_id),
            event_type=event.event_type,
            alert_id=str(event.alert_id),
            kind=event.kind,
            severity=event.severity.label,
            occurred_at=now,
        )
        message_id = _message_id(clinic_id, event)
        for endpoint_id in endpoints:
            rows.append(
                {
                    **base,
                    "channel": WEBHOOK,
                    "destination_id": endpoint_id,
                    "message_id": message_id,
                    "body": message.body,
                    "created_at": now,
                }
            )
        clinician = clinicians.get(event.clinician_id) if event.clinician_id else None
        if clinician is not None and clinician[2]:
            rows.append(
                {
                    **base,
                    "channel": EMAIL,
                    "destination_id": clinician[0],
                    "message_id": message_id,
                    "body": json.dumps({"alert_id": str(event.alert_id)}, sort_keys=True),
                    "created_at": now,
                }
            )
    if rows:
        db.execute(outbox_insert(db), rows)
    return len(rows)


# --------------------------------------------------------------------------- closed episodes
def closed_episode_note(ending_reason: str | None) -> str:
    """The system's closing note on an alert whose episode was closed."""
    reason = f" ({ending_reason})" if ending_reason else ""
    return f"the episode was closed{reason}; no rule runs on it any more"


def resolve_alerts_of_closed_episodes(
    db: Session, principal: Principal, episode_ids: Sequence[int] | None = None
) -> int:
    """Auto-resolve the live (open or acknowledged) alerts of the clinic's closed episodes —
    only of ``episode_ids`` when given — with a system note naming the ending reason, a version
    bump and an audit row each, in the caller's transaction. Each ``UPDATE`` is conditional on
    the version read, so a clinician's concurrent decision wins. Returns how many were closed.

    Used when an episode is closed (:func:`fit_service.services.episodes.close_episode`) and by
    the scheduled check, which catches any left behind."""
    query = (
        select(Alert.id, Alert.public_id, Alert.version, Episode.ending_reason)
        .join(Episode, Episode.id == Alert.episode_id)
        .where(
            Alert.clinic_id == principal.clinic_id,
            Alert.status.in_(["open", "acknowledged"]),
            Episode.status != "open",
        )
        .order_by(Alert.id)
    )
    if episode_ids is not None:
        query = query.where(Alert.episode_id.in_(list(episode_ids)))
    now = utcnow()
    closed = []
    for r in db.execute(query).all():
        changed = db.execute(
            update(Alert)
            .where(Alert.id == r.id, Alert.version == r.version)
            .values(
                status=lifecycle.AlertStatus.AUTO_RESOLVED.value,
                closing_note=closed_episode_note(r.ending_reason),
                closed_at=now,
                updated_at=now,
                version=Alert.version + 1,
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if changed:
            closed.append(r)
    if closed:
        audit.record(
            db,
            principal,
            [audit.AuditEntry("alert.auto_resolve", "alert", str(r.public_id)) for r in closed],
        )
    return len(closed)
