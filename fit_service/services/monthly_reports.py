"""Use cases: build one clinic's monthly benchmark report, and archive every clinic's (issue 5).

How the figures are gathered (and why it stays fast and small as the history grows):

* **Sessions and episodes** come from two statements over ``episode_months``: each episode's
  sessions summed per clinician and calendar month, kept in step with the sessions by every
  write (services/episode_months.py says why and how; about a third as many rows as the
  sessions they sum). One ``GROUP BY`` counts the trailing 12 months' sessions per client,
  month bucket, clinician and age band (attended, no-shows, cancelled, attended ones with an
  ORS/SRS total and an SRS below the concern threshold); the other aggregates each episode
  active in that window over its months up to the window's end (attended sessions, last
  attended date, intake ORS/SRS (the first score of each), the latest ORS and how many there
  were; first and last carried with the session number, see ``NumberedTotal``). Only
  episodes active in the trailing 12 months are read, never the whole history. All of a
  report's statements read one snapshot (``_one_snapshot``); all but the session counts run
  on a second connection that shares it, while this thread works on the counts
  (adapters/snapshot_reads.py).
* **Alerts** (few) are read as rows; episodes' first alerts come from one ``GROUP BY``.

Session counts go to :class:`~fit_service.domain.monthly_report.FiguresBuilder` objects (one
per group and window) as clusters, each group kind's summed in one pass there
(``add_sessions_to``); the episodes, alerts and flagged episodes go as tables of columns
(``EpisodeTable``, ``AlertTable``, ``FlaggedTable``), split by group there. What a row counts
as, and every rate, interval, category and effect size, is decided in the domain. This module
only reads, routes and renders.

Which dates count: sessions by their date, episodes by ``opened_on``/``closed_on`` (plain
dates), alerts by their timestamps converted to the clinic's time zone. Sessions dated after
the report's month are never read, so a report of a past month does not change when the next
month's sessions arrive.

``generated_at`` is the end of the reported month in the clinic's time zone (or "now" for the
current, unfinished month): the same data always gives byte-identical files, whether archived
by the CLI or downloaded from the API.
"""

from __future__ import annotations

import hashlib
import operator
import os
import re
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import orjson
from sqlalchemy import Connection, and_, case, func, or_, select
from sqlalchemy.orm import Session

from fit_service.adapters.db import set_local
from fit_service.adapters.orm import Alert, Client, Clinic, Clinician, Episode
from fit_service.adapters.orm import EpisodeMonth as M
from fit_service.adapters.orm import TherapySession as S
from fit_service.adapters.report_pdf import MonthlyReportPdf
from fit_service.adapters.report_tabular import to_csv, to_json_dict
from fit_service.adapters.snapshot_reads import SnapshotReads
from fit_service.adapters.unit_of_work import UnitOfWork
from fit_service.domain.errors import FitError, NotFound, PermissionDenied
from fit_service.domain.instruments import (
    AgeBand,
)
from fit_service.domain.monthly_report import (
    NO_DAY,
    SESSION_COLUMNS,
    AlertFacts,
    AlertTable,
    EpisodeTable,
    FiguresBuilder,
    FlaggedEpisode,
    FlaggedTable,
    GroupFigures,
    GroupReport,
    MonthlyReport,
    ReportSettings,
    TrendPoint,
    Window,
    fit_reference,
    trailing_months,
)
from fit_service.services import audit, episode_months, thresholds
from fit_service.services.episode_months import NumberedTotal
from fit_service.services.inputs import EARLIEST_DATE
from fit_service.services.principals import Permission, Principal, Role

#: [0-9], not \d: \d also matches other scripts' digits (full-width U+FF10-U+FF19 gave a report,
#: with them in its file name). \Z: "$" lets "2024-05\n" through.
_PERIOD = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])\Z")
#: The earliest month a report is made for: the year of the earliest date the service takes
#: (services/inputs.EARLIEST_DATE, which says why).
_FIRST_YEAR = EARLIEST_DATE.year

AGE_BAND_LABELS = {
    AgeBand.CHILD: "Children (6 to 12)",
    AgeBand.ADOLESCENT: "Adolescents (13 to 17)",
    AgeBand.ADULT: "Adults (18+)",
}


