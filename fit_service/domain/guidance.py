"""Repair guidance for dropout-risk findings, tailored to the client's goal sheet.

The advice is the repair practice summarised in ``shared/domain.md`` §1: own your part of the
problem, reflect the client's core concern, ask an open question; re-agree goals and tasks with a
*goal sheet* (the client's own goal and the steps they believe in); and fit the wording to what
the client expects from therapy (concrete steps, to be heard, or unsure - then getting clear is
the first goal). An alert that names *which* leg is weak is one a clinician can act on.

Copyright: the item wording of ORS, SRS and WAI is never reproduced here (domain.md §2). Text
refers to measures and legs by neutral names only ("the session rating", "the goals leg").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from fit_service.domain.trajectory import RATIONAL_LABEL


class Expectation(StrEnum):
    """What the client says they want from therapy (domain.md §1)."""

    CONCRETE_STEPS = "concrete_steps"
    TO_BE_HEARD = "to_be_heard"
    UNSURE = "unsure"


@dataclass(frozen=True, slots=True)
class GoalSheet:
    """The client's own goal and the steps they believe in (domain.md §1, "goal sheet")."""

    client_goal: str
    agreed_steps: tuple[str, ...] = ()
    expectation: Expectation = Expectation.UNSURE


# Leg-specific repair: domain.md §1. Keys are the values of ``risk.Concern``.
_LEG_REPAIR: Mapping[str, str] = {
    "bond": (
        "Repair the bond: own your part of the problem (for example, say you may have missed "
        "something that matters to them), reflect their core concern back in their own words, "
        "and ask an open question about what would make the next session more useful."
    ),
    "goal": (
        "Re-agree the goals: ask what they want to be different because of coming here, and "
        "check that the goal you are working on is still theirs."
    ),
    "task": (
        "Re-agree the tasks: ask how the way you work together fits them, offer alternatives, "
        "and agree next steps they believe in."
    ),
    "global_alliance": (
        "Ask openly how the session went for them, own your part of anything that did not fit, "
        "and check that you still agree on goals and on the way of working."
    ),
    "outcome": (
        "Talk about progress openly: share the graph, ask what they make of it and what would "
        "need to change; consider consultation, a different approach, format or frequency."
    ),
    "attendance": (
        "Reach out before the next appointment: ask how they are and whether the timing and "
        "the way of working still suit them; a short call often keeps a client who is drifting."
    ),
}

# Kind-specific opening sentence; ``{...}`` fields come from the finding's evidence.
_KIND_LEAD: Mapping[str, str] = {
    "early_low_alliance": (
        "The session rating is below the concern line early in therapy; early alliance predicts "
        "dropout (domain.md §1, Sharf et al. 2010)."
    ),
    "low_alliance": "The session rating is below the concern line.",
    "low_srs_bond": "The session rating is low on the relationship (bond) leg.",
    "low_srs_goal": "The session rating is low on the goals (goal) leg.",
    "low_srs_task": "The session rating is low on the approach (task) leg.",
    "low_srs_global": "The session rating is low on the overall check.",
    "srs_decline": "The session rating fell from the previous session.",
    "weak_wai_bond": "The WAI-SR bond subscale is weak or falling.",
    "weak_wai_goal": "The WAI-SR goal subscale is weak or falling.",
    "weak_wai_task": "The WAI-SR task subscale is weak or falling.",
    "ors_reliable_deterioration": (
        "The outcome score is reliably worse than at intake: check safety and what has changed."
    ),
    "not_on_track": "The outcome score is below the expected-response band ({model}).",
    "no_reliable_improvement": (
        "No reliable improvement by session {checkpoint} (PCOMS practice guidance, a guideline "
        "not a rule): {checkpoint_advice}."
    ),
    "agreement_without_engagement": (
        "Ratings at the ceiling while the outcome does not move can be agreement without "
        "engagement, a withdrawal rupture (domain.md §1): invite criticism explicitly and say "
        "that lower ratings are welcome and useful."
    ),
    "missed_session": "The client missed an appointment ({attendance}).",
    "long_gap": "It is {days} days since the last session.",
    "srs_not_completed": (
        "The session rating was skipped; missing ratings are a dropout signal (domain.md §6)."
    ),
    "dropout_risk": (
        "Estimated dropout risk {percent}, at or above this clinic's alert line of {line} "
        "(its own closed episodes, domain.md §6 signals); what drives it: {signals}."
    ),
}

