"""Scoring and validating one administration (pure: no database, no Flask)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fit_service.domain.errors import (
    FitError,
    InvalidRating,
    ItemOutOfRange,
    MissingItems,
    TotalMismatch,
    UnknownItem,
)
from fit_service.domain.instruments import (
    ORS,
    REGISTRY,
    SRS,
    WAI_SR_CLIENT,
    AgeBand,
    Instrument,
    Leg,
    outcome_instrument_for,
)
from fit_service.domain.scoring import Completeness, score

tenths = st.integers(min_value=0, max_value=100).map(lambda n: n / 10)


def test_ors_total_is_the_sum_of_items() -> None:
    """ORS 4.5 + 5 + 4.1 + 5 scores 18.6, to one decimal."""
    result = score(ORS, {"individual": 4.5, "interpersonal": 5, "social": 4.1, "overall": 5})
    assert result.completeness is Completeness.ITEMS
    assert result.total == 18.6


def test_wai_sr_subscales_follow_hatcher_and_gillaspy() -> None:
    """WAI-SR task = items 1,2,10,12; goal = 4,6,8,11; bond = 3,5,7,9 (domain.md §2)."""
    items = {f"item{n:02d}": n % 5 + 1 for n in range(1, 13)}
    result = score(WAI_SR_CLIENT, items)
    assert result.subscales == {
        "task": items["item01"] + items["item02"] + items["item10"] + items["item12"],
        "goal": items["item04"] + items["item06"] + items["item08"] + items["item11"],
        "bond": items["item03"] + items["item05"] + items["item07"] + items["item09"],
    }
    assert result.total == sum(items.values())


def test_srs_items_map_to_bordins_legs() -> None:
    """SRS relationship→bond, goals→goal, approach→task, overall→global."""
    assert dict(SRS.item_legs) == {
        "relationship": Leg.BOND,
        "goals": Leg.GOAL,
        "approach": Leg.TASK,
        "overall": Leg.GLOBAL,
    }


def test_total_only_is_accepted_without_items() -> None:
    """A total alone is stored as 'total only', items unknown."""
    result = score(ORS, None, 21.3)
    assert (result.completeness, result.total, result.items) == (
        Completeness.TOTAL_ONLY,
        21.3,
        None,
    )


def test_not_completed_is_not_a_zero() -> None:
    """'Not completed' yields no total at all, never 0."""
    result = score(SRS, not_completed=True)
    assert result.completeness is Completeness.NOT_COMPLETED
    assert result.total is None


def test_partial_items_are_incomplete_with_no_total() -> None:
    """Missing items give INCOMPLETE and no total; complete subscales are still scored."""
    items = {f"item{n:02d}": 3 for n in (1, 2, 10, 12, 4)}
    result = score(WAI_SR_CLIENT, items)
    assert result.completeness is Completeness.INCOMPLETE
    assert result.total is None
    assert result.subscales == {"task": 12}


def test_nothing_at_all_is_missing_items() -> None:
    """Neither items, total nor not_completed is an error, not an empty score."""
    with pytest.raises(MissingItems):
        score(ORS)


@given(st.dictionaries(st.sampled_from(ORS.item_ids), tenths, min_size=4, max_size=4))
def test_valid_ors_items_always_score_within_range(items: dict[str, float]) -> None:
    """Any four ORS items on the 0-10 line in tenths give a total in 0-40 equal to their sum."""
    result = score(ORS, items)
    assert result.total is not None
    assert 0 <= result.total <= 40
    assert math.isclose(result.total, round(sum(items.values()), 1), abs_tol=1e-9)


@given(
    st.one_of(
        st.floats(min_value=10.01, max_value=1e9),
        st.floats(max_value=-0.01, min_value=-1e9),
        st.just(math.nan),
        st.just(math.inf),
        st.just(-math.inf),
    )
)
def test_out_of_range_ors_items_are_refused(value: float) -> None:
    """Any ORS item outside 0-10 (or not finite) is ItemOutOfRange naming the item."""
    items = {"individual": value, "interpersonal": 5, "social": 5, "overall": 5}
    with pytest.raises(ItemOutOfRange) as err:
        score(ORS, items)
    assert err.value.field == "items.individual"


@given(st.one_of(st.text(), st.booleans(), st.none(), st.lists(st.integers())))
def test_non_numbers_are_refused(value: object) -> None:
    """Strings ("7"), booleans, null and lists are not item scores."""
    items = {"individual": value, "interpersonal": 5, "social": 5, "overall": 5}
    with pytest.raises(InvalidRating):
        score(ORS, items)


@given(st.integers(min_value=-10, max_value=10).filter(lambda n: not 1 <= n <= 5))
def test_wai_items_outside_one_to_five_are_refused(value: int) -> None:
    """WAI-SR items are 1-5; anything else is refused."""
    items = {f"item{n:02d}": 3 for n in range(1, 13)}
    items["item07"] = value
    with pytest.raises(ItemOutOfRange):
        score(WAI_SR_CLIENT, items)


@given(st.floats(min_value=1.01, max_value=4.99).filter(lambda x: x != round(x)))
def test_wai_items_must_be_whole_numbers(value: float) -> None:
    """WAI-SR is scored in whole points: 2.5 is refused."""
    items = {f"item{n:02d}": 3 for n in range(1, 13)}
    items["item02"] = value
    with pytest.raises(ItemOutOfRange):
        score(WAI_SR_CLIENT, items)


@given(
    st.dictionaries(st.sampled_from(ORS.item_ids), tenths, min_size=4, max_size=4),
    st.floats(min_value=0.1, max_value=40).map(lambda x: round(x, 1)),
)
def test_a_total_that_contradicts_items_is_refused(items: dict[str, float], delta: float) -> None:
    """A sent total more than half a step from the item sum is TotalMismatch."""
    computed = round(sum(items.values()), 1)
    sent = computed + delta if computed + delta <= 40 else computed - delta
    if not 0 <= sent <= 40:
        return
    with pytest.raises(TotalMismatch):
        score(ORS, items, sent)


def test_unknown_item_is_named() -> None:
    """An item id the instrument does not have is UnknownItem naming it."""
    with pytest.raises(UnknownItem) as err:
        score(ORS, {"mood": 5})
    assert err.value.field == "items.mood"


def test_every_registered_instrument_scores_its_maximum() -> None:
    """For each instrument, all items at maximum give the maximum total."""
    for instrument in REGISTRY.values():
        items = {i: instrument.item_max for i in instrument.item_ids}
        assert score(instrument, items).total == instrument.total_max


@pytest.mark.parametrize(
    ("band", "total", "clinical"),
    [
        (AgeBand.ADULT, 24.9, True),
        (AgeBand.ADULT, 25.0, False),
        (AgeBand.ADULT, 25.1, False),
        (AgeBand.ADOLESCENT, 27.9, True),
        (AgeBand.ADOLESCENT, 28.0, False),
        (AgeBand.CHILD, 31.9, True),
        (AgeBand.CHILD, 32.0, False),
    ],
)
def test_clinical_cutoffs_by_age_band(band: AgeBand, total: float, clinical: bool) -> None:
    """Clinical range is total < 25 (adult), < 28 (adolescent), < 32 (CORS) — domain.md §3."""
    assert outcome_instrument_for(band).is_clinical(total, band) is clinical


@pytest.mark.parametrize(
    "value", [10**400, -(10**400), 10**309], ids=["400 digits", "-400 digits", "10**309"]
)
def test_an_integer_beyond_any_float_is_out_of_range(value: int) -> None:
    """A JSON integer too large for a float (400 digits) is ItemOutOfRange for an item and for
    a total, each under its own range rule; it was an OverflowError (a 500)."""
    items = {"individual": value, "interpersonal": 5, "social": 5, "overall": 5}
    with pytest.raises(ItemOutOfRange) as err:
        score(ORS, items)
    assert (err.value.rule, err.value.field) == ("item_out_of_range", "items.individual")
    with pytest.raises(ItemOutOfRange) as err:
        score(ORS, None, value)
    assert (err.value.rule, err.value.field) == ("total_out_of_range", "total")


@pytest.mark.parametrize(
    ("instrument", "total"),
    [(ORS, 20.05), (ORS, 0.01), (ORS, 39.99), (SRS, 35.95), (WAI_SR_CLIENT, 30.5)],
    ids=lambda v: getattr(v, "code", str(v)),
)
def test_a_total_only_off_the_scales_grid_is_refused(instrument: Instrument, total: float) -> None:
    """A total sent alone is stored as sent, so it must be a whole number of the scale's steps
    (ORS/SRS tenths, WAI-SR whole points): 20.05 is total_resolution, not stored as 20.1."""
    with pytest.raises(ItemOutOfRange) as err:
        score(instrument, None, total)
    assert (err.value.rule, err.value.field) == ("total_resolution", "total")


def test_every_tenth_is_a_valid_total_only() -> None:
    """Every ORS total in tenths, 0.0 to 40.0 (20.1 included, though 20.1 / 0.1 is not exactly
    201 in binary), is accepted and stored as that tenth."""
    for n in range(401):
        result = score(ORS, None, n / 10)
        assert (result.completeness, result.total) == (Completeness.TOTAL_ONLY, n / 10)


@pytest.mark.parametrize(
    ("total", "rule"),
    [
        (18.65, "total_resolution"),
        (18.64, "total_resolution"),
        (18.6001, "total_resolution"),
        (18.7, "total_contradicts_items"),
        (18.5, "total_contradicts_items"),
    ],
)
def test_a_total_beside_its_items_is_on_the_grid_and_equal_to_their_sum(
    total: float, rule: str
) -> None:
    """A total sent with its items is refused when off the grid (18.65 was accepted within half
    a step and stored as the items' 18.6: the EHR's total and items disagree, and nobody gave
    18.6 as a total) or when it is another tenth than their sum."""
    items = {"individual": 4.5, "interpersonal": 5, "social": 4.1, "overall": 5}
    with pytest.raises(InvalidRating) as err:
        score(ORS, items, total)
    assert (err.value.rule, err.value.field) == (rule, "total")


@pytest.mark.parametrize("value", [4.15, 4.1001, 4.0999, 0.05, 0.00001, 9.9999, 0.1002])
def test_an_item_off_the_grid_by_more_than_float_noise_is_refused(value: float) -> None:
    """A value a person wrote off the grid is refused, never rounded to a tenth nobody gave."""
    items = {"individual": value, "interpersonal": 5, "social": 5, "overall": 5}
    with pytest.raises(ItemOutOfRange) as err:
        score(ORS, items)
    assert (err.value.rule, err.value.field) == ("item_resolution", "items.individual")
    assert repr(value) in err.value.detail  # the value as sent, not rounded by the message


@given(
    st.lists(st.integers(min_value=0, max_value=100), min_size=4, max_size=4),
    st.permutations(range(4)),
)
def test_float_noise_on_tenths_is_read_as_the_tenths(tenths_: list[int], order: list[int]) -> None:
    """Tenths as a JSON client computes them (k * 0.1, or 0.1 + 0.2 style sums) and totals
    summed in floating point in any order are accepted and stored as exact tenths."""
    values = [n * 0.1 for n in tenths_]  # 3 * 0.1 is 0.30000000000000004
    items = dict(zip(ORS.item_ids, values, strict=True))
    total = 0.0
    for i in order:
        total += values[i]
    result = score(ORS, items, total)
    assert result.items == {k: n / 10 for k, n in zip(ORS.item_ids, tenths_, strict=True)}
    assert result.total == sum(tenths_) / 10


def test_every_whole_point_and_tenth_is_on_its_grid() -> None:
    """Every WAI-SR total 12-60 and every ORS item in tenths is accepted as sent."""
    for n in range(12, 61):
        assert score(WAI_SR_CLIENT, None, n).total == n
        assert score(WAI_SR_CLIENT, None, float(n)).total == n
    for n in range(101):
        items = {"individual": n / 10, "interpersonal": 5, "social": 5, "overall": 5}
        assert score(ORS, items).items["individual"] == n / 10


def test_an_error_naming_a_lone_surrogate_is_encodable() -> None:
    """An unknown item id holding a lone surrogate gives an error whose field and detail encode
    as UTF-8 (the surrogate spelled as its escape), so the error can be stored; set later (as
    the recording prefixes the rating's path), the field is made encodable too."""
    with pytest.raises(UnknownItem) as err:
        score(ORS, {"\ud800": 1})
    assert err.value.field == "items.\\ud800"
    err.value.field = "ratings[0].\udfff"
    assert err.value.field == "ratings[0].\\udfff"
    for text in (err.value.field, err.value.detail, str(err.value)):
        text.encode()  # no UnicodeEncodeError
    assert FitError("é 😀", field="ä").detail == "é 😀"  # everything else is kept


@pytest.mark.parametrize("tenths_", [[3, 41, 73, 99], [1, 7, 100, 0], [55, 66, 77, 88]])
def test_tenths_that_came_through_single_precision_are_read_as_the_tenths(
    tenths_: list[int],
) -> None:
    """What an EHR keeping scores as 32-bit floats sends (0.3 as 0.30000001192092896, 4.1 as
    4.099999904632568) is the tenth it stored, items and a total summed in single precision
    alike; a double-precision-only tolerance refused two such scores in three."""
    as_float32 = [float(np.float32(n / 10)) for n in tenths_]
    assert any(v != n / 10 for v, n in zip(as_float32, tenths_, strict=True))
    total = float(np.sum(np.array(as_float32, dtype=np.float32), dtype=np.float32))
    items = dict(zip(ORS.item_ids, as_float32, strict=True))
    result = score(ORS, items, total)
    assert result.items == {k: n / 10 for k, n in zip(ORS.item_ids, tenths_, strict=True)}
    assert result.total == sum(tenths_) / 10
    assert score(ORS, None, total).total == sum(tenths_) / 10


def test_double_precision_noise_at_zero_is_zero() -> None:
    """0.1 + 0.2 - 0.3 is 5.551115123125783e-17, not 0: read as the 0 it stands for."""
    items = {"individual": 0.1 + 0.2 - 0.3, "interpersonal": 5, "social": 5, "overall": 5}
    assert score(ORS, items).items["individual"] == 0.0


def _items_with(instrument: Instrument, item_id: str, value: object) -> dict[str, object]:
    """A full item set of ``instrument`` in its range, with ``item_id`` set to ``value``."""
    items: dict[str, object] = dict.fromkeys(instrument.item_ids, instrument.item_max)
    items[item_id] = value
    return items


def _sent_in(detail: str) -> float:
    """The value a range error says it got (after its last "got ")."""
    return float(detail.rsplit("got ", 1)[1])


@st.composite
def _noise_at_an_end(draw: st.DrawFn, ends: str) -> tuple[Instrument, float, float]:
    """(instrument, an end of its item or total range, that end plus float noise within half
    the tolerance: one part in a million of the value, or of one step at zero)."""
    instrument = draw(st.sampled_from(list(REGISTRY.values())))
    low, high = (
        (instrument.item_min, instrument.item_max)
        if ends == "item"
        else (instrument.total_min, instrument.total_max)
    )
    end = draw(st.sampled_from([low, high]))
    bound = 0.5e-6 * max(abs(end), instrument.resolution)
    noise = draw(st.floats(min_value=-bound, max_value=bound))
    return instrument, end, end + noise


@given(_noise_at_an_end("item"))
def test_float_noise_at_either_end_of_an_item_range_is_that_end(
    case: tuple[Instrument, float, float],
) -> None:
    """An item within float noise of the top or bottom of its scale (ORS 10.000001, -1e-7;
    WAI-SR 5.000001, 0.9999999) is read as that end and accepted, never refused as beyond it."""
    instrument, end, sent = case
    item_id = instrument.item_ids[0]
    result = score(instrument, _items_with(instrument, item_id, sent))
    assert result.items is not None
    assert result.items[item_id] == end
    assert math.copysign(1, result.items[item_id]) == 1  # -1e-7 is 0, not -0.0


@given(_noise_at_an_end("total"))
def test_float_noise_at_either_end_of_a_total_range_is_that_end(
    case: tuple[Instrument, float, float],
) -> None:
    """A total alone within float noise of the ends of its range (ORS 40.000001) is that end."""
    instrument, end, sent = case
    result = score(instrument, None, sent)
    assert (result.completeness, result.total) == (Completeness.TOTAL_ONLY, end)
    assert result.total is not None
    assert math.copysign(1, result.total) == 1


@pytest.mark.parametrize(
    ("value", "read"),
    [(10.000001, 10.0), (9.9999999, 10.0), (-1e-7, 0.0), (1e-7, 0.0), (0.1000001, 0.1)],
)
def test_the_reported_edge_values_are_read_as_their_tenth(value: float, read: float) -> None:
    """The values reported refused at the ends of the ORS (10.000001 as "got 10", -1e-7) are
    read as their tenth, as 0.1000001 and 1e-7 were; so is a total of 40.000001."""
    result = score(ORS, {"individual": value, "interpersonal": 5, "social": 5, "overall": 5})
    assert result.items is not None
    assert result.items["individual"] == read
    assert result.total == read + 15
    assert score(ORS, None, 40.000001).total == 40.0
    assert score(ORS, None, -1e-7).total == 0.0


#: An instrument, a side of its range (-1 below, 1 above) and how far beyond it, clearly more
#: than float noise (relative to the end's magnitude).
_CLEARLY_BEYOND = (
    st.sampled_from(list(REGISTRY.values())),
    st.sampled_from([-1, 1]),
    st.one_of(
        st.floats(min_value=1e-5, max_value=1e9),
        st.sampled_from([0.05, 0.1, 0.5, 1.0]),
    ),
)


@given(*_CLEARLY_BEYOND)
def test_an_item_clearly_beyond_its_range_is_refused_stating_the_value_sent(
    instrument: Instrument, side: int, beyond: float
) -> None:
    """An item beyond its scale by more than float noise (ORS 10.1, 10.05, -0.1, 10.0001) is
    item_out_of_range, and the message states the value as sent: the number after "got" is
    that value exactly (10.000001 was refused as "got 10", contradicting "range from 0 to
    10")."""
    end = instrument.item_max if side > 0 else instrument.item_min
    sent = end + side * beyond * max(1.0, abs(end))
    item_id = instrument.item_ids[-1]
    with pytest.raises(ItemOutOfRange) as err:
        score(instrument, _items_with(instrument, item_id, sent))
    assert (err.value.rule, err.value.field) == ("item_out_of_range", f"items.{item_id}")
    assert _sent_in(err.value.detail) == sent


@given(*_CLEARLY_BEYOND)
def test_a_total_clearly_beyond_its_range_is_refused_stating_the_value_sent(
    instrument: Instrument, side: int, beyond: float
) -> None:
    """A total beyond its range by more than float noise (ORS 40.1, 40.00005, -0.1) is
    total_out_of_range stating the value as sent, alone or beside its items."""
    end = instrument.total_max if side > 0 else instrument.total_min
    sent = end + side * beyond * max(1.0, abs(end))
    for items in (None, dict.fromkeys(instrument.item_ids, instrument.item_max)):
        with pytest.raises(ItemOutOfRange) as err:
            score(instrument, items, sent)
        assert (err.value.rule, err.value.field) == ("total_out_of_range", "total")
        assert _sent_in(err.value.detail) == sent


@pytest.mark.parametrize(
    ("value", "shown"),
    [(10.5, "got 10.5"), (11, "got 11"), (-1, "got -1"), (10.0001, "got 10.0001")],
)
def test_a_range_error_shows_the_value_in_its_short_form(value: float, shown: str) -> None:
    """The value is shown as briefly as reads back the same (10.5, 11), with every digit
    needed when it is close to the end (10.0001, not 10)."""
    with pytest.raises(ItemOutOfRange) as err:
        score(ORS, {"individual": value, "interpersonal": 5, "social": 5, "overall": 5})
    assert err.value.detail == f"ors items range from 0 to 10; {shown}"
