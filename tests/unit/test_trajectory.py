"""Expected treatment response and the rational fallback (fit_service.domain.trajectory)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fit_service.domain.change import ChangeCriteria
from fit_service.domain.instruments import ORS, AgeBand, Direction
from fit_service.domain.trajectory import (
    MIN_BUCKET_RESIDUALS,
    MIN_EPISODES,
    RATIONAL_LABEL,
    ClinicEtr,
    EtrSample,
    Guidance,
    InsufficientData,
    RationalTrajectory,
    ResidualBand,
    fit_clinic_etr,
    ordinal_suffix,
    percentile_phrase,
    select_trajectory_model,
    shown_band,
)

HIGHER = Direction.HIGHER_IS_BETTER
ORS_ADULT = ChangeCriteria.for_instrument(ORS, AgeBand.ADULT)
# A plausible ORS curve: intake 15 gains ~8 points by session 8, intake 30 ~2 points.
CURVE = (2.0, 0.9, 5.0, -0.12)
Z_10 = -1.2815515655446004  # 10th percentile of the standard normal


def _simulate(
    n_episodes: int,
    coefficients: tuple[float, float, float, float],
    seed: int,
    noise: Callable[[np.ndarray], np.ndarray] | float = 2.0,
    sessions: tuple[int, int] = (3, 12),
) -> EtrSample:
    """Episodes with intake U(5, 35), 3-12 sessions, scores = curve + normal noise."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(sessions[0], sessions[1] + 1, size=n_episodes)
    episode = np.repeat(np.arange(n_episodes), counts)
    session = np.concatenate([np.arange(1, c + 1) for c in counts])
    intake = np.repeat(rng.uniform(5, 35, n_episodes), counts)
    b0, b1, b2, b3 = coefficients
    log_k = np.log(session)
    sd = noise(session) if callable(noise) else np.full(session.size, noise)
    score = b0 + b1 * intake + (b2 + b3 * intake) * log_k + rng.normal(0, 1, session.size) * sd
    score = np.where(session == 1, intake, score)
    return EtrSample.from_arrays(episode, session, score)


def _curve(coefficients: tuple[float, float, float, float], intake: float, k: int) -> float:
    b0, b1, b2, b3 = coefficients
    return b0 + b1 * intake + (b2 + b3 * intake) * math.log(k)


@pytest.fixture(scope="module")
def etr() -> ClinicEtr:
    return fit_clinic_etr(_simulate(2000, CURVE, seed=11), HIGHER, bounds=(0.0, 40.0))


# --------------------------------------------------------------------------- fitting


@settings(max_examples=15, deadline=None)
@given(
    b0=st.floats(-5, 5),
    b1=st.floats(0.6, 1.0),
    b2=st.floats(0, 8),
    b3=st.floats(-0.2, 0),
    seed=st.integers(0, 2**32 - 1),
)
def test_fit_recovers_the_curve_it_was_simulated_from(
    b0: float, b1: float, b2: float, b3: float, seed: int
) -> None:
    """From 600 simulated episodes (noise SD 2) the fitted curve is within 0.5 points of the
    true one everywhere, and the 10th-percentile band within 0.6 of -1.28 SD (>= 4 SE)."""
    truth = (b0, b1, b2, b3)
    model = fit_clinic_etr(_simulate(600, truth, seed), HIGHER)
    for intake in (8.0, 20.0, 32.0):
        for k in (2, 4, 8, 12):
            assert model.expected(intake, k) == pytest.approx(_curve(truth, intake, k), abs=0.5)
    assert model.band_for(2).at(10) == pytest.approx(2.0 * Z_10, abs=0.6)


def test_bands_widen_where_residuals_spread() -> None:
    """Session bands are estimated separately: noise growing with k widens later bands."""
    model = fit_clinic_etr(_simulate(3000, CURVE, seed=5, noise=lambda k: 1.0 + 0.5 * k), HIGHER)
    early, late = model.band_for(2), model.band_for(10)
    assert not early.pooled
    assert not late.pooled
    # noise SD 2 at k = 2 and 6 at k = 10: 10th-90th widths of about 5.1 and 15.4 points
    assert early.at(90) - early.at(10) == pytest.approx(2 * 2.0 * -Z_10, rel=0.15)
    assert late.at(90) - late.at(10) == pytest.approx(2 * 6.0 * -Z_10, rel=0.15)


