"""Ingest: the export files of a source → one typed DuckDB table, every bad row quarantined with a reason.

This module keeps the registry of loaded files and merges their records; reading a file is
:mod:`compliance.ingest.readers`, parsing and quarantining its rows :mod:`compliance.ingest.parsing`.

Set-based throughout: a file is read as text by DuckDB, every value is parsed and checked in SQL, and rows with
problems go to the ``quarantine`` table instead of ``staged_<source>``. For each file, rows read = rows loaded +
rows quarantined, and the ``ingest_log`` table says so. The text of a file never goes into the warehouse file
(Parquet is read through a view, CSV and JSON Lines through temporary tables); a small file is parsed once, into a
temporary table its accepted rows and its quarantine are read from; a large one is parsed in one pass that writes
the accepted rows, typed, in file order, and only its rows not loaded and its rows whose ID repeats are parsed again.
Text encodings (:mod:`compliance.ingest.encodings`): a UTF-8 file is read by DuckDB itself; a file in another encoding,
detected or named with ``--encoding``, through a streamed UTF-8 copy. A byte that does not decode becomes U+FFFD
and is counted per column (``loaded_files.replaced_characters``, shown in ``data_quality``): it never costs a row.

Loads are incremental and idempotent. The ``loaded_files`` registry remembers every file version loaded (name +
sha256): a file already loaded is not read again. A new file's accepted records are merged into
``staged_<source>`` by record ID: of two versions of a record, the one from the file with the greater version key
wins (:func:`_version_key`: the export's date from the name's suffix, else the newest instant a record of the
file's accepted rows came to be known at, ties by file name), so that the order files arrive in never decides, and a clean run and any sequence of
incremental runs agree; a new record is added (for ``ticket_events`` and ``incident_updates``, whose IDs repeat,
the winning file's rows for an ID are all the rows of that ID). A new version of an already loaded file name
replaces that file's contribution: its records absent from the new version are withdrawn.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import astuple, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from compliance.core.files import file_sha256
from compliance.core.sql import column_names, ident, lit, table_exists
from compliance.ingest.contract import QUARANTINE_COLUMNS_SQL, SOURCES, Source
from compliance.ingest.encodings import REPLACEMENT_CHARACTER, Decoding, codec_name
from compliance.ingest.landing import (
    CONVERSION_LOG,
    export_files,
    file_pattern,
    format_conflicts,
    not_regular_files,
)
from compliance.ingest.parsing import accepted_spellings, parse_and_check
from compliance.ingest.readers import DuckDBCannotRead, UnusableFile, read_raw, unglobbed
from compliance.policy import Policy

QUARANTINE_COLUMNS = QUARANTINE_COLUMNS_SQL
INGEST_LOG_COLUMNS = (
    "source VARCHAR, file VARCHAR, file_format VARCHAR, status VARCHAR, problem VARCHAR, sha256 VARCHAR, "
    "rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, change VARCHAR, encoding VARCHAR"
)
# The canonical columns in the header of each loaded file (the current version of the name), kept across runs
# because a file already loaded is not read again.
FILE_COLUMNS_COLUMNS = "source VARCHAR, file VARCHAR, columns VARCHAR[]"
# Per file in use × canonical column: whether the file carries it, refreshed by every ingest of the source;
# ``absence`` names the file and the column when it does not ("tickets.csv has no first_response_at column").
INPUT_COLUMNS_COLUMNS = "source VARCHAR, file VARCHAR, column_name VARCHAR, present BOOLEAN, absence VARCHAR"
# One row per file version ever loaded; state 'current', or 'superseded' once a newer version of the name loads.
LOADED_FILES_COLUMNS = (
    "source VARCHAR, file VARCHAR, sha256 VARCHAR, file_format VARCHAR, settings_sha256 VARCHAR, "
    "loaded_at TIMESTAMPTZ, state VARCHAR, rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, "
    "rows_inserted BIGINT, rows_replaced BIGINT, rows_unchanged BIGINT, rows_withdrawn BIGINT, "
    # the text encoding the file was read in, and per column the characters that did not decode in it (U+FFFD)
    "encoding VARCHAR, replaced_characters MAP(VARCHAR, BIGINT), "
    # which version of a record wins: see _version_key
    "version_key VARCHAR"
)


@dataclass(frozen=True)
class FileEntry:
    """One input file of a run, as the ``ingest_log`` and the manifest show it."""

    source: str
    file: str | None
    file_format: str | None
    status: str  # loaded | missing | unusable
    problem: str | None
    sha256: str | None
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    change: str | None  # new (loaded by this run) | unchanged (loaded before) | superseded (newer exports replaced it)
    encoding: str | None = None  # the text encoding the file was read in (Parquet: utf-8, its strings' encoding)


@dataclass(frozen=True)
class MergeCounts:
    """What a file's accepted rows did to the staged table."""

    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    withdrawn: int = 0  # rows of an older version of the same file name that the new version no longer has


