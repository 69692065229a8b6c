"""A clinic's own dropout-risk model: one score from the signals domain.md §6 lists.

Why a model and not only rules: each rule (low SRS, a low item, a missed appointment, ORS worse
than intake, not on track, a skipped SRS) is weak on its own - early alliance predicts dropout
with d = .55 (Sharf, Primavera & Diener 2010, domain.md §1), about a 1.2-fold lift at the
thresholds in use - and alerting on every rule floods clinicians. Combining the signals into one
estimate per episode, and alerting once when it crosses a line set by the clinic's alert budget,
catches more dropouts for the same number of alerts. Like the expected treatment response
(domain.md §5: "fit the clinic's own ... once it has enough closed episodes; until then use the
rational rules"), the model is fitted on the clinic's **own closed episodes**, labelled by the
clinic's own dropout definition (domain.md §6: a setting), and only once there are enough of
them; until then the individual rules alert as before.

The model: logistic regression of "this episode ended in dropout" on the features below, one
row per appointment (attended or missed) of every closed episode (the episode as it looked at
that point, :func:`appointment_features`), fitted by Newton-Raphson with a small ridge. Its
estimate at an appointment is, roughly, the share of the clinic's past appointments looking
like this one that belonged to an episode ending in dropout (rows are appointments, so long
episodes weigh more).

Minimum data: 10 dropouts and 10 non-dropouts per estimated coefficient (Peduzzi et al. 1996,
J Clin Epidemiol 49:1373, "events per variable"), so 100 of each with the 10 features.

The alert line (:func:`fit_dropout_model`): an episode is flagged the first time its estimate
reaches the line. The line is the lowest that, over the training episodes, flags no more than
``budget / new episodes per clinician-week`` of them - so a clinician gets about ``budget``
dropout-risk alerts a week (``RiskSettings.dropout_alerts_per_clinician_week``).

At a missed appointment the estimate is computed too (a miss raises it at once). After a
session with an alliance concern (SRS total below the concern line or an item below the item
line: domain.md §6, "no-shows ... stronger after a low SRS") the miss is judged at the line like
any appointment: that is the moment for outreach. After a session without one, a new alert needs
odds ``missed_odds_factor`` times the line's (``RiskSettings.dropout_missed_odds_factor``): the
clinician sees the miss in their own calendar, so an alert there must add something, and many
such misses come from clients who have already left, where an alert spends the budget on
nothing an earlier alert could not have done. The training line judges missed appointments the
same way, so the budget still holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fit_service.domain.instruments import SRS
from fit_service.domain.risk import Concern, SessionObservation

#: feature names, in the order of :func:`appointment_features` (after the intercept)
FEATURES: tuple[str, ...] = (
    "session_1",
    "session_2",
    "session_3",
    "srs_deficit_mean",
    "srs_deficit_latest",
    "srs_item_shortfall",
    "missed_appointments",
    "srs_skipped",
    "ors_worse_than_intake",
    "not_on_track",
)
#: what each (non-timing) feature is about, for explaining an estimate to the clinician
FEATURE_CONCERNS: Mapping[str, Concern] = {
    "srs_deficit_mean": Concern.GLOBAL_ALLIANCE,
    "srs_deficit_latest": Concern.GLOBAL_ALLIANCE,
    "srs_item_shortfall": Concern.GLOBAL_ALLIANCE,
    "missed_appointments": Concern.ATTENDANCE,
    "srs_skipped": Concern.ATTENDANCE,
    "ors_worse_than_intake": Concern.OUTCOME,
    "not_on_track": Concern.OUTCOME,
}
FEATURE_LABELS: Mapping[str, str] = {
    "session_1": "first session (dropout is most common early; domain.md §4)",
    "session_2": "second session",
    "session_3": "third session",
    "srs_deficit_mean": "SRS below 40 on average so far",
    "srs_deficit_latest": "latest SRS below 40",
    "srs_item_shortfall": "an SRS item below the item line",
    "missed_appointments": "missed appointments",
    "srs_skipped": "SRS not completed",
    "ors_worse_than_intake": "ORS below intake",
    "not_on_track": "ORS below the expected-response band",
}
#: Peduzzi et al. 1996: at least 10 events per estimated coefficient (both outcomes)
EVENTS_PER_VARIABLE = 10
MIN_EVENTS = EVENTS_PER_VARIABLE * len(FEATURES)
SOURCE = (
    "domain.md §6 signals combined in a logistic model fitted on the clinic's closed episodes "
    "(labelled by its dropout definition); domain.md §1: early alliance predicts dropout "
    "(Sharf et al. 2010, d = .55)"
)
_RIDGE = 1e-3
_NEWTON_STEPS = 50
_SRS_MAX = 40.0


def strict_rows(
    obs: Sequence[SessionObservation], *, srs_concern_total: float, item_concern: float
) -> list[bool]:
    """For each row of :func:`appointment_features`: is it a missed appointment whose latest
    attended session showed no alliance concern (so a new alert needs the stricter line)?"""
    out: list[bool] = []
    concern = False
    session = 0
    for o in obs:
        if o.attended:
            session = o.session_number or session
            total = o.srs_total
            items = [v for k, v in (o.alliance_items or {}).items() if k in SRS.item_legs]
            concern = (total is not None and total < srs_concern_total) or (
                bool(items) and min(items) < item_concern
            )
        if not session:
            continue
        out.append(not o.attended and not concern)
    return out


def appointment_features(
    obs: Sequence[SessionObservation],
    *,
    item_concern: float,
    reliable_change: float,
) -> list[tuple[SessionObservation, np.ndarray]]:
    """The feature vector (intercept first) as the episode stood after each appointment.

    Signals (domain.md §6): how early it is (the latest attended session number), how low the
    SRS has been (log of its distance from the 40 ceiling: SRS is ceiling-heavy, so a point lost
    near 40 says more than one lost near 30), an SRS item below ``item_concern`` (domain.md §3;
    from the items given, even when some are blank), missed appointments (a miss counts at once,
    so a client who stops coming is judged at the no-show), SRS marked not completed (a rating
    simply not sent is not evidence), ORS below intake in units of ``reliable_change``, and not
    on track. Falling SRS, WAI-SR, gaps and age are not in the model; their rules alert alone.
    """
    rows: list[tuple[SessionObservation, np.ndarray]] = []
    misses = skips = 0
    deficits: list[float] = []
    intake: float | None = None
    latest_deficit = 0.0
    shortfall = 0.0
    worse = 0.0
    off_track = 0.0
    session = 0
    for o in obs:
        if not o.attended:
            misses += 1
        else:
            session = o.session_number or session
            skips += o.alliance_not_completed
            total = o.srs_total
            latest_deficit = 0.0
            if total is not None:
                latest_deficit = math.log1p(max(_SRS_MAX - total, 0.0))
                deficits.append(max(_SRS_MAX - total, 0.0))
            items = [v for k, v in (o.alliance_items or {}).items() if k in SRS.item_legs]
            shortfall = max(0.0, item_concern - min(items)) if items else 0.0
            if o.outcome_total is not None:
                if intake is None:
                    intake = o.outcome_total
                worse = max(0.0, intake - o.outcome_total) / reliable_change
                off_track = float(o.on_track is False)
        if not session:
            continue  # nothing attended yet: nothing to judge
        mean_deficit = math.log1p(sum(deficits) / len(deficits)) if deficits else 0.0
        rows.append(
            (
                o,
                np.array(
                    [
                        1.0,
                        float(session == 1),
                        float(session == 2),
                        float(session == 3),
                        mean_deficit,
                        latest_deficit,
                        shortfall,
                        float(misses),
                        float(skips),
                        worse,
                        off_track,
                    ]
                ),
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class TrainingEpisode:
    """One closed episode: its observations, whether it ended in dropout, its clinician."""

    observations: tuple[SessionObservation, ...]
    dropout: bool


@dataclass(frozen=True, slots=True)
class DropoutEstimate:
    """The model's view of one episode now: estimate, line and what drives it."""

    probability: float
    line: float
    #: (feature, contribution to the log-odds), largest first; timing features excluded
    contributions: tuple[tuple[str, float], ...]
    #: the line a *new* alert needs here: ``line``, or the stricter one at a missed appointment
    opening_line: float

    @property
    def flagged(self) -> bool:
        """At or above the line: the episode is at risk (an open alert holds)."""
        return self.probability >= self.line

    @property
    def opens(self) -> bool:
        """High enough to open an alert here (see the module docstring on missed appointments)."""
        return self.probability >= self.opening_line

    @property
    def main_concern(self) -> Concern:
        """What the strongest positive signal is about; attendance when only timing drives it
        (an early session: the client may not come back)."""
        for name, value in self.contributions:
            if value > 0:
                return FEATURE_CONCERNS[name]
        return Concern.ATTENDANCE


