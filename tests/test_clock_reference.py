"""The clock engine against an independent row-wise implementation: the `businesstimedelta` package, given the
same working hours, zone and holiday dates, on random intervals across DST changes, weekends and holidays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.policy import load_policy
from scripts.bench_clocks import CALENDAR, engine_open_seconds, reference_open_seconds, reference_rules

SPECS = load_policy("platform").calendars
RULES = reference_rules(SPECS[CALENDAR])

# DST switches (8 March, 1 November 2026), Independence Day observed (Friday 3 July), Thanksgiving, Christmas
EDGE_DAYS = [datetime(2026, 3, 7), datetime(2026, 10, 31), datetime(2026, 7, 2), datetime(2026, 11, 25)]
instants = st.one_of(
    st.datetimes(min_value=datetime(2025, 12, 20), max_value=datetime(2026, 12, 31)),
    st.builds(
        lambda day, seconds: day + timedelta(seconds=seconds),
        st.sampled_from(EDGE_DAYS),
        st.integers(0, 4 * 86400),
    ),
).map(lambda naive: naive.replace(microsecond=0, tzinfo=UTC))
intervals = st.lists(st.tuples(instants, st.integers(0, 12 * 86400)), min_size=1, max_size=200)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(intervals)
def test_open_seconds_match_businesstimedelta(pairs):
    frame = pl.DataFrame(
        {
            "clock_key": range(len(pairs)),
            "calendar_id": [CALENDAR] * len(pairs),
            "started_at": [start for start, _ in pairs],
            "stopped_at": [start + timedelta(seconds=length) for start, length in pairs],
            "target_seconds": [16 * 3600] * len(pairs),
        },
        schema_overrides={"started_at": pl.Datetime("us", "UTC"), "stopped_at": pl.Datetime("us", "UTC")},
    )
    _, engine = engine_open_seconds(frame, SPECS)
    _, reference = reference_open_seconds(frame, RULES)
    assert engine == reference