def test_sparse_session_bands_fall_back_to_pooled_residuals() -> None:
    """A session band with fewer than MIN_BUCKET_RESIDUALS residuals uses all of them."""
    # 74 episodes give 74 residuals at session 2 (< 100): every band is the pooled one
    model = fit_clinic_etr(_simulate(MIN_EPISODES, CURVE, seed=2, sessions=(3, 5)), HIGHER)
    assert MIN_EPISODES < MIN_BUCKET_RESIDUALS
    assert all(band.pooled and band.n == model.n_scores for band in model.bands)
    rich = fit_clinic_etr(_simulate(400, CURVE, seed=2, sessions=(3, 5)), HIGHER)
    assert not rich.band_for(2).pooled
    assert rich.band_for(2).n == 400
    assert rich.band_for(13).pooled


def test_fit_refuses_below_the_minimum_sample() -> None:
    """One qualifying episode short of MIN_EPISODES (Green 1991: 50 + 8·3) is refused."""
    with pytest.raises(InsufficientData, match=str(MIN_EPISODES)):
        fit_clinic_etr(_simulate(MIN_EPISODES - 1, CURVE, seed=1), HIGHER)
    assert fit_clinic_etr(_simulate(MIN_EPISODES, CURVE, seed=1), HIGHER).n_episodes == MIN_EPISODES


def test_only_qualifying_episodes_count() -> None:
    """Episodes with fewer than 3 scores, or without a session-1 intake, are not used."""
    base = _simulate(MIN_EPISODES, CURVE, seed=1)
    short = [[(1, 20.0), (2, 22.0)]] * 30  # too few sessions
    no_intake = [[(2, 20.0), (3, 22.0), (4, 25.0)]] * 30  # intake missing
    sample = EtrSample.from_episodes(
        [
            *_episodes_of(base),
            *short,
            *no_intake,
        ]
    )
    assert fit_clinic_etr(sample, HIGHER).n_episodes == MIN_EPISODES


def _episodes_of(sample: EtrSample) -> list[list[tuple[int, float | None]]]:
    episodes: dict[int, list[tuple[int, float | None]]] = {}
    for e, k, y in zip(
        sample.episode.tolist(), sample.session.tolist(), sample.score.tolist(), strict=True
    ):
        episodes.setdefault(e, []).append((k, y))
    return list(episodes.values())


def test_missing_ratings_do_not_count_as_scores() -> None:
    """A not-completed rating (None) is skipped; it neither scores 0 nor counts a session."""
    sample = EtrSample.from_episodes([[(1, 20.0), (2, None), (3, 25.0)]])
    assert sample.score.size == 3
    with pytest.raises(InsufficientData, match=r"^0 closed episodes"):
        fit_clinic_etr(sample, HIGHER)


def test_row_order_does_not_change_the_fit() -> None:
    """Shuffled rows give the same model as rows grouped by episode and session."""
    sample = _simulate(300, CURVE, seed=9)
    order = np.random.default_rng(0).permutation(sample.score.size)
    shuffled = EtrSample(sample.episode[order], sample.session[order], sample.score[order])
    assert fit_clinic_etr(shuffled, HIGHER).coefficients == pytest.approx(
        fit_clinic_etr(sample, HIGHER).coefficients
    )


def test_duplicate_session_numbers_are_rejected() -> None:
    """Two scores for one session of one episode is a data error, not something to average."""
    sample = EtrSample.from_arrays([0, 0, 0], [1, 2, 2], [20.0, 22.0, 23.0])
    with pytest.raises(ValueError, match="same session"):
        fit_clinic_etr(sample, HIGHER)


# --------------------------------------------------------------------------- assessing a client


def test_assess_on_track_near_the_expected_score(etr: ClinicEtr) -> None:
    """A score at the expected value sits near the 50th percentile and is on track."""
    expected = _curve(CURVE, 15.0, 4)
    result = etr.assess(15.0, 4, expected)
    assert result.expected == pytest.approx(expected, abs=0.3)
    assert result.percentile == pytest.approx(50, abs=5)
    assert result.on_track
    assert result.band_low < expected < result.band_high
    assert result.model == f"etr:clinic-regression v1 (n={etr.n_episodes})"


def test_assess_off_track_below_the_band(etr: ClinicEtr) -> None:
    """Four noise SDs below the expected score is below the 10th percentile: off track."""
    result = etr.assess(15.0, 4, _curve(CURVE, 15.0, 4) - 8.0)
    assert not result.on_track
    assert result.percentile is not None
    assert result.percentile < 10
    assert result.score < result.band_low


