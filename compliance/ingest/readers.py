"""Reading an export file as text rows: CSV and JSON Lines (DuckDB's readers, or a streamed UTF-8 copy of a file in
another encoding), Parquet through a view. A file that cannot be read at all is :class:`UnusableFile`."""

from __future__ import annotations

import csv
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


class DuckDBCannotRead(UnusableFile):
    """DuckDB's reader failed on the file (for a CSV file, the ingest tries once more through a csv-module copy)."""


class _NotUtf8(UnusableFile):
    """A file read as UTF-8 holds bytes that are not: it is read again through a decoded copy."""

    def __init__(self, offsets: list[int]) -> None:
        super().__init__("bytes that are not UTF-8")
        self.offsets = offsets  # where, for the detection to look


# Characters DuckDB's readers take as a glob pattern in a path (``*``, ``?``, ``[...]``; ``**`` for folders).
_GLOB_CHARACTERS = frozenset("*?[")


@contextmanager
def unglobbed(path: Path) -> Iterator[Path]:
    """A path to the same file that DuckDB reads literally, valid for the block.

    DuckDB's ``read_csv`` / ``read_parquet`` expand ``*``, ``?`` and ``[`` in a path as a glob: ``tickets-[12].csv``
    would read ``tickets-1.csv`` and ``tickets-2.csv`` instead. Such a path is read through a link (or, where links
    are not allowed, a copy) under a plain name in a temporary folder; any other path is yielded as it is.
    """
    if not _GLOB_CHARACTERS & set(str(path)):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="cr-unglobbed-") as folder:
        plain = Path(folder) / f"export{path.suffix}"
        try:
            plain.symlink_to(path.resolve())
        except OSError:
            shutil.copyfile(path, plain)
        yield plain


def read_raw(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    path: Path,
    file_format: str,
    raw: str,
    encoding: str | None,
    file_name: str | None = None,
    through_copy: bool = False,
) -> tuple[int, Decoding]:
    """Make ``raw`` a temporary view of the file as text columns plus ``source_line``, in file order; returns how
    many records were rejected as malformed, and how the text was decoded (``encoding``, else detected).

    ``through_copy``: a CSV file is read through the copy :func:`_read_csv_through_copy` writes (the ingest asks
    for it when DuckDB could not read the file itself). ``file_name`` is the name quarantine rows give (default: ``path``'s; see :func:`unglobbed` for a path that is
    not the export's own). Text never goes into the warehouse file: Parquet is read through the view itself (each pass reads only the
    columns it needs), CSV and JSON Lines through an in-memory temporary table. Writing millions of distinct
    strings (timestamps as text) to the database file would cost more than everything else of the load.
    """
    location = lit(str(path))
    try:
        if file_format in ("csv", "jsonl"):
            read = _read_jsonl
            if file_format == "csv":
                read = _read_csv_through_copy if through_copy else _read_csv
            rejected, decoding = _read_decoded(con, source, path, file_name or path.name, read, f"{raw}_text", encoding)
        else:
            # Every column read straight into its text form: one parse path for every format.
            reader = f"read_parquet({location}, file_row_number = true)"
            columns = [
                row[0]
                for row in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
                if row[0] != "file_row_number" and not _is_line_number(row[0])
            ]
            casts = ", ".join(f"CAST({ident(name)} AS VARCHAR) AS {ident(name)}" for name in columns)
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {raw} AS SELECT {casts}, file_row_number + 1 AS source_line FROM {reader}"
            )
            return 0, Decoding("utf-8")  # Parquet strings are UTF-8 by the format's definition
        con.execute(f"CREATE OR REPLACE TEMP VIEW {raw} AS SELECT * FROM {raw}_text")
        return rejected, decoding
    except duckdb.Error as error:
        # the file's own name, not the path DuckDB was given (a temporary link, or a folder the report need not show)
        first_line = str(error).strip().splitlines()[0].replace(str(path), file_name or path.name)
        raise DuckDBCannotRead(f"cannot be read as {file_format.upper()}: {first_line}") from None


