"""Business-hours calendars and a set-based (vectorised) clock engine.

The package by job: ``parsing`` (the policy's ``calendars:`` into :class:`CalendarSpec`), ``zones`` (local days,
offsets, DST transitions), ``windows`` (a calendar expanded into open windows), ``clock_sql`` (the SQL of the
clock engine), ``engine`` (:func:`compute_clocks`).

Calendars (commitments catalog, "Calendars"; policies/*.yaml ``calendars:``) come in three kinds:

* ``always_open``    -- wall-clock time on the real (UTC) timeline (CAL-247).
* ``business_hours`` -- weekly opening windows in an IANA zone, minus holidays (CAL-BH-EST).
* ``working_days``   -- whole local days (00:00-24:00) on the listed weekdays, minus holidays; deadlines are
  counted in working days (TG-GENERAL, TG-COMPLEX).

The clock engine (:func:`compute_clocks`) never loops per clock in Python: the calendar is expanded once into
open windows (one row per window per local day, a few thousand rows), and every clock is mapped onto them with
set-based DuckDB joins.  With ``F(t)`` = open time before instant ``t``:

    F(t)    = open_seconds_before(w) + clamp(t - w.window_start, 0, length(w)),  w = last window starting <= t
    elapsed = F(coalesce(stopped_at, as_of)) - F(started_at)
    due     = w.window_start + (F(started_at) + target - open_seconds_before(w)) for the window w with
              open_seconds_before(w) < F(started_at) + target <= open_seconds_before(w) + length(w)

Instead of ASOF joins (a first version used them; same results, but ~5x slower because they sort the wide
probe side) the "last window starting <= t" lookup is a hash join on (calendar, UTC day of t) against a small
table holding, per UTC day, F at the day's start and the day's windows clipped to it; the inverse lookup is a
hash join on (calendar, bucket of cumulative open time).  All arithmetic is on integer epoch microseconds, so
results are exact.

Its cost on large inputs is measured by ``scripts/bench.py`` (README, "Performance").

Reading decisions (signed by compliance officers, so written down here):

* Windows are half-open ``[open, close)``: an instant exactly at closing time is closed; a clock started then
  starts at the next opening.  A due instant reached exactly at closing time is the closing instant
  ("Reading rules"), never the next opening.
* Local wall times are converted with ``zoneinfo``: a wall time inside a spring-forward gap maps forward to the
  next valid instant (the transition itself); an ambiguous wall time on fall-back uses ``fold=0`` (the first
  occurrence).  So a window on a DST-change day has its real length.
* A clock started in a closed period (night, weekend, holiday) starts at the calendar's next opening
  (``clock_started_at``).
* ``due_at`` for a target of 0 (or less) is ``clock_started_at``.
* Closed time never counts: a clock due at 17:00 closing and stopped at 17:00:01 has ``elapsed_seconds`` equal
  to its target.  The verdict ("one second later is a breach") must compare ``stopped_at > due_at``, not
  elapsed against target.
* An unknown ``calendar_id`` in the clocks raises :class:`CalendarError` (a configuration error, not a data
  row to skip); rows with NULL ``started_at`` or ``calendar_id`` get NULL computed columns.
* ``elapsed_seconds`` is ``F(end) - F(started_at)`` truncated to whole seconds; it is negative when the end
  precedes the start (bad data, left visible on purpose).  ``remaining_seconds`` is rounded up to whole seconds
  (an active clock with 0.4 s left shows 1 s, never 0).
* Which target applies: a ``working_days`` calendar uses ``target_days`` when it is not NULL, else
  ``target_seconds``; the other kinds use ``target_seconds`` when not NULL, else ``target_days``.
* Working-day deadlines: see :func:`compute_clocks`; one that ends at a closing instant (Friday 24:00, the
  day before a holiday) is due at that instant, not at the next opening.
* Holidays: the ``holidays`` package with ``observed`` as configured (with ``observed: true`` both the holiday
  and its observed weekday are closed, e.g. 2026-07-03 and 2026-07-04 for the US), plus ``extra`` dates, minus
  ``removed`` dates.

"""

from __future__ import annotations

from compliance.calendars.engine import compute_clocks
from compliance.calendars.parsing import KINDS, WEEKDAYS, CalendarError, CalendarSpec, did_you_mean
from compliance.calendars.windows import closed_dates, is_open, open_windows

__all__ = [
    "KINDS",
    "WEEKDAYS",
    "CalendarError",
    "CalendarSpec",
    "closed_dates",
    "compute_clocks",
    "did_you_mean",
    "is_open",
    "open_windows",
]
