"""``flask --app wsgi fit reports …``: generate and archive monthly reports."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

from fit_service.domain.errors import FitError
from fit_service.services import monthly_reports

reports = AppGroup("reports", help="Monthly benchmark reports.")


@reports.command("archive")
@click.option(
    "--month",
    default=None,
    metavar="YYYY-MM",
    help="The month to report. Default: the last full month in each clinic's time zone.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Archive folder. Default: FIT_REPORTS_DIR (reports/ in the project).",
)
def archive(month: str | None, directory: Path | None) -> None:
    """Write every clinic's report as <dir>/<clinic id>/<YYYY-MM>/report.{pdf,json,csv} with
    SHA256SUMS (check with `sha256sum -c SHA256SUMS`). Re-running it over the same data
    rewrites byte-identical files."""
    from fit_service.cli import _wiring  # noqa: PLC0415 - cli imports this module

    wiring = _wiring()
    target = directory or wiring.settings.reports_dir
    try:
        archived = monthly_reports.archive_monthly_reports(wiring.uow, target, month)
    except FitError as exc:
        raise click.ClickException(f"{exc.detail} ({exc.field or 'input'}: {exc.rule})") from None
    except OSError as exc:
        # A file where a folder should be, no permission, a full disk: one line naming the
        # path. Clinics archived before it keep their files (one transaction per clinic);
        # this clinic's audit row is not committed.
        where = f": {exc.filename}" if exc.filename else ""
        raise click.ClickException(
            f"cannot write the report archive ({exc.strerror or type(exc).__name__}{where})"
        ) from None
    for item in archived:
        click.echo(f"{item.clinic_id}  {item.period}  {item.directory}")
    click.echo(f"{len(archived)} clinic report(s) archived under {target}")


def register(group: click.Group) -> None:
    group.add_command(reports)
