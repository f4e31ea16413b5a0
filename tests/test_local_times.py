"""Local times that do not exist (skipped by a DST change) or occur twice (issue 13 item 7), on every path:
ingest (DuckDB casts), adapters (polars), calendars (wall-to-UTC), and the data-quality count.

Rule ("Reading rules common to both profiles"): a nonexistent local time is quarantined, with or without a zone
name; one that occurs twice is read as its earlier instant, and such values are counted in data quality.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from conftest import write

from compliance.adapters.base import ISO_FORMATS, bad_timestamp, shift_timestamp_text, split_checked, timestamp_text
from compliance.calendars import CalendarSpec, compute_clocks, open_windows
from compliance.expectations import AMBIGUOUS_LOCAL_TIMES, validate_table
from compliance.ingest.staging import ingest_source

UTC = UTC
NY = ZoneInfo("America/New_York")
LON = ZoneInfo("Europe/London")
HEADER = (
    "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,"
    "senior_reviewed_at,subject,description\n"
)


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


def load(con, tmp_path, policy, created: dict[str, str], zone: str = "UTC", name: str = "tickets.csv"):
    """Tickets with these created_at texts; returns (staged created_at by ID, quarantine (id, code, reason))."""
    rows = "".join(f"{tid},sales,free,,{text},,,open,,,,\n" for tid, text in created.items())
    write(tmp_path / name, HEADER + rows)
    ingest_source(con, "tickets", tmp_path, dataclasses.replace(policy, source_timezone=zone))
    staged = dict(con.execute("SELECT ticket_id, created_at FROM staged_tickets").fetchall())
    quarantined = con.execute("SELECT record_id, reason_code, reason FROM quarantine ORDER BY line").fetchall()
    return staged, quarantined


# ---------------------------------------------------------------------------------------------------------
# ingest: nonexistent local times are quarantined, with or without a zone name
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Europe/London"])
def test_zone_named_nonexistent_time_is_quarantined_in_any_source_zone(con, tmp_path, policy, zone):
    staged, quarantined = load(
        con,
        tmp_path,
        policy,
        {
            "GAP": "2026-03-08 02:30 America/New_York",  # DuckDB alone: silently 07:30Z
            "GAP-T": "2026-03-08T02:30:00 America/New_York",
            "GAP-LON": "2026-03-29 01:30:00 Europe/London",
            "OK": "2026-03-08 03:30 America/New_York",  # the first valid wall time after the gap
            "BEFORE": "2026-03-08 01:59:59 America/New_York",
        },
        zone,
    )
    assert staged == {"OK": utc(2026, 3, 8, 7, 30), "BEFORE": utc(2026, 3, 8, 6, 59, 59)}
    assert [(tid, code) for tid, code, _ in quarantined] == [
        ("GAP", "nonexistent_local_time"),
        ("GAP-T", "nonexistent_local_time"),
        ("GAP-LON", "nonexistent_local_time"),
    ]
    assert quarantined[0][2] == (
        "created_at: 2026-03-08 02:30 America/New_York does not exist (skipped by a daylight-saving change)"
    )


def test_naive_nonexistent_time_in_source_zone_is_quarantined_too(con, tmp_path, policy):
    _, quarantined = load(
        con,
        tmp_path,
        policy,
        {"GAP": "2026-03-08 02:30", "GAP-NAMED": "2026-03-08 02:30 America/New_York"},
        "America/New_York",
    )
    assert quarantined == [
        (
            "GAP",
            "nonexistent_local_time",
            "created_at: 2026-03-08 02:30 does not exist in America/New_York (skipped by a daylight-saving change)",
        ),
        (
            "GAP-NAMED",
            "nonexistent_local_time",
            "created_at: 2026-03-08 02:30 America/New_York does not exist (skipped by a daylight-saving change)",
        ),
    ]


def test_bracketed_zone_syntax_is_not_read_and_is_quarantined(con, tmp_path, policy):
    staged, quarantined = load(con, tmp_path, policy, {"RFC9557": "2026-03-08T02:30:00[America/New_York]"})
    assert staged == {} and [(tid, code) for tid, code, _ in quarantined] == [("RFC9557", "bad_timestamp")]


def test_unknown_trailing_word_is_no_timestamp_in_a_local_source_zone(con, tmp_path, policy):
    # the TIMESTAMP cast drops "PM" (as if a zone name): 01:30 PM must not load as 01:30 New York time
    staged, quarantined = load(con, tmp_path, policy, {"PM": "2026-11-01 01:30 PM"}, "America/New_York")
    assert staged == {} and [(tid, code) for tid, code, _ in quarantined] == [("PM", "bad_timestamp")]


def test_zone_name_with_zero_offset_is_not_read_in_the_source_zone(con, tmp_path, policy):
    staged, _ = load(con, tmp_path, policy, {"LON": "2026-01-15 09:00 Europe/London"}, "America/New_York")
    assert staged == {"LON": utc(2026, 1, 15, 9)}  # not 09:00 New York (14:00Z)


# ---------------------------------------------------------------------------------------------------------
# ingest: a local time that occurs twice is its earlier instant
# ---------------------------------------------------------------------------------------------------------
READINGS = [  # (text, source zone, instant): a local time that occurs twice is its earlier instant
    ("2026-11-01 01:30 America/New_York", "UTC", utc(2026, 11, 1, 5, 30)),  # EDT, not EST 06:30Z
    ("2026-11-01T01:00:00 America/New_York", "UTC", utc(2026, 11, 1, 5)),
    ("2026-10-25 01:30 Europe/London", "UTC", utc(2026, 10, 25, 0, 30)),  # BST, not GMT 01:30Z
    ("2026-11-01 01:30:00", "America/New_York", utc(2026, 11, 1, 5, 30)),
    ("2026-11-01 01:59:59.5", "America/New_York", datetime(2026, 11, 1, 5, 59, 59, 500_000, tzinfo=UTC)),
    ("2026-10-25T01:00:00", "Europe/London", utc(2026, 10, 25, 0)),
    ("2026-11-01 01:30 Europe/London", "America/New_York", utc(2026, 11, 1, 1, 30)),  # not ambiguous there
    # not ambiguous
    ("2026-11-01 02:00:00", "America/New_York", utc(2026, 11, 1, 7)),  # only EST
    ("2026-11-01 00:59:59", "America/New_York", utc(2026, 11, 1, 4, 59, 59)),  # only EDT
    ("2026-11-01T01:30:00-05:00", "America/New_York", utc(2026, 11, 1, 6, 30)),  # the offset decides
    ("2026-11-01T01:30:00Z", "America/New_York", utc(2026, 11, 1, 1, 30)),
    ("2026-11-01 01:30:00", "UTC", utc(2026, 11, 1, 1, 30)),
]


@pytest.mark.parametrize("text, zone, instant", READINGS)
def test_ambiguous_local_time_reads_as_earlier_instant(con, tmp_path, policy, text, zone, instant):
    staged, quarantined = load(con, tmp_path, policy, {"T": text}, zone)
    assert quarantined == [] and staged == {"T": instant}


def test_ambiguous_values_are_counted_in_data_quality(con, tmp_path, policy):
    created = {
        "A1": "2026-11-01 01:30:00",
        "A2": "2026-11-01 01:05 America/New_York",
        "B": "2026-11-01 02:30:00",
        "C": "2026-11-01T01:30:00-04:00",
    }
    rows = "".join(
        f"{tid},sales,free,,{text},{text if tid == 'A1' else ''},,open,,,,\n" for tid, text in created.items()
    )
    write(tmp_path / "tickets.csv", HEADER + rows)
    local = dataclasses.replace(policy, source_timezone="America/New_York")
    ingest_source(con, "tickets", tmp_path, local)

    def counted():
        outcomes = validate_table(con, "staged_tickets", "tickets", local, utc(2026, 12, 1), None)
        return {
            (o.column, o.unexpected_count, o.success, o.blocking)
            for o in outcomes
            if o.expectation == AMBIGUOUS_LOCAL_TIMES
        }

    assert counted() == {("created_at", 2, True, False), ("first_response_at", 1, True, False)}
    # a new version of the file without such values: the count follows the staged rows
    write(tmp_path / "tickets.csv", HEADER + "A1,sales,free,,2026-11-02 01:30:00,,,open,,,,\n")
    ingest_source(con, "tickets", tmp_path, local)
    assert counted() == set()


def test_data_quality_message_of_the_count(con, tmp_path, policy):
    load(con, tmp_path, policy, {"A": "2026-11-01 01:30 America/New_York"})
    [outcome] = [
        o
        for o in validate_table(con, "staged_tickets", "tickets", policy, utc(2026, 12, 1), None)
        if o.expectation == AMBIGUOUS_LOCAL_TIMES
    ]
    assert outcome.message == (
        "tickets: 1 value of created_at name a local time that occurs twice (clocks set back "
        "for daylight saving); each is read as its earlier instant"
    )


def zoneinfo_reading(naive: datetime, zone: ZoneInfo) -> tuple[datetime | None, bool]:
    """Slow, obvious reference: (instant or None when the wall time does not exist, whether it occurs twice)."""
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    exists = [c for c in (first, second) if c.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive]
    if not exists:
        return None, False
    instants = sorted({c.astimezone(UTC) for c in exists})
    return instants[0], len(instants) > 1


@pytest.mark.parametrize("zone_name", ["America/New_York", "Europe/London", "Australia/Lord_Howe"])
def test_ingest_matches_zoneinfo_around_transitions(con, tmp_path, policy, zone_name):
    # London's 1968 switch lies before the default timestamp window (1970-2100): widened, as a policy may
    policy = dataclasses.replace(policy, timestamp_window=(1900, 2100))
    zone = ZoneInfo(zone_name)
    rng = random.Random(zone_name)
    transitions = {
        "America/New_York": [datetime(2026, 3, 8, 2), datetime(2026, 11, 1, 1), datetime(1974, 1, 6, 2)],
        "Europe/London": [datetime(2026, 3, 29, 1), datetime(2026, 10, 25, 1), datetime(1968, 2, 18, 2)],
        "Australia/Lord_Howe": [datetime(2026, 4, 5, 1, 30), datetime(2026, 10, 4, 2)],
    }[zone_name]
    walls = sorted(
        {t + timedelta(seconds=rng.randrange(-5400, 5400)) for t in transitions for _ in range(60)}
        | {t + timedelta(minutes=m) for t in transitions for m in (-1, 0, 29, 30, 59, 60, 61)}
    )
    named = rng.sample(walls, 40)
    texts = {f"W{i}": w.isoformat(sep=" ") for i, w in enumerate(walls)}
    texts |= {f"N{i}": f"{w.isoformat(sep=' ')} {zone_name}" for i, w in enumerate(named)}
    staged, quarantined = load(con, tmp_path, policy, texts, zone_name)
    expected, gaps, repeats = {}, set(), 0
    for key, _text in texts.items():
        wall = (walls if key[0] == "W" else named)[int(key[1:])]
        instant, twice = zoneinfo_reading(wall, zone)
        repeats += twice
        if instant is None:
            gaps.add(key)
        else:
            expected[key] = instant
    assert staged == expected
    assert {tid for tid, code, _ in quarantined if code == "nonexistent_local_time"} == gaps and gaps
    assert con.execute("SELECT count(*) FROM ambiguous_local_times").fetchall() == [(repeats,)] and repeats


# ---------------------------------------------------------------------------------------------------------
# adapters (polars): the same rules
# ---------------------------------------------------------------------------------------------------------
def test_adapter_timestamps_earlier_instant_and_gap_quarantined():
    frame = pl.DataFrame(
        {
            "id": ["A", "G", "O"],
            "at": ["2026-11-01 01:30", "2026-03-08 02:30", "2026-11-01T01:30:00-05:00"],
            "source_line": [2, 3, 4],
        }
    )
    converted = frame.with_columns(timestamp_text(pl.col("at"), ISO_FORMATS, "America/New_York").alias("at_ts"))
    passed, quarantine = split_checked(converted, [bad_timestamp("at", pl.col("at_ts"))], "f.csv", "id")
    assert dict(passed.select("id", "at_ts").iter_rows()) == {"A": "2026-11-01T05:30:00Z", "O": "2026-11-01T06:30:00Z"}
    assert quarantine["record_id"].to_list() == ["G"]


def test_shifted_wall_time_on_the_second_occurrence_keeps_its_offset(con, tmp_path, policy):
    start = pl.DataFrame(
        {"t": ["2026-11-01T00:50:00"] * 3 + ["2026-03-08T02:30:00"], "s": [3600.0, 7200.0, 10800.0, 60.0]}
    )
    shifted = start.select(shift_timestamp_text(pl.col("t"), pl.col("s"), "America/New_York").alias("x"))["x"].to_list()
    assert shifted == ["2026-11-01T01:50:00", "2026-11-01T01:50:00-05:00", "2026-11-01T02:50:00", None]
    # read back by ingest in the same zone: one, two and three hours after 00:50 EDT
    staged, _ = load(con, tmp_path, policy, {f"S{i}": text for i, text in enumerate(shifted[:3])}, "America/New_York")
    assert staged == {"S0": utc(2026, 11, 1, 5, 50), "S1": utc(2026, 11, 1, 6, 50), "S2": utc(2026, 11, 1, 7, 50)}


# ---------------------------------------------------------------------------------------------------------
# calendars: wall-to-UTC conversions take the earlier instant as well
# ---------------------------------------------------------------------------------------------------------
def test_calendar_window_at_an_ambiguous_wall_time_opens_at_the_earlier_instant():
    spec = CalendarSpec.from_mapping(
        "X", {"kind": "business_hours", "timezone": "America/New_York", "hours": {"sun": [["01:30", "03:00"]]}}
    )
    [window] = open_windows(spec, utc(2026, 11, 1), utc(2026, 11, 2)).to_dicts()
    assert (window["window_start"], window["window_end"]) == (utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 8))


def test_working_day_deadline_at_an_ambiguous_wall_time_is_the_earlier_instant():
    import duckdb

    spec = CalendarSpec.from_mapping(
        "WE", {"kind": "working_days", "timezone": "America/New_York", "days": ["sat", "sun"]}
    )
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE c AS SELECT 1 AS clock_key, 'WE' AS calendar_id, "
        "TIMESTAMPTZ '2026-10-31 05:30:00+00' AS started_at, NULL::TIMESTAMPTZ AS stopped_at, "
        "1::BIGINT AS target_days"
    )  # Saturday 01:30 EDT
    compute_clocks(con, {"WE": spec}, "c", "o", utc(2026, 12, 1))
    assert con.execute("SELECT due_at FROM o").fetchall() == [(utc(2026, 11, 1, 5, 30),)]  # Sunday 01:30 EDT
