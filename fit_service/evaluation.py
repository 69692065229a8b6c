"""Evaluate the dropout-risk rules on a seeded synthetic cohort, as if they ran live.

Nothing here is real data. The generator exists to check that the rules and the alert
reconciliation behave sensibly at clinic scale (how many alerts a clinician would get, how early
they come) and to compare them with the single rule "SRS < 36". Its results are only as good as
its assumptions, so every one is written down here; those without a published number are marked
**ASSUMPTION** and were not tuned to make the rules look good.

Assumptions (see :class:`CohortAssumptions` for the values):

Caseload and time
    * Several clinicians, each with a fixed caseload of weekly appointments; a new client takes
      a slot as soon as one frees. Adults only (ORS cut-off 25, domain.md §3). A warm-up period
      fills the caseloads before anything is measured. ASSUMPTION: 10 clinicians x 20 clients.
    * Planned episode length 3 + Poisson(5) sessions (mean 8). Routine care averages fewer than
      5 sessions (domain.md §4, Hansen et al. 2002) counting dropouts; with dropouts ours
      averages about 6.5. ASSUMPTION: somewhat longer than routine care.

Dropout
    * Dropout = the client ends unilaterally: after their last attended session they miss the
      next appointment (a no-show) or simply do not rebook, and never return (domain.md §6
      definitions). Rate ``dropout_rate`` = 0.30, between 19.7% (Swift & Greenberg 2012) and
      46.9% (Wierzbicki & Pekarik 1993), domain.md §4.
    * Dropouts leave early: the last attended session is 1 + Geometric(0.35) capped one below
      the planned length (median about 2-3). ASSUMPTION (direction from routine-care data).

Alliance (SRS)
    * Each client has a latent alliance z ~ N(0, 1); dropouts' z is shifted down by
      ``alliance_shift``, chosen so that the *observed* early SRS (mean of sessions 1-3) differs
      between dropouts and completers by about d = .55 (Sharf, Primavera & Diener 2010,
      domain.md §1). The benchmark prints the observed d so the calibration can be checked.
    * Ceiling-heavy: the distance of the SRS total from 40 is log-normal with median about 2 at
      z = 0, shrinking by 5% a session, split over the four items at random (Dirichlet(2)).
      About 80% of totals fall in 36-40 (printed). ASSUMPTION (shape typical of PCOMS data).
    * Confrontation ruptures: one session with a large fall on one leg (4-10 points on one item).
      ASSUMPTION: 25% of dropouts have one at their last session (unrepaired, domain.md §1);
      10% of completers have one at a random session, repaired by the next.
    * Withdrawal ruptures ("agreement without engagement", domain.md §1): SRS >= 38 every
      session and a flat ORS. ASSUMPTION: 12% of dropouts, 6% of completers (domain.md says
      unrepaired ruptures end in dropout but gives no rate).
    * SRS skipped on an attended session. ASSUMPTION: 8% for dropouts, 4% for completers
      (domain.md §6 lists missing ratings as a signal, no rate).

Outcome (ORS)
    * Intake ~ N(19, 6), clipped to 2-38. ASSUMPTION (typical outpatient PCOMS intake).
    * ETR-like improvement over log(session) (Finch, Lambert & Schaalje 2001; domain.md §5):
      expected gain by session s is g*log(s) with g = 0.25*(32 - intake), more room more gain.
      Each client's gain is scaled by 1 + 1.2*u where u correlates .28 with z (alliance-outcome
      r = .278, Flückiger et al. 2018); the spread 1.2 was chosen so that about 5% end reliably
      worse than intake (domain.md §4: 5-10%). Session noise N(0, 2.5).
    * The precomputed trajectory is this very model (expected path, 10th-percentile band), so
      "not on track" is judged by an ETR that is perfectly calibrated. OPTIMISTIC: a clinic's own
      ETR would be noisier.
    * ORS does not otherwise depend on dropout. ASSUMPTION (the literature in domain.md gives
      no figure).

Attendance
    * Appointments are missed (no-show 60%, cancellation 40%). ASSUMPTION: per appointment
      15% for dropouts, 7% for completers ("no-shows more common before dropout", §6, no
      figure). 60% of dropouts no-show the appointment after their last session; the rest
      just stop. A daily job would notice the gap: one extra check runs 28 days after a
      dropout's last appointment.
    * No WAI-SR: most PCOMS clinics use only the SRS, so the WAI rules are not exercised here.

Metrics (per rule set; an *alert* is a newly opened alert after reconciliation, so a finding
that repeats session after session counts once):

* sensitivity: share of dropouts flagged by an alert opened on data up to and including their
  last attended session L, i.e. at least one session before they left (before appointment
  L + 1, which they missed). Also shown: flagged at least two sessions before (data up to L-1).
* precision: share of flagged episodes (an alert opened while the client was still attending)
  that then dropped out. Alerts after a client has left (the trailing no-show, the gap) count
  toward the alert rate but flag nothing.
* lead time: (L + 1) minus the latest attended session when the first flag was opened.
* alerts per clinician-week: alerts opened in the measurement window / (clinicians x weeks).

The default row: the clinic's dropout model (fit_service/domain/dropout_model.py) with the rules,
as the service runs once a clinic has enough closed episodes. The model is fitted only on
episodes that had *ended* before the day it is used (first on the warm-up, then refitted every
``REFIT_WEEKS`` weeks), labelled by whether they were dropouts, with its line set by
``RiskSettings.dropout_alerts_per_clinician_week`` and the intake rate of the previous 12 weeks:
exactly the data a live clinic would have. Nothing from the measured episodes' futures is used.
The model is judged after every appointment; at a missed one without an alliance concern at
the session before, a new alert needs odds ``dropout_missed_odds_factor`` times the line's, and
the 28-day follow-up (a scheduled re-check) opens no dropout alert. Reliable deterioration
alerts once confirmed (two scores in a row, or 10 points).
``dropout_alerts_per_clinician_week`` was chosen on the calibration seeds only (the largest
keeping all alerts at or below 2 per clinician-week); the held-out seeds are the figures to
quote.
The "rules only" row is a clinic without a model yet.

Ceiling and reference (rows printed beside the rules; neither is a rule set):

* CEILING: for every attended session, the exact log-odds of dropout given the generator's
  *latent* state (alliance z, withdrawal type, rupture history, misses, skipped ratings and the
  sessions reached; :func:`_oracle_log_odds`). Ratings are independent of dropout given that
  state, so no rule that sees only ratings has more information. One alert per episode, at the
  first session whose log-odds reach a line, the line set as low as the budget of
  ``ALERT_BUDGET`` = 2 alerts per clinician-week allows (on the seed itself: it is a ceiling).
* reference: a logistic regression of dropout on observable signals (session 1/2/3, log SRS
  deficit mean and latest, lowest item below 9, misses, skips, ORS worsening, off track),
  fitted on the calibration seeds 1-5 and printed on them and on the held-out seeds 11-15, with
  the same one-alert-per-episode budget policy. It shows what an observable score can reach on
  this generator; it learns the generator's assumptions (for instance the early leaving hazard),
  so it is no evidence about real clinics.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import count

import numpy as np

from fit_service.domain.alerts import Alert, Open, apply_actions, reconcile
from fit_service.domain.dropout_model import DropoutModel, TrainingEpisode, fit_dropout_model
from fit_service.domain.instruments import ORS, AgeBand
from fit_service.domain.risk import (
    SOURCE_SRS_CONCERN,
    Attendance,
    Concern,
    EpisodeContext,
    Finding,
    RiskSettings,
    SessionObservation,
    Severity,
    evaluate_rules,
)

FindingsFn = Callable[[Sequence[SessionObservation], EpisodeContext, RiskSettings], list[Finding]]

_BASE_DATE = dt.date(2024, 1, 1)  # a Monday; the calendar itself carries no meaning
_ADULT_CUTOFF = ORS.cutoff_for(AgeBand.ADULT)
_SRS_LEGS = ("relationship", "goals", "approach", "overall")
_Z90 = 1.2815515655446004  # standard normal 90th percentile: the 10th-percentile band
_Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class CohortAssumptions:
    """Every knob of the generator; the module docstring says where each value comes from."""

    clinicians: int = 10
    caseload: int = 20
    weeks: int = 26
    warmup_weeks: int = 20
    dropout_rate: float = 0.30
    alliance_shift: float = 0.55
    planned_base: int = 3
    planned_poisson: float = 5.0
    leave_p: float = 0.35
    srs_log_median_deficit: float = math.log(2.0)
    srs_deficit_per_z: float = 0.6
    srs_session_sd: float = 0.5
    srs_growth: float = 0.95
    rupture_dropouts: float = 0.25
    rupture_completers: float = 0.10
    withdrawal_dropouts: float = 0.12
    withdrawal_completers: float = 0.06
    skip_dropouts: float = 0.08
    skip_completers: float = 0.04
    intake_mean: float = 19.0
    intake_sd: float = 6.0
    gain_per_log_session: float = 0.25
    gain_ceiling: float = 32.0
    alliance_outcome_r: float = 0.28
    gain_spread: float = 1.2
    ors_noise_sd: float = 2.5
    miss_dropouts: float = 0.15
    miss_completers: float = 0.07
    no_show_share: float = 0.6
    trailing_no_show: float = 0.6
    gap_check_days: int = 28


@dataclass(frozen=True, slots=True)
class SyntheticEpisode:
    episode_id: str
    clinician_id: int
    start_week: int
    intake: float
    dropout: bool
    withdrawal: bool
    observations: tuple[SessionObservation, ...]
    #: extra dates on which the live checks run after the last appointment (gap detection)
    followups: tuple[dt.date, ...] = ()
    #: the generator's latent state, for the ceiling (:func:`oracle_events`) only; rules never
    #: see it. ``latent_alliance`` is z; ``rupture_session`` the session with a rupture, if any.
    latent_alliance: float = 0.0
    planned_sessions: int = 0
    rupture_session: int | None = None

    @property
    def last_session(self) -> SessionObservation:
        return [o for o in self.observations if o.attended][-1]


@dataclass(frozen=True, slots=True)
class Cohort:
    seed: int
    assumptions: CohortAssumptions
    episodes: tuple[SyntheticEpisode, ...]

    @property
    def measured(self) -> tuple[SyntheticEpisode, ...]:
        """Episodes that started inside the measurement window (all run to their end)."""
        return tuple(e for e in self.episodes if 0 <= e.start_week < self.assumptions.weeks)

    @property
    def window(self) -> tuple[dt.date, dt.date]:
        a = self.assumptions
        start = _BASE_DATE + dt.timedelta(weeks=a.warmup_weeks)
        return start, start + dt.timedelta(weeks=a.weeks)

    @property
    def clinician_weeks(self) -> int:
        return self.assumptions.clinicians * self.assumptions.weeks


# ----------------------------------------------------------------------------- generator
def _srs_items(rng: np.random.Generator, deficit: float) -> dict[str, float]:
    shares = rng.dirichlet([2.0, 2.0, 2.0, 2.0])
    return {
        leg: float(np.clip(round(10.0 - deficit * s, 1), 0.0, 10.0))
        for leg, s in zip(_SRS_LEGS, shares, strict=True)
    }


def _episode(
    rng: np.random.Generator,
    a: CohortAssumptions,
    episode_id: str,
    clinician_id: int,
    start_week: int,
    start: dt.date,
) -> SyntheticEpisode:
    dropout = bool(rng.random() < a.dropout_rate)
    withdrawal = bool(
        rng.random() < (a.withdrawal_dropouts if dropout else a.withdrawal_completers)
    )
    z = rng.normal(-a.alliance_shift if dropout else 0.0, 1.0)
    planned = a.planned_base + int(rng.poisson(a.planned_poisson))
    last = min(int(rng.geometric(a.leave_p)), planned - 1) if dropout else planned

    intake = float(np.clip(round(rng.normal(a.intake_mean, a.intake_sd), 1), 2.0, 38.0))
    g = max(0.0, a.gain_per_log_session * (a.gain_ceiling - intake))
    r = a.alliance_outcome_r
    u = r * z + math.sqrt(1 - r * r) * rng.normal()
    gain = 0.0 if withdrawal else g * (1.0 + a.gain_spread * u)
    ors_sd = 1.2 if withdrawal else a.ors_noise_sd

    rupture_at: int | None = None
    if not withdrawal:
        if dropout and rng.random() < a.rupture_dropouts:
            rupture_at = last
        elif not dropout and rng.random() < a.rupture_completers:
            rupture_at = int(rng.integers(1, last + 1))
    rupture_leg = _SRS_LEGS[int(rng.integers(0, 3))]  # bond, goal or task

    p_miss = a.miss_dropouts if dropout else a.miss_completers
    p_skip = a.skip_dropouts if dropout else a.skip_completers
    observations: list[SessionObservation] = []
    week = 0
    session = 0
    while session < last:
        day = start + dt.timedelta(weeks=week)
        week += 1
        if session >= 1 and rng.random() < p_miss:
            kind = Attendance.NO_SHOW if rng.random() < a.no_show_share else Attendance.CANCELLED
            observations.append(SessionObservation(None, day, kind))
            continue
        session += 1
        if withdrawal:
            deficit = float(rng.uniform(0.0, 1.8))
        else:
            log_def = a.srs_log_median_deficit - a.srs_deficit_per_z * z
            deficit = math.exp(log_def + a.srs_session_sd * rng.normal())
            deficit *= a.srs_growth ** (session - 1)
        items: dict[str, float] | None = _srs_items(rng, deficit)
        if session == rupture_at and items is not None:
            items[rupture_leg] = max(0.0, round(items[rupture_leg] - rng.uniform(4.0, 10.0), 1))
        skipped = bool(rng.random() < p_skip)
        if skipped:
            items = None

        expected = intake + g * math.log(session)
        spread = math.hypot(a.gain_spread * g * math.log(session), a.ors_noise_sd)
        if session == 1:
            ors, band_low, on_track = intake, None, None
        else:
            noisy = intake + gain * math.log(session) + rng.normal(0.0, ors_sd)
            ors = float(np.clip(round(noisy, 1), 0.0, 40.0))
            band_low = round(expected - _Z90 * spread, 1)
            on_track = ors >= band_low
        observations.append(
            SessionObservation(
                session,
                day,
                Attendance.ATTENDED,
                outcome_total=ors,
                alliance_items=items,
                alliance_not_completed=skipped,
                expected_outcome=round(expected, 1),
                band_low=band_low,
                on_track=on_track,
                trajectory_model="synthetic_etr_p10" if band_low is not None else None,
            )
        )
    followups: tuple[dt.date, ...] = ()
    if dropout:
        after = start + dt.timedelta(weeks=week)
        if rng.random() < a.trailing_no_show:
            observations.append(SessionObservation(None, after, Attendance.NO_SHOW))
        followups = (observations[-1].date + dt.timedelta(days=a.gap_check_days),)
    return SyntheticEpisode(
        episode_id=episode_id,
        clinician_id=clinician_id,
        start_week=start_week,
        intake=intake,
        dropout=dropout,
        withdrawal=withdrawal,
        observations=tuple(observations),
        followups=followups,
        latent_alliance=float(z),
        planned_sessions=planned,
        rupture_session=rupture_at,
    )


def generate_cohort(seed: int, assumptions: CohortAssumptions | None = None) -> Cohort:
    """A reproducible cohort: each clinician's caseload slots filled back to back."""
    a = assumptions or CohortAssumptions()
    rng = np.random.default_rng(seed)
    episodes: list[SyntheticEpisode] = []
    ids = count(1)
    for clinician in range(a.clinicians):
        for slot in range(a.caseload):
            week = -a.warmup_weeks + int(rng.integers(0, 8))  # staggered first intakes
            weekday = slot % 5
            while week < a.weeks:
                start = _BASE_DATE + dt.timedelta(weeks=week + a.warmup_weeks, days=weekday)
                ep = _episode(rng, a, f"e{next(ids)}", clinician, week, start)
                episodes.append(ep)
                # the slot frees the week after the last appointment on the books
                span = (ep.observations[-1].date - start).days // 7 + 1
                week += span
    return Cohort(seed, a, tuple(episodes))


