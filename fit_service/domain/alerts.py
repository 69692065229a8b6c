"""Alert lifecycle: reconcile the findings that hold now with an episode's alerts.

Pure: :func:`reconcile` takes the episode's alerts (every status), the current findings and the
sessions, and returns the actions the service should store. The rules it enforces:

* at most one *active* (open or acknowledged) alert per (episode, kind);
* re-sending identical data produces no action (a finding an active alert already covers at the
  same or a higher severity is a no-op);
* a worse finding escalates the active alert (severity up);
* when no finding of the kind holds any more, the alert auto-resolves with a note - but an
  alliance alert only once the alliance has been clear for ``RiskSettings.alliance_clear_sessions``
  consecutive sessions after its evidence (default two; issue 4), because one good rating after
  a rupture is not a repair. An SRS-based alert counts sessions with SRS at or above the concern
  line (default 36); a WAI-SR alert (``weak_wai_*``) counts sessions whose WAI-SR subscale of its
  leg is no longer weak (the same line the rule uses: the clinic's decile, else the heuristic
  floor) or, for a session without that subscale, whose SRS is at or above the concern line
  (:func:`wai_clear_streak`), so a clinic that uses no SRS sees its WAI alerts clear too;
* one finding, one alert: a finding that only restates a stronger one on the same score
  (``Finding.covered_by``, :data:`fit_service.domain.risk.RESTATED_BY`) opens no alert of its
  own; an active alert of its kind (opened before the stronger finding held) auto-resolves, with
  a note naming the carrier, once the carrier's alert is live - and is kept while it is not;
* a live alert's facts stay current: while its finding holds at the alert's severity and says
  something other than the facts stored with the alert - newer evidence (a later low rating, a
  further missed appointment) or facts counted to today (``long_gap``: days since the last
  session) - it is brought up to date (:class:`Refresh`: evidence, leg and guidance; no notice,
  its status and acknowledgement kept). An escalation rewrites them the same way. Either keeps
  the facts the alert opened with under ``opened_with`` (:func:`evidence_after`). A finding
  weaker than the alert leaves its facts alone: the alert shows the evidence that raised it to
  its severity (alerts never de-escalate);
* a dismissed or resolved alert is not reopened by the same evidence: a new alert of that kind
  opens only for a finding observed *after* the closed alert's evidence date and, when a
  clinician closed it, after the day they did (:func:`_seen`). A resolution or dismissal by a
  former clinician covers nothing for the clinician the client moved to
  (:func:`_closed_by_treating`): they get their own alert, even on the same evidence (an EHR
  correction that moves a client adds no session);
* nor, when a clinician closed it, by the same finding persisting: with the episode's
  ``context`` (the rules can then be re-run on the sessions so far) a later finding re-opens it
  only when it is worse than the closed alert, or when the finding stopped alerting at some
  appointment after the closed alert's evidence (it cleared, or was only held over) and came
  back (:func:`_dismissal_holds`). A client who rates SRS 34 at every session gets one alert,
  not one per session after each dismissal. *Worse* is a higher severity, or - at the same
  severity (a HIGH alert cannot get higher) - materially worse evidence
  (:func:`_materially_worse`): the kind's own figure at least one of the clinic's steps below
  the worst the closed alert showed (SRS total: ``reliable_change``, a labelled heuristic, see
  :data:`_WORSE_BY`; WAI-SR subscale: ``wai_decline_points``; ORS change from intake:
  ``reliable_change``, domain.md §3/§4). A dismissal covers the same or better evidence, not a
  much worse one: SRS 33 dismissed, then 24, opens a new alert; 32 or 29 does not.

Status machine (:func:`check_transition`)::

    open -> acknowledged
    open | acknowledged -> resolved (note required) | dismissed (reason required)
                         | auto_resolved (note required; the system's own resolution)

Closed states (resolved, dismissed, auto_resolved) are final. A live alert follows the
episode's treating clinician (the service moves it, :mod:`fit_service.services.alerting`); an
acknowledgement is the previous clinician's, so a moved alert is open again for the new one
(:func:`reassigned_status`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from fit_service.domain.change import TOLERANCE
from fit_service.domain.errors import Conflict
from fit_service.domain.instruments import AgeBand
from fit_service.domain.risk import (
    Concern,
    EpisodeContext,
    Finding,
    RiskSettings,
    SessionObservation,
    Severity,
    alliance_clear_streak,
    evaluate_rules,
    weak_wai_subscales,
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
    escalated or refreshed) on.
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
    #: the clinician the alert is for (a live one follows the treating clinician; a closed one
    #: keeps the clinician it was for when it was closed, whether they or a manager closed
    #: it: the closure is on their behalf); ``None`` when not known
    clinician: str | None = None
    #: the facts stored with the alert (:func:`evidence_record`: its finding's evidence when it
    #: was opened, escalated or last refreshed, and then ``opened_with``); ``None`` when not
    #: known: then it is never refreshed (:class:`Refresh`)
    evidence: Mapping[str, Any] | None = None


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


@dataclass(frozen=True, slots=True)
class Refresh:
    """Bring an active alert's facts up to date with ``finding``, the finding of its kind that
    holds now at the alert's severity (evidence, leg and guidance; :func:`evidence_after`): a
    newer session or appointment, or facts counted to today (``long_gap``). Not news: no notice,
    and its status and acknowledgement stay as they are."""

    alert_id: str
    finding: Finding


AlertAction = Open | Escalate | AutoResolve | Refresh


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


def reassigned_status(status: AlertStatus) -> AlertStatus:
    """The status of a live alert moved to another clinician: an acknowledgement was the
    previous clinician's ("I have seen it"), so for the new one the alert is open again."""
    if not status.is_active:
        raise Conflict(
            f"an alert that is {status.value} stays with the clinician who closed it",
            field="status",
            rule="illegal_alert_transition",
        )
    return AlertStatus.OPEN