#: Leg names as the session rating's items show them (domain.md §2 mapping), for sentences that
#: name a weak leg.
_LEG_NAMES: Mapping[str, str] = {
    "bond": "relationship (bond)",
    "goal": "goals (goal)",
    "task": "approach (task)",
}


def _missed_session_context(facts: Mapping[str, object]) -> list[str]:
    """What a missed appointment follows, when the rule knows (domain.md §6: no-shows after a
    low SRS, and repeated misses, are the stronger dropout signals)."""
    parts: list[str] = []
    count = facts.get("consecutive_missed")
    if count == 2:
        parts.append("It is the second missed appointment in a row, with no session between.")
    elif isinstance(count, int) and count > 2:
        parts.append(f"That makes {count} missed appointments in a row, with no session between.")
    if facts.get("after_low_alliance"):
        leg = _LEG_NAMES.get(str(facts.get("weak_leg")))
        where = f", weakest on the {leg} leg" if leg else ""
        parts.append(
            f"It came right after a low session rating{where}: reach out about the last "
            "session - say you noticed it did not go well for them, own your part, and ask "
            "what would need to be different for coming back to feel worth it."
        )
    return parts


#: An SRS decline carried by one leg (``risk.srs_decline`` names it only when that leg's item fell
#: clearly more than the others', domain.md §2 mapping): the opening sentence says which.
_DECLINE_BY_LEG: Mapping[str, str] = {
    "bond": (
        "The session rating fell from the previous session, most on the relationship (bond) item."
    ),
    "goal": "The session rating fell from the previous session, most on the goals (goal) item.",
    "task": (
        "The session rating fell from the previous session, most on the approach (task) item."
    ),
}

#: The rational rules have no expected path: off track is a score reliably worse than at intake,
#: or no reliable improvement by the change checkpoint from a clinical intake - with the score
#: still inside the reliable-change band, so "below the band" would contradict the evidence.
_RATIONAL_NOT_ON_TRACK = (
    "The outcome is not on track by the rational rules ({model}): reliably worse than at "
    "intake, or no reliable improvement by the change-approach checkpoint from an intake in "
    "the clinical range."
)

#: The sentence for a finding carried in another's alert (the same finding stated by two rules,
#: :func:`fit_service.domain.risk.fold_restatements`): it follows the carrier's opening sentence,
#: so it says what the other rule adds, not the finding again.
_ALSO_LEAD: Mapping[str, str] = {
    "not_on_track": "By the rational rules ({model}) the outcome is therefore also not on track.",
    "no_reliable_improvement": (
        "So there is no reliable improvement by session {checkpoint} either (PCOMS practice "
        "guidance, a guideline not a rule): {checkpoint_advice}."
    ),
}

_EXPECTATION_TAILORING: Mapping[Expectation, str] = {
    Expectation.TO_BE_HEARD: (
        "They said they mainly want to be heard and to work through feelings: make room for "
        "that before proposing steps, since more structure can feel like not being listened to."
    ),
    Expectation.CONCRETE_STEPS: (
        "They said they want concrete steps: check that sessions end with a step they can try "
        "before next time and believe in."
    ),
    Expectation.UNSURE: (
        "They were unsure what they want from therapy: getting clear on that together is the "
        "first goal."
    ),
}

_NO_GOAL_SHEET = (
    "No goal sheet is on file: writing one together (their own goal and the steps they believe "
    "in) is a concrete way to re-agree."
)

# Legs where the goal sheet is the repair tool itself (domain.md §1: re-agree goals and tasks).
_GOAL_SHEET_LEGS = frozenset({"goal", "task", "global_alliance", "outcome"})