def test_assess_at_intake_has_nothing_to_compare(etr: ClinicEtr) -> None:
    """Session 1 is the baseline itself: on track by definition, no percentile."""
    result = etr.assess(15.0, 1, 15.0)
    assert result.on_track
    assert result.expected == 15.0
    assert result.percentile is None


def test_assess_rejects_impossible_input(etr: ClinicEtr) -> None:
    """Session numbers start at 1 and scores must be numbers."""
    with pytest.raises(ValueError, match="start at 1"):
        etr.assess(15.0, 0, 15.0)
    with pytest.raises(ValueError, match="finite"):
        etr.assess(15.0, 3, math.nan)


def test_lower_is_better_scale_is_off_track_above_the_band() -> None:
    """On a lower-is-better scale (negated scores) a score far above expectation is off track."""
    sample = _simulate(1000, CURVE, seed=4)
    mirrored = EtrSample(sample.episode, sample.session, -sample.score)
    model = fit_clinic_etr(mirrored, Direction.LOWER_IS_BETTER)
    expected = -_curve(CURVE, 15.0, 4)
    assert not model.assess(-15.0, 4, expected + 8.0).on_track
    assert model.assess(-15.0, 4, expected - 8.0).on_track


def test_path_is_ready_to_draw(etr: ClinicEtr) -> None:
    """Sessions 1..K start at the intake, bands nest around the line, all within 0-40."""
    path = etr.path(15.0, 10)
    assert path.sessions == tuple(range(1, 11))
    assert path.expected is not None
    assert path.inner_low is not None
    assert path.inner_high is not None
    assert path.expected[0] == path.low[0] == path.high[0] == 15.0
    for k in range(1, 10):
        assert path.low[k] <= path.inner_low[k] <= path.expected[k] <= path.inner_high[k]
        assert path.inner_high[k] <= path.high[k] <= 40.0
    assert path.expected[9] == pytest.approx(_curve(CURVE, 15.0, 10), abs=0.3)


def test_path_is_clipped_to_the_scale() -> None:
    """Bands of a high intake never run past the ORS maximum of 40."""
    model = fit_clinic_etr(_simulate(500, CURVE, seed=8), HIGHER, bounds=(0.0, 40.0))
    assert max(model.path(39.0, 12).high) <= 40.0


# --------------------------------------------------------------------------- rational rules


@pytest.mark.parametrize(
    ("intake", "session", "score", "on_track", "guidance"),
    [
        (20.0, 2, 14.0, False, None),  # reliably worse (-6 >= 5)
        (20.0, 2, 22.0, True, None),  # too early for guidance
        (20.0, 3, 22.0, True, Guidance.DISCUSS),  # no reliable improvement by session 3
        (20.0, 5, 24.0, True, Guidance.DISCUSS),
        (20.0, 6, 22.0, False, Guidance.CHANGE_APPROACH),  # ... nor by session 6
        (20.0, 6, 25.0, True, None),  # +5: reliable improvement
        (30.0, 6, 30.0, True, None),  # functional at intake: change not expected
        (30.0, 3, 24.0, False, None),  # functional at intake, reliably worse
    ],
)
def test_rational_rules(
    intake: float, session: int, score: float, on_track: bool, guidance: Guidance | None
) -> None:
    """Cut-off and reliable change, with PCOMS session 3/6 guidance (domain.md §3)."""
    result = RationalTrajectory(ORS_ADULT).assess(intake, session, score)
    assert result.on_track is on_track
    assert result.guidance is guidance
    assert result.model == RATIONAL_LABEL
    assert result.expected is None
    assert (result.band_low, result.band_high) == (intake - 5.0, intake + 5.0)


def test_rational_path_is_the_reliable_change_window() -> None:
    """The rational model draws no expected line, only the ±RC window after the intake."""
    path = RationalTrajectory(ORS_ADULT).path(20.0, 4)
    assert path.expected is None
    assert path.low == (20.0, 15.0, 15.0, 15.0)
    assert path.high == (20.0, 25.0, 25.0, 25.0)


def test_model_selection_falls_back_to_rational_rules() -> None:
    """Too few closed episodes -> rational rules; enough -> the clinic's own ETR."""
    small = select_trajectory_model(_simulate(10, CURVE, seed=1), ORS_ADULT)
    large = select_trajectory_model(_simulate(MIN_EPISODES, CURVE, seed=1), ORS_ADULT)
    assert isinstance(small, RationalTrajectory)
    assert small.label == RATIONAL_LABEL
    assert isinstance(large, ClinicEtr)
    assert large.label.startswith("etr:clinic-regression v1")


