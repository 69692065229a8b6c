"""Bad input found by a black-box review: each was accepted (201) or worded badly, and is now a
422 problem naming the field and the rule, with nothing stored changed.

- a rater the instrument has no form for (an SRS "by the parent" was stored and then ignored by
  the alliance risk rules, which read the client's ratings: one misconfigured EHR field turned
  every alliance alert off);
- tabs, line breaks and C1 controls in an EHR session id (stored as sent);
- scores off the scale's grid, which were rounded (ORS item 9.9999 stored as 10.0, a total
  20.04 beside items summing to 20 stored as 20.0);
- a null item score named ``...items.individual.value``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from tests.conftest import Tenant, session_payload, stored_sessions

_ORS_ITEMS = ("individual", "interpersonal", "social", "overall")
_SRS_ITEMS = ("relationship", "goals", "approach", "overall")


def _ors(rater: str | None = None, value: float = 5, **items: Any) -> dict[str, Any]:
    rating: dict[str, Any] = {
        "instrument": "ors",
        "items": {**dict.fromkeys(_ORS_ITEMS, value), **items},
    }
    if rater is not None:
        rating["rater"] = rater
    return rating


def _rating(instrument: str, rater: str | None = None, **extra: Any) -> dict[str, Any]:
    if instrument.startswith("wai_sr"):
        items: dict[str, Any] = {f"item{n:02d}": 3 for n in range(1, 13)}
    elif instrument in ("srs", "csrs"):
        items = dict.fromkeys(_SRS_ITEMS, 9)
    else:
        items = dict.fromkeys(_ORS_ITEMS, 5)
    rating: dict[str, Any] = {"instrument": instrument, "items": items, **extra}
    if rater is not None:
        rating["rater"] = rater
    return rating


def _refused(
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    payload: dict[str, Any],
    rule: str,
    field: str,
) -> dict[str, Any]:
    """POST ``payload`` after one stored session; assert a 422 naming ``rule`` and ``field``
    and that nothing stored changed. Returns the problem."""
    stored = client.post(
        "/v1/sessions",
        json=session_payload(ehr_session_id="S-0", client_id="C-0"),
        headers=tenant.auth(),
    )
    assert stored.status_code == 201, stored.json
    before = stored_sessions(engine)
    resp = client.post("/v1/sessions", json=payload, headers=tenant.auth())
    assert resp.status_code == 422, resp.json
    assert resp.mimetype == "application/problem+json"
    assert (resp.json["rule"], resp.json["field"]) == (rule, field), resp.json
    assert resp.json["detail"]
    assert stored_sessions(engine) == before
    return resp.json


# -- 1. who may rate what ------------------------------------------------------------------

RATER_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "adult SRS by a parent",
        session_payload(ratings=[_ors(), _rating("srs", "parent")]),
        "rater_not_for_age_band",
        "ratings[1].rater",
    ),
    (
        "SRS by the therapist",
        session_payload(ratings=[_rating("srs", "therapist")]),
        "rater_not_for_instrument",
        "ratings[0].rater",
    ),
    (
        "ORS by the therapist",
        session_payload(ratings=[_ors("therapist")]),
        "rater_not_for_instrument",
        "ratings[0].rater",
    ),
    (
        "WAI-SR client form by the therapist",
        session_payload(ratings=[_rating("wai_sr_client", "therapist")]),
        "rater_not_for_instrument",
        "ratings[0].rater",
    ),
    (
        "WAI-SR therapist form by the client",
        session_payload(ratings=[_rating("wai_sr_therapist", "client")]),
        "rater_not_for_instrument",
        "ratings[0].rater",
    ),
    (
        "adult ORS by a teacher",
        session_payload(ratings=[_ors(), _ors("teacher")]),
        "rater_not_for_age_band",
        "ratings[1].rater",
    ),
    (
        "adult ORS by a parent, alone",
        session_payload(ratings=[_ors("parent")]),
        "rater_not_for_age_band",
        "ratings[0].rater",
    ),
]


@pytest.mark.parametrize(
    ("label", "payload", "rule", "field"), RATER_CASES, ids=[c[0] for c in RATER_CASES]
)
def test_a_rater_the_instrument_has_no_form_for_is_refused(
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    label: str,
    payload: dict[str, Any],
    rule: str,
    field: str,
) -> None:
    """SRS/CSRS are the client's, each WAI-SR form its own rater's, the ORS/CORS the client's or
    (of a child or adolescent only) a parent's, caregiver's or teacher's: anything else is a 422
    naming ratings[i].rater, never stored unread by the risk rules."""
    _refused(client, tenant, engine, payload, rule, field)


def test_the_refusal_names_the_form_to_send_instead(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A WAI-SR client form sent as the therapist's says the therapist has a form of its own."""
    problem = _refused(
        client,
        tenant,
        engine,
        session_payload(ratings=[_rating("wai_sr_client", "therapist")]),
        "rater_not_for_instrument",
        "ratings[0].rater",
    )
    assert "wai_sr_therapist" in problem["detail"]


