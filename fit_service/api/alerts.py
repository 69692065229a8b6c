"""/v1/alerts, goal sheets, webhook endpoints and clinic settings."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import request
from flask.views import MethodView

from fit_service.api import docs
from fit_service.api.alert_schemas import (
    AcknowledgeIn,
    AlertFeedArgs,
    AlertOut,
    AlertPage,
    ClinicianEmailIn,
    ClinicianEmailOut,
    DismissIn,
    GoalSheetIn,
    GoalSheetOut,
    ResolveIn,
    SettingsIn,
    SettingsOut,
    WebhookEndpointCreated,
    WebhookEndpointIn,
    WebhookEndpointOut,
)
from fit_service.api.auth import requires
from fit_service.api.context import run, wiring
from fit_service.api.parsing import Blueprint, is_blank
from fit_service.api.sessions import _limit
from fit_service.domain.errors import FitError, PreconditionFailed
from fit_service.domain.risk import Severity
from fit_service.services import alerts, clinic_settings, goal_sheets, webhook_endpoints
from fit_service.services.principals import Permission

blp = Blueprint("alerts", __name__, url_prefix="/v1", description="Risk alerts and delivery")

_IF_MATCH = {"If-Match": {"description": "The ETag last read", "schema": {"type": "string"}}}


#: Versions are stored as 32-bit integers: an ETag outside 1..2**31-1 names no version, and
#: must not reach the database (PostgreSQL refuses such a bind with an error, i.e. a 500).
_MAX_VERSION = 2**31 - 1
_ETAG = re.compile(r'"?([0-9]{1,20})"?')


def if_match() -> int | None:
    """The version named by ``If-Match`` (``"3"``) for alerts and goal sheets; ``None`` when
    absent (the use case answers 428 where it needs one). A precondition that was sent and
    does not name the record's version is a 412, as a stale one is:

    * a weak tag (``W/"3"``): If-Match uses the strong comparison (RFC 9110 §13.1.1), under
      which a weak tag matches nothing;
    * ``*``: it would match any version, but a decision is to be made on what was read, so
      the service needs the ETag read;
    * anything that is not a version a record can have (garbage, 0, out of range)."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    value = raw.strip()
    if value == "*":
        raise PreconditionFailed(
            "If-Match must name the ETag of the version you read (GET it first), not *: "
            "a change is applied only to the version it was decided on",
            field="If-Match",
        )
    if value.startswith("W/"):
        raise PreconditionFailed(
            "If-Match compares ETags strongly (RFC 9110 13.1.1): a weak one (W/...) never "
            'matches; send the ETag as read (e.g. "3")',
            field="If-Match",
        )
    match = _ETAG.fullmatch(value)
    version = int(match.group(1)) if match else 0
    if not 1 <= version <= _MAX_VERSION:
        raise PreconditionFailed("If-Match is not an ETag of this record", field="If-Match")
    return version


def _etag(view: dict[str, Any]) -> dict[str, str]:
    return {"ETag": f'"{view["version"]}"'}


#: The ETag an alert's or a goal sheet's answer carries (:func:`_etag`), as the document
#: declares it: what If-Match names to act on the record, or to replace the goal sheet.
_ETAG_HEADER = {
    "ETag": {
        "description": 'The record\'s version as a strong ETag ("3"): send it as If-Match to '
        "change the record.",
        "required": True,
        "schema": {"type": "string"},
    }
}


@blp.route("/alerts")
class Alerts(MethodView):
    @blp.arguments(AlertFeedArgs, location="query")
    @blp.response(200, AlertPage)
    @docs.errors(blp, *docs.QUERY)
    def get(self, args: dict[str, Any]) -> Any:
        """The alert feed, newest first: a clinician key gets its own alerts, a manager key
        the clinic's. Filter by status, minimum severity, time opened and client (a client
        the key may not see, or an unknown one, has none)."""
        feed = alerts.FeedFilter(
            statuses=tuple(args["status"] or ()),
            min_severity=Severity[args["min_severity"].upper()] if args["min_severity"] else None,
            since=args["since"],
            until=args["until"],
            client=args["client_id"],
        )
        page = run(alerts.list_alerts, feed, args["cursor"], _limit(args))
        return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/alerts/<uuid:alert_id>")
