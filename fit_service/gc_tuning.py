"""Garbage-collector settings of a fit-service process (the gunicorn workers via ``wsgi.py``,
the CLI, which loads the same module, and the benchmarks that time what they do).

A 1,000-session backfill batch allocates hundreds of thousands of objects that live until the
response, and a monthly report tens of thousands (its figures, then its cells or PDF
flowables): with the default thresholds that set off full collections during each, every one
walking every live object, the ~145,000 start-up ones included. Measured in-process per batch:
GC ~0.7-1.2 s with the defaults, ~0.3 s with the start-up objects frozen, ~0.1 s frozen and
with a young generation of 50,000. What is loaded when this runs (modules, the app, schemas,
prebuilt statements) lives as long as the process, so it leaves the collector's sight; the
larger young generation only delays the collection of cyclic garbage (reference counting frees
the rest at once).
"""

from __future__ import annotations

import gc

#: Allocations (net of frees) between young-generation collections; the older generations
#: are collected every 20 of the one below.
YOUNG_GENERATION = 50_000


def tune_for_serving() -> None:
    """Freeze everything alive now and enlarge the young generation (see the module
    docstring). Call once, after start-up has loaded what the process keeps."""
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, 20, 20)
