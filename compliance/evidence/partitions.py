"""Monthly partitions of the staged data: one Parquet file per source and month, in a Hive layout.

``<root>/<source>/month=YYYY-MM/part-0.parquet`` holds the staged rows whose month (UTC) is that month. A month is
written as a whole and moved into place, so re-running one month replaces that month's files and nothing else,
and a reader (DuckDB ``read_parquet('<root>/*/*/*.parquet', hive_partitioning = true)``, or any engine reading
object storage) never sees half a month.
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


def write_month(con: duckdb.DuckDBPyConnection, root: Path, month: str) -> dict[str, int]:
    """Write every staged source's rows of ``month`` (YYYY-MM); returns rows written per source."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    written = {}
    for source in SOURCES.values():
        table = f"staged_{source.name}"
        if not table_exists(con, table) or not any(column.kind == "timestamp" for column in source.columns):
            continue
        rows = (
            f"SELECT * FROM {table} WHERE {month_sql(source)} >= {lit(start.isoformat())}::TIMESTAMPTZ "
            f"AND {month_sql(source)} < {lit(end.isoformat())}::TIMESTAMPTZ"
        )
        target = root / source.name / f"month={month}" / "part-0.parquet"
        with replacing(target) as temporary:
            con.execute(f"COPY ({rows} ORDER BY source_file, source_line) TO {lit(str(temporary))} (FORMAT parquet)")
        written[source.name] = con.execute(f"SELECT count(*) FROM ({rows})").fetchall()[0][0]
    return written
