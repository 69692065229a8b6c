"""Idempotency-Key after review: a refusal does not use up the key, the fingerprint is of the
JSON (not of its bytes), and the OpenAPI document declares the header."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fit_service.api.parsing import canonical_json
from tests.conftest import Tenant, session_payload

FUTURE = (date.today() + timedelta(days=400)).isoformat()


def _records(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM idempotency_records")).scalar_one())


def _post(client: FlaskClient, tenant: Tenant, body: Any, key: str) -> Any:
    return client.post("/v1/sessions", json=body, headers={**tenant.auth(), "Idempotency-Key": key})


def _batch(client: FlaskClient, tenant: Tenant, items: list[Any], key: str) -> Any:
    return client.post(
        "/v1/sessions/batch",
        json={"sessions": items},
        headers={**tenant.auth(), "Idempotency-Key": key},
    )


def _raw(client: FlaskClient, tenant: Tenant, path: str, body: bytes, key: str) -> Any:
    return client.post(
        path,
        data=body,
        content_type="application/json",
        headers={**tenant.auth(), "Idempotency-Key": key},
    )


def _answers(batch: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a batch answer says of each item (its problem's request id aside)."""
    return [
        (r["index"], r["outcome"], r["session_id"], r["revision"], (r["problem"] or {}).get("rule"))
        for r in batch["results"]
    ]


