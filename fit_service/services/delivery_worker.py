"""The outbox worker: claim due deliveries, send them, record the outcome with the retry policy.

Guarantees and how they are kept:

* **At least once, never lost.** A claim sets a *lease* (``outbox.locked_until``) and commits at
  once; sending happens outside any transaction. A worker killed mid-batch (SIGKILL, OOM, a lost
  node) leaves its rows leased; when the lease runs out they are due again and another worker
  (or the restarted one) sends them. A message that was sent but not yet recorded is sent again
  under the same ``webhook-id`` / ``Message-ID``, which receivers de-duplicate on.
* **Several workers, no double sends.** On PostgreSQL the claim is
  ``SELECT … FOR UPDATE SKIP LOCKED`` + the lease in one short transaction: two workers never
  claim the same row, and a row being claimed is skipped rather than waited on. On SQLite every
  transaction starts with ``BEGIN IMMEDIATE`` (``adapters/db.py``), so claims are serialised by
  the database lock; that is safe with several workers but one worker is the intended set-up.
* **Stale writers lose.** Recording an outcome is conditional on the row still carrying *this*
  worker's lease, so a worker that overran its lease cannot overwrite the outcome recorded by
  the worker that took the row over.
* **Never sent on an expired lease.** A batch can outlive its lease (a receiver or a resolver
  that answers only at each timeout, for every address of a host). So before each row the worker
  checks the time left on that row's lease against ``max_send``, the longest one send may take
  (half the lease, within :data:`MIN_MAX_SEND` and :data:`DEFAULT_MAX_SEND`, unless set; never
  below :data:`MIN_MAX_SEND`, and shorter than the lease): with less left it *renews* the
  row's lease (``UPDATE … WHERE id = :id AND locked_until = :ours``, then a fresh ``now +
  lease``). If that matches nothing, another worker has claimed the row since our lease ran
  out: the row is skipped — not sent, not recorded — and counted as ``lost``; it is that
  worker's now. A row is thus only ever sent with at least ``max_send`` of its lease left.
  With more left the worker still checks that the row is its own and pending, so a row dropped
  since the claim (``DELETE /v1/webhook-endpoints/…`` marks its rows dead) is skipped too. The
  CLI defaults are 20 rows and a 300 s lease, so a 60 s ``max_send``. A send takes at most
  ``webhooks.LONGEST_ATTEMPT`` (35 s: a name lookup bounded to 5 s, then at most 30 s from the
  first connect to the status line, however slowly the receiver drips its answer) or
  ``email.LONGEST_ATTEMPT`` (30 s from the relay's name lookup to the QUIT, likewise), so
  ``max_send`` is never below :data:`MIN_MAX_SEND`: with less, a row could start its send
  with 20 s of lease left (a 40 s lease once gave a 20 s ``max_send``), run past the lease and
  be sent again by another worker. It can be raised with ``--max-send-seconds`` (it must stay
  below the lease).
* **Retries over hours.** ``domain.delivery.next_attempt_at`` (5 s, 5 min, 30 min, 2 h, 5 h,
  10 h, 10 h; give up after 48 h); a malformed URL or a permanently refused address is dead at
  once (a host resolving to a private address is retried: DNS can change, each try re-checks).
  A row that falls due past the 48 h (counted from its first failure, or from when it was
  queued if never attempted: the worker was down) is dead too, *without* being sent
  (``last_error`` "expired"; ``domain.delivery.is_too_old``). An endpoint without a success
  for the clinic's ``delivery.failing_after_hours`` (default 24 h) is *failing*: shown so on
  ``GET /v1/webhook-endpoints`` and logged.
* **Only to the row's own clinic.** A webhook endpoint or clinician is used only when it
  belongs to the clinic of the outbox row that names it; a row pointing at another clinic's
  (which the services never write, but a bug or a hand-edited row could) is dead, unsent.

* **One clinic's outage does not hold up the others.** An endpoint that does not answer at all
  (timeout, refused connection) is tried once per batch; its other rows in the batch are
  deferred, untried, to that row's retry time (:meth:`DeliveryWorker.run_once`).

Nothing logged here contains a payload, an address, a URL path or a secret.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from fit_service.adapters import email as email_adapter
from fit_service.adapters import webhooks as webhook_adapter
from fit_service.adapters.email import EmailSender
from fit_service.adapters.orm import Clinic, Clinician, OutboxMessage, WebhookEndpoint, utcnow
from fit_service.adapters.webhooks import WebhookEndpoint as Endpoint
from fit_service.adapters.webhooks import WebhookSender
from fit_service.domain.delivery import (
    DeliveryResult,
    InvalidDeliveryMessage,
    RetryPolicy,
    WebhookMessage,
    build_alert_email,
    is_endpoint_failing,
    is_too_old,
    next_attempt_at,
)
from fit_service.services.alerting import EMAIL, WEBHOOK
from fit_service.services.clinic_settings import delivery_settings

log = logging.getLogger(__name__)

DEFAULT_BATCH = 20
DEFAULT_LEASE = timedelta(seconds=300)
#: The longest one send is assumed to take, unless half the lease is less (see the module doc).
DEFAULT_MAX_SEND = timedelta(seconds=60)
#: ``max_send`` is never set below this: the longest a send takes with the adapters' defaults
#: (a webhook's name lookup and its deadline, 35 s), and 5 s to close the connection and record
#: the outcome (and for clocks of two worker hosts that differ a little) before the lease ends.
MIN_MAX_SEND = timedelta(
    seconds=max(webhook_adapter.LONGEST_ATTEMPT, email_adapter.LONGEST_ATTEMPT) + 5
)


def default_max_send(lease: timedelta) -> timedelta:
    """``max_send`` when none is given: half the lease, within :data:`MIN_MAX_SEND` and
    :data:`DEFAULT_MAX_SEND` (a lease of :data:`MIN_MAX_SEND` or less is too short to use)."""
    return min(DEFAULT_MAX_SEND, max(MIN_MAX_SEND, lease / 2))


@dataclass(slots=True)
class _Claimed:
    id: int
    clinic_id: int
    channel: str
    destination_id: int
    message_id: str
    body: str = field(repr=False)
    attempts: int
    first_failed_at: datetime | None
    created_at: datetime
    lease: datetime


@dataclass(frozen=True, slots=True)
class _Destinations:
    endpoints: dict[int, Any]  # id -> (id, clinic_id, url, secret, enabled)
    clinicians: dict[int, Any]  # id -> (id, clinic_id, email)
    failing_after: dict[int, timedelta]

    def endpoint(self, row: _Claimed) -> Any | None:
        """The row's webhook endpoint, if it exists and is the row's clinic's."""
        found = self.endpoints.get(row.destination_id)
        return found if found is not None and found.clinic_id == row.clinic_id else None

    def clinician(self, row: _Claimed) -> Any | None:
        """The row's clinician, if they exist and are the row's clinic's."""
        found = self.clinicians.get(row.destination_id)
        return found if found is not None and found.clinic_id == row.clinic_id else None

    def elsewhere(self, row: _Claimed) -> bool:
        """Whether the row names another clinic's endpoint or clinician."""
        table = self.endpoints if row.channel == WEBHOOK else self.clinicians
        found = table.get(row.destination_id)
        return found is not None and found.clinic_id != row.clinic_id


