"""Monthly benchmark reports from real data on both databases (issue 5).

A seeded clinic history is posted through the API; its JSON report must equal a plain-Python
calculation over the same fixture rows (written independently of the domain code), and the
PDF's text must carry the JSON's figures.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import re
import statistics
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import Engine, delete, insert, select, update

from fit_service.adapters.orm import Alert, Client, Clinic, Episode, TherapySession
from fit_service.domain.errors import FitError
from fit_service.domain.monthly_report import HEADLINE_KEYS
from fit_service.services import clinics, episode_months, monthly_reports
from tests.conftest import Tenant, session_payload
from tests.independent_stats import effective_n, wilson
from tests.unit.test_effect_sizes import T_TABLE
from tests.unit.test_report_renderers import CLINICIAN_COLUMNS

PERIOD = "2026-10"
MONTH = (date(2026, 10, 1), date(2026, 10, 31))
TRAILING = (date(2025, 11, 1), date(2026, 10, 31))
CUTOFF = {"adult": 25.0, "adolescent": 28.0, "child": 32.0}  # domain.md §3
RELIABLE = 5.0  # domain.md §3
SRS_CONCERN = 36.0
FOLLOW_UP = 30


# ------------------------------------------------------------------------- fixture history


@dataclass
class Visit:
    day: date
    attendance: str = "attended"
    ors: float | None = None
    srs: float | None = None
    clinician: str | None = None  # who held the session, when not the episode's clinician


@dataclass
class Ep:
    client: str
    band: str
    clinician: str
    visits: list[Visit]
    ending: str | None = None
    closed_on: date | None = None
    alerts: list[tuple[datetime, datetime | None, datetime | None, str]] = field(
        default_factory=list
    )  # (opened, acknowledged, closed, status)


def seeded_history(count: int = 48, seed: int = 5) -> list[Ep]:
    """A clinic's plausible year: episodes opened February to October 2026, some still open
    with November sessions, three clinicians, all three age bands, missing ratings."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        band = rng.choices(["adult", "adolescent", "child"], weights=(6, 2, 2))[0]
        start = date(2026, 2, 1) + timedelta(days=rng.randint(0, 265))
        day, visits = start, []
        ors = round(min(38.0, max(2.0, rng.gauss(21, 6))), 1)
        for i in range(rng.randint(1, 9)):
            if day > date(2026, 11, 20):
                break
            attendance = "attended"
            if i and rng.random() < 0.18:
                attendance = rng.choice(["no_show", "cancelled"])
            visit = Visit(day, attendance)
            if attendance == "attended":
                ors = round(min(40.0, max(0.0, ors + (rng.gauss(1.8, 3.5) if i else 0))), 1)
                visit.ors = ors if rng.random() > 0.08 else None
                visit.srs = (
                    round(min(40.0, rng.gauss(35.5, 3.5)), 1) if rng.random() > 0.15 else None
                )
            visits.append(visit)
            day += timedelta(days=rng.randint(6, 15))
        episode = Ep(f"C-{n:03d}", band, f"T-{1 + n % 3}", visits)
        last = visits[-1].day
        if last <= date(2026, 10, 31) and rng.random() < 0.8:
            episode.closed_on = min(date(2026, 11, 20), last + timedelta(days=rng.randint(0, 9)))
            episode.ending = rng.choice(
                ["planned", "planned", "client_ended", "stopped_attending", "transferred", "other"]
            )
        if n % 3 == 0:
            flag = datetime.combine(visits[0].day, datetime.min.time(), UTC) + timedelta(hours=10)
            ack = flag + timedelta(hours=rng.randint(1, 60)) if n % 2 == 0 else None
            closed = ack + timedelta(days=3) if ack and n % 4 == 0 else None
            status = "resolved" if closed else ("acknowledged" if ack else "open")
            episode.alerts.append((flag, ack, closed, status))
        out.append(episode)
    return out


def _ratings(ep: Ep, visit: Visit) -> list[dict[str, Any]]:
    outcome, alliance = ("cors", "csrs") if ep.band == "child" else ("ors", "srs")
    ratings = []
    if visit.ors is not None:
        ratings.append({"instrument": outcome, "total": visit.ors})
    if visit.srs is not None:
        ratings.append({"instrument": alliance, "total": visit.srs})
    return ratings


