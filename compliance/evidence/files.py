"""The evidence files every run writes: each evidence table as CSV (and the large ones as Parquet), and JSON.

Every file goes through :func:`compliance.core.files.replacing`, so an interrupted run never leaves a
half-written file where the last good one was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from compliance.core.files import file_sha256, replacing
from compliance.core.sql import ident, lit, stored_in_order
from compliance.core.stored_keys import code_fingerprint, key_of
from compliance.evidence.at_risk import AT_RISK_TABLE
from compliance.evidence.policy_versions import VERSION_ITEMS
from compliance.evidence.waivers import WAIVERS_ORDER
from compliance.rules.ticket_clocks import AT_RISK_ORDER, TICKET_SLA_ORDER

# Evidence files: table → (file stem, ORDER BY, also as Parquet).  The Parquet ones are the two that grow with
# the exports; above a spreadsheet's row limit they are written by month (see `write_evidence`).
EVIDENCE_FILES = {
    "verdicts": ("verdicts", "position", False),
    "ticket_sla": ("ticket_sla", TICKET_SLA_ORDER, True),
    "violations": ("violations", "domain, rule_id, due_at NULLS LAST, record_id", True),
    "metrics": ("metrics", "domain, rule_id, period <> 'all', period, segment <> 'all', segment", False),
    "quarantine": ("quarantine", "source_file, line, reason_code", False),
    AT_RISK_TABLE: ("at_risk", AT_RISK_ORDER, False),  # every domain with a clock (compliance.evidence.at_risk)
    "data_quality": ("data_quality", "source, expectation, column_name", False),
    "secret_findings": ("secret_findings", "record_id, column_name, start, kind", False),
    "vendor_reconciliation": ("vendor_reconciliation", "source, metric, record_id, source_line", False),
    "vendor_reconciliation_metrics": ("vendor_reconciliation_metrics", "source, metric", False),
    "vendor_disagreement_classes": ("vendor_disagreement_classes", "source, metric, class", False),
    "vendor_due_agreement": ("vendor_due_agreement", "source, metric", False),
    "waivers": ("waivers", WAIVERS_ORDER, False),
    # which policy version judged how many items of each rule (compliance.evidence.policy_versions)
    VERSION_ITEMS: ("policy_versions", "judged_from NULLS FIRST, domain, rule_id", False),
}

# Evidence timestamps: UTC with Z, fractional seconds only when there are any.
_WHOLE_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
_FRACTIONAL_SECONDS = "%Y-%m-%dT%H:%M:%S.%fZ"


def _csv_copy(con: duckdb.DuckDBPyConnection, table: str, order_by: str, path: Path) -> str:
    """COPY that writes a table as CSV: UTC timestamps with Z, text that cannot run as a formula."""
    columns = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall()
    # The UTC wall time as a plain TIMESTAMP straight from the epoch: the time-zone conversion that strftime or a
    # cast does on a TIMESTAMPTZ costs more than writing the value out.
    utc = {
        name: f'make_timestamp(epoch_us("{name}"))'
        for name, data_type in columns
        if data_type in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP")
    }
    # Whole seconds everywhere (the usual case): the CSV writer formats the timestamps itself, the fastest way.
    # +-infinity has no epoch, so a table holding it takes the other way, which writes it as DuckDB does.
    writer_formats = (
        bool(utc)
        and con.execute(
            "SELECT ("
            + " AND ".join(f'bool_and(coalesce(epoch_us("{name}") % 1000000 = 0, "{name}" IS NULL))' for name in utc)
            + f") IS NOT FALSE FROM {table}"
        ).fetchall()[0][0]
    )
    rendered = []
    for name, data_type in columns:
        ref = f'"{name}"'
        if writer_formats and name in utc:
            rendered.append(f"{utc[name]} AS {ref}")
        elif data_type.startswith("TIMESTAMP"):
            wall = utc.get(name, ref)
            rendered.append(
                f"CASE WHEN epoch_us({ref}) % 1000000 = 0 THEN strftime({wall}, '{_WHOLE_SECONDS}') "
                f"WHEN epoch_us({ref}) IS NOT NULL THEN strftime({wall}, '{_FRACTIONAL_SECONDS}') "
                f"ELSE strftime({ref}, '{_FRACTIONAL_SECONDS}') END AS {ref}"
            )
        elif data_type == "VARCHAR":
            # Spreadsheets run cells starting with = + - @ (and tab/CR) as formulas: prefix a quote. A test of the
            # first character, not a regex (this runs on every text cell), and not written as IN (...): DuckDB
            # plans an IN list of six values as a join, after which the COPY no longer keeps the row order.
            first = f"left({ref}, 1)"
            formula = " OR ".join(f"{first} = {char}" for char in ("'='", "'+'", "'-'", "'@'", "chr(9)", "chr(13)"))
            rendered.append(f"CASE WHEN {formula} THEN '''' || {ref} ELSE {ref} END AS {ref}")
        elif data_type == "DOUBLE":
            rendered.append(f"round({ref}, 4) AS {ref}")
        else:
            rendered.append(ref)
    select = f"SELECT {', '.join(rendered)} FROM {table}" + (f" ORDER BY {order_by}" if order_by else "")
    options = f", timestampformat '{_WHOLE_SECONDS}'" if writer_formats else ""
    return f"COPY ({select}) TO {lit(str(path))} (FORMAT csv, HEADER true{options})"


# The most rows a spreadsheet opens (Excel and LibreOffice: 1,048,576 lines), less the header line.
SPREADSHEET_MAX_ROWS = 1_048_575

# The instant whose UTC month files a large evidence table by: the clock start of a ticket clock; a violation
# carries no start, so its due instant (NULL: folder month=none).
MONTH_OF = {"ticket_sla": "started_at", "violations": "due_at"}
NO_MONTH = "none"


def evidence_month(table: str) -> str:
    """The SQL expression of the ``month=`` folder a row of ``table`` is filed in (``YYYY-MM`` of its
    :data:`MONTH_OF` instant in UTC, the session zone; :data:`NO_MONTH` without one), so that what names the
    monthly files (the report's appendix) counts the rows as the writer filed them."""
    return f"coalesce(strftime({ident(MONTH_OF[table])}, '%Y-%m'), {lit(NO_MONTH)})"


def write_evidence(
    con: duckdb.DuckDBPyConnection, out_dir: Path, spreadsheet_max_rows: int = SPREADSHEET_MAX_ROWS
) -> list[Path]:
    """Write every evidence table; the files written, in order.

    ``ticket_sla`` and ``violations`` are written as ``<stem>.csv`` and ``<stem>.parquet`` while they hold at
    most ``spreadsheet_max_rows`` rows, else as ``<stem>/month=YYYY-MM/<stem>.csv`` and ``part-0.parquet`` per
    UTC month of :data:`MONTH_OF` (so that every CSV opens in a spreadsheet). The layout not written this time
    is removed, so a folder never holds both a whole file and monthly parts of different runs.

    A file (a month's files) whose content key is the one recorded when it was written, and which is still the
    file written then, is not written again (:data:`EVIDENCE_FILE_STORE`): the bytes would be the same.
    """
    store = _FileStore(con)
    written = []
    for table, (stem, order_by, parquet) in EVIDENCE_FILES.items():
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] if parquet else 0
        if parquet and rows > spreadsheet_max_rows:
            _remove_whole_files(out_dir / "evidence", stem)
            written += _write_by_month(con, store, table, order_by, out_dir / "evidence" / stem, stem)
            continue
        if parquet:
            shutil.rmtree(out_dir / "evidence" / stem, ignore_errors=True)
        folder = out_dir / "evidence"
        targets = [folder / f"{stem}.csv", *([folder / f"{stem}.parquet"] if parquet else [])]
        key = _content_keys(con, table, order_by, "whole")[None]
        if not store.unchanged(targets, key):
            source, order = _ordered(con, table, order_by, parquet)
            _write_whole(con, source, order, folder, stem, parquet)
            store.record(targets, key)
            if source != table:
                con.execute(f"DROP TABLE {source}")
        written += targets
    return written