@dataclass(slots=True)
class WorkerStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0
    renewed: int = 0  # leases extended before a send
    lost: int = 0  # rows skipped: another worker claimed them, or they were dropped, since
    deferred: int = 0  # rows put back untried: their endpoint did not answer another row


class DeliveryWorker:
    """Sends what the outbox holds. ``email_sender=None`` (SMTP not configured) leaves e-mail
    rows pending, untouched, until a worker with SMTP runs."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        webhook_sender: WebhookSender,
        email_sender: EmailSender | None,
        *,
        base_url: str,
        batch: int = DEFAULT_BATCH,
        lease: timedelta = DEFAULT_LEASE,
        max_send: timedelta | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if lease <= timedelta(0):
            raise ValueError("lease must be positive")
        if max_send is None:
            max_send = default_max_send(lease)
        if max_send < MIN_MAX_SEND:
            raise ValueError(
                f"max_send must be at least {MIN_MAX_SEND.total_seconds():g} s, the longest a "
                "send can take"
            )
        if max_send >= lease:
            raise ValueError(
                f"max_send ({max_send.total_seconds():g} s) must be shorter than the lease"
            )
        self.max_send = max_send
        self._factory = session_factory
        self._webhooks = webhook_sender
        self._email = email_sender
        self._base_url = base_url
        self.batch = batch
        self.lease = lease
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self.stats = WorkerStats()
        self._channels = [WEBHOOK] + ([EMAIL] if email_sender is not None else [])

    # ------------------------------------------------------------------ claim
    def claim(self) -> tuple[list[_Claimed], _Destinations]:
        """Lease up to ``batch`` due rows (one short transaction) and load where they go."""
        with self._factory() as db, db.begin():
            now = self._clock()
            lease = now + self.lease
            query = (
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.status == "pending",
                    OutboxMessage.next_attempt_at <= now,
                    OutboxMessage.channel.in_(self._channels),
                    or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
                )
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(self.batch)
            )
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(db.scalars(query).all())
            if not ids:
                return [], _Destinations({}, {}, {})
            db.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(locked_until=lease)
                .execution_options(synchronize_session=False)
            )
            rows = db.execute(
                select(
                    OutboxMessage.id,
                    OutboxMessage.clinic_id,
                    OutboxMessage.channel,
                    OutboxMessage.destination_id,
                    OutboxMessage.message_id,
                    OutboxMessage.body,
                    OutboxMessage.attempts,
                    OutboxMessage.first_failed_at,
                    OutboxMessage.created_at,
                )
                .where(OutboxMessage.id.in_(ids))
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            ).all()
            claimed = [_Claimed(*r, lease=lease) for r in rows]
            destinations = self._destinations(db, claimed)
        self.stats.claimed += len(claimed)
        return claimed, destinations

    @staticmethod
    def _destinations(db: Session, claimed: Iterable[_Claimed]) -> _Destinations:
        claimed = list(claimed)
        hook_ids = {c.destination_id for c in claimed if c.channel == WEBHOOK}
        mail_ids = {c.destination_id for c in claimed if c.channel == EMAIL}
        endpoints = (
            {
                r.id: r
                for r in db.execute(
                    select(
                        WebhookEndpoint.id,
                        WebhookEndpoint.clinic_id,
                        WebhookEndpoint.url,
                        WebhookEndpoint.secret,
                        WebhookEndpoint.enabled,
                    ).where(WebhookEndpoint.id.in_(hook_ids))
                )
            }
            if hook_ids
            else {}
        )
        clinicians = (
            {
                r.id: r
                for r in db.execute(
                    select(Clinician.id, Clinician.clinic_id, Clinician.email).where(
                        Clinician.id.in_(mail_ids)
                    )
                )
            }
            if mail_ids
            else {}
        )
        clinics = {c.clinic_id for c in claimed}
        failing_after = {
            r.id: delivery_settings(r.settings or {}).failing_after
            for r in db.execute(select(Clinic.id, Clinic.settings).where(Clinic.id.in_(clinics)))
        }
        return _Destinations(endpoints, clinicians, failing_after)

    # ------------------------------------------------------------------ send
    def _send(self, row: _Claimed, where: _Destinations) -> DeliveryResult:
        if where.elsewhere(row):
            # Defence in depth: the services only queue a clinic's alerts to its own endpoints
            # and clinicians, but a row that says otherwise must not carry one clinic's alert
            # (or its timing) to another's receiver. Ids only in the log.
            log.warning(
                "outbox %s (%s): destination %s is not clinic %s's; not sent",
                row.message_id,
                row.channel,
                row.destination_id,
                row.clinic_id,
            )
            return DeliveryResult.failed("destination belongs to another clinic", retryable=False)
        if row.channel == WEBHOOK:
            endpoint = where.endpoint(row)
            if endpoint is None or not endpoint.enabled:
                return DeliveryResult.failed("endpoint deleted or disabled", retryable=False)
            return self._webhooks.send(
                Endpoint(endpoint.url, endpoint.secret), WebhookMessage(row.message_id, row.body)
            )
        assert self._email is not None  # e-mail rows are claimed only with a sender
        clinician = where.clinician(row)
        address = clinician.email if clinician is not None else None
        if not address:
            return DeliveryResult.failed("clinician has no e-mail address", retryable=False)
        try:
            email = build_alert_email(
                to=address,
                alert_id=json.loads(row.body)["alert_id"],
                base_url=self._base_url,
                message_id=row.message_id,
            )
        except (InvalidDeliveryMessage, ValueError, KeyError):
            return DeliveryResult.failed("unsendable e-mail", retryable=False)
        return self._email.send(email)

    # ------------------------------------------------------------------ record
    def _record(
        self, row: _Claimed, where: _Destinations, result: DeliveryResult
    ) -> datetime | None:
        """Store the outcome of one attempt; returns when the row is due again (``None`` when
        it is sent or dead, or when another worker owns it now)."""
        now = self._clock()
        mine = (OutboxMessage.id == row.id) & (OutboxMessage.locked_until == row.lease)
        retry_at: datetime | None = None
        with self._factory() as db, db.begin():
            if result.delivered:
                values: dict[str, Any] = {
                    "status": "sent",
                    "sent_at": now,
                    "attempts": row.attempts + 1,
                    "locked_until": None,
                    "last_error": None,
                }
                self.stats.sent += 1
            else:
                attempts = row.attempts + 1
                # Stamped by whichever worker failed first, on its own clock: one running
                # ahead of ours must not put the first failure after "now" (the policy refuses
                # that, and the row would loop on its lease).
                first = min(row.first_failed_at, now) if row.first_failed_at else now
                retry_at = (
                    next_attempt_at(attempts, first, now, self.policy, jitter_key=row.message_id)
                    if result.retryable
                    else None
                )
                values = {
                    "attempts": attempts,
                    "first_failed_at": first,
                    "last_error": result.reason[:200],
                    "locked_until": None,
                    "status": "pending" if retry_at else "dead",
                    "next_attempt_at": retry_at or now,
                }
                if retry_at:
                    self.stats.retried += 1
                else:
                    self.stats.dead += 1
                    log.warning(
                        "outbox %s (%s) dead: %s", row.message_id, row.channel, result.reason
                    )
            changed = db.execute(
                update(OutboxMessage)
                .where(mine)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if not changed:
                # Our lease ran out and another worker owns the row now: its outcome counts.
                log.warning("outbox %s: lease lost before recording", row.message_id)
                return None
            if row.channel == WEBHOOK and where.endpoint(row) is not None:
                self._endpoint_health(db, row, where, result.delivered, now)
        return retry_at

    def _endpoint_health(
        self, db: Session, row: _Claimed, where: _Destinations, delivered: bool, now: datetime
    ) -> None:
        endpoint = WebhookEndpoint.id == row.destination_id
        if delivered:
            db.execute(
                update(WebhookEndpoint)
                .where(endpoint)
                .values(last_success_at=now, failing_since=None)
                .execution_options(synchronize_session=False)
            )
            return
        db.execute(
            update(WebhookEndpoint)
            .where(endpoint, WebhookEndpoint.failing_since.is_(None))
            .values(failing_since=now)
            .execution_options(synchronize_session=False)
        )
        since = db.scalar(select(WebhookEndpoint.failing_since).where(endpoint))
        policy = RetryPolicy(
            failing_after=where.failing_after.get(row.clinic_id, self.policy.failing_after)
        )
        if is_endpoint_failing(since, now, policy):
            log.warning(
                "webhook endpoint %s is failing (no success since %s)", row.destination_id, since
            )

    def _drop_expired(self, row: _Claimed) -> bool:
        """Mark ``row`` dead without sending it if it is too old to send (see the module doc);
        ``True`` when it was. Not an attempt: ``attempts`` and the endpoint's health stay."""
        now = self._clock()
        if not is_too_old(row.first_failed_at or row.created_at, now, self.policy):
            return False
        with self._factory() as db, db.begin():
            changed = db.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.locked_until == row.lease)
                .values(status="dead", last_error="expired", locked_until=None)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        if changed:
            self.stats.dead += 1
            log.warning("outbox %s (%s) dead: expired before delivery", row.message_id, row.channel)
        return True

    def _defer(self, row: _Claimed, until: datetime) -> None:
        """Put ``row`` back until ``until`` without an attempt: its endpoint just failed to
        answer another row of this batch (see :meth:`run_once`)."""
        with self._factory() as db, db.begin():
            changed = db.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.locked_until == row.lease)
                .values(next_attempt_at=until, locked_until=None)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        if changed:
            self.stats.deferred += 1
        else:  # the lease ran out and another worker has the row: as in _record, theirs counts
            self.stats.lost += 1

    def _release(self, rows: Iterable[_Claimed]) -> None:
        """Give back claimed rows not attempted (shutdown), so they need not wait for the lease."""
        rows = list(rows)
        if not rows:
            return
        with self._factory() as db, db.begin():
            for row in rows:
                db.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id, OutboxMessage.locked_until == row.lease)
                    .values(locked_until=None)
                    .execution_options(synchronize_session=False)
                )
        self.stats.released += len(rows)

    def _hold(self, row: _Claimed) -> bool:
        """Make sure ``row`` is still this worker's and pending, with at least ``max_send`` of
        its lease left, before it is sent; renew the lease if less is left. ``False``: the
        lease ran out and another worker has claimed the row since, or the row was dropped
        (its endpoint deleted) since the claim, so this worker must neither send nor record
        it. Checked per row, not trusted from the claim: a batch takes minutes, and an admin
        who deletes an endpoint expects it to get nothing more."""
        now = self._clock()
        mine = (
            (OutboxMessage.id == row.id)
            & (OutboxMessage.locked_until == row.lease)
            & (OutboxMessage.status == "pending")
        )
        renew = row.lease - now < self.max_send
        lease = now + self.lease
        with self._factory() as db, db.begin():
            if renew:
                held = db.execute(
                    update(OutboxMessage)
                    .where(mine)
                    .values(locked_until=lease)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
            else:
                held = db.scalar(select(func.count()).where(mine))
        if not held:
            log.warning("outbox %s: no longer ours or pending; skipped", row.message_id)
            self.stats.lost += 1
            return False
        if renew:
            row.lease = lease
            self.stats.renewed += 1
        return True

    # ------------------------------------------------------------------ loops
    def run_once(self, stop: threading.Event | None = None) -> int:
        """Claim one batch and work through it; returns how many rows were claimed.

        A webhook endpoint that does not answer at all (a timeout, a refused connection: no
        HTTP status) is tried once per batch: its other rows in the batch are deferred to the
        failed row's retry time, not attempted. Rows are claimed oldest first, so without this
        one clinic's unreachable endpoint with a backlog of N alerts held every other clinic's
        alerts back by N connect timeouts (10 s each) per round of retries.
        """
        claimed, where = self.claim()
        unreachable: dict[int, datetime] = {}  # webhook endpoint -> when to try it again
        for index, row in enumerate(claimed):
            if stop is not None and stop.is_set():
                self._release(claimed[index:])
                break
            if self._drop_expired(row):
                continue
            if row.channel == WEBHOOK and row.destination_id in unreachable:
                self._defer(row, unreachable[row.destination_id])
                continue
            if not self._hold(row):
                continue
            try:
                result = self._send(row, where)
            except Exception:  # the adapters never raise for delivery failures; a bug might
                log.exception("outbox %s: sender raised", row.message_id)
                result = DeliveryResult.failed("internal error")
            retry_at = self._record(row, where, result)
            if row.channel == WEBHOOK and retry_at is not None and result.status_code is None:
                unreachable[row.destination_id] = retry_at
        return len(claimed)

    def drain(self, stop: threading.Event | None = None) -> int:
        """Run batches until nothing is due (``--once``); returns rows claimed in all."""
        total = 0
        while stop is None or not stop.is_set():
            n = self.run_once(stop)
            total += n
            if n == 0:
                break
        return total

    def run_forever(self, stop: threading.Event, poll_seconds: float = 1.0) -> None:
        """Work until ``stop`` is set (SIGTERM/SIGINT); between batches wait ``poll_seconds``."""
        while not stop.is_set():
            try:
                n = self.run_once(stop)
            except Exception:  # a database hiccup must not end the worker; retry after a pause
                log.exception("outbox worker: batch failed")
                n = 0
            if n == 0:
                stop.wait(poll_seconds)