class AlertById(MethodView):
    @blp.response(200, AlertOut, headers=_ETAG_HEADER)
    @docs.errors(blp, *docs.AUTH, 404)
    def get(self, alert_id: uuid.UUID) -> Any:
        """One alert with its evidence and guidance; the ETag is needed to act on it."""
        view = run(alerts.get_alert, alert_id)
        return view, 200, _etag(view)


def _act_docs(*, described: dict[int, str] | None = None) -> Any:
    """The documentation of acting on an alert: its errors (``described``: the route's own
    texts) and the If-Match it needs. One :func:`docs.errors` call, so the route's own 422
    text is the one documented."""

    def decorate(f: Any) -> Any:
        f = docs.errors(
            blp,
            *docs.BODY,
            404,
            412,
            428,
            described={
                409: "The alert's status does not allow this (e.g. already resolved).",
                **(described or {}),
            },
        )(f)
        return blp.doc(
            parameters=[
                {"in": "header", "name": "If-Match", "required": True, "schema": {"type": "string"}}
            ]
        )(f)

    return decorate


@blp.route("/alerts/<uuid:alert_id>/acknowledge")
class AlertAcknowledge(MethodView):
    @requires(Permission.ALERTS_ACT)
    @blp.arguments(AcknowledgeIn, required=False)
    @blp.response(200, AlertOut, headers=_ETAG_HEADER)
    @_act_docs(described={422: "A field was sent: acknowledge takes none."})
    def post(self, _body: dict[str, Any], alert_id: uuid.UUID) -> Any:
        """Acknowledge an open alert (somebody is on it). No body (empty, or JSON whitespace
        only), or ``{}``: a note goes with resolve or dismiss."""
        view = run(alerts.acknowledge, alert_id, if_match())
        return view, 200, _etag(view)


@blp.route("/alerts/<uuid:alert_id>/resolve")
class AlertResolve(MethodView):
    @requires(Permission.ALERTS_ACT)
    @blp.arguments(ResolveIn)
    @blp.response(200, AlertOut, headers=_ETAG_HEADER)
    @_act_docs()
    def post(self, body: dict[str, Any], alert_id: uuid.UUID) -> Any:
        """Resolve with the clinician's note of what was done."""
        view = run(alerts.resolve, alert_id, if_match(), body["note"])
        return view, 200, _etag(view)


@blp.route("/alerts/<uuid:alert_id>/dismiss")
class AlertDismiss(MethodView):
    @requires(Permission.ALERTS_ACT)
    @blp.arguments(DismissIn)
    @blp.response(200, AlertOut, headers=_ETAG_HEADER)
    @_act_docs()
    def post(self, body: dict[str, Any], alert_id: uuid.UUID) -> Any:
        """Dismiss with the reason no action is needed."""
        view = run(alerts.dismiss, alert_id, if_match(), body["reason"])
        return view, 200, _etag(view)