#: Age bands' positions in AgeBand's order (the tables' band column), by their stored value (a
#: dict lookup; ``AgeBand(value)`` costs several times more, once per row).
_BAND_INDEX = {band.value: index for index, band in enumerate(AgeBand)}

_T = TypeVar("_T")


# --------------------------------------------------------------------------- formats


@dataclass(frozen=True, slots=True)
class ReportFormat:
    name: str
    media_type: str
    filename: str
    render: Callable[[MonthlyReport], bytes]


def _render_json(report: MonthlyReport) -> bytes:
    # orjson (already the JSON columns' codec), 15x faster than the standard library on a
    # large clinic's 4.5 MB report (170 -> 11 ms). Floats keep their shortest round-trip
    # digits, so they read back as the same numbers; the text differs from ``json.dumps`` only
    # for magnitudes below 1e-4 (``0.0000882`` and ``4.2e-6``, not ``8.82e-05`` and
    # ``4.2e-06``), so a month archived before this change re-renders with other bytes when a
    # Wilson bound falls that low. A non-finite float would be ``null``, not ``json``'s
    # invalid ``NaN`` (the domain produces none); numpy scalars are written as numbers.
    return orjson.dumps(to_json_dict(report), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def _render_csv(report: MonthlyReport) -> bytes:
    return to_csv(report).encode("utf-8")


def _render_pdf(report: MonthlyReport) -> bytes:
    return MonthlyReportPdf().render(report)


#: The three renderings of one report object, in the order the API prefers them.
FORMATS: tuple[ReportFormat, ...] = (
    ReportFormat("pdf", "application/pdf", "report.pdf", _render_pdf),
    ReportFormat("json", "application/json", "report.json", _render_json),
    ReportFormat("csv", "text/csv", "report.csv", _render_csv),
)


# --------------------------------------------------------------------------- periods


def parse_period(month: str) -> tuple[int, int]:
    """(year, month) of a YYYY-MM period in ASCII digits, from :data:`_FIRST_YEAR` on."""
    match = _PERIOD.match(month or "")
    if match is None:
        raise FitError(
            f"month must look like YYYY-MM (e.g. 2024-05), not {month!r}",
            field="month",
            rule="month_format",
        )
    year, number = int(match.group(1)), int(match.group(2))
    if year < _FIRST_YEAR:
        raise FitError(
            f"month must be {_FIRST_YEAR}-01 or later, not {month!r}",
            field="month",
            rule="month_format",
        )
    return year, number


def _local_midnight_utc(day: date, tz: zoneinfo.ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def previous_month(today: date) -> str:
    """The month before ``today``'s, as YYYY-MM (the CLI's default period)."""
    last = today.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def _check_period(month: str, today: date) -> None:
    year, number = parse_period(month)
    if (year, number) > (today.year, today.month):
        raise FitError(
            f"{month} has not started yet in the clinic's time zone",
            field="month",
            rule="month_in_future",
        )


def _month_end(period: str, tz: zoneinfo.ZoneInfo) -> datetime:
    """The instant the month ends in the clinic's zone (midnight after its last day), in UTC."""
    return _local_midnight_utc(Window.month(period).last_day + timedelta(days=1), tz)


def _generated_at(period: str, tz: zoneinfo.ZoneInfo, now: datetime) -> datetime:
    """The end of the month in the clinic's zone; "now" while the month is still running."""
    return min(_month_end(period, tz), now.astimezone(UTC).replace(microsecond=0))


# --------------------------------------------------------------------------- use cases


def build_monthly_report(
    uow: UnitOfWork,
    principal: Principal,
    month: str,
    clinician: str | None = None,
    *,
    now: datetime | None = None,
) -> MonthlyReport:
    """The clinic's report for ``month`` (YYYY-MM, clinic-local), or one clinician's page.

    Managers see the clinic, or with ``clinician`` (an EHR clinician id) that clinician's
    page. Clinician keys see only their own page, whatever they ask for.
    """
    principal.require(Permission.REPORTS_READ)
    db = uow.session
    _one_snapshot(db)
    clinic = db.get(Clinic, principal.clinic_id)
    if clinic is None:
        raise NotFound("no such clinic")
    tz = zoneinfo.ZoneInfo(clinic.timezone or "UTC")
    now = now or datetime.now(UTC)
    _check_period(month, now.astimezone(tz).date())
    target = _target_clinician(db, principal, clinician)
    report = compute_report(db, clinic, month, now=now, include=target)
    if target is not None:
        report = report.for_clinician(target)
    record_id = month if target is None else f"{month}/{target}"
    audit.record(db, principal, [audit.AuditEntry("report.read", "report", record_id)])
    uow.commit()
    return report


def _one_snapshot(db: Session) -> None:
    """Make every statement of the report's transaction read one snapshot of the clinic.

    A report is several statements (episode facts, session counts, alerts, flagged episodes).
    Under PostgreSQL's default READ COMMITTED each sees the data as of its own start, so a
    session recorded or revised between two of them would leave one report's figures out of
    step with each other (its sessions delivered against its episodes' sessions). REPEATABLE
    READ gives the whole transaction the snapshot of its first statement; the report only
    reads, bar its one audit row, so it can meet no serialization failure. On SQLite the
    transaction holds the write lock from its start (``adapters/db.py``), so nothing commits
    during it. Must run before the transaction's first statement (SQLAlchemy applies the
    option when the session first takes its connection).
    """
    if db.get_bind().dialect.name == "postgresql":
        _without_jit(db.connection(execution_options={"isolation_level": "REPEATABLE READ"}))


def _without_jit(connection: Connection) -> None:
    """No JIT compilation in the report's transactions: PostgreSQL compiles a statement whose
    estimated cost passes jit_above_cost, and the session counts' fallback for rows counted
    against another SRS line (a subquery that runs for no row once the rows are up to date)
    is costed as if it ran for every row, so the report spent ~300 ms compiling a ~40 ms
    statement."""
    set_local(connection, "jit", "off", since=(11,))


@dataclass(frozen=True, slots=True)
class RenderedReport:
    body: bytes
    media_type: str
    filename: str


def format_for(media_type: str) -> ReportFormat:
    return next(fmt for fmt in FORMATS if fmt.media_type == media_type)


def monthly_report_file(
    uow: UnitOfWork,
    principal: Principal,
    month: str,
    media_type: str,
    clinician: str | None = None,
    *,
    now: datetime | None = None,
) -> RenderedReport:
    """:func:`build_monthly_report`, rendered as PDF, JSON or CSV (one of :data:`FORMATS`)."""
    fmt = format_for(media_type)
    report = build_monthly_report(uow, principal, month, clinician, now=now)
    suffix = "" if report.scope.value == "clinic" else f"-{report.overall.key}"
    name = f"monthly-report-{report.period}{suffix}.{fmt.name}"
    return RenderedReport(fmt.render(report), fmt.media_type, name)


def _target_clinician(db: Session, principal: Principal, requested: str | None) -> str | None:
    """Whose page is asked for: ``None`` for the whole clinic (managers only)."""
    if principal.role is Role.CLINICIAN:
        own = db.scalar(
            select(Clinician.external_id).where(
                Clinician.id == principal.clinician_id,
                Clinician.clinic_id == principal.clinic_id,
            )
        )
        if own is None:
            raise PermissionDenied("this clinician key is not bound to a clinician")
        if requested is not None and requested != own:
            raise PermissionDenied(
                "a clinician key may read only its own report page", rule="own_report_only"
            )
        return own
    if requested is None:
        return None
    exists = db.scalar(
        select(Clinician.id).where(
            Clinician.clinic_id == principal.clinic_id, Clinician.external_id == requested
        )
    )
    if exists is None:
        raise NotFound(f"no clinician {requested}", field="clinician")
    return requested


@dataclass(frozen=True, slots=True)
class ArchivedReport:
    clinic_id: uuid.UUID
    period: str
    directory: Path
    files: dict[str, str]  # file name -> SHA-256


def archive_monthly_reports(
    uow_factory: Callable[[], UnitOfWork],
    directory: Path,
    month: str | None = None,
    *,
    now: datetime | None = None,
) -> list[ArchivedReport]:
    """Render every clinic's report (default: each clinic's last month, in its own zone) and
    write ``<dir>/<clinic id>/<YYYY-MM>/report.{pdf,json,csv}`` plus ``SHA256SUMS``.

    A ``month`` that has not started yet in some clinic's zone is refused (FitError,
    ``month_in_future``, as the API answers) before anything is written.
    One transaction per clinic, so one clinic's failure leaves the others' files in place.
    Files are written to a temporary name and renamed, so a reader never sees half a file;
    the same data gives byte-identical files (see the module docstring on ``generated_at``).
    """
    now = now or datetime.now(UTC)
    if month is not None:
        parse_period(month)
    with uow_factory() as uow:
        clinics = uow.session.execute(
            select(Clinic.id, Clinic.public_id, Clinic.timezone).order_by(Clinic.id)
        ).all()
    if month is not None:
        # The API's rule (month_in_future), in each clinic's own zone, checked for all of them
        # before any file is written: a month not yet started anywhere it would be archived
        # is refused as a whole rather than archived for some clinics only.
        for _clinic_id, public_id, tz_name in clinics:
            try:
                _check_period(month, now.astimezone(zoneinfo.ZoneInfo(tz_name or "UTC")).date())
            except FitError as exc:
                exc.detail = f"{exc.detail} (clinic {public_id}, {tz_name or 'UTC'})"
                raise
    archived = []
    for clinic_id, public_id, tz_name in clinics:
        tz = zoneinfo.ZoneInfo(tz_name or "UTC")
        period = month or previous_month(now.astimezone(tz).date())
        system = Principal(
            clinic_id=clinic_id, api_key_id=None, role=Role.MANAGER, timezone=tz_name
        )
        with uow_factory() as uow:
            _one_snapshot(uow.session)
            clinic = uow.session.get(Clinic, clinic_id)
            assert clinic is not None
            report = compute_report(uow.session, clinic, period, now=now)
            audit.record(
                uow.session,
                system,
                [audit.AuditEntry("report.archive", "report", period, status_code=201)],
            )
            target = Path(directory) / str(public_id) / period
            files = {
                fmt.filename: _write(target / fmt.filename, fmt.render(report)) for fmt in FORMATS
            }
            sums = "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
            _write(target / "SHA256SUMS", sums.encode("ascii"))
            uow.commit()
        archived.append(ArchivedReport(public_id, period, target, files))
    return archived


def _write(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` whole or not at all (a temporary file renamed over it); a
    write that fails part way (a full disk) leaves neither a torn file nor the temporary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- computing


@dataclass(slots=True)
class _Group:
    """The builders of one group: the trailing 12 months and the report's month.

    The 12-month trend (recovery and mean sessions of episodes *closed* each month) comes
    from the trailing builder, which holds every closed episode of those months
    (:meth:`FiguresBuilder.trend`).
    """

    trailing: FiguresBuilder
    month: FiguresBuilder
    #: filled in once every fact is in (:meth:`_Groups.add_trends`)
    trend: tuple[TrendPoint, ...] = ()


class _Groups:
    """Builders per group, created on first use: clinic, each clinician, each age band."""

    def __init__(self, period: str, settings: ReportSettings) -> None:
        self.periods = trailing_months(period)
        self.month = Window.month(period)
        self.trailing = Window.trailing(period)
        self.settings = settings
        self.clinic = self._new()
        self.clinicians: dict[int, _Group] = {}
        self.bands: dict[AgeBand, _Group] = {}

    def _new(self) -> _Group:
        return _Group(
            trailing=FiguresBuilder(self.trailing, self.settings),
            month=FiguresBuilder(self.month, self.settings),
        )

    def clinician(self, clinician_id: int) -> _Group:
        group = self.clinicians.get(clinician_id)
        if group is None:
            group = self.clinicians[clinician_id] = self._new()
        return group

    def band(self, band: AgeBand) -> _Group:
        group = self.bands.get(band)
        if group is None:
            group = self.bands[band] = self._new()
        return group

    def add_trends(self) -> None:
        """Every group's 12-month trend, from its trailing builder, worked out together
        (:meth:`FiguresBuilder.trends`)."""
        everyone = [self.clinic, *self.clinicians.values(), *self.bands.values()]
        trends = FiguresBuilder.trends([group.trailing for group in everyone], self.periods)
        for group, trend in zip(everyone, trends, strict=True):
            group.trend = trend


def compute_report(
    db: Session,
    clinic: Clinic,
    period: str,
    *,
    now: datetime,
    include: str | None = None,
) -> MonthlyReport:
    """The full report of ``clinic`` for ``period`` (no permission checks: callers do them).

    ``include`` names a clinician whose group must appear even without any data (so their
    own page says "no data" rather than "not found").
    """
    parse_period(period)
    tz = zoneinfo.ZoneInfo(clinic.timezone or "UTC")
    # The same thresholds object the views and alerts use (services/thresholds.py).
    settings = thresholds.from_settings(clinic.settings).reports
    groups = _Groups(period, settings)
    # The session counts are read here while a second connection, on the same snapshot,
    # reads the rest (adapters/snapshot_reads.py): the database computes those while this
    # thread turns the counts into clusters. The builders get every row in the same order
    # either way.
    with SnapshotReads(db, prepare=_without_jit) as reads:
        episodes = reads.submit(_episodes_statement(clinic.id, groups))
        alerts = reads.submit(_alerts_statement(clinic.id, groups, tz))
        flagged = reads.submit(_flagged_statement(clinic.id, groups, tz))
        labels_read = reads.submit(
            select(Clinician.id, Clinician.external_id).where(Clinician.clinic_id == clinic.id)
        )
        _add_session_counts(groups, _rows(db, _session_counts_statement(clinic.id, groups)))
        _add_episodes(groups, episodes.result())
        _add_alerts(groups, alerts.result(), tz)
        _add_flagged(groups, flagged.result(), tz)
        labels: dict[int, str] = {row[0]: row[1] for row in labels_read.result()}

    groups.add_trends()
    reference = fit_reference(groups.clinic.trailing.pairs, settings)
    clinicians = [
        _group_report(labels[cid], labels[cid], group, reference)
        for cid, group in groups.clinicians.items()
    ]
    if include is not None and include not in {g.key for g in clinicians}:
        empty = GroupFigures.empty()
        clinicians.append(GroupReport(include, include, empty, empty))
    bands = [
        _group_report(band.value, AGE_BAND_LABELS[band], groups.bands[band], reference)
        for band in AgeBand
        if band in groups.bands
    ]
    generated_at = _generated_at(period, tz, now)
    return MonthlyReport(
        clinic_name=clinic.name,
        period=period,
        generated_at=generated_at,
        in_progress=generated_at < _month_end(period, tz),
        overall=_group_report(
            "clinic", "Whole clinic", groups.clinic, reference, is_reference=True
        ),
        clinicians=tuple(clinicians),
        age_bands=tuple(bands),
        settings=settings,
    )


def _group_report(
    key: str,
    label: str,
    group: _Group,
    reference: Any,
    *,
    is_reference: bool = False,
) -> GroupReport:
    """``is_reference``: the group's trailing 12 months are the sample ``reference`` was
    fitted on (the whole clinic's), so its SA-ES is its own-reference figure."""
    return GroupReport(
        key=key,
        label=label,
        month=group.month.figures(reference),
        trailing_12=group.trailing.figures(reference, own_reference=is_reference),
        trend=group.trend,
    )


# Session counts and per-episode facts come from two statements over the episodes' sums per
# clinician and month (``episode_months``, kept with the sessions: services/episode_months.py
# says why), not over every session. Windows are whole months, so a month's sums lie wholly
# inside or outside each window.


def _episodes_statement(clinic_id: int, groups: _Groups) -> Any:
    """The active episodes (in id order), each with facts over its months up to the trailing
    window's end (every earlier session counts: the intake may precede the window)."""
    window = groups.trailing
    active = and_(
        Episode.clinic_id == clinic_id,
        Episode.opened_on <= window.last_day,
        or_(Episode.closed_on.is_(None), Episode.closed_on >= window.first_day),
    )
    # The intake and the latest ORS and the intake SRS: the totals of the episode's first and
    # last session (by number) with a score (packed with its number: NumberedTotal). Only
    # attended sessions are numbered and only they carry ratings (services/recording refuses
    # ratings on any other), so the baseline is the episode's first score, as everywhere else
    # (services/outcomes.intake_of; domain.md §4).
    per_episode = (
        select(
            M.episode_id,
            func.sum(M.attended).label("attended"),
            func.max(M.last_attended_on).label("last_on"),
            func.min(M.first_ors).label("intake_ors"),
            func.max(M.last_ors).label("last_ors"),
            func.sum(M.ors_count).label("ors_count"),
            func.min(M.first_srs).label("intake_srs"),
        )
        .where(
            M.clinic_id == clinic_id,
            M.month <= window.last_day,
            M.episode_id.in_(select(Episode.id).where(active)),
        )
        .group_by(M.episode_id)
        .subquery()
    )
    return (
        select(
            Episode.id,
            Episode.clinician_id,
            Client.age_band,
            Episode.opened_on,
            Episode.closed_on,
            Episode.ending_reason,
            per_episode.c.attended,
            per_episode.c.last_on,
            per_episode.c.intake_ors,
            per_episode.c.last_ors,
            per_episode.c.ors_count,
            per_episode.c.intake_srs,
        )
        .join(Client, Client.id == Episode.client_id)
        .outerjoin(per_episode, per_episode.c.episode_id == Episode.id)
        .where(active)
        # A fixed order makes the floats fixed too: the severity reference is a regression
        # over the episodes, and summing in another order moves its last bits.
        .order_by(Episode.id)
    )


def _session_counts_statement(clinic_id: int, groups: _Groups) -> Any:
    """The trailing 12 months' sessions counted per client and clinician, month or not (the
    clusters of the rates over sessions)."""
    window = groups.trailing
    # Only the report's month and the trailing 12 months need session counts (the trend is
    # built from closed episodes), so two buckets suffice.
    month = case((M.month >= groups.month.first_day, 1), else_=0)
    concern = groups.settings.srs_concern
    # A row counted against another SRS concern line than the clinic's (the setting changed
    # under a concurrent write; a database migrated with another line) is counted again
    # from its sessions: the figure is exact either way.
    below = case(
        (M.srs_concern == concern, M.srs_below), else_=episode_months.srs_below(M, concern)
    )
    # One row per client, clinician and bucket: the rates over sessions get intervals that
    # treat each client's sessions as one cluster (domain SessionSpread). The client's age
    # band is joined to the sums, not to the months: joined first, it made PostgreSQL sort
    # ~33,000 month rows by it (64-109 ms for a 200-clinician clinic, 42-54 ms this way).
    sums = (
        select(
            M.client_id,
            M.clinician_id,
            month.label("in_month"),
            *(
                func.sum(column).label(name)
                for column, name in zip(
                    (M.attended, M.no_shows, M.cancelled, M.with_ors, M.with_srs, below),
                    SESSION_COLUMNS,
                    strict=True,
                )
            ),
        )
        .where(M.clinic_id == clinic_id, M.month.between(window.first_day, window.last_day))
        .group_by(M.client_id, month, M.clinician_id)
        .subquery()
    )
    return select(
        sums.c.client_id,
        sums.c.clinician_id,
        Client.age_band,
        sums.c.in_month,
        *(sums.c[name] for name in SESSION_COLUMNS),
    ).join(Client, Client.id == sums.c.client_id)


def _rows(db: Session, query: Any) -> Sequence[Any]:
    """The rows of ``query``, by Core, not ORM, execution: the rows are plain tuples either
    way, and the ORM's result processing costs more per row than everything done with the
    row afterwards."""
    return db.connection().execute(query).all()


def _add_session_counts(groups: _Groups, rows: Sequence[Any]) -> None:
    """Hand the session counts (rows of _session_counts_statement: client, clinician, age band,
    month or not) to the builders as clusters: per client and clinician to the clinicians,
    per client to the clinic and the age bands (a client has one band)."""
    count = len(rows)
    if not count:
        return
    client = np.fromiter(_items(rows, 0), np.int64, count)
    clinician = np.fromiter((-1 if c is None else c for c in _items(rows, 1)), np.int64, count)
    band = np.fromiter(map(_BAND_INDEX.__getitem__, _items(rows, 2)), np.int64, count)
    in_month = np.fromiter((bool(m) for m in _items(rows, 3)), bool, count)
    counts = np.stack(
        [np.fromiter(_items(rows, 4 + i), np.int64, count) for i in range(len(SESSION_COLUMNS))],
        axis=1,
    )
    bands = tuple(AgeBand)
    for window, keep in (("trailing", None), ("month", in_month)):
        who, c, b, x = (a if keep is None else a[keep] for a in (client, clinician, band, counts))
        if not who.size:
            continue
        # Clusters of the clinic and the bands: clients.
        order = np.argsort(who, kind="stable")
        starts, per_client = _sum_runs(x[order], who[order])
        client_band = b[order][starts]
        add = FiguresBuilder.add_sessions_to
        add(
            {i: getattr(groups.band(bands[i]), window) for i in np.unique(client_band).tolist()},
            per_client,
            client_band,
            every_row_to=getattr(groups.clinic, window),
        )
        # Clusters of a clinician: the sessions of one client that clinician held. Groups
        # are made in clinician id order.
        order = np.lexsort((who, c))
        by_clinician = c[order]
        starts, per_pair = _sum_runs(x[order], by_clinician, who[order])
        pair_clinician = by_clinician[starts]
        add(
            {
                cid: getattr(groups.clinician(cid), window)
                for cid in np.unique(pair_clinician).tolist()
                if cid >= 0
            },
            per_pair,
            pair_clinician,
        )


def _sum_runs(counts: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the rows of ``counts`` over each run of equal ``keys`` (sorted rows): the index of
    each run's first row, and the sums."""
    change = np.zeros(len(counts), bool)
    change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    starts = np.flatnonzero(change)
    return starts, np.add.reduceat(counts, starts, axis=0)


def _add_episodes(groups: _Groups, rows: Sequence[Any]) -> None:
    """Hand the active episodes (rows of _episodes_statement, in id order) to the builders of
    their groups in both windows: one :class:`EpisodeTable` of columns, which the domain
    splits by group with array masks (what each episode counts as is decided there)."""
    count = len(rows)
    if not count:
        return
    table = EpisodeTable.build(
        groups.settings,
        band=np.fromiter(map(_BAND_INDEX.__getitem__, _items(rows, 2)), np.int8, count),
        opened_on=np.fromiter(map(date.toordinal, _items(rows, 3)), np.int64, count),
        closed_on=np.fromiter(map(_ordinal, _items(rows, 4)), np.int64, count),
        ending_reason=list(_items(rows, 5)),
        attended=np.fromiter((n or 0 for n in _items(rows, 6)), np.int64, count),
        last_attended_on=np.fromiter(
            (_ordinal(_as_date(day)) for day in _items(rows, 7)), np.int64, count
        ),
        intake_ors=NumberedTotal.totals(_items(rows, 8)),
        last_ors=NumberedTotal.totals(_items(rows, 9)),
        ors_count=np.fromiter((n or 0 for n in _items(rows, 10)), np.int64, count),
        intake_srs=NumberedTotal.totals(_items(rows, 11)),
    )
    _hand_out(groups, FiguresBuilder.add_table_to, table, list(_items(rows, 1)), table.band)


def _hand_out(
    groups: _Groups,
    add: Callable[[Mapping[int, FiguresBuilder], _T, np.ndarray], None],
    table: _T,
    clinician_ids: list[int | None],
    bands: np.ndarray,
) -> None:
    """Hand the rows of ``table`` (episodes, alerts, flagged episodes) to the builders of
    their groups in both windows, one ``add`` call per group kind and window: the clinic,
    each row's age band (``bands``: positions in AgeBand) and clinician (none: no
    clinician's group). Groups are made in the order their first row comes (as one by one
    would)."""
    count = len(clinician_ids)
    position = {cid: i for i, cid in enumerate(dict.fromkeys(clinician_ids)) if cid is not None}
    clinician_of = np.fromiter(
        (-1 if cid is None else position[cid] for cid in clinician_ids), np.int64, count
    )
    clinicians = {i: groups.clinician(cid) for cid, i in position.items()}
    by_band = {i: groups.band(band) for i, band in enumerate(AgeBand) if (bands == i).any()}
    everyone = np.zeros(count, np.int64)
    for window in ("trailing", "month"):
        add({0: getattr(groups.clinic, window)}, table, everyone)
        add({i: getattr(group, window) for i, group in by_band.items()}, table, bands)
        add({i: getattr(group, window) for i, group in clinicians.items()}, table, clinician_of)


def _items(rows: Sequence[Any], index: int) -> Iterator[Any]:
    """Column ``index`` of ``rows`` (map and itemgetter run in C)."""
    return map(operator.itemgetter(index), rows)


def _ordinal(day: date | None) -> int:
    return NO_DAY if day is None else day.toordinal()


def _as_date(value: Any) -> date | None:
    """``MAX(date)`` over a CASE comes back as text on SQLite; a date on PostgreSQL."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _alerts_statement(clinic_id: int, groups: _Groups, tz: zoneinfo.ZoneInfo) -> Any:
    """The alerts raised, acknowledged or closed in the trailing 12 months."""
    start = _local_midnight_utc(groups.trailing.first_day, tz)
    end = _local_midnight_utc(groups.trailing.last_day + timedelta(days=1), tz)

    def within(column: Any) -> Any:
        return and_(column >= start, column < end)

    return (
        select(
            Alert.clinician_id,
            Client.age_band,
            Alert.opened_at,
            Alert.acknowledged_at,
            Alert.closed_at,
            Alert.status,
        )
        .join(Client, Client.id == Alert.client_id)
        .where(
            Alert.clinic_id == clinic_id,
            or_(within(Alert.opened_at), within(Alert.acknowledged_at), within(Alert.closed_at)),
        )
    )


def _add_alerts(groups: _Groups, rows: Sequence[Any], tz: zoneinfo.ZoneInfo) -> None:
    if not rows:
        return
    alerts = [
        AlertFacts(
            raised_on=opened_at.astimezone(tz).date(),
            opened_at=opened_at,
            acknowledged_on=acknowledged_at.astimezone(tz).date() if acknowledged_at else None,
            acknowledged_at=acknowledged_at,
            # Resolved by a clinician; alerts the system closed itself are not counted.
            resolved_on=closed_at.astimezone(tz).date()
            if closed_at is not None and status == "resolved"
            else None,
        )
        for _clinician, _band, opened_at, acknowledged_at, closed_at, status in rows
    ]
    _hand_out(
        groups,
        FiguresBuilder.add_alerts_to,
        AlertTable.of(alerts),
        list(_items(rows, 0)),
        _band_positions(rows, 1),
    )


def _flagged_statement(clinic_id: int, groups: _Groups, tz: zoneinfo.ZoneInfo) -> Any:
    """Episodes whose first alert falls ``follow_up_days`` before the window (with a day's
    margin for time zones; the builder decides exactly), with their last attended session."""
    follow_up = timedelta(days=groups.settings.follow_up_days)
    window = groups.trailing
    start = _local_midnight_utc(window.first_day - follow_up - timedelta(days=1), tz)
    end = _local_midnight_utc(window.last_day - follow_up + timedelta(days=2), tz)
    first_flag = (
        select(Alert.episode_id, func.min(Alert.opened_at).label("first_at"))
        .where(Alert.clinic_id == clinic_id)
        .group_by(Alert.episode_id)
        .having(and_(func.min(Alert.opened_at) >= start, func.min(Alert.opened_at) < end))
        .subquery()
    )
    last_attended = (
        select(func.max(S.date))
        .where(S.episode_id == Episode.id, S.attendance == "attended", S.date <= window.last_day)
        .correlate(Episode)
        .scalar_subquery()
    )
    return (
        select(first_flag.c.first_at, Episode.clinician_id, Client.age_band, last_attended)
        .join(Episode, Episode.id == first_flag.c.episode_id)
        .join(Client, Client.id == Episode.client_id)
    )


def _add_flagged(groups: _Groups, rows: Sequence[Any], tz: zoneinfo.ZoneInfo) -> None:
    if not rows:
        return
    flagged = [
        FlaggedEpisode(
            # MIN() over a timestamp loses the type decorator: naive, in UTC
            first_flag_on=(first_at if first_at.tzinfo else first_at.replace(tzinfo=UTC))
            .astimezone(tz)
            .date(),
            last_attended_on=_as_date(last_on),
        )
        for first_at, _clinician, _band, last_on in rows
    ]
    _hand_out(
        groups,
        FiguresBuilder.add_flagged_to,
        FlaggedTable.of(flagged),
        list(_items(rows, 1)),
        _band_positions(rows, 2),
    )


def _band_positions(rows: Sequence[Any], index: int) -> np.ndarray:
    """Column ``index`` of ``rows`` (stored age bands) as positions in AgeBand."""
    return np.fromiter(map(_BAND_INDEX.__getitem__, _items(rows, index)), np.int64, len(rows))