def test_a_refused_rater_in_a_batch_sinks_only_its_item(
    client: FlaskClient, tenant: Tenant
) -> None:
    """In a batch, the session whose SRS names the therapist is rejected alone."""
    good = session_payload(ehr_session_id="S-good")
    bad = session_payload(ehr_session_id="S-bad", ratings=[_rating("srs", "therapist")])
    resp = client.post("/v1/sessions/batch", json={"sessions": [good, bad]}, headers=tenant.auth())
    assert resp.status_code == 200, resp.json
    first, second = resp.json["results"]
    assert first["outcome"] == "created"
    assert (second["outcome"], second["problem"]["rule"], second["problem"]["field"]) == (
        "rejected",
        "rater_not_for_instrument",
        "ratings[0].rater",
    )


@pytest.mark.parametrize("rater", ["parent", "caregiver", "teacher"])
def test_a_collateral_rating_of_a_young_client_is_kept_beside_the_clients_own(
    client: FlaskClient, tenant: Tenant, rater: str
) -> None:
    """A parent's, caregiver's or teacher's ORS of an adolescent (CORS of a child) is stored and
    shown as theirs, with its own change since the first; the episode's outcome is the
    client's own rating, which the risk rules and reports read too."""
    cases = [("adolescent", "ors", 4, 6), ("child", "cors", 7, 8)]
    for n, (band, code, own, collateral) in enumerate(cases):
        client_id = f"C-{band}"
        for week, shift in enumerate((0, 1)):
            ratings = [
                {**_ors(value=own + shift), "instrument": code},
                {**_ors(rater, value=collateral - shift), "instrument": code},
            ]
            payload = session_payload(
                ehr_session_id=f"S-{n}-{week}",
                client_id=client_id,
                client_age_band=band,
                date=f"2026-11-0{week + 2}",
                ratings=ratings,
            )
            resp = client.post("/v1/sessions", json=payload, headers=tenant.auth())
            assert resp.status_code == 201, resp.json
        shown = {r["rater"]: r for r in resp.json["ratings"]}
        assert (shown["client"]["total"], shown["client"]["change_since_first"]) == (
            4 * (own + 1),
            4.0,
        )
        assert (shown[rater]["total"], shown[rater]["change_since_first"]) == (
            4 * (collateral - 1),
            -4.0,
        )
        outcome = resp.json["episode"]["outcome"]
        assert (outcome["instrument"], outcome["intake"], outcome["latest"]) == (
            code,
            4 * own,
            4 * (own + 1),
        )


def test_a_collateral_rating_alone_gives_the_client_no_outcome(
    client: FlaskClient, tenant: Tenant
) -> None:
    """A session with only the parent's ORS of an adolescent is stored, and the episode has no
    outcome score yet: the client's own is what the outcome and risk rules read (README)."""
    payload = session_payload(client_age_band="adolescent", ratings=[_ors("parent")])
    resp = client.post("/v1/sessions", json=payload, headers=tenant.auth())
    assert resp.status_code == 201, resp.json
    assert [(r["instrument"], r["rater"]) for r in resp.json["ratings"]] == [("ors", "parent")]
    assert resp.json["episode"]["outcome"] is None


def test_the_default_rater_of_each_form_is_its_own(client: FlaskClient, tenant: Tenant) -> None:
    """Without a rater, each instrument takes its usual one (the WAI-SR therapist form the
    therapist's), and naming that rater is the same session."""
    ratings = [_ors(), _rating("srs"), _rating("wai_sr_client"), _rating("wai_sr_therapist")]
    resp = client.post("/v1/sessions", json=session_payload(ratings=ratings), headers=tenant.auth())
    assert resp.status_code == 201, resp.json
    assert sorted((r["instrument"], r["rater"]) for r in resp.json["ratings"]) == [
        ("ors", "client"),
        ("srs", "client"),
        ("wai_sr_client", "client"),
        ("wai_sr_therapist", "therapist"),
    ]
    named = [
        _ors("client"),
        _rating("srs", "client"),
        _rating("wai_sr_client", "client"),
        _rating("wai_sr_therapist", "therapist"),
    ]
    resp = client.post("/v1/sessions", json=session_payload(ratings=named), headers=tenant.auth())
    assert (resp.status_code, resp.json["revision"]) == (200, 1), resp.json