# The record of the evidence files written: per file, the content key it was written from and its size and
# modification time just after (a file changed or replaced since is written again).
EVIDENCE_FILE_STORE = "evidence_file_store"
_EVIDENCE_FILE_STORE_COLUMNS = "path VARCHAR, content_key VARCHAR, size BIGINT, modified_ns BIGINT"
# The code whose change can change an evidence file's bytes: a change to any of them writes every file again.
_WRITER_SOURCES = ("evidence/files.py", "core/files.py", "core/sql.py")


class _FileStore:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        con.execute(f"CREATE TABLE IF NOT EXISTS {EVIDENCE_FILE_STORE} ({_EVIDENCE_FILE_STORE_COLUMNS})")
        self.recorded = {
            path: (key, size, modified)
            for path, key, size, modified in con.execute(f"SELECT * FROM {EVIDENCE_FILE_STORE}").fetchall()
        }

    def unchanged(self, targets: list[Path], key: str) -> bool:
        for target in targets:
            recorded = self.recorded.get(str(target.resolve()))
            if recorded is None or recorded[0] != key or not target.is_file():
                return False
            stat = target.stat()
            if (stat.st_size, stat.st_mtime_ns) != recorded[1:]:
                return False
        return True

    def record(self, targets: list[Path], key: str) -> None:
        rows = []
        for target in targets:
            stat = target.stat()
            rows.append((str(target.resolve()), key, stat.st_size, stat.st_mtime_ns))
            self.recorded[rows[-1][0]] = rows[-1][1:]
        self.con.execute(f"DELETE FROM {EVIDENCE_FILE_STORE} WHERE list_contains(?, path)", [[row[0] for row in rows]])
        self.con.executemany(f"INSERT INTO {EVIDENCE_FILE_STORE} VALUES (?, ?, ?, ?)", rows)


