"""Ingest: one canonical export file → a typed DuckDB table, every bad row quarantined with a reason.

Set-based throughout: the file is read as text by DuckDB, every value is parsed and checked by one SQL
statement, and rows with problems go to the ``quarantine`` table instead of ``staged_<source>``. For each file,
rows read = rows loaded + rows quarantined, and the ``ingest_log`` table says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from compliance.contract import FILE_FORMATS, REQUEST_TYPES, SOURCES, Column, Source
from compliance.policy import Policy

QUARANTINE_COLUMNS = "source_file VARCHAR, line BIGINT, record_id VARCHAR, reason_code VARCHAR, reason VARCHAR"
INGEST_LOG_COLUMNS = (
    "source VARCHAR, file VARCHAR, file_format VARCHAR, status VARCHAR, problem VARCHAR, sha256 VARCHAR, "
    "rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT"
)
_SQL_TYPES = {"id": "VARCHAR", "text": "VARCHAR", "enum": "VARCHAR", "timestamp": "TIMESTAMPTZ", "boolean": "BOOLEAN"}
_TRUE = ("true", "yes", "1", "y", "t")
_FALSE = ("false", "no", "0", "n", "f")
# An explicit offset (Z, +02:00, -0500) or UTC after a time of day; a date alone has none.
_OFFSET_PATTERN = r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?|\s?UTC)$"


@dataclass(frozen=True)
class IngestResult:
    source: str
    file: str | None
    file_format: str | None
    status: str  # loaded | missing | unusable
    problem: str | None
    sha256: str | None
    rows_read: int
    rows_loaded: int
    rows_quarantined: int


class UnusableFile(Exception):
    """The file as a whole cannot be used; the message is one line naming the problem."""


def prepare_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE IF NOT EXISTS quarantine ({QUARANTINE_COLUMNS})")
    con.execute(f"CREATE TABLE IF NOT EXISTS ingest_log ({INGEST_LOG_COLUMNS})")


def find_export(exports_dir: Path, source: Source) -> Path | None:
    found = [exports_dir / f"{source.name}.{ext}" for ext in FILE_FORMATS if (exports_dir / f"{source.name}.{ext}").is_file()]
    if len(found) > 1:
        names = " and ".join(path.name for path in found)
        raise UnusableFile(f"{names} are both present; keep one file per source")
    return found[0] if found else None


def ingest_source(
    con: duckdb.DuckDBPyConnection, source_name: str, exports_dir: Path, policy: Policy
) -> IngestResult:
    """Load one source into ``staged_<source>``; rerunning replaces the previous load of that source."""
    source = SOURCES[source_name]
    prepare_warehouse(con)
    con.execute("DELETE FROM quarantine WHERE source_file LIKE ?", [f"{source.name}.%"])
    con.execute("DELETE FROM ingest_log WHERE source = ?", [source.name])
    con.execute(f"DROP TABLE IF EXISTS staged_{source.name}")
    path: Path | None = None
    try:
        path = find_export(exports_dir, source)
        if path is None:
            result = IngestResult(source.name, None, None, "missing", "no export file", None, 0, 0, 0)
        else:
            result = _load(con, source, path, policy)
    except UnusableFile as problem:
        result = IngestResult(
            source.name,
            path.name if path else None,
            path.suffix.lstrip(".") if path else None,
            "unusable",
            str(problem),
            file_sha256(path) if path else None,
            0,
            0,
            0,
        )
    con.execute(
        "INSERT INTO ingest_log VALUES ($source, $file, $file_format, $status, $problem, $sha256, "
        "$rows_read, $rows_loaded, $rows_quarantined)",
        asdict(result),
    )
    return result


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _load(con: duckdb.DuckDBPyConnection, source: Source, path: Path, policy: Policy) -> IngestResult:
    if path.stat().st_size == 0:
        raise UnusableFile("the file is empty")
    file_format = path.suffix.lstrip(".")
    raw = f"raw_{source.name}"
    rejected = _read_raw(con, source, path, file_format, raw)
    present = {name.strip().lower(): name for name in con.execute(f"SELECT * FROM {raw} LIMIT 0").fetchdf().columns}
    missing = [name for name in source.required if name not in present]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise UnusableFile(f"missing required column{plural} {', '.join(missing)}")

    _parse_and_check(con, source, path.name, raw, present, policy)
    rows_loaded = con.execute(f"SELECT count(*) FROM staged_{source.name}").fetchall()[0][0]
    rows_quarantined = con.execute(
        "SELECT count(*) FROM quarantine WHERE source_file = ?", [path.name]
    ).fetchall()[0][0]
    rows_read = con.execute(f"SELECT count(*) FROM {raw}").fetchall()[0][0] + rejected
    return IngestResult(
        source.name, path.name, file_format, "loaded", None, file_sha256(path), rows_read, rows_loaded, rows_quarantined
    )


def _read_raw(con: duckdb.DuckDBPyConnection, source: Source, path: Path, file_format: str, raw: str) -> int:
    """Read the file as text columns plus ``source_line``; returns how many records were rejected as malformed."""
    location = _quote(str(path))
    try:
        if file_format == "csv":
            return _read_csv(con, source, path, raw)
        if file_format == "parquet":
            con.execute(
                f"CREATE OR REPLACE TABLE {raw} AS SELECT * EXCLUDE (file_row_number), "
                f"file_row_number + 1 AS source_line FROM read_parquet({location}, file_row_number = true)"
            )
            columns = [name for name in con.execute(f"SELECT * FROM {raw} LIMIT 0").fetchdf().columns if name != "source_line"]
            casts = ", ".join(f"CAST({_ident(name)} AS VARCHAR) AS {_ident(name)}" for name in columns)
            con.execute(f"CREATE OR REPLACE TABLE {raw} AS SELECT {casts}, source_line FROM {raw}")
            return 0
        return _read_jsonl(con, source, path, raw)
    except duckdb.Error as error:
        first_line = str(error).strip().splitlines()[0]
        raise UnusableFile(f"cannot be read as {file_format.upper()}: {first_line}") from None


def _read_csv(con: duckdb.DuckDBPyConnection, source: Source, path: Path, raw: str) -> int:
    rejects, scans = f"rejects_{source.name}", f"reject_scans_{source.name}"
    con.execute(f"DROP TABLE IF EXISTS {rejects}")
    con.execute(f"DROP TABLE IF EXISTS {scans}")
    con.execute(
        f"""CREATE OR REPLACE TABLE {raw}_read AS
            SELECT *, row_number() OVER () AS record_number
            FROM read_csv({_quote(str(path))}, header = true, all_varchar = true, strict_mode = true,
                          store_rejects = true, rejects_table = '{rejects}', rejects_scan = '{scans}')"""
    )
    # Malformed records (wrong column count, broken quoting, invalid UTF-8) are quarantined with DuckDB's
    # own explanation. Good records are numbered by their line, counting the rejected lines before them.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {rejects}_lines AS
            SELECT line, error_message, row_number() OVER (ORDER BY line) AS rejects_so_far,
                   line - 1 - row_number() OVER (ORDER BY line) AS good_records_before
            FROM (SELECT DISTINCT ON (line) line, error_message FROM {rejects} ORDER BY line)"""
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE {raw} AS
            SELECT r.* EXCLUDE (record_number),
                   r.record_number + 1 + coalesce(j.rejects_so_far, 0) AS source_line
            FROM {raw}_read r
            ASOF LEFT JOIN {rejects}_lines j ON r.record_number > j.good_records_before
            ORDER BY r.record_number"""
    )
    con.execute(f"DROP TABLE {raw}_read")
    con.execute(
        f"""INSERT INTO quarantine
            SELECT {_quote(path.name)}, line, NULL, 'malformed_row', 'malformed CSV row: ' || error_message
            FROM {rejects}_lines"""
    )
    rejected = con.execute(f"SELECT count(*) FROM {rejects}_lines").fetchall()[0][0]
    for table in (rejects, scans, f"{rejects}_lines"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return rejected


def _read_jsonl(con: duckdb.DuckDBPyConnection, source: Source, path: Path, raw: str) -> int:
    # Read line by line as text so that one broken line is quarantined instead of failing the file.
    lines = f"{raw}_lines"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {lines} AS
            SELECT json_line, row_number() OVER () AS source_line
            FROM read_csv({_quote(str(path))}, columns = {{'json_line': 'VARCHAR'}}, header = false,
                          delim = chr(31), quote = '', escape = '', auto_detect = false)"""
    )
    con.execute(f"DELETE FROM {lines} WHERE json_line IS NULL OR trim(json_line) = ''")
    con.execute(
        f"""INSERT INTO quarantine
            SELECT {_quote(path.name)}, source_line, NULL, 'malformed_row', 'not a JSON object on this line'
            FROM {lines}
            WHERE NOT json_valid(json_line) OR json_type(json_line) <> 'OBJECT'"""
    )
    rejected = con.execute(f"SELECT count(*) FROM quarantine WHERE source_file = ?", [path.name]).fetchall()[0][0]
    keys = [
        row[0]
        for row in con.execute(
            f"""SELECT DISTINCT unnest(json_keys(json_line)) AS key FROM {lines}
                WHERE json_valid(json_line) AND json_type(json_line) = 'OBJECT' ORDER BY key"""
        ).fetchall()
    ]
    extracts = ", ".join(
        f"json_extract_string(json_line, {_quote('$.' + _ident(key))}) AS {_ident(key)}" for key in keys
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE {raw} AS SELECT {extracts + ',' if extracts else ''} source_line
            FROM {lines} WHERE json_valid(json_line) AND json_type(json_line) = 'OBJECT'
            ORDER BY source_line"""
    )
    con.execute(f"DROP TABLE {lines}")
    return rejected


def _allowed_values(column: Column, policy: Policy) -> dict[str, str]:
    """Accepted spellings (lower-case) of an enum column → canonical value."""
    if column.values == "channels":
        return policy.channel_spellings()
    if column.values == "plans":
        values = policy.plans
    elif column.values == "tiers":
        values = policy.tiers
    elif column.values == "request_types":
        types_rule = next(iter(policy.rules_of("privacy_types")), None)
        values = tuple(types_rule.setting("request_types", REQUEST_TYPES)) if types_rule else REQUEST_TYPES
    else:
        values = tuple(column.values)
    return {value.lower(): value for value in values}


def _timestamp_sql(text: str, source_timezone: str) -> str:
    """SQL parsing a trimmed text value into TIMESTAMPTZ: its own offset if it has one, else the source zone."""
    has_offset = f"regexp_matches({text}, {_quote(_OFFSET_PATTERN)})"
    naive = f"TRY_CAST({text} AS TIMESTAMP)"
    return f"CASE WHEN {has_offset} THEN TRY_CAST({text} AS TIMESTAMPTZ) ELSE timezone({_quote(source_timezone)}, {naive}) END"


def _parse_and_check(
    con: duckdb.DuckDBPyConnection, source: Source, file_name: str, raw: str, present: dict[str, str], policy: Policy
) -> None:
    # Two passes: parse every value once (typed column + its trimmed text), then check the parsed values.
    parses: list[str] = []
    problems: list[str] = []
    zone = policy.source_timezone
    for column in source.columns:
        name = column.name
        raw_ref = _ident(present[name]) if name in present else "NULL::VARCHAR"
        trimmed = f"nullif(trim({raw_ref}), '')"
        text = name  # ids and free text are kept as trimmed text: nothing to parse
        if column.kind in ("timestamp", "boolean", "enum"):
            text = f"{name}__text"  # the trimmed text of a parsed value, kept for messages
            parses.append(f"{trimmed} AS {text}")
        if column.kind == "timestamp":
            parses.append(f"{_timestamp_sql(trimmed, zone)} AS {name}")
            problems.append(
                f"CASE WHEN {text} IS NOT NULL AND {name} IS NULL THEN "
                f"{{'code': 'bad_timestamp', 'message': '{name}: not an ISO-8601 timestamp: ' || {text}}} END"
            )
            if zone != "UTC":
                # A naive wall time inside a spring-forward gap never happened; reading it back shows the shift.
                problems.append(
                    f"CASE WHEN NOT regexp_matches({text}, {_quote(_OFFSET_PATTERN)}) AND {name} IS NOT NULL "
                    f"AND timezone({_quote(zone)}, {name}) <> TRY_CAST({text} AS TIMESTAMP) THEN "
                    f"{{'code': 'nonexistent_local_time', 'message': '{name}: ' || {text} || "
                    f"' does not exist in {zone} (skipped by a daylight-saving change)'}} END"
                )
        elif column.kind == "boolean":
            lowered = f"lower({trimmed})"
            parses.append(
                f"CASE WHEN {lowered} IN ({', '.join(map(_quote, _TRUE))}) THEN true "
                f"WHEN {lowered} IN ({', '.join(map(_quote, _FALSE))}) THEN false END AS {name}"
            )
            problems.append(
                f"CASE WHEN {text} IS NOT NULL AND {name} IS NULL THEN "
                f"{{'code': 'bad_boolean', 'message': '{name}: not a boolean (true/false, yes/no, 1/0): ' || {text}}} END"
            )
        elif column.kind == "enum":
            allowed = _allowed_values(column, policy)
            cases = " ".join(f"WHEN {_quote(spelling)} THEN {_quote(value)}" for spelling, value in sorted(allowed.items()))
            parses.append(f"CASE lower({trimmed}) {cases} END AS {name}" if allowed else f"NULL::VARCHAR AS {name}")
            problems.append(
                f"CASE WHEN {text} IS NOT NULL AND {name} IS NULL THEN "
                f"{{'code': 'unknown_value', 'message': '{name}: unknown value ' || {text}}} END"
            )
        else:
            parses.append(f"{trimmed} AS {name}")
        if column.required:
            problems.append(
                f"CASE WHEN {text} IS NULL THEN {{'code': 'missing_value', 'message': '{name}: missing required value'}} END"
            )
    problems += [
        f"CASE WHEN {later} < {earlier} THEN {{'code': 'out_of_order', 'message': "
        f"'{later} ' || strftime({later}, '%Y-%m-%dT%H:%M:%SZ') || ' is before {earlier} ' || "
        f"strftime({earlier}, '%Y-%m-%dT%H:%M:%SZ')}} END"
        for earlier, later in source.ordered
    ]
    parsed_table = f"parsed_{source.name}"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {parsed_table} AS
            SELECT *, list_filter([{', '.join(problems)}], lambda p: p IS NOT NULL) AS problems
            FROM (SELECT source_line, {', '.join(parses)},
                         hash({', '.join(_ident(present[c.name]) for c in source.columns if c.name in present)}) AS content_hash,
                         {_ident(present[source.record_id])} AS raw_record_id
                  FROM {raw})"""
    )
    if source.unique:
        # Among otherwise valid rows the first occurrence of an ID is kept; later ones are quarantined.
        con.execute(
            f"""UPDATE {parsed_table} AS t SET problems = [CASE WHEN d.first_hash = t.content_hash
                    THEN {{'code': 'exact_duplicate', 'message': 'exact duplicate of line ' || d.first_line}}
                    ELSE {{'code': 'duplicate_id', 'message': '{source.record_id} ' || t.{source.record_id}
                           || ' already used on line ' || d.first_line || ' (that row is kept)'}} END]
                FROM (SELECT source_line,
                             first_value(source_line) OVER w AS first_line,
                             first_value(content_hash) OVER w AS first_hash,
                             row_number() OVER w AS occurrence
                      FROM {parsed_table} WHERE len(problems) = 0
                      WINDOW w AS (PARTITION BY {source.record_id} ORDER BY source_line)) AS d
                WHERE d.source_line = t.source_line AND d.occurrence > 1"""
        )
    con.execute(
        f"""INSERT INTO quarantine
            SELECT {_quote(file_name)}, source_line, raw_record_id, problems[1].code,
                   array_to_string(list_transform(problems, lambda p: p.message), '; ')
            FROM {parsed_table} WHERE len(problems) > 0 ORDER BY source_line"""
    )
    columns = ", ".join(column.name for column in source.columns)
    con.execute(
        f"""CREATE OR REPLACE TABLE staged_{source.name} AS
            SELECT {columns}, {_quote(file_name)} AS source_file, source_line
            FROM {parsed_table} WHERE len(problems) = 0 ORDER BY source_line"""
    )
    con.execute(f"DROP TABLE {parsed_table}")
