"""Zone arithmetic on integer epoch microseconds: local days, their UTC offsets and DST transitions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from compliance.calendars.parsing import CalendarSpec

US_PER_SECOND = 1_000_000
DAY_US = 86_400 * US_PER_SECOND
DAY0 = 800_000  # UTC day numbers are shifted by this so that integer division never sees negative values
EPOCH_DATE = date(1970, 1, 1)
_UTC = UTC


def time_to_sec(t: time, *, closing: bool) -> int:
    s = t.hour * 3600 + t.minute * 60 + t.second
    if closing and s == 0:
        return 86_400
    return s


# ----------------------------------------------------------------------------------------------------------
# local wall time -> UTC
# ----------------------------------------------------------------------------------------------------------
def _offset_us(tz: ZoneInfo, utc_us: int) -> int:
    dt = datetime(1970, 1, 1, tzinfo=_UTC) + timedelta(microseconds=utc_us)
    return int(dt.astimezone(tz).utcoffset() / timedelta(microseconds=1))


@dataclasses.dataclass(frozen=True)
class DayInfo:
    """Enough of a zone's rules for one local date to turn any wall time of that date into UTC in SQL.

    mid_us: naive local midnight as epoch microseconds; off_before/off_after: UTC offsets before/after the
    (at most one) transition of the day at UTC instant trans_us; wb/wa: wall time (microseconds after midnight)
    of the transition read with the offset before/after.  wall t -> UTC:
      t < wb: mid + t - off_before;  wb <= t < wa (spring-forward gap): trans_us;  else mid + t - off_after.
    (For fall-back wa < wb: the repeated wall times t < wb take the first occurrence, i.e. fold=0.)
    """

    mid_us: int
    off_before: int
    off_after: int
    trans_us: int | None
    wb: int | None
    wa: int | None

    def to_utc(self, wall_us: int) -> int:
        if self.trans_us is None or wall_us < self.wb:
            return self.mid_us + wall_us - self.off_before
        if wall_us < self.wa:
            return self.trans_us
        return self.mid_us + wall_us - self.off_after


def day_info(tz: ZoneInfo, d: date) -> DayInfo:
    mid_us = (d - EPOCH_DATE).days * DAY_US
    naive = datetime(d.year, d.month, d.day)
    o_start = int(naive.replace(tzinfo=tz, fold=0).utcoffset() / timedelta(microseconds=1))
    nxt = naive + timedelta(days=1)
    o_end = int(nxt.replace(tzinfo=tz, fold=0).utcoffset() / timedelta(microseconds=1))
    if o_start == o_end:
        return DayInfo(mid_us, o_start, o_start, None, None, None)
    # the transition T satisfies mid - o_start <= T <= mid + 1 day - o_start; find the first instant (whole
    # second) whose offset is o_end
    lo = (mid_us - o_start) // US_PER_SECOND - 1  # offset o_start here
    hi = (mid_us + DAY_US - o_start) // US_PER_SECOND  # offset o_end here
    while hi - lo > 1:
        m = (lo + hi) // 2
        if _offset_us(tz, m * US_PER_SECOND) == o_start:
            lo = m
        else:
            hi = m
    t_us = hi * US_PER_SECOND
    return DayInfo(mid_us, o_start, o_end, t_us, t_us + o_start - mid_us, t_us + o_end - mid_us)


def to_us(instant: datetime, what: str = "instant") -> int:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {instant!r}")
    delta = instant.astimezone(_UTC) - datetime(1970, 1, 1, tzinfo=_UTC)
    return delta // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=_UTC) + timedelta(microseconds=us)


def local_date_of(spec: CalendarSpec, us: int) -> date:
    return from_us(us).astimezone(spec.zone).date()
