"""The SQL toolkit every layer uses: values as literals (``lit``, ``ts_lit``), identifiers (``ident``), the
explanation macros (``cr_ts``, ``cr_dur``, ...), and small questions about the warehouse (``table_exists``,
``stored_in_order``).

Values go into executed SQL as bound parameters where the statement is run directly; ``lit`` and ``ts_lit`` are for
SQL text that is composed and run later (views, generated clock SQL), ``ident`` for every identifier.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import duckdb

_MACROS = [
    # The UTC wall time of a TIMESTAMPTZ as a TIMESTAMP, i.e. timezone('UTC', t), straight from the epoch: a
    # time-zone conversion costs twenty times as much (+-infinity has no epoch and takes the conversion).
    """CREATE OR REPLACE TEMP MACRO cr_utc(t) AS
           CASE WHEN isfinite(t) THEN make_timestamp(epoch_us(t)) ELSE timezone('UTC', t) END""",
    # A timestamp as a compliance officer reads it, always in UTC; seconds only when they matter.
    """CREATE OR REPLACE TEMP MACRO cr_ts(t) AS CASE
           WHEN t IS NULL THEN 'never'
           WHEN date_part('second', cr_utc(t)) = 0 AND date_part('microsecond', cr_utc(t)) = 0
               THEN strftime(cr_utc(t), '%Y-%m-%d %H:%M UTC')
           ELSE strftime(cr_utc(t), '%Y-%m-%d %H:%M:%S UTC') END""",
    # A non-negative number of seconds in words: "3 days 23 h 12 min", "1 s", "0 s".
    """CREATE OR REPLACE TEMP MACRO cr_dur(s) AS CASE
           WHEN s IS NULL THEN 'an unknown time'
           WHEN CAST(abs(s) AS BIGINT) = 0 THEN '0 s'
           ELSE concat_ws(' ',
               CASE WHEN CAST(abs(s) AS BIGINT) // 86400 = 1 THEN '1 day'
                    WHEN CAST(abs(s) AS BIGINT) // 86400 > 1 THEN (CAST(abs(s) AS BIGINT) // 86400) || ' days' END,
               CASE WHEN CAST(abs(s) AS BIGINT) % 86400 // 3600 > 0 THEN (CAST(abs(s) AS BIGINT) % 86400 // 3600) || ' h' END,
               CASE WHEN CAST(abs(s) AS BIGINT) % 3600 // 60 > 0 THEN (CAST(abs(s) AS BIGINT) % 3600 // 60) || ' min' END,
               CASE WHEN CAST(abs(s) AS BIGINT) % 60 > 0 THEN (CAST(abs(s) AS BIGINT) % 60) || ' s' END)
           END""",
    # Whole seconds from a to b, rounded up so that a breach by a fraction of a second never shows as 0.
    "CREATE OR REPLACE TEMP MACRO cr_secs(a, b) AS CAST(ceil((epoch_us(b) - epoch_us(a)) / 1e6) AS BIGINT)",
    # Exact duration from a to b in seconds (DOUBLE), for the duration statistics.
    "CREATE OR REPLACE TEMP MACRO cr_span(a, b) AS (epoch_us(b) - epoch_us(a)) / 1e6",
]


# The temporary macros ``install_macros`` makes, the only ones the package makes.
MACRO_NAMES = tuple(re.match(r"CREATE OR REPLACE TEMP MACRO (\w+)", statement).group(1) for statement in _MACROS)


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    for statement in _MACROS:
        con.execute(statement)


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    # fetchall, not fetchone: a result left unfinished blocks the next use of the connection (DuckDB 2)
    rows = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()
    return bool(rows[0][0])


# A table stored in the order its readers want says so in its comment, so that they need not sort it again: a
# scan returns the rows in insertion order while preserve_insertion_order is on (DuckDB's default). Replacing the
# table drops the comment.
_STORED_ORDER = "stored in order: "


def mark_stored_order(con: duckdb.DuckDBPyConnection, table: str, order_by: str) -> None:
    """Record that ``table`` was filled by one INSERT ... ORDER BY ``order_by``."""
    con.execute(f"COMMENT ON TABLE {table} IS {lit(_STORED_ORDER + order_by)}")


def order_in_comment(comment: str | None) -> str | None:
    """The order a table's comment says it is stored in (:func:`mark_stored_order`); None without one."""
    return comment[len(_STORED_ORDER) :] if comment and comment.startswith(_STORED_ORDER) else None


def stored_in_order(con: duckdb.DuckDBPyConnection, table: str, order_by: str) -> bool:
    """Whether a scan of ``table`` returns its rows ordered by ``order_by`` (see :func:`mark_stored_order`)."""
    rows = con.execute(
        "SELECT comment, current_setting('preserve_insertion_order') FROM duckdb_tables() "
        "WHERE table_name = ? AND NOT temporary AND database_name = current_database() "
        "AND schema_name = current_schema()",
        [table],
    ).fetchall()
    return len(rows) == 1 and rows[0][0] == _STORED_ORDER + order_by and bool(rows[0][1])


def column_names(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    """The column names of a table or view, in order (from the cursor: no data frame library is loaded)."""
    return [column[0] for column in con.execute(f"SELECT * FROM {relation} LIMIT 0").description]


def lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def table_ref(name: str) -> str:
    """A table name as SQL: a plain (optionally dotted) name as written, anything else quoted as one identifier."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name) else ident(name)


def ts_lit(moment: datetime) -> str:
    """A TIMESTAMPTZ literal for a tz-aware datetime (a naive one is read as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"TIMESTAMPTZ '{moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}+00'"


def seconds_interval(seconds: int | float) -> str:
    return f"to_microseconds(CAST({int(round(seconds * 1_000_000))} AS BIGINT))"
