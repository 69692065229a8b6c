"""``flask --app wsgi fit …``: migrate, clinics, API keys (and, later, workers and reports)."""

from __future__ import annotations

from typing import Any

import click
from alembic.util import CommandError as AlembicCommandError
from flask import Flask
from flask.cli import AppGroup
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import DatabaseError, DataError, IntegrityError

from fit_service.adapters import migrations
from fit_service.adapters.orm import Clinic
from fit_service.api.context import Wiring
from fit_service.api.schemas import EXTERNAL_ID
from fit_service.domain.errors import FitError
from fit_service.services import audit, clinics, episode_months, session_totals
from fit_service.services.principals import Principal, Role


class _FitGroup(AppGroup):
    """The ``fit`` group: a database that cannot be reached, is not migrated or is no
    database at all (an SQLite URL naming some other file), or a migration Alembic cannot
    find, ends a command with one clear line and exit code 1 instead of a traceback. Other
    errors (bugs) keep theirs."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatabaseError as exc:
            if isinstance(exc, (IntegrityError, DataError)):
                raise  # a row the command should have refused itself: a bug, with its trace
            # The driver's first line only: later lines (DETAIL) may quote row values, and
            # the statement is left out (hide_parameters hides values, not the SQL).
            reason = next(iter(str(exc.orig).strip().splitlines()), "")
            raise click.ClickException(
                f"database error ({type(exc.orig).__name__}: {reason}); is the database "
                "reachable and migrated ('fit migrate')?"
            ) from None
        except AlembicCommandError as exc:
            raise click.ClickException(f"migration failed: {exc}") from None


fit = _FitGroup("fit", help="fit-service administration.")


def _wiring() -> Wiring:
    from flask import current_app  # noqa: PLC0415

    return current_app.extensions["fit"]


def _fail(error: FitError) -> None:
    raise click.ClickException(f"{error.detail} ({error.field or 'input'}: {error.rule})")


def _revision(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not value.strip():
        # Alembic fails on it with a bare AssertionError.
        raise click.BadParameter("a migration id (e.g. 0004) or 'head', not blank")
    return value


@fit.command("migrate")
@click.option("--revision", default="head", show_default=True, callback=_revision)
def migrate(revision: str) -> None:
    """Bring the database schema to the latest (or the given) migration. Only upgrades.

    A database a newer release has already migrated (a revision this code does not know) is
    left alone and the command succeeds: during a rolling upgrade or after a rollback an older
    instance must still start, as /readyz (200, "ahead") expects."""
    engine = _wiring().engine
    with engine.connect() as conn:
        found = migrations.current_revision(conn)
    if found is not None and not migrations.is_revision(found):
        click.echo(
            f"database at migration {found}, newer than this release knows "
            f"({migrations.head_revision()}): left as it is"
        )
        return
    migrations.upgrade(engine, revision)
    with engine.connect() as conn:
        current = migrations.current_revision(conn)
    if migrations.is_revision(revision) and current != revision:
        # Alembic treats an upgrade to an older revision as nothing to do; saying "at
        # migration 0002" then would be false.
        raise click.ClickException(
            f"database stays at migration {current}: {revision} is older, and 'fit migrate' "
            "only upgrades"
        )
    click.echo(f"database at migration {current}")


@fit.command("recompute-session-totals")
def recompute_session_totals() -> None:
    """Copy every session's client ORS/CORS/SRS/CSRS totals from its ratings again, and
    rebuild the report's per-month sums of them (services/episode_months.py).

    Migrations 0004 and 0007 build them once; run this after an upgrade from a release before
    0007 once no instance of that release is still writing (sessions it wrote after the
    migration lack the copies the monthly report reads). Idempotent.
    """
    with _wiring().uow() as uow:
        session_totals.recompute(uow.session.connection())
        # the report's per-month sums are read from those totals
        for clinic_id in uow.session.scalars(select(Clinic.id).order_by(Clinic.id)).all():
            episode_months.refresh_clinic(uow.session.connection(), clinic_id)
        # It rewrites score columns of every client's sessions: a write of client data,
        # audited like the others (one row per clinic, by the system, in the same transaction).
        for clinic_id, public_id in uow.session.execute(
            select(Clinic.id, Clinic.public_id).order_by(Clinic.id)
        ):
            audit.record(
                uow.session,
                Principal(clinic_id, None, Role.MANAGER),
                [audit.AuditEntry("session_totals.recompute", "clinic", str(public_id))],
            )
        uow.commit()
    click.echo("session totals recomputed from ratings")


@fit.command("create-clinic")
@click.argument("name")
@click.option("--timezone", default="UTC", show_default=True, help="IANA zone, e.g. Europe/Oslo")
def create_clinic(name: str, timezone: str) -> None:
    """Create a clinic (a tenant) and print its id."""
    try:
        with _wiring().uow() as uow:
            info = clinics.create_clinic(uow, name, timezone)
    except FitError as exc:
        _fail(exc)
        return
    click.echo(f"clinic created: {info.id}  ({info.name}, {info.timezone})")


@fit.command("list-clinics")
def list_clinics() -> None:
    """List the clinics: id, name, time zone."""
    with _wiring().uow() as uow:
        for info in clinics.list_clinics(uow):
            click.echo(f"{info.id}  {info.name}  {info.timezone}")


@fit.command("create-key")
@click.argument("clinic_id")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", default="", help="What the key is for, e.g. 'EHR production'.")
@click.option("--clinician", default=None, help="EHR clinician id (clinician keys only).")
def create_key(clinic_id: str, role: str, name: str, clinician: str | None) -> None:
    """Issue an API key. The key is printed once and stored only as a hash."""
    if clinician:
        _check_clinician_id(clinician)
    try:
        with _wiring().uow() as uow:
            issued = clinics.create_api_key(uow, clinic_id, Role(role), name, clinician)
    except FitError as exc:
        _fail(exc)
        return
    click.echo(f"{issued.role.value} key for clinic {issued.clinic_id} (prefix {issued.prefix}):")
    click.echo(issued.secret)
    click.echo("Store it now: it cannot be shown again.", err=True)


def _check_clinician_id(clinician: str) -> None:
    """The id ingestion accepts (the API's own rule): a key bound to another would match no
    clinician the EHR ever sends."""
    try:
        EXTERNAL_ID(clinician)
    except ValidationError as exc:
        messages = "; ".join(str(m) for m in exc.messages)
        raise click.ClickException(
            f"clinician id {clinician!r} is not an EHR id: {messages} (clinician: external_id)"
        ) from None


@fit.command("revoke-key")
@click.argument("prefix")
def revoke_key(prefix: str) -> None:
    """Revoke an API key by its prefix, as create-key and list-keys print it (in a key
    fit_PREFIX_SECRET, the part between 'fit_' and the next '_'). The whole key is accepted
    too; only its prefix is used, and its secret part is never printed."""
    parts = prefix.split("_", 2)
    if len(parts) == 3 and parts[0] == "fit":
        # A pasted key: echoing it back in "no API key with prefix …" would print the secret.
        prefix = parts[1]
    try:
        with _wiring().uow() as uow:
            clinics.revoke_api_key(uow, prefix)
        _wiring().key_cache.clear()
    except FitError as exc:
        _fail(exc)
        return
    click.echo(f"key {prefix} revoked")


@fit.command("list-keys")
@click.argument("clinic_id")
def list_keys(clinic_id: str) -> None:
    """List a clinic's keys (prefixes and roles; secrets are never stored)."""
    try:
        with _wiring().uow() as uow:
            keys = clinics.list_api_keys(uow, clinic_id)
    except FitError as exc:
        _fail(exc)
        return
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        who = f" clinician={k.clinician}" if k.clinician else ""
        click.echo(f"{k.prefix}  {k.role.value:<9} {state:<18} {k.name}{who}")


def register(app: Flask) -> None:
    from fit_service import cli_alerts, cli_reports  # noqa: PLC0415 - they import this module

    cli_alerts.register(fit)
    cli_reports.register(fit)
    app.cli.add_command(fit)
