"""The evidence files every run writes: each evidence table as CSV (and the large ones as Parquet), and JSON.

Every file goes through :func:`compliance.core.files.replacing`, so an interrupted run never leaves a
half-written file where the last good one was.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from compliance.core.files import replacing
from compliance.core.sql import lit, stored_in_order
from compliance.evidence.at_risk import AT_RISK_TABLE
from compliance.evidence.waivers import WAIVERS_ORDER
from compliance.rules.ticket_clocks import AT_RISK_ORDER, TICKET_SLA_ORDER

# Evidence files: table → (file stem, ORDER BY, also as Parquet).
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
    "waivers": ("waivers", WAIVERS_ORDER, False),
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


def write_evidence(con: duckdb.DuckDBPyConnection, out_dir: Path) -> list[Path]:
    written = []
    for table, (stem, order_by, parquet) in EVIDENCE_FILES.items():
        source, order = table, order_by
        if stored_in_order(con, table, order_by):
            order = ""
        elif parquet:
            # Sorted once for both files; a table scan keeps insertion order (preserve_insertion_order is on).
            source, order = f"_sorted_{table}", ""
            con.execute(f"CREATE OR REPLACE TEMP TABLE {source} AS SELECT * FROM {table} ORDER BY {order_by}")
        target = out_dir / "evidence" / f"{stem}.csv"
        with replacing(target) as temporary:
            con.execute(_csv_copy(con, source, order, temporary))
        written.append(target)
        if parquet:
            target = out_dir / "evidence" / f"{stem}.parquet"
            with replacing(target) as temporary:
                con.execute(f"COPY (SELECT * FROM {source}) TO {lit(str(temporary))} (FORMAT parquet)")
            written.append(target)
        if source != table:
            con.execute(f"DROP TABLE {source}")
    return written


def write_json(path: Path, document: dict) -> None:
    with replacing(path) as temporary:
        temporary.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