# The sha256 of each published file as last hashed, with what tells that version of the file from any other: its
# size, modification and status-change times and inode (writing a file changes its status-change time, which no
# one can set back; replacing it, its inode). The manifest names the hash of every output, and the report shows
# them before manifest.json is written: an unchanged file (an evidence file the store above did not write again)
# is read once, not twice a run and again every run.
OUTPUT_HASH_STORE = "output_hash_store"
_OUTPUT_HASH_STORE_COLUMNS = (
    "path VARCHAR, size BIGINT, modified_ns BIGINT, changed_ns BIGINT, inode BIGINT, sha256 VARCHAR"
)


def output_sha256s(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> list[str]:
    """The sha256 of each file of ``paths`` (in that order): the recorded one while the file is the version it was
    recorded for (:data:`OUTPUT_HASH_STORE`), else read from the file and recorded. Records of files that are gone
    are dropped."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {OUTPUT_HASH_STORE} ({_OUTPUT_HASH_STORE_COLUMNS})")
    recorded = {
        path: (tuple(identity), sha256)
        for path, *identity, sha256 in con.execute(
            f"SELECT path, size, modified_ns, changed_ns, inode, sha256 FROM {OUTPUT_HASH_STORE}"
        ).fetchall()
    }
    hashes, hashed = [], []
    for path in paths:
        name, stat = str(path.resolve()), path.stat()
        identity = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        if name in recorded and recorded[name][0] == identity:
            hashes.append(recorded[name][1])
            continue
        hashes.append(file_sha256(path))
        hashed.append((name, *identity, hashes[-1]))
    gone = [name for name in recorded if not Path(name).is_file()]
    if hashed or gone:
        con.execute(
            f"DELETE FROM {OUTPUT_HASH_STORE} WHERE list_contains(?, path)", [[row[0] for row in hashed] + gone]
        )
    if hashed:
        con.executemany(f"INSERT INTO {OUTPUT_HASH_STORE} VALUES (?, ?, ?, ?, ?, ?)", hashed)
    return hashes


def _content_keys(con: duckdb.DuckDBPyConnection, table: str, order_by: str, layout: str) -> dict[str | None, str]:
    """sha256 of what the bytes of a file of ``table`` are a function of, per month for ``layout`` ``month``
    (:func:`evidence_month`), else under None: the table's columns, its rows with their order (a 64-bit DuckDB
    hash of each row with its position in the table, or in its month, by insertion order, combined by xor and
    by sum), the ORDER BY, the layout, the writer's code and DuckDB's version."""
    group = evidence_month(table) if layout == "month" else "NULL"
    # A month file's rows keep their order within the month: its position there, not in the table, so that a
    # row added to one month leaves the keys of the others alone.
    position = f"row_number() OVER (PARTITION BY {group} ORDER BY rowid)" if layout == "month" else "rowid"
    hashes = con.execute(
        f"""WITH rows_with_position AS (
                SELECT {group} AS file_group, hash(t, {position}) AS h FROM {table} t)
            SELECT file_group, count(*), bit_xor(h), sum(h::HUGEINT) FROM rows_with_position GROUP BY ALL"""
    ).fetchall()
    common = {
        "table": table,
        "order_by": order_by,
        "layout": layout,
        "columns": con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall(),
        **code_fingerprint(_WRITER_SOURCES, ("duckdb",)),
    }
    if not hashes and layout != "month":
        hashes = [(None, 0, None, None)]
    return {
        group_value: key_of({**common, "rows": [rows, str(xor_hash), str(sum_hash)]})
        for group_value, rows, xor_hash, sum_hash in hashes
    }


def _ordered(con: duckdb.DuckDBPyConnection, table: str, order_by: str, parquet: bool) -> tuple[str, str]:
    """The table to write from and the ORDER BY still to apply: a table stored in order as it is; one written
    twice (CSV and Parquet) sorted once into a temporary table (a scan keeps insertion order)."""
    if stored_in_order(con, table, order_by):
        return table, ""
    if parquet:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _sorted_{table} AS SELECT * FROM {table} ORDER BY {order_by}")
        return f"_sorted_{table}", ""
    return table, order_by


def _write_whole(
    con: duckdb.DuckDBPyConnection, source: str, order: str, folder: Path, stem: str, parquet: bool
) -> list[Path]:
    target = folder / f"{stem}.csv"
    with replacing(target) as temporary:
        con.execute(_csv_copy(con, source, order, temporary))
    written = [target]
    if parquet:
        target = folder / f"{stem}.parquet"
        with replacing(target) as temporary:
            con.execute(
                f"COPY (SELECT * FROM {source}{_order_clause(order)}) TO {lit(str(temporary))} (FORMAT parquet)"
            )
        written.append(target)
    return written


def _write_by_month(
    con: duckdb.DuckDBPyConnection, store: _FileStore, table: str, order_by: str, folder: Path, stem: str
) -> list[Path]:
    """One folder per month of ``table``'s :data:`MONTH_OF` instant, each with the month's rows as CSV and
    Parquet, in table order; the folders of months whose files are unchanged are left as they are, those of
    months no longer in the table removed."""
    keys = _content_keys(con, table, order_by, "month")
    months = sorted(keys)
    targets = {
        month: [folder / f"month={month}" / f"{stem}.csv", folder / f"month={month}" / "part-0.parquet"]
        for month in months
    }
    for child in folder.glob("month=*") if folder.is_dir() else []:
        if child.name.removeprefix("month=") not in keys:
            shutil.rmtree(child, ignore_errors=True)
    changed = [month for month in months if not store.unchanged(targets[month], keys[month])]
    if changed:
        source, order = _ordered(con, table, order_by, parquet=False)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _evidence_months AS SELECT {evidence_month(table)} AS month, * "
            f"FROM {source} WHERE list_contains(?, {evidence_month(table)}){_order_clause(order)}",
            [changed],
        )
        for value in changed:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _evidence_month AS SELECT * EXCLUDE (month) FROM _evidence_months "
                "WHERE month = ?",
                [value],
            )
            _write_whole(con, "_evidence_month", "", folder / f"month={value}", stem, parquet=False)
            with replacing(targets[value][1]) as temporary:
                con.execute(f"COPY (SELECT * FROM _evidence_month) TO {lit(str(temporary))} (FORMAT parquet)")
            store.record(targets[value], keys[value])
        con.execute("DROP TABLE IF EXISTS _evidence_month")
        con.execute("DROP TABLE _evidence_months")
    return [path for month in months for path in targets[month]]


def _remove_whole_files(folder: Path, stem: str) -> None:
    for suffix in (".csv", ".parquet"):
        (folder / f"{stem}{suffix}").unlink(missing_ok=True)


def _order_clause(order: str) -> str:
    return f" ORDER BY {order}" if order else ""


def write_json(path: Path, document: dict) -> None:
    with replacing(path) as temporary:
        temporary.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