@blp.route("/episodes/<uuid:episode_id>/goal-sheet")
class EpisodeGoalSheet(MethodView):
    @blp.response(200, GoalSheetOut, headers=_ETAG_HEADER)
    @docs.errors(blp, *docs.AUTH, described={404: "No such episode, or no goal sheet yet."})
    def get(self, episode_id: uuid.UUID) -> Any:
        """The episode's goal sheet (404 until one is written)."""
        view = run(goal_sheets.get_goal_sheet, episode_id)
        return view, 200, _etag(view)

    @requires(Permission.GOALS_WRITE)
    @blp.arguments(GoalSheetIn)
    @blp.response(
        200, GoalSheetOut, description="Replaced (If-Match required).", headers=_ETAG_HEADER
    )
    @blp.alt_response(
        201, schema=GoalSheetOut, description="Created (no If-Match).", headers=_ETAG_HEADER
    )
    @docs.errors(blp, *docs.BODY, 404, 412, described={428: "If-Match missing on a replace."})
    @blp.doc(
        parameters=[
            {
                "in": "header",
                "name": "If-Match",
                "required": False,
                "description": "The ETag of the goal sheet read: required to replace one, "
                "not sent to write the first.",
                "schema": {"type": "string"},
            }
        ]
    )
    def put(self, body: dict[str, Any], episode_id: uuid.UUID) -> Any:
        """Write the client's own goal, the agreed steps and what they expect of therapy;
        the guidance of the episode's live alerts is refreshed to match."""
        view, created = run(
            goal_sheets.put_goal_sheet,
            episode_id,
            body["goal"],
            body["steps"],
            body["expectation"],
            if_match(),
        )
        return view, 201 if created else 200, _etag(view)


@blp.route("/webhook-endpoints")
class WebhookEndpoints(MethodView):
    @requires(Permission.WEBHOOKS_MANAGE)
    @blp.arguments(WebhookEndpointIn)
    @blp.response(201, WebhookEndpointCreated)
    @docs.errors(
        blp,
        *docs.BODY,
        described={
            409: "The clinic has as many endpoints as it may, or this URL already; delete "
            "one first.",
            422: "URL refused (scheme, private host), or another field breaks a rule.",
        },
    )
    def post(self, body: dict[str, Any]) -> Any:
        """Register a webhook endpoint (admin). The signing secret is in this answer only."""
        return run(
            webhook_endpoints.register_endpoint,
            body["url"],
            allow_private=wiring().settings.webhooks_allow_private,
        )

    @blp.response(200, WebhookEndpointOut(many=True))
    @docs.errors(blp, *docs.AUTH)
    def get(self) -> Any:
        """The clinic's webhook endpoints and their health (admin)."""
        return run(webhook_endpoints.list_endpoints)


@blp.route("/webhook-endpoints/<uuid:endpoint_id>")
class WebhookEndpointById(MethodView):
    @requires(Permission.WEBHOOKS_MANAGE)
    @blp.response(204)
    @docs.errors(blp, *docs.AUTH, 404)
    def delete(self, endpoint_id: uuid.UUID) -> Any:
        """Delete an endpoint (admin); its undelivered messages are dropped."""
        run(webhook_endpoints.delete_endpoint, endpoint_id)
        return None


@blp.route("/settings")
class ClinicSettings(MethodView):
    @blp.response(200, SettingsOut)
    @docs.errors(blp, *docs.AUTH)
    def get(self) -> Any:
        """The clinic's settings as stored, and every value in force (admin)."""
        return run(clinic_settings.get_settings)

    @requires(Permission.SETTINGS_MANAGE)
    @blp.arguments(SettingsIn)
    @blp.response(200, SettingsOut)
    @docs.errors(blp, *docs.BODY)
    def put(self, body: dict[str, Any]) -> Any:
        """Replace the clinic's settings (admin); each section is validated first."""
        if is_blank(request.get_data(cache=True)):
            # Every section left out goes back to its defaults, so a PUT without a body (or
            # with whitespace only: no JSON in it either) would silently reset the clinic's
            # settings: "{}" says so on purpose, nothing does not.
            raise FitError(
                "send the settings to store as a JSON body ({} resets every section)",
                field="body",
                rule="required",
            )
        return run(clinic_settings.put_settings, body)


@blp.route("/clinicians/<string:clinician_id>/email")
class ClinicianEmail(MethodView):
    @requires(Permission.SETTINGS_MANAGE)
    @blp.arguments(ClinicianEmailIn)
    @blp.response(200, ClinicianEmailOut)
    @docs.errors(blp, *docs.BODY, 404)
    def put(self, body: dict[str, Any], clinician_id: str) -> Any:
        """Set (or, with null, clear) where a clinician's alert e-mails go (admin)."""
        return run(clinic_settings.set_clinician_email, clinician_id, body["email"])
