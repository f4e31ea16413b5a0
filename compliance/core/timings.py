"""Durations of the run's parts that a step line does not show on its own (checks, clock engine), in the warehouse.

``run_timings (part, seconds)`` lets ``scripts/bench.py`` report the checks' overhead and the clock engine's
time from the same run that it times as a whole. The table is internal: no evidence file reads it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

RUN_TIMINGS_COLUMNS = "part VARCHAR, seconds DOUBLE"


@contextmanager
def timed(con: duckdb.DuckDBPyConnection, part: str) -> Iterator[None]:
    """Record the wall-clock seconds of the ``with`` body in ``run_timings`` as ``part`` (replacing its last time)."""
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    con.execute(f"CREATE TABLE IF NOT EXISTS run_timings ({RUN_TIMINGS_COLUMNS})")
    con.execute("DELETE FROM run_timings WHERE part = ?", [part])
    con.execute("INSERT INTO run_timings VALUES (?, ?)", [part, seconds])