def test_a_refused_session_does_not_use_up_its_idempotency_key(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A session refused (a date in the future) under a key is not remembered: the corrected
    session under the same key is recorded (201), not answered idempotency_key_reused, and
    from then on the key replays that answer."""
    refused = _post(client, tenant, session_payload(date=FUTURE), "ik-bad")
    assert refused.status_code == 422, refused.json
    assert refused.json["rule"] == "date_in_future"
    assert _records(engine) == 0
    corrected = _post(client, tenant, session_payload(), "ik-bad")
    assert corrected.status_code == 201, corrected.json
    assert "Idempotent-Replayed" not in corrected.headers
    again = _post(client, tenant, session_payload(), "ik-bad")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == corrected.json


def test_a_batch_refused_as_a_whole_does_not_use_up_its_idempotency_key(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A batch whose every item was refused (by the domain or by the schema) wrote nothing:
    it is not remembered, and the corrected batch under the same key is recorded."""
    refused = _batch(client, tenant, [session_payload(date=FUTURE), {"bad": 1}], "bk-bad")
    assert refused.status_code == 200, refused.json
    assert [r["outcome"] for r in refused.json["results"]] == ["rejected", "rejected"]
    assert _records(engine) == 0
    corrected = [session_payload(), session_payload(ehr_session_id="S-2", date="2026-11-09")]
    resp = _batch(client, tenant, corrected, "bk-bad")
    assert resp.status_code == 200, resp.json
    assert [r["outcome"] for r in resp.json["results"]] == ["created", "created"]
    assert "Idempotent-Replayed" not in resp.headers
    assert _records(engine) == 1


def test_a_partly_accepted_batch_is_remembered_with_its_refusals(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """A batch with an accepted item was carried out: its answer (refusals included) is the
    key's, replayed to the same batch; another batch under the key is idempotency_key_reused."""
    items = [session_payload(), session_payload(ehr_session_id="S-2", date=FUTURE)]
    first = _batch(client, tenant, items, "bk-part")
    assert [r["outcome"] for r in first.json["results"]] == ["created", "rejected"]
    assert _records(engine) == 1
    replay = _batch(client, tenant, items, "bk-part")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert _answers(replay.json) == _answers(first.json)
    fixed = [items[0], session_payload(ehr_session_id="S-2", date="2026-11-09")]
    other = _batch(client, tenant, fixed, "bk-part")
    assert other.status_code == 422
    assert other.json["rule"] == "idempotency_key_reused"


def test_the_same_json_written_otherwise_is_the_same_request(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """The key's fingerprint is of the JSON: the same session re-serialised with other
    whitespace, name order, escapes or spelling of a number is a replay, not a 422."""
    payload = session_payload()
    compact = json.dumps(payload, separators=(",", ":")).encode()
    reordered = dict(reversed(list(payload.items())))
    pretty = json.dumps(reordered, indent=2, ensure_ascii=True).replace("4.5", "4.50")
    pretty = pretty.replace('"C-1"', '"\\u0043-1"')
    first = _raw(client, tenant, "/v1/sessions", compact, "ws")
    assert first.status_code == 201, first.json
    again = _raw(client, tenant, "/v1/sessions", pretty.encode(), "ws")
    assert again.status_code == 201, again.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    # the batch route too
    items = [session_payload(ehr_session_id="S-2", date="2026-11-09")]
    plain = json.dumps({"sessions": items}).encode()
    batch = _raw(client, tenant, "/v1/sessions/batch", plain, "wb")
    assert batch.status_code == 200, batch.json
    spaced = json.dumps({"sessions": items}, indent=4, sort_keys=True).encode()
    replay = _raw(client, tenant, "/v1/sessions/batch", spaced, "wb")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json == batch.json
    assert _records(engine) == 2


def test_a_repeated_name_makes_another_request(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """The fingerprint keeps every value of a repeated name: a batch whose item names its date
    twice (that item is refused) is not the batch with only the last date (stored), so it is
    no replay of it but idempotency_key_reused."""
    good = json.dumps(session_payload(ehr_session_id="S-2"))
    twice = good.replace('"date": "2026-11-02"', '"date": "2026-11-09", "date": "2026-11-02"')
    assert twice != good
    first_body = f'{{"sessions": [{json.dumps(session_payload())}, {twice}]}}'
    first = _raw(client, tenant, "/v1/sessions/batch", first_body.encode(), "dup")
    assert [r["outcome"] for r in first.json["results"]] == ["created", "rejected"]
    assert first.json["results"][1]["problem"]["rule"] == "duplicate_key"
    other_body = f'{{"sessions": [{json.dumps(session_payload())}, {good}]}}'
    other = _raw(client, tenant, "/v1/sessions/batch", other_body.encode(), "dup")
    assert other.status_code == 422, other.json
    assert other.json["rule"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (b'{"a": 1, "b": [1, 2]}', b'{ "b" : [ 1,2 ] ,\n "a":1 }'),
        (b'{"a": 1.50}', b'{"a": 1.5}'),
        (b'{"a": 1e2}', b'{"a": 100.0}'),
        (b'{"a": "\\u00e9"}', '{"a": "\u00e9"}'.encode()),
        (b'{"a": {"y": null, "x": true}}', b'{"a": {"x": true, "y": null}}'),
    ],
)
def test_canonical_json_makes_equal_json_equal_bytes(one: bytes, other: bytes) -> None:
    """Whitespace, name order, escapes and the spelling of a number do not matter."""
    assert canonical_json(one) == canonical_json(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (b'{"a": 1}', b'{"a": 1.0}'),  # numbers as parsed: an integer is not a float
        (b'{"a": 1, "a": 2}', b'{"a": 2}'),
        (b'{"a": 1, "a": 2}', b'{"a": 2, "a": 1}'),
        (b'{"a": [1, 2]}', b'{"a": [2, 1]}'),
        (b"not json", b'"not json"'),
    ],
)
def test_canonical_json_keeps_what_makes_json_different(one: bytes, other: bytes) -> None:
    """Another value, order in a list, or every value of a repeated name in its order, stays."""
    assert canonical_json(one) != canonical_json(other)


def test_the_openapi_document_declares_the_idempotency_key_header(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Both POST session routes declare Idempotency-Key as an optional header with the format
    the service enforces (1-255 printable ASCII characters), and say what it does."""
    spec = client.get("/v1/openapi.json").json
    for path in ("/v1/sessions", "/v1/sessions/batch"):
        params = spec["paths"][path]["post"].get("parameters", [])
        (header,) = [p for p in params if p["name"] == "Idempotency-Key"]
        assert header["in"] == "header"
        assert header["required"] is False
        schema = header["schema"]
        assert (schema["type"], schema["minLength"], schema["maxLength"]) == ("string", 1, 255)
        assert schema["pattern"] == "^[ -~]+$"
        assert "idempotency_key_reused" in header["description"]
    # the declared limits are the enforced ones
    longest = _post(client, tenant, session_payload(), "k" * 255)
    assert longest.status_code == 201, longest.json
    for bad in ("k" * 256, "k\u00e9"):
        resp = _post(client, tenant, session_payload(), bad)
        assert resp.status_code == 422, resp.json
        assert (resp.json["rule"], resp.json["field"]) == (
            "idempotency_key_format",
            "Idempotency-Key",
        )


def test_a_replay_answers_the_first_outcomes_and_revisions_with_bodies_as_stored_now(
    client: FlaskClient, tenant: Tenant
) -> None:
    """What the README promises of a replay after the session was revised: a batch replay's
    results are the first answer's (outcome, status, id, revision 1); a single-session replay
    has the first status (201) and the session's body as stored now (revision 2)."""
    first = _post(client, tenant, session_payload(), "k-one")
    batch = _batch(client, tenant, [session_payload()], "k-batch")
    assert (first.status_code, first.json["revision"]) == (201, 1)
    assert _answers(batch.json) == [(0, "unchanged", first.json["id"], 1, None)]
    revised = session_payload()
    revised["ratings"][0]["items"]["individual"] = 2
    assert client.post("/v1/sessions", json=revised, headers=tenant.auth()).status_code == 200
    again = _post(client, tenant, session_payload(), "k-one")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (again.status_code, again.json["id"], again.json["revision"]) == (
        201,
        first.json["id"],
        2,
    )
    ors = next(r for r in again.json["ratings"] if r["instrument"] == "ors")
    assert ors["items"]["individual"] == 2
    batch_again = _batch(client, tenant, [session_payload()], "k-batch")
    assert batch_again.headers["Idempotent-Replayed"] == "true"
    assert _answers(batch_again.json) == _answers(batch.json)
    assert batch_again.json["results"][0]["status"] == 200