# ----------------------------------------------------------------------------- baseline
def srs_below_concern(
    obs: Sequence[SessionObservation], context: EpisodeContext, settings: RiskSettings
) -> list[Finding]:
    """The single-rule baseline: the latest SRS total is below 36 (domain.md §3)."""
    rated = [o for o in obs if o.attended and o.srs_total is not None]
    if not rated or rated[-1].srs_total >= settings.srs_concern_total:  # type: ignore[operator]
        return []
    latest = rated[-1]
    return [
        Finding(
            kind="srs_below_concern",
            concern=Concern.GLOBAL_ALLIANCE,
            severity=Severity.MEDIUM,
            session_number=latest.session_number,
            observed_on=latest.date,
            evidence={"srs_total": latest.srs_total, "source": SOURCE_SRS_CONCERN},
        )
    ]


# ----------------------------------------------------------------------------- live replay
@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One newly opened alert, with the latest attended session known when it opened."""

    episode_id: str
    clinician_id: int
    opened_on: dt.date
    kind: str
    severity: Severity
    latest_session: int


@dataclass(frozen=True, slots=True)
class EpisodeOutcome:
    episode_id: str
    dropout: bool
    last_session: int
    last_session_date: dt.date


def replay(
    episode: SyntheticEpisode,
    findings_fn: FindingsFn = evaluate_rules,
    settings: RiskSettings | None = None,
    dropout_model: Callable[[dt.date], DropoutModel | None] | None = None,
) -> list[AlertEvent]:
    """Run the rules after every appointment (and on follow-up days) as the service would."""
    settings = settings or RiskSettings()
    alerts: list[Alert] = []
    events: list[AlertEvent] = []
    ids = count(1)

    def new_id() -> str:
        return f"{episode.episode_id}-a{next(ids)}"

    # (appointments so far, day, a scheduled re-check rather than a recorded appointment)
    checks = [(i + 1, o.date, False) for i, o in enumerate(episode.observations)]
    checks += [(len(episode.observations), day, True) for day in episode.followups]
    for upto, today, recheck in checks:
        history = episode.observations[:upto]
        context = EpisodeContext(
            episode.intake,
            _ADULT_CUTOFF,
            AgeBand.ADULT,
            today,
            dropout_model=dropout_model(today) if dropout_model else None,
            recheck=recheck,
        )
        findings = findings_fn(history, context, settings)
        actions = reconcile(alerts, findings, history, settings)
        if not actions:
            continue
        latest = max((o.session_number or 0 for o in history), default=0)
        events.extend(
            AlertEvent(episode.episode_id, episode.clinician_id, today, a.kind, a.severity, latest)
            for a in actions
            if isinstance(a, Open)
        )
        alerts = apply_actions(alerts, actions, new_id)
    return events


# ----------------------------------------------------------------------------- metrics
@dataclass(frozen=True, slots=True)
class Proportion:
    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        """Wilson score interval."""
        if not self.n:
            return None
        p, n, z2 = self.k / self.n, self.n, _Z95 * _Z95
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def __str__(self) -> str:
        if self.value is None or self.ci95 is None:
            return "n/a"
        low, high = self.ci95
        return f"{self.value:6.1%} ({low:.0%}-{high:.0%}) {self.k}/{self.n}"


@dataclass(frozen=True, slots=True)
class Metrics:
    sensitivity: Proportion
    sensitivity_two_ahead: Proportion
    precision: Proportion
    median_lead_sessions: float | None
    alerts: int
    clinician_weeks: float
    flagged_episodes: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    #: lead of every flagged dropout (so several seeds can be pooled, :func:`pool`)
    leads: tuple[int, ...] = ()

    @property
    def alerts_per_clinician_week(self) -> float:
        return self.alerts / self.clinician_weeks if self.clinician_weeks else 0.0


def compute_metrics(
    outcomes: Sequence[EpisodeOutcome],
    events: Sequence[AlertEvent],
    clinician_weeks: float,
    window: tuple[dt.date, dt.date] | None = None,
) -> Metrics:
    """Sensitivity, precision, lead time and alert rate (definitions in the module docstring).

    ``events`` may include episodes not in ``outcomes`` (warm-up episodes): they count toward
    the alert rate when inside ``window`` (start inclusive, end exclusive) but flag nothing.
    """
    by_episode = {o.episode_id: o for o in outcomes}
    first_flag: dict[str, AlertEvent] = {}
    for e in sorted(events, key=lambda e: (e.opened_on, e.latest_session)):
        outcome = by_episode.get(e.episode_id)
        if outcome is None or e.opened_on > outcome.last_session_date:
            continue
        first_flag.setdefault(e.episode_id, e)
    dropouts = [o for o in outcomes if o.dropout]
    leads = [
        o.last_session + 1 - first_flag[o.episode_id].latest_session
        for o in dropouts
        if o.episode_id in first_flag
    ]
    in_window = [e for e in events if window is None or window[0] <= e.opened_on < window[1]]
    by_kind: dict[str, int] = {}
    for e in in_window:
        by_kind[e.kind] = by_kind.get(e.kind, 0) + 1
    return Metrics(
        sensitivity=Proportion(len(leads), len(dropouts)),
        sensitivity_two_ahead=Proportion(sum(1 for x in leads if x >= 2), len(dropouts)),
        precision=Proportion(
            sum(1 for eid in first_flag if by_episode[eid].dropout), len(first_flag)
        ),
        median_lead_sessions=float(statistics.median(leads)) if leads else None,
        alerts=len(in_window),
        clinician_weeks=clinician_weeks,
        flagged_episodes=len(first_flag),
        by_kind=dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
        leads=tuple(leads),
    )


def pool(results: Sequence[Metrics]) -> Metrics:
    """Several seeds' metrics as one: counts summed, the median lead over all leads."""
    leads = tuple(x for m in results for x in m.leads)

    def total(get: Callable[[Metrics], Proportion]) -> Proportion:
        return Proportion(sum(get(m).k for m in results), sum(get(m).n for m in results))

    by_kind: dict[str, int] = {}
    for m in results:
        for kind, n in m.by_kind.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
    return Metrics(
        sensitivity=total(lambda m: m.sensitivity),
        sensitivity_two_ahead=total(lambda m: m.sensitivity_two_ahead),
        precision=total(lambda m: m.precision),
        median_lead_sessions=float(statistics.median(leads)) if leads else None,
        alerts=sum(m.alerts for m in results),
        clinician_weeks=sum(m.clinician_weeks for m in results),
        flagged_episodes=sum(m.flagged_episodes for m in results),
        by_kind=dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
        leads=leads,
    )