#: what :func:`evidence_record` stores besides the rule's own facts
_RECORD_KEYS = frozenset({"observed_on", "concern", "opened_with"})


def _plain(value: Any) -> Any:
    """``value`` as it reads back from a JSON column: mappings as dicts, tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def evidence_record(
    finding: Finding, opened_with: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The evidence stored with an alert for ``finding``: the day it was observed, its leg and
    the rule's facts (JSON shapes), plus - once the alert has escalated or been refreshed - the
    facts it opened with (``opened_with``, :func:`opening_facts`)."""
    record = {
        "observed_on": finding.observed_on.isoformat(),
        "concern": finding.concern.value,
        **_plain(finding.evidence),
    }
    if opened_with is not None:
        record["opened_with"] = dict(opened_with)
    return record


def opening_facts(alert: Alert) -> dict[str, Any]:
    """The facts ``alert`` opened with: as kept under ``opened_with`` once it moved on, else
    (never escalated or refreshed) its stored facts now, with the session, day, severity and
    leg they were raised at."""
    stored = dict(alert.evidence or {})
    kept = stored.pop("opened_with", None)
    if isinstance(kept, Mapping):
        return dict(kept)
    return {
        **stored,
        "session_number": alert.session_number,
        "observed_on": alert.observed_on.isoformat(),
        "severity": alert.severity.label,
        "concern": alert.concern.value,
    }


def evidence_after(alert: Alert, finding: Finding) -> dict[str, Any]:
    """The evidence stored with ``alert`` once it escalates to, or is refreshed with,
    ``finding``: the finding's facts, and the facts it opened with under ``opened_with``, so a
    clinician sees both what the alert says now and how it started."""
    return evidence_record(finding, opening_facts(alert))


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


def _closed_by_treating(alert: Alert, treating: str | None) -> bool:
    """Whether the treating clinician's own judgement closed ``alert``: they resolved or
    dismissed it (not the system), and it was theirs. A colleague's dismissal made before the
    client moved to them is not theirs: they have not seen the evidence, and an alliance
    finding after the move is about their own bond with the client. Unknown on either side
    (``None``) counts as theirs."""
    return alert.status in _CLOSED_BY_CLINICIAN and (
        treating is None or alert.clinician is None or alert.clinician == treating
    )


