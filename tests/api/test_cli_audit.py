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


def test_issuing_and_revoking_a_key_is_audited(app: Flask, tenant: Tenant, engine: Engine) -> None:
    """Who may reach a clinic's data changed: the key's clinic, the action and its prefix are
    recorded, never the secret."""
    runner = app.test_cli_runner()
    out = runner.invoke(args=["fit", "create-key", str(tenant.clinic_id), "--role", "manager"])
    assert out.exit_code == 0, out.output
    with engine.connect() as conn:
        prefix = conn.scalar(text("SELECT prefix FROM api_keys ORDER BY id DESC LIMIT 1"))
    assert prefix is not None
    out = runner.invoke(args=["fit", "revoke-key", prefix])
    assert out.exit_code == 0, out.output
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.action, a.actor, a.record_type, a.record_id, c.public_id "
                "FROM audit_events a JOIN clinics c ON c.id = a.clinic_id "
                "WHERE a.action LIKE 'api_key.%' ORDER BY a.id"
            )
        ).all()
    assert [tuple(r[:4]) for r in rows][-2:] == [
        ("api_key.create", "system", "api_key", prefix),
        ("api_key.revoke", "system", "api_key", prefix),
    ]
    assert {str(r[4]).replace("-", "") for r in rows[-2:]} == {tenant.clinic_id.hex}