# -- 2. control characters in identifiers ------------------------------------------------

# Inside the id: a tab or line break at its start or end is also padding, refused as "invalid"
# with control_character among the errors (test_probe_regressions.py).
CONTROL_IDS = ["S\n1", "S\t1", "S\r1", "S\x851", "S\u20281", "S\u20291", "S\x9f1", "S\x7f1"]


@pytest.mark.parametrize("ehr_id", CONTROL_IDS, ids=[repr(c) for c in CONTROL_IDS])
def test_a_control_character_in_an_ehr_session_id_is_refused(
    client: FlaskClient, tenant: Tenant, engine: Engine, ehr_id: str
) -> None:
    """A tab, a line break of any kind (CR, LF, NEL, U+2028/9) or a C1 control in an EHR
    session id is control_character, as the README says: "S\\n1" was stored as a second
    session beside "S1"."""
    _refused(
        client,
        tenant,
        engine,
        session_payload(ehr_session_id=ehr_id),
        "control_character",
        "ehr_session_id",
    )


@pytest.mark.parametrize("ehr_id", CONTROL_IDS[:3], ids=[repr(c) for c in CONTROL_IDS[:3]])
def test_a_control_character_in_an_ehr_session_id_is_refused_in_a_batch(
    client: FlaskClient, tenant: Tenant, ehr_id: str
) -> None:
    """The batch's fast load refuses the same ids as the schema."""
    body = {"sessions": [session_payload(ehr_session_id=ehr_id)]}
    resp = client.post("/v1/sessions/batch", json=body, headers=tenant.auth())
    assert resp.status_code == 200, resp.json
    (result,) = resp.json["results"]
    assert (result["outcome"], result["problem"]["rule"], result["problem"]["field"]) == (
        "rejected",
        "control_character",
        "ehr_session_id",
    )


@pytest.mark.parametrize(
    "rating",
    [
        {"instrument": "ors\n", "total": 20},
        {"instrument": "ors", "items": {"individual\t": 5, **dict.fromkeys(_ORS_ITEMS[1:], 5)}},
        {"instrument": "ors", "items": {"individual\u2028": 5, **dict.fromkeys(_ORS_ITEMS[1:], 5)}},
    ],
    ids=["instrument", "item-tab", "item-line-separator"],
)
def test_a_control_character_in_an_instrument_or_item_id_is_refused(
    client: FlaskClient, tenant: Tenant, engine: Engine, rating: dict[str, Any]
) -> None:
    """Instrument and item ids are identifiers too: a tab or line break in one is
    control_character (it was unknown_instrument / unknown_item)."""
    field = "ratings[0].instrument" if "total" in rating else "ratings[0].items"
    _refused(client, tenant, engine, session_payload(ratings=[rating]), "control_character", field)


def test_free_text_keeps_its_line_breaks(client: FlaskClient, tenant: Tenant) -> None:
    """The identifier rule is not the free-text rule: an episode's closing note may still hold
    a tab and line breaks."""
    assert (
        client.post("/v1/sessions", json=session_payload(), headers=tenant.auth()).status_code
        == 201
    )
    episode = client.get("/v1/clients/C-1", headers=tenant.auth()).json["episodes"][0]
    resp = client.post(
        f"/v1/episodes/{episode['id']}/close",
        json={"ending_reason": "planned", "note": "line 1\n\tline 2"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 200, resp.json


# -- 3. scores off the grid are refused, never rounded ----------------------------------------

OFF_GRID: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "ORS item 4.15",
        _ors(individual=4.15),
        "item_resolution",
        "ratings[0].items.individual",
    ),
    ("ORS item 0.05", _ors(social=0.05), "item_resolution", "ratings[0].items.social"),
    (
        "ORS item 9.9999",
        _ors(overall=9.9999),
        "item_resolution",
        "ratings[0].items.overall",
    ),
    (
        "ORS total 20.04 beside items summing to 20",
        {**_ors(), "total": 20.04},
        "total_resolution",
        "ratings[0].total",
    ),
    (
        "ORS total 20.05 beside items summing to 20",
        {**_ors(), "total": 20.05},
        "total_resolution",
        "ratings[0].total",
    ),
    (
        "SRS total 35.05 beside items summing to 35",
        {
            "instrument": "srs",
            "items": {"relationship": 8, "goals": 9, "approach": 9, "overall": 9},
            "total": 35.05,
        },
        "total_resolution",
        "ratings[0].total",
    ),
    (
        "ORS total 20.1 beside items summing to 20",
        {**_ors(), "total": 20.1},
        "total_contradicts_items",
        "ratings[0].total",
    ),
    (
        "WAI-SR total 36.001 beside items summing to 36",
        {**_rating("wai_sr_client"), "total": 36.001},
        "total_resolution",
        "ratings[0].total",
    ),
]


