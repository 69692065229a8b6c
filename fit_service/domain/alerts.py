"""Alert lifecycle: reconcile the findings that hold now with an episode's alerts.

Pure: :func:`reconcile` takes the episode's alerts (every status), the current findings and the
sessions, and returns the actions the service should store. The rules it enforces:

* at most one *active* (open or acknowledged) alert per (episode, kind);
* re-sending identical data produces no action (a finding an active alert already covers at the
  same or a higher severity is a no-op);
* a worse finding escalates the active alert (severity up);
* when no finding of the kind holds any more, the alert auto-resolves with a note - but an
  alliance alert only once SRS has been at or above the concern line for
  ``RiskSettings.alliance_clear_sessions`` consecutive sessions after its evidence (default two
  sessions at >= 36; issue 4), because one good rating after a rupture is not a repair;
* a dismissed or resolved alert is not reopened by the same evidence: a new alert of that kind
  opens only for a finding observed *after* the closed alert's evidence date and, when a
  clinician closed it, after the day they did (:func:`_seen`).

Status machine (:func:`check_transition`)::

    open -> acknowledged
    open | acknowledged -> resolved (note required) | dismissed (reason required)
                         | auto_resolved (note required; the system's own resolution)

Closed states (resolved, dismissed, auto_resolved) are final.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from fit_service.domain.errors import Conflict
from fit_service.domain.risk import (
    Concern,
    Finding,
    RiskSettings,
    SessionObservation,
    Severity,
    alliance_clear_streak,
)


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"
    AUTO_RESOLVED = "auto_resolved"

    @property
    def is_active(self) -> bool:
        return self in (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


_ALLOWED: dict[AlertStatus, frozenset[AlertStatus]] = {
    AlertStatus.OPEN: frozenset(
        {
            AlertStatus.ACKNOWLEDGED,
            AlertStatus.RESOLVED,
            AlertStatus.DISMISSED,
            AlertStatus.AUTO_RESOLVED,
        }
    ),
    AlertStatus.ACKNOWLEDGED: frozenset(
        {AlertStatus.RESOLVED, AlertStatus.DISMISSED, AlertStatus.AUTO_RESOLVED}
    ),
    AlertStatus.RESOLVED: frozenset(),
    AlertStatus.DISMISSED: frozenset(),
    AlertStatus.AUTO_RESOLVED: frozenset(),
}
_CLOSED_BY_CLINICIAN = frozenset({AlertStatus.RESOLVED, AlertStatus.DISMISSED})
_NEEDS_TEXT = {
    AlertStatus.RESOLVED: "a resolution note",
    AlertStatus.DISMISSED: "a reason",
    AlertStatus.AUTO_RESOLVED: "a note",
}


@dataclass(frozen=True, slots=True)
class Alert:
    """What reconciliation needs to know of a stored alert.

    ``session_number`` / ``observed_on`` are the evidence the alert was opened (or last
    escalated) on.
    """

    alert_id: str
    kind: str
    concern: Concern
    severity: Severity
    status: AlertStatus
    session_number: int | None
    observed_on: dt.date
    note: str | None = None
    #: the day a closed alert was closed: evidence dated up to then was before the clinician
    #: when they resolved or dismissed it
    closed_on: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Open:
    """Open a new alert for ``finding``."""

    kind: str
    severity: Severity
    finding: Finding


@dataclass(frozen=True, slots=True)
class Escalate:
    """Raise an active alert's severity; the service re-notifies."""

    alert_id: str
    severity: Severity
    finding: Finding


@dataclass(frozen=True, slots=True)
class AutoResolve:
    """Close an active alert whose condition no longer holds."""

    alert_id: str
    note: str


AlertAction = Open | Escalate | AutoResolve


def check_transition(current: AlertStatus, target: AlertStatus, note: str | None = None) -> None:
    """Raise :class:`Conflict` unless ``current -> target`` is allowed and carries its text."""
    if target not in _ALLOWED[current]:
        raise Conflict(
            f"an alert that is {current.value} cannot become {target.value}",
            field="status",
            rule="illegal_alert_transition",
        )
    needed = _NEEDS_TEXT.get(target)
    if needed is not None and not (note and note.strip()):
        raise Conflict(
            f"moving an alert to {target.value} needs {needed}",
            field="note",
            rule="alert_note_required",
        )