def _seen(alert: Alert, treating: str | None = None) -> dt.date:
    """The latest evidence date a closed alert covers: its own evidence, and for one the
    treating clinician resolved or dismissed, everything up to the day they did (they saw the
    episode then). An auto-resolved alert covers only its evidence: no one looked, and a
    backfill of old sessions must still be able to raise a new one; so does one a former
    clinician closed (:func:`_closed_by_treating`). One auto-resolved because its evidence was
    corrected out of the record (:func:`_corrected_away`) covers nothing, not even that: if the
    finding is back at the same session (the correction undone - an EHR re-sending the first
    version after the correction), it is a rupture no clinician has closed, and it alerts
    again (the day before its evidence: earlier than any finding it could be compared with)."""
    if alert.closed_on is not None and _closed_by_treating(alert, treating):
        return max(alert.observed_on, alert.closed_on)
    if _corrected_away(alert):
        return alert.observed_on - dt.timedelta(days=1)
    return alert.observed_on


#: How an auto-resolution for corrected evidence begins its note after the kind
#: (:func:`reconcile` writes it; :func:`_corrected_away` reads it back from the stored alert).
_CORRECTED = "no longer holds at its own evidence"


def _corrected_away(alert: Alert) -> bool:
    """Whether ``alert`` was auto-resolved because its own evidence was corrected
    (:func:`_evidence_corrected`), as its stored note says. Not a WAI-SR alert: its line is
    the clinic's decile of other clients' ratings (``EpisodeContext.wai_reference``), which
    moves as ratings arrive and may differ between processes for the hour each caches it, so
    its finding can leave and come back at the same session without any change to the
    episode; covering nothing there, it would re-alert at every crossing."""
    return (
        alert.kind not in WAI_KINDS
        and alert.status is AlertStatus.AUTO_RESOLVED
        and alert.note is not None
        and alert.note.startswith(f"{alert.kind} {_CORRECTED} ")
    )


#: kinds raised by the WAI-SR rule (:func:`fit_service.domain.risk.weak_wai_subscales`)
WAI_KINDS = frozenset({"weak_wai_goal", "weak_wai_task", "weak_wai_bond"})


def _wai_weak(
    o: SessionObservation, kind: str, settings: RiskSettings, context: EpisodeContext | None
) -> bool:
    """Whether the WAI-SR subscale behind ``kind`` is weak at ``o``, by the rule's own line (the
    clinic's decile at that session number when ``context`` has one, else the floor)."""
    ctx = context or EpisodeContext(None, None, AgeBand.ADULT, o.date)
    return any(f.kind == kind for f in weak_wai_subscales([o], ctx, settings))


def wai_clear_streak(
    obs: Sequence[SessionObservation],
    alert: Alert,
    settings: RiskSettings,
    context: EpisodeContext | None = None,
) -> int:
    """Consecutive latest attended sessions after a WAI-SR alert's evidence whose alliance is
    clear: the alert's subscale no longer weak, or - at a session without that subscale - SRS at
    or above the concern line. A session with neither breaks the streak (a rating not given is
    no evidence of repair), as in :func:`fit_service.domain.risk.alliance_clear_streak`."""
    leg = alert.concern.value
    streak = 0
    for o in reversed(obs):
        if not o.attended:
            continue
        if alert.session_number is not None and (o.session_number or 0) <= alert.session_number:
            break
        if o.wai_subscales and leg in o.wai_subscales:
            clear = not _wai_weak(o, alert.kind, settings, context)
        else:
            total = o.srs_total
            clear = total is not None and total >= settings.srs_concern_total
        if not clear:
            break
        streak += 1
    return streak


def _latest_closed(alerts: Iterable[Alert], kind: str, treating: str | None) -> Alert | None:
    """The latest closed alert of ``kind`` that speaks for the treating clinician: one another
    clinician resolved or dismissed (a colleague covering a session) is passed over, so it
    neither silences the treating clinician nor hides their own earlier dismissal."""
    closed = [
        a
        for a in alerts
        if a.kind == kind
        and not a.status.is_active
        and (a.status not in _CLOSED_BY_CLINICIAN or _closed_by_treating(a, treating))
    ]
    return max(closed, key=lambda a: (a.observed_on, _seen(a, treating)), default=None)


