"""The set-based clock engine: :func:`compute_clocks` maps every clock onto the expanded calendars (see the
package docstring for the readings it implements)."""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

import duckdb
import polars as pl

from compliance.calendars.clock_sql import build_clock_sql
from compliance.calendars.parsing import CalendarError, CalendarSpec
from compliance.calendars.windows import Expansion, day_windows_sec, expand
from compliance.calendars.zones import DAY0, DAY_US, US_PER_SECOND, local_date_of, to_us
from compliance.core.sql import table_ref

# ----------------------------------------------------------------------------------------------------------
# the clock engine
# ----------------------------------------------------------------------------------------------------------
_OUTPUT_COLUMNS = ("clock_started_at", "due_at", "elapsed_seconds", "remaining_seconds")
_REQUIRED = ("calendar_id", "started_at", "stopped_at")
_MAX_HORIZON_YEARS = 60


def compute_clocks(
    con: duckdb.DuckDBPyConnection,
    specs: Mapping[str, CalendarSpec],
    clocks_table: str,
    output_table: str,
    as_of: datetime,
) -> None:
    """Compute every clock of ``clocks_table`` into ``output_table`` (a temporary table, created or replaced),
    set-based. Clocks are intermediate results: a table of the warehouse file would cost four times as much to
    write, compressed for keeps.

    Input columns: ``clock_key`` (unique, any type), ``calendar_id`` VARCHAR, ``started_at`` TIMESTAMPTZ,
    ``stopped_at`` TIMESTAMPTZ NULL, ``target_seconds`` BIGINT NULL and/or ``target_days`` BIGINT NULL (a
    missing column counts as NULL), plus any other columns, passed through unchanged.

    Output: the input columns plus ``clock_started_at`` (TIMESTAMPTZ), ``due_at`` (TIMESTAMPTZ, NULL without a
    target), ``elapsed_seconds`` (BIGINT, open seconds from started_at to stopped_at, or to as_of while not
    stopped) and ``remaining_seconds`` (BIGINT, open seconds from as_of to due_at while not stopped and
    as_of < due_at, else NULL).  Rows with NULL started_at or calendar_id get NULL computed columns; an
    unknown calendar_id raises CalendarError.

    Working-day deadlines (``target_days``): the effective start lies on local date d0, the i0-th working day,
    at local wall time t0.  The wall-clock due is wall time t0 on the working day with index i0 + target_days,
    converted to UTC with the zone's rules of THAT day (so a deadline across a DST change keeps its wall time;
    a t0 inside that day's spring-forward gap maps to the transition instant, an ambiguous one to the first
    occurrence).  The due instant is the first instant at which the open time up to the wall-clock due is
    used up: the wall-clock due itself when it lies inside an open window, else the closing before it.  So a
    clock that starts at an opening (00:00 of a working day, the 09:00 opening of a business day) is due at
    the closing of its last working day: a deadline whose last day is a Friday or the day before a holiday is
    due at that day's closing ("Reading rules"), not at the next opening.  A clock started on a closed day
    starts at 00:00 of the next working day (for a business_hours calendar: at its next opening), so t0 is
    that opening's wall time.  On an always_open calendar a working day is 24 h: due = started_at +
    target_days * 86400 s.
    """
    # How it works, set-based.  Per calendar, Python expands the windows (per local day; a few thousand rows)
    # and builds two small lookup tables that DuckDB hash-joins on integer keys (this replaced ASOF joins,
    # which were ~10x slower on 10M rows because they sort the wide probe side):
    #   * "day buckets": one row per UTC day b with F0 = open time before the day, the day's windows clipped
    #     to it (slots s_i, e_i, relative microseconds, sorted, zero-padded) and the next opening after it.
    #     F(t) = F0 + sum_i clamp(t - day_start - s_i, 0, e_i - s_i): exactly the ASOF formula of the brief.
    #   * "open-time buckets": the inverse.  Cumulative open time is cut into buckets of Q microseconds
    #     (Q >= the calendar's shortest window, so a bucket meets only a few windows); for x = F(start) +
    #     target the due window is the first slot with x <= open_before + length.
    as_of_us = to_us(as_of, "as_of")
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {table_ref(clocks_table)}").fetchall()]
    missing = [c for c in _REQUIRED if c not in cols]
    if missing:
        raise CalendarError(f"{clocks_table}: missing column(s) {', '.join(missing)}")
    clash = [c for c in _OUTPUT_COLUMNS if c in cols]
    if clash:
        raise CalendarError(f"{clocks_table}: input already has output column(s) {', '.join(clash)}")
    tsec = "target_seconds" if "target_seconds" in cols else "NULL::BIGINT"
    tdays = "target_days" if "target_days" in cols else "NULL::BIGINT"

    # per-calendar extent of the data (one small aggregate)
    stats = con.execute(
        f"""
        SELECT calendar_id, epoch_us(min(least(started_at, coalesce(stopped_at, started_at)))),
               epoch_us(max(started_at)),
               epoch_us(max(greatest(started_at, coalesce(stopped_at, started_at)))),
               max({tsec}), max({tdays})
        FROM {table_ref(clocks_table)} WHERE started_at IS NOT NULL GROUP BY calendar_id
        """
    ).fetchall()
    unknown = sorted(str(r[0]) for r in stats if r[0] is not None and r[0] not in specs)
    if unknown:
        raise CalendarError(f"{clocks_table}.calendar_id: unknown calendar(s) {', '.join(unknown)}")

    cal_rows: list[tuple[str, int, str, int]] = []
    built: list[tuple[int, Expansion, int, int]] = []
    for cal_no, (cal_id, min_t, max_s, max_anchor, max_tsec, max_tdays) in enumerate(stats):
        if cal_id is None:
            continue
        spec = specs[cal_id]
        if spec.kind == "always_open":
            cal_rows.append((cal_id, cal_no, spec.kind, 1))
            continue
        lo = min(min_t, as_of_us)
        exp = _expand_for_clocks(spec, lo, max_s, max(max_anchor, as_of_us), max_tsec, max_tdays)
        lens = [e - s for s, e in zip(exp.ws, exp.we, strict=False)]
        q = max(min(lens) if lens else DAY_US, 600 * US_PER_SECOND)
        cal_rows.append((cal_id, cal_no, spec.kind, q))
        built.append((cal_no, exp, lo, q))

    # A clock counts working days only when its target_days is set: without any, its lookups are left out.
    by_days = any(row[5] is not None for row in stats if row[0] is not None)
    day_buckets, k_day = _day_buckets(built)
    q_buckets, k_q = _open_time_buckets(built)
    days = _day_table(built)

    tag = uuid.uuid4().hex[:12]
    t_cal, t_fb, t_qb, t_day = (f"__cal_{n}_{tag}" for n in ("k", "fb", "qb", "day"))
    frames = {
        t_cal: pl.DataFrame(
            cal_rows,
            orient="row",
            schema={"calendar_id": pl.String, "cal_no": pl.Int64, "kind": pl.String, "q": pl.Int64},
        ),
        t_fb: day_buckets,
        t_qb: q_buckets,
        t_day: days,
    }
    try:
        for name, frame in frames.items():
            con.register(f"{name}_src", frame)
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_src")
            con.unregister(f"{name}_src")
        con.execute(
            build_clock_sql(
                clocks_table, output_table, as_of_us, tsec, tdays, t_cal, t_fb, t_qb, t_day, k_day, k_q, by_days
            )
        )
    finally:
        for name in frames:
            con.execute(f"DROP TABLE IF EXISTS {name}")