def test_minimum_sample_cannot_be_lowered() -> None:
    """A clinic may demand more episodes, never fewer than the documented floor."""
    with pytest.raises(ValueError, match="Green"):
        fit_clinic_etr(_simulate(200, CURVE, seed=1), HIGHER, min_episodes=10)


def test_residual_percentiles_follow_numpy_linear_definition() -> None:
    """The one-sort percentile table equals numpy.percentile at 0, 1, ..., 100."""
    residuals = np.random.default_rng(1).normal(0, 3, 1001)
    band = ResidualBand.of(residuals, 2, 2, pooled=False)
    assert band.quantiles == pytest.approx(np.percentile(residuals, np.arange(101)))
    assert band.at(10) == pytest.approx(np.percentile(residuals, 10))
    assert band.percentile_of(float(np.percentile(residuals, 37))) == pytest.approx(37)


def test_off_track_line_is_a_clinic_setting() -> None:
    """A score at about the 20th percentile is on track at the default 10, off track at 25."""
    sample = _simulate(1000, CURVE, seed=6)
    default = fit_clinic_etr(sample, HIGHER)
    strict = fit_clinic_etr(sample, HIGHER, off_track_percentile=25.0)
    score = default.expected(15.0, 4) + default.band_for(4).at(20)
    assert default.assess(15.0, 4, score).on_track
    assert not strict.assess(15.0, 4, score).on_track
    with pytest.raises(ValueError, match="between 0 and 50"):
        fit_clinic_etr(sample, HIGHER, off_track_percentile=60.0)


def test_rational_checkpoints_are_the_clinics() -> None:
    """With the clinic's checkpoints at 4 and 8, no reliable improvement at session 6 is still
    on track ("discuss", said of session 4) and off track only from session 8 (domain.md §3:
    every threshold a per-clinic setting); the defaults stay 3 and 6."""
    model = RationalTrajectory(ORS_ADULT, discuss_checkpoint=4, change_checkpoint=8)
    at3, at6, at8 = (model.assess(18.0, k, 19.0) for k in (3, 6, 8))
    assert (at3.on_track, at3.guidance) == (True, None)
    assert (at6.on_track, at6.guidance) == (True, Guidance.DISCUSS)
    assert "session 4" in at6.reason
    assert (at8.on_track, at8.guidance) == (False, Guidance.CHANGE_APPROACH)
    assert "session 8" in at8.reason
    default = RationalTrajectory(ORS_ADULT).assess(18.0, 6, 19.0)
    assert (default.on_track, default.guidance) == (False, Guidance.CHANGE_APPROACH)
    with pytest.raises(ValueError, match="checkpoint"):
        RationalTrajectory(ORS_ADULT, discuss_checkpoint=6, change_checkpoint=6)


# --------------------------------------------------------------------------- no extrapolation


def _short_episodes(seed: int = 3) -> EtrSample:
    """200 episodes of four sessions (intake U(8, 24), +2 points a session, noise SD 1.5):
    routine care, where clients average fewer than five sessions (domain.md §4)."""
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(200):
        intake = round(float(rng.uniform(8, 24)), 1)
        later = [
            (k, round(intake + 2.0 * (k - 1) + float(rng.normal(0, 1.5)), 1)) for k in (2, 3, 4)
        ]
        episodes.append([(1, intake), *later])
    return EtrSample.from_episodes(episodes)


def test_etr_does_not_judge_beyond_the_sessions_it_was_fitted_on() -> None:
    """Fitted on sessions 1-4 only, ln k carried on to session 15 expects 32.6 from an intake
    of 20; a score of 30 there (+10: reliably improved and recovered, cut-off 25) sat at the
    4th percentile and was "not on track". Beyond session 4 the rational rules judge, and say
    so; within it the clinic's ETR still does."""
    model = select_trajectory_model(_short_episodes(), ORS_ADULT, bounds=(0.0, 40.0))
    assert isinstance(model, ClinicEtr)
    assert model.last_session == 4
    late = model.assess(20.0, 15, 30.0)
    assert late.on_track is True
    assert late.model == RATIONAL_LABEL
    assert "beyond session 4" in late.reason
    assert late.expected is None
    assert late.percentile is None
    # not improved by session 15: off track by the rational rules (domain.md §3), not by a curve
    stuck = model.assess(20.0, 15, 21.0)
    assert (stuck.on_track, stuck.guidance) == (False, Guidance.CHANGE_APPROACH)
    early = model.assess(20.0, 4, 26.0)
    assert early.model == model.label
    assert early.expected == round(model.expected(20.0, 4), 1)  # shown to the tenth
    path = model.path(20.0, 20)
    assert path.sessions == (1, 2, 3, 4)


