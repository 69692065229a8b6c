"""The project's exception tree. Domain errors know nothing of HTTP: ``api/problems.py`` maps
each class to a status code and an ``application/problem+json`` body.

Every error carries the offending ``field`` (a JSON-pointer-like dotted path, when there is one)
and the ``rule`` it broke, because an integrator fixing a payload needs both.
"""

from __future__ import annotations


def encodable(text: str) -> str:
    """``text`` with any unpaired UTF-16 surrogate spelled as its ``\\udXXX`` escape.

    Errors often name what was sent (``items.<id>``), and JSON's "\\ud800" decodes to a lone
    surrogate that no UTF-8 encoder takes: an error carrying one could be rendered but not
    stored (the Idempotency-Key record keeps each item's error, and storing it was a 500 that
    lost the whole batch). Every other character is kept as it is.
    """
    if text.isascii():  # the common case, and no surrogate can hide in it
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class FitError(Exception):
    """Root of every error the service raises on purpose."""

    #: short machine-readable rule name, e.g. ``item_out_of_range``
    rule: str = "error"

    def __init__(self, detail: str, *, field: str | None = None, rule: str | None = None) -> None:
        detail = encodable(detail)
        super().__init__(detail)
        self.detail = detail
        self.field = field
        if rule is not None:
            self.rule = rule

    # Properties, so text set later (callers prefix ``field`` with the rating's path) is made
    # encodable too: every error that may be stored passes through here.
    @property
    def detail(self) -> str:
        return self._detail

    @detail.setter
    def detail(self, value: str) -> None:
        self._detail = encodable(value)

    @property
    def field(self) -> str | None:
        return self._field

    @field.setter
    def field(self, value: str | None) -> None:
        self._field = encodable(value) if value is not None else None


class InvalidRating(FitError):
    """A rating that cannot be scored as sent (items, range, resolution, totals)."""

    rule = "invalid_rating"


class ItemOutOfRange(InvalidRating):
    rule = "item_out_of_range"


class UnknownItem(InvalidRating):
    rule = "unknown_item"


class MissingItems(InvalidRating):
    rule = "missing_items"


class TotalMismatch(InvalidRating):
    rule = "total_contradicts_items"


class UnknownInstrument(InvalidRating):
    rule = "unknown_instrument"


class InvalidSession(FitError):
    """A session that contradicts what is stored (dates, closed episodes, attendance)."""

    rule = "invalid_session"


class NotFound(FitError):
    """The record does not exist *for this clinic* (another clinic's ids are not revealed)."""

    rule = "not_found"


class Conflict(FitError):
    """The request conflicts with the current state of a record."""

    rule = "conflict"


class PreconditionFailed(FitError):
    """An If-Match precondition did not hold: somebody changed the record first."""

    rule = "precondition_failed"


class PermissionDenied(FitError):
    rule = "forbidden"


class IdempotencyKeyReused(FitError):
    """The same Idempotency-Key came with a different body."""

    rule = "idempotency_key_reused"


class PayloadTooLarge(FitError):
    """More data in one request than the service accepts (a batch over its limit)."""

    rule = "payload_too_large"


class PreconditionRequired(FitError):
    """A state change that needs ``If-Match`` came without it (RFC 6585: 428)."""

    rule = "precondition_required"