@dataclass(frozen=True)
class IngestResult:
    source: str
    status: str  # loaded | missing | unusable
    problem: str | None
    files: tuple[FileEntry, ...]
    merged: MergeCounts  # summed over the files this run loaded

    @property
    def rows_read(self) -> int:
        return sum(entry.rows_read for entry in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(entry.rows_loaded for entry in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(entry.rows_quarantined for entry in self.files)


def prepare_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE IF NOT EXISTS quarantine ({QUARANTINE_COLUMNS})")
    con.execute(f"CREATE TABLE IF NOT EXISTS ingest_log ({INGEST_LOG_COLUMNS})")
    con.execute("ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS change VARCHAR")  # warehouses from before
    con.execute("ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS encoding VARCHAR")
    con.execute(f"CREATE TABLE IF NOT EXISTS loaded_files ({LOADED_FILES_COLUMNS})")
    con.execute("ALTER TABLE loaded_files ADD COLUMN IF NOT EXISTS encoding VARCHAR")
    con.execute("ALTER TABLE loaded_files ADD COLUMN IF NOT EXISTS replaced_characters MAP(VARCHAR, BIGINT)")
    con.execute("ALTER TABLE loaded_files ADD COLUMN IF NOT EXISTS version_key VARCHAR")
    con.execute(f"CREATE TABLE IF NOT EXISTS file_columns ({FILE_COLUMNS_COLUMNS})")
    con.execute(f"CREATE TABLE IF NOT EXISTS input_columns ({INPUT_COLUMNS_COLUMNS})")


def ingest_source(
    con: duckdb.DuckDBPyConnection, source_name: str, exports_dir: Path, policy: Policy, encoding: str | None = None
) -> IngestResult:
    """Load the source's new or changed export files into ``staged_<source>``; files already loaded are skipped.

    ``encoding`` (a Python codec name) is the text encoding of every CSV and JSON Lines file; None detects it per
    file (:mod:`compliance.ingest.encodings`). An unknown name raises LookupError.

    A file that cannot be loaded, for whatever reason (truncated, unreadable, not the format its name says, a
    DuckDB error while reading it), is named as unusable with the first line of its first error; the other files
    are still loaded. A CSV file DuckDB cannot read (CR, LF and CRLF line endings mixed, a line over its maximum
    size) is first read again through a copy Python's csv module writes (:mod:`compliance.ingest.readers`).
    DuckDB aborts the whole transaction on an error: when it does, the load of the source is rolled back and
    started again, so the statements that follow never report "Current transaction is aborted" in place of the
    real cause. Hence the contract: within a transaction, ingest_source is the first thing its caller does (the
    rollback undoes everything since the transaction began).
    """
    attempts = _Attempts()
    while True:
        try:
            return _ingest_files(con, SOURCES[source_name], exports_dir, policy, encoding, attempts)
        except _TransactionAborted as aborted:
            attempts.failed(aborted.file, aborted.problem, aborted.by_duckdb)


@dataclass
class _Attempts:
    """What earlier attempts of a source's load learnt about its files, by name."""

    refused: dict[str, str] = field(default_factory=dict)  # unusable, with the problem
    through_copy: set[str] = field(default_factory=set)  # CSV files to read through the csv module's copy

    def failed(self, file: str, problem: str, by_duckdb: bool) -> None:
        """Read a CSV file that DuckDB failed on (``by_duckdb``) once more through the copy; refuse any other file,
        or a CSV file failing that way too."""
        if by_duckdb and file.endswith(".csv") and file not in self.through_copy:
            self.through_copy.add(file)
        else:
            self.refused[file] = problem


class _TransactionAborted(Exception):
    """Loading ``file`` failed and aborted the caller's transaction, which has been rolled back and begun again."""

    def __init__(self, file: str, problem: str, by_duckdb: bool) -> None:
        super().__init__(f"{file}: {problem}")
        self.file, self.problem, self.by_duckdb = file, problem, by_duckdb


def _ingest_files(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    exports_dir: Path,
    policy: Policy,
    encoding: str | None,
    attempts: _Attempts,
) -> IngestResult:
    """One attempt of :func:`ingest_source`, knowing what the earlier ones learnt."""
    encoding = codec_name(encoding) if encoding else None
    prepare_warehouse(con)
    settings = _settings_sha256(source, policy, encoding)
    if _needs_rebuild(con, source, settings):
        _forget(con, source)
    con.execute("DELETE FROM ingest_log WHERE source = ?", [source.name])
    files = export_files(exports_dir, source.name)
    conflicts = format_conflicts(files)
    unusable: list[FileEntry] = [
        FileEntry(source.name, path.name, path.suffix.lstrip("."), "unusable", problem, None, 0, 0, 0, None)
        for path, problem in not_regular_files(exports_dir, source.name)
    ]
    superseded: list[FileEntry] = []
    loaded_now: set[str] = set()
    merges: list[MergeCounts] = []
    for path in files:
        sha256, counts = None, None
        hashing = _FileHash(path)
        while counts is None:
            try:
                previous = _current_version(con, source, path.name)
                if previous is not None or path.name in attempts.refused or path.name in conflicts:
                    sha256 = hashing.hexdigest()  # wanted now: is this version loaded already; or for its entry
                if path.name in attempts.refused:
                    raise UnusableFile(attempts.refused[path.name])
                if path.name in conflicts:
                    raise UnusableFile(conflicts[path.name])
                if previous is not None and previous.sha256 == sha256:
                    break  # this exact file is loaded already
                counts = _load_version(con, source, path, hashing, settings, policy, encoding, attempts)
            except (UnusableFile, OSError, duckdb.Error) as error:
                sha256 = hashing.hexdigest_or_none()
                problem, by_duckdb = _problem_of(error), isinstance(error, (duckdb.Error, DuckDBCannotRead))
                if _transaction_aborted(con):
                    con.rollback()
                    con.begin()
                    raise _TransactionAborted(path.name, problem, by_duckdb) from None
                if path.name not in attempts.refused:  # outside a transaction the next attempt is made here
                    attempts.failed(path.name, problem, by_duckdb)
                    continue
                unusable.append(
                    FileEntry(
                        source.name, path.name, path.suffix.lstrip("."), "unusable", problem, sha256, 0, 0, 0, None
                    )
                )
                break
        if counts is None:
            continue
        if previous is not None:
            superseded.append(previous)
        loaded_now.add(path.name)
        merges.append(counts)
    current = _current_entries(con, source, {path.name for path in files}, loaded_now)
    # A name whose new version is superseded as a whole (a newer export holds all its records) is listed once,
    # as that version: its replaced older version would count the same file's rows twice.
    superseded_now = {entry.file for entry in current if entry.change == "superseded"}
    superseded = [entry for entry in superseded if entry.file not in superseded_now]
    entries = unusable + superseded + current
    if not entries:
        entries = [FileEntry(source.name, None, None, "missing", "no export file", None, 0, 0, 0, None)]
    # Insertion order matters to readers that keep one row per source: a usable file is written last.
    con.executemany(
        f"INSERT INTO ingest_log VALUES ({', '.join('?' * len(astuple(entries[0])))})",
        [astuple(entry) for entry in entries],
    )
    _record_input_columns(con, source, [entry.file for entry in current if entry.change != "superseded"], exports_dir)
    merged = (
        MergeCounts(*(sum(column) for column in zip(*map(astuple, merges), strict=False))) if merges else MergeCounts()
    )
    return IngestResult(source.name, *_source_status(entries), tuple(entries), merged)


class _FileHash:
    """A file's sha256, read on a thread of its own beside the load: file reads and hashlib release the GIL, so a
    new file's bytes are hashed while DuckDB parses them instead of in a read of their own before. An error of
    the hashing (an OSError: the file cannot be read) is raised where the digest is asked for."""

    def __init__(self, path: Path) -> None:
        self._digest: str | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._hash, args=(path,), name=f"sha256 {path.name}", daemon=True)
        self._thread.start()

    def _hash(self, path: Path) -> None:
        try:
            self._digest = file_sha256(path)
        except Exception as error:  # handed to the thread that asks for the digest
            self._error = error

    def hexdigest(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return str(self._digest)

    def hexdigest_or_none(self) -> str | None:
        """The digest, None when the file could not be read."""
        self._thread.join()
        return self._digest


def _problem_of(error: Exception) -> str:
    """One line saying why a file cannot be used; quoted values are left out, they may be personal data."""
    if isinstance(error, UnusableFile):
        return str(error)
    if isinstance(error, PermissionError):
        return "the file cannot be read (permission denied)"
    if isinstance(error, OSError):
        return f"the file cannot be read ({error.strerror or type(error).__name__})"
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return "cannot be loaded: " + re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", first_line)


def _transaction_aborted(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the last error aborted the connection's transaction (outside one, DuckDB aborts nothing)."""
    try:
        con.execute("SELECT 1").fetchall()
    except duckdb.TransactionException:
        return True
    return False


def _unless_aborted(con: duckdb.DuckDBPyConnection, *statements: tuple[str, list]) -> None:
    """Clean-up after a failed load: in an aborted transaction it would only raise (and hide the real error) while
    the rollback undoes it anyway."""
    if not _transaction_aborted(con):
        for statement, parameters in statements:
            con.execute(statement, parameters)


def logged_result(con: duckdb.DuckDBPyConnection, source_name: str) -> IngestResult:
    """The last ingest of ``source_name`` as ``ingest_log`` holds it (for the checks, which run in a step of
    their own): its files, in the order they were logged, and its status. Merge counts are the ingest step's
    metadata and are not logged: zero here."""
    columns = ", ".join(field.name for field in fields(FileEntry))
    entries = tuple(
        FileEntry(*row)
        for row in con.execute(
            f"SELECT {columns} FROM ingest_log WHERE source = ? ORDER BY rowid", [source_name]
        ).fetchall()
    )
    return IngestResult(source_name, *_source_status(list(entries)), entries, MergeCounts())


def accounting_problems(con: duckdb.DuckDBPyConnection, result: IngestResult) -> list[str]:
    """Files whose rows read ≠ loaded + quarantined, or whose quarantine rows do not match their count."""
    problems = []
    quarantined = dict(con.execute("SELECT source_file, count(*) FROM quarantine GROUP BY ALL").fetchall())
    for entry in result.files:
        if entry.rows_read != entry.rows_loaded + entry.rows_quarantined:
            problems.append(
                f"{entry.file}: {entry.rows_read} read ≠ {entry.rows_loaded} loaded + {entry.rows_quarantined} quarantined"
            )
        elif (
            entry.status == "loaded"
            and entry.change != "superseded"
            and quarantined.get(entry.file, 0) != entry.rows_quarantined
        ):
            problems.append(
                f"{entry.file}: {quarantined.get(entry.file, 0)} rows in quarantine, {entry.rows_quarantined} expected"
            )
    return problems


def _settings_sha256(source: Source, policy: Policy, encoding: str | None) -> str:
    """Fingerprint of everything that decides how a file is parsed (the named encoding too): a change means every
    file is read again."""
    columns = [
        (c.name, c.kind, c.required, sorted(accepted_spellings(c, policy).items()) if c.kind == "enum" else None)
        for c in source.columns
    ]
    # the derived columns read the channel aliases (above), the keywords and the tier settings
    derivation = (
        (source.derived, policy.urgency_keywords, policy.urgency_negations, policy.priority_plans, policy.default_tier)
        if source.derived
        else ()
    )
    reading = repr(
        (
            policy.source_timezone,
            columns,
            source.record_id,
            source.unique,
            source.ordered,
            derivation,
            encoding,
            policy.timestamp_window,
            RECORDED_AT[source.name],  # what the stored version keys were read from (_version_key)
        )
    )
    return hashlib.sha256(reading.encode()).hexdigest()


def _needs_rebuild(con: duckdb.DuckDBPyConnection, source: Source, settings: str) -> bool:
    """Whether the staged table cannot be trusted to match the registry and today's parse settings."""
    registered = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE settings_sha256 <> ?) FROM loaded_files WHERE source = ?",
        [settings, source.name],
    ).fetchall()[0]
    # a file loaded by a version that did not record its header columns is read again to learn them
    unrecorded = con.execute(
        "SELECT count(*) FROM loaded_files l WHERE source = ? AND state = 'current' AND NOT EXISTS "
        "(SELECT 1 FROM file_columns c WHERE c.source = l.source AND c.file = l.file)",
        [source.name],
    ).fetchall()[0][0]
    return registered[1] > 0 or unrecorded > 0 or (registered[0] > 0) != table_exists(con, f"staged_{source.name}")


def _forget(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """Drop everything loaded from the source, so that the files in the landing folder are read again."""
    con.execute(f"DROP TABLE IF EXISTS staged_{source.name}")
    con.execute("DELETE FROM quarantine WHERE regexp_matches(source_file, ?)", [file_pattern(source.name)])
    con.execute("DELETE FROM loaded_files WHERE source = ?", [source.name])
    con.execute("DELETE FROM file_columns WHERE source = ?", [source.name])


def _record_input_columns(con: duckdb.DuckDBPyConnection, source: Source, files: list[str], exports_dir: Path) -> None:
    """``input_columns`` of the source: for each file in use, which canonical columns it carries. A column counts
    as carried when it is in the file's header and, in a folder an adapter wrote, the adapter declares that it
    fills it: an adapter writes every contract column it knows of, some of them always empty."""
    declared = _declared_filled_columns(exports_dir)
    vendor_format, filled = declared.get("format"), declared.get("filled_columns", {}).get(source.name)
    con.execute("DELETE FROM input_columns WHERE source = ?", [source.name])
    header = dict(con.execute("SELECT file, columns FROM file_columns WHERE source = ?", [source.name]).fetchall())
    rows = []
    for file in files:
        for column in source.columns:
            if column.name not in header.get(file, []):
                rows.append((source.name, file, column.name, False, f"{file} has no {column.name} column"))
            elif filled is not None and column.name not in filled:
                rows.append(
                    (
                        source.name,
                        file,
                        column.name,
                        False,
                        f"{file}: the {vendor_format} adapter cannot fill {column.name}",
                    )
                )
            else:
                rows.append((source.name, file, column.name, True, None))
    if rows:  # one statement, in this order (executemany would run the INSERT once per row)
        sources, files, columns, present, absences = map(list, zip(*rows, strict=True))
        con.execute(
            "INSERT INTO input_columns SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
            "unnest(?::BOOLEAN[]), unnest(?::VARCHAR[])",
            [sources, files, columns, present, absences],
        )


def _declared_filled_columns(exports_dir: Path) -> dict:
    """The adapter's ``format`` and ``filled_columns`` from the folder's conversion log; empty without one (or
    when it is unreadable: the manifest's conversion record reports that)."""
    try:
        log = json.loads((exports_dir / CONVERSION_LOG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return log if isinstance(log, dict) and isinstance(log.get("filled_columns", {}), dict) else {}


def _current_version(con: duckdb.DuckDBPyConnection, source: Source, file_name: str) -> FileEntry | None:
    rows = con.execute(
        "SELECT file_format, sha256, rows_read, rows_loaded, rows_quarantined, encoding FROM loaded_files "
        "WHERE source = ? AND file = ? AND state = 'current'",
        [source.name, file_name],
    ).fetchall()
    if not rows:
        return None
    file_format, sha256, read, loaded, quarantined, encoding = rows[0]
    return FileEntry(
        source.name, file_name, file_format, "loaded", None, sha256, read, loaded, quarantined, "superseded", encoding
    )


def _current_entries(
    con: duckdb.DuckDBPyConnection, source: Source, present: set[str], loaded_now: set[str]
) -> list[FileEntry]:
    """Registered files still in the landing folder or still behind staged rows, in load order."""
    staged = f"staged_{source.name}"
    in_use = (
        dict(con.execute(f"SELECT source_file, count(*) FROM {staged} GROUP BY ALL").fetchall())
        if table_exists(con, staged)
        else {}
    )
    entries = []
    for file, file_format, sha256, read, loaded, quarantined, encoding in con.execute(
        "SELECT file, file_format, sha256, rows_read, rows_loaded, rows_quarantined, encoding FROM loaded_files "
        "WHERE source = ? AND state = 'current' ORDER BY loaded_at, file",
        [source.name],
    ).fetchall():
        if file not in present and not in_use.get(file):
            continue
        change = "superseded" if loaded and not in_use.get(file) else "new" if file in loaded_now else "unchanged"
        entries.append(
            FileEntry(
                source.name, file, file_format, "loaded", None, sha256, read, loaded, quarantined, change, encoding
            )
        )
    return entries


def _source_status(entries: list[FileEntry]) -> tuple[str, str | None]:
    if any(entry.status == "loaded" for entry in entries):
        return "loaded", None
    problems = {entry.problem: entry.file for entry in entries}
    if len(problems) == 1:
        return entries[0].status, entries[0].problem
    return "unusable", "; ".join(f"{file}: {problem}" for problem, file in problems.items())


def _load_version(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    path: Path,
    hashing: _FileHash,
    settings: str,
    policy: Policy,
    encoding: str | None,
    attempts: _Attempts,
) -> MergeCounts:
    """Parse one new file version, merge its accepted rows into the staged table and register it (``hashing``:
    its sha256, asked for once the file is parsed, before anything is merged)."""
    batch = f"batch_{source.name}"
    # The quarantine rows of an older version of this name are replaced, unless the new version is unusable.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE previous_quarantine AS SELECT * FROM quarantine WHERE source_file = ?",
        [path.name],
    )
    con.execute("DELETE FROM quarantine WHERE source_file = ?", [path.name])
    try:
        read, loaded, quarantined, decoding, replaced = _load(
            con, source, path, policy, batch, encoding, through_copy=path.name in attempts.through_copy
        )
        sha256 = hashing.hexdigest()
    except (UnusableFile, OSError, duckdb.Error):
        _unless_aborted(
            con,
            ("DELETE FROM quarantine WHERE source_file = ?", [path.name]),
            ("INSERT INTO quarantine SELECT * FROM previous_quarantine", []),
            (f"DROP TABLE IF EXISTS {batch}", []),
        )
        raise
    finally:
        _unless_aborted(con, ("DROP TABLE IF EXISTS previous_quarantine", []))
    version_key = _version_key(con, source, path.name, batch)
    counts = _merge(con, source, batch, path.name, version_key)
    con.execute(
        "UPDATE loaded_files SET state = 'superseded' WHERE source = ? AND file = ? AND state = 'current'",
        [source.name, path.name],
    )
    con.execute(
        "INSERT INTO loaded_files VALUES (?, ?, ?, ?, ?, now(), 'current', ?, ?, ?, ?, ?, ?, ?, ?, "
        "MAP(?::VARCHAR[], ?::BIGINT[]), ?)",
        [
            source.name,
            path.name,
            sha256,
            path.suffix.lstrip("."),
            settings,
            read,
            loaded,
            quarantined,
            *astuple(counts),
            decoding.encoding,
            list(replaced),
            list(replaced.values()),
            version_key,
        ],
    )
    return counts


# An export's date (and time) at the end of its name: tickets-2026-11-20.csv, tickets_20261120T0800.parquet.
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?:[T_ -]?(\d{2})[:-]?(\d{2})(?:[:-]?(\d{2}))?)?Z?$")


# Per export, the timestamps that say when a record came to be known to it (a ticket opened, a request or report
# received, an event occurred, an update posted, an incident started or a maintenance announced, a waiver approved):
# an export without a date in its name is as new as the newest of them (see _version_key). The other timestamps
# are left out: deadlines, schedules and expiries (vendor_due_at, scheduled_start_at, embargo_extended_until,
# expires_at) name the future by nature, and a stop (resolved, completed, fixed) typed in the future would make an
# old export outrank every newer one. Every export of the contract has an entry (checked below).
RECORDED_AT: dict[str, tuple[str, ...]] = {
    "tickets": ("created_at",),
    "ticket_events": ("occurred_at",),
    "privacy_requests": ("received_at",),
    "security_reports": ("received_at",),
    "incidents": ("started_at", "announced_at"),
    "incident_updates": ("posted_at",),
    "retention_inventory": ("created_at",),
    "vendor_sla": (),
    "waivers": ("approved_at",),
}
if set(RECORDED_AT) != set(SOURCES):
    raise ImportError(f"RECORDED_AT names the exports {sorted(RECORDED_AT)}, the contract {sorted(SOURCES)}")


def _version_key(con: duckdb.DuckDBPyConnection, source: Source, file_name: str, batch: str) -> str:
    """The key that decides which version of a record wins: the greatest key's, whatever the order files were
    loaded in (so a clean run and any sequence of incremental runs agree).

    The key is the export's instant, then the file name for a tie: the instant is the date (and time) at the end
    of the name (``tickets-2026-11-20.csv``: 2026-11-20T00:00Z), else the newest :data:`RECORDED_AT` timestamp of
    the file's accepted rows (``batch``), else none (such a file loses to every dated one). Text that sorts as
    the keys compare.

    Only accepted rows count: a value the ingest refuses (a year 9999, a timestamp outside the policy's
    ``timestamp_window``, text that is no timestamp) quarantines its row, which is not in ``batch``. The as-of
    instant is not known here, and must not be: a file is loaded once and its records serve every later run of
    the warehouse, whatever that run's as-of (by default the moment it starts), so a key read against the as-of
    would make the staged table depend on the as-of the files happened to arrive at, and an incremental run differ
    from a clean one. What bounds the instant instead is the choice of timestamps: a stop typed in the future and
    a deadline do not count; a record whose own arrival is dated after a run's as-of still does (that run does not
    judge the record, an item whose clock starts after the as-of, and its data quality names the column).
    """
    instant = _name_instant(Path(file_name).stem)
    columns = RECORDED_AT[source.name]
    if instant is None and columns:
        newest_sql = f"SELECT max(greatest({', '.join(map(ident, columns))})) FROM {ident(batch)}"
        newest = con.execute(newest_sql).fetchall()[0][0]
        instant = newest.astimezone(UTC) if newest is not None else None
    return f"{instant:%Y-%m-%dT%H:%M:%S.%fZ}|{file_name}" if instant else f"|{file_name}"


def _name_instant(stem: str) -> datetime | None:
    match = _NAME_DATE.search(stem)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part) if part else 0 for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # 2026-13-40: no date, the name is only a name
        return None


def _merge(con: duckdb.DuckDBPyConnection, source: Source, batch: str, file_name: str, version_key: str) -> MergeCounts:
    """Merge a file's accepted rows (``batch``) into ``staged_<source>`` by record ID: per ID, the rows of the file
    with the greater :func:`_version_key` win (a new version of the same file name always replaces its own)."""
    staged = f"staged_{source.name}"
    if not table_exists(con, staged):
        rows = con.execute(f"SELECT count(*) FROM {batch}").fetchall()[0][0]
        con.execute(f"ALTER TABLE {batch} RENAME TO {staged}")
        return MergeCounts(inserted=rows)
    key = source.record_id
    # Per ID: an order-independent fingerprint of its rows (one row, or several for events) and their count.
    fingerprint = f"sum(hash({', '.join([column.name for column in source.columns] + list(source.derived))})::HUGEINT) AS fingerprint, count(*) AS rows"
    con.execute(f"CREATE OR REPLACE TEMP TABLE incoming AS SELECT {key} AS id, {fingerprint} FROM {batch} GROUP BY ALL")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE matched AS
            SELECT i.id, i.rows, s.fingerprint = i.fingerprint AND s.rows = i.rows AS same,
                   s.from_this_file OR $version_key > s.version_key AS incoming_wins
            FROM incoming i
            JOIN (SELECT {key} AS id, {fingerprint}, bool_or(source_file = $file) AS from_this_file,
                         coalesce(max(registered.version_key), '') AS version_key
                  FROM {staged}
                  LEFT JOIN (SELECT file, version_key FROM loaded_files
                             WHERE source = $source AND state = 'current') registered ON registered.file = source_file
                  WHERE {key} IN (SELECT id FROM incoming) GROUP BY ALL) s USING (id)""",
        {"file": file_name, "version_key": version_key, "source": source.name},
    )
    inserted, replaced, unchanged = con.execute(
        """SELECT (SELECT sum(rows) FROM incoming) - coalesce(sum(rows), 0),
                  coalesce(sum(rows) FILTER (WHERE NOT same AND incoming_wins), 0),
                  coalesce(sum(rows) FILTER (WHERE same OR NOT incoming_wins), 0)
           FROM matched"""
    ).fetchall()[0]
    # The losing side of each matched ID goes: the staged rows, or the incoming ones (from an older export).
    con.execute(f"DELETE FROM {batch} WHERE {key} IN (SELECT id FROM matched WHERE NOT incoming_wins)")
    con.execute(f"DELETE FROM {staged} WHERE {key} IN (SELECT id FROM matched WHERE incoming_wins)")
    withdrawn = con.execute(
        f"DELETE FROM {staged} WHERE source_file = ? AND {key} NOT IN (SELECT id FROM incoming)", [file_name]
    ).fetchall()[0][0]
    con.execute(f"INSERT INTO {staged} SELECT * FROM {batch}")
    for table in (batch, "incoming", "matched"):
        con.execute(f"DROP TABLE {table}")
    return MergeCounts(int(inserted or 0), int(replaced), int(unchanged), int(withdrawn))


def _load(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    path: Path,
    policy: Policy,
    batch: str,
    encoding: str | None,
    through_copy: bool = False,
) -> tuple[int, int, int, Decoding, dict[str, int]]:
    """Parse one file into ``batch``; returns rows read, loaded and quarantined, how its text was decoded, and per
    column the characters that did not decode. ``through_copy``: a CSV file is read through the csv module's copy."""
    if path.stat().st_size == 0:
        raise UnusableFile("the file is empty")
    raw = f"raw_{source.name}"
    with unglobbed(path) as readable:  # a Parquet view reads the file until the end of the parse
        return _load_readable(con, source, path, readable, policy, batch, encoding, raw, through_copy)


def _load_readable(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    path: Path,
    readable: Path,
    policy: Policy,
    batch: str,
    encoding: str | None,
    raw: str,
    through_copy: bool,
) -> tuple[int, int, int, Decoding, dict[str, int]]:
    """:func:`_load` of the export ``path`` read through ``readable`` (the same file, see ``unglobbed``)."""
    try:
        rejected, decoding = read_raw(
            con,
            source,
            readable,
            path.suffix.lstrip("."),
            raw,
            encoding,
            file_name=path.name,
            through_copy=through_copy,
        )
        replaced = _replaced_by_column(con, raw) if decoding.replaced else {}
        present: dict[str, str] = {}
        for name in column_names(con, raw):
            if name.strip().lower() in present:  # " Created_At" beside "created_at": which one is meant?
                raise UnusableFile(f"two columns named {name.strip().lower()!r}; which one is meant is not knowable")
            present[name.strip().lower()] = name
        missing = [name for name in source.required if name not in present]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise UnusableFile(f"missing required column{plural} {', '.join(missing)}")
        parse_and_check(con, source, path.name, raw, present, policy, batch)
        con.execute("DELETE FROM file_columns WHERE source = ? AND file = ?", [source.name, path.name])
        con.execute(
            "INSERT INTO file_columns VALUES (?, ?, ?)",
            [source.name, path.name, [column.name for column in source.columns if column.name in present]],
        )
        rows_loaded = con.execute(f"SELECT count(*) FROM {batch}").fetchall()[0][0]
        rows_quarantined = con.execute("SELECT count(*) FROM quarantine WHERE source_file = ?", [path.name]).fetchall()[
            0
        ][0]
        rows_read = con.execute(f"SELECT count(*) FROM {raw}").fetchall()[0][0] + rejected
    finally:
        _unless_aborted(con, (f"DROP VIEW IF EXISTS {raw}", []), (f"DROP TABLE IF EXISTS {raw}_text", []))
    return rows_read, rows_loaded, rows_quarantined, decoding, replaced


def _replaced_by_column(con: duckdb.DuckDBPyConnection, raw: str) -> dict[str, int]:
    """Per text column (as the header names it), the U+FFFD characters in its values; columns without any left out.

    Called only when the decoder replaced bytes, so a U+FFFD is counted as a replaced byte; in the rare file that
    also carried U+FFFD of its own, those are counted with them (the decoder's total cannot be split by column).
    """
    columns = [name for name in column_names(con, raw) if name != "source_line"]
    if not columns:
        return {}
    counts = con.execute(
        "SELECT "
        + ", ".join(
            f"coalesce(sum(length({ident(name)}) - length(replace({ident(name)}, {lit(REPLACEMENT_CHARACTER)}, ''))), 0)"
            for name in columns
        )
        + f" FROM {raw}"
    ).fetchall()[0]
    return {name.strip(): int(count) for name, count in zip(columns, counts, strict=False) if count}