def _expand_for_clocks(
    spec: CalendarSpec, min_t: int, max_s: int, max_anchor: int, max_tsec: int | None, max_tdays: int | None
) -> Expansion:
    """Windows from before the earliest instant to well past every instant and deadline we need."""
    first = local_date_of(spec, min_t) - timedelta(days=2)
    last = local_date_of(spec, max_anchor) + timedelta(days=3)
    need_open = max(max_tsec or 0, 0) * US_PER_SECOND
    need_days = max(max_tdays or 0, 0)
    cap = local_date_of(spec, max_anchor) + timedelta(days=366 * _MAX_HORIZON_YEARS)
    weekly_open = sum(c - o for wd in range(7) for o, c in day_windows_sec(spec, wd)) * US_PER_SECOND
    start_day = local_date_of(spec, max_s)
    while True:
        exp = expand(spec, first, last)
        k = bisect.bisect_left(exp.ws, max_s)  # windows starting at or after the latest start
        open_after = sum(e - s for s, e in zip(exp.ws[k:], exp.we[k:], strict=False))
        days_after = sum(1 for _i, d, _ in exp.days if d > start_day)
        # margin: one more working day and a window beyond the furthest deadline; and a window ending after the
        # latest instant read (a stop or as-of after the last window of a sparse calendar has a day bucket too)
        covered = k < len(exp.ws) and exp.we[-1] > max_anchor
        if (open_after > need_open and days_after >= need_days + 2 and covered) or last >= cap:
            return exp
        weeks = (need_open - open_after) / max(weekly_open, 1) + (need_days - days_after) / 5 + 2
        last = min(cap, last + timedelta(days=max(366, int(max(weeks, 0) * 7 * 1.5))))


