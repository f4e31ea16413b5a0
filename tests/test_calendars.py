"""Tests of compliance.calendars: parsing, windows, and the set-based clock engine against a slow reference."""

from __future__ import annotations

import bisect
import random
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import duckdb
import holidays
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.calendars import (
    CalendarError,
    CalendarSpec,
    closed_dates,
    compute_clocks,
    is_open,
    open_windows,
)

UTC = UTC
NY = ZoneInfo("America/New_York")
BER = ZoneInfo("Europe/Berlin")

# ---------------------------------------------------------------------------------------------------------
# test calendars (mappings in the policies/*.yaml shape)
# ---------------------------------------------------------------------------------------------------------
WEEK = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
CAL_MAPPINGS = {
    "CAL-247": {"kind": "always_open", "description": "24/7"},
    "CAL-BH-EST": {
        "kind": "business_hours",
        "timezone": "America/New_York",
        "hours": WEEK,
        "holidays": {"country": "US", "observed": True, "extra": [], "removed": []},
    },
    "CAL-EU": {  # several windows a day, Saturday morning, Bavarian holidays, extra and removed dates
        "kind": "business_hours",
        "timezone": "Europe/Berlin",
        "hours": {
            **{d: [["13:00", "17:30"], ["08:00", "12:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
            "sat": [["10:00", "14:00"]],
        },
        "holidays": {
            "country": "DE",
            "subdivision": "BY",
            "observed": False,
            "extra": ["2026-12-24", date(2026, 12, 31)],
            "removed": ["2026-01-06"],
        },
    },
    "CAL-NIGHT": {  # windows touching midnight (24:00 / 00:00) and inside the DST switches of New York
        "kind": "business_hours",
        "timezone": "America/New_York",
        "hours": {
            "fri": [["20:00", "24:00"]],
            "sat": [["00:00", "04:00"], ["22:00", "24:00"]],
            "sun": [["00:00", "01:00"], ["02:30", "05:00"]],
            "wed": [["01:30", "02:30"]],
        },
        "holidays": {"country": "US", "observed": True, "extra": ["2026-03-20"]},
    },
    "CAL-WD": {
        "kind": "working_days",
        "timezone": "Europe/Berlin",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "holidays": {"country": "DE", "observed": False},
    },
    "CAL-WD-NY": {
        "kind": "working_days",
        "timezone": "America/New_York",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "holidays": {"country": "US", "observed": True},
    },
}
SPECS = {k: CalendarSpec.from_mapping(k, v) for k, v in CAL_MAPPINGS.items()}


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


def ny(*a) -> datetime:
    return datetime(*a, tzinfo=NY)


# ---------------------------------------------------------------------------------------------------------
# slow, obvious reference implementation (independent of the module: raw mappings + zoneinfo + holidays)
# ---------------------------------------------------------------------------------------------------------
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def hm(s: str) -> int:
    h, m = s.split(":")
    return int(h) * 3600 + int(m) * 60


def ref_local_to_utc(tz: ZoneInfo, naive: datetime) -> datetime:
    """The first instant whose local wall clock reads `naive` or later (= fold=0; gap -> next valid instant)."""
    aware = naive.replace(tzinfo=tz, fold=0)
    u = aware.astimezone(UTC)
    if u.astimezone(tz).replace(tzinfo=None) == naive:
        # ambiguous times: fold=0 is the earlier instant
        return u
    # in a gap: walk forward from the earliest candidate, second by second
    u = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    u = min(u, aware.astimezone(UTC)) - timedelta(hours=3)
    while u.astimezone(tz).replace(tzinfo=None) < naive:
        u += timedelta(seconds=1)
    return u


def ref_closed(mapping: dict, first: date, last: date) -> set[date]:
    hol = mapping.get("holidays") or {}
    out: set[date] = set()
    if hol.get("country"):
        h = holidays.country_holidays(
            hol["country"],
            subdiv=hol.get("subdivision"),
            years=range(first.year - 1, last.year + 2),
            observed=hol.get("observed", True),
        )
        out |= set(h.keys())
    out |= {date.fromisoformat(d) if isinstance(d, str) else d for d in hol.get("extra") or []}
    out -= {date.fromisoformat(d) if isinstance(d, str) else d for d in hol.get("removed") or []}
    return out


class RefCalendar:
    def __init__(self, mapping: dict, first: date, last: date):
        self.tz = ZoneInfo(mapping["timezone"])
        closed = ref_closed(mapping, first, last)
        if mapping["kind"] == "working_days":
            hours = {d: [["00:00", "24:00"]] for d in mapping["days"]}
        else:
            hours = mapping["hours"]
        self.windows: list[tuple[datetime, datetime, date]] = []
        d = first
        while d <= last:
            if d not in closed:
                for o, c in sorted(hours.get(DAYS[d.weekday()], []), key=lambda w: hm(w[0])):
                    mid = datetime(d.year, d.month, d.day)
                    ws = ref_local_to_utc(self.tz, mid + timedelta(seconds=hm(o)))
                    we = ref_local_to_utc(self.tz, mid + timedelta(seconds=hm(c)))
                    if we > ws:
                        self.windows.append((ws, we, d))
            d += timedelta(days=1)
        self.working_days = sorted({w[2] for w in self.windows})
        self.starts = [w[0] for w in self.windows]

    def open_seconds(self, a: datetime, b: datetime) -> int:
        """Open seconds in [a, b) (negative when b < a)."""
        if b < a:
            return -self.open_seconds(b, a)
        total = 0
        for ws, we, _ in self.windows[max(bisect.bisect_right(self.starts, a) - 1, 0) :]:
            if ws >= b:
                break
            lo, hi = max(ws, a), min(we, b)
            if hi > lo:
                total += int((hi - lo).total_seconds())
        return total

    def effective_start(self, s: datetime) -> tuple[datetime, date]:
        for ws, we, d in self.windows[max(bisect.bisect_right(self.starts, s) - 1, 0) :]:
            if ws <= s < we:
                return s, d
            if ws > s:
                return ws, d
        raise AssertionError("reference horizon too short")

    def due(self, s: datetime, target: int) -> datetime:
        es, _ = self.effective_start(s)
        left = target
        if left <= 0:
            return es
        for ws, we, _ in self.windows[max(bisect.bisect_right(self.starts, es) - 1, 0) :]:
            if we <= es:
                continue
            lo = max(ws, es)
            avail = int((we - lo).total_seconds())
            if left <= avail:  # exactly at closing -> the closing instant
                return lo + timedelta(seconds=left)
            left -= avail
        raise AssertionError("reference horizon too short")

    def due_working_days(self, s: datetime, n: int) -> datetime:
        """Wall time t0 of the effective start on the n-th working day after it; when that instant is not
        inside an open window (an opening, e.g. 00:00 after a weekend, or closed time), the closing before it."""
        es, d0 = self.effective_start(s)
        if n <= 0:
            return es
        t0 = es.astimezone(self.tz).replace(tzinfo=None).time()
        day = self.working_days[self.working_days.index(d0) + n]
        wall_due = ref_local_to_utc(self.tz, datetime.combine(day, t0))
        last_before = [we for ws, we, _ in self.windows if ws < wall_due][-1]
        return min(wall_due, last_before)


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------
def run_engine(rows: list[dict], as_of: datetime, specs=SPECS) -> dict:
    """rows: clock_key, calendar_id, started_at/stopped_at as ISO strings with offsets, targets."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute(
        "CREATE TABLE raw (clock_key BIGINT, calendar_id VARCHAR, started VARCHAR, stopped VARCHAR, "
        "target_seconds BIGINT, target_days BIGINT, note VARCHAR)"
    )
    con.executemany(
        "INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r["clock_key"],
                r["calendar_id"],
                r["started_at"],
                r.get("stopped_at"),
                r.get("target_seconds"),
                r.get("target_days"),
                f"n{r['clock_key']}",
            )
            for r in rows
        ],
    )
    con.execute(
        "CREATE TABLE clocks AS SELECT clock_key, calendar_id, started::TIMESTAMPTZ AS started_at, "
        "stopped::TIMESTAMPTZ AS stopped_at, target_seconds, target_days, note FROM raw"
    )
    compute_clocks(con, specs, "clocks", "clock_out", as_of)
    cur = con.execute("SELECT * FROM clock_out")
    names = [d[0] for d in cur.description]
    out = [dict(zip(names, row, strict=False)) for row in cur.fetchall()]
    assert len(out) == len(rows)
    return {r["clock_key"]: r for r in out}


OFFSETS = [
    timedelta(0),
    timedelta(hours=-5),
    timedelta(hours=5, minutes=30),
    timedelta(hours=9),
    timedelta(hours=-3, minutes=-30),
    timedelta(hours=1),
]


def iso_mixed(dt: datetime, rng: random.Random) -> str:
    """The same instant written with a random UTC offset (mixed offsets in the input strings)."""
    return dt.astimezone(timezone(rng.choice(OFFSETS))).isoformat()


# ---------------------------------------------------------------------------------------------------------
# the engine against the reference on thousands of random clocks
# ---------------------------------------------------------------------------------------------------------
FIRST, LAST = date(2025, 12, 1), date(2027, 6, 30)
SPECIAL = [
    utc(2026, 3, 8, 7),
    ny(2026, 3, 8, 2, 30),
    utc(2026, 11, 1, 5),
    utc(2026, 11, 1, 6),
    ny(2026, 11, 1, 1, 30),
    utc(2026, 3, 29, 1),
    utc(2026, 10, 25, 1),
    ny(2026, 7, 3, 10),
    ny(2026, 7, 4, 12),
    ny(2026, 11, 26, 10),
    datetime(2026, 12, 24, 9, tzinfo=BER),
    datetime(2026, 1, 6, 9, tzinfo=BER),
]


@pytest.mark.parametrize("cal_id", ["CAL-BH-EST", "CAL-EU", "CAL-NIGHT", "CAL-WD", "CAL-WD-NY"])
def test_engine_matches_reference(cal_id):
    rng = random.Random(hash(cal_id) % 10_000 + 7)
    ref = RefCalendar(CAL_MAPPINGS[cal_id], FIRST, LAST)
    by_days = CAL_MAPPINGS[cal_id]["kind"] == "working_days"
    as_of = utc(2026, 10, 31, 18, 30)
    lo, hi = utc(2026, 1, 2), utc(2026, 12, 10)
    boundaries = [w[0] for w in ref.windows if lo <= w[0] <= hi] + [w[1] for w in ref.windows if lo <= w[1] <= hi]
    rows, expect = [], {}
    for key in range(1500):
        r = rng.random()
        if r < 0.45:
            s = rng.choice(boundaries) + timedelta(seconds=rng.choice([0, 0, 1, -1, -59, 3600, -3600, 1800]))
        elif r < 0.55:
            s = rng.choice(SPECIAL).astimezone(UTC) + timedelta(seconds=rng.choice([0, 1, -1, 900, -900]))
        else:
            s = lo + timedelta(seconds=rng.randrange(int((hi - lo).total_seconds())))
        if key % 97 == 0:
            s = as_of + timedelta(seconds=rng.choice([0, 1, -1]))
        tsec = tdays = None
        if by_days:
            tdays = rng.choice([0, 1, 1, 2, 3, 5, 7, 14, 30])
            due = ref.due_working_days(s, tdays)
        else:
            k = rng.random()
            if k < 0.3:  # a deadline exactly at a closing time
                es, _ = ref.effective_start(s)
                j = bisect.bisect_right(ref.starts, es) - 1
                j = max(j, 0) + rng.randrange(0, 12)
                tsec = ref.open_seconds(es, ref.windows[j][1])
                if tsec <= 0:
                    tsec = 3600
            elif k < 0.5:
                tsec = rng.choice([1, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 48 * 3600])
            elif k < 0.52:
                tsec = 0
            else:
                tsec = rng.randrange(1, 200 * 3600)
            due = ref.due(s, tsec)
        m = rng.random()
        if m < 0.2:
            stop = due
        elif m < 0.4:
            stop = due + timedelta(seconds=1)
        elif m < 0.5:
            stop = due - timedelta(seconds=1)
        elif m < 0.7:
            stop = s + timedelta(seconds=rng.randrange(0, 40 * 86400))
        else:
            stop = None
        rows.append(
            {
                "clock_key": key,
                "calendar_id": cal_id,
                "started_at": iso_mixed(s, rng),
                "stopped_at": iso_mixed(stop, rng) if stop else None,
                "target_seconds": tsec,
                "target_days": tdays,
            }
        )
        end = stop or as_of
        remaining = ref.open_seconds(as_of, due) if stop is None and as_of < due else None
        expect[key] = (ref.effective_start(s)[0], due, ref.open_seconds(s, end), remaining)
    got = run_engine(rows, as_of)
    mismatches = []
    for key, (es, due, elapsed, remaining) in expect.items():
        g = got[key]
        actual = (g["clock_started_at"], g["due_at"], g["elapsed_seconds"], g["remaining_seconds"])
        if actual != (es, due, elapsed, remaining):
            mismatches.append((rows[key], (es, due, elapsed, remaining), actual))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]}"


def test_always_open_and_pass_through():
    rng = random.Random(3)
    rows = []
    as_of = utc(2026, 6, 1)
    for key in range(300):
        s = utc(2026, 1, 1) + timedelta(seconds=rng.randrange(200 * 86400))
        t = rng.choice([None, 3600, 86400, 7 * 86400])
        stop = rng.choice([None, s + timedelta(seconds=rng.randrange(10 * 86400))])
        rows.append(
            {
                "clock_key": key,
                "calendar_id": "CAL-247",
                "started_at": iso_mixed(s, rng),
                "stopped_at": iso_mixed(stop, rng) if stop else None,
                "target_seconds": t,
            }
        )
    got = run_engine(rows, as_of)
    for r in rows:
        g = got[r["clock_key"]]
        s = datetime.fromisoformat(r["started_at"])
        stop = datetime.fromisoformat(r["stopped_at"]) if r["stopped_at"] else None
        due = s + timedelta(seconds=r["target_seconds"]) if r["target_seconds"] is not None else None
        assert g["note"] == f"n{r['clock_key']}"
        assert g["clock_started_at"] == s
        assert g["due_at"] == due
        assert g["elapsed_seconds"] == int(((stop or as_of) - s).total_seconds())
        exp_rem = int((due - as_of).total_seconds()) if due and not stop and as_of < due else None
        assert g["remaining_seconds"] == exp_rem


# ---------------------------------------------------------------------------------------------------------
# hand-written edge cases with explicit instants
# ---------------------------------------------------------------------------------------------------------
FAR_AS_OF = utc(2027, 1, 1)


def one(cal_id, started, target_seconds=None, stopped=None, as_of=FAR_AS_OF, target_days=None):
    row = {
        "clock_key": 1,
        "calendar_id": cal_id,
        "started_at": started.isoformat(),
        "stopped_at": stopped.isoformat() if stopped else None,
        "target_seconds": target_seconds,
        "target_days": target_days,
    }
    return run_engine([row], as_of)[1]


H = 3600


def test_friday_afternoon_four_hours_due_monday_noon_across_spring_forward():
    g = one("CAL-BH-EST", ny(2026, 3, 6, 16), 4 * H)  # Friday 16:00 EST; DST starts Sunday 2026-03-08
    assert g["due_at"] == ny(2026, 3, 9, 12)  # Monday 12:00 EDT
    assert g["due_at"] == utc(2026, 3, 9, 16)


def test_24_business_hours_from_monday_0900_due_wednesday_closing_not_thursday_opening():
    g = one("CAL-BH-EST", ny(2026, 5, 4, 9), 24 * H)
    assert g["due_at"] == ny(2026, 5, 6, 17)
    assert g["clock_started_at"] == ny(2026, 5, 4, 9)


def test_due_at_closing_stop_on_time_and_one_second_late():
    on_time = one("CAL-BH-EST", ny(2026, 5, 4, 9), 8 * H, stopped=ny(2026, 5, 4, 17))
    assert on_time["due_at"] == ny(2026, 5, 4, 17)
    assert on_time["elapsed_seconds"] == 8 * H
    late = one("CAL-BH-EST", ny(2026, 5, 4, 9), 8 * H, stopped=ny(2026, 5, 4, 17, 0, 1))
    # closed time does not count: the breach shows in stopped_at > due_at, not in elapsed_seconds
    assert late["elapsed_seconds"] == 8 * H
    assert late["due_at"] < ny(2026, 5, 4, 17, 0, 1)
    inside = one("CAL-BH-EST", ny(2026, 5, 4, 9), 4 * H, stopped=ny(2026, 5, 4, 13, 0, 1))
    assert inside["elapsed_seconds"] == 4 * H + 1


def test_thanksgiving_closed():
    g = one("CAL-BH-EST", ny(2026, 11, 25, 16), 4 * H)  # Wednesday 16:00; Thursday 2026-11-26 closed
    assert g["due_at"] == ny(2026, 11, 27, 12)
    assert not is_open(SPECS["CAL-BH-EST"], ny(2026, 11, 26, 12))


def test_observed_independence_day_friday_closed():
    g = one("CAL-BH-EST", ny(2026, 7, 2, 16), 2 * H)  # Thursday; Friday 2026-07-03 is the observed holiday
    assert g["due_at"] == ny(2026, 7, 6, 10)


def test_started_on_weekend_and_at_closing_starts_at_next_opening():
    g = one("CAL-BH-EST", ny(2026, 7, 4, 10), 1 * H, as_of=ny(2026, 7, 6, 9, 30))
    assert g["clock_started_at"] == ny(2026, 7, 6, 9)
    assert g["due_at"] == ny(2026, 7, 6, 10)
    assert g["elapsed_seconds"] == 1800
    assert g["remaining_seconds"] == 1800
    g = one("CAL-BH-EST", ny(2026, 5, 4, 17), 1 * H)  # exactly at closing: closed
    assert g["clock_started_at"] == ny(2026, 5, 5, 9)


def test_open_clock_at_as_of_and_missing_target():
    g = one("CAL-BH-EST", ny(2026, 5, 4, 9), None, as_of=ny(2026, 5, 5, 10))
    assert g["due_at"] is None and g["remaining_seconds"] is None
    assert g["elapsed_seconds"] == 9 * H


def test_spring_forward_and_fall_back_windows_have_their_real_length():
    win = open_windows(SPECS["CAL-NIGHT"], utc(2026, 3, 7), utc(2026, 3, 9))
    lengths = {
        (r["local_date"], r["window_start"]): (r["window_end"] - r["window_start"]).total_seconds()
        for r in win.to_dicts()
    }
    # Sunday 2026-03-08: 00:00-01:00 EST (1 h), 02:30 lies in the gap -> 03:00 EDT .. 05:00 EDT (2 h)
    assert lengths[(date(2026, 3, 8), utc(2026, 3, 8, 5))] == 3600
    assert lengths[(date(2026, 3, 8), utc(2026, 3, 8, 7))] == 2 * 3600
    win = open_windows(SPECS["CAL-NIGHT"], utc(2026, 10, 31), utc(2026, 11, 2))
    rows = [r for r in win.to_dicts() if r["local_date"] == date(2026, 11, 1)]
    # Sunday 2026-11-01: 00:00-01:00 EDT (1 h; 01:00 ambiguous -> first occurrence), 02:30-05:00 EST (2.5 h)
    assert [(r["window_start"], r["window_end"]) for r in rows] == [
        (utc(2026, 11, 1, 4), utc(2026, 11, 1, 5)),
        (utc(2026, 11, 1, 7, 30), utc(2026, 11, 1, 10)),
    ]


def test_clock_across_fall_back_night():
    # Saturday 2026-10-31 22:00 EDT: 2 h to midnight, Sunday 00:00-01:00 EDT, then 02:30 EST...
    g = one("CAL-NIGHT", ny(2026, 10, 31, 22), 4 * H)
    assert g["due_at"] == utc(2026, 11, 1, 8, 30)  # 03:30 EST


def test_working_days_keep_wall_time_across_dst():
    g = one("CAL-WD", datetime(2026, 3, 27, 10, tzinfo=BER), target_days=1)  # Friday CET
    assert g["due_at"] == datetime(2026, 3, 30, 10, tzinfo=BER)  # Monday CEST
    assert g["due_at"] == utc(2026, 3, 30, 8)
    g = one("CAL-WD-NY", ny(2026, 11, 25, 15), target_days=1)  # Thanksgiving in between
    assert g["due_at"] == ny(2026, 11, 27, 15)
    g = one("CAL-WD-NY", ny(2026, 7, 4, 15), target_days=3)  # Saturday: starts Monday 00:00
    assert g["clock_started_at"] == ny(2026, 7, 6)
    assert g["due_at"] == ny(2026, 7, 9)


def test_microsecond_inputs_and_null_started_and_unknown_calendar():
    g = one("CAL-BH-EST", datetime(2026, 5, 4, 13, 0, 0, 500_000, tzinfo=UTC), 3600)
    assert g["due_at"] == datetime(2026, 5, 4, 14, 0, 0, 500_000, tzinfo=UTC)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE c AS SELECT 1 AS clock_key, 'CAL-BH-EST' AS calendar_id, "
        "NULL::TIMESTAMPTZ AS started_at, NULL::TIMESTAMPTZ AS stopped_at, 5::BIGINT AS target_seconds"
    )
    compute_clocks(con, SPECS, "c", "o", utc(2026, 1, 1))
    assert con.execute("SELECT due_at, elapsed_seconds FROM o").fetchall() == [(None, None)]
    con.execute(
        "CREATE TABLE d AS SELECT 1 AS clock_key, 'NOPE' AS calendar_id, "
        "TIMESTAMPTZ '2026-01-01 00:00:00+00' AS started_at, NULL::TIMESTAMPTZ AS stopped_at"
    )
    with pytest.raises(CalendarError, match="unknown calendar"):
        compute_clocks(con, SPECS, "d", "o2", utc(2026, 1, 1))


def test_far_targets_extend_the_horizon():
    g = one("CAL-BH-EST", ny(2026, 5, 4, 9), 8 * H * 600)  # ~600 business days
    ref = RefCalendar(CAL_MAPPINGS["CAL-BH-EST"], date(2026, 5, 1), date(2029, 12, 31))
    assert g["due_at"] == ref.due(ny(2026, 5, 4, 9), 8 * H * 600)


# ---------------------------------------------------------------------------------------------------------
# windows, holidays, is_open
# ---------------------------------------------------------------------------------------------------------
def test_open_windows_shape_and_cumulative_columns():
    win = open_windows(SPECS["CAL-EU"], utc(2026, 1, 5), utc(2026, 1, 10))
    assert win.schema == pl.Schema(
        {
            "calendar_id": pl.String,
            "window_start": pl.Datetime("us", "UTC"),
            "window_end": pl.Datetime("us", "UTC"),
            "open_seconds_before": pl.Int64,
            "local_date": pl.Date,
            "working_day_index": pl.Int64,
        }
    )
    rows = win.to_dicts()
    acc = 0
    for r in rows:
        assert r["open_seconds_before"] == acc
        acc += int((r["window_end"] - r["window_start"]).total_seconds())
    # 2026-01-06 (Epiphany) is a removed holiday: open; Saturday 2026-01-10 starts at 09:00 UTC
    assert date(2026, 1, 6) in {r["local_date"] for r in rows}
    idx = {r["local_date"]: r["working_day_index"] for r in rows}
    assert sorted(idx.values()) == list(range(len(idx)))


def test_closed_dates_observed_extra_removed():
    us = closed_dates(SPECS["CAL-BH-EST"], date(2026, 7, 1), date(2026, 7, 31))
    assert us == {date(2026, 7, 3), date(2026, 7, 4)}
    eu = closed_dates(SPECS["CAL-EU"], date(2026, 1, 1), date(2026, 12, 31))
    assert date(2026, 1, 6) not in eu and date(2026, 12, 24) in eu and date(2026, 12, 31) in eu
    assert date(2021, 12, 31) in closed_dates(SPECS["CAL-BH-EST"], date(2021, 12, 1), date(2021, 12, 31))


def test_is_open():
    bh = SPECS["CAL-BH-EST"]
    assert is_open(bh, ny(2026, 5, 4, 9))
    assert not is_open(bh, ny(2026, 5, 4, 17))
    assert is_open(bh, ny(2026, 5, 4, 16, 59, 59))
    assert not is_open(bh, ny(2026, 5, 9, 12))  # Saturday
    assert is_open(SPECS["CAL-247"], ny(2026, 5, 9, 12))
    assert is_open(SPECS["CAL-NIGHT"], ny(2026, 5, 9, 23, 59, 59))  # Saturday 22:00-24:00
    assert is_open(SPECS["CAL-NIGHT"], ny(2026, 5, 10, 0))
    with pytest.raises(ValueError):
        is_open(bh, datetime(2026, 5, 4, 9))


# ---------------------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------------------
def test_from_mapping_platform_shape():
    spec = SPECS["CAL-BH-EST"]
    assert spec.kind == "business_hours" and spec.timezone == "America/New_York"
    assert spec.weekly_hours[0] == ((time(9), time(17)),) and 5 not in spec.weekly_hours
    assert spec.holiday_country == "US" and spec.observed
    assert SPECS["CAL-247"].timezone == "UTC"
    assert SPECS["CAL-EU"].weekly_hours[0] == ((time(8), time(12)), (time(13), time(17, 30)))
    assert SPECS["CAL-EU"].extra_closed_dates == frozenset({date(2026, 12, 24), date(2026, 12, 31)})
    assert SPECS["CAL-NIGHT"].weekly_hours[4] == ((time(20), time(0)),)  # 24:00 -> time(0, 0)
    assert SPECS["CAL-WD"].weekly_hours[0] == ((time(0), time(0)),)


def bh(**over):
    m = {"kind": "business_hours", "timezone": "America/New_York", "hours": {"mon": [["09:00", "17:00"]]}}
    m.update(over)
    return m


@pytest.mark.parametrize(
    "mapping, message",
    [
        (bh(timezone="America/New_Yrok"), "calendars.X.timezone: unknown time zone 'America/New_Yrok'"),
        (
            bh(hours={"mon": [["18:00", "09:00"]]}),
            "calendars.X.hours.mon[0]: opening 18:00 is not before closing 09:00",
        ),
        (bh(kind="sometimes"), "calendars.X.kind: unknown kind 'sometimes'"),
        ({"timezone": "UTC"}, "calendars.X.kind: missing"),
        (bh(holidays={"country": "XX"}), "calendars.X.holidays.country: unknown holiday country 'XX'"),
        (
            bh(holidays={"country": "US", "subdivision": "ZZ"}),
            "calendars.X.holidays.subdivision: unknown subdivision 'ZZ'",
        ),
        (
            bh(hours={"mon": [["09:00", "13:00"], ["12:00", "14:00"]]}),
            "calendars.X.hours.mon[1]: window 12:00-14:00 overlaps 09:00-13:00",
        ),
        (
            bh(holidays={"country": "US", "extra": ["2026-02-30"]}),
            "calendars.X.holidays.extra[0]: not a date '2026-02-30'",
        ),
        (
            bh(holidays={"country": "US", "removed": ["tomorrow"]}),
            "calendars.X.holidays.removed[0]: not a date 'tomorrow'",
        ),
        (bh(hours={"mon": [["09:00", "25:00"]]}), "calendars.X.hours.mon[0]: not a time '25:00'"),
        (bh(hours={"mon": [["24:00", "24:00"]]}), "calendars.X.hours.mon[0]: 24:00 is only allowed as a closing time"),
        (bh(hours={"mon": [["09:00", 1020]]}), "calendars.X.hours.mon[0]: expected a quoted"),
        (bh(hours={"funday": [["09:00", "17:00"]]}), "calendars.X.hours.funday: unknown weekday"),
        (bh(hours={"mon": ["09:00-17:00"]}), "calendars.X.hours.mon[0]: expected a pair"),
        (bh(hours={}), "calendars.X.hours: missing or empty"),
        (bh(timezone=None), "calendars.X.timezone: missing"),
        (bh(holidays={"country": "US", "observed": "yes"}), "calendars.X.holidays.observed: expected true or false"),
        (bh(holidays={"country": "US", "obsreved": True}), "calendars.X.holidays.obsreved: unknown key"),
        (bh(colour="red"), "calendars.X.colour: unknown key"),
        (
            {"kind": "working_days", "timezone": "Europe/Berlin", "days": ["mon", "fry"]},
            "calendars.X.days[1]: unknown weekday 'fry'",
        ),
        ({"kind": "working_days", "timezone": "Europe/Berlin"}, "calendars.X.days: missing or empty"),
        (
            {"kind": "always_open", "hours": {"mon": [["09:00", "17:00"]]}},
            "calendars.X.hours: not allowed for an always_open calendar",
        ),
        ("nonsense", "calendars.X: expected a mapping"),
    ],
)
def test_from_mapping_errors(mapping, message):
    with pytest.raises(CalendarError) as exc:
        CalendarSpec.from_mapping("X", mapping)
    assert str(exc.value).startswith(message), str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_shipped_policy_calendars_parse():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parent.parent / "policies").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for cal_id, mapping in (doc.get("calendars") or {}).items():
            CalendarSpec.from_mapping(cal_id, mapping)


_NIGHT_REF = RefCalendar(CAL_MAPPINGS["CAL-NIGHT"], date(2026, 1, 1), date(2026, 12, 31))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.integers(min_value=0, max_value=330 * 86400 - 1).map(lambda s: utc(2026, 1, 10) + timedelta(seconds=s)),
        st.tuples(
            st.sampled_from([w[i] for w in _NIGHT_REF.windows[5:-5] for i in (0, 1)]),
            st.integers(min_value=-2, max_value=2),
        ).map(lambda p: p[0] + timedelta(seconds=p[1])),
    )
)
def test_is_open_agrees_with_reference_windows(t):
    expected = any(ws <= t < we for ws, we, _ in _NIGHT_REF.windows)
    assert is_open(SPECS["CAL-NIGHT"], t) == expected


# ---------------------------------------------------------------------------------------------------------
# working-day deadlines that end at a closing instant (issue 13 item 3), hand-computed
# ---------------------------------------------------------------------------------------------------------
LON = ZoneInfo("Europe/London")
CLOSING_MAPPINGS = {
    **CAL_MAPPINGS,
    "CAL-WD-LON": {
        "kind": "working_days",
        "timezone": "Europe/London",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "holidays": {"country": "GB", "observed": True},
    },
    # a custom working week (Sunday-Thursday) with an extra closed date
    "CAL-WD-CUSTOM": {
        "kind": "working_days",
        "timezone": "America/New_York",
        "days": ["sun", "mon", "tue", "wed", "thu"],
        "holidays": {"country": "US", "observed": True, "extra": ["2026-06-17"]},
    },
}
CLOSING_SPECS = {k: CalendarSpec.from_mapping(k, v) for k, v in CLOSING_MAPPINGS.items()}


def lon(*a) -> datetime:
    return datetime(*a, tzinfo=LON)


def due_of(cal_id, started, target_days=None, target_seconds=None):
    row = {
        "clock_key": 1,
        "calendar_id": cal_id,
        "started_at": started.isoformat(),
        "target_seconds": target_seconds,
        "target_days": target_days,
    }
    got = run_engine([row], utc(2027, 1, 1), CLOSING_SPECS)[1]
    return got["clock_started_at"], got["due_at"]


@pytest.mark.parametrize(
    "cal_id, started, days, clock_start, due",
    [
        # Saturday / Sunday, at local midnight and later: starts Monday 00:00; 5 days end Friday 24:00 (not Monday 00:00)
        ("CAL-WD-NY", ny(2026, 5, 2, 10), 5, ny(2026, 5, 4), ny(2026, 5, 9)),
        ("CAL-WD-NY", ny(2026, 5, 2), 5, ny(2026, 5, 4), ny(2026, 5, 9)),
        ("CAL-WD-NY", ny(2026, 5, 3), 5, ny(2026, 5, 4), ny(2026, 5, 9)),
        ("CAL-WD-NY", ny(2026, 5, 7), 2, ny(2026, 5, 7), ny(2026, 5, 9)),  # Thursday 00:00: Thu + Fri
        ("CAL-WD-NY", ny(2026, 5, 6, 12), 2, ny(2026, 5, 6, 12), ny(2026, 5, 8, 12)),  # mid-day keeps its wall time
        ("CAL-WD-NY", ny(2026, 5, 7, 12), 2, ny(2026, 5, 7, 12), ny(2026, 5, 11, 12)),
        # the day before a holiday: Thanksgiving (Thursday 2026-11-26) -> Wednesday 24:00
        ("CAL-WD-NY", ny(2026, 11, 23), 3, ny(2026, 11, 23), ny(2026, 11, 26)),
        # the day before an observed holiday: July 4 is a Saturday, observed Friday July 3 -> Thursday 24:00
        ("CAL-WD-NY", ny(2026, 6, 30), 3, ny(2026, 6, 30), ny(2026, 7, 3)),
        # a clock started on the holiday itself starts at the next opening: Monday 2026-07-06 00:00
        ("CAL-WD-NY", ny(2026, 7, 3, 8), 5, ny(2026, 7, 6), ny(2026, 7, 11)),
        # an extra closed date (Wednesday 2026-06-17) and a Sunday-Thursday week: Thursday ends at 24:00
        ("CAL-WD-CUSTOM", ny(2026, 6, 15), 2, ny(2026, 6, 15), ny(2026, 6, 17)),
        ("CAL-WD-CUSTOM", ny(2026, 6, 13, 9), 4, ny(2026, 6, 14), ny(2026, 6, 19)),  # Sat -> Sun; Sun Mon Tue Thu
        # across both New York DST switches
        ("CAL-WD-NY", ny(2026, 3, 5), 2, ny(2026, 3, 5), ny(2026, 3, 7)),  # Friday 24:00 EST
        ("CAL-WD-NY", ny(2026, 3, 5), 3, ny(2026, 3, 5), ny(2026, 3, 10)),  # Monday 24:00 EDT
        ("CAL-WD-NY", ny(2026, 3, 7, 10), 5, ny(2026, 3, 9), ny(2026, 3, 14)),  # weekend of the switch
        ("CAL-WD-NY", ny(2026, 10, 30), 1, ny(2026, 10, 30), ny(2026, 10, 31)),  # Friday 24:00 EDT
        ("CAL-WD-NY", ny(2026, 10, 31, 1), 5, ny(2026, 11, 2), ny(2026, 11, 7)),  # Friday 24:00 EST
        # Europe/London: both switches, Good Friday, Christmas and the observed Boxing Day (Monday 28th)
        ("CAL-WD-LON", lon(2026, 3, 27), 1, lon(2026, 3, 27), lon(2026, 3, 28)),  # Friday 24:00 GMT
        ("CAL-WD-LON", lon(2026, 3, 28, 12), 4, lon(2026, 3, 30), lon(2026, 4, 3)),  # Mon-Thu, then Good Friday
        ("CAL-WD-LON", lon(2026, 3, 28, 12), 5, lon(2026, 3, 30), lon(2026, 4, 7)),  # ... and Monday (open in GB)
        ("CAL-WD-LON", lon(2026, 10, 22), 2, lon(2026, 10, 22), lon(2026, 10, 24)),  # Friday 24:00 BST
        ("CAL-WD-LON", lon(2026, 12, 23), 2, lon(2026, 12, 23), lon(2026, 12, 25)),
        ("CAL-WD-LON", lon(2026, 12, 24, 15), 2, lon(2026, 12, 24, 15), lon(2026, 12, 30, 15)),
    ],
)
def test_working_day_deadline_at_a_closing_instant(cal_id, started, days, clock_start, due):
    assert due_of(cal_id, started, target_days=days) == (clock_start, due)


def test_hand_computed_utc_instants_of_closing_deadlines():
    # the same instants as UTC (so that the zone arithmetic of the expectations above is checked too)
    assert due_of("CAL-WD-NY", ny(2026, 5, 2, 10), 5)[1] == utc(2026, 5, 9, 4)
    assert due_of("CAL-WD-NY", ny(2026, 3, 5), 2)[1] == utc(2026, 3, 7, 5)
    assert due_of("CAL-WD-NY", ny(2026, 10, 31, 1), 5)[1] == utc(2026, 11, 7, 5)
    assert due_of("CAL-WD-LON", lon(2026, 3, 28, 12), 4)[1] == utc(2026, 4, 2, 23)
    assert due_of("CAL-WD-LON", lon(2026, 10, 22), 2)[1] == utc(2026, 10, 23, 23)


@pytest.mark.parametrize(
    "started, days, seconds, due",
    [
        (ny(2026, 5, 4, 9), None, 40 * H, ny(2026, 5, 8, 17)),  # 40 business hours: Friday 17:00
        (ny(2026, 5, 2, 10), None, 40 * H, ny(2026, 5, 8, 17)),  # started Saturday
        (ny(2026, 5, 2, 10), 5, None, ny(2026, 5, 8, 17)),  # 5 working days: Friday closing, not Monday
        (ny(2026, 5, 4, 9), 5, None, ny(2026, 5, 8, 17)),
        (ny(2026, 11, 23, 9), None, 24 * H, ny(2026, 11, 25, 17)),  # before Thanksgiving
        (ny(2026, 11, 23, 9), 3, None, ny(2026, 11, 25, 17)),
        (ny(2026, 6, 30, 9), 3, None, ny(2026, 7, 2, 17)),  # before the observed July 3
        (ny(2026, 3, 6, 9), 1, None, ny(2026, 3, 6, 17)),  # Friday before the spring switch
        (ny(2026, 5, 6, 12), 2, None, ny(2026, 5, 8, 12)),  # mid-day keeps its wall time
    ],
)
def test_business_hours_deadline_at_a_closing_instant(started, days, seconds, due):
    assert due_of("CAL-BH-EST", started, target_days=days, target_seconds=seconds)[1] == due


def test_response_and_open_clock_around_a_friday_closing_deadline():
    due = ny(2026, 5, 9)  # Saturday 2026-05-02 start, 5 working days -> Friday 24:00
    rows = [
        {
            "clock_key": k,
            "calendar_id": "CAL-WD-NY",
            "started_at": ny(2026, 5, 2, 10).isoformat(),
            "stopped_at": stop.isoformat() if stop else None,
            "target_days": 5,
        }
        for k, stop in enumerate([due, due + timedelta(seconds=1), ny(2026, 5, 10, 12), None])
    ]
    got = run_engine(rows, ny(2026, 5, 12), CLOSING_SPECS)
    assert {g["due_at"] for g in got.values()} == {due}
    assert got[0]["stopped_at"] <= got[0]["due_at"]  # on time
    assert got[1]["stopped_at"] > got[1]["due_at"]  # one second later: a breach
    assert got[2]["stopped_at"] > got[2]["due_at"]  # a weekend answer is late
    assert got[0]["elapsed_seconds"] == got[1]["elapsed_seconds"] == 5 * 86400
    for as_of, remaining in (
        (due - timedelta(seconds=1), 1),
        (due, None),
        (due + timedelta(seconds=1), None),
        (ny(2026, 5, 10, 12), None),
    ):
        open_clock = run_engine([rows[3]], as_of, CLOSING_SPECS)[3]
        assert open_clock["due_at"] == due
        assert open_clock["remaining_seconds"] == remaining, as_of


@pytest.mark.parametrize(
    "as_of, state",
    [
        (utc(2026, 11, 13, 23, 59, 59), "active"),
        (utc(2026, 11, 14), "active"),
        (utc(2026, 11, 14, 0, 0, 1), "breached"),
        (utc(2026, 11, 15, 12), "breached"),
    ],
)
def test_email_support_open_ticket_around_friday_closing(con, as_of, state):
    from conftest import load_staged_tickets

    from compliance.policy import load_policy
    from compliance.rules.ticket_clocks import evaluate_ticket_clocks

    load_staged_tickets(
        con, [{"ticket_id": "G-OPEN", "channel": "technical", "tier": "general", "created_at": utc(2026, 11, 5)}]
    )
    evaluate_ticket_clocks(con, load_policy("email-support"), as_of)
    assert con.execute("SELECT due_at, state FROM ticket_sla").fetchall() == [(utc(2026, 11, 14), state)]


# ---------------------------------------------------------------------------------------------------------
# random calendars, starts and targets against the day-by-day reference
# ---------------------------------------------------------------------------------------------------------
_WINDOW_SETS = [
    [["09:00", "17:00"]],
    [["08:00", "12:00"], ["13:00", "17:30"]],
    [["00:00", "24:00"]],
    [["00:00", "03:00"], ["22:00", "24:00"]],
    [["01:30", "02:30"]],
    [["00:30", "01:30"]],
    [["10:00", "14:00"]],
]
_ZONES = ["America/New_York", "Europe/London", "Europe/Berlin", "UTC"]
_RANDOM_FIRST, _RANDOM_LAST = date(2025, 12, 1), date(2028, 6, 30)


@st.composite
def random_calendars(draw):
    zone = draw(st.sampled_from(_ZONES))
    if draw(st.booleans()):
        days = sorted(draw(st.sets(st.sampled_from(DAYS), min_size=1)), key=DAYS.index)
        mapping = {"kind": "working_days", "timezone": zone, "days": days}
    else:
        hours = draw(st.dictionaries(st.sampled_from(DAYS), st.sampled_from(_WINDOW_SETS), min_size=1))
        mapping = {"kind": "business_hours", "timezone": zone, "hours": hours}
    if draw(st.booleans()):
        extra = draw(st.lists(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=6))
        mapping["holidays"] = {
            "country": draw(st.sampled_from(["US", "GB", None])),
            "observed": draw(st.booleans()),
            "extra": [d.isoformat() for d in extra],
        }
    return mapping


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mapping=random_calendars(), data=st.data())
def test_random_calendars_match_the_reference(mapping, data):
    spec = CalendarSpec.from_mapping("R", mapping)
    ref = RefCalendar(mapping, _RANDOM_FIRST, _RANDOM_LAST)
    if len(ref.windows) < 200:
        return  # a calendar open a few hours a year: nothing to compare
    tz = ZoneInfo(mapping["timezone"])
    in_2026 = [w for w in ref.windows if utc(2026, 1, 1) <= w[0] < utc(2027, 1, 1)]
    weekly_open = sum(ref.open_seconds(w[0], w[1]) for w in in_2026) // 52
    as_of = utc(2026, 9, 1)
    rows, expect = [], {}
    for key in range(data.draw(st.integers(1, 12))):
        how = data.draw(st.sampled_from(["instant", "midnight", "boundary"]))
        if how == "instant":
            s = utc(2026, 1, 1) + timedelta(seconds=data.draw(st.integers(0, 364 * 86400)))
        elif how == "midnight":
            d = data.draw(st.dates(date(2026, 1, 1), date(2026, 12, 31)))
            s = ref_local_to_utc(tz, datetime(d.year, d.month, d.day))
        else:
            w = data.draw(st.sampled_from(in_2026))
            s = w[data.draw(st.integers(0, 1))] + timedelta(seconds=data.draw(st.sampled_from([0, 1, -1])))
        by_days = mapping["kind"] == "working_days" or data.draw(st.booleans())
        if by_days:
            tdays, tsec = data.draw(st.integers(0, 15)), None
            due = ref.due_working_days(s, tdays)
        else:
            tdays, tsec = None, data.draw(st.integers(0, 6 * weekly_open))
            due = ref.due(s, tsec)
        stop = data.draw(st.sampled_from([None, due, due + timedelta(seconds=1), due - timedelta(seconds=1)]))
        rows.append(
            {
                "clock_key": key,
                "calendar_id": "R",
                "started_at": s.isoformat(),
                "stopped_at": stop.isoformat() if stop else None,
                "target_seconds": tsec,
                "target_days": tdays,
            }
        )
        remaining = ref.open_seconds(as_of, due) if stop is None and as_of < due else None
        expect[key] = (ref.effective_start(s)[0], due, ref.open_seconds(s, stop or as_of), remaining)
    got = run_engine(rows, as_of, {"R": spec})
    for key, expected in expect.items():
        g = got[key]
        assert (g["clock_started_at"], g["due_at"], g["elapsed_seconds"], g["remaining_seconds"]) == expected, (
            mapping,
            rows[key],
        )


def test_as_of_after_the_last_window_of_a_sparse_calendar():
    """Open Fridays and Saturdays only; a clock started Thursday 2026-01-01 and still running at as-of Tuesday
    2026-09-01. The expansion ran three days past as-of (to Friday 09-04, exclusive), so its last window was
    Saturday 08-29 and as-of's day had no lookup row: the elapsed time came out NULL. By hand: 35 Fridays
    (01-02 .. 08-28) and 35 Saturdays (01-03 .. 08-29) of 8 hours = 2,016,000 s."""
    spec = CalendarSpec.from_mapping(
        "R",
        {
            "kind": "business_hours",
            "timezone": "America/New_York",
            "hours": {"fri": [["09:00", "17:00"]], "sat": [["09:00", "17:00"]]},
        },
    )
    row = {"clock_key": 0, "calendar_id": "R", "started_at": "2026-01-01T00:00:00+00:00", "stopped_at": None}
    got = run_engine([{**row, "target_seconds": 0, "target_days": None}], datetime(2026, 9, 1, tzinfo=UTC), {"R": spec})
    assert got[0]["clock_started_at"] == datetime(2026, 1, 2, 14, 0, tzinfo=UTC)  # Friday 09:00 EST
    assert got[0]["elapsed_seconds"] == 70 * 8 * 3600


def test_clocks_without_working_day_targets_are_computed_as_among_them():
    """Without any target_days the engine leaves out the lookups only working-day clocks need: the same clocks
    computed beside one working-day clock (every lookup in the statement) give the same values."""
    rng = random.Random(19)
    rows = []
    for key in range(300):
        start = utc(2026, 1, 1) + timedelta(seconds=rng.randrange(300 * 86400))
        stop = start + timedelta(seconds=rng.randrange(60, 30 * 86400)) if rng.random() < 0.7 else None
        rows.append(
            {
                "clock_key": key,
                "calendar_id": rng.choice(["CAL-247", "CAL-BH-EST", "CAL-EU", "CAL-NIGHT", "CAL-WD", "CAL-WD-NY"]),
                "started_at": start.isoformat(),
                "stopped_at": stop.isoformat() if stop else None,
                "target_seconds": rng.choice([None, 0, 3600, 16 * 3600, 5 * 86400]),
                "target_days": None,
            }
        )
    working_day_clock = {**rows[0], "clock_key": 10_000, "target_seconds": None, "target_days": 3}
    as_of = utc(2026, 11, 1)
    alone = run_engine(rows, as_of)
    beside = run_engine([*rows, working_day_clock], as_of)
    columns = ("clock_started_at", "due_at", "elapsed_seconds", "remaining_seconds")
    assert {k: tuple(r[c] for c in columns) for k, r in alone.items()} == {
        k: tuple(beside[k][c] for c in columns) for k in alone
    }
