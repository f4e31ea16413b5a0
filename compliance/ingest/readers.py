"""Reading an export file as text rows: CSV and JSON Lines (DuckDB's readers, or a streamed UTF-8 copy of a file in
another encoding), Parquet through a view. A file that cannot be read at all is :class:`UnusableFile`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from compliance.core.sql import ident, lit
from compliance.ingest.contract import Source
from compliance.ingest.encodings import (
    MAX_WINDOWS,
    UTF8_CODECS,
    Decoding,
    detect_encoding,
    first_invalid_utf8,
    utf8_copy,
)


class UnusableFile(Exception):
    """The file as a whole cannot be used; the message is one line naming the problem."""


class _NotUtf8(UnusableFile):
    """A file read as UTF-8 holds bytes that are not: it is read again through a decoded copy."""

    def __init__(self, offsets: list[int]) -> None:
        super().__init__("bytes that are not UTF-8")
        self.offsets = offsets  # where, for the detection to look


def read_raw(
    con: duckdb.DuckDBPyConnection, source: Source, path: Path, file_format: str, raw: str, encoding: str | None
) -> tuple[int, Decoding]:
    """Make ``raw`` a temporary view of the file as text columns plus ``source_line``, in file order; returns how
    many records were rejected as malformed, and how the text was decoded (``encoding``, else detected).

    Text never goes into the warehouse file: Parquet is read through the view itself (each pass reads only the
    columns it needs), CSV and JSON Lines through an in-memory temporary table. Writing millions of distinct
    strings (timestamps as text) to the database file would cost more than everything else of the load.
    """
    location = lit(str(path))
    try:
        if file_format in ("csv", "jsonl"):
            read = _read_csv if file_format == "csv" else _read_jsonl
            rejected, decoding = _read_decoded(con, source, path, read, f"{raw}_text", encoding)
        else:
            # Every column read straight into its text form: one parse path for every format.
            reader = f"read_parquet({location}, file_row_number = true)"
            columns = [
                row[0]
                for row in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
                if row[0] not in ("file_row_number", "source_line")
            ]
            casts = ", ".join(f"CAST({ident(name)} AS VARCHAR) AS {ident(name)}" for name in columns)
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {raw} AS SELECT {casts}, file_row_number + 1 AS source_line FROM {reader}"
            )
            return 0, Decoding("utf-8")  # Parquet strings are UTF-8 by the format's definition
        con.execute(f"CREATE OR REPLACE TEMP VIEW {raw} AS SELECT * FROM {raw}_text")
        return rejected, decoding
    except duckdb.Error as error:
        first_line = str(error).strip().splitlines()[0]
        raise UnusableFile(f"cannot be read as {file_format.upper()}: {first_line}") from None


def _read_decoded(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    path: Path,
    read: Callable[..., int],
    text: str,
    encoding: str | None,
) -> tuple[int, Decoding]:
    """Read a text file into table ``text`` with ``read`` (returns the rows it rejected), in its encoding.

    A UTF-8 file is read by DuckDB itself, the fast path. Any other is read through a UTF-8 copy in which the
    bytes that do not decode are U+FFFD (counted), so that a byte never costs its record. Detection samples the
    file; bytes that are not UTF-8 past the samples show when DuckDB reads it: the file is then detected again
    with windows around them, and read through a copy.
    """
    named = encoding is not None
    encoding = encoding or detect_encoding(path)
    if encoding in UTF8_CODECS:
        try:
            return read(con, source, path, path.name, text), Decoding(encoding)
        except _NotUtf8 as not_utf8:
            if not named:
                encoding = detect_encoding(path, around=not_utf8.offsets)
    with utf8_copy(path, encoding) as (copy, decoding):
        return read(con, source, copy, path.name, text), decoding


def _read_csv(con: duckdb.DuckDBPyConnection, source: Source, path: Path, file_name: str, text: str) -> int:
    rejects, scans = f"rejects_{source.name}", f"reject_scans_{source.name}"
    con.execute(f"DROP TABLE IF EXISTS {rejects}")
    con.execute(f"DROP TABLE IF EXISTS {scans}")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {text} AS
            SELECT *, row_number() OVER () + 1 AS source_line
            FROM read_csv({lit(str(path))}, header = true, all_varchar = true, strict_mode = true,
                          store_rejects = true, rejects_table = '{rejects}', rejects_scan = '{scans}')"""
    )
    # DuckDB rejects a record with bytes that are not UTF-8 (the type's name before DuckDB 2: INVALID UNICODE).
    not_utf8 = con.execute(
        f"""SELECT byte_position FROM {rejects} WHERE error_type IN ('INVALID ENCODING', 'INVALID UNICODE')
            ORDER BY byte_position LIMIT {MAX_WINDOWS}"""
    ).fetchall()
    if not_utf8:
        raise _NotUtf8([int(row[0]) for row in not_utf8])
    # Malformed records (wrong column count, broken quoting) are quarantined with DuckDB's own explanation.
    # Good records are numbered by their line, counting the rejected lines before them.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {rejects}_lines AS
            SELECT line, error_message, row_number() OVER (ORDER BY line) AS rejects_so_far,
                   line - 1 - row_number() OVER (ORDER BY line) AS good_records_before
            FROM (SELECT DISTINCT ON (line) line, error_message FROM {rejects} ORDER BY line)"""
    )
    rejected = con.execute(f"SELECT count(*) FROM {rejects}_lines").fetchall()[0][0]
    if rejected:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {text}_renumbered AS
                SELECT r.* EXCLUDE (source_line), r.source_line + coalesce(j.rejects_so_far, 0) AS source_line
                FROM {text} r
                ASOF LEFT JOIN {rejects}_lines j ON r.source_line - 1 > j.good_records_before
                ORDER BY r.source_line"""
        )
        con.execute(f"DROP TABLE {text}")
        con.execute(f"ALTER TABLE {text}_renumbered RENAME TO {text}")
    con.execute(
        f"""INSERT INTO quarantine
            SELECT {lit(file_name)}, line, NULL, 'malformed_row', 'malformed CSV row: ' || error_message
            FROM {rejects}_lines"""
    )
    for table in (rejects, scans, f"{rejects}_lines"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return rejected


def _read_jsonl(con: duckdb.DuckDBPyConnection, source: Source, path: Path, file_name: str, text: str) -> int:
    # Read line by line as text so that one broken line is quarantined instead of failing the file.
    lines = f"{text}_lines"
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {lines} AS
                SELECT json_line, row_number() OVER () AS source_line
                FROM read_csv({lit(str(path))}, columns = {{'json_line': 'VARCHAR'}}, header = false,
                              delim = chr(31), quote = '', escape = '', auto_detect = false)"""
        )
    except duckdb.Error:
        # DuckDB fails the whole read on a byte that is not UTF-8; whether that was the cause, the file says.
        offset = first_invalid_utf8(path)
        if offset is None:
            raise
        raise _NotUtf8([offset]) from None
    con.execute(f"DELETE FROM {lines} WHERE json_line IS NULL OR trim(json_line) = ''")
    con.execute(
        f"""INSERT INTO quarantine
            SELECT {lit(file_name)}, source_line, NULL, 'malformed_row', 'not a JSON object on this line'
            FROM {lines}
            WHERE NOT json_valid(json_line) OR json_type(json_line) <> 'OBJECT'"""
    )
    rejected = con.execute("SELECT count(*) FROM quarantine WHERE source_file = ?", [file_name]).fetchall()[0][0]
    keys = [
        row[0]
        for row in con.execute(
            f"""SELECT DISTINCT unnest(json_keys(json_line)) AS key FROM {lines}
                WHERE json_valid(json_line) AND json_type(json_line) = 'OBJECT' ORDER BY key"""
        ).fetchall()
    ]
    extracts = ", ".join(f"json_extract_string(json_line, {lit('$.' + ident(key))}) AS {ident(key)}" for key in keys)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {text} AS SELECT {extracts + "," if extracts else ""} source_line
            FROM {lines} WHERE json_valid(json_line) AND json_type(json_line) = 'OBJECT'
            ORDER BY source_line"""
    )
    con.execute(f"DROP TABLE {lines}")
    return rejected
