"""Instruments as data: what each measure's items are, their ranges, direction and norms.

Every constant here comes from ``shared/domain.md`` (sections 2 and 3) unless a paper is named.
Adding an instrument (Group SRS, PHQ-9 ...) is one more :class:`Instrument` entry in
:data:`REGISTRY`; nothing else branches on instrument codes.

Item *wording* is copyrighted (ORS/SRS © Miller & Duncan; WAI via the Society for
Psychotherapy Research) and is deliberately absent: items are known by neutral ids only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar


class Direction(StrEnum):
    """Which way is better on a scale. ORS/SRS/WAI are higher-is-better; PHQ-9, HAM-D lower."""

    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"

    @property
    def sign(self) -> int:
        """+1 when a rise is an improvement, -1 when a fall is."""
        return 1 if self is Direction.HIGHER_IS_BETTER else -1


class Leg(StrEnum):
    """Bordin's (1979) three legs of the working alliance, plus the global check (domain.md §1)."""

    BOND = "bond"
    GOAL = "goal"
    TASK = "task"
    GLOBAL = "global"


class InstrumentKind(StrEnum):
    OUTCOME = "outcome"
    ALLIANCE = "alliance"


class AgeBand(StrEnum):
    """Age bands the norms are published for (domain.md §3). No birth dates are stored."""

    CHILD = "child"  # 6-12: CORS / CSRS
    ADOLESCENT = "adolescent"  # 13-17
    ADULT = "adult"  # 18+


class Rater(StrEnum):
    """Who filled the measure in. Each instrument names the raters it takes
    (:attr:`Instrument.raters`)."""

    CLIENT = "client"
    THERAPIST = "therapist"
    PARENT = "parent"
    CAREGIVER = "caregiver"
    TEACHER = "teacher"


#: The people around a young client who rate the client's functioning on the ORS/CORS beside
#: the client's own rating: parents, other caregivers, teachers ("collateral" raters in PCOMS;
#: Duncan et al. 2006, "... a brief outcome measure for children, adolescents, and caretakers").
#: Only of a child's or adolescent's functioning (:data:`COLLATERAL_AGE_BANDS`).
COLLATERAL_RATERS: frozenset[Rater] = frozenset({Rater.PARENT, Rater.CAREGIVER, Rater.TEACHER})
#: Whose functioning a collateral rater may rate: children and adolescents (an adult rates
#: their own).
COLLATERAL_AGE_BANDS: frozenset[AgeBand] = frozenset({AgeBand.CHILD, AgeBand.ADOLESCENT})


@dataclass(frozen=True, slots=True)
class Instrument:
    """One measure, described completely enough to validate, score and interpret it.

    ``clinical_cutoffs`` are totals below which (for a higher-is-better scale) a score is in the
    clinical range; ``cutoff_is_clinical`` says on which side the cut-off value itself falls,
    because sites differ (domain.md §3: "some sites count 25 itself as clinical").
    """

    code: str
    name: str
    kind: InstrumentKind
    item_ids: tuple[str, ...]
    item_min: float
    item_max: float
    resolution: float
    direction: Direction
    default_rater: Rater
    #: who may fill this form in (``default_rater`` among them): a rating by anyone else is
    #: refused, never stored unread (the risk rules read the client's ratings, so an SRS sent
    #: as the parent's would silently switch the alliance alerts off)
    raters: frozenset[Rater]
    subscales: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    item_legs: Mapping[str, Leg] = field(default_factory=dict)
    clinical_cutoffs: Mapping[AgeBand, float] = field(default_factory=dict)
    cutoff_is_clinical: bool = False
    reliable_change_points: float | None = None
    snomed_ct: str | None = None
    source: str = ""
    #: decimal places a total is reported to (0.1 resolution -> 1); derived, cached because
    #: scoring asks for it once per item on the ingestion hot path
    decimals: int = field(init=False, default=0)
    #: steps in one unit of the scale (10 for tenths, 1 for whole points): a whole number, so
    #: a score is checked against the grid by an exact multiplication (domain/scoring.py)
    steps_per_unit: int = field(init=False, default=1)

    def __post_init__(self) -> None:
        if self.default_rater not in self.raters:
            raise ValueError(f"{self.code}: the default rater must be one of its raters")
        places = (
            0 if self.resolution >= 1 else len(f"{self.resolution:.10f}".rstrip("0").split(".")[1])
        )
        object.__setattr__(self, "decimals", places)
        per_unit = round(1 / self.resolution)
        if abs(per_unit * self.resolution - 1) > 1e-12:
            raise ValueError(f"{self.code}: the resolution must divide 1 (0.1, 0.5, 1)")
        object.__setattr__(self, "steps_per_unit", per_unit)

    @property
    def total_min(self) -> float:
        return self.item_min * len(self.item_ids)

    @property
    def total_max(self) -> float:
        return self.item_max * len(self.item_ids)

    def cutoff_for(self, age_band: AgeBand) -> float | None:
        return self.clinical_cutoffs.get(age_band)

    def is_clinical(self, total: float, age_band: AgeBand) -> bool | None:
        """Is ``total`` on the clinical side of the cut-off? ``None`` when no cut-off applies."""
        cutoff = self.cutoff_for(age_band)
        if cutoff is None:
            return None
        if total == cutoff:
            return self.cutoff_is_clinical
        worse = total < cutoff if self.direction is Direction.HIGHER_IS_BETTER else total > cutoff
        return worse


