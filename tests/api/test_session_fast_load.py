"""Property: the session schema's shortcut for well-formed sessions (``fast_session``) accepts
only what the field-by-field schema load accepts, and returns exactly what it returns."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from fit_service.api.schemas import SessionIn, fast_session
from tests.conftest import session_payload

# Values near the edges of what each field takes, beside arbitrary JSON.
edge_values = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        1,
        1.0,
        "",
        "x" * 41,
        "x" * 65,
        "x" * 129,
        "C-1\n",
        "C 1",
        "a\x00b",
        "adult",
        "child",
        "no_show",
        "cancelled",
        "client",
        "clinician",
        "ors",
        "2026-11-02",
        "20261102",
        "2026-W45-1",
        "2026-11-31",
        "2026-1-2",
        "11/02/2026",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "{0f8fad5b-d9cb-469f-a165-70867728950e}",
        "0f8fad5bd9cb469fa16570867728950e",
        [],
        {},
        {"individual": None},
        {"individual\x00": 5},
        {"\ud800": 5},
    ]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 50)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)

PATHS = [
    ("ehr_session_id",),
    ("client_id",),
    ("client_age_band",),
    ("clinician_id",),
    ("date",),
    ("attendance",),
    ("episode_id",),
    ("ratings",),
    ("ratings", 0),
    ("ratings", 0, "instrument"),
    ("ratings", 0, "rater"),
    ("ratings", 0, "items"),
    ("ratings", 0, "items", "individual"),
    ("ratings", 0, "total"),
    ("ratings", 1, "not_completed"),
    ("ratings", 1, "unexpected"),
    ("unexpected",),
]


def _mutate(payload: dict[str, Any], path: tuple[Any, ...], value: Any, drop: bool) -> Any:
    body = copy.deepcopy(payload)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    if drop and isinstance(target, list):
        del target[path[-1]]
    elif drop:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return body


def _schema_load(raw: Any) -> Any:
    """The field-by-field load, without the shortcut."""
    return Schema.load(SessionIn(), raw)


@settings(max_examples=400, deadline=None)
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(PATHS), edge_values | json_values, st.booleans()), max_size=3
    )
)
def test_shortcut_agrees_with_the_schema(mutations: list[tuple[Any, Any, bool]]) -> None:
    """Whatever the shortcut returns, the schema returns too; when it declines, fine."""
    body: Any = session_payload()
    for path, value, drop in mutations:
        try:
            body = _mutate(body, path, value, drop)
        except (KeyError, IndexError, TypeError, AttributeError):
            continue
    fast = fast_session(body)
    try:
        expected = _schema_load(body)
    except ValidationError:
        assert fast is None
        return
    assert fast is None or fast == expected


@pytest.mark.parametrize(
    "body",
    [
        session_payload(),
        session_payload(attendance="no_show", ratings=[]),
        session_payload(episode_id="0f8fad5b-d9cb-469f-a165-70867728950e", client_age_band=None),
        session_payload(
            ratings=[{"instrument": "ors", "total": 20, "rater": "client", "not_completed": False}]
        ),
    ],
)
def test_usual_sessions_take_the_shortcut(body: dict[str, Any]) -> None:
    """Well-formed sessions load through the shortcut, to the schema's own result."""
    fast = fast_session(body)
    assert fast is not None
    assert fast == _schema_load(body)
    assert SessionIn().load(body) == fast


@pytest.mark.parametrize(
    "body",
    [
        session_payload(ratings=[{"instrument": "ors", "items": {"individual\x00": 5}}]),
        session_payload(ratings=[{"instrument": "ors", "items": {"\ud800": 5}}]),
        session_payload(client_id="C-1\n"),
        session_payload(clinician_id="T-1\n"),
    ],
    ids=["nul-item-id", "surrogate-item-id", "client-id-newline", "clinician-id-newline"],
)
def test_the_shortcut_leaves_bad_ids_to_the_schema(body: dict[str, Any]) -> None:
    """An item id with a NUL or a lone surrogate, or an id with a trailing newline, does not
    take the shortcut, and the schema refuses it."""
    assert fast_session(body) is None
    with pytest.raises(ValidationError):
        _schema_load(body)
