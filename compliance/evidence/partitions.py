"""Monthly partitions of the staged data: one Parquet file per source and month, in a Hive layout.

``<root>/<source>/month=YYYY-MM/part-0.parquet`` holds the staged rows whose month (UTC) is that month; a ticket
event's month is the month of its ticket (:func:`month_filter`), so that one month's two files hold everything the
ticket clocks of the tickets created that month read (``compliance.evidence.monthly_clocks``). A month is
written as a whole and moved into place, so re-running one month replaces that month's files and nothing else,
and a reader (DuckDB ``read_parquet('<root>/*/*/*.parquet', hive_partitioning = true)``, or any engine reading
object storage) never sees half a month. ``<root>/input_columns/month=YYYY-MM/part-0.parquet`` holds the
warehouse's ``input_columns`` rows of the files the month's rows come from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from compliance.core.files import replacing
from compliance.core.sql import lit, table_exists
from compliance.ingest.contract import SOURCES, Source


def month_sql(source: Source) -> str:
    """The instant a record counts in: its first timestamp column that has a value (for tickets, created_at)."""
    columns = [column.name for column in source.columns if column.kind == "timestamp"]
    return f"coalesce({', '.join(columns)})" if len(columns) > 1 else columns[0]


def month_filter(con: duckdb.DuckDBPyConnection, source: Source, start: datetime, end: datetime) -> str:
    """The SELECT of ``staged_<source>``'s rows whose month instant is in [start, end).

    A ticket event counts in the month of its ticket (an event of an unknown ticket in its own month): a ticket's
    clocks read its whole history, events of later months included, and a partition holding only that month's
    events would judge a ticket answered in the next month as never answered."""
    table = f"staged_{source.name}"
    if source.name == "ticket_events" and table_exists(con, "staged_tickets"):
        rows = (
            f"{table} e LEFT JOIN (SELECT ticket_id, min({month_sql(SOURCES['tickets'])}) AS ticket_month_at "
            "FROM staged_tickets GROUP BY ticket_id) t ON t.ticket_id = e.ticket_id"
        )
        columns, instant = "e.*", f"coalesce(t.ticket_month_at, e.{month_sql(source)})"
    else:
        rows, columns, instant = table, "*", month_sql(source)
    return (
        f"SELECT {columns} FROM {rows} WHERE {instant} >= {lit(start.isoformat())}::TIMESTAMPTZ "
        f"AND {instant} < {lit(end.isoformat())}::TIMESTAMPTZ"
    )


def write_month(con: duckdb.DuckDBPyConnection, root: Path, month: str) -> dict[str, int]:
    """Write every staged source's rows of ``month`` (YYYY-MM); returns rows written per source."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    written, month_rows = {}, []
    for source in SOURCES.values():
        table = f"staged_{source.name}"
        if not table_exists(con, table) or not any(column.kind == "timestamp" for column in source.columns):
            continue
        rows = month_filter(con, source, start, end)
        target = root / source.name / f"month={month}" / "part-0.parquet"
        with replacing(target) as temporary:
            con.execute(f"COPY ({rows} ORDER BY source_file, source_line) TO {lit(str(temporary))} (FORMAT parquet)")
        written[source.name] = con.execute(f"SELECT count(*) FROM ({rows})").fetchall()[0][0]
        month_rows.append(rows)
    if month_rows and table_exists(con, "input_columns"):
        # which contract columns the files of this month's rows carry: a rule reading a column a file lacks
        # excludes that file's items ("not assessed" for it), in a month's evaluation as in the whole run's
        files = " UNION ".join(f"SELECT source_file FROM ({rows})" for rows in month_rows)
        target = root / "input_columns" / f"month={month}" / "part-0.parquet"
        with replacing(target) as temporary:
            con.execute(
                f"COPY (SELECT * FROM input_columns WHERE file IN ({files}) ORDER BY source, file, column_name) "
                f"TO {lit(str(temporary))} (FORMAT parquet)"
            )
    return written
