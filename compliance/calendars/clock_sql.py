"""The SQL that :func:`compliance.calendars.engine.compute_clocks` runs: F(t) lookups by UTC day and the inverse
lookup by open-time bucket, over integer epoch microseconds."""

from __future__ import annotations

from compliance.calendars.zones import DAY0, DAY_US, US_PER_SECOND
from compliance.core.sql import table_ref


def _ts(expr: str) -> str:
    """SQL: epoch microseconds -> TIMESTAMPTZ, independent of the session time zone. ``make_timestamptz(µs)``
    (DuckDB since 0.8.1, duckdb/duckdb#7597) builds the instant from the integer itself: exact for every
    microsecond, and at 1M clocks a sixth of the time of ``timezone('UTC', make_timestamp(µs))``, which converts
    through the zone's rules."""
    return f"make_timestamptz(({expr})::BIGINT)"


def build_clock_sql(
    clocks_table: str,
    output_table: str,
    as_of_us: int,
    tsec: str,
    tdays: str,
    t_cal: str,
    t_fb: str,
    t_qb: str,
    t_day: str,
    k_day: int,
    k_q: int,
    by_days: bool = True,
) -> str:
    """The statement that fills ``output_table``. ``by_days`` False says that no clock has a working-day target
    (every ``target_days`` is NULL): the lookups only such a clock needs (its start and last working day, F at its
    wall-clock due, the closing before it) are left out, four of the seven joins, with the same results."""

    def rel(t: str, a: str) -> str:  # microseconds since the start of a's UTC day
        return f"({t} - ({a}.b - {DAY0}) * {DAY_US})"

    def f_of(t: str, a: str) -> str:  # F(t), day bucket alias a
        x = rel(t, a)
        terms = " + ".join(f"least(greatest({x} - {a}.s{k}, 0), {a}.e{k} - {a}.s{k})" for k in range(k_day))
        return f"({a}.f0 + {terms})"

    def eff_start(t: str, a: str) -> str:  # t when open, else the next opening
        x = rel(t, a)
        whens = " ".join(f"WHEN {x} < {a}.e{k} THEN {t} + greatest({a}.s{k} - {x}, 0)" for k in range(k_day))
        return f"(CASE {whens} ELSE {a}.nx END)"

    def eff_wdi(t: str, a: str) -> str:
        x = rel(t, a)
        whens = " ".join(f"WHEN {x} < {a}.e{k} THEN {a}.w{k}" for k in range(k_day))
        return f"(CASE {whens} ELSE {a}.nx_wdi END)"

    def inverse(x: str, q: str) -> str:  # instant where F reaches x, open-time bucket alias q
        whens = " ".join(f"WHEN {x} <= {q}.o{k} + {q}.l{k} THEN {q}.s{k} + ({x} - {q}.o{k})" for k in range(k_q))
        return f"(CASE {whens} END)"

    def wall_to_utc(d: str, wall: str) -> str:
        return (
            f"CASE WHEN {d}.trans IS NULL OR {wall} < {d}.wb THEN {d}.mid + {wall} - {d}.off_b "
            f"WHEN {wall} < {d}.wa THEN {d}.trans ELSE {d}.mid + {wall} - {d}.off_a END"
        )

    def day_no(t: str) -> str:
        return f"(({t}) // {DAY_US} + CASE WHEN ({t}) < 0 AND ({t}) % {DAY_US} <> 0 THEN -1 ELSE 0 END + {DAY0})"

    out, clocks = table_ref(output_table), table_ref(clocks_table)
    wall_clock_due = (
        wall_to_utc(
            "d1",
            "(__effective_start_us + CASE WHEN d0.trans IS NULL OR __effective_start_us < d0.trans THEN d0.off_b "
            "ELSE d0.off_a END - d0.mid)",
        )
        if by_days
        else "NULL"
    )
    working_days_joins = f"""
        LEFT JOIN {t_day} AS d0 ON open_time_due.__by_days AND d0.cal_no = open_time_due.__cal_no AND d0.wdi = open_time_due.__start_working_day
        LEFT JOIN {t_day} AS d1 ON open_time_due.__by_days AND d1.cal_no = open_time_due.__cal_no
                               AND d1.wdi = open_time_due.__start_working_day + open_time_due.__target"""
    open_time_at_wall_clock_due = f_of("__due_us", "g") if by_days else "NULL"
    wall_clock_due_join = f"""
        LEFT JOIN {t_fb} AS g ON due_instant.__by_days AND due_instant.__cal_kind <> 'always_open' AND g.cal_no = due_instant.__cal_no
                             AND g.b = {day_no("due_instant.__due_us")}"""
    closing_before = f"""CASE WHEN __by_days AND __cal_kind <> 'always_open' AND __target > 0
                    THEN {inverse("open_time_at_due.__open_before_due", "r")} ELSE __due_us END"""
    closing_before_join = f"""
        -- a NULL key for the other clocks: they never probe the lookup table
        LEFT JOIN {t_qb} AS r ON r.cal_no = open_time_at_due.__cal_no
                             AND r.qk = CASE WHEN open_time_at_due.__by_days AND open_time_at_due.__cal_kind <> 'always_open' AND open_time_at_due.__target > 0
                                             THEN (open_time_at_due.__open_before_due - 1) // open_time_at_due.__bucket_us END"""
    tsec_c = "c.target_seconds" if tsec == "target_seconds" else tsec
    tdays_c = "c.target_days" if tdays == "target_days" else tdays
    return f"""
    CREATE OR REPLACE TEMP TABLE {out} AS
    WITH on_calendar AS (
        SELECT c.*,
               k.cal_no AS __cal_no, k.kind AS __cal_kind, k.q AS __bucket_us,
               epoch_us(c.started_at) AS __start_us,
               coalesce(epoch_us(c.stopped_at), {as_of_us}::BIGINT) AS __end_us,
               CASE WHEN k.kind = 'working_days' THEN coalesce({tdays_c}, {tsec_c})
                    ELSE coalesce({tsec_c}, {tdays_c}) END AS __target,
               CASE WHEN k.kind = 'working_days' THEN {tdays_c} IS NOT NULL
                    ELSE {tsec_c} IS NULL AND {tdays_c} IS NOT NULL END AS __by_days
        FROM {clocks} AS c LEFT JOIN {t_cal} AS k ON c.calendar_id = k.calendar_id
    ),
    open_time_at_ends AS (   -- F(start), effective start and its working-day index; F(end)
        SELECT on_calendar.*,
               CASE WHEN __cal_kind = 'always_open' THEN __start_us ELSE {f_of("__start_us", "a")} END AS __open_before_start,
               CASE WHEN __cal_kind = 'always_open' THEN __start_us ELSE {eff_start("__start_us", "a")} END AS __effective_start_us,
               {eff_wdi("__start_us", "a")} AS __start_working_day,
               CASE WHEN __cal_kind = 'always_open' THEN __end_us ELSE {f_of("__end_us", "b")} END AS __open_before_end
        FROM on_calendar
        LEFT JOIN {t_fb} AS a ON a.cal_no = on_calendar.__cal_no AND a.b = {day_no("on_calendar.__start_us")}
        LEFT JOIN {t_fb} AS b ON b.cal_no = on_calendar.__cal_no AND b.b = {day_no("on_calendar.__end_us")}
    ),
    open_time_due AS (
        SELECT open_time_at_ends.*,
               CASE WHEN __by_days OR __target IS NULL OR __target <= 0 OR __cal_kind = 'always_open'
                    THEN NULL ELSE __open_before_start + __target * {US_PER_SECOND} END AS __due_open_time
        FROM open_time_at_ends
    ),
    due_instant AS (   -- due instant; for working-day targets first the same wall time on the last working day
        SELECT open_time_due.*,
               CASE WHEN __target IS NULL OR __cal_kind IS NULL THEN NULL
                    WHEN __target <= 0 THEN __effective_start_us
                    WHEN __cal_kind = 'always_open' AND __by_days THEN __start_us + __target * {DAY_US}
                    WHEN __cal_kind = 'always_open' THEN __start_us + __target * {US_PER_SECOND}
                    WHEN NOT __by_days THEN {inverse("__due_open_time", "q")}
                    ELSE {wall_clock_due}
               END AS __due_us
        FROM open_time_due
        LEFT JOIN {t_qb} AS q ON q.cal_no = open_time_due.__cal_no AND q.qk = (open_time_due.__due_open_time - 1) // open_time_due.__bucket_us{working_days_joins if by_days else ""}
    ),
    open_time_at_due AS (   -- F(due): exact for open-seconds targets; looked up for working-day targets
        SELECT due_instant.*,
               CASE WHEN __due_us IS NULL THEN NULL
                    WHEN __cal_kind = 'always_open' THEN __due_us
                    WHEN __target <= 0 THEN __open_before_start
                    WHEN NOT __by_days THEN __due_open_time
                    ELSE {open_time_at_wall_clock_due} END AS __open_before_due
        FROM due_instant{wall_clock_due_join if by_days else ""}
    ),
    due_at_closing AS (   -- a working-day deadline is the first instant its open time is used up: when the wall-clock due
              -- is an opening (00:00 after a weekend) or closed, that is the closing before it ("Reading rules")
        SELECT open_time_at_due.* REPLACE ({closing_before if by_days else "__due_us"} AS __due_us)
        FROM open_time_at_due{closing_before_join if by_days else ""}
    )
    SELECT * EXCLUDE (__cal_no, __cal_kind, __bucket_us, __start_us, __end_us, __target, __by_days, __open_before_start, __effective_start_us, __start_working_day,
                      __open_before_end, __due_open_time, __due_us, __open_before_due),
           CASE WHEN __start_us IS NOT NULL AND __cal_kind IS NOT NULL THEN {_ts("__effective_start_us")} END AS clock_started_at,
           CASE WHEN __start_us IS NOT NULL AND __cal_kind IS NOT NULL THEN {_ts("__due_us")} END AS due_at,
           CASE WHEN __start_us IS NOT NULL AND __cal_kind IS NOT NULL THEN (__open_before_end - __open_before_start) // {US_PER_SECOND} END
                AS elapsed_seconds,
           CASE WHEN __start_us IS NOT NULL AND __cal_kind IS NOT NULL AND stopped_at IS NULL AND __due_us IS NOT NULL
                     AND {as_of_us} < __due_us
                THEN (__open_before_due - __open_before_end + {US_PER_SECOND - 1}) // {US_PER_SECOND} END AS remaining_seconds
    FROM due_at_closing
    """