@dataclass(frozen=True, slots=True)
class DropoutModel:
    """Fitted weights and the alert line, with what they were fitted on (shown as evidence)."""

    weights: tuple[float, ...]
    #: alert when the estimated probability of dropout is at least this
    line: float
    episodes: int
    dropouts: int
    #: share of the training episodes the line flags, and share of their dropouts it flags
    flagged_share: float
    training_sensitivity: float
    budget_per_clinician_week: float
    item_concern: float
    reliable_change: float
    #: SRS total below this is an alliance concern (then a miss is judged at the plain line)
    srs_concern_total: float
    #: a new alert at a missed appointment without an alliance concern before it needs odds
    #: this many times the line's
    missed_odds_factor: float

    @property
    def label(self) -> str:
        return f"clinic dropout model ({self.episodes} closed episodes, {self.dropouts} dropouts)"

    def estimate(self, obs: Sequence[SessionObservation]) -> DropoutEstimate | None:
        """The estimate after the latest appointment; ``None`` before the first one."""
        recent = self.recent_estimates(obs, 1)
        return recent[0] if recent else None

    def recent_estimates(
        self, obs: Sequence[SessionObservation], count: int
    ) -> list[DropoutEstimate | None]:
        """The estimates after each of the last ``count`` appointments, latest first, from one
        pass over the history (``None`` for an appointment before the first attended one)."""
        rows = appointment_features(
            obs, item_concern=self.item_concern, reliable_change=self.reliable_change
        )
        strict = strict_rows(
            obs, srs_concern_total=self.srs_concern_total, item_concern=self.item_concern
        )
        out: list[DropoutEstimate | None] = []
        for back in range(min(count, len(obs))):
            row = rows[len(rows) - 1 - back] if back < len(rows) else None
            # every appointment from the first attended one on has a row: match by identity
            same = row is not None and row[0] is obs[len(obs) - 1 - back]
            if same and row is not None:
                out.append(self._estimate_row(row[1], strict=strict[len(rows) - 1 - back]))
            else:
                out.append(None)
        return out

    @property
    def missed_line(self) -> float:
        """The probability a new alert needs at a missed appointment."""
        if self.line >= 1.0:
            return 1.0
        odds = self.missed_odds_factor * self.line / (1.0 - self.line)
        return odds / (1.0 + odds)

    def _estimate_row(self, x: np.ndarray, *, strict: bool) -> DropoutEstimate:
        w = np.array(self.weights)
        log_odds = float(x @ w)
        parts = [
            (name, float(w[i + 1] * x[i + 1]))
            for i, name in enumerate(FEATURES)
            if name in FEATURE_CONCERNS and x[i + 1] != 0.0
        ]
        parts.sort(key=lambda kv: -kv[1])
        opening = self.missed_line if strict else self.line
        return DropoutEstimate(_sigmoid(log_odds), self.line, tuple(parts), opening)

    def evidence(self, estimate: DropoutEstimate) -> dict[str, Any]:
        """Plain-JSON evidence for a finding: estimate, line, drivers, what it was fitted on."""
        return {
            "probability": round(estimate.probability, 3),
            "line": round(self.line, 3),
            "signals": [
                {"signal": name, "label": FEATURE_LABELS[name], "log_odds": round(v, 2)}
                for name, v in estimate.contributions
                if v > 0
            ],
            "line_at_missed_appointment": round(self.missed_line, 3),
            "model": self.label,
            "training_flagged_share": round(self.flagged_share, 3),
            "training_sensitivity": round(self.training_sensitivity, 3),
            "alerts_per_clinician_week": self.budget_per_clinician_week,
            "source": SOURCE,
        }


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = _RIDGE) -> np.ndarray:
    """Maximum-likelihood logistic weights by Newton-Raphson, with a small ridge so that a
    feature that never varies (no SRS item data, say) cannot make the Hessian singular."""
    w = np.zeros(x.shape[1])
    penalty = ridge * np.eye(x.shape[1])
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    for _ in range(_NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30.0, 30.0)))
        gradient = x.T @ (y - p) - penalty @ w
        hessian = x.T @ (x * (p * (1.0 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w = w + step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return w


#: columns (intercept = 0) whose weight must not be negative: every domain.md §6 signal says
#: "more of this, more risk"; timing (session 1/2/3) may go either way
_RISK_COLUMNS = tuple(i + 1 for i, name in enumerate(FEATURES) if name in FEATURE_CONCERNS)


def fit_signs_constrained(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Logistic weights with every risk signal's weight >= 0.

    A negative weight would mean "a lower SRS (or one more missed session) lowers the risk" -
    noise in a clinic's data, never a finding to act on - and would break the guarantee that a
    better score never raises the estimate. The most negative signal is dropped (weight 0) and
    the rest refitted, until none is negative (backward elimination; a dropped signal does not
    come back).
    """
    active = list(range(x.shape[1]))
    while True:
        w = np.zeros(x.shape[1])
        w[active] = fit_logistic(x[:, active], y)
        negative = [i for i in _RISK_COLUMNS if i in active and w[i] < 0]
        if not negative:
            return w
        active.remove(min(negative, key=lambda i: w[i]))


def allowed_share(budget: float, new_episodes_per_clinician_week: float) -> float:
    """Share of episodes that may be flagged so that a clinician gets ``budget`` a week."""
    if new_episodes_per_clinician_week <= 0:
        return 1.0
    return min(1.0, budget / new_episodes_per_clinician_week)


def fit_dropout_model(
    episodes: Sequence[TrainingEpisode],
    *,
    budget_per_clinician_week: float,
    new_episodes_per_clinician_week: float,
    item_concern: float,
    reliable_change: float,
    srs_concern_total: float,
    missed_odds_factor: float,
) -> DropoutModel | None:
    """Fit on closed episodes and set the alert line; ``None`` when there are too few
    dropouts or non-dropouts (:data:`MIN_EVENTS`, Peduzzi et al. 1996).

    The line is set on where each episode would first *open* an alert: at an attended session,
    or a miss after an alliance concern, its estimate meets the line; at another miss its odds
    meet ``missed_odds_factor`` times the line's (that row's log-odds count less by
    ``log(missed_odds_factor)``; :func:`strict_rows`)."""
    dropouts = sum(1 for e in episodes if e.dropout)
    if dropouts < MIN_EVENTS or len(episodes) - dropouts < MIN_EVENTS:
        return None
    blocks: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    owners: list[int] = []
    strict: list[bool] = []
    for index, e in enumerate(episodes):
        rows = appointment_features(
            e.observations, item_concern=item_concern, reliable_change=reliable_change
        )
        if not rows:
            continue
        blocks.append(np.array([r for _, r in rows]))
        labels.append(np.full(len(rows), float(e.dropout)))
        owners.extend([index] * len(rows))
        strict.extend(
            strict_rows(
                e.observations, srs_concern_total=srs_concern_total, item_concern=item_concern
            )
        )
    x = np.vstack(blocks)
    y = np.concatenate(labels)
    w = fit_signs_constrained(x, y)
    # each episode's highest log-odds as the alert judges it: flagged iff that reaches the line
    judged = x @ w - np.where(np.array(strict), math.log(missed_odds_factor), 0.0)
    peak = np.full(len(episodes), -np.inf)
    np.maximum.at(peak, np.array(owners), judged)
    share = allowed_share(budget_per_clinician_week, new_episodes_per_clinician_week)
    line = _line_for_share(peak[np.isfinite(peak)], share)
    flagged = peak >= line
    is_dropout = np.array([e.dropout for e in episodes])
    return DropoutModel(
        weights=tuple(float(v) for v in w),
        line=_sigmoid(line),
        episodes=len(episodes),
        dropouts=dropouts,
        flagged_share=float(flagged.mean()),
        training_sensitivity=float(flagged[is_dropout].mean()),
        budget_per_clinician_week=budget_per_clinician_week,
        item_concern=item_concern,
        reliable_change=reliable_change,
        srs_concern_total=srs_concern_total,
        missed_odds_factor=missed_odds_factor,
    )


def _line_for_share(peaks: np.ndarray, share: float) -> float:
    """The lowest log-odds line flagging at most ``share`` of the episodes (by their peak).

    Tied peaks are flagged together or not at all, so with ties the share flagged can fall
    below ``share`` (never above: it is a budget)."""
    ordered = np.sort(peaks)[::-1]
    k = math.floor(share * len(ordered))
    if k >= len(ordered):
        return float(ordered[-1])
    first_unflagged = ordered[k]
    above = ordered[ordered > first_unflagged]
    if not len(above):
        return float(first_unflagged) + 1e-9
    return float((above.min() + first_unflagged) / 2.0)
