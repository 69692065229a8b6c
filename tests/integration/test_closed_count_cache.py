"""The clinic's count of closed episodes (what the cached trajectory and dropout models are
keyed by) is counted at most once a minute per process, not on every session write: the COUNT
is linear in the clinic's history. Closing an episode here counts afresh."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, event

from fit_service.services import trajectories
from tests.conftest import Tenant, session_payload

TODAY = datetime.now(UTC).date()


def _counting(engine: Engine) -> tuple[list[str], Any]:
    counts: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        text = " ".join(statement.split()).lower()
        # trajectories.closed_episodes_count, selected on its own
        if text.startswith("select (select count(*)") and "from episodes where" in text:
            counts.append(text)

    event.listen(engine, "before_cursor_execute", listen)
    return counts, lambda: event.remove(engine, "before_cursor_execute", listen)


def _post(client: FlaskClient, tenant: Tenant, n: int) -> dict[str, Any]:
    body = session_payload(
        ehr_session_id=f"S-{n}",
        client_id=f"C-{n}",
        date=(TODAY - timedelta(days=1)).isoformat(),
        ratings=[{"instrument": "ors", "total": 20.0}, {"instrument": "srs", "total": 38.0}],
    )
    r = client.post("/v1/sessions", json=body, headers=tenant.auth())
    assert r.status_code == 201, r.json
    return dict(r.json)


def test_session_writes_count_the_closed_episodes_once_a_minute_not_each_time(
    client: FlaskClient, tenant: Tenant, engine: Engine
) -> None:
    """The first write counts; the next ones within the minute reuse the count."""
    counts, stop = _counting(engine)
    try:
        for n in range(4):
            _post(client, tenant, n)
    finally:
        stop()
    assert len(counts) == 1, counts


def test_closing_an_episode_counts_afresh_and_the_count_expires(
    client: FlaskClient, tenant: Tenant, engine: Engine, monkeypatch: Any
) -> None:
    """A close in this process forgets the count after it commits, so its own answer (read
    after the commit) counts again, one more now; the writes after it reuse that; a count older
    than the minute is counted again."""
    first = _post(client, tenant, 1)
    counts, stop = _counting(engine)
    try:
        r = client.post(
            f"/v1/episodes/{first['episode_id']}/close",
            json={"ending_reason": "planned"},
            headers=tenant.auth(),
        )
        assert r.status_code == 200, r.json
        _post(client, tenant, 2)
        _post(client, tenant, 3)
        assert len(counts) == 1, counts
        mine = [v for (url, _clinic), v in trajectories._closed.items() if url == str(engine.url)]
        assert [count for _expires, count in mine] == [1]
        later = time.monotonic() + trajectories.CLOSED_COUNT_TTL_SECONDS + 1
        monkeypatch.setattr(trajectories.time, "monotonic", lambda: later)
        _post(client, tenant, 4)
    finally:
        stop()
    assert len(counts) == 2, counts


def test_a_close_caches_no_count_from_inside_its_own_transaction(
    client: FlaskClient, tenant: Tenant, engine: Engine, monkeypatch: Any
) -> None:
    """With no count cached (a quiet minute), the close's answer must not count inside the
    close's transaction: a count taken there would include a close a failed commit undoes, and
    a model fitted there would be cached under it. At the commit, nothing is cached yet."""
    from fit_service.adapters.unit_of_work import UnitOfWork  # noqa: PLC0415

    first = _post(client, tenant, 1)
    trajectories.clear_caches()
    at_commit: list[list[int]] = []
    original = UnitOfWork.commit

    def spy(self: UnitOfWork) -> None:
        at_commit.append(
            [n for (url, _c), (_t, n) in trajectories._closed.items() if url == str(engine.url)]
        )
        original(self)

    monkeypatch.setattr(UnitOfWork, "commit", spy)
    r = client.post(
        f"/v1/episodes/{first['episode_id']}/close",
        json={"ending_reason": "planned"},
        headers=tenant.auth(),
    )
    assert r.status_code == 200, r.json
    assert at_commit
    assert at_commit[-1] == [], at_commit