@pytest.mark.parametrize(
    ("label", "rating", "rule", "field"), OFF_GRID, ids=[c[0] for c in OFF_GRID]
)
def test_a_score_off_the_grid_is_refused_not_rounded(
    client: FlaskClient,
    tenant: Tenant,
    engine: Engine,
    label: str,
    rating: dict[str, Any],
    rule: str,
    field: str,
) -> None:
    """An item finer than the scale's step, or a total off the grid (with or without its items),
    is refused: 9.9999 was stored as 10.0, and 20.04 beside items summing to 20 as 20.0."""
    _refused(client, tenant, engine, session_payload(ratings=[rating]), rule, field)


def test_float_noise_on_a_tenth_is_read_as_that_tenth(client: FlaskClient, tenant: Tenant) -> None:
    """What a JSON client computes for a tenth is accepted as that tenth: 0.1 + 0.2 is
    0.30000000000000004 in binary, and a total summed in floating point likewise."""
    items = {"individual": 0.1 + 0.2, "interpersonal": 4.1, "social": 4.7, "overall": 5.3}
    total = sum(items.values())
    assert total != 14.4  # the sum is itself off by float noise
    resp = client.post(
        "/v1/sessions",
        json=session_payload(ratings=[{"instrument": "ors", "items": items, "total": total}]),
        headers=tenant.auth(),
    )
    assert resp.status_code == 201, resp.json
    (rating,) = resp.json["ratings"]
    assert rating["items"]["individual"] == 0.3
    assert rating["total"] == 14.4


# -- 4. problem paths ---------------------------------------------------------------------


