"""Printed with every report: the literature benchmarks beside the headline figures and the
methods appendix's notes, each with its source (domain.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from fit_service.domain.monthly_report.settings import ReportSettings
from fit_service.domain.monthly_report.values import DASH


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A literature reference number printed beside a headline figure, always with its source."""

    metric_key: str
    text: str  # the figure as published, e.g. "19.7% (95% CI 18.7-20.7)"
    source: str  # who published it (domain.md §4)
    note: str = ""
    low: float | None = None  # machine-readable range, same unit as the metric's value
    high: float | None = None


#: Reference numbers from domain.md §4 ("always print the source").
LITERATURE_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        metric_key="sessions_per_episode_mean",
        text="< 5 in routine care; about 12.7 in trials",
        source="Hansen, Lambert & Forman 2002",
        note=f"Half of clients need 13{DASH}18 sessions to improve.",
        low=None,
        high=5.0,
    ),
    Benchmark(
        metric_key="reliable_improvement",
        text=f"about 20% in routine care; 57.6{DASH}67.2% in trials",
        source="Hansen, Lambert & Forman 2002",
        note="Range: from routine care (about 20%) to the trials' upper end; measured with "
        "the OQ-45 and its own reliable-change index.",
        low=0.20,
        high=0.672,
    ),
    Benchmark(
        metric_key="reliable_deterioration",
        text=f"about 5{DASH}10% of clients",
        # domain.md §4 gives the range without a source; this is where it is usually cited
        # from (a board reading the report cannot look up our reference file).
        source="Lambert 2013 (Bergin & Garfield's Handbook, 6th ed.)",
        low=0.05,
        high=0.10,
    ),
    Benchmark(
        metric_key="pre_post_d",
        text="0.2 small, 0.5 medium, 0.8 large",
        source="Cohen 1988 (conventions)",
        note="Reading guide for differences between groups, not a target: a pre-post d "
        "without a control group runs larger.",
        low=0.2,
        high=0.8,
    ),
    Benchmark(
        metric_key="severity_adjusted_es",
        text="≥ 0.8 large; < 0.3 small",
        source="Seidel, Miller & Chow 2014",
        low=0.3,
        high=0.8,
    ),
    Benchmark(
        metric_key="dropout_rate",
        text=f"19.7% (95% CI 18.7{DASH}20.7)",
        source="Swift & Greenberg 2012 (669 studies, 83,834 clients)",
        note="The interval is that of the mean over 669 studies, mostly trials, with several "
        "definitions of dropout; clinics vary far more. 46.9% in Wierzbicki & Pekarik 1993 "
        "(older, wider definitions).",
        low=0.187,
        high=0.207,
    ),
)


@dataclass(frozen=True, slots=True)
class MethodNote:
    """One entry of the methods appendix: a definition, threshold or formula and its source."""

    term: str
    definition: str
    source: str


