"""The report's packed (session number, total) value gives back every storable total exactly,
as each database computes it (``episode_months.NumberedTotal``)."""

from __future__ import annotations

from sqlalchemy import Engine, Float, Integer, literal, select, union_all

from fit_service.services.episode_months import NumberedTotal as _NumberedTotal


def test_every_total_survives_packing_on_the_database(engine: Engine) -> None:
    steps = _NumberedTotal.STEPS
    # Every total a brief scale can store (0.0 to 40.0 by 0.1, rounded as scoring rounds),
    # beside session numbers small and large.
    totals = [round(k / steps, 1) for k in range(0, 40 * steps + 1)]
    numbers = [1, 7, 250]
    cases = [(n, t) for n in numbers for t in totals]
    rows = []
    with engine.connect() as conn:
        for start in range(0, len(cases), 400):  # SQLite caps compound SELECTs at 500 terms
            query = union_all(
                *(
                    select(
                        literal(n, Integer).label("n"),
                        literal(t, Float).label("t"),
                        _NumberedTotal.sql(literal(n, Integer), literal(t, Float)).label("p"),
                    )
                    for n, t in cases[start : start + 400]
                )
            )
            rows += conn.execute(query).all()
    assert len(rows) == len(cases)
    for n, t, packed in rows:
        assert _NumberedTotal.totals([packed])[0] == t  # the same float, not just close
        assert int(packed) // _NumberedTotal.SPAN == n
