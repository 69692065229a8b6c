"""``flask --app wsgi fit worker`` and time-based risk checks."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's commands to the ``fit`` group."""