def test_a_null_item_score_names_the_item(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A null score is reported on ratings[0].items.individual, a path the payload has (it was
    ratings[0].items.individual.value)."""
    problem = _refused(
        client,
        tenant,
        engine,
        session_payload(ratings=[_ors(individual=None)]),
        "not_null",
        "ratings[0].items.individual",
    )
    assert [e["field"] for e in problem["errors"]] == ["ratings[0].items.individual"]


@pytest.mark.parametrize("item", [5, "S-1", [1], True], ids=["number", "string", "list", "bool"])
def test_a_batch_item_that_is_not_an_object_is_refused_as_a_whole(
    client: FlaskClient, tenant: Tenant, item: Any
) -> None:
    """A batch item that is no JSON object (or null) is rejected as a whole: field null, as
    POST /v1/sessions names a body that is no object (index places it), and the detail does
    not start with "None:" (the field it has no name for)."""
    body = {"sessions": [session_payload(), session_payload(ehr_session_id="S-2"), None, item]}
    resp = client.post("/v1/sessions/batch", json=body, headers=tenant.auth())
    assert resp.status_code == 200, resp.json
    results = resp.json["results"]
    assert [r["outcome"] for r in results] == ["created", "created", "rejected", "rejected"]
    rules = {2: "not_null", 3: "type_object"}
    for index in (2, 3):
        assert results[index]["index"] == index
        problem = results[index]["problem"]
        assert (problem["field"], problem["rule"]) == (None, rules[index]), problem
        assert not problem["detail"].startswith("None"), problem
        assert [e["field"] for e in problem["errors"]] == [None]


#: Items a batch rejects, each by another rule: the item as a whole, the schema (a field, a
#: nested one, a name twice), the domain (a rating, a date, a new client's band).
_BAD_ITEMS: list[Any] = [
    None,
    7,
    [session_payload()],
    {"ehr_session_id": "B-3"},
    {**session_payload(ehr_session_id="B-4"), "zzz": 1},
    session_payload(ehr_session_id="B-5", client_id="bad id!"),
    session_payload(ehr_session_id="B-6", ratings=[_ors(individual=10.5)]),
    session_payload(ehr_session_id="B-7", ratings=[_ors(individual=None)]),
    session_payload(ehr_session_id="B-8", ratings=[_ors(item05=3)]),
    session_payload(ehr_session_id="B-9", ratings=[{"instrument": "xyz", "items": {}}]),
    session_payload(ehr_session_id="B-10", date="2099-01-01"),
    session_payload(ehr_session_id="B-11", date="2026-W45"),
    session_payload(ehr_session_id="B-12", client_id="C-new", client_age_band=None),
    session_payload(ehr_session_id="B-13", ratings=[_ors(), _ors()]),
]


def test_every_batch_item_problem_names_its_fields_within_the_item(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """Each rejected item's problem names its fields within the item, as POST /v1/sessions
    names them for that session alone (ratings[0].items.individual, date, and null for the
    item as a whole), never with the batch's sessions[i] in front: an integrator maps a
    field onto the item that index names, whichever route it was sent by. (The item as a
    whole was named sessions[i], its fields within the item.) A duplicate name inside an
    item is named within it too; nothing is stored."""
    good = session_payload(ehr_session_id="B-0")
    duplicate = '{"ehr_session_id": "B-14", "ehr_session_id": "B-15"}'
    raw = (
        '{"sessions": ['
        + ", ".join([json.dumps(good), *map(json.dumps, _BAD_ITEMS), duplicate])
        + "]}"
    )
    singles = [*map(json.dumps, _BAD_ITEMS), duplicate]
    before = stored_sessions(engine)
    resp = client.post(
        "/v1/sessions/batch", data=raw, content_type="application/json", headers=tenant.auth()
    )
    assert resp.status_code == 200, resp.json
    results = resp.json["results"][1:]
    assert [r["index"] for r in results] == list(range(1, len(singles) + 1))
    assert {r["outcome"] for r in results} == {"rejected"}
    stored_by_batch = stored_sessions(engine)
    assert stored_by_batch != before  # the good item
    for result, single in zip(results, singles, strict=True):
        problem = result["problem"]
        alone = client.post(
            "/v1/sessions", data=single, content_type="application/json", headers=tenant.auth()
        )
        assert alone.status_code == 422, alone.json
        fields = [e["field"] for e in problem["errors"]]
        assert fields == [e["field"] for e in alone.json["errors"]], (result["index"], single)
        assert problem["field"] == alone.json["field"] == fields[0]
        assert not any(f and f.startswith("sessions") for f in fields), problem
        if single not in {"null"}:  # a null item is not_null; a null body type_object
            assert problem["rule"] == alone.json["rule"], (result["index"], single)
    assert stored_sessions(engine) == stored_by_batch


@pytest.mark.parametrize(
    ("band", "instrument", "rater"),
    [("child", "csrs", "caregiver"), ("adolescent", "srs", "parent"), ("child", "cors", "teacher")],
)
def test_a_collateral_rating_of_a_childs_session_is_stored_beside_the_childs_own(
    client: FlaskClient, tenant: Tenant, band: str, instrument: str, rater: str
) -> None:
    """In PCOMS work with children a parent or caregiver who attends fills in the session's SRS
    (CSRS) or the ORS (CORS) too: stored and shown beside the child's own, which is the one
    the risk rules read (a session lost whole for the parent's form was the regression)."""
    own = _rating(instrument, "client")
    payload = session_payload(client_age_band=band, ratings=[own, _rating(instrument, rater)])
    resp = client.post("/v1/sessions", json=payload, headers=tenant.auth())
    assert resp.status_code == 201, resp.json
    assert sorted(r["rater"] for r in resp.json["ratings"]) == sorted(["client", rater])


def test_a_correction_keeps_a_parents_rating_after_the_client_turned_18(
    client: FlaskClient, tenant: Tenant
) -> None:
    """S-1 was stored for an adolescent with the parent's ORS; the client is an adult now. A
    correction of S-1 that does not name a band keeps it (as it keeps its age version)."""
    first = session_payload(
        ehr_session_id="S-1",
        client_age_band="adolescent",
        date="2026-10-05",
        ratings=[_ors(), _ors("parent")],
    )
    assert client.post("/v1/sessions", json=first, headers=tenant.auth()).status_code == 201
    now_adult = session_payload(ehr_session_id="S-2", client_age_band="adult", date="2026-10-12")
    assert client.post("/v1/sessions", json=now_adult, headers=tenant.auth()).status_code == 201
    fixed = {k: v for k, v in first.items() if k != "client_age_band"}
    fixed["ratings"] = [_ors(), {**_ors("parent"), "items": {**_ors()["items"], "social": 3}}]
    resp = client.post("/v1/sessions", json=fixed, headers=tenant.auth())
    assert resp.status_code == 200, resp.json
    assert resp.json["revision"] == 2