def outcome_of(episode: SyntheticEpisode) -> EpisodeOutcome:
    last = episode.last_session
    return EpisodeOutcome(episode.episode_id, episode.dropout, last.session_number or 0, last.date)


def evaluate(
    cohort: Cohort,
    findings_fn: FindingsFn = evaluate_rules,
    settings: RiskSettings | None = None,
    dropout_model: Callable[[dt.date], DropoutModel | None] | None = None,
) -> Metrics:
    """Replay every episode live and compute the metrics over the measurement window."""
    events = [e for ep in cohort.episodes for e in replay(ep, findings_fn, settings, dropout_model)]
    outcomes = [outcome_of(ep) for ep in cohort.measured]
    return compute_metrics(outcomes, events, cohort.clinician_weeks, cohort.window)


# ----------------------------------------------------------------------------- clinic model
#: weeks before the measurement window over which the clinic's intake rate is taken (the
#: first warm-up weeks fill empty caseloads, so they would overstate it)
INTAKE_RATE_WEEKS = 12


def clinic_dropout_model(
    cohort: Cohort, as_of: dt.date, settings: RiskSettings | None = None
) -> DropoutModel | None:
    """The model the service would hold on ``as_of``: fitted on the episodes that had *ended*
    by then, labelled by whether they were dropouts, with the line set by the clinic's alert
    budget and its intake rate over the previous :data:`INTAKE_RATE_WEEKS` weeks - as
    :mod:`fit_service.services.dropout_models` does from the database."""
    settings = settings or RiskSettings()
    ended = [
        TrainingEpisode(ep.observations, ep.dropout)
        for ep in cohort.episodes
        if max([o.date for o in ep.observations] + list(ep.followups)) < as_of
    ]
    a = cohort.assumptions
    since = as_of - dt.timedelta(weeks=INTAKE_RATE_WEEKS)
    recent = sum(1 for ep in cohort.episodes if since <= ep.observations[0].date < as_of)
    return fit_dropout_model(
        ended,
        budget_per_clinician_week=settings.dropout_alerts_per_clinician_week,
        new_episodes_per_clinician_week=recent / (a.clinicians * INTAKE_RATE_WEEKS),
        item_concern=settings.srs_item_concern,
        reliable_change=settings.reliable_change,
        srs_concern_total=settings.srs_concern_total,
        missed_odds_factor=settings.dropout_missed_odds_factor,
    )