def method_notes(settings: ReportSettings) -> tuple[MethodNote, ...]:
    """Every definition, threshold and formula the figures rest on, filled from ``settings``.

    Lives in the domain (not the PDF renderer) so the JSON export states the same methods.
    """
    s = settings
    equal = "counts as clinical" if s.cutoff_is_clinical else "counts as functional"
    return (
        MethodNote(
            "Small numbers",
            f"A percentage or mean resting on fewer than {s.min_n} observations is shown as "
            f"'too few (n=…)' instead of a number; its numerator is withheld too. Counts of "
            f"episodes, sessions and alerts are always shown.",
            "Clinic setting (default 10)",
        ),
        MethodNote(
            "Confidence intervals for percentages",
            "Wilson score interval, 95%: (p + z²/2n ± z·√(p(1 - p)/n + z²/4n²)) / (1 + z²/n), "
            "z = 1.96. Every percentage is printed with its n.",
            "Wilson 1927",
        ),
        MethodNote(
            "Intervals of rates over sessions",
            "No-show, cancellation, completeness and low-SRS rates count sessions (n = "
            "sessions), but one client's sessions are alike, so each client's sessions are "
            "taken as one cluster (in a clinician's figures, the sessions of the client that "
            "clinician held). The rate p = Σy/Σm over the C clients (y, m: a client's "
            "counted and eligible sessions) has the variance V = C/(C - 1) · Σ(y - p·m)² / n²; "
            "the effective n is p(1 - p)/V, at most n (never narrower than counting sessions "
            "as independent), and n when V is 0 (a rate of 0% or 100%, or every client at the "
            "same rate: a design effect of 1). As V is estimated from C clients, not n "
            "sessions, the effective n is then multiplied by (t(n - 1)/t(C - 1))², with the "
            "0.975 quantiles of Student's t, and the Wilson interval is computed on the "
            "result: a rate from a handful of clients gets a wide interval. All the sessions "
            "from one client count as one observation, corrected as two clients' would be. n "
            "is printed as the number of sessions; the JSON export also gives the number of "
            "clients and the effective n.",
            "Ratio estimator variance: Cochran 1977, ch. 6; design effect: Kish 1965; effective "
            "n and its degrees-of-freedom correction: Korn & Graubard 1998 (Clopper-Pearson "
            "there, Wilson here); design effect 1 at 0% and 100%: NCHS presentation standards "
            "for proportions (Parker et al. 2017)",
        ),
        MethodNote(
            "Confidence intervals for means",
            "Mean ± t(0.975, n - 1) · SD / √n. Medians are printed with their n only.",
            "Student t; Abramowitz & Stegun 1964",
        ),
        MethodNote(
            "Episodes and sessions",
            "Dates are the clinic's own (its time zone). Active: open at any time in the "
            "window. Opened and closed: by the episode's opening and closing date. Sessions "
            "delivered: attended sessions dated in the window. No-show and cancellation "
            "rates: of scheduled sessions (attended + no-show + cancelled). Sessions per "
            "closed episode (attended sessions) and days in treatment (opening to last "
            "attended session): episodes closed in the window with at least one attended "
            "session. Mean intake ORS and SRS: each episode's first ORS/CORS and first "
            "SRS/CSRS total on record (normally from its first attended session), over "
            "episodes opened in the window.",
            "ICCE report indices (International Center for Clinical Excellence)",
        ),
        MethodNote(
            "Clinical cut-off",
            f"ORS total below {s.ors_cutoff_adult:g} (adults 18+), below "
            f"{s.ors_cutoff_adolescent:g} (adolescents 13 to 17), CORS below {s.cors_cutoff:g} "
            f"(children 6 to 12) is the clinical range; a score equal to the cut-off {equal}. "
            "The published values follow Jacobson & Truax's cut-off "
            "c = (SD_clin·M_func + SD_func·M_clin)/(SD_clin + SD_func); they are not "
            "recomputed from the clinic's data.",
            "PCOMS manuals and norms; Duncan et al. 2006; Jacobson & Truax 1991",
        ),
        MethodNote(
            "Reliable change",
            f"A change of {s.reliable_change:g} ORS (or CORS) points or more between the first "
            "and last "
            "score of an episode (the fixed PCOMS threshold, used instead of the RCI "
            "(x2 - x1)/S_diff, S_diff = √2·s1·√(1 - r), |RCI| > 1.96).",
            "PCOMS manuals; Jacobson & Truax 1991",
        ),
        MethodNote(
            "Outcome categories",
            "Closed episodes with at least two ORS/CORS totals (the measure normed for the "
            "client's age band), the episode's first score vs its latest (Jacobson & Truax "
            "1991; when no score was given at session 1 the first one given is the baseline); "
            "each against its age band's cut-off. Recovered: "
            "reliable improvement and moved from the clinical to the functional side of the "
            "cut-off. Improved: reliable improvement otherwise. Unchanged. Deteriorated: "
            "reliable worsening. Harmed: reliable worsening that crosses into the clinical "
            "range, which only an episode that started in the functional range can do. "
            "Recovered, improved, unchanged and deteriorated are percentages of "
            "clinical-range intakes; episodes that started in the functional range cannot "
            "recover and are reported apart, with the shares of them reliably worse and "
            "harmed. 'Reliably worse (all intakes)' and 'Last ORS above the cut-off' count "
            "both groups.",
            "Jacobson & Truax 1991; R package clinicalsignificance",
        ),
        MethodNote(
            "Pre-post effect size",
            "d = mean(last - first ORS) / SD(first ORS); 95% CI d ± 1.96·√(2(1 - r)/n + d²/2n), "
            "r the first-last correlation.",
            "Becker 1988; Morris & DeShon 2002",
        ),
        MethodNote(
            "Severity-adjusted effect size",
            "Clinical-range intakes only. Last ORS regressed on first ORS in the reference "
            f"sample ({s.severity_reference}); the group's mean residual is added to the "
            "reference mean change and divided by the reference intake SD. The whole clinic "
            "over the trailing 12 months is its own reference sample: its figure is the "
            "pre-post d of its clinical-range intakes, with that d's interval (Becker 1988). "
            "Every other group (clinicians, age bands, the month): 95% CI "
            "± 1.96·SD(residuals)/(√n·reference intake SD), the reference held fixed, which "
            "leaves out the reference's own sampling error (small while the reference holds "
            "many more episodes than the group). ≥ 0.8 is read as large, < 0.3 as small. It "
            "compares clinicians and age bands with different intake severity fairly.",
            "Seidel, Miller & Chow 2014",
        ),
        MethodNote(
            "Dropout",
            f"Clinic definition: {s.dropout_definition} Endings are coded planned/mutual, "
            "unilateral or other; unilateral endings are split by whether the last ORS was "
            "above or below the cut-off. Rate: of episodes closed in the window.",
            "Clinic setting; Swift & Greenberg 2012",
        ),
        MethodNote(
            "Alliance",
            f"SRS/CSRS total below {s.srs_concern:g} is a concern (share of attended sessions "
            "with an SRS). Alerts: raised, acknowledged and resolved (by a clinician; "
            "alerts the system closed itself are not counted) in the window; time to "
            "acknowledge is the median in hours over alerts acknowledged in the window. "
            "Flagged episodes attending a month after the first alert: episodes whose first "
            f"alert plus {s.follow_up_days} days falls in the window (so the follow-up can be "
            "seen), and of those the ones with an attended session on or after that day. Its "
            "n counts episodes, not the alerts raised in the window.",
            "PCOMS; OpenFIT",
        ),
        MethodNote(
            "Data completeness",
            "Share of attended sessions with an ORS/CORS total, with an SRS/CSRS total. A "
            "measure marked 'not completed' is missing, never zero.",
            "fit-service definition",
        ),
        MethodNote(
            "Benchmarks",
            "Beside each headline figure: the same figure over the trailing 12 months (the "
            "clinic's own benchmark) and, where published, a literature reference with its "
            "source. References come from studies with other definitions and populations: "
            "read them as context, not targets.",
            "Sources as printed beside each reference",
        ),
        MethodNote(
            "Privacy",
            "Aggregates only: no client identifiers and no questionnaire item text (ORS/SRS "
            "wording is copyrighted). Clinicians appear under their pseudonymous EHR label.",
            "fit-service policy",
        ),
    )