_K = TypeVar("_K")
_V = TypeVar("_V")


def _frozen(mapping: dict[_K, _V]) -> Mapping[_K, _V]:
    return MappingProxyType(mapping)


#: Who rates what: the ORS/CORS are the client's rating of their past week, and a parent,
#: caregiver or teacher may rate a child's or adolescent's week the same way (PCOMS collateral
#: ratings, COLLATERAL_RATERS); the SRS/CSRS are the client's rating of the session, given at
#: its end (domain.md §2), and in PCOMS work with children a parent or caregiver who attends
#: the session fills one in too (a collateral alliance rating, of a child or adolescent only);
#: each WAI-SR form names its rater (domain.md §2: "client or therapist form"). Collateral
#: ratings are stored and shown; the outcome series, the risk rules and the reports read the
#: client's own.
_CLIENT_ONLY = frozenset({Rater.CLIENT})
_CLIENT_OR_COLLATERAL = frozenset({Rater.CLIENT, *COLLATERAL_RATERS})

_ORS_ITEMS = ("individual", "interpersonal", "social", "overall")
_SRS_ITEMS = ("relationship", "goals", "approach", "overall")
# domain.md §2: SRS slots map to Bordin's legs; `overall` is a global check.
_SRS_LEGS = _frozen(
    {"relationship": Leg.BOND, "goals": Leg.GOAL, "approach": Leg.TASK, "overall": Leg.GLOBAL}
)
_WAI_ITEMS = tuple(f"item{n:02d}" for n in range(1, 13))
# Hatcher & Gillaspy (2006), WAI-SR scoring key (domain.md §2).
_WAI_SUBSCALES = _frozen(
    {
        "task": ("item01", "item02", "item10", "item12"),
        "goal": ("item04", "item06", "item08", "item11"),
        "bond": ("item03", "item05", "item07", "item09"),
    }
)
_WAI_LEGS = _frozen({item: Leg(name) for name, items in _WAI_SUBSCALES.items() for item in items})