#: the evaluation refits the clinic model this often (the service refits at least daily, so
#: this is the more conservative of the two)
REFIT_WEEKS = 4


def clinic_models(
    cohort: Cohort, settings: RiskSettings | None = None
) -> Callable[[dt.date], DropoutModel | None]:
    """The clinic model in force on each day: refitted every :data:`REFIT_WEEKS` weeks from
    the start of the measurement window on the episodes ended by then (before the window:
    the first fit, on warm-up episodes only)."""
    start, end = cohort.window
    refits: list[tuple[dt.date, DropoutModel | None]] = []
    day = start
    while day < end + dt.timedelta(weeks=REFIT_WEEKS):
        refits.append((day, clinic_dropout_model(cohort, day, settings)))
        day += dt.timedelta(weeks=REFIT_WEEKS)

    def model_on(today: dt.date) -> DropoutModel | None:
        current = None  # before the first fit (the warm-up): the rules alone
        for since, model in refits:
            if since > today:
                break
            current = model
        return current

    return model_on


# ----------------------------------------------------------------------------- ceiling
#: the alert budget of the issue's target: at most this many alerts per clinician-week
ALERT_BUDGET = 2.0

EpisodeScores = dict[str, list[tuple[SessionObservation, float]]]


def _oracle_log_odds(
    episode: SyntheticEpisode, a: CohortAssumptions
) -> list[tuple[SessionObservation, float]]:
    """Log-odds that ``episode`` is a dropout, at each attended session, given its latent state.

    Exact under the generator: conditions on the latent alliance z, the withdrawal type, the
    rupture history so far, the misses and skipped ratings so far, and having reached session s
    (dropouts leave after 1 + Geometric(leave_p) sessions, capped one below the planned length
    3 + Poisson(5); completers stay for the planned length). Every observable rating is, given
    these, independent of dropout, so no policy that sees only ratings can rank better.
    """
    planned = {
        a.planned_base + k: math.exp(-a.planned_poisson) * a.planned_poisson**k / math.factorial(k)
        for k in range(60)
    }
    stay = 1.0 - a.leave_p

    def dropout_leaves_at(s: int) -> float:  # P(L = s | dropout)
        return sum(
            p * (stay ** (s - 1) * (a.leave_p if s < n - 1 else 1.0))
            for n, p in planned.items()
            if s <= n - 1
        )

    def dropout_stays_past(s: int) -> float:  # P(L > s | dropout)
        return sum(p * stay**s for n, p in planned.items() if n - 1 > s)

    def completer_here(s: int, ruptured: bool) -> float:  # P(reach s, rupture history | completer)
        if episode.withdrawal:
            return sum(p for n, p in planned.items() if n >= s)
        if ruptured:
            return sum(p * a.rupture_completers / n for n, p in planned.items() if n >= s)
        return sum(p * (1.0 - a.rupture_completers * s / n) for n, p in planned.items() if n >= s)

    d, z = a.alliance_shift, episode.latent_alliance
    w_d, w_c = a.withdrawal_dropouts, a.withdrawal_completers
    base = math.log(a.dropout_rate / (1.0 - a.dropout_rate)) - d * z - d * d / 2.0
    base += math.log(w_d / w_c) if episode.withdrawal else math.log((1 - w_d) / (1 - w_c))
    miss_lr = math.log(a.miss_dropouts / a.miss_completers)
    attend_lr = math.log((1 - a.miss_dropouts) / (1 - a.miss_completers))
    skip_lr = math.log(a.skip_dropouts / a.skip_completers)
    rated_lr = math.log((1 - a.skip_dropouts) / (1 - a.skip_completers))
    out: list[tuple[SessionObservation, float]] = []
    misses = skips = 0
    for o in episode.observations:
        if not o.attended:
            misses += 1
            continue
        s = o.session_number or 0
        skips += o.alliance_not_completed
        rupture = episode.rupture_session
        ruptured = rupture is not None and rupture <= s
        if episode.withdrawal:
            dropout_here = dropout_leaves_at(s) + dropout_stays_past(s)
        elif ruptured:  # a dropout's rupture is at its last session, so only at s itself
            dropout_here = a.rupture_dropouts * dropout_leaves_at(s) if rupture == s else 0.0
        else:
            dropout_here = dropout_stays_past(s) + (1 - a.rupture_dropouts) * dropout_leaves_at(s)
        log_odds = base + (math.log(dropout_here) if dropout_here > 0 else -50.0)
        log_odds -= math.log(completer_here(s, ruptured))
        log_odds += misses * miss_lr + (s - 1) * attend_lr
        log_odds += skips * skip_lr + (s - skips) * rated_lr
        out.append((o, log_odds))
    return out


