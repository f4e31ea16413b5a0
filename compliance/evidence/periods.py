"""Report periods: a run for ``2026-Q3``, ``2026-09``, ``2026`` or ``2026-07-01..2026-09-30`` judges only the items
whose clock started in the period.

The period is half-open, ``[start, end)``, in UTC (the policies have no reporting zone of their own): an item whose
clock started exactly at ``end`` belongs to the next period. A range's last day is included (``..2026-09-30``
ends at ``2026-10-01T00:00:00Z``). Which column starts an item's clock is the registry's
(:data:`compliance.rule_kinds.CLOCK_STARTS`).

The one place the period (or a policy version's part of the run) is applied is :func:`restrict_items`: on a rules
step's connection it puts a temporary view in front of every staged table, so each rule module reads only the period's items and every figure,
violation and verdict of the run is the period's, without a filter in any rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb

from compliance.core.sql import ident, lit, table_exists, ts_lit
from compliance.ingest.contract import SOURCES
from compliance.rule_kinds import CLOCK_STARTS, ClockStart

_UNPLACED = set(SOURCES) ^ set(CLOCK_STARTS)
if _UNPLACED:  # an export without a stated clock start would be judged whole in every period, unnoticed
    raise RuntimeError(f"exports missing from (or unknown to) rule_kinds.CLOCK_STARTS: {sorted(_UNPLACED)}")


class PeriodError(ValueError):
    """A --period value that names no period; the message is one line."""


@dataclass(frozen=True)
class ReportPeriod:
    label: str  # as the user wrote it: 2026-Q3, 2026-09, 2026, 2026-07-01..2026-09-30
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC

    def default_as_of(self, now: datetime) -> datetime:
        """The instant the period is judged at without --as-of: its end, or now while the period is running."""
        return min(self.end, now)


_QUARTER = re.compile(r"(\d{4})-Q([1-4])")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_YEAR = re.compile(r"(\d{4})")
_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def parse_period(text: str) -> ReportPeriod:
    """``2026-Q3`` | ``2026-09`` | ``2026`` | ``2026-07-01..2026-09-30`` (both days included) as [start, end)."""
    label = text.strip()
    if match := _QUARTER.fullmatch(label):
        year, quarter = int(match[1]), int(match[2])
        return ReportPeriod(label, _month_start(year, 3 * quarter - 2), _month_start(year, 3 * quarter + 1))
    if match := _MONTH.fullmatch(label):
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise PeriodError(f"--period {text!r}: month {month:02d} does not exist")
        return ReportPeriod(label, _month_start(year, month), _month_start(year, month + 1))
    if match := _YEAR.fullmatch(label):
        year = int(match[1])
        return ReportPeriod(label, _month_start(year, 1), _month_start(year + 1, 1))
    if match := _RANGE.fullmatch(label):
        try:
            first, last = date.fromisoformat(match[1]), date.fromisoformat(match[2])
        except ValueError as error:
            raise PeriodError(f"--period {text!r}: {error}") from None
        if last < first:
            raise PeriodError(f"--period {text!r}: the range ends before it starts")
        return ReportPeriod(label, _midnight(first), _midnight(last) + timedelta(days=1))
    raise PeriodError(
        f"--period {text!r}: not a period (e.g. 2026-Q3, 2026-09, 2026 or 2026-07-01..2026-09-30, days included)"
    )


@dataclass(frozen=True)
class ItemSelection:
    """The items a judging step reads: those whose clock started in [start, end) (None: unbounded on that side).

    ``keep_unknown_start``: the rows whose clock-start column is empty are read too; ``keep_sourceless``: the
    sources without a clock (the retention inventory) are read whole, else not at all. A report period reads those
    sources whole and the rows of unknown start not at all (their start is in no period); of several policy
    versions judging one run, only the newest reads them (:mod:`compliance.evidence.policy_versions`)."""

    start: datetime | None
    end: datetime | None
    keep_unknown_start: bool
    keep_sourceless: bool


def period_selection(period: ReportPeriod) -> ItemSelection:
    return ItemSelection(period.start, period.end, keep_unknown_start=False, keep_sourceless=True)


def restrict_to_period(con: duckdb.DuckDBPyConnection, period: ReportPeriod | None, catalog: str = "") -> None:
    """Put a temporary view named like each staged table in front of it on ``con``, holding the period's rows
    (:func:`restrict_items`); without a period nothing changes."""
    if period is not None:
        restrict_items(con, period_selection(period), catalog)


def restrict_items(con: duckdb.DuckDBPyConnection, selection: ItemSelection, catalog: str = "") -> None:
    """Put a temporary view named like each staged table in front of it on ``con``, holding the selected rows.

    A source with a clock-start column keeps the rows whose clock started in [start, end); a source that follows
    another (events of a ticket, updates of an incident, the vendor's verdicts on a record) keeps the rows of the
    records kept there; a source without a clock (the retention inventory, a snapshot) is kept whole or not at all
    (``keep_sourceless``). The views keep ``rowid`` (the ticket clocks key on it) and live as long as the
    connection, or until :func:`lift_restriction`. ``catalog``: the database holding the staged tables (default:
    the connection's own).
    """
    catalog = catalog or con.execute("SELECT current_database()").fetchall()[0][0]
    for source, clock in CLOCK_STARTS.items():
        table = f"staged_{source}"
        if not table_exists(con, table):
            continue
        if clock is None:
            if selection.keep_sourceless:
                con.execute(f"DROP VIEW IF EXISTS temp.main.{ident(table)}")
                continue
            kept = "false"
        else:
            kept = _kept(con, catalog, clock, selection)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {ident(table)} AS "
            f"SELECT s.rowid AS rowid, s.* FROM {_stored(catalog, table)} s WHERE {kept}"
        )


def lift_restriction(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the views of :func:`restrict_items`: the staged tables are read whole again."""
    for source in CLOCK_STARTS:
        con.execute(f"DROP VIEW IF EXISTS temp.main.{ident(f'staged_{source}')}")


def _kept(con: duckdb.DuckDBPyConnection, catalog: str, clock: ClockStart, selection: ItemSelection) -> str:
    """SQL on a staged row ``s`` of a source with a clock: the row is selected (see :func:`restrict_items`)."""
    if clock.columns:
        kept = _started_in(clock, "s", selection)
    elif clock.follows:
        kept = _record_kept(con, catalog, clock.follows, f"s.{ident(clock.key)}", clock.parent_key, selection)
    else:  # the row names the export of its record
        kept = " OR ".join(
            f"(s.{ident(clock.follows_named_by)} = {lit(parent)} AND "
            f"{_record_kept(con, catalog, parent, f's.{ident(clock.key)}', '', selection)})"
            for parent, parent_clock in CLOCK_STARTS.items()
            if parent_clock is not None and parent_clock.columns
        )
    return kept or "false"


def period_row_counts(con: duckdb.DuckDBPyConnection, period: ReportPeriod) -> dict[tuple[str, str], dict]:
    """(source, file) -> the file's rows that belong to ``period``: ``rows_loaded`` (the staged rows the period's
    views keep), ``rows_quarantined`` (quarantined rows whose clock start parsed into the period, or that name a
    record of the export they follow whose clock started in it) and ``rows_quarantined_not_attributable`` (the
    others: their clock start did not parse, or their record is unknown). A source without a clock start is judged
    whole in every period: all its rows count. The whole files' accounting is the ingest's (``ingest_log``)."""
    # the database holding what the ingest wrote (a period report attaches the warehouse under a name of its own)
    catalog = con.execute(
        "SELECT database_name FROM duckdb_tables() WHERE table_name = 'ingest_log' AND NOT temporary "
        "ORDER BY database_name = current_database() DESC, database_name LIMIT 1"
    ).fetchall()[0][0]
    # a warehouse ingested before the clock starts of quarantined rows were recorded: none is attributable
    starts = (
        "quarantine_clock_starts"
        if table_exists(con, "quarantine_clock_starts")
        else "(SELECT NULL::VARCHAR AS source_file, NULL::BIGINT AS line, NULL::TIMESTAMPTZ AS clock_started_at "
        "WHERE false)"
    )
    selection = period_selection(period)
    counts: dict[tuple[str, str], dict] = {}
    for source, clock in CLOCK_STARTS.items():
        table = f"staged_{source}"
        files = [
            row[0]
            for row in con.execute(
                "SELECT file FROM ingest_log WHERE source = ? AND status = 'loaded' "
                "AND change IS DISTINCT FROM 'superseded'",
                [source],
            ).fetchall()
        ]
        if not files or not table_exists(con, table):
            continue
        loaded = "true" if clock is None else _kept(con, catalog, clock, selection)
        loaded_by_file = dict(
            con.execute(
                f"SELECT source_file, count(*) FILTER (WHERE {loaded}) FROM {_stored(catalog, table)} s "
                "WHERE list_contains($files, source_file) GROUP BY ALL",
                {"files": files},
            ).fetchall()
        )
        parent = f"staged_{clock.follows}" if clock is not None and clock.follows else ""
        if clock is None:
            in_period, attributable = "true", "true"
        elif clock.columns:
            in_period = f"(c.clock_started_at >= {ts_lit(period.start)} AND c.clock_started_at < {ts_lit(period.end)})"
            attributable = "c.clock_started_at IS NOT NULL"
        elif parent and SOURCES[source].record_id == clock.key and table_exists(con, parent):
            # the quarantined row names its record (its ID is the key into the export it follows)
            parent_id = clock.parent_key or SOURCES[clock.follows].record_id
            attributable = f"trim(q.record_id) IN (SELECT {ident(parent_id)} FROM {_stored(catalog, parent)})"
            in_period = _record_kept(con, catalog, clock.follows, "trim(q.record_id)", clock.parent_key, selection)
        else:
            in_period, attributable = "false", "false"
        quarantined_by_file = {
            file: (int(in_count), int(total - known))
            for file, in_count, known, total in con.execute(
                f"""SELECT q.source_file, count(*) FILTER (WHERE {in_period}), count(*) FILTER (WHERE {attributable}),
                           count(*)
                    FROM quarantine q LEFT JOIN {starts} c ON c.source_file = q.source_file AND c.line = q.line
                    WHERE list_contains($files, q.source_file) GROUP BY ALL""",
                {"files": files},
            ).fetchall()
        }
        for file in files:
            quarantined, not_attributable = quarantined_by_file.get(file, (0, 0))
            counts[(source, file)] = {
                "rows_loaded": int(loaded_by_file.get(file, 0)),
                "rows_quarantined": quarantined,
                "rows_quarantined_not_attributable": not_attributable,
            }
    return counts


def _stored(catalog: str, table: str) -> str:
    """The warehouse's own table, past the temporary view of the same name."""
    return f"{ident(catalog)}.main.{ident(table)}"


def _started_in(clock: ClockStart, alias: str, selection: ItemSelection) -> str:
    start = f"coalesce({', '.join(f'{alias}.{ident(column)}' for column in clock.columns)})"
    bounds = [
        *([f"{start} >= {ts_lit(selection.start)}"] if selection.start is not None else []),
        *([f"{start} < {ts_lit(selection.end)}"] if selection.end is not None else []),
    ]
    started = f"({' AND '.join(bounds)})" if bounds else f"{start} IS NOT NULL"
    return f"({started} OR {start} IS NULL)" if selection.keep_unknown_start else started


def _record_kept(
    con: duckdb.DuckDBPyConnection, catalog: str, parent: str, key_sql: str, parent_key: str, selection: ItemSelection
) -> str:
    """SQL: the record ``key_sql`` names in export ``parent`` was selected (false without it)."""
    parent_table = f"staged_{parent}"
    if not table_exists(con, parent_table):
        return "false"
    parent_id = parent_key or SOURCES[parent].record_id
    return (
        f"{key_sql} IN (SELECT p.{ident(parent_id)} FROM {_stored(catalog, parent_table)} p "
        f"WHERE {_started_in(CLOCK_STARTS[parent], 'p', selection)})"
    )


def period_record(period: ReportPeriod | None) -> dict:
    """The manifest's ``period_filter``: which items the run judged, in words an auditor can check."""
    if period is None:
        return {"label": None, "items": "every item in the exports (no --period)"}
    return {
        "label": period.label,
        "items": "items whose clock started in [start, end), UTC; the retention inventory is judged whole",
    }
