"""Scoring one administration of an instrument: validate items, compute totals and subscales.

Three shapes arrive from EHRs (domain.md §2, "Partial data"):

* all items: the total and subscales are computed here;
* a total only (items unknown): accepted and stored as such, never back-filled into items;
* "not completed": no scores at all. A skipped measure is *not* a zero.

A partial item set is scored as ``INCOMPLETE`` (no total, subscales only where all of their own
items are present); the HTTP layer chooses to reject it, but the core never invents a value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from fit_service.domain.errors import (
    ItemOutOfRange,
    MissingItems,
    TotalMismatch,
    UnknownItem,
)
from fit_service.domain.instruments import Instrument

#: How far from a whole number of steps a value may be and still be read as that step, relative
#: to the number of steps (at least one): the rounding of single precision, which is what many
#: EHRs keep scores in (a REAL column, a C# or Java float). 4.1 stored as a float and sent as
#: JSON reads 4.099999904632568, 0.3 reads 0.30000001192092896: off the grid by up to 2**-24
#: (6e-8) of the value, and a total summed in single precision by up to a dozen times that.
#: 1e-6 leaves a margin of ten over the sum and refuses anything a person wrote off the grid
#: (4.15, 4.1001, 0.05). A value closer to a tenth than that (4.10000001) cannot be told from
#: float noise and is read as the tenth. (A tolerance of 1e-12, double precision's, refused two
#: scores in three that came through a float.)
_FLOAT_NOISE = 1e-6


class Completeness(StrEnum):
    ITEMS = "items"  # every item known
    TOTAL_ONLY = "total_only"  # items unknown, total given
    INCOMPLETE = "incomplete"  # some items missing: no total
    NOT_COMPLETED = "not_completed"  # the measure was not filled in


@dataclass(frozen=True, slots=True)
class Score:
    """The scored administration. ``total`` is ``None`` unless it is known."""

    instrument: str
    completeness: Completeness
    total: float | None
    items: Mapping[str, float] | None = None
    subscales: Mapping[str, float] = field(default_factory=dict)

    @property
    def has_total(self) -> bool:
        return self.total is not None


def _check_number(
    instrument: Instrument, field_name: str, value: object, *, range_rule: str
) -> float:
    # bool is an int subclass in Python; a JSON `true` is not a rating.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ItemOutOfRange(
            f"{field_name} must be a number, not {type(value).__name__}",
            field=field_name,
            rule="item_not_a_number",
        )
    try:
        number = float(value)
    except OverflowError:
        # JSON integers have no size limit and Python reads them exactly: one of 400 digits
        # has no float, and lies beyond any scale's range. (Not echoed: it is 400 digits.)
        raise ItemOutOfRange(
            f"{field_name} is an integer far outside {instrument.code}'s range",
            field=field_name,
            rule=range_rule,
        ) from None
    if not math.isfinite(number):
        raise ItemOutOfRange(f"{field_name} must be a finite number", field=field_name)
    # -0.0 is 0: stored and hashed as "-0.0" it would make a re-send of the same session with
    # 0 a new revision (and print as -0 in reports)
    return number + 0.0


def _steps(instrument: Instrument, number: float) -> int | None:
    """``number`` as a whole number of the instrument's steps (20.1 -> 201 tenths), or None
    when it is not one. Scaled by the whole number of steps per unit, not divided by the step:
    0.1 is itself inexact, and 20.1 / 0.1 is 201.00000000000003."""
    scaled = number * instrument.steps_per_unit
    steps = round(scaled)
    if abs(scaled - steps) > _FLOAT_NOISE * max(abs(steps), 1):
        return None
    return steps


def _read(instrument: Instrument, number: float) -> tuple[float, bool]:
    """``number`` as it is read: the step it stands for when it is within float noise of one
    (4.099999904632568 is 4.1), else itself; and whether it is on the grid. The range is
    judged on what is read, so float noise at the ends of the scale is the end it stands for
    (10.000001 is 10, -0.0000001 is 0) - not refused as beyond it while a message showing it
    to six digits says 10 - and a value off the grid beyond them (10.05) stays out of range.
    A whole number of steps divided by the steps per unit is the nearest float to that step,
    the same float as the literal (41 / 10 == 4.1), and never -0.0 (0 / 10 is 0.0)."""
    steps = _steps(instrument, number)
    if steps is None:
        return number, False
    return steps / instrument.steps_per_unit, True


def _as_sent(number: float) -> str:
    """``number`` for a message, as sent: the short form when it reads back as the same float
    (10.5, 11, 1e+300), else every digit (10.000001 and 40.000001 are not "10" and "40")."""
    short = f"{number:g}"
    return short if float(short) == number else repr(number)


def check_item(instrument: Instrument, item_id: str, value: object) -> float:
    """Validate one item score against the instrument's range and resolution."""
    field_name = f"items.{item_id}"
    if item_id not in instrument.item_ids:
        raise UnknownItem(
            f"{instrument.code} has no item {item_id!r}; "
            f"items are {', '.join(instrument.item_ids)}",
            field=field_name,
        )
    number = _check_number(instrument, field_name, value, range_rule=ItemOutOfRange.rule)
    read, on_grid = _read(instrument, number)
    if not instrument.item_min <= read <= instrument.item_max:
        raise ItemOutOfRange(
            f"{instrument.code} items range from {instrument.item_min:g} to "
            f"{instrument.item_max:g}; got {_as_sent(number)}",
            field=field_name,
        )
    if not on_grid:
        raise ItemOutOfRange(
            f"{instrument.code} items are recorded in steps of {instrument.resolution:g}; "
            f"got {number!r}",
            field=field_name,
            rule="item_resolution",
        )
    return read


