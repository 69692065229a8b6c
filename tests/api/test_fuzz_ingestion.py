"""Property: whatever an EHR sends, ingestion answers 2xx or a 4xx problem — never a 500 —
and a refused request changes nothing stored."""

from __future__ import annotations

import copy
from typing import Any

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from tests.conftest import Tenant, session_payload

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
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
    ("ratings", 0, "items"),
    ("ratings", 0, "items", "individual"),
    ("ratings", 0, "total"),
    ("ratings", 1, "items", "goals"),
    ("ratings", 1, "not_completed"),
    ("ratings", 1, "rater"),
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


def _count(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(text("SELECT count(*) FROM sessions")).scalar_one(),
            conn.execute(text("SELECT count(*) FROM session_revisions")).scalar_one(),
        )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(PATHS), value=json_values, drop=st.booleans())
def test_mutated_sessions_never_cause_a_500(
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    path: tuple[Any, ...],
    value: Any,
    drop: bool,
) -> None:
    """Any one field replaced by arbitrary JSON (or removed) gives 2xx or a 4xx problem."""
    body = _mutate(session_payload(ehr_session_id="F-1"), path, value, drop)
    before = _count(engine)
    resp = client.post("/v1/sessions", json=body, headers=tenant.auth())
    assert resp.status_code < 500, resp.data
    if resp.status_code >= 400:
        assert resp.mimetype == "application/problem+json"
        assert resp.json["rule"]
        assert _count(engine) == before
