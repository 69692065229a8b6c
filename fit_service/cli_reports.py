"""``flask --app wsgi fit reports …``: generate and archive monthly reports."""

from __future__ import annotations

import click
from flask.cli import AppGroup

reports = AppGroup("reports", help="Monthly benchmark reports.")


def register(group: click.Group) -> None:
    group.add_command(reports)