def load_history(client: FlaskClient, engine: Engine, tenant: Tenant, episodes: list[Ep]) -> None:
    """Post every session through the API, close episodes through the API, and write the
    alerts (their timestamps must lie in the past, which the alert rules cannot produce)."""
    sessions = [
        {
            "ehr_session_id": f"{ep.client}-{i}",
            "client_id": ep.client,
            "client_age_band": ep.band,
            "clinician_id": v.clinician or ep.clinician,
            "date": v.day.isoformat(),
            "attendance": v.attendance,
            "ratings": _ratings(ep, v),
        }
        for ep in episodes
        for i, v in enumerate(ep.visits)
    ]
    sessions.sort(key=lambda s: s["date"])
    response = client.post(
        "/v1/sessions/batch", json={"sessions": sessions}, headers=tenant.auth("ingest")
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["rejected"] == 0, response.get_json()
    with engine.begin() as conn:
        ids = dict(
            conn.execute(
                select(Client.external_id, Episode.public_id).join(
                    Episode, Episode.client_id == Client.id
                )
            ).all()
        )
    for ep in episodes:
        if ep.closed_on is None:
            continue
        response = client.post(
            f"/v1/episodes/{ids[ep.client]}/close",
            json={"ending_reason": ep.ending, "closed_on": ep.closed_on.isoformat()},
            headers=tenant.auth("manager"),
        )
        assert response.status_code == 200, response.get_json()
    with engine.begin() as conn:
        conn.execute(delete(Alert))  # alerts the rules raised today lie outside every window
        rows = conn.execute(
            select(Episode.id, Episode.client_id, Episode.clinician_id, Client.external_id).join(
                Client, Client.id == Episode.client_id
            )
        ).all()
        by_client = {r.external_id: r for r in rows}
        alerts = [
            {
                "public_id": uuid.uuid4(),
                "clinic_id": conn.execute(select(Episode.clinic_id).limit(1)).scalar_one(),
                "episode_id": by_client[ep.client].id,
                "client_id": by_client[ep.client].client_id,
                "clinician_id": by_client[ep.client].clinician_id,
                "kind": f"report_test_{i}",
                "leg": "bond",
                "severity": 2,
                "status": status,
                "evidence": {},
                "guidance": "",
                "opened_at": opened,
                "updated_at": opened,
                "acknowledged_at": ack,
                "closed_at": closed,
                "version": 1,
            }
            for ep in episodes
            for i, (opened, ack, closed, status) in enumerate(ep.alerts)
        ]
        if alerts:
            conn.execute(insert(Alert), alerts)


def set_report_settings(engine: Engine, settings: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(update(Clinic).values(settings={"reports": settings}))


def get_report(
    client: FlaskClient, tenant: Tenant, accept: str, role: str = "manager", query: str = ""
) -> Any:
    response = client.get(
        f"/v1/reports/monthly/{PERIOD}{query}", headers={**tenant.auth(role), "Accept": accept}
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


# ------------------------------------------------------------------------- the independent sum


def _within(day: date | None, window: tuple[date, date]) -> bool:
    return day is not None and window[0] <= day <= window[1]


def expected_figures(episodes: Iterable[Ep], window: tuple[date, date]) -> dict[str, Any]:
    """The report's figures for ``window``, computed directly from the fixture rows with the
    rules written out in domain.md, without any of the service's code."""
    end = TRAILING[1]
    eps = list(episodes)
    out: dict[str, Any] = {}
    seen = [[v for v in ep.visits if v.day <= end] for ep in eps]

    def active(ep: Ep, visits: list[Visit]) -> bool:
        return visits[0].day <= window[1] and (ep.closed_on is None or ep.closed_on >= window[0])

    live = [(ep, vs) for ep, vs in zip(eps, seen, strict=True) if vs and active(ep, vs)]
    closed = [(ep, vs) for ep, vs in live if _within(ep.closed_on, window)]
    opened = [(ep, vs) for ep, vs in live if _within(vs[0].day, window)]
    out["episodes_active"] = len(live)
    out["episodes_opened"] = len(opened)
    out["episodes_closed"] = len(closed)
    in_window = [v for vs in seen for v in vs if _within(v.day, window)]
    attended = [v for v in in_window if v.attendance == "attended"]
    out["sessions_delivered"] = len(attended)
    # Rates over sessions: numerator, n and the (numerator, denominator) of each episode, the
    # clusters their intervals rest on (each fixture episode has one clinician).
    per_episode_window = [[v for v in vs if _within(v.day, window)] for vs in seen]

    def over_sessions(
        counted: Callable[[Visit], bool], among: Callable[[Visit], bool]
    ) -> tuple[int, int, list[tuple[int, int]]]:
        clusters = [
            (sum(among(v) and counted(v) for v in vs), sum(among(v) for v in vs))
            for vs in per_episode_window
        ]
        return sum(y for y, _ in clusters), sum(m for _, m in clusters), clusters

    def was_attended(v: Visit) -> bool:
        return v.attendance == "attended"

    def rated_srs(v: Visit) -> bool:
        return was_attended(v) and v.srs is not None

    out["no_show_rate"] = over_sessions(lambda v: v.attendance == "no_show", lambda v: True)
    out["cancellation_rate"] = over_sessions(lambda v: v.attendance == "cancelled", lambda v: True)
    out["ors_completeness"] = over_sessions(lambda v: v.ors is not None, was_attended)
    out["srs_completeness"] = over_sessions(lambda v: v.srs is not None, was_attended)
    out["srs_below_concern"] = over_sessions(
        lambda v: v.srs is not None and v.srs < SRS_CONCERN, rated_srs
    )

    per_episode = []
    for _ep, vs in closed:
        att = [v for v in vs if v.attendance == "attended"]
        per_episode.append((len(att), (att[-1].day - vs[0].day).days))
    counts = [float(c) for c, _ in per_episode]
    days = [float(d) for _, d in per_episode]
    out["sessions_per_episode_mean"] = (statistics.fmean(counts) if counts else None, len(counts))
    out["sessions_per_episode_median"] = (
        statistics.median(counts) if counts else None,
        len(counts),
    )
    out["days_in_treatment_mean"] = (statistics.fmean(days) if days else None, len(days))
    out["days_in_treatment_median"] = (statistics.median(days) if days else None, len(days))

    def first_score(vs: list[Visit], field: str) -> float | None:
        """The baseline is the episode's first score of that measure (domain.md §4)."""
        return next(
            (
                getattr(v, field)
                for v in vs
                if v.attendance == "attended" and getattr(v, field) is not None
            ),
            None,
        )

    intake_ors = [first_score(vs, "ors") for _, vs in opened]
    intake_srs = [first_score(vs, "srs") for _, vs in opened]
    intake_ors = [x for x in intake_ors if x is not None]
    intake_srs = [x for x in intake_srs if x is not None]
    out["intake_ors_mean"] = (statistics.fmean(intake_ors) if intake_ors else None, len(intake_ors))
    out["intake_srs_mean"] = (statistics.fmean(intake_srs) if intake_srs else None, len(intake_srs))

    categories = dict.fromkeys(["recovered", "improved", "unchanged", "deteriorated"], 0)
    functional = functional_worse = harmed = above = 0
    pairs, clinical_pairs = [], []
    planned = unilateral = uni_above = uni_below = dropouts = 0
    for ep, vs in closed:
        scores = [v.ors for v in vs if v.attendance == "attended" and v.ors is not None]
        intake = first_score(vs, "ors")
        cutoff = CUTOFF[ep.band]
        if intake is not None and len(scores) >= 2:
            last = scores[-1]
            change = last - intake
            start_clinical, end_clinical = intake < cutoff, last < cutoff
            above += not end_clinical
            pairs.append((intake, last))
            if change >= RELIABLE:
                category = "recovered" if start_clinical and not end_clinical else "improved"
            elif change <= -RELIABLE:
                category = "harmed" if not start_clinical and end_clinical else "deteriorated"
            else:
                category = "unchanged"
            if start_clinical:
                categories[category] += 1
                clinical_pairs.append((intake, last))
            else:
                functional += 1
                functional_worse += category in ("deteriorated", "harmed")
                harmed += category == "harmed"
        planned += ep.ending == "planned"
        if ep.ending in ("client_ended", "stopped_attending"):
            unilateral += 1
            dropouts += 1
            last_any = scores[-1] if scores else None
            if last_any is not None:
                uni_below += last_any < cutoff
                uni_above += last_any >= cutoff
    n_clinical = sum(categories.values())
    for name, value in categories.items():
        out[name] = (value, n_clinical)
    out["reliable_improvement"] = (categories["recovered"] + categories["improved"], n_clinical)
    # Reliably worse over both intake groups; harm (crossing into the clinical range) is
    # possible only from a functional-range start, so it is a share of that group.
    out["reliable_deterioration"] = (categories["deteriorated"] + functional_worse, len(pairs))
    out["functional_at_intake"] = functional
    out["functional_at_intake_reliably_worse"] = (functional_worse, functional)
    out["harmed"] = (harmed, functional)
    out["last_ors_above_cutoff"] = (above, len(pairs))
    if len(pairs) >= 2:
        change = [b - a for a, b in pairs]
        d = statistics.fmean(change) / statistics.stdev([a for a, _ in pairs])
        out["pre_post_d"] = (d, len(pairs))
    out["clinical_pairs"] = clinical_pairs
    out["dropout_rate"] = (dropouts, len(closed))
    out["planned_endings"] = (planned, len(closed))
    out["unilateral_endings"] = (unilateral, len(closed))
    out["other_endings"] = (len(closed) - planned - unilateral, len(closed))
    out["unilateral_last_ors_above_cutoff"] = (uni_above, unilateral)
    out["unilateral_last_ors_below_cutoff"] = (uni_below, unilateral)

    alerts = [a for ep in eps for a in ep.alerts]
    out["alerts_raised"] = sum(_within(a[0].date(), window) for a in alerts)
    acked = [a for a in alerts if a[1] is not None and _within(a[1].date(), window)]
    out["alerts_acknowledged"] = len(acked)
    out["alerts_resolved"] = sum(
        a[3] == "resolved" and a[2] is not None and _within(a[2].date(), window) for a in alerts
    )
    hours = [(a[1] - a[0]).total_seconds() / 3600 for a in acked]  # type: ignore[operator]
    out["hours_to_acknowledge_median"] = (statistics.median(hours) if hours else None, len(hours))
    cohort = in_care = 0
    for ep, vs in zip(eps, seen, strict=True):
        if not ep.alerts:
            continue
        due = min(a[0] for a in ep.alerts).date() + timedelta(days=FOLLOW_UP)
        if _within(due, window):
            cohort += 1
            last_attended = max((v.day for v in vs if v.attendance == "attended"), default=None)
            in_care += last_attended is not None and last_attended >= due
    out["flagged_in_care_after_follow_up"] = (in_care, cohort)
    return out


def severity_adjusted(
    group_pairs: list[tuple[float, float]], reference_pairs: list[tuple[float, float]]
) -> float:
    """Seidel, Miller & Chow (2014): residual gain against the reference regression, plus the
    reference mean change, over the reference intake SD."""
    ref_x = [a for a, _ in reference_pairs]
    ref_y = [b for _, b in reference_pairs]
    slope, intercept = statistics.linear_regression(ref_x, ref_y)
    mean_change = statistics.fmean(b - a for a, b in reference_pairs)
    residual = statistics.fmean(b - (intercept + slope * a) for a, b in group_pairs)
    return (residual + mean_change) / statistics.stdev(ref_x)


def assert_figures_equal(cells: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    for key, want in expected.items():
        if key == "clinical_pairs":
            continue
        cell = cells[key]
        if cell["kind"] == "count":
            assert cell["value"] == want, (where, key)
        elif cell["kind"] == "proportion":
            numerator, n, *clusters = want
            assert cell["n"] == n, (where, key)
            assert cell["numerator"] == (numerator if n else None), (where, key)
            if n:
                assert cell["value"] == pytest.approx(want[0] / want[1]), (where, key)
                # Wilson's interval; for a rate over sessions, on the effective n of the
                # episodes the sessions sit in.
                size = effective_n(clusters[0]) if clusters else n
                interval = (cell["ci_low"], cell["ci_high"])
                # (rel: the service reads t from a three-decimal table, the hand calculation
                # integrates it)
                assert interval == pytest.approx(wilson(numerator, size, n), rel=T_TABLE), (
                    where,
                    key,
                )
            if clusters:
                assert cell["clusters"] == sum(m > 0 for _, m in clusters[0]), (where, key)
        else:
            value, n = want
            assert cell["n"] == n, (where, key)
            assert cell["value"] == pytest.approx(value), (where, key)


# ------------------------------------------------------------------------- tests


@pytest.fixture
def history(app: Flask, client: FlaskClient, engine: Engine, tenant: Tenant) -> list[Ep]:
    episodes = seeded_history()
    # Harm: a functional-range start (adult cut-off 25) reliably worse and into the clinical
    # range, closed in the report's month (the seeded episodes hold none).
    visits = [Visit(date(2026, 9, 7), ors=30.0, srs=36.0), Visit(date(2026, 9, 21), ors=18.0)]
    episodes.append(Ep("C-HARM", "adult", "T-2", visits, "planned", date(2026, 10, 2)))
    load_history(client, engine, tenant, episodes)
    return episodes


def test_json_equals_an_independent_calculation(
    client: FlaskClient, engine: Engine, tenant: Tenant, history: list[Ep]
) -> None:
    """Every figure of the clinic, a clinician and an age band, month and trailing 12 months,
    equals a plain-Python calculation over the fixture rows (min_n=1: every value shown)."""
    set_report_settings(engine, {"min_n": 1})
    data = get_report(client, tenant, "application/json").get_json()
    assert data["period"] == PERIOD
    assert data["settings"]["min_n"] == 1
    reference = expected_figures(history, TRAILING)["clinical_pairs"]
    groups: list[tuple[str, dict[str, Any], Callable[[Ep], bool]]] = [
        ("clinic", data["overall"], lambda ep: True),
        (
            "T-2",
            next(c for c in data["clinicians"] if c["key"] == "T-2"),
            lambda ep: ep.clinician == "T-2",
        ),
        (
            "adult",
            next(b for b in data["age_bands"] if b["key"] == "adult"),
            lambda ep: ep.band == "adult",
        ),
    ]
    for name, group, member in groups:
        for window_name, window in (("month", MONTH), ("trailing_12", TRAILING)):
            expected = expected_figures([ep for ep in history if member(ep)], window)
            assert_figures_equal(group[window_name], expected, f"{name} {window_name}")
            sa = group[window_name]["severity_adjusted_es"]
            assert sa["n"] == len(expected["clinical_pairs"])
            if expected["clinical_pairs"]:
                assert sa["value"] == pytest.approx(
                    severity_adjusted(expected["clinical_pairs"], reference)
                )
    # The fixture exercises the figures it claims to: none of these may be vacuous.
    month = data["overall"]["month"]
    trailing = data["overall"]["trailing_12"]
    # The whole clinic's 12 months are the reference sample itself: the interval is that
    # sample's pre-post d interval (Becker 1988), not one that holds the reference fixed.
    x, y = [a for a, _ in reference], [b for _, b in reference]
    n, d = len(reference), statistics.fmean(b - a for a, b in reference) / statistics.stdev(x)
    half = 1.959963984540054 * math.sqrt(
        2 * (1 - statistics.correlation(x, y)) / n + d * d / (2 * n)
    )
    sa = trailing["severity_adjusted_es"]
    assert (sa["value"], sa["ci_low"], sa["ci_high"]) == pytest.approx((d, d - half, d + half))
    assert month["episodes_closed"]["value"] >= 3
    assert trailing["reliable_improvement"]["n"] >= 10
    assert trailing["alerts_acknowledged"]["value"] >= 2
    assert trailing["flagged_in_care_after_follow_up"]["n"] >= 2
    assert trailing["unilateral_endings"]["numerator"] >= 2
    assert trailing["harmed"]["numerator"] >= 1  # a functional-range start that crossed
    assert month["no_show_rate"]["numerator"] + month["cancellation_rate"]["numerator"] >= 1
    # ... and the clustering moves the intervals of the rates over sessions
    for key in ("no_show_rate", "ors_completeness"):
        assert trailing[key]["effective_n"] < trailing[key]["n"], key


def test_rates_over_sessions_cluster_by_episode_and_by_the_clinician_who_held_them(
    client: FlaskClient, engine: Engine, tenant: Tenant
) -> None:
    """An episode shared by two clinicians is one cluster in the clinic's figures and one
    cluster of the sessions each held in each clinician's (domain SessionSpread)."""
    day = date(2026, 10, 1)

    def visits(*kinds: tuple[str, str]) -> list[Visit]:
        return [
            Visit(day + timedelta(days=3 * i), attendance, clinician=held_by)
            for i, (attendance, held_by) in enumerate(kinds)
        ]

    came, missed = "attended", "no_show"
    shared = visits((came, "T-1"), (missed, "T-1"), (missed, "T-2"), (missed, "T-2"), (came, "T-2"))
    episodes = [
        Ep("C-A", "adult", "T-1", visits(*[(came, "T-1")] * 3, (missed, "T-1"))),
        Ep("C-B", "adult", "T-1", shared),
        Ep("C-C", "adult", "T-2", visits(*[(came, "T-2")] * 4)),
    ]
    load_history(client, engine, tenant, episodes)
    set_report_settings(engine, {"min_n": 1})
    data = get_report(client, tenant, "application/json").get_json()
    expected = {
        "clinic": (data["overall"], [(1, 4), (3, 5), (0, 4)]),
        "T-1": (next(c for c in data["clinicians"] if c["key"] == "T-1"), [(1, 4), (1, 2)]),
        "T-2": (next(c for c in data["clinicians"] if c["key"] == "T-2"), [(2, 3), (0, 4)]),
    }
    for name, (group, clusters) in expected.items():
        cell = group["month"]["no_show_rate"]
        k, n = sum(y for y, _ in clusters), sum(m for _, m in clusters)
        assert (cell["numerator"], cell["n"], cell["clusters"]) == (k, n, len(clusters)), name
        assert cell["effective_n"] == pytest.approx(effective_n(clusters), rel=T_TABLE), name
        assert name != "clinic" or cell["effective_n"] < n  # the clustering is not vacuous
        interval = (cell["ci_low"], cell["ci_high"])
        assert interval == pytest.approx(wilson(k, effective_n(clusters), n), rel=T_TABLE), name


def test_a_clients_two_episodes_are_one_cluster(
    client: FlaskClient, engine: Engine, tenant: Tenant
) -> None:
    """A client who ends an episode and comes back within the window is one cluster, not two:
    their sessions in both episodes are alike, and counting the episodes apart would treat
    them as independent (the interval would narrow)."""
    first = [
        Visit(date(2026, 10, 1)),
        Visit(date(2026, 10, 3), "no_show"),
        Visit(date(2026, 10, 6)),
    ]
    other = [Visit(date(2026, 10, 1 + 3 * i)) for i in range(4)]
    episodes = [
        Ep("C-D", "adult", "T-1", first, "planned", date(2026, 10, 10)),
        Ep("C-E", "adult", "T-1", other),
    ]
    load_history(client, engine, tenant, episodes)
    for n, (day, attendance) in enumerate((("2026-10-20", "no_show"), ("2026-10-27", "attended"))):
        body = session_payload(
            ehr_session_id=f"C-D-back-{n}",
            client_id="C-D",
            clinician_id="T-1",
            date=day,
            attendance=attendance,
            ratings=[],
        )
        response = client.post("/v1/sessions", json=body, headers=tenant.auth("ingest"))
        assert response.status_code == 201, response.get_json()
    set_report_settings(engine, {"min_n": 1})
    data = get_report(client, tenant, "application/json").get_json()
    assert data["overall"]["month"]["episodes_active"]["value"] == 3
    clusters = [(2, 5), (0, 4)]  # C-D over both episodes, C-E
    for group in (data["overall"], next(c for c in data["clinicians"] if c["key"] == "T-1")):
        cell = group["month"]["no_show_rate"]
        assert (cell["numerator"], cell["n"], cell["clusters"]) == (2, 9, 2)
        assert cell["effective_n"] == pytest.approx(effective_n(clusters), rel=T_TABLE)
        assert (cell["ci_low"], cell["ci_high"]) == pytest.approx(
            wilson(2, effective_n(clusters), 9), rel=T_TABLE
        )


def test_trend_points_equal_each_months_closed_episodes(
    client: FlaskClient, engine: Engine, tenant: Tenant, history: list[Ep]
) -> None:
    """Each trend point's recovery and mean sessions are those of the episodes closed in
    that month."""
    set_report_settings(engine, {"min_n": 1})
    data = get_report(client, tenant, "application/json").get_json()
    for point in data["overall"]["trend"]:
        year, month = map(int, point["month"].split("-"))
        first = date(year, month, 1)
        last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        expected = expected_figures(history, (first, last))
        recovered, n = expected["recovered"]
        assert point["recovery"]["n"] == n
        assert point["recovery"]["numerator"] == (recovered if n else None)
        mean, n = expected["sessions_per_episode_mean"]
        assert point["mean_sessions"]["n"] == n
        assert point["mean_sessions"]["value"] == pytest.approx(mean)


@pytest.mark.parametrize("min_n", [10, 1])
def test_pdf_figures_equal_the_json(
    client: FlaskClient, engine: Engine, tenant: Tenant, history: list[Ep], min_n: int
) -> None:
    """The PDF's extracted text carries every headline figure of the JSON, month and trailing
    12 months, and each clinician's rows: the trailing 12 months always, the month where it
    has an outcome figure to show, else the clinician is named with the episodes closed.
    (With min_n=1 every clinician who closed an episode in the month has a month row.)"""
    set_report_settings(engine, {"min_n": min_n})
    data = get_report(client, tenant, "application/json").get_json()
    pdf = get_report(client, tenant, "application/pdf")
    assert pdf.mimetype == "application/pdf"
    text = pdf_text(pdf.data)
    for window in ("month", "trailing_12"):
        for key in HEADLINE_KEYS:
            shown = re.sub(r"\s+", " ", data["overall"][window][key]["display"])
            assert shown in text, (window, key, shown)
    columns = CLINICIAN_COLUMNS
    outcomes = columns[1:4] + columns[5:]  # not the count, not the rate over sessions

    def row(cells: dict[str, Any], label: str) -> str:
        return " ".join([label, *(re.sub(r"\s+", " ", cells[k]["display"]) for k in columns)])

    with_row = 0
    for clinician in data["clinicians"]:
        label, month = clinician["label"], clinician["month"]
        # Every clinician has a trailing-12 row; a month row only with a month outcome
        # figure to show, else they are named under the month with the episodes they closed.
        assert row(clinician["trailing_12"], label) in text, label
        if all(month[k]["too_few"] for k in outcomes):
            assert f"{label} ({month['episodes_closed']['display']})" in text, label
            assert f"rests on fewer than {min_n} episodes" in text
            assert row(month, label) not in text, label
        else:
            assert row(month, label) in text, label
            with_row += 1
    if min_n == 10:
        assert "too few" in text  # the month's small cells are withheld
        assert with_row == 0  # one month is short for a clinician's outcomes
    else:
        assert with_row == len(data["clinicians"])


def test_csv_carries_the_same_figures_as_the_json(
    client: FlaskClient, tenant: Tenant, history: list[Ep]
) -> None:
    """The CSV's overall rows have the JSON's numerator and n for every month figure."""
    data = get_report(client, tenant, "application/json").get_json()
    text = get_report(client, tenant, "text/csv").get_data(as_text=True)
    rows = [line.split(",") for line in text.splitlines()[1:]]
    month_rows = {r[3]: r for r in rows if r[0] == "overall" and r[2] == PERIOD}
    for key, cell in data["overall"]["month"].items():
        if cell["kind"] == "proportion":
            assert month_rows[key][6] == str(cell["n"]), key


def test_empty_month_yields_a_valid_report_that_says_so(
    client: FlaskClient, tenant: Tenant
) -> None:
    """A clinic without any data gets a valid JSON, CSV and PDF report saying 'no data'."""
    data = get_report(client, tenant, "application/json").get_json()
    assert data["is_empty"] is True
    assert data["clinicians"] == []
    assert data["overall"]["month"]["episodes_active"]["value"] == 0
    assert data["overall"]["month"]["dropout_rate"]["display"] == "no data (n=0)"
    text = pdf_text(get_report(client, tenant, "application/pdf").data)
    assert "No data for October 2026" in text
    assert get_report(client, tenant, "text/csv").data.startswith(b"section,group,window")


def test_one_client_month_shows_counts_and_no_rates(
    client: FlaskClient, engine: Engine, tenant: Tenant
) -> None:
    """One client with three October sessions: counts are printed, every rate says too few,
    and nothing reads as a 100% figure."""
    ep = Ep(
        "C-1",
        "adult",
        "T-1",
        [
            Visit(date(2026, 10, 2), ors=14.0, srs=33.0),
            Visit(date(2026, 10, 9), ors=20.5, srs=37.0),
            Visit(date(2026, 10, 16), ors=26.0, srs=38.0),
        ],
        ending="planned",
        closed_on=date(2026, 10, 20),
    )
    load_history(client, engine, tenant, [ep])
    data = get_report(client, tenant, "application/json").get_json()
    month = data["overall"]["month"]
    assert month["sessions_delivered"]["value"] == 3
    assert month["episodes_closed"]["value"] == 1
    assert (month["recovered"]["n"], month["recovered"]["too_few"]) == (1, True)
    assert month["recovered"]["value"] is None
    text = pdf_text(get_report(client, tenant, "application/pdf").data)
    assert "too few (n=1)" in text
    assert "100.0%" not in text


def test_all_small_n_month_says_too_few_everywhere(
    client: FlaskClient, engine: Engine, tenant: Tenant
) -> None:
    """A history where every n is below 10 shows no rate, mean or interval of its own in the
    month or the trailing 12 months, in JSON or PDF."""
    episodes = [
        Ep(
            f"C-{n}",
            band,
            f"T-{n}",
            [
                Visit(date(2026, 9, 20 + n), ors=12.0 + 4 * n, srs=34.0 + n),
                Visit(date(2026, 10, 1 + n), "no_show" if n == 1 else "attended", ors=None),
                Visit(date(2026, 10, 12 + n), ors=20.0 + 3 * n, srs=36.5),
            ],
            ending=ending,
            closed_on=date(2026, 10, 25),
        )
        for n, band, ending in ((1, "adult", "planned"), (2, "adolescent", "client_ended"))
    ]
    episodes.append(Ep("C-3", "child", "T-3", [Visit(date(2026, 10, 5), ors=30.0)]))
    load_history(client, engine, tenant, episodes)
    data = get_report(client, tenant, "application/json").get_json()
    for window in ("month", "trailing_12"):
        rates = [c for c in data["overall"][window].values() if c["kind"] != "count"]
        assert rates
        assert all(c["too_few"] and c["value"] is None for c in rates), window
    assert data["overall"]["month"]["sessions_delivered"]["value"] == 4
    text = pdf_text(get_report(client, tenant, "application/pdf").data)
    before_methods = text[: text.index("Methods Every definition")]
    assert "too few (n=5)" in before_methods  # no-shows of 5 scheduled
    assert not re.search(r"\d%\s\(n=", before_methods)
    assert not re.search(r"n=[\d,]+, 95% CI", before_methods)


def test_clinician_sees_only_their_own_figures(
    client: FlaskClient, engine: Engine, tenant: Tenant, history: list[Ep]
) -> None:
    """The clinician key (T-1) gets T-1's figures alone, equal to the manager's T-1 page and
    to the independent calculation; no colleague and no clinic total appears."""
    set_report_settings(engine, {"min_n": 1})
    own = get_report(client, tenant, "application/json", role="clinician").get_json()
    assert own["scope"] == "clinician"
    assert [c["key"] for c in own["clinicians"]] == ["T-1"]
    assert own["age_bands"] == []
    dumped = json.dumps(own)
    assert "T-2" not in dumped
    assert "T-3" not in dumped
    expected = expected_figures([ep for ep in history if ep.clinician == "T-1"], MONTH)
    assert_figures_equal(own["overall"]["month"], expected, "T-1 own page")
    manager_view = get_report(client, tenant, "application/json", query="?clinician=T-1").get_json()
    assert manager_view["overall"] == own["overall"]
    text = pdf_text(get_report(client, tenant, "application/pdf", role="clinician").data)
    assert "T-2" not in text
    assert "T-3" not in text
    assert "Clinician view" in text


def test_archive_writes_every_clinic_and_reproduces_byte_identical_files(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    other_tenant: Tenant,
    history: list[Ep],
    tmp_path: Path,
) -> None:
    """`fit reports archive` writes PDF, JSON, CSV and SHA256SUMS for each clinic; the sums
    match, and a second run rewrites exactly the same bytes."""
    out = tmp_path / "archive"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["fit", "reports", "archive", "--month", PERIOD, "--dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 clinic report(s) archived" in result.output
    folders = sorted(p for p in out.glob(f"*/{PERIOD}"))
    assert {p.parent.name for p in folders} == {str(tenant.clinic_id), str(other_tenant.clinic_id)}
    first = {}
    for folder in folders:
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["SHA256SUMS", "report.csv", "report.json", "report.pdf"]
        for line in (folder / "SHA256SUMS").read_text().splitlines():
            digest, name = line.split("  ")
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
        first.update({p: p.read_bytes() for p in folder.iterdir()})
    result = runner.invoke(args=["fit", "reports", "archive", "--month", PERIOD, "--dir", str(out)])
    assert result.exit_code == 0, result.output
    assert {p: p.read_bytes() for p in first} == first
    archived = json.loads((out / str(tenant.clinic_id) / PERIOD / "report.json").read_text())
    downloaded = get_report(client, tenant, "application/json").get_json()
    assert archived == downloaded  # the API and the archive render the same object
    assert archived["generated_at"] == "2026-11-01T00:00:00Z"


def test_archive_defaults_to_last_month_and_settings_dir(app: Flask, tenant: Tenant) -> None:
    """Without options the archive goes under Settings.reports_dir for each clinic's last
    full month."""
    result = app.test_cli_runner().invoke(args=["fit", "reports", "archive"])
    assert result.exit_code == 0, result.output
    today = datetime.now(UTC).date()
    expected = monthly_reports.previous_month(today)
    reports_dir = app.extensions["fit"].settings.reports_dir
    assert (reports_dir / str(tenant.clinic_id) / expected / "report.pdf").exists()
    bad = app.test_cli_runner().invoke(args=["fit", "reports", "archive", "--month", "2026-13"])
    assert bad.exit_code != 0
    assert "month_format" in bad.output


@pytest.mark.parametrize(
    ("month", "rule"),
    [("2999-01", "month_in_future"), ("0000-01", "month_format"), ("0001-01", "month_format")],
)
def test_archive_refuses_a_future_or_impossible_month_with_a_clear_error(
    app: Flask, tenant: Tenant, tmp_path: Path, month: str, rule: str
) -> None:
    """`fit reports archive --month` for a month not yet started, or before 1900, exits non-zero
    with the rule (no traceback) and writes nothing."""
    out = tmp_path / "archive"
    result = app.test_cli_runner().invoke(
        args=["fit", "reports", "archive", "--month", month, "--dir", str(out)]
    )
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a ClickException, not a crash
    assert f"(month: {rule})" in result.output
    assert not out.exists()


def test_archive_checks_the_month_has_begun_in_every_clinics_zone(
    app: Flask, tmp_path: Path
) -> None:
    """A month begun in Kiritimati (UTC+14) but not yet in Honolulu is refused as a whole,
    naming the clinic, before any file is written; once begun everywhere it is archived."""
    wiring = app.extensions["fit"]
    for name, zone in (("Ahead", "Pacific/Kiritimati"), ("Behind", "Pacific/Honolulu")):
        with wiring.uow() as uow:
            clinics.create_clinic(uow, name, zone)
    out = tmp_path / "archive"
    eve = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # 1 Dec 02:00 ahead, 30 Nov 02:00 behind
    with pytest.raises(FitError) as refused:
        monthly_reports.archive_monthly_reports(wiring.uow, out, "2026-12", now=eve)
    assert (refused.value.field, refused.value.rule) == ("month", "month_in_future")
    assert "Pacific/Honolulu" in refused.value.detail
    assert not out.exists()
    later = eve + timedelta(hours=22)  # 1 Dec 00:00 in Honolulu
    archived = monthly_reports.archive_monthly_reports(wiring.uow, out, "2026-12", now=later)
    assert [a.period for a in archived] == ["2026-12", "2026-12"]


def test_an_episode_across_a_band_change_keeps_its_first_score_as_intake(
    client: FlaskClient, engine: Engine, tenant: Tenant
) -> None:
    """CORS 30 at 12, then ORS 36 twice at 13: the report reads one series, as the alerts and
    views do: intake 30 (mean intake ORS of October), judged by the adolescent cut-off 28 (a
    functional start, reliably better), not a fresh start at the first ORS."""
    set_report_settings(engine, {"min_n": 1})
    for n, (day, band, instrument, total) in enumerate(
        [(1, "child", "cors", 30.0), (8, "adolescent", "ors", 36.0), (15, None, "ors", 36.0)]
    ):
        body = {
            "ehr_session_id": f"B-{n}",
            "client_id": "C-B",
            "client_age_band": band,
            "clinician_id": "T-1",
            "date": date(2026, 10, day).isoformat(),
            "ratings": [{"instrument": instrument, "total": total}],
        }
        r = client.post("/v1/sessions", json=body, headers=tenant.auth())
        assert r.status_code == 201, r.json
    month = get_report(client, tenant, "application/json").get_json()["overall"]["month"]
    assert (month["intake_ors_mean"]["value"], month["intake_ors_mean"]["n"]) == (30.0, 1)
    assert month["sessions_delivered"]["value"] == 3
    assert month["ors_completeness"]["numerator"] == 3


@pytest.mark.parametrize(
    ("now", "in_progress"),
    [
        (datetime(2026, 10, 31, 23, 59, tzinfo=UTC), True),
        (datetime(2026, 11, 1, 0, 0, tzinfo=UTC), False),
        (datetime(2026, 12, 3, 9, 0, tzinfo=UTC), False),
    ],
)
def test_a_month_still_running_is_marked_in_progress(
    app: Flask, tenant: Tenant, now: datetime, in_progress: bool
) -> None:
    """A report made before the month ended says so (JSON flag, PDF notice and cover) and is
    dated when it was made; a finished month's is dated at its end, without the notice."""
    with app.extensions["fit"].uow() as uow:
        clinic = uow.session.scalars(
            select(Clinic).where(Clinic.public_id == tenant.clinic_id)
        ).one()
        report = monthly_reports.compute_report(uow.session, clinic, PERIOD, now=now)
    assert report.in_progress is in_progress
    assert report.generated_at == min(now, datetime(2026, 11, 1, tzinfo=UTC))
    rendered = {f.name: f.render(report) for f in monthly_reports.FORMATS}
    assert json.loads(rendered["json"])["in_progress"] is in_progress
    text = pdf_text(rendered["pdf"])
    assert ("October 2026 is not over" in text) is in_progress
    assert ("October 2026 (2026-10) \N{EN DASH} in progress" in text) is in_progress


def test_an_archive_write_that_fails_part_way_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk mid-write: the error reaches the caller and the month's folder holds
    neither a torn report nor the '.report.*.tmp' it was being written to."""
    target = tmp_path / "1" / PERIOD / "report.pdf"

    def full_disk(self: Path, data: bytes) -> int:
        with Path.open(self, "wb") as torn:
            torn.write(data[:10])
        raise OSError(28, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError, match="No space"):
        monthly_reports._write(target, b"%PDF-1.4 " * 100)
    assert list(target.parent.iterdir()) == []


def test_a_change_committed_while_a_report_is_read_is_not_half_in_it(
    client: FlaskClient,
    engine: Engine,
    tenant: Tenant,
    history: list[Ep],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The report reads several statements; all of them see one snapshot. Another writer
    commits between the session counts and the episode facts (every attended session of the
    month becomes a no-show): the report (API and archive) comes out as before the change,
    not counting the sessions one way and the episodes' sessions the other."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite: the report's transaction holds the write lock, nothing can commit")
    set_report_settings(engine, {"min_n": 1})
    before = get_report(client, tenant, "application/json").get_data()
    month_start, month_end = MONTH
    counts = monthly_reports._add_session_counts

    def counts_then_a_concurrent_change(*args: Any) -> None:
        counts(*args)
        with engine.begin() as conn:  # another connection: another writer
            changed = conn.execute(
                update(TherapySession)
                .where(
                    TherapySession.date.between(month_start, month_end),
                    TherapySession.attendance == "attended",
                )
                .values(attendance="no_show")
            ).rowcount
            # as the service's writes do, in the same transaction: the report reads these
            episode_months.refresh_clinic(conn, clinic_row)
        assert changed > 0

    with engine.begin() as conn:
        saved = conn.execute(select(TherapySession.id, TherapySession.attendance)).all()
        clinic_row = conn.execute(
            select(Clinic.id).where(Clinic.public_id == tenant.clinic_id)
        ).scalar_one()
    monkeypatch.setattr(monthly_reports, "_add_session_counts", counts_then_a_concurrent_change)
    assert get_report(client, tenant, "application/json").get_data() == before

    def restore() -> None:
        with engine.begin() as conn:
            for row_id, attendance in saved:
                conn.execute(
                    update(TherapySession)
                    .where(TherapySession.id == row_id)
                    .values(attendance=attendance)
                )
            episode_months.refresh_clinic(conn, clinic_row)

    restore()
    archived = monthly_reports.archive_monthly_reports(
        client.application.extensions["fit"].uow, tmp_path / "a", PERIOD
    )
    restore()
    monkeypatch.setattr(monthly_reports, "_add_session_counts", counts)
    again = monthly_reports.archive_monthly_reports(
        client.application.extensions["fit"].uow, tmp_path / "b", PERIOD
    )
    assert [a.files for a in archived] == [a.files for a in again]