def _findings_upto(
    observations: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> Callable[[int], Sequence[Finding]]:
    """The findings of the first ``upto`` appointments, as assessed when the last of them was
    recorded (memoised: several kinds may ask about the same appointment)."""
    earlier: dict[int, Sequence[Finding]] = {}

    def findings_upto(upto: int) -> Sequence[Finding]:
        if upto not in earlier:
            prefix = observations[:upto]
            at = replace(context, today=prefix[-1].date, recheck=False)
            earlier[upto] = evaluate_rules(prefix, at, settings)
        return earlier[upto]

    return findings_upto


def _alerting(findings: Iterable[Finding], minimum: Severity) -> dict[str, Finding]:
    """The findings that alert, by kind, counting one carried in another's alert
    (``covered_by``) as alerting when its carrier does: folding is how the finding is shown,
    not a sign that it cleared."""
    findings = list(findings)
    alerting = _strongest(findings, minimum)
    for f in findings:
        if f.covered_by in alerting and f.kind not in alerting and f.severity >= minimum:
            alerting[f.kind] = f
    return alerting


#: "Materially worse" evidence, by kind (:func:`_materially_worse`): the figure in the rule's
#: evidence that gets lower as the finding gets worse, and the :class:`RiskSettings` field
#: holding the smallest fall in it that counts as new evidence. Each step is the clinic's own
#: line for "this moved", not a new constant:
#:
#: * SRS total (``early_low_alliance``, ``low_alliance``, ``srs_decline``): ``reliable_change``
#:   (5 points). domain.md gives the SRS no reliable-change figure; this is the ORS's (§3), on
#:   the same 0-40 format, a labelled heuristic. Not ``srs_decline_points``: a 1-point fall is
#:   the clinic's line for a decline, but ``srs_decline`` itself calls one such fall
#:   within-client noise (LOW), and a dismissal that a 1-point drift undoes would not hold a
#:   week (SRS 33, 32, 31 ... would re-alert at every session);
#: * WAI-SR subscale (``weak_wai_*``): ``wai_decline_points``, the client's own decline
#:   (domain.md §3: no published cut-off; a heuristic setting);
#: * ORS change from intake (``ors_reliable_deterioration``): ``reliable_change``, domain.md
#:   §3/§4 (5 points, PCOMS): a further fall beyond measurement error.
#:
#: Kinds not listed (attendance, checkpoints, the dropout model's estimate, one SRS item's
#: ``low_srs_*``: no item-level reliable change to go by) are worse only by severity. No
#: listed kind is carried in another's alert (``RESTATED_BY``), so a closed alert's
#: evidence here is always its own kind's.
_WORSE_BY: Mapping[str, tuple[str, str]] = {
    "early_low_alliance": ("srs_total", "reliable_change"),
    "low_alliance": ("srs_total", "reliable_change"),
    "srs_decline": ("srs_total", "reliable_change"),
    "weak_wai_goal": ("score", "wai_decline_points"),
    "weak_wai_task": ("score", "wai_decline_points"),
    "weak_wai_bond": ("score", "wai_decline_points"),
    "ors_reliable_deterioration": ("change", "reliable_change"),
}


def _figure(evidence: object, key: str) -> float | None:
    """The number under ``key`` in an evidence mapping; ``None`` when absent or not a number."""
    value = evidence.get(key) if isinstance(evidence, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _materially_worse(closed: Alert, finding: Finding, settings: RiskSettings) -> bool:
    """Whether ``finding``'s evidence is materially worse than what the clinician closed
    ``closed`` on: its figure (:data:`_WORSE_BY`) at least the clinic's step below the lowest
    the closed alert showed - its stored facts and the facts it opened with (a refreshed alert
    showed both). Unknown figures on either side (an alert stored without evidence, a kind with
    no figure): not worse, and the severity rule alone decides. Steps are compared as the rules
    compare thresholds (within :data:`~fit_service.domain.change.TOLERANCE`: totals carry one
    decimal)."""
    rule = _WORSE_BY.get(finding.kind)
    if rule is None:
        return False
    key, step_setting = rule
    now = _figure(finding.evidence, key)
    stored = closed.evidence or {}
    shown = [
        v for v in (_figure(stored, key), _figure(stored.get("opened_with"), key)) if v is not None
    ]
    if now is None or not shown:
        return False
    step = float(getattr(settings, step_setting))
    return min(shown) - now >= step - TOLERANCE


def _dismissal_holds(
    closed: Alert,
    finding: Finding,
    observations: Sequence[SessionObservation],
    settings: RiskSettings,
    findings_upto: Callable[[int], Sequence[Finding]],
    treating: str | None,
) -> bool:
    """Whether the treating clinician's resolution or dismissal of ``closed`` still covers
    ``finding``, newer evidence of the same kind: yes while the finding is no worse than the
    closed alert and alerted, no worse, at every appointment since the closed alert's evidence.
    It re-opens when the finding gets worse - a higher severity, or materially worse evidence
    at the same severity (:func:`_materially_worse`: SRS 33 dismissed, now 24) - or when at
    some appointment in between it did not alert (it cleared, fell below the clinic's alert
    severity, or was only held over) and then came back, or when the client has moved to
    another clinician since it was closed."""
    if not _closed_by_treating(closed, treating) or finding.severity > closed.severity:
        return False
    if _materially_worse(closed, finding, settings):
        return False
    # Since its evidence session itself, not its date: a later session on that day is after it
    # (an appointment without a number, or a session since renumbered: by date).
    seen = _upto_session(closed.session_number, closed.observed_on, observations)
    if seen is None:
        seen = sum(1 for o in observations if o.date <= closed.observed_on)
    for upto in range(seen + 1, len(observations)):  # the full history is ``finding`` itself
        earlier = _alerting(findings_upto(upto), settings.alert_min_severity).get(finding.kind)
        if earlier is None or earlier.severity > closed.severity:
            return False
    return True


def _evidence_corrected(
    alert: Alert,
    observations: Sequence[SessionObservation],
    findings_upto: Callable[[int], Sequence[Finding]],
) -> bool:
    """Whether an alliance alert's own evidence no longer shows its finding: the rules re-run
    on the appointments up to its evidence session (and, for an alert refreshed since it
    opened, up to each session it rested on) find no finding of its kind there (a session
    corrected, e.g. SRS 30 that was a typo for 38). The clear streak (two sessions at the
    concern line, issue 4) is for a rupture that happened: one good rating is no repair. A
    rupture that is no longer in the record has nothing to repair."""
    # Only alerts that otherwise wait for a clear streak (the alliance ones, WAI-SR among them):
    # any other auto-resolves as soon as its finding no longer holds. Not ``dropout_risk``,
    # whose estimate also moves with a refit of the clinic's model.
    if alert.kind == "dropout_risk" or not (alert.kind in WAI_KINDS or alert.concern.is_alliance):
        return False
    # Cut at the evidence session itself, not at its date: a later session on the same day (two
    # may be recorded on one date) is after the evidence, and counting it would read one good
    # rating after a real rupture as a correction.
    latest = _upto_session(alert.session_number, alert.observed_on, observations)
    opened = opening_facts(alert)
    try:
        opened_on = dt.date.fromisoformat(str(opened.get("observed_on")))
    except ValueError:
        return False
    first = _upto_session(opened.get("session_number"), opened_on, observations)
    if latest is None or first is None:
        return False  # an evidence session is gone or renumbered: leave it to the streak
    # A refreshed alert rests on every session from the one it opened on to its latest: the
    # rupture is out of the record only when none of them shows the finding any more (the
    # latest first: the usual answer, and each prefix's rules run at most once).
    between = [u for u in range(first, latest) if observations[u - 1].attended]
    return all(f.kind != alert.kind for upto in (latest, *between) for f in findings_upto(upto))


def _upto_session(
    number: object, on: dt.date, observations: Sequence[SessionObservation]
) -> int | None:
    """How many appointments, in order, run up to and including the attended session
    ``number`` dated ``on`` (its identity: a number alone may have been renumbered by a
    backfill, a date alone may hold two sessions); ``None`` when there is no such session."""
    if not isinstance(number, int):
        return None
    for index, o in enumerate(observations):
        if o.attended and o.session_number == number and o.date == on:
            return index + 1
    return None


def _carried_in_closed(alerts: Iterable[Alert], kind: str) -> list[Alert]:
    """Closed alerts that carried a finding of ``kind`` (listed under ``also_holds`` in their
    evidence), as closed alerts of ``kind`` itself: closed when and as the carrier was, at the
    carried finding's severity."""
    carried: list[Alert] = []
    for a in alerts:
        if a.status.is_active or not a.evidence:
            continue
        for entry in a.evidence.get("also_holds") or ():
            if isinstance(entry, Mapping) and entry.get("kind") == kind:
                label = str(entry.get("severity", a.severity.label)).upper()
                severity = Severity[label] if label in Severity.__members__ else a.severity
                carried.append(replace(a, kind=kind, severity=severity))
    return carried


def _carrier(held: Sequence[Finding], active: Mapping[str, Alert], opening: set[str]) -> str | None:
    """The kind whose live alert carries an active alert's finding (every finding of its kind
    that holds is carried by it, and its alert is active or opening now); ``None`` otherwise,
    and the alert stays: a carrier the clinician dismissed does not silence it."""
    carriers = {f.covered_by for f in held}
    if len(carriers) != 1:
        return None
    (kind,) = carriers
    return kind if kind is not None and (kind in active or kind in opening) else None


def _facts_moved(alert: Alert, finding: Finding) -> bool:
    """Whether ``finding`` says something other than the facts stored with ``alert``: another
    session or day, another leg, or other figures (unknown stored facts: no)."""
    if alert.evidence is None:
        return False
    if (alert.session_number, alert.observed_on, alert.concern) != (
        finding.session_number,
        finding.observed_on,
        finding.concern,
    ):
        return True
    stored = {k: v for k, v in alert.evidence.items() if k not in _RECORD_KEYS}
    return stored != _plain(finding.evidence)


def reconcile(
    alerts: Sequence[Alert],
    findings: Sequence[Finding],
    observations: Sequence[SessionObservation],
    settings: RiskSettings | None = None,
    *,
    context: EpisodeContext | None = None,
    treating: str | None = None,
) -> list[AlertAction]:
    """The actions that bring an episode's alerts in line with its current findings.

    ``alerts`` are all of the episode's alerts, closed ones included (they stop the same
    evidence from reopening). Findings below ``settings.alert_min_severity`` open nothing but,
    while any finding of the kind holds, keep an active alert from auto-resolving.

    ``context`` is the episode's rule context (as given to
    :func:`fit_service.domain.risk.assess_episode`): with it a clinician's dismissal holds while
    the same finding persists (the rules are re-run on the sessions up to each appointment since
    the dismissed evidence, only when that question arises), and WAI-SR alerts clear against the
    clinic's decile. Without it any finding observed after what the clinician saw re-opens.

    ``treating`` is the clinician treating the episode now: a resolution or dismissal by
    another (before the client moved) covers only its own evidence (:func:`_closed_by_treating`).
    """
    settings = settings or RiskSettings()
    active = _active_by_kind(alerts)
    alerting = _strongest(findings, settings.alert_min_severity)
    holding = {f.kind for f in findings}
    actions: list[AlertAction] = []
    findings_upto = _findings_upto(observations, context, settings) if context else None

    def open_or_escalate(kind: str, finding: Finding, history: Sequence[Alert]) -> None:
        alert = active.get(kind)
        if alert is not None:
            if finding.severity > alert.severity:
                actions.append(Escalate(alert.alert_id, finding.severity, finding))
            return
        # Evidence a closed alert covered opens nothing again - unless a former clinician
        # resolved or dismissed it: their judgement does not hold for the clinician the client
        # moved to, not even on the very sessions they saw (an EHR correction moves the client
        # without a new session, and the new clinician must still get their own alert).
        already_closed = any(
            a.kind == kind
            and not a.status.is_active
            and (a.status not in _CLOSED_BY_CLINICIAN or _closed_by_treating(a, treating))
            and _seen(a, treating) >= finding.observed_on
            for a in history
        )
        if not already_closed and findings_upto is not None:
            closed = _latest_closed(history, kind, treating)
            already_closed = closed is not None and _dismissal_holds(
                closed, finding, observations, settings, findings_upto, treating
            )
        if not already_closed:
            actions.append(Open(kind, finding.severity, finding))

    for kind in sorted(alerting):
        open_or_escalate(kind, alerting[kind], alerts)
    # A finding carried in another's alert alerts on its own when that alert can neither stay
    # nor open (the clinician dismissed or resolved it, and the dismissal holds): folding is
    # how a finding is shown, and must not cost the clinician the alert (say, the session-6
    # "change approach" checkpoint after a dismissed deterioration alert).
    carrying = set(active) | {a.kind for a in actions if isinstance(a, Open)}
    unfolded = _strongest(
        (
            replace(f, alerts=True)
            for f in findings
            if f.covered_by is not None and f.alerts_alone and f.covered_by not in carrying
        ),
        settings.alert_min_severity,
    )
    for kind in sorted(unfolded):
        if kind not in alerting:
            # What the clinician saw in the carrier's closed alert (its ``also_holds``) counts
            # as closed with it: a dismissal of the carrier covers the findings it showed, as
            # a dismissal does while the same finding persists; a new fact (a later checkpoint,
            # a worse score) is not covered and opens.
            open_or_escalate(kind, unfolded[kind], [*alerts, *_carried_in_closed(alerts, kind)])

    escalated = {a.alert_id for a in actions if isinstance(a, Escalate)}
    opening = {a.kind for a in actions if isinstance(a, Open)}
    for kind in sorted(active):
        alert = active[kind]
        if kind in holding:
            held = [f for f in findings if f.kind == kind]
            carrier = _carrier(held, active, opening)
            if carrier is not None:
                actions.append(
                    AutoResolve(
                        alert.alert_id,
                        f"{kind} is the same finding as the {carrier} alert, which carries it "
                        "now (one finding, one alert)",
                    )
                )
            elif alert.alert_id not in escalated:
                # Keep what the alert says current (newer evidence, days counted to today); a
                # weaker finding leaves the evidence that raised the alert to its severity.
                current = max(held, key=lambda f: f.severity)
                if current.severity == alert.severity and _facts_moved(alert, current):
                    actions.append(Refresh(alert.alert_id, current))
            continue
        if findings_upto is not None and _evidence_corrected(alert, observations, findings_upto):
            note = (
                f"{kind} {_CORRECTED} (session {alert.session_number}, "
                f"{alert.observed_on.isoformat()}): the ratings there were corrected (or the "
                "clinic's thresholds changed)"
            )
        elif kind in WAI_KINDS:
            streak = wai_clear_streak(observations, alert, settings, context)
            if streak < settings.alliance_clear_sessions:
                continue
            note = (
                f"{kind} no longer holds: WAI-SR {alert.concern.value} subscale no longer weak "
                f"(or SRS at or above {settings.srs_concern_total:g} where no WAI-SR was given) "
                f"for {streak} consecutive sessions since session {alert.session_number}"
            )
        elif alert.concern.is_alliance:
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
                evidence=evidence_record(f),
            )
            by_id[alert.alert_id] = alert
        elif isinstance(action, Escalate | Refresh):
            f = action.finding
            before = by_id[action.alert_id]
            by_id[action.alert_id] = replace(
                before,
                severity=action.severity if isinstance(action, Escalate) else before.severity,
                concern=f.concern,
                session_number=f.session_number,
                observed_on=f.observed_on,
                evidence=evidence_after(before, f),
            )
        else:
            by_id[action.alert_id] = transition(
                by_id[action.alert_id], AlertStatus.AUTO_RESOLVED, action.note
            )
    return list(by_id.values())