def oracle_scores(cohort: Cohort) -> EpisodeScores:
    """The oracle's log-odds for every episode (warm-up ones too: they use the budget)."""
    return {ep.episode_id: _oracle_log_odds(ep, cohort.assumptions) for ep in cohort.episodes}


def _observable_features(episode: SyntheticEpisode) -> list[tuple[SessionObservation, list[float]]]:
    """What a rule could see at each attended session (for the fitted reference score)."""
    rows: list[tuple[SessionObservation, list[float]]] = []
    misses = skips = 0
    deficits: list[float] = []
    for o in episode.observations:
        if not o.attended:
            misses += 1
            continue
        s = o.session_number or 0
        skips += o.alliance_not_completed
        total = o.srs_total
        if total is not None:
            deficits.append(max(40.0 - total, 0.1))
        lowest = min(o.alliance_items.values()) if o.alliance_items else 9.0
        change = (o.outcome_total or episode.intake) - episode.intake
        rows.append(
            (
                o,
                [
                    1.0,
                    float(s == 1),
                    float(s == 2),
                    float(s == 3),
                    math.log(statistics.mean(deficits)) if deficits else math.log(2.0),
                    math.log(max(40.0 - total, 0.1)) if total is not None else math.log(2.0),
                    max(0.0, 9.0 - lowest),
                    float(misses),
                    float(skips),
                    min(change, 0.0) / 5.0,
                    float(o.on_track is False),
                ],
            )
        )
    return rows