def checkpoint_advice(checkpoint: int, change_checkpoint: int, functional: bool = False) -> str:
    """The PCOMS practice label for a no-change checkpoint (domain.md §3: 3 discuss, 6 change).

    ``functional``: the intake was outside the clinical range (above the cut-off, or on it when
    the clinic does not count the cut-off as clinical), where little change is expected
    (domain.md §4/§5; the rational trajectory calls such a client on track), so the advice is to
    keep an eye on it, not to change the approach.
    """
    if functional:
        return (
            "the intake was outside the clinical range, where little change is expected; "
            "check with the client that the work still fits their goal"
        )
    if checkpoint >= change_checkpoint:
        return "consider changing the approach"
    return "discuss progress with the client"


def guidance_before_first_session(attendance: str, missed: int) -> str:
    """Guidance for missed appointments before a first attended session.

    Therapy has not started, so there is no alliance leg to repair and no way of working to
    review (domain.md §1 is about an alliance that exists); what helps is making the start
    possible. ``attendance`` is the latest miss (``no-show`` or ``cancelled``).
    """
    count = "1 appointment" if missed == 1 else f"{missed} appointments in a row"
    return (
        f"The client has not attended a first session yet: {count} missed, the latest "
        f"{attendance}. Reach out before the next appointment: ask whether the time and the "
        "practical arrangements work for them and whether they still want to start, and offer "
        "a first appointment that fits; a short call often decides whether therapy begins."
    )


def guidance_for(
    kind: str,
    leg: str,
    goal_sheet: GoalSheet | None = None,
    facts: Mapping[str, object] | None = None,
    also: Sequence[tuple[str, Mapping[str, object]]] = (),
) -> str:
    """Guidance text for one finding: what it means, how to repair the leg, tailored.

    ``facts`` fills the ``{...}`` fields of the kind's opening sentence (model name, checkpoint,
    days); unknown kinds get only the leg advice. ``also`` names the findings this one's alert
    carries (kind and facts each): their sentences follow the opening one.
    """
    parts: list[str] = []
    lead = _KIND_LEAD.get(kind)
    if kind == "not_on_track" and (facts or {}).get("model") == RATIONAL_LABEL:
        lead = _RATIONAL_NOT_ON_TRACK
    if kind == "srs_decline":
        lead = _DECLINE_BY_LEG.get(leg, lead)
    if lead is not None:
        parts.append(lead.format_map(dict(facts or {})))
    if kind == "missed_session":
        parts.extend(_missed_session_context(facts or {}))
    if kind == "srs_not_completed" and (facts or {}).get("after_low_alliance"):
        total = (facts or {}).get("previous_srs_total")
        line = (facts or {}).get("concern_line")
        # the total only when it was the low part (an item below its line can be the reason)
        low_total = (
            isinstance(total, int | float) and isinstance(line, int | float) and total < line
        )
        parts.append(
            f"It was skipped straight after a low session rating ({total:g} last time), "
            "which can be a quiet withdrawal: ask openly how the last sessions have been for them."
            if low_total
            else "It was skipped straight after a low session rating, which can be a quiet "
            "withdrawal: ask openly how the last sessions have been for them."
        )
    for other, other_facts in also:
        sentence = _ALSO_LEAD.get(other, _KIND_LEAD.get(other))
        try:
            if sentence is not None:
                parts.append(sentence.format_map(dict(other_facts)))
        except KeyError:  # a finding built without its facts: its evidence still carries them
            continue
    parts.append(_LEG_REPAIR[leg])
    if goal_sheet is not None:
        parts.append(_EXPECTATION_TAILORING[goal_sheet.expectation])
        if leg in _GOAL_SHEET_LEGS:
            parts.append(f'Their own goal on the goal sheet: "{goal_sheet.client_goal}".')
            if goal_sheet.agreed_steps:
                parts.append("Agreed steps: " + "; ".join(goal_sheet.agreed_steps) + ".")
    elif leg in _GOAL_SHEET_LEGS:
        parts.append(_NO_GOAL_SHEET)
    return " ".join(parts)