def test_etr_does_not_judge_intakes_outside_the_fitted_range() -> None:
    """Intakes 8-24 were fitted; an intake of 2 (or 35) is judged by the rational rules. (The
    extrapolated curve expected 6.4 at session 3 from an intake of 2, so a score of 3 was "not
    on track"; the rational rules see +1, no reliable change yet.)"""
    model = select_trajectory_model(_short_episodes(), ORS_ADULT)
    assert isinstance(model, ClinicEtr)
    assert model.intake_range is not None
    low, high = model.intake_range
    assert 8.0 <= low < 9.0
    assert 23.0 < high <= 24.0
    for intake in (2.0, 35.0):
        judged = model.assess(intake, 3, intake + 1.0)
        assert judged.model == RATIONAL_LABEL
        assert "intake outside" in judged.reason
        assert model.path(intake, 10).model == RATIONAL_LABEL
    assert model.assess(15.0, 3, 19.0).model == model.label


def test_etr_without_a_fallback_keeps_extrapolating() -> None:
    """fit_clinic_etr on its own (no criteria to fall back on) judges every session, as before."""
    model = fit_clinic_etr(_short_episodes(), HIGHER)
    assert model.fallback is None
    assert model.assess(20.0, 15, 30.0).model == model.label


# --------------------------------------------------------------------------- figures shown


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (10, "10th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (23, "23rd"),
        (99, "99th"),
        (101, "101st"),
        (111, "111th"),
    ],
)
def test_ordinal_suffix(n: int, text: str) -> None:
    assert f"{n}{ordinal_suffix(n)}" == text


@pytest.mark.parametrize(
    ("percentile", "text"),
    [
        (3.2, "at the 3rd percentile"),
        (0.3, "below the 1st percentile"),
        (21.0, "at the 21st percentile"),
        (99.7, "above the 99th percentile"),
    ],
)
def test_percentile_phrase_has_proper_ordinals_and_no_0th(percentile: float, text: str) -> None:
    assert percentile_phrase(percentile) == text


def test_assessment_reason_never_says_0th_percentile(etr: ClinicEtr) -> None:
    """Far below the curve: "below the 1st percentile", not "at the 0th percentile"."""
    result = etr.assess(15.0, 4, _curve(CURVE, 15.0, 4) - 20.0)
    assert result.reason.startswith("below the 1st percentile of clinic clients")


def test_rational_band_is_shown_to_the_scales_tenth() -> None:
    """Intake 20.4 minus the 5-point reliable change is 15.4, not 15.399999999999999."""
    result = RationalTrajectory(ORS_ADULT).assess(20.4, 3, 18.0)
    assert (result.band_low, result.band_high) == (15.4, 25.4)


def test_etr_figures_are_shown_to_the_scales_tenth(etr: ClinicEtr) -> None:
    """Expected score, band and percentile carry one decimal (domain.md §2), the judgement made
    on the unrounded values."""
    result = etr.assess(15.3, 5, 17.0)
    for value in (result.expected, result.band_low, result.band_high, result.percentile):
        assert value is not None
        assert value == round(value, 1)


@settings(max_examples=300, deadline=None)
@given(
    low=st.floats(0, 40, allow_nan=False),
    width=st.floats(0, 20, allow_nan=False),
    tenths=st.integers(0, 400),
)
def test_the_shown_band_judges_every_score_as_the_true_band_does(
    low: float, width: float, tenths: int
) -> None:
    """Scores sit on the tenth: against the band as shown (inward to the tenth) a score is below
    or above exactly when it is against the true band - never "15.4 against a low edge of 15.4"
    for a score judged below a true 15.44."""
    high = low + width
    score = tenths / 10
    shown_low, shown_high = shown_band(low, high)
    for edge, shown, beyond in ((low, shown_low, score < low), (high, shown_high, score > high)):
        if abs(edge * 10 - round(edge * 10)) < 5e-7:  # what shown_band calls float noise
            # on the tenth but for float noise: shown as that tenth, judged against it
            assert shown == round(edge, 1)
            beyond = score < shown if edge is low else score > shown
        assert (score < shown if edge is low else score > shown) == beyond
    assert shown_band(15.44, 30.46) == (15.5, 30.4)
    assert shown_band(15.400000000000002, 15.399999999999999) == (15.4, 15.4)