def fit_observable_reference(seeds: Sequence[int]) -> np.ndarray:
    """Logistic-regression weights (Newton steps, small ridge) of dropout on what a rule sees.

    A data-driven *reference*, fitted on the calibration seeds' measured episodes: the best
    linear score of observable signals this generator allows, not a rule set (it learns the
    generator's own assumptions, such as the early leaving hazard).
    """
    x: list[list[float]] = []
    y: list[float] = []
    for seed in seeds:
        for ep in generate_cohort(seed).measured:
            for _, row in _observable_features(ep):
                x.append(row)
                y.append(float(ep.dropout))
    xs, ys = np.array(x), np.array(y)
    w = np.zeros(xs.shape[1])
    for _ in range(30):
        p = 1.0 / (1.0 + np.exp(-xs @ w))
        hessian = xs.T @ (xs * (p * (1 - p))[:, None]) + 1e-3 * np.eye(len(w))
        w = w + np.linalg.solve(hessian, xs.T @ (ys - p) - 1e-3 * w)
    return w


def observable_scores(cohort: Cohort, weights: np.ndarray) -> EpisodeScores:
    return {
        ep.episode_id: [(o, float(np.dot(row, weights))) for o, row in _observable_features(ep)]
        for ep in cohort.episodes
    }


def _threshold_events(cohort: Cohort, scores: EpisodeScores, line: float) -> list[AlertEvent]:
    """One alert per episode, at the first attended session whose score reaches ``line``."""
    events = []
    for ep in cohort.episodes:
        hit = next((o for o, score in scores[ep.episode_id] if score >= line), None)
        if hit is not None:
            events.append(
                AlertEvent(
                    ep.episode_id,
                    ep.clinician_id,
                    hit.date,
                    "ceiling",
                    Severity.HIGH,
                    hit.session_number or 0,
                )
            )
    return events


def at_budget(cohort: Cohort, scores: EpisodeScores, budget: float = ALERT_BUDGET) -> Metrics:
    """Metrics of the score's lowest alert line that keeps alerts per clinician-week <= budget."""
    outcomes = [outcome_of(ep) for ep in cohort.measured]

    def metrics(line: float) -> Metrics:
        events = _threshold_events(cohort, scores, line)
        return compute_metrics(outcomes, events, cohort.clinician_weeks, cohort.window)

    low, high = -20.0, 20.0
    for _ in range(40):
        mid = (low + high) / 2
        if metrics(mid).alerts_per_clinician_week <= budget:
            high = mid
        else:
            low = mid
    return metrics(high)


# ----------------------------------------------------------------------------- cohort checks
@dataclass(frozen=True, slots=True)
class CohortSummary:
    episodes: int
    dropouts: int
    mean_sessions: float
    srs_share_36_40: float
    early_srs_d: float
    miss_rate_dropouts: float
    miss_rate_completers: float
    withdrawal: int
    improved_completers: float
    deteriorated: float
    #: dropouts whose last attended session was session 1: only session-1 data can flag them
    dropouts_after_first: int = 0
    #: of the episodes *not* reliably worse at their end: share with some ORS score reliably
    #: below intake on the way, and share meeting the HIGH deterioration rule (confirmed/large)
    unchanged_crossing_once: float = 0.0
    unchanged_crossing_high: float = 0.0