def _day_no(us: int) -> int:
    return us // DAY_US + DAY0


def _day_buckets(built: list[tuple[int, Expansion, int, int]]) -> tuple[pl.DataFrame, int]:
    """One row per calendar and UTC day: F0, the windows clipped to the day, the next opening after it."""
    rows: list[tuple] = []
    k_max = 1
    for cal_no, exp, lo, _q in built:
        ws, we, wdi = exp.ws, exp.we, exp.wwdi
        n = len(ws)
        b_first = _day_no(min(lo, ws[0] if n else lo)) - 1
        b_last = _day_no(we[-1] if n else lo) + 1
        i = 0  # first window that ends after the bucket start
        f0 = 0  # open time before the bucket start
        for b in range(b_first, b_last + 1):
            b0 = (b - DAY0) * DAY_US
            b1 = b0 + DAY_US
            while i < n and we[i] <= b0:
                i += 1
            slots = []
            j = i
            while j < n and ws[j] < b1:
                slots.append((max(ws[j], b0) - b0, min(we[j], b1) - b0, wdi[j]))
                j += 1
            # next opening at or after the bucket end: the first window starting at/after b1 (a window that
            # crosses b1 is in this bucket's slots, so any t of this bucket past the slots is before it)
            nx = j
            while nx < n and ws[nx] < b1:
                nx += 1
            k_max = max(k_max, len(slots))
            rows.append((cal_no, b, f0, ws[nx] if nx < n else None, wdi[nx] if nx < n else None, slots))
            # F0 of the next bucket
            f0 += sum(e - s for s, e, _ in slots)
    data: dict[str, list] = {"cal_no": [], "b": [], "f0": [], "nx": [], "nx_wdi": []}
    for k in range(k_max):
        data[f"s{k}"], data[f"e{k}"], data[f"w{k}"] = [], [], []
    for cal_no, b, f0, nx, nx_wdi, slots in rows:
        data["cal_no"].append(cal_no)
        data["b"].append(b)
        data["f0"].append(f0)
        data["nx"].append(nx)
        data["nx_wdi"].append(nx_wdi)
        for k in range(k_max):
            s, e, w = slots[k] if k < len(slots) else (0, 0, None)  # zero-length padding never matches
            data[f"s{k}"].append(s)
            data[f"e{k}"].append(e)
            data[f"w{k}"].append(w)
    return pl.DataFrame(data, schema={c: pl.Int64 for c in data}), k_max


def _open_time_buckets(built: list[tuple[int, Expansion, int, int]]) -> tuple[pl.DataFrame, int]:
    """Inverse of F: bucket key = (x - 1) // Q over cumulative open time x; slots (osb, window_start, length)."""
    buckets: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for cal_no, exp, _lo, q in built:
        acc = 0
        for s, e in zip(exp.ws, exp.we, strict=False):
            length = e - s
            for key in range(acc // q, (acc + length - 1) // q + 1):
                buckets.setdefault((cal_no, key), []).append((acc, s, length))
            acc += length
    k_max = max((len(v) for v in buckets.values()), default=1)
    data: dict[str, list] = {"cal_no": [], "qk": []}
    for k in range(k_max):
        data[f"o{k}"], data[f"s{k}"], data[f"l{k}"] = [], [], []
    for (cal_no, key), slots in buckets.items():
        data["cal_no"].append(cal_no)
        data["qk"].append(key)
        for k in range(k_max):
            o, s, ln = slots[k] if k < len(slots) else (None, None, None)
            data[f"o{k}"].append(o)
            data[f"s{k}"].append(s)
            data[f"l{k}"].append(ln)
    return pl.DataFrame(data, schema={c: pl.Int64 for c in data}), k_max


def _day_table(built: list[tuple[int, Expansion, int, int]]) -> pl.DataFrame:
    cols = ("cal_no", "wdi", "mid", "off_b", "off_a", "trans", "wb", "wa")
    data: dict[str, list] = {c: [] for c in cols}
    for cal_no, exp, _lo, _q in built:
        for idx, _d, info in exp.days:
            for c, v in zip(
                cols,
                (cal_no, idx, info.mid_us, info.off_before, info.off_after, info.trans_us, info.wb, info.wa),
                strict=False,
            ):
                data[c].append(v)
    return pl.DataFrame(data, schema={c: pl.Int64 for c in cols})