def _read_decoded(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    path: Path,
    file_name: str,
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
            return read(con, source, path, file_name, text), Decoding(encoding)
        except _NotUtf8 as not_utf8:
            if not named:
                encoding = detect_encoding(path, around=not_utf8.offsets)
    with utf8_copy(path, encoding) as (copy, decoding):
        return read(con, source, copy, file_name, text), decoding


# The longest value a CSV file read through :func:`_rfc4180_copy` may hold (DuckDB's default max_line_size is
# 2,000,000 bytes per line): a longer one costs its record, quarantined as value_too_long, not the file.
MAX_VALUE_CHARS = 1_000_000


def _read_csv(con: duckdb.DuckDBPyConnection, source: Source, path: Path, file_name: str, text: str) -> int:
    """Read a UTF-8 CSV file into table ``text``; returns the records it rejected (quarantined here).

    The dialect is RFC 4180's, never guessed (DuckDB's sniffer fails a small file on one bad record, and takes a
    file with an unterminated quote as unquoted): comma, double quote, a quote escaped by doubling it, the columns
    those of the header as Python's csv module reads it. A record DuckDB cannot split is quarantined. A file
    DuckDB cannot read at all (CR, LF and CRLF line endings mixed in one file, a line over its maximum size) is
    read again through :func:`_read_csv_through_copy` by the ingest.
    """
    return _read_csv_records(con, source, path, file_name, text, _header(path), [])


def _read_csv_through_copy(
    con: duckdb.DuckDBPyConnection, source: Source, path: Path, file_name: str, text: str
) -> int:
    """:func:`_read_csv` through a copy that Python's csv module writes record by record with CRLF endings (a
    value holding a CR or LF is quoted, so line breaks inside values are kept): it reads any mix of line endings. A value over :data:`MAX_VALUE_CHARS` is
    left empty in the copy and its record quarantined as value_too_long; an unterminated quote makes the file
    unusable (read literally, the rest of the file would be one value)."""
    header = _header(path)
    with _rfc4180_copy(path) as (copy, too_long):
        return _read_csv_records(con, source, copy, file_name, text, header, too_long)


def _header(path: Path) -> list[str]:
    """The header's column names; one named twice (as the ingest compares names: trimmed, any case) makes the
    file unusable, where DuckDB would rename the second ``created_at_1`` and the run read the first one only."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = next(csv.reader(handle), [])
    if not header:
        raise UnusableFile("no header row")
    seen: set[str] = set()
    for name in header:
        key = name.strip().lower()
        if key and key in seen:
            raise UnusableFile(f"the header names the column {key!r} twice; which one is meant is not knowable")
        seen.add(key)
    return [name if name.strip() else _unnamed(index, seen) for index, name in enumerate(header)]


def _unnamed(index: int, taken: set[str]) -> str:
    """A name for a column the header leaves blank (a trailing comma, as spreadsheets write): no canonical column
    has one, so it is never read, but DuckDB needs a name for it, and one the header does not also use."""
    name = f"unnamed_{index + 1}"
    while name in taken:
        name += "_"
    taken.add(name)
    return name


_CSV_DIALECT = "delim = ',', quote = '\"', escape = '\"'"


@contextmanager
def _rfc4180_copy(path: Path) -> Iterator[tuple[Path, list[tuple[int, str]]]]:
    """A copy of a UTF-8 CSV file with one CRLF per record (line breaks inside quoted values kept as they are), and
    the (record line, column) of each value over :data:`MAX_VALUE_CHARS`, which the copy leaves empty."""
    too_long: list[tuple[int, str]] = []
    handle, name = tempfile.mkstemp(prefix=".rfc4180-", suffix=".csv")
    os.close(handle)
    previous_limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)
    try:
        with (
            path.open(encoding="utf-8-sig", newline="") as source_file,
            open(name, "w", encoding="utf-8", newline="") as copy,
        ):
            reader, writer = csv.reader(source_file, strict=True), csv.writer(copy, lineterminator="\r\n")
            header = next(reader, [])
            writer.writerow(header)
            for record_line, record in enumerate(reader, start=2):
                for index, value in enumerate(record):
                    if len(value) > MAX_VALUE_CHARS:
                        column = header[index].strip() if index < len(header) else f"column {index + 1}"
                        too_long.append((record_line, column))
                        record[index] = ""
                writer.writerow(record)
    except UnicodeDecodeError:
        os.unlink(name)
        offset = first_invalid_utf8(path)
        raise _NotUtf8([offset or 0]) from None
    except csv.Error as error:
        os.unlink(name)
        problem = "an unterminated quote" if "end of data" in str(error) else str(error)
        raise UnusableFile(f"cannot be read as CSV: {problem} (record {reader.line_num})") from None
    finally:
        csv.field_size_limit(previous_limit)
    try:
        yield Path(name), too_long
    finally:
        os.unlink(name)


def _read_csv_records(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    path: Path,
    file_name: str,
    text: str,
    header: list[str],
    too_long: list[tuple[int, str]],
) -> int:
    """Read a file DuckDB can read with the header's columns; ``too_long``: records whose value a copy left empty."""
    columns = "{" + ", ".join(f"{lit(name)}: 'VARCHAR'" for name in header) + "}"
    rejects, scans = f"rejects_{source.name}", f"reject_scans_{source.name}"
    con.execute(f"DROP TABLE IF EXISTS {rejects}")
    con.execute(f"DROP TABLE IF EXISTS {scans}")
    own_lines = [name for name in header if _is_line_number(name)]
    columns_read = f"* EXCLUDE ({', '.join(map(ident, own_lines))})" if own_lines else "*"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {text} AS
            SELECT {columns_read}, row_number() OVER () + 1 AS source_line
            FROM read_csv({lit(str(path))}, header = true, all_varchar = true, strict_mode = true,
                          {_CSV_DIALECT}, auto_detect = false, columns = {columns},
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
            SELECT line, error_type, error_message, row_number() OVER (ORDER BY line) AS rejects_so_far,
                   line - 1 - row_number() OVER (ORDER BY line) AS good_records_before
            FROM (SELECT DISTINCT ON (line) line, error_type, error_message FROM {rejects}
                  ORDER BY line, error_type = 'LINE SIZE OVER MAXIMUM' DESC)"""
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
            SELECT {lit(file_name)}, line, NULL,
                   CASE WHEN error_type = 'LINE SIZE OVER MAXIMUM' THEN 'value_too_long' ELSE 'malformed_row' END,
                   CASE WHEN error_type = 'LINE SIZE OVER MAXIMUM' THEN 'a record longer than DuckDB reads: '
                        ELSE 'malformed CSV row: ' END || error_message
            FROM {rejects}_lines"""
    )
    for table in (rejects, scans, f"{rejects}_lines"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    if too_long:
        lines = [line for line, _ in too_long]
        con.execute(f"DELETE FROM {text} WHERE source_line IN (SELECT unnest($lines))", {"lines": lines})
        con.executemany(
            "INSERT INTO quarantine VALUES (?, ?, NULL, 'value_too_long', ?)",
            [
                (file_name, line, f"{column}: a value over {MAX_VALUE_CHARS:,} characters")
                for line, column in sorted(set(too_long))
            ],
        )
        rejected += len({line for line, _ in too_long})
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
        if row[0] and not _is_line_number(row[0])  # a key "" is no column's name
    ]
    extracts = ", ".join(f"json_extract_string(json_line, {lit(_json_path(key))}) AS {ident(key)}" for key in keys)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {text} AS SELECT {extracts + "," if extracts else ""} source_line
            FROM {lines} WHERE json_valid(json_line) AND json_type(json_line) = 'OBJECT'
            ORDER BY source_line"""
    )
    con.execute(f"DROP TABLE {lines}")
    return rejected


def _is_line_number(column: str) -> bool:
    """Whether a column of the file has the name of the line number the reader adds (DuckDB matches names without
    regard to case): it is not read, since no canonical column has that name and it would be read in its place."""
    return column.lower() == "source_line"


def _json_path(key: str) -> str:
    """The JSON path of a top-level key, any key: quoted, with a backslash before a quote or a backslash in it
    (``a"b`` is ``$."a\\"b"``; doubling the quote, as for an SQL identifier, is no JSON path)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