def summarise(cohort: Cohort) -> CohortSummary:
    """The generator's figures to hold against domain.md (printed with every evaluation)."""
    eps = cohort.measured
    totals = [
        t for ep in eps for o in ep.observations if o.attended and (t := o.srs_total) is not None
    ]
    early: dict[bool, list[float]] = {True: [], False: []}
    misses: dict[bool, list[int]] = {True: [0, 0], False: [0, 0]}
    improved = deteriorated = completers = 0
    settings = RiskSettings()
    crossing = [0, 0, 0]  # not worse at the end: all, crossing once, meeting the HIGH rule
    for ep in eps:
        rated = [
            t
            for o in ep.observations
            if o.attended and (o.session_number or 0) <= 3 and (t := o.srs_total) is not None
        ]
        if rated:
            early[ep.dropout].append(sum(rated) / len(rated))
        last = ep.last_session
        before_end = [o for o in ep.observations if o.date <= last.date]
        misses[ep.dropout][0] += sum(1 for o in before_end if not o.attended)
        misses[ep.dropout][1] += len(before_end)
        change = (last.outcome_total or ep.intake) - ep.intake
        deteriorated += change <= -ORS.reliable_change_points  # type: ignore[operator]
        if not ep.dropout:
            completers += 1
            improved += change >= ORS.reliable_change_points  # type: ignore[operator]
        if change > -settings.reliable_change:
            scores = [o.outcome_total - ep.intake for o in ep.observations if o.attended]  # type: ignore[operator]
            worse = [c <= -settings.reliable_change for c in scores]
            runs = [
                all(worse[i - k] for k in range(settings.deterioration_confirm_scores))
                for i in range(settings.deterioration_confirm_scores - 1, len(worse))
            ]
            crossing[0] += 1
            crossing[1] += any(worse)
            crossing[2] += any(runs) or any(
                c <= -settings.deterioration_large_multiple * settings.reliable_change
                for c in scores
            )
    drop, comp = early[True], early[False]
    pooled = math.sqrt(
        ((len(drop) - 1) * statistics.variance(drop) + (len(comp) - 1) * statistics.variance(comp))
        / (len(drop) + len(comp) - 2)
    )
    return CohortSummary(
        episodes=len(eps),
        dropouts=sum(ep.dropout for ep in eps),
        mean_sessions=statistics.mean(ep.last_session.session_number or 0 for ep in eps),
        srs_share_36_40=sum(1 for t in totals if t >= 36) / len(totals),
        early_srs_d=(statistics.mean(comp) - statistics.mean(drop)) / pooled,
        miss_rate_dropouts=misses[True][0] / misses[True][1],
        miss_rate_completers=misses[False][0] / misses[False][1],
        withdrawal=sum(ep.withdrawal for ep in eps),
        improved_completers=improved / completers,
        deteriorated=deteriorated / len(eps),
        dropouts_after_first=sum(
            1 for ep in eps if ep.dropout and ep.last_session.session_number == 1
        ),
        unchanged_crossing_once=crossing[1] / max(crossing[0], 1),
        unchanged_crossing_high=crossing[2] / max(crossing[0], 1),
    )


# ----------------------------------------------------------------------------- report
def _alert_at(severity: Severity) -> RiskSettings:
    return replace(RiskSettings(), alert_min_severity=severity)


def _row(name: str, m: Metrics) -> str:
    lead = f"{m.median_lead_sessions:g}" if m.median_lead_sessions is not None else "n/a"
    return (
        f"{name:<36} {m.sensitivity!s:<26} {m.sensitivity_two_ahead!s:<26} "
        f"{m.precision!s:<26} {lead:>5} {m.alerts_per_clinician_week:8.2f}"
    )


CEILING_LABEL = "CEILING (oracle, not a rule set)"
DEFAULT_LABEL = "default: clinic model + rules"
RULES_LABEL = "rules only (no clinic model yet)"
REFERENCE_LABEL = "reference: fitted observable score"
_HEADER = (
    f"{'rule set':<36} {'sensitivity >=1 ahead':<26} {'sensitivity >=2 ahead':<26} "
    f"{'precision':<26} {'lead':>5} {'alerts/clinician-wk':>8}"
)


def _verdict(ours: Metrics, baseline: Metrics) -> str:
    sens, prec = ours.sensitivity.value or 0.0, ours.precision.value or 0.0
    checks = [
        ("sensitivity >= 70%", sens >= 0.70),
        (f"<= {ALERT_BUDGET:g} alerts per clinician-week", ours.alerts_per_clinician_week <= 2.0),
        ("sensitivity above baseline", sens > (baseline.sensitivity.value or 0.0)),
        ("precision above baseline", prec > (baseline.precision.value or 0.0)),
    ]
    return "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks)


