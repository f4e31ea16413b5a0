"""A calendar expanded into its open windows (one per window per local day, minus closed dates)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import holidays as holidays_lib
import polars as pl

from compliance.calendars.parsing import CalendarSpec
from compliance.calendars.zones import (
    DAY_US,
    EPOCH_DATE,
    US_PER_SECOND,
    DayInfo,
    day_info,
    from_us,
    local_date_of,
    time_to_sec,
    to_us,
)


def day_windows_sec(spec: CalendarSpec, weekday: int) -> list[tuple[int, int]]:
    return [
        (time_to_sec(o, closing=False), time_to_sec(c, closing=True)) for o, c in spec.weekly_hours.get(weekday, ())
    ]


# ----------------------------------------------------------------------------------------------------------
# holidays
# ----------------------------------------------------------------------------------------------------------
def closed_dates(spec: CalendarSpec, first: date, last: date) -> set[date]:
    """Closed dates in [first, last]: library holidays (observed as configured) + extra - removed."""
    out: set[date] = set()
    if first > last:
        return out
    if spec.holiday_country:
        # one year either side: an observed day can fall in the neighbouring year (2021-12-31 for 2022-01-01)
        years = list(range(first.year - 1, last.year + 2))
        hol = holidays_lib.country_holidays(
            spec.holiday_country, subdiv=spec.holiday_subdivision, years=years, observed=spec.observed
        )
        out.update(d for d in hol if first <= d <= last)
    out.update(d for d in spec.extra_closed_dates if first <= d <= last)
    out.difference_update(spec.removed_holidays)
    return out


# ----------------------------------------------------------------------------------------------------------
# windows
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Expansion:
    """Windows and working days of one calendar over [first, last] local dates (epoch microseconds)."""

    ws: list[int]
    we: list[int]
    wdate: list[date]
    wwdi: list[int]
    days: list[tuple[int, date, DayInfo]]  # (working_day_index, local_date, info)


def expand(spec: CalendarSpec, first: date, last: date) -> Expansion:
    tz = spec.zone
    closed = closed_dates(spec, first, last)
    exp = Expansion([], [], [], [], [])
    wdi = 0
    d = first
    one = timedelta(days=1)
    while d <= last:
        wins = day_windows_sec(spec, d.weekday()) if d not in closed else []
        if wins:
            info = day_info(tz, d)
            added = False
            for o, c in wins:
                s, e = info.to_utc(o * US_PER_SECOND), info.to_utc(c * US_PER_SECOND)
                if e > s:  # a window entirely inside a DST gap has no length
                    exp.ws.append(s)
                    exp.we.append(e)
                    exp.wdate.append(d)
                    exp.wwdi.append(wdi)
                    added = True
            if added:
                exp.days.append((wdi, d, info))
                wdi += 1
        d += one
    return exp


_WINDOW_SCHEMA = {
    "calendar_id": pl.String,
    "window_start": pl.Datetime("us", "UTC"),
    "window_end": pl.Datetime("us", "UTC"),
    "open_seconds_before": pl.Int64,
    "local_date": pl.Date,
    "working_day_index": pl.Int64,
}


def open_windows(spec: CalendarSpec, start: datetime, end: datetime) -> pl.DataFrame:
    """Open windows intersecting [start, end) (whole windows, not clipped), in time order.

    ``open_seconds_before`` is cumulative over earlier rows of this table; ``working_day_index`` counts the
    working days (local dates with an open window) of this table from 0.  An always_open calendar yields one
    window per UTC day.  Adjacent windows (24:00 and 00:00 of the next day) are kept apart, not merged.
    """
    s_us, e_us = to_us(start, "start"), to_us(end, "end")
    if spec.kind == "always_open":
        d0 = from_us(s_us).date()
        d1 = from_us(max(e_us - 1, s_us)).date()
        n = (d1 - d0).days + 1 if e_us > s_us else 0
        dates = [d0 + timedelta(days=i) for i in range(n)]
        ws = [(d - EPOCH_DATE).days * DAY_US for d in dates]
        we = [w + DAY_US for w in ws]
        wdate = dates
    else:
        first = local_date_of(spec, s_us) - timedelta(days=1)
        last = local_date_of(spec, e_us) + timedelta(days=1)
        exp = expand(spec, first, last)
        keep = [i for i in range(len(exp.ws)) if exp.we[i] > s_us and exp.ws[i] < e_us]
        ws = [exp.ws[i] for i in keep]
        we = [exp.we[i] for i in keep]
        wdate = [exp.wdate[i] for i in keep]
    osb, acc = [], 0
    for a, b in zip(ws, we, strict=False):
        osb.append(acc // US_PER_SECOND)
        acc += b - a
    wdi, idx, prev = [], -1, None
    for d in wdate:
        if d != prev:
            idx += 1
            prev = d
        wdi.append(idx)
    return pl.DataFrame(
        {
            "calendar_id": [spec.id] * len(ws),
            "window_start": [from_us(x) for x in ws],
            "window_end": [from_us(x) for x in we],
            "open_seconds_before": osb,
            "local_date": wdate,
            "working_day_index": wdi,
        },
        schema=_WINDOW_SCHEMA,
    )


def is_open(spec: CalendarSpec, instant: datetime) -> bool:
    """Is the calendar open at this tz-aware instant?  (Slow and obvious; windows are [open, close).)"""
    us = to_us(instant)
    if spec.kind == "always_open":
        return True
    d = local_date_of(spec, us)
    exp = expand(spec, d - timedelta(days=1), d + timedelta(days=1))
    return any(s <= us < e for s, e in zip(exp.ws, exp.we, strict=False))
