"""Use cases for a clinic's webhook endpoints (admin): register, list, delete.

The signing secret (Standard Webhooks ``whsec_…``) is generated here and returned once, when
the endpoint is registered; it is stored because signing needs it in clear, and never shown
again. URLs are checked on registration (and again by the sender before every attempt, since
DNS can change): hosts that resolve to private or loopback addresses are refused unless
``Settings.webhooks_allow_private`` says otherwise. Such a host and one that does not resolve
get the same answer, naming no address (``webhooks.REFUSED_HOST``): an admin key must not be
a way to map the network the service runs in.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select, update

from fit_service.adapters.orm import Clinic, OutboxMessage, WebhookEndpoint, utcnow
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.adapters.webhooks import check_webhook_url, generate_secret, receiver_key
from fit_service.domain.delivery import RetryPolicy, is_endpoint_failing
from fit_service.domain.errors import Conflict, NotFound
from fit_service.services import audit
from fit_service.services.clinic_settings import delivery_settings
from fit_service.services.principals import Permission, Principal

#: Every alert fans out to every endpoint: a small cap keeps the outbox bounded per alert.
MAX_ENDPOINTS_PER_CLINIC = 10


def _view(row: WebhookEndpoint, policy: RetryPolicy) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": str(row.public_id),
        "url": row.url,
        "enabled": row.enabled,
        "failing": is_endpoint_failing(row.failing_since, now, policy),
        "failing_since": row.failing_since.isoformat() if row.failing_since else None,
        "last_success_at": row.last_success_at.isoformat() if row.last_success_at else None,
        "created_at": row.created_at.isoformat(),
    }


def _policy(uow: UnitOfWork, clinic_id: int) -> RetryPolicy:
    stored = uow.session.scalar(select(Clinic.settings).where(Clinic.id == clinic_id)) or {}
    return RetryPolicy(failing_after=delivery_settings(stored).failing_after)


def register_endpoint(
    uow: UnitOfWork, principal: Principal, url: str, *, allow_private: bool
) -> dict[str, Any]:
    """Register ``url``; the answer carries the secret, the only time it is shown."""
    principal.require(Permission.WEBHOOKS_MANAGE)
    check_webhook_url(url, allow_private=allow_private)
    db = uow.session
    # Count and insert under the clinic row's lock: two registrations at once would otherwise
    # both count nine and both insert (PostgreSQL; SQLite serialises writers already).
    db.execute(select(Clinic.id).where(Clinic.id == principal.clinic_id).with_for_update())
    count = db.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.clinic_id == principal.clinic_id)
    )
    # The same receiver twice would get every alert twice, under two webhook-ids it cannot
    # de-duplicate (a registration retried after a timeout, say): refused. Compared as the
    # receiver the URL reaches, so "https://Hooks.example:443/x" is "https://hooks.example/x".
    wanted = receiver_key(url)
    existing = next(
        (
            public_id
            for public_id, stored in db.execute(
                select(WebhookEndpoint.public_id, WebhookEndpoint.url).where(
                    WebhookEndpoint.clinic_id == principal.clinic_id
                )
            )
            if stored == url or receiver_key(stored) == wanted
        ),
        None,
    )
    if existing is not None:
        raise Conflict(
            f"this URL is registered already as endpoint {existing}; delete it first to get "
            "a new secret",
            field="url",
            rule="duplicate_endpoint",
        )
    if (count or 0) >= MAX_ENDPOINTS_PER_CLINIC:
        raise Conflict(
            f"a clinic has at most {MAX_ENDPOINTS_PER_CLINIC} webhook endpoints; delete one first",
            field="url",
            rule="too_many_endpoints",
        )
    row = WebhookEndpoint(
        clinic_id=principal.clinic_id, url=url, secret=generate_secret(), enabled=True
    )
    db.add(row)
    db.flush()
    view = _view(row, _policy(uow, principal.clinic_id))
    view["secret"] = row.secret
    audit.record(
        db,
        principal,
        [
            audit.AuditEntry(
                "webhook_endpoint.create", "webhook_endpoint", view["id"], status_code=201
            )
        ],
    )
    uow.commit()
    return view


def list_endpoints(uow: UnitOfWork, principal: Principal) -> list[dict[str, Any]]:
    principal.require(Permission.WEBHOOKS_MANAGE)
    policy = _policy(uow, principal.clinic_id)
    rows = uow.session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.clinic_id == principal.clinic_id)
        .order_by(WebhookEndpoint.id)
    ).all()
    uow.commit()
    return [_view(r, policy) for r in rows]


def delete_endpoint(uow: UnitOfWork, principal: Principal, endpoint_id: uuid.UUID) -> None:
    """Delete the endpoint; its undelivered messages are marked dead (nowhere to send them)."""
    principal.require(Permission.WEBHOOKS_MANAGE)
    db = uow.session
    row_id = db.scalar(
        select(WebhookEndpoint.id).where(
            WebhookEndpoint.clinic_id == principal.clinic_id,
            WebhookEndpoint.public_id == endpoint_id,
        )
    )
    if row_id is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}", field="endpoint_id")
    db.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.channel == "webhook",
            OutboxMessage.destination_id == row_id,
            OutboxMessage.status == "pending",
        )
        .values(status="dead", last_error="endpoint deleted", locked_until=None)
    )
    db.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == row_id))
    audit.record(
        db,
        principal,
        [
            audit.AuditEntry(
                "webhook_endpoint.delete", "webhook_endpoint", str(endpoint_id), status_code=204
            )
        ],
    )
    uow.commit()
