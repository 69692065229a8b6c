"""``flask --app wsgi fit worker`` (outbox delivery) and ``fit check-risks`` (time-based rules)."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, date, datetime, timedelta
from types import FrameType

import click

from fit_service.adapters.email import SmtpEmailSender, SmtpSettings
from fit_service.adapters.webhooks import HttpWebhookSender
from fit_service.api.context import Wiring
from fit_service.services import delivery_worker, risk_schedule


def _wiring() -> Wiring:
    from flask import current_app  # noqa: PLC0415

    return current_app.extensions["fit"]


def build_worker(
    wiring: Wiring, *, batch: int, lease_seconds: float, max_send_seconds: float | None = None
) -> delivery_worker.DeliveryWorker:
    """The worker with the adapters the settings pick (no SMTP host: e-mail rows wait)."""
    settings = wiring.settings
    smtp = SmtpSettings.from_settings(settings)
    return delivery_worker.DeliveryWorker(
        wiring.session_factory,
        HttpWebhookSender.from_settings(settings),
        SmtpEmailSender(smtp) if smtp is not None else None,
        base_url=settings.public_base_url,
        batch=batch,
        lease=timedelta(seconds=lease_seconds),
        max_send=timedelta(seconds=max_send_seconds) if max_send_seconds else None,
    )


#: Seconds: a zero or negative lease or send limit is refused by the worker (a traceback), and
#: a zero or negative poll interval would query the outbox in a busy loop.
_POSITIVE = click.FloatRange(min=0, min_open=True)


@click.command("worker")
@click.option("--once", is_flag=True, help="Send everything due now, then exit.")
@click.option(
    "--batch", default=delivery_worker.DEFAULT_BATCH, show_default=True, type=click.IntRange(min=1)
)
@click.option(
    "--lease-seconds",
    default=delivery_worker.DEFAULT_LEASE.total_seconds(),
    show_default=True,
    type=_POSITIVE,
    help="How long a claimed batch is reserved; a row with less than --max-send-seconds left "
    "is renewed before it is sent.",
)
@click.option(
    "--max-send-seconds",
    default=None,
    type=_POSITIVE,
    help="The longest one send may take (default: half the lease, within "
    f"{delivery_worker.MIN_MAX_SEND.total_seconds():g}-"
    f"{delivery_worker.DEFAULT_MAX_SEND.total_seconds():g} s); at least "
    f"{delivery_worker.MIN_MAX_SEND.total_seconds():g} s (a webhook's name lookup and 30 s "
    "deadline) and shorter than the lease.",
)
@click.option("--poll-seconds", default=1.0, show_default=True, type=_POSITIVE)
def worker(
    once: bool,
    batch: int,
    lease_seconds: float,
    max_send_seconds: float | None,
    poll_seconds: float,
) -> None:
    """Deliver alert webhooks and e-mails from the outbox (safe to run several at once)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if max_send_seconds is not None and max_send_seconds >= lease_seconds:
        raise click.BadParameter(
            f"{max_send_seconds:g} is not shorter than --lease-seconds {lease_seconds:g}",
            param_hint="--max-send-seconds",
        )
    # A row is sent only with at least max_send of its lease left; a max_send below the longest
    # a send takes would let a send run past its lease and another worker send the row again.
    shortest = delivery_worker.MIN_MAX_SEND.total_seconds()
    if max_send_seconds is not None and max_send_seconds < shortest:
        raise click.BadParameter(
            f"{max_send_seconds:g} is shorter than the longest a send can take ({shortest:g} s)",
            param_hint="--max-send-seconds",
        )
    if max_send_seconds is None and lease_seconds <= shortest:
        raise click.BadParameter(
            f"{lease_seconds:g} is not longer than the longest a send can take ({shortest:g} s)",
            param_hint="--lease-seconds",
        )
    w = build_worker(
        _wiring(), batch=batch, lease_seconds=lease_seconds, max_send_seconds=max_send_seconds
    )
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        # Finish the message in flight, give back the rest of the batch, exit.
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if once:
        w.drain(stop)
    else:
        click.echo("outbox worker started", err=True)
        w.run_forever(stop, poll_seconds)
    s = w.stats
    click.echo(
        f"claimed {s.claimed}, sent {s.sent}, retry later {s.retried}, dead {s.dead}, "
        f"given back {s.released}, deferred {s.deferred}, leases renewed {s.renewed}, "
        f"lost to another worker {s.lost}"
    )


@click.command("check-risks")
@click.option(
    "--today",
    default=None,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Assess as of this date instead of each clinic's today.",
)
def check_risks(today: object) -> None:
    """Run the risk rules over every open episode (time-based signals such as long gaps)."""
    day: date | None = today.date() if today is not None else None  # type: ignore[attr-defined]
    # No clinic's today is later than UTC's by more than a day (UTC+14 is the furthest ahead).
    # A date past that would judge every open episode's gap to a day that has not come:
    # long-gap alerts for all of them, sent to their clinicians.
    latest = datetime.now(UTC).date() + timedelta(days=1)
    if day is not None and day > latest:
        raise click.BadParameter(
            f"{day.isoformat()} is in the future (no clinic's today is past {latest.isoformat()})",
            param_hint="'--today'",
        )
    summary = risk_schedule.check_risks(_wiring().uow, today=day)
    click.echo(
        f"episodes {summary.episodes}, alerts opened {summary.opened}, escalated "
        f"{summary.escalated}, refreshed {summary.refreshed}, auto-resolved "
        f"{summary.auto_resolved}, deliveries queued {summary.deliveries}, failed "
        f"{len(summary.failed_episodes)}"
    )


def register(group: click.Group) -> None:
    """Add this module's commands to the ``fit`` group."""
    group.add_command(worker)
    group.add_command(check_risks)
