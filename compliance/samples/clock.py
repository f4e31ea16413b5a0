"""The generator's business-hours clock: an hourly table over the calendar of the shipped platform profile.

The calendar itself (zone, weekly hours, holidays) is the policy's ``CAL-BH-EST``, read with
:func:`compliance.policy.load_policy` and expanded by :mod:`compliance.calendars` (``open_windows`` for the open
hours, ``closed_dates`` for the holidays, ``CalendarSpec.zone`` for the local time); nothing about it is declared
here.  What stays here is the arithmetic the generator needs and the clock engine does not offer: numpy, in
memory, over an hourly table (``cum`` = open seconds before each hour), so that a million tickets get their
business-hour first responses in one vectorised step.

Why :meth:`BusinessClock.add_business` does not call :func:`compliance.calendars.compute_clocks`: the engine
is DuckDB SQL over a clocks table (a connection and a query per chunk, where this is one numpy step), and two
readings differ, both of which the sample bytes depend on: a business-time sum ending exactly at a closing time
is the closing instant in the engine ("Reading rules") but the next opening here (``searchsorted(...,
side="right")``), and a sum past the table's end is clipped to its last open second here.  Using the engine
would change the generated files for a given seed.

The hourly table equals the one the generator built before it read the calendar (checked for every as-of date
from 2019-12-20 to 2034-01-10), except for one reading now taken from :func:`closed_dates`: an observed holiday
on the table's first local day that belongs to the next year (2021-12-31 for 2022-01-01, 2027-12-31 for
2028-01-01) is now closed.  Those are evening hours 400 days before as-of, before any generated record, so no
file changes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from compliance.calendars import CalendarSpec, closed_dates, open_windows
from compliance.calendars.zones import EPOCH_DATE, US_PER_SECOND

HOUR = 3600
DAY = 86400
SAMPLE_PROFILE = "platform"  # the shipped policy whose business-hours calendar the samples follow
SAMPLE_CALENDAR = "CAL-BH-EST"


def sample_calendar() -> CalendarSpec:
    """The business-hours calendar of the shipped platform profile (policies/platform.yaml)."""
    from compliance.policy import load_policy

    return load_policy(SAMPLE_PROFILE).calendars[SAMPLE_CALENDAR]


class BusinessClock:
    """Hourly table around as_of: local weekday/hour, closed dates and business-hour arithmetic of ``spec``.

    The table needs a calendar whose windows open and close on whole UTC hours (the open state is constant
    within each hour); any other calendar is refused.
    """

    def __init__(self, spec: CalendarSpec, as_of: int, days_before: int = 400, days_after: int = 800):
        self.as_of = as_of
        self.base = (as_of // HOUR) * HOUR - days_before * DAY
        n = (days_before + days_after) * 24
        self.hours = self.base + np.arange(n, dtype=np.int64) * HOUR
        zone = spec.zone
        # UTC offset of the calendar's zone for each hour (transitions happen on hour boundaries)
        offsets = np.array(
            [datetime.fromtimestamp(int(h), zone).utcoffset().total_seconds() for h in self.hours], dtype=np.int64
        )
        local = self.hours + offsets
        local_day = local // DAY
        self.weekday = ((local_day + 3) % 7).astype(np.int8)  # 1970-01-01 was a Thursday; Monday = 0
        self.local_hour = ((local % DAY) // HOUR).astype(np.int8)
        first = datetime.fromtimestamp(int(self.hours[0]), zone).date()
        last = datetime.fromtimestamp(int(self.hours[-1]), zone).date()
        closed = np.array(sorted((d - EPOCH_DATE).days for d in closed_dates(spec, first, last)), dtype=np.int64)
        self.holiday = np.isin(local_day, closed)
        self.open = self._open_hours(spec)
        self.cum = np.concatenate([[0], np.cumsum(self.open.astype(np.int64) * HOUR)])

    def _open_hours(self, spec: CalendarSpec) -> np.ndarray:
        """Hours of the table inside an open window of ``spec`` (from ``open_windows``)."""
        start = datetime.fromtimestamp(int(self.hours[0]), UTC)
        end = datetime.fromtimestamp(int(self.hours[-1]) + HOUR, UTC)
        windows = open_windows(spec, start, end)
        ws = windows.get_column("window_start").dt.epoch("us").to_numpy() // US_PER_SECOND
        we = windows.get_column("window_end").dt.epoch("us").to_numpy() // US_PER_SECOND
        if np.any(ws % HOUR) or np.any(we % HOUR):
            raise ValueError(f"calendar {spec.id}: the sample clock needs windows on whole hours")
        i = np.searchsorted(ws, self.hours, side="right") - 1
        return (i >= 0) & (self.hours < we[np.maximum(i, 0)])

    def _hidx(self, t: np.ndarray) -> np.ndarray:
        return np.clip((t - self.base) // HOUR, 0, len(self.hours) - 1)

    def business_seconds(self, t: np.ndarray) -> np.ndarray:
        h = self._hidx(t)
        frac = t - self.hours[h]
        return self.cum[h] + np.where(self.open[h], frac, 0)

    def add_business(self, t: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """Instant when ``seconds`` of business time have elapsed after ``t`` (always inside open hours)."""
        b = np.minimum(self.business_seconds(t) + seconds, self.cum[-1] - 1)
        h = np.searchsorted(self.cum[1:], b, side="right")
        return self.base + h * HOUR + (b - self.cum[h])

    def arrival_weights(self, start: int, end: int, growth: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
        """Hour starts in [start, end) and their relative ticket arrival weights."""
        sel = (self.hours >= start) & (self.hours < end)
        wd = np.array([1.15, 1.15, 1.10, 1.05, 0.90, 0.45, 0.40])[self.weekday[sel]]
        hour_curve = np.array(
            [
                0.25,
                0.20,
                0.18,
                0.18,
                0.20,
                0.28,
                0.40,
                0.60,
                0.90,
                1.30,
                1.55,
                1.60,
                1.55,
                1.55,
                1.60,
                1.50,
                1.35,
                1.05,
                0.80,
                0.65,
                0.55,
                0.45,
                0.38,
                0.30,
            ]
        )
        hr = hour_curve[self.local_hour[sel]]
        hol = np.where(self.holiday[sel], 0.55, 1.0)
        t = self.hours[sel]
        trend = 1.0 + growth * (t - start) / max(end - start, 1)
        w = wd * hr * hol * trend
        return t, w / w.sum()


def sample_times(rng: np.random.Generator, hour_starts: np.ndarray, p: np.ndarray, n: int) -> np.ndarray:
    counts = rng.multinomial(n, p)
    t = np.repeat(hour_starts, counts) + rng.integers(0, HOUR, n)
    t.sort()
    return t


def lognormal(rng: np.random.Generator, median: np.ndarray | float, sigma: float, n: int) -> np.ndarray:
    return (np.asarray(median, dtype=np.float64) * np.exp(rng.normal(0.0, sigma, n))).astype(np.int64)