ORS = Instrument(
    code="ors",
    name="Outcome Rating Scale",
    kind=InstrumentKind.OUTCOME,
    item_ids=_ORS_ITEMS,
    item_min=0.0,
    item_max=10.0,
    resolution=0.1,  # a 10 cm line read to the millimetre (domain.md §2)
    direction=Direction.HIGHER_IS_BETTER,
    default_rater=Rater.CLIENT,
    raters=_CLIENT_OR_COLLATERAL,
    # Adult 25, adolescent 28: PCOMS manuals/norms (domain.md §3). Total < cut-off is clinical.
    clinical_cutoffs=_frozen({AgeBand.ADULT: 25.0, AgeBand.ADOLESCENT: 28.0}),
    reliable_change_points=5.0,  # PCOMS manuals (domain.md §3)
    snomed_ct="716613004",
    source="Miller & Duncan 2000; cut-offs and RC from PCOMS manuals (domain.md §3)",
)
CORS = Instrument(
    code="cors",
    name="Child Outcome Rating Scale",
    kind=InstrumentKind.OUTCOME,
    item_ids=_ORS_ITEMS,
    item_min=0.0,
    item_max=10.0,
    resolution=0.1,
    direction=Direction.HIGHER_IS_BETTER,
    default_rater=Rater.CLIENT,
    raters=_CLIENT_OR_COLLATERAL,
    clinical_cutoffs=_frozen({AgeBand.CHILD: 32.0}),  # Duncan et al. 2006 (domain.md §3)
    reliable_change_points=5.0,  # PCOMS default; NHS CYP tables use 10 (domain.md §3)
    snomed_ct="718458005",
    source="Duncan et al. 2006 (domain.md §3)",
)
SRS = Instrument(
    code="srs",
    name="Session Rating Scale",
    kind=InstrumentKind.ALLIANCE,
    item_ids=_SRS_ITEMS,
    item_min=0.0,
    item_max=10.0,
    resolution=0.1,
    direction=Direction.HIGHER_IS_BETTER,
    default_rater=Rater.CLIENT,
    raters=_CLIENT_OR_COLLATERAL,
    subscales=_frozen({leg.value: (item,) for item, leg in _SRS_LEGS.items()}),
    item_legs=_SRS_LEGS,
    snomed_ct="720482000",
    source="Miller, Duncan & Johnson 2002 (domain.md §2)",
)
CSRS = Instrument(
    code="csrs",
    name="Child Session Rating Scale",
    kind=InstrumentKind.ALLIANCE,
    item_ids=_SRS_ITEMS,
    item_min=0.0,
    item_max=10.0,
    resolution=0.1,
    direction=Direction.HIGHER_IS_BETTER,
    default_rater=Rater.CLIENT,
    raters=_CLIENT_OR_COLLATERAL,
    subscales=_frozen({leg.value: (item,) for item, leg in _SRS_LEGS.items()}),
    item_legs=_SRS_LEGS,
    snomed_ct="718762000",
    source="domain.md §2",
)
WAI_SR_CLIENT = Instrument(
    code="wai_sr_client",
    name="Working Alliance Inventory - Short Revised (client form)",
    kind=InstrumentKind.ALLIANCE,
    item_ids=_WAI_ITEMS,
    item_min=1.0,
    item_max=5.0,
    resolution=1.0,
    direction=Direction.HIGHER_IS_BETTER,
    default_rater=Rater.CLIENT,
    raters=_CLIENT_ONLY,
    subscales=_WAI_SUBSCALES,
    item_legs=_WAI_LEGS,
    source="Hatcher & Gillaspy 2006 (domain.md §2)",
)
WAI_SR_THERAPIST = Instrument(
    code="wai_sr_therapist",
    name="Working Alliance Inventory - Short Revised (therapist form)",
    kind=InstrumentKind.ALLIANCE,
    item_ids=_WAI_ITEMS,
    item_min=1.0,
    item_max=5.0,
    resolution=1.0,
    direction=Direction.HIGHER_IS_BETTER,
    default_rater=Rater.THERAPIST,
    raters=frozenset({Rater.THERAPIST}),
    subscales=_WAI_SUBSCALES,
    item_legs=_WAI_LEGS,
    source="Hatcher & Gillaspy 2006 (domain.md §2)",
)

REGISTRY: Mapping[str, Instrument] = _frozen(
    {i.code: i for i in (ORS, CORS, SRS, CSRS, WAI_SR_CLIENT, WAI_SR_THERAPIST)}
)


def outcome_instrument_for(age_band: AgeBand) -> Instrument:
    """The outcome measure normed for an age band: CORS for children, ORS otherwise."""
    return CORS if age_band is AgeBand.CHILD else ORS


def alliance_instrument_for(age_band: AgeBand) -> Instrument:
    """The session alliance measure for an age band: CSRS for children, SRS otherwise."""
    return CSRS if age_band is AgeBand.CHILD else SRS


#: The two age versions of each session measure: one scale, child-friendly wording for 6-12
#: (domain.md §2), so an episode that spans a birthday reads them as one series.
_AGE_VERSION_PAIRS = ((ORS, CORS), (SRS, CSRS))


def age_versions(code: str) -> tuple[str, ...]:
    """``code`` and the other age version of the same measure, ``code`` first (ORS/CORS,
    SRS/CSRS); just ``code`` for a measure without one."""
    for pair in _AGE_VERSION_PAIRS:
        codes = tuple(instrument.code for instrument in pair)
        if code in codes:
            return (code, *(other for other in codes if other != code))
    return (code,)
