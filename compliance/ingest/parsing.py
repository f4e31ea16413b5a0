"""Parse and quarantine: every value of the raw text rows parsed and checked in SQL against the data contract; a
row with a problem goes to ``quarantine`` with a reason, never a traceback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import duckdb

from compliance.core.secrets import SCANNED_TEXT, pseudonym_sql, redact_sql
from compliance.core.sql import ident, lit, ts_lit
from compliance.ingest.contract import REQUEST_TYPES, Column, Source
from compliance.ingest.tickets_reading import channel_source_sql, keyword_tier_sql, tag_channel_sql, tier_reading_sql
from compliance.policy import Policy
from compliance.rule_kinds import CLOCK_STARTS

# A file of up to this many rows is parsed and checked once, into a temporary table that the accepted rows, the
# duplicates, the quarantine and its clock starts are all read from: for a small file DuckDB takes longer to plan
# the parse (the typed parsing, the redaction and pseudonym SQL, the checks) than to run it, and each statement
# parsing on its own planned it again. A larger file is parsed straight into its staged table (no copy of every
# parsed value, whose memory would grow with the file), and its rows not loaded, a few, are parsed once more.
# Measured on tickets: the two ways cost the same CPU at about 50,000 rows; at 200,000 the copy costs a fifth more.
PARSED_ONCE_MAX_ROWS = 50_000
_REASON_MAX_CHARS = 120  # a quarantine message is cut here, after redaction, so a quoted raw value stays short
_SQL_TYPES = {"id": "VARCHAR", "text": "VARCHAR", "enum": "VARCHAR", "timestamp": "TIMESTAMPTZ", "boolean": "BOOLEAN"}
_TRUE = ("true", "yes", "1", "y", "t")
_FALSE = ("false", "no", "0", "n", "f")
# An explicit offset (Z, +02:00, -0500) or UTC after a time of day; a date alone has none.
_OFFSET_PATTERN = r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?|\s?UTC)$"
# A zone name after a time of day (America/New_York, EST5EDT, Etc/GMT+5), captured as DuckDB's cast reads it.
_ZONE_NAME_PATTERN = r"[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*([A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*)$"
# Local wall times that occur twice lie within this much real time after a DST fall-back (an hour, or half an hour,
# in every zone): the offset in force this long before DuckDB's reading is the one of their first occurrence.
_REPEAT_SPAN_HOURS = 3
# One row per loaded value that was a local time occurring twice (read as its earlier instant), for data quality.
AMBIGUOUS_LOCAL_TIMES_COLUMNS = "source VARCHAR, source_file VARCHAR, source_line BIGINT, column_name VARCHAR"


# The one trimming rule of every value (ids included): leading and trailing spaces, tabs, line breaks (CR, LF),
# vertical tabs, form feeds, no-break spaces and byte-order marks go; "T1\t" and " T1" are the ticket T1.
_TRIMMED_CHARACTERS = " \t\n\r\x0b\x0c\u00a0\ufeff"


# Which values may start or end with a trimmed character: DuckDB's trim with a character list costs as much per
# value as a timestamp cast, and nearly every value has none at either end and skips it. A first character that
# sorts before "!" (one byte comparison: the space and the control characters; an empty value too, trimmed to
# NULL) or one of the others as a prefix; at the end, an RE2 class anchored at the end of the text.
_BELOW_TRIM_TEST = "!"
_TRIMMED_AT_END_PATTERN = "[" + "".join(f"\\x{{{ord(character):x}}}" for character in _TRIMMED_CHARACTERS) + "]$"


def _trimmed_sql(value: str) -> str:
    """SQL: a text value trimmed by the rule above, NULL when nothing is left (``value``: a column or NULL)."""
    may_need_trim = " OR ".join(
        [f"{value} < {lit(_BELOW_TRIM_TEST)}"]
        + [f"prefix({value}, {lit(character)})" for character in _TRIMMED_CHARACTERS if character >= _BELOW_TRIM_TEST]
        + [f"regexp_matches({value}, {lit(_TRIMMED_AT_END_PATTERN)})"]
    )
    return (
        f"CASE WHEN {may_need_trim} THEN nullif(trim({value}, {lit(_TRIMMED_CHARACTERS)}), '') "
        f"ELSE nullif({value}, '') END"
    )


def accepted_spellings(column: Column, policy: Policy) -> dict[str, str]:
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


@dataclass(frozen=True)
class _TimestampSql:
    """How one timestamp column is parsed, level by level under the parse, each level reading the one below by
    name (each piece written once: the planning of a repeated expression is paid for every copy)."""

    forms: list[str]  # AS <name>__text / __aware / __form (/ __wall): the casts and what the text carries
    readings: list[str]  # AS <name>__zone (/ __wall / __local): what a zone-named or wall time is read with
    first: str  # AS <name>__first: the earlier instant a repeated wall time may be
    earlier: str  # AS <name>__earlier: whether the value is the earlier of two instants with the text's wall time
    value: str  # the TIMESTAMPTZ, in the parse
    passed: list[str]  # the columns of the levels below that the checks above the parse read
    nonexistent: str  # condition on the parse: the wall time does not exist in its zone


def _timestamp_sql(name: str, trimmed: str, source_timezone: str) -> _TimestampSql:
    """SQL parsing a trimmed text value into TIMESTAMPTZ: its own offset or zone if it has one, else the source zone.

    ``<name>__form`` says what the text carries: ``zone`` (a zone name such as ``America/New_York``), ``wall`` (a
    wall time of a non-UTC source zone) or ``offset`` (anything else: an offset, ``Z``, ``UTC``, or a wall time
    of a UTC source). The session time zone is UTC (``prepare_warehouse``), so a TIMESTAMPTZ cast reads a naive
    value as UTC and applies any offset or zone name it carries; a text it rejects is no timestamp (the TIMESTAMP
    cast would drop an unknown zone name). A wall time that occurs twice (a DST fall-back) is read as its
    earlier instant, zone-named or not, where DuckDB's cast and ``timezone()`` take the later one.

    The zone lookups run for the values that need them alone (a CASE on the form): nearly every value carries
    an offset and pays for none of them.
    """
    # the trimmed text (computed once: trimming costs as much as a cast), the casts and the form
    text, aware, form = f"{name}__text", f"{name}__aware", f"{name}__form"
    zone_name, wall, first = f"{name}__zone", f"{name}__wall", f"{name}__first"
    source_zone = lit(source_timezone)
    forms = [f"{trimmed} AS {text}", f"TRY_CAST({trimmed} AS TIMESTAMPTZ) AS {aware}"]
    readings = [f"CASE WHEN {form} = 'zone' THEN {_zone_name_sql(text)} END AS {zone_name}"]
    if source_timezone == "UTC":
        # a UTC source has no wall form: its wall times are read for zone-named values only, a few
        readings.append(f"CASE WHEN {form} = 'zone' THEN TRY_CAST({text} AS TIMESTAMP) END AS {wall}")
        forms.append(f"CASE WHEN {_named_sql(trimmed)} THEN 'zone' ELSE 'offset' END AS {form}")
        wall_branch, local = "", aware  # no value has the wall form: the ELSE of the value's CASE is never taken
    else:
        local = f"{name}__local"
        forms += [
            f"TRY_CAST({trimmed} AS TIMESTAMP) AS {wall}",
            f"CASE WHEN {_named_sql(trimmed)} THEN 'zone' WHEN {_zoned_sql(trimmed)} THEN 'offset' "
            f"WHEN TRY_CAST({trimmed} AS TIMESTAMPTZ) IS NOT NULL THEN 'wall' ELSE 'offset' END AS {form}",
        ]
        readings.append(f"CASE WHEN {form} = 'wall' THEN timezone({source_zone}, {wall}) END AS {local}")
        first_of_wall = _first_occurrence_sql(wall, local, source_zone, _repeated_wall_times(source_timezone))
        wall_branch = f"WHEN 'wall' THEN {first_of_wall} " if first_of_wall != "NULL" else ""  # a zone that repeats
    first_of_zone = _first_occurrence_sql(wall, aware, zone_name, None)
    first_sql = f"CASE {form} WHEN 'zone' THEN {first_of_zone} {wall_branch}END AS {first}"
    earlier = (
        f"CASE {form} WHEN 'zone' THEN {_repeated_sql(wall, aware, zone_name, first)} "
        + (f"WHEN 'wall' THEN {_repeated_sql(wall, local, source_zone, first)} " if wall_branch else "")
        + f"ELSE false END AS {name}__earlier"
    )
    value = (
        f"CASE {form} WHEN 'offset' THEN {aware} "
        f"WHEN 'zone' THEN CASE WHEN {name}__earlier THEN {first} ELSE {aware} END "
        f"ELSE CASE WHEN {name}__earlier THEN {first} ELSE {local} END END"
    )
    # reading the instant back in its zone shows a wall time that never happened
    nonexistent = (
        f"CASE {form} WHEN 'zone' THEN timezone({zone_name}, {name}) <> {wall} "
        f"WHEN 'wall' THEN timezone({source_zone}, {name}) <> {wall} END"
    )
    return _TimestampSql(forms, readings, first_sql, earlier, value, [zone_name, wall], nonexistent)


def _zoned_sql(text: str) -> str:
    """SQL: whether a timestamp text carries its own offset (else it is a wall time of the source zone)."""
    return (
        f"(regexp_matches({text}, {lit(_OFFSET_PATTERN)}) "
        f"OR TRY_CAST({text} AS TIMESTAMPTZ) <> timezone('UTC', TRY_CAST({text} AS TIMESTAMP)))"
    )


def _named_sql(text: str) -> str:
    """SQL: whether a timestamp text ends with a zone name (not an offset) that DuckDB's cast accepts.

    Cheap tests first (a zone name has a slash or ends with a letter), for the millions of values without one;
    a CASE, because AND evaluates both sides of a projection.
    """
    return (
        f"CASE WHEN suffix({text}, 'Z') THEN false "
        f"WHEN NOT (contains({text}, '/') OR right({text}, 1) BETWEEN 'A' AND 'z') THEN false "
        f"WHEN regexp_matches({text}, {lit(_OFFSET_PATTERN)}) THEN false "
        f"ELSE regexp_matches({text}, {lit(_ZONE_NAME_PATTERN)}) AND TRY_CAST({text} AS TIMESTAMPTZ) IS NOT NULL END"
    )


def _zone_name_sql(text: str) -> str:
    return f"regexp_extract({text}, {lit(_ZONE_NAME_PATTERN)}, 1)"


def _first_occurrence_sql(wall: str, reading: str, zone: str, ranges: list[tuple[int, int]] | None) -> str:
    """SQL: ``wall`` (TIMESTAMP) read with the offset that ``zone`` had a few hours before ``reading`` (DuckDB's
    reading of ``wall`` in ``zone``): the earlier instant with that wall time, if it repeats.

    ``ranges`` (microseconds after local midnight) are the wall times that ever repeat in a fixed zone: only
    those pay for the zone lookups (a CASE), the others are NULL, an infinite value too (it has no time of day,
    and DuckDB cannot subtract it); ``[]``: none ever does, NULL; ``None``: any wall time may (a zone named per
    value).
    """
    if ranges == []:
        return "NULL"
    before = f"({reading} - INTERVAL {_REPEAT_SPAN_HOURS} HOUR)"
    first = f"timezone('UTC', {wall} - (timezone({zone}, {before}) - timezone('UTC', {before})))"
    if ranges is None:
        return first
    day = 86_400_000_000
    time_of_day = f"((epoch_us({wall}) % {day} + {day}) % {day})"
    candidate = " OR ".join(f"{time_of_day} BETWEEN {start} AND {end - 1}" for start, end in ranges)
    return f"CASE WHEN {candidate} THEN {first} END"


def _repeated_sql(wall: str, reading: str, zone: str, first: str) -> str:
    """SQL: whether ``wall`` (DuckDB's ``reading`` in ``zone``, not NULL) also occurred at an earlier instant,
    ``first`` (:func:`_first_occurrence_sql`, NULL where it cannot have)."""
    return f"(CASE WHEN {first} < {reading} THEN timezone({zone}, {first}) = {wall} ELSE false END)"


@cache
def _repeated_wall_times(zone_name: str) -> list[tuple[int, int]]:
    """Times of day [start, end) in microseconds after local midnight at which a fall-back of the zone
    (1900-2100) repeats the wall clock; a range that crosses midnight is split. Found day by day with zoneinfo
    (a quarter of a second), except for UTC, the usual source zone, which has one offset: none."""
    if zone_name == "UTC":
        return []
    zone = ZoneInfo(zone_name)
    day = timedelta(days=1)
    ranges: set[tuple[int, int]] = set()
    instant = datetime(1900, 1, 1, tzinfo=UTC)
    offset = instant.astimezone(zone).utcoffset()
    while instant.year < 2101:
        following = instant + day
        next_offset = following.astimezone(zone).utcoffset()
        if next_offset < offset:
            low, high = 0, 86_400  # seconds after ``instant``: the transition lies in (low, high]
            while high - low > 1:
                middle = (low + high) // 2
                on_old_offset = (instant + timedelta(seconds=middle)).astimezone(zone).utcoffset() == offset
                low, high = (middle, high) if on_old_offset else (low, middle)
            first_wall = (instant + timedelta(seconds=high) + next_offset).replace(tzinfo=None)
            span_us = (offset - next_offset) // timedelta(microseconds=1)
            start = (first_wall - first_wall.replace(hour=0, minute=0, second=0, microsecond=0)) // timedelta(
                microseconds=1
            )
            end = start + span_us
            ranges.add((start, min(end, 86_400_000_000)))
            if end > 86_400_000_000:
                ranges.add((0, end - 86_400_000_000))
        offset = next_offset
        instant = following
    return sorted(ranges)


def parse_and_check(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    file_name: str,
    raw: str,
    present: dict[str, str],
    policy: Policy,
    target: str,
) -> None:
    """Accepted rows of ``raw`` into ``target`` (in file order), the others into ``quarantine`` with reasons.

    A file of up to :data:`PARSED_ONCE_MAX_ROWS` rows is parsed and checked by one statement, into a temporary
    table every later statement reads. A larger one is parsed straight into the warehouse table (no typed copy
    with the text of every value is written and read again), its rows whose ID repeats and its rows not loaded
    parsed again on their own. Messages are built for the quarantined rows alone, by one statement.
    """
    parses: list[str] = []  # the parsed columns, plus the trimmed text of parsed values (for messages)
    # The lowest level: each value trimmed once, for everything above to read by name (written inline, the trim's
    # CASE was repeated in every cast and test of the value, and DuckDB bound each copy: most of a small file's
    # planning time).
    trimmings = [
        f"{_trimmed_sql(ident(present[name]))} AS {_raw_text(name, present)}"
        for name in [column.name for column in source.columns] + list(source.derived)
        if name in present
    ]
    forms: list[str] = []  # computed once per row under the parse: the casts of timestamp texts and their forms
    # the levels above the forms, each reading the one below: a timestamp's zone readings, then the earlier
    # instant its wall time may also be, then whether it is read as that instant
    readings: list[str] = []
    firsts: list[str] = []
    earliers: list[str] = []
    earlier_flags: list[str] = []  # timestamp columns with a ``<name>__earlier`` flag: read as the earlier instant
    checks: list[tuple[str, str, str]] = []  # (condition, reason code, message SQL), one per possible problem
    zone = policy.source_timezone
    first_year, last_year = policy.timestamp_window
    window_start, window_end = map(ts_lit, policy.timestamp_bounds())
    for column in source.columns:
        name = column.name
        trimmed = _raw_text(name, present)
        text = name  # ids and free text are kept as trimmed text: nothing to parse
        if column.kind in ("timestamp", "boolean", "enum"):
            text = f"{name}__text"
            parses.append(text if column.kind == "timestamp" else f"{trimmed} AS {text}")
        if column.kind == "timestamp":
            timestamp = _timestamp_sql(name, trimmed, zone)
            forms += timestamp.forms
            readings += timestamp.readings
            firsts.append(timestamp.first)
            earliers.append(timestamp.earlier)
            parses += [f"{name}__form", f"{timestamp.value} AS {name}", f"{name}__earlier", *timestamp.passed]
            earlier_flags.append(name)
            checks.append(
                (
                    f"{text} IS NOT NULL AND {name} IS NULL",
                    "bad_timestamp",
                    f"'{name}: not an ISO-8601 timestamp: ' || {text}",
                )
            )
            # Inside the policy's window of years, and written as a date: DuckDB's cast also takes the keywords
            # 'epoch' (1970-01-01), 'infinity', 'allballs' and years such as 0001 or 9999, never a real event's time.
            checks.append(
                (
                    f"{text} IS NOT NULL AND {name} IS NOT NULL AND NOT (regexp_matches({text}, '^[0-9]') "
                    f"AND isfinite({name}) AND {name} >= {window_start} AND {name} < {window_end})",
                    "bad_timestamp",
                    f"'{name}: outside the years {first_year}-{last_year} or not a date: ' || {text}",
                )
            )
            # a wall time inside a spring-forward gap never happened, with or without a zone name
            checks.append(
                (
                    timestamp.nonexistent,
                    "nonexistent_local_time",
                    f"'{name}: ' || {text} || ' does not exist' || CASE {name}__form WHEN 'wall' THEN ' in ' || {lit(zone)} "
                    "ELSE '' END || ' (skipped by a daylight-saving change)'",
                )
            )
        elif column.kind == "boolean":
            lowered = f"lower({trimmed})"
            parses.append(
                f"CASE WHEN {lowered} IN ({', '.join(map(lit, _TRUE))}) THEN true "
                f"WHEN {lowered} IN ({', '.join(map(lit, _FALSE))}) THEN false END AS {name}"
            )
            checks.append(
                (
                    f"{text} IS NOT NULL AND {name} IS NULL",
                    "bad_boolean",
                    f"'{name}: not a boolean (true/false, yes/no, 1/0): ' || {text}",
                )
            )
        elif column.kind == "enum":
            allowed = accepted_spellings(column, policy)
            cases = " ".join(f"WHEN {lit(spelling)} THEN {lit(value)}" for spelling, value in sorted(allowed.items()))
            value = f"CASE lower({trimmed}) {cases} END" if allowed else "NULL::VARCHAR"
            if "channel_source" in source.derived and name == "channel":
                # a blank channel is read from the subject's tag (tickets_reading), for every input format
                value = f"coalesce({value}, CASE WHEN {trimmed} IS NULL THEN {tag_channel_sql(policy, _raw_text('subject', present))} END)"
            parses.append(f"{value} AS {name}")
            checks.append(
                (f"{text} IS NOT NULL AND {name} IS NULL", "unknown_value", f"'{name}: unknown value ' || {text}")
            )
        elif column.kind == "text" and name not in SCANNED_TEXT.get(source.name, ()):
            # a label that outputs show as it is (a segment, a chart series): never a raw secret
            parses.append(f"{redact_sql(trimmed)} AS {name}")
        elif column.kind == "id":
            # IDs are published (an auditor traces a row by them), a secret inside one never: its pseudonym
            parses.append(f"{pseudonym_sql(trimmed)} AS {name}")
        else:
            parses.append(f"{trimmed} AS {name}")
        if column.required:
            # an enum read from elsewhere when blank (the channel from a subject tag) is missing only when both are
            missing = f"{text} IS NULL AND {name} IS NULL" if column.kind == "enum" else f"{text} IS NULL"
            checks.append((missing, "missing_value", f"'{name}: missing required value'"))
    checks += [
        (
            f"{later} < {earlier}",
            "out_of_order",
            f"'{later} ' || strftime({later}, '%Y-%m-%dT%H:%M:%SZ') || ' is before {earlier} ' || "
            f"strftime({earlier}, '%Y-%m-%dT%H:%M:%SZ')",
        )
        for earlier, later in source.ordered
    ]

    columns = ", ".join(column.name for column in source.columns)
    if source.derived:
        columns = _with_derived_columns(source, present, policy, parses)

    # Each check's condition is a column of the parse (``__check_<n>``), which the rejected flag and the messages
    # read by name: written into both, every condition was planned once more by the quarantine statement.
    # A condition that is NULL (a value it compares is missing) is no problem, as in the CASEs of the messages.
    check_flags = [f"__check_{number}" for number in range(len(checks))]
    conditions = ", ".join(
        f"{condition} AS {flag}" for (condition, _, _), flag in zip(checks, check_flags, strict=True)
    )
    rejected = f"coalesce({' OR '.join(check_flags)}, false)"

    def parsed_and_checked(rows: str, *passing: str) -> str:
        """SQL: the rows of relation ``rows`` (raw rows) parsed, in their order, with their ``rejected`` flag and
        the columns ``passing`` of ``rows``."""
        kept = "".join(f", {column}" for column in passing)
        # Only the columns the parse reads go up from the file: a column of the file's own that is named like one of
        # the parse's (``created_at__text``) would otherwise be read in its place.
        record_id = ident(present[source.record_id])
        below = f"(SELECT source_line, {record_id}{kept}{''.join(f', {t}' for t in trimmings)} FROM {rows})"
        for level in (forms, readings, firsts, earliers):
            below = f"(SELECT *, {', '.join(level)} FROM {below})" if level else below
        parsed = f"(SELECT source_line, {record_id} AS raw_record_id{kept}, {', '.join(parses)} FROM {below})"
        return f"(SELECT *, {rejected} AS rejected FROM (SELECT *, {conditions} FROM {parsed}))"

    # The parsed, checked rows the statements after the load read: every row of a file parsed once (it feeds the
    # load too), only the rows not loaded of a larger one.
    checked = f"checked_{source.name}"
    parsed_once = con.execute(f"SELECT count(*) FROM {raw}").fetchall()[0][0] <= PARSED_ONCE_MAX_ROWS
    if parsed_once:
        with _filters_after_parse(con):
            con.execute(f"CREATE OR REPLACE TEMP TABLE {checked} AS SELECT * FROM {parsed_and_checked(raw)}")

    def checked_candidates(candidates: str) -> str:
        """SQL: the rows of relation ``candidates`` (raw rows with their ``content_hash``), parsed and checked."""
        if parsed_once:
            return f"(SELECT * FROM {checked} JOIN (SELECT source_line, content_hash FROM {candidates}) USING (source_line))"
        return parsed_and_checked(candidates, "content_hash")

    keep, duplicates = "NOT rejected", None
    if source.unique:
        duplicates = _find_later_duplicates(con, source, raw, present, checked_candidates)
        if duplicates is not None:
            later = _lines_condition(con, duplicates, duplicates)
            keep += f" AND NOT {later}"
    # The names of a row's values read as their earlier instant: NULL for nearly every row, so cheap to write.
    earlier = (
        (
            f"CASE WHEN {' OR '.join(f'{name}__earlier' for name in earlier_flags)} THEN list_filter(["
            + ", ".join(f"CASE WHEN {name}__earlier THEN {lit(name)} END" for name in earlier_flags)
            + "], lambda name: name IS NOT NULL) END"
        )
        if earlier_flags
        else "NULL::VARCHAR[]"
    )
    # Scan, parse and filter keep the file order: no join, no sort.
    with _filters_after_parse(con):
        con.execute(
            f"""CREATE OR REPLACE TABLE {target} AS
                SELECT {columns}, {lit(file_name)} AS source_file, source_line, {earlier} AS __earlier_columns
                FROM {checked if parsed_once else parsed_and_checked(raw)} WHERE {keep}"""
        )
    _record_earlier_readings(con, source, file_name, target)
    if not parsed_once:
        # The rows not loaded (a few) are parsed again, once, for the quarantine to read: found in one scan
        # against a bit per loaded line (an anti join would build a hash table of every loaded line), then read
        # through a semi join: at 1M rows, that filter put straight on the scan below the parse cost 2.5x as much.
        loaded = _lines_condition(con, f"loaded_{source.name}", target)
        not_loaded = (
            f"(SELECT * FROM {raw} WHERE source_line IN (SELECT source_line FROM {raw} WHERE NOT {loaded or 'false'}))"
        )
        with _filters_after_parse(con):
            con.execute(f"CREATE OR REPLACE TEMP TABLE {checked} AS SELECT * FROM {parsed_and_checked(not_loaded)}")
        con.execute(f"RESET VARIABLE loaded_{source.name}")
    problems = ", ".join(
        f"CASE WHEN {flag} THEN {{'code': {lit(code)}, 'message': {message}}} END"
        for (_, code, message), flag in zip(checks, check_flags, strict=True)
    )
    rejected_rows = (
        f"SELECT 1 AS listed, source_line, raw_record_id, {source.record_id} AS parsed_record_id, "
        f"list_filter([{problems}], lambda p: p IS NOT NULL) AS problems FROM {checked} WHERE rejected"
    )
    rejected_ids = f"SELECT raw_record_id FROM {checked} WHERE rejected"
    # One statement for both (planning the redaction costs more than running it on a few rows): the later
    # duplicates first, then the rows a check rejected, each in line order.
    if duplicates is not None:
        _quarantine(
            con,
            file_name,
            f"{_duplicate_problems(source, duplicates)} UNION ALL {rejected_rows}",
            "listed, source_line",
            _quarantined_record_id_sql(con, source, f"SELECT raw_record_id FROM {duplicates} UNION ALL {rejected_ids}"),
        )
        con.execute(f"DROP TABLE {duplicates}")
        con.execute(f"RESET VARIABLE {duplicates}")
    elif con.execute(f"SELECT count(*) FROM {checked} WHERE rejected").fetchall()[0][0]:
        _quarantine(con, file_name, rejected_rows, "source_line", _quarantined_record_id_sql(con, source, rejected_ids))
    _record_quarantined_clock_starts(con, source, file_name, checked, window_start, window_end)
    con.execute(f"DROP TABLE {checked}")


# The clock start of each quarantined row whose start parsed (inside the policy's years), so that a --period run
# can count the quarantined rows of its period; a row without one here is not attributable to a period.
QUARANTINE_CLOCK_STARTS_COLUMNS = "source_file VARCHAR, line BIGINT, clock_started_at TIMESTAMPTZ"


def _record_quarantined_clock_starts(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    file_name: str,
    checked: str,
    window_start: str,
    window_end: str,
) -> None:
    """Replace ``quarantine_clock_starts`` of ``file_name`` by the clock starts (:data:`CLOCK_STARTS` columns, the
    first with a value) of its quarantined rows in line order, read from their parse (``checked``: a table holding
    at least every row not loaded); rows whose start did not parse are left out. A source whose rows follow
    another's records has no start of its own: nothing is recorded."""
    con.execute(f"CREATE TABLE IF NOT EXISTS quarantine_clock_starts ({QUARANTINE_CLOCK_STARTS_COLUMNS})")
    con.execute("DELETE FROM quarantine_clock_starts WHERE source_file = ?", [file_name])
    clock = CLOCK_STARTS.get(source.name)
    columns = [column for column in (clock.columns if clock else ()) if column in {c.name for c in source.columns}]
    if not columns:
        return
    start = f"coalesce({', '.join(ident(column) for column in columns)})"
    con.execute(
        f"""INSERT INTO quarantine_clock_starts
            SELECT $file, source_line, clock_started_at
            FROM (SELECT source_line, {start} AS clock_started_at FROM {checked}
                  WHERE source_line IN (SELECT line FROM quarantine WHERE source_file = $file))
            WHERE isfinite(clock_started_at) AND clock_started_at >= {window_start}
              AND clock_started_at < {window_end}
            ORDER BY source_line""",
        {"file": file_name},
    )


def _raw_text(name: str, present: dict[str, str]) -> str:
    """SQL: a column's trimmed text (NULL when blank or when the file has no such column), as the lowest level of
    the parse names it."""
    return f"{name}__trimmed" if name in present else "NULL::VARCHAR"


def _with_derived_columns(source: Source, present: dict[str, str], policy: Policy, parses: list[str]) -> str:
    """The staged columns of a tickets file: ``tier`` is the effective tier, then ``channel_source`` and
    ``tier_source`` (compliance.ingest.tickets_reading). Adds to ``parses`` what they read."""
    keyword_tier = keyword_tier_sql(policy, _raw_text("subject", present), _raw_text("description", present))
    if keyword_tier is not None:
        parses.append(f"{keyword_tier} AS tier__keywords")  # once per row: the regexes are the costly part
    parses += [f"{_raw_text(name, present)} AS {name}__file" for name in source.derived]
    tier, tier_source = tier_reading_sql(
        policy, "tier", "plan", "tier__keywords" if keyword_tier else None, "tier_source__file"
    )
    staged = [f"{tier} AS tier" if column.name == "tier" else column.name for column in source.columns]
    return ", ".join(
        staged
        + [
            f"{channel_source_sql(policy, 'channel__text', 'channel_source__file')} AS channel_source",
            f"{tier_source} AS tier_source",
        ]
    )


def _record_earlier_readings(con: duckdb.DuckDBPyConnection, source: Source, file_name: str, target: str) -> None:
    """Move the loaded values read as their earlier instant from ``target`` into ``ambiguous_local_times``
    (replacing an older version's rows of this file), for data quality to count."""
    con.execute(f"CREATE TABLE IF NOT EXISTS ambiguous_local_times ({AMBIGUOUS_LOCAL_TIMES_COLUMNS})")
    con.execute("DELETE FROM ambiguous_local_times WHERE source = ? AND source_file = ?", [source.name, file_name])
    con.execute(
        f"""INSERT INTO ambiguous_local_times
            SELECT {lit(source.name)}, source_file, source_line, unnest(__earlier_columns)
            FROM {target} WHERE __earlier_columns IS NOT NULL"""
    )
    con.execute(f"ALTER TABLE {target} DROP COLUMN __earlier_columns")


@contextmanager
def _filters_after_parse(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Filters stay where the query puts them, after the parse: pushed down into it, a filter on the rejected flag
    would repeat a value's parse for every condition that reads the value, and run on every row of the file."""
    con.execute("SET disabled_optimizers = 'filter_pushdown'")
    try:
        yield
    finally:
        con.execute("RESET disabled_optimizers")


def _quarantined_record_id_sql(con: duckdb.DuckDBPyConnection, source: Source, quarantined_ids: str) -> str:
    """SQL: the published record ID of a quarantined row, the pseudonym of its raw ID (``raw_record_id``).

    Where the record ID is an ID column and every raw ID of ``quarantined_ids`` (a relation) is already trimmed,
    nearly always, that pseudonym is the parse's own (``parsed_record_id``): read, not planned again, for planning
    the pseudonym (compiling its regular expressions) costs more than the rest of the quarantine statement.
    """
    pseudonym = pseudonym_sql("raw_record_id")
    if source.column(source.record_id).kind != "id":
        return pseudonym
    untrimmed = con.execute(
        f"SELECT count(*) FROM ({quarantined_ids}) WHERE raw_record_id IS DISTINCT FROM {_trimmed_sql('raw_record_id')}"
    ).fetchall()[0][0]
    return pseudonym if untrimmed else "parsed_record_id"


def _quarantine(con: duckdb.DuckDBPyConnection, file_name: str, rows: str, order: str, record_id: str) -> None:
    """Quarantine ``rows`` (source_line, raw_record_id, parsed_record_id, problems: a list of {code, message}) in
    ``order``; ``record_id`` is the SQL of the published record ID (:func:`_quarantined_record_id_sql`)."""
    con.execute(
        f"""INSERT INTO quarantine
            SELECT $file, source_line, {record_id}, problems[1].code,
                   -- a message quotes the raw value, which may be a secret or personal data: redacted, then cut
                   -- at {_REASON_MAX_CHARS} characters (the fixed text is under 60, so a value keeps about 60)
                   array_to_string(list_transform(list_transform(problems, lambda p: {redact_sql("p.message")}),
                       lambda m: CASE WHEN length(m) > {_REASON_MAX_CHARS} THEN left(m, {_REASON_MAX_CHARS - 1}) || '…'
                                      ELSE m END), '; ')
            FROM ({rows}) ORDER BY {order}""",
        {"file": file_name},
    )


def _find_later_duplicates(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    raw: str,
    present: dict[str, str],
    checked_candidates: Callable[[str], str],
) -> str | None:
    """Among the rows that pass every check, the first occurrence of an ID is kept; the later ones are found here.

    Returns the name of a temporary table of the later occurrences (source_line, raw_record_id, id, content_hash,
    first_line, first_hash), None when there are none. Only rows whose ID occurs more than once in the file are
    judged (``checked_candidates``: their parse), a few.
    """
    key = source.record_id
    raw_key = _trimmed_sql(ident(present[key]))
    # "Exact duplicate" compares the raw rows as read (every column of the contract).
    raw_columns = ", ".join(ident(present[c.name]) for c in source.columns if c.name in present)
    duplicates = f"duplicates_{source.name}"
    # The lines whose ID occurs more than once are found from the key column alone; whole rows are read for
    # those lines only.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {duplicates}_shared AS SELECT source_line FROM {raw}
            WHERE {raw_key} IN (SELECT {raw_key} FROM {raw} GROUP BY ALL HAVING count(*) > 1)"""
    )
    shared = _lines_condition(con, f"{duplicates}_shared", f"{duplicates}_shared")
    con.execute(f"DROP TABLE {duplicates}_shared")
    if shared is None:
        return None
    with _filters_after_parse(con):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {duplicates} AS
                WITH candidates AS (
                    SELECT *, hash({raw_columns}) AS content_hash FROM {raw} WHERE {shared}
                ), accepted AS (
                    SELECT * FROM {checked_candidates("candidates")} WHERE NOT rejected
                )
                SELECT source_line, raw_record_id, {key} AS id, content_hash,
                       first_value(source_line) OVER w AS first_line, first_value(content_hash) OVER w AS first_hash,
                       row_number() OVER w AS occurrence
                FROM accepted
                WINDOW w AS (PARTITION BY {key} ORDER BY source_line)"""
        )
    con.execute(f"RESET VARIABLE {duplicates}_shared")
    con.execute(f"DELETE FROM {duplicates} WHERE occurrence = 1")
    if not con.execute(f"SELECT count(*) FROM {duplicates}").fetchall()[0][0]:
        con.execute(f"DROP TABLE {duplicates}")
        return None
    return duplicates


def _duplicate_problems(source: Source, duplicates: str) -> str:
    """SQL: the quarantine rows (listed 0: before the rejected rows) of the later duplicates in ``duplicates``."""
    return f"""SELECT 0 AS listed, source_line, raw_record_id, id AS parsed_record_id,
                   [CASE WHEN content_hash = first_hash
                         THEN {{'code': 'exact_duplicate', 'message': 'exact duplicate of line ' || first_line}}
                         ELSE {{'code': 'duplicate_id', 'message': '{source.record_id} ' || id
                                || ' already used on line ' || first_line || ' (that row is kept)'}} END] AS problems
            FROM {duplicates}"""


def _lines_condition(con: duckdb.DuckDBPyConnection, variable: str, lines: str) -> str | None:
    """SQL condition: a row's ``source_line`` is one of those in table ``lines``; None when there are none.

    A bit per line in a session variable, looked up per row: unlike a join, this keeps the scan's order and never
    builds a hash table of the scanned side. The variable lives until the session ends or is reset.
    """
    first, last = con.execute(f"SELECT min(source_line), max(source_line) FROM {lines}").fetchall()[0]
    if first is None:
        return None
    con.execute(f"SET VARIABLE {variable} = (SELECT bitstring_agg(source_line, {first}, {last}) FROM {lines})")
    return (
        f"CASE WHEN source_line BETWEEN {first} AND {last} "
        f"THEN get_bit(getvariable('{variable}'), (source_line - {first})::INTEGER) = 1 ELSE false END"
    )