def transition(alert: Alert, target: AlertStatus, note: str | None = None) -> Alert:
    """The alert after a checked status change."""
    check_transition(alert.status, target, note)
    return replace(alert, status=target, note=note.strip() if note else alert.note)


def _active_by_kind(alerts: Iterable[Alert]) -> dict[str, Alert]:
    active: dict[str, Alert] = {}
    for alert in alerts:
        if not alert.status.is_active:
            continue
        if alert.kind in active:
            raise Conflict(
                f"two active alerts of kind {alert.kind!r} in one episode",
                field="kind",
                rule="duplicate_active_alert",
            )
        active[alert.kind] = alert
    return active


def _strongest(findings: Iterable[Finding], minimum: Severity) -> dict[str, Finding]:
    by_kind: dict[str, Finding] = {}
    for f in findings:
        if f.severity < minimum or not f.alerts:
            continue
        held = by_kind.get(f.kind)
        if held is None or f.severity > held.severity:
            by_kind[f.kind] = f
    return by_kind


def _seen(alert: Alert) -> dt.date:
    """The latest evidence date a closed alert covers: its own evidence, and for one a clinician
    resolved or dismissed, everything up to the day they did (they saw the episode then). An
    auto-resolved alert covers only its evidence: no one looked, and a backfill of old sessions
    must still be able to raise a new one."""
    if alert.closed_on is not None and alert.status in _CLOSED_BY_CLINICIAN:
        return max(alert.observed_on, alert.closed_on)
    return alert.observed_on


def reconcile(
    alerts: Sequence[Alert],
    findings: Sequence[Finding],
    observations: Sequence[SessionObservation],
    settings: RiskSettings | None = None,
) -> list[AlertAction]:
    """The actions that bring an episode's alerts in line with its current findings.

    ``alerts`` are all of the episode's alerts, closed ones included (they stop the same
    evidence from reopening). Findings below ``settings.alert_min_severity`` open nothing but,
    while any finding of the kind holds, keep an active alert from auto-resolving.
    """
    settings = settings or RiskSettings()
    active = _active_by_kind(alerts)
    alerting = _strongest(findings, settings.alert_min_severity)
    holding = {f.kind for f in findings}
    actions: list[AlertAction] = []

    for kind in sorted(alerting):
        finding = alerting[kind]
        alert = active.get(kind)
        if alert is not None:
            if finding.severity > alert.severity:
                actions.append(Escalate(alert.alert_id, finding.severity, finding))
            continue
        already_closed = any(
            a.kind == kind and not a.status.is_active and _seen(a) >= finding.observed_on
            for a in alerts
        )
        if not already_closed:
            actions.append(Open(kind, finding.severity, finding))

    for kind in sorted(active):
        if kind in holding:
            continue
        alert = active[kind]
        if alert.concern.is_alliance:
            streak = alliance_clear_streak(observations, settings, alert.session_number)
            if streak < settings.alliance_clear_sessions:
                continue
            note = (
                f"{kind} no longer holds: SRS at or above {settings.srs_concern_total:g} for "
                f"{streak} consecutive sessions since session {alert.session_number}"
            )
        else:
            latest = next((o for o in reversed(observations)), None)
            when = latest.date.isoformat() if latest else "now"
            note = f"{kind} no longer holds as of {when}"
        actions.append(AutoResolve(alert.alert_id, note))
    return actions


def apply_actions(
    alerts: Sequence[Alert], actions: Sequence[AlertAction], new_id: Callable[[], str]
) -> list[Alert]:
    """The episode's alerts after ``actions``: what a store would hold (for simulations, tests)."""
    by_id = {a.alert_id: a for a in alerts}
    for action in actions:
        if isinstance(action, Open):
            f = action.finding
            alert = Alert(
                alert_id=new_id(),
                kind=action.kind,
                concern=f.concern,
                severity=action.severity,
                status=AlertStatus.OPEN,
                session_number=f.session_number,
                observed_on=f.observed_on,
            )
            by_id[alert.alert_id] = alert
        elif isinstance(action, Escalate):
            f = action.finding
            by_id[action.alert_id] = replace(
                by_id[action.alert_id],
                severity=action.severity,
                session_number=f.session_number,
                observed_on=f.observed_on,
            )
        else:
            by_id[action.alert_id] = transition(
                by_id[action.alert_id], AlertStatus.AUTO_RESOLVED, action.note
            )
    return list(by_id.values())