def check_total(instrument: Instrument, value: object) -> float:
    """Validate a total: in range and on the instrument's grid, with or without its items.

    A total-only rating is stored as sent: rounding 20.05 to 20.1 would store a score nobody
    gave, and the reports rely on every stored total being a whole number of steps
    (services/episode_months.py ``NumberedTotal``). A total sent beside its items is a
    statement about them: 20.04 beside items summing to 20 is no rounding of 20 anybody means,
    but a sign that the EHR's fields are out of step, so it is refused too (:func:`score` then
    compares an on-grid one with the items' sum exactly)."""
    number = _check_number(instrument, "total", value, range_rule="total_out_of_range")
    read, on_grid = _read(instrument, number)  # 40.000001 is 40, as an item's noise is
    if not instrument.total_min <= read <= instrument.total_max:
        raise ItemOutOfRange(
            f"{instrument.code} totals range from {instrument.total_min:g} to "
            f"{instrument.total_max:g}; got {_as_sent(number)}",
            field="total",
            rule="total_out_of_range",
        )
    if not on_grid:
        raise ItemOutOfRange(
            f"{instrument.code} totals are recorded in steps of {instrument.resolution:g}; "
            f"got {number!r}",
            field="total",
            rule="total_resolution",
        )
    return read


def score(
    instrument: Instrument,
    items: Mapping[str, object] | None = None,
    total: object | None = None,
    *,
    not_completed: bool = False,
) -> Score:
    """Score one administration; raise a :class:`~fit_service.domain.errors.InvalidRating`."""
    if not_completed:
        if items or total is not None:
            raise TotalMismatch(
                "a rating marked not_completed carries no scores",
                field="not_completed",
                rule="not_completed_with_scores",
            )
        return Score(instrument.code, Completeness.NOT_COMPLETED, None)

    if not items:
        if total is None:
            raise MissingItems(
                f"{instrument.code}: send items, a total, or not_completed: true",
                field="items",
            )
        return Score(instrument.code, Completeness.TOTAL_ONLY, check_total(instrument, total))

    checked = {item_id: check_item(instrument, item_id, v) for item_id, v in items.items()}
    # Preserve the registry's item order so stored JSON and hashes are canonical.
    ordered = {i: checked[i] for i in instrument.item_ids if i in checked}
    subscales = {
        name: round(sum(ordered[i] for i in members), instrument.decimals)
        for name, members in instrument.subscales.items()
        if all(i in ordered for i in members)
    }
    if len(ordered) < len(instrument.item_ids):
        return Score(instrument.code, Completeness.INCOMPLETE, None, ordered, subscales)

    computed = round(sum(ordered.values()), instrument.decimals)
    if total is not None:
        sent = check_total(instrument, total)
        # both on the grid: equal as whole numbers of steps, or the total contradicts them
        if _steps(instrument, sent) != _steps(instrument, computed):
            raise TotalMismatch(
                f"{instrument.code}: total {sent:g} contradicts its items, which sum to "
                f"{computed:g}",
                field="total",
            )
    return Score(instrument.code, Completeness.ITEMS, computed, ordered, subscales)


def missing_items(instrument: Instrument, score_: Score) -> tuple[str, ...]:
    """Item ids absent from an incomplete administration (for error messages)."""
    present = score_.items or {}
    return tuple(i for i in instrument.item_ids if i not in present)
