"""Benchmark: the set-based clock engine against a row-wise reference, on the same intervals and calendar.

    python scripts/bench_clocks.py [--clocks 3000000] [--reference-clocks 20000] [--seed 7] [--json]

The calendar is CAL-BH-EST of the shipped `platform` profile (America/New_York with DST, Mon-Fri 09:00-17:00,
US public holidays with observed dates). The reference is the `businesstimedelta` package, the usual row-wise
way to count business time in Python: one `Rules.difference(start, stop)` call per interval, with the same
working hours, zone and holiday dates (taken from the calendar's own `closed_dates`, so both count the same days).

Both compute the open seconds between each interval's start and stop; the engine also computes each clock's
due instant (a 16-business-hour target), which the reference is not asked to do. The engine runs on all
`--clocks` intervals; the reference, about a thousand clocks a second, on the first `--reference-clocks` of them
(the same intervals), and its answers are compared with the engine's for every one before any figure is printed.

The engine's time is the median of three passes over the same intervals in one DuckDB connection (a shared
machine makes one pass vary by 2x); the reference's is its one pass. Both are wall time of the computation alone:
building the intervals and reading the answers back are outside. ``--json`` prints the figures as one JSON object
instead (``scripts/bench.py`` reads it for its table).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time

import businesstimedelta
import duckdb
import polars as pl
import pytz

from compliance.calendars import compute_clocks
from compliance.calendars.windows import closed_dates
from compliance.policy import load_policy

CALENDAR = "CAL-BH-EST"
TARGET_SECONDS = 16 * 3600
FIRST_START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 365 * 86400
# Enough clocks that the engine's fixed cost per call (expanding the calendar, planning its statement: about 0.1 s)
# is a small part of its time, as in a year of tickets; at 1M it was a fifth.
ENGINE_CLOCKS = 3_000_000


def _intervals(count: int, seed: int) -> pl.DataFrame:
    """Random starts over a year, stops from one minute to three weeks later, to the whole second."""
    rng = random.Random(seed)
    starts = [FIRST_START + timedelta(seconds=rng.randrange(SPAN_SECONDS)) for _ in range(count)]
    stops = [start + timedelta(seconds=rng.randrange(60, 21 * 86400)) for start in starts]
    return pl.DataFrame(
        {
            "clock_key": range(count),
            "calendar_id": [CALENDAR] * count,
            "started_at": starts,
            "stopped_at": stops,
            "target_seconds": [TARGET_SECONDS] * count,
        },
        schema_overrides={"started_at": pl.Datetime("us", "UTC"), "stopped_at": pl.Datetime("us", "UTC")},
    )


def engine_open_seconds(intervals: pl.DataFrame, specs, passes: int = 1) -> tuple[float, dict[int, int]]:
    """Seconds ``compute_clocks`` takes over ``intervals`` (the median of ``passes``), and each clock_key's open
    seconds."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("intervals_frame", intervals)
    con.execute("CREATE TEMP TABLE intervals AS SELECT * FROM intervals_frame")
    times = []
    for _ in range(passes):
        started = time.perf_counter()
        compute_clocks(con, specs, "intervals", "interval_clocks", datetime(2027, 1, 1, tzinfo=UTC))
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    elapsed = dict(con.execute("SELECT clock_key, elapsed_seconds FROM interval_clocks").fetchall())
    con.close()
    return seconds, elapsed


def reference_rules(spec) -> businesstimedelta.Rules:
    """The calendar ``spec`` (weekly 09:00-17:00, Mon-Fri) as businesstimedelta rules, with its closed dates."""
    zone = pytz.timezone(spec.timezone)
    workday = businesstimedelta.WorkDayRule(
        start_time=wall_time(9), end_time=wall_time(17), working_days=[0, 1, 2, 3, 4], tz=zone
    )
    # a set, so that the package's day-by-day holiday search is not also a list scan; years around the intervals,
    # because the search gives up (and fails) when no holiday lies within five years
    holidays = closed_dates(spec, date(2020, 1, 1), date(2031, 12, 31))
    return businesstimedelta.Rules([workday, businesstimedelta.HolidayRule(holidays, tz=zone)])


def reference_open_seconds(intervals: pl.DataFrame, rules: businesstimedelta.Rules) -> tuple[float, dict[int, int]]:
    """Seconds businesstimedelta takes, one interval at a time, and each clock_key's open seconds."""
    rows = intervals.select("clock_key", "started_at", "stopped_at").rows()
    started = time.perf_counter()
    elapsed = {}
    for key, start, stop in rows:
        delta = rules.difference(start, stop)
        elapsed[key] = delta.hours * 3600 + delta.seconds
    return time.perf_counter() - started, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clocks", type=int, default=ENGINE_CLOCKS, help="intervals the engine computes")
    parser.add_argument("--reference-clocks", type=int, default=20_000, help="the first of them, for the reference")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()

    specs = load_policy("platform").calendars
    intervals = _intervals(args.clocks, args.seed)
    engine_seconds, engine_elapsed = engine_open_seconds(intervals, specs, passes=3)
    reference_count = min(args.reference_clocks, args.clocks)
    reference_seconds, reference_elapsed = reference_open_seconds(
        intervals.head(reference_count), reference_rules(specs[CALENDAR])
    )
    disagreements = [key for key, seconds in reference_elapsed.items() if engine_elapsed[key] != seconds]
    if disagreements:
        key = disagreements[0]
        row = intervals.row(key, named=True)
        print(
            f"the engine and businesstimedelta disagree on {len(disagreements):,} of {reference_count:,} intervals, "
            f"e.g. {row['started_at']} .. {row['stopped_at']}: {engine_elapsed[key]} s vs {reference_elapsed[key]} s",
            file=sys.stderr,
        )
        return 1
    engine_rate = args.clocks / engine_seconds
    reference_rate = reference_count / reference_seconds
    if args.json:
        figures = {
            "calendar": CALENDAR,
            "engine_clocks": args.clocks,
            "engine_seconds": engine_seconds,
            "engine_clocks_per_second": engine_rate,
            "reference_clocks": reference_count,
            "reference_seconds": reference_seconds,
            "reference_clocks_per_second": reference_rate,
        }
        print(json.dumps(figures))
        return 0
    print(
        f"calendar {CALENDAR}; the engine on {args.clocks:,} intervals, businesstimedelta on the first "
        f"{reference_count:,}: open seconds agree on every one of those"
    )
    print(f"clock engine (elapsed + due):      {engine_seconds:8.2f} s  {engine_rate:>14,.0f} clocks/s")
    print(f"businesstimedelta (elapsed only):  {reference_seconds:8.2f} s  {reference_rate:>14,.0f} clocks/s")
    print(f"engine / reference:                {engine_rate / reference_rate:8,.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
