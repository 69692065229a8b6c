"""marshmallow schemas of the alert, goal-sheet, webhook-endpoint and settings routes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from webargs.fields import DelimitedList

from fit_service.api.schemas import PageArgs, _Base, client_filter, no_control_chars
from fit_service.domain.alerts import AlertStatus
from fit_service.domain.guidance import Expectation
from fit_service.domain.risk import FINDING_KINDS, Severity

_SEVERITIES = [s.label for s in Severity]
#: Free text: C0 control characters are refused (422, rule ``control_character``) before they
#: reach the database; PostgreSQL cannot store NUL in text at all. Tabs and line breaks stay.
_TEXT: list[Callable[[Any], Any]] = [validate.Length(min=1, max=2000), no_control_chars]


def utc_representable(value: datetime) -> None:
    """Refuse a time that leaves Python's years 1 to 9999 once converted to UTC (the column
    stores UTC): 0001-01-01T00:00+01:00 is still year 0 there, and was a 500 at the query."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(
            "Out of range: the time must fall within the years 1 to 9999 in UTC."
        ) from None


class AlertFeedArgs(PageArgs):
    status = DelimitedList(
        fields.Enum(AlertStatus, by_value=True),
        load_default=list,
        metadata={"description": "Comma-separated statuses, e.g. open,acknowledged."},
    )
    min_severity = fields.String(
        load_default=None,
        validate=validate.OneOf(_SEVERITIES),
        metadata={"description": "Only alerts at or above this severity."},
    )
    since = fields.AwareDateTime(
        load_default=None,
        default_timezone=UTC,
        validate=utc_representable,
        metadata={"description": "Opened at or after (ISO 8601; UTC when no offset)."},
    )
    until = fields.AwareDateTime(
        load_default=None,
        default_timezone=UTC,
        validate=utc_representable,
        metadata={"description": "Opened before (ISO 8601; UTC when no offset)."},
    )
    client_id = client_filter("alerts")


class AlertOut(Schema):
    id = fields.String()
    episode_id = fields.String()
    client_id = fields.String(metadata={"description": "The EHR's pseudonymous client id."})
    clinician_id = fields.String(allow_none=True)
    kind = fields.String(metadata={"enum": list(FINDING_KINDS)})
    leg = fields.String(
        metadata={
            "description": "Which leg is weak: bond, goal, task, global_alliance; or outcome, "
            "attendance.",
        }
    )
    severity = fields.String(metadata={"enum": _SEVERITIES})
    status = fields.String(metadata={"enum": [s.value for s in AlertStatus]})
    session_number = fields.Integer(allow_none=True)
    evidence = fields.Dict(
        metadata={"description": "The numbers behind the finding, with sources."}
    )
    guidance = fields.String()
    model = fields.String(
        allow_none=True,
        metadata={
            "description": "The model behind the finding (trajectory or dropout model), if any."
        },
    )
    opened_at = fields.String()
    updated_at = fields.String()
    acknowledged_at = fields.String(allow_none=True)
    closed_at = fields.String(allow_none=True)
    closing_note = fields.String(allow_none=True)
    version = fields.Integer(metadata={"description": "Also the ETag; send it as If-Match."})


class AlertPage(Schema):
    items = fields.List(fields.Nested(AlertOut))
    next_cursor = fields.String(allow_none=True)


class AcknowledgeIn(_Base):
    """Acknowledging says only "somebody is on it": no field is taken. The body may be left
    out or be ``{}``; a field sent (a note, say) is refused (422 ``unknown_field``), never
    dropped unstored - a note belongs to resolve or dismiss."""


class ResolveIn(_Base):
    note = fields.String(required=True, validate=_TEXT, metadata={"description": "What was done."})


class DismissIn(_Base):
    reason = fields.String(
        required=True, validate=_TEXT, metadata={"description": "Why no action is needed."}
    )


class GoalSheetIn(_Base):
    goal = fields.String(
        required=True, validate=_TEXT, metadata={"description": "The client's own goal."}
    )
    steps = fields.List(
        fields.String(validate=[validate.Length(min=1, max=500), no_control_chars]),
        load_default=list,
        validate=validate.Length(max=20),
        metadata={"description": "The agreed steps the client believes in."},
    )
    expectation = fields.Enum(
        Expectation,
        by_value=True,
        required=True,
        metadata={"description": "What the client expects of therapy."},
    )


class GoalSheetOut(Schema):
    episode_id = fields.String()
    goal = fields.String()
    steps = fields.List(fields.String())
    expectation = fields.String(metadata={"enum": [e.value for e in Expectation]})
    updated_at = fields.String()
    version = fields.Integer()


class WebhookEndpointIn(_Base):
    url = fields.String(
        required=True, validate=[validate.Length(min=1, max=2000), no_control_chars]
    )


class WebhookEndpointOut(Schema):
    id = fields.String()
    url = fields.String()
    enabled = fields.Boolean()
    failing = fields.Boolean(
        metadata={"description": "No success for the clinic's delivery.failing_after_hours."}
    )
    failing_since = fields.String(allow_none=True)
    last_success_at = fields.String(allow_none=True)
    created_at = fields.String()


class WebhookEndpointCreated(WebhookEndpointOut):
    secret = fields.String(
        metadata={"description": "Standard Webhooks signing secret; shown this once only."}
    )


class SettingsIn(_Base):
    risk = fields.Dict(load_default=dict, metadata={"description": "Risk rule overrides."})
    reports = fields.Dict(load_default=dict, metadata={"description": "Report overrides."})
    delivery = fields.Dict(
        load_default=dict, metadata={"description": "{failing_after_hours: number}"}
    )


class SettingsOut(Schema):
    risk = fields.Dict()
    reports = fields.Dict()
    delivery = fields.Dict()
    effective = fields.Dict(metadata={"description": "Every value in force, defaults included."})


class ClinicianEmailIn(_Base):
    email = fields.String(
        required=True,
        allow_none=True,
        validate=[validate.Length(min=3, max=254), no_control_chars],
    )


class ClinicianEmailOut(Schema):
    clinician_id = fields.String()
    email = fields.String(allow_none=True)