def run(seed: int = 1, assumptions: CohortAssumptions | None = None) -> str:
    """The evaluation table for one seed, with the cohort checks, the ceiling and the targets."""
    cohort = generate_cohort(seed, assumptions)
    a = cohort.assumptions
    s = summarise(cohort)
    models = clinic_models(cohort)
    first = models(cohort.window[0])
    rows = [
        (DEFAULT_LABEL, evaluate(cohort, dropout_model=models)),
        (RULES_LABEL, evaluate(cohort)),
        ("rules only, alert at medium+", evaluate(cohort, settings=_alert_at(Severity.MEDIUM))),
        ("rules only, alert on every finding", evaluate(cohort, settings=_alert_at(Severity.LOW))),
    ]
    baseline = evaluate(cohort, srs_below_concern, _alert_at(Severity.MEDIUM))
    ceiling = at_budget(cohort, oracle_scores(cohort))
    ours = rows[0][1]
    base_rate = s.dropouts / s.episodes
    lines = [
        f"Synthetic cohort, seed {seed}: {a.clinicians} clinicians x {a.weeks} weeks, caseload "
        f"{a.caseload}, weekly sessions ({a.warmup_weeks} warm-up weeks not measured)",
        f"episodes {s.episodes}, dropouts {s.dropouts} ({base_rate:.1%}; "
        "dropout = unilateral ending, missed next appointment or stopped and never returned); "
        f"dropouts who never came to session 2: {s.dropouts_after_first} "
        f"({s.dropouts_after_first / max(s.dropouts, 1):.0%}, only session-1 data can flag them)",
        "generator checks (domain.md): "
        f"early-SRS d dropouts vs completers {s.early_srs_d:.2f} (Sharf 2010: .55); "
        f"SRS totals 36-40 {s.srs_share_36_40:.0%}; mean sessions {s.mean_sessions:.1f}; "
        f"missed appts {s.miss_rate_dropouts:.0%} dropouts vs {s.miss_rate_completers:.0%} "
        f"completers; withdrawal-pattern clients {s.withdrawal}; completers reliably improved "
        f"{s.improved_completers:.0%}; reliably worse {s.deteriorated:.0%} (5-10%); of the "
        f"others, {s.unchanged_crossing_once:.1%} had a score reliably below intake on the way, "
        f"{s.unchanged_crossing_high:.1%} two in a row or 10 below (the deterioration alert)",
        "",
        _HEADER,
        *(_row(name, m) for name, m in rows),
        _row("baseline: SRS < 36", baseline),
        _row(CEILING_LABEL, ceiling),
        "",
        "95% Wilson intervals in brackets; lead = median sessions from first flag to the missed "
        "appointment.",
        f"CEILING: one alert per episode, first session whose exact dropout probability given the "
        f"generator's latent state (alliance z, rupture, withdrawal type, misses, skips, sessions "
        f"reached) crosses the lowest line within {ALERT_BUDGET:g} alerts per clinician-week. No "
        "rule seeing only ratings has more information (an upper reference, not a proof of "
        "optimality); it flags "
        f"{ceiling.flagged_episodes / s.episodes:.0%} of episodes, precision lift over the "
        f"{base_rate:.1%} dropout rate x{(ceiling.precision.value or 0) / base_rate:.2f}.",
        "clinic dropout model at the window's start: "
        + (
            f"{first.label}, alert line {first.line:.0%}, flags {first.flagged_share:.0%} of "
            f"its training episodes and {first.training_sensitivity:.0%} of their dropouts"
            if first
            else "too few closed episodes (the rules alert alone)"
        )
        + f"; refitted every {REFIT_WEEKS} weeks on the episodes ended by then.",
        "alerts by kind (default): " + ", ".join(f"{k} {v}" for k, v in ours.by_kind.items()),
        "targets (default row): " + _verdict(ours, baseline),
    ]
    return "\n".join(lines)


CALIBRATION_SEEDS = (1, 2, 3, 4, 5)
#: held out until 2026-11-23, then looked at while choosing the budget: no longer a clean test
DEVELOPMENT_SEEDS = (11, 12, 13, 14, 15)
#: held out: first run once, after the 2026-11-23 budget had been fixed on the calibration seeds
HELD_OUT_SEEDS = (21, 22, 23, 24, 25)


def run_seed_sets(
    calibration: Sequence[int] = CALIBRATION_SEEDS,
    held_out: Sequence[int] = HELD_OUT_SEEDS,
    assumptions: CohortAssumptions | None = None,
    *,
    development: Sequence[int] = (),
) -> str:
    """Pooled rows over the calibration seeds, any development seeds and the held-out seeds.

    Anything fitted or calibrated (the fitted reference score, the default budget) uses the
    calibration seeds only; the held-out rows are the honest figures. Development seeds were
    once held out but have been looked at while choosing settings: printed for continuity.
    """
    weights = fit_observable_reference(calibration)
    dev = f"; development {', '.join(map(str, development))}" if development else ""
    lines = [
        f"Pooled over seeds: calibration {', '.join(map(str, calibration))}{dev}; held out "
        f"{', '.join(map(str, held_out))} (the reference score is fitted on calibration only)",
        "",
    ]
    sets = [("calibration", calibration)]
    if development:
        sets.append(("development (seen while tuning, not held out)", development))
    sets.append(("held out", held_out))
    for label, seeds in sets:
        per: dict[str, list[Metrics]] = {}
        for seed in seeds:
            cohort = generate_cohort(seed, assumptions)
            results = {
                DEFAULT_LABEL: evaluate(cohort, dropout_model=clinic_models(cohort)),
                RULES_LABEL: evaluate(cohort),
                "baseline: SRS < 36": evaluate(
                    cohort, srs_below_concern, _alert_at(Severity.MEDIUM)
                ),
                REFERENCE_LABEL: at_budget(cohort, observable_scores(cohort, weights)),
                CEILING_LABEL: at_budget(cohort, oracle_scores(cohort)),
            }
            for name, m in results.items():
                per.setdefault(name, []).append(m)
        pooled = {name: pool(ms) for name, ms in per.items()}
        lines += [
            f"{label} seeds",
            _HEADER,
            *(_row(name, m) for name, m in pooled.items()),
            "targets (default row): "
            + _verdict(pooled[DEFAULT_LABEL], pooled["baseline: SRS < 36"]),
            "",
        ]
    lines.append(
        "reference and CEILING use one alert per episode and the whole budget of "
        f"{ALERT_BUDGET:g} alerts per clinician-week; the default row gives the dropout model "
        f"{RiskSettings().dropout_alerts_per_clinician_week:g} a week and also alerts on reliable "
        "deterioration once confirmed (harm, alerted whatever the dropout risk)."
    )
    return "\n".join(lines)
