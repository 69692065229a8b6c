"""CLI commands that write client data leave audit rows, as the API does."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine, text

from tests.conftest import Tenant


def test_recompute_session_totals_is_audited_per_clinic(
    app: Flask, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    """It rewrites the score copies on every client's sessions; it left no trace."""
    out = app.test_cli_runner().invoke(args=["fit", "recompute-session-totals"])
    assert out.exit_code == 0, out.output
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT actor, api_key_id, record_type, record_id, outcome, status_code "
                "FROM audit_events WHERE action = 'session_totals.recompute' ORDER BY id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("system", None, "clinic", str(tenant.clinic_id), "success", 200),
        ("system", None, "clinic", str(other_tenant.clinic_id), "success", 200),
    ]
