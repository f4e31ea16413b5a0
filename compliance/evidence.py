"""Evidence: verdicts per commitment, and the files every run writes (CSV/Parquet evidence, manifest).

Files are written next to their final name and moved into place with ``os.replace``, so an interrupted run
never leaves a half-written file where the last good one was.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Iterator

import duckdb

from compliance.contract import SOURCES
from compliance.ingest import file_sha256
from compliance.policy import Policy
from compliance.rules.common import (
    CAUSE_WORDS,
    METRIC_COLUMNS,
    RULE_INPUTS,
    VIOLATION_COLUMNS,
    absent_rule_columns,
    input_columns_known,
    lit,
    rule_columns_absent_everywhere,
    stored_in_order,
    table_exists,
)
from compliance.sla import AT_RISK_ORDER, TICKET_SLA_ORDER, events_stop_missing

DOMAINS_WITH_RESULTS = ("tickets", "privacy", "security", "status", "retention", "data_quality")

# The sources a rule kind needs; without them its verdict is "no data" (its columns: rules.common.RULE_INPUTS).
RULE_SOURCES: dict[str, tuple[str, ...]] = {kind: inputs.sources for kind, inputs in RULE_INPUTS.items()}

# Evidence files: table → (file stem, ORDER BY, also as Parquet).
EVIDENCE_FILES = {
    "verdicts": ("verdicts", "position", False),
    "ticket_sla": ("ticket_sla", TICKET_SLA_ORDER, True),
    "violations": ("violations", "domain, rule_id, due_at NULLS LAST, record_id", True),
    "metrics": ("metrics", "domain, rule_id, period <> 'all', period, segment <> 'all', segment", False),
    "quarantine": ("quarantine", "source_file, line, reason_code", False),
    "at_risk": ("at_risk", AT_RISK_ORDER, False),
    "data_quality": ("data_quality", "source, expectation, column_name", False),
    "secret_findings": ("secret_findings", "record_id, column_name, start, kind", False),
    "vendor_reconciliation": ("vendor_reconciliation", "source, metric, record_id, source_line", False),
    "vendor_reconciliation_metrics": ("vendor_reconciliation_metrics", "source, metric", False),
}
VERDICT_COLUMNS = (
    "position INTEGER, rule_id VARCHAR, domain VARCHAR, title VARCHAR, source_doc VARCHAR, source_quote VARCHAR, "
    "calendar VARCHAR, target VARCHAR, verdict VARCHAR, reason VARCHAR, achieved BIGINT, breached BIGINT, "
    "active BIGINT, excluded BIGINT, warnings BIGINT, denominator BIGINT, adherence_pct DOUBLE, causes VARCHAR"
)
# cause code -> its words, as SQL over a violation's ``cause``
_CAUSE_WORDS_SQL = ("CASE cause " + " ".join(f"WHEN {lit(code)} THEN {lit(words)}" for code, words in CAUSE_WORDS.items())
                    + " ELSE coalesce(cause, 'cause not recorded') END")


def combine_results(con: duckdb.DuckDBPyConnection) -> None:
    """Union the per-domain violations and metrics tables into ``violations`` and ``metrics``."""
    for kind, columns in (("violations", VIOLATION_COLUMNS), ("metrics", METRIC_COLUMNS)):
        parts = [f"SELECT * FROM {kind}_{domain}" for domain in DOMAINS_WITH_RESULTS if table_exists(con, f"{kind}_{domain}")]
        con.execute(f"CREATE OR REPLACE TABLE {kind} ({columns})")
        if parts:
            con.execute(f"INSERT INTO {kind} {' UNION ALL '.join(parts)}")


def blocked_domains(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Domains whose data failed a blocking expectation, with the reason (their verdicts are "not assessed")."""
    if not table_exists(con, "data_quality"):
        return {}
    blocked: dict[str, list[str]] = {}
    for source, message in con.execute(
        "SELECT source, message FROM data_quality WHERE blocking AND NOT success ORDER BY source, message"
    ).fetchall():
        blocked.setdefault(SOURCES[source].domain, []).append(message)
    return {domain: "blocking data-quality check failed: " + "; ".join(messages) for domain, messages in blocked.items()}


def build_verdicts(con: duckdb.DuckDBPyConnection, policy: Policy, blocked: dict[str, str] | None = None) -> None:
    """One row per policy rule: met / breached / no data / not assessed, with the figures behind it.

    ``blocked`` maps a domain to the reason a blocking data-quality check failed: its rules are "not assessed".
    """
    blocked = blocked or {}
    # One row per input file: a source counts as present when any of its files loaded (loaded rows come last).
    inputs = {
        row[0]: row[1:]
        for row in con.execute(
            "SELECT source, status, file, problem FROM ingest_log ORDER BY source, status = 'loaded', file"
        ).fetchall()
    }
    con.execute(f"CREATE OR REPLACE TABLE verdicts ({VERDICT_COLUMNS})")
    for position, rule in enumerate(policy.rules):
        reason = _missing_input_reason(rule.kind, inputs) or blocked.get(rule.domain)
        fallback = "no data" if rule.domain not in blocked else "not assessed"
        if rule.kind not in RULE_SOURCES:
            fallback, reason = "not assessed", f"rule kind {rule.kind} is not evaluated by this version"
        elif reason is None:
            reason = _absent_column_reason(con, rule.kind, policy)
            fallback = "not assessed"
        con.execute(
            f"""INSERT INTO verdicts
                WITH m AS (SELECT * FROM metrics WHERE rule_id = $rule_id AND period = 'all' AND segment = 'all'),
                v AS (SELECT count(*) FILTER (WHERE severity = 'warning') AS warnings,
                             count(*) FILTER (WHERE severity = 'breach') AS breaches,
                             first(explanation ORDER BY explanation) FILTER (WHERE severity = 'coverage') AS coverage
                      FROM violations WHERE rule_id = $rule_id),
                -- the breaches by cause, most frequent first
                c AS (SELECT string_agg(coalesce(cause, 'unknown') || '=' || n, ';' ORDER BY n DESC, cause) AS codes,
                             string_agg(n || ' ' || words, ', ' ORDER BY n DESC, cause) AS words
                      FROM (SELECT cause, {_CAUSE_WORDS_SQL} AS words, count(*) AS n FROM violations
                            WHERE rule_id = $rule_id AND severity = 'breach' GROUP BY ALL)),
                j AS (SELECT *, CASE WHEN $reason IS NOT NULL THEN $fallback
                            WHEN v.coverage IS NOT NULL THEN 'not assessed'
                            WHEN coalesce(m.denominator, 0) = 0 AND v.breaches > 0 THEN 'breached'
                            WHEN m.rule_id IS NULL THEN 'not assessed'
                            WHEN coalesce(m.denominator, 0) = 0 THEN 'no data'
                            WHEN m.breached > 0 AND m.adherence_pct < $met_min THEN 'breached'
                            ELSE 'met' END AS verdict
                      FROM v LEFT JOIN m ON true, c)
                SELECT $position, $rule_id, $domain, $title, $source_doc, $source_quote, $calendar, $target, verdict,
                       concat_ws('; ', CASE WHEN $reason IS NOT NULL THEN $reason
                            WHEN coverage IS NOT NULL THEN coverage
                            WHEN rule_id IS NULL THEN 'the rule produced no figures'
                            -- a rule judged on figures alone (PRIV-TYPES) lists no violations to give causes
                            WHEN verdict = 'breached' AND words IS NULL THEN breached || ' breached'
                            WHEN verdict = 'breached' THEN breaches || ' breached: ' || words
                            WHEN coalesce(denominator, 0) = 0 AND breaches = 0
                                THEN 'no item reached its deadline in the data (' || coalesce(active, 0) || ' still open, '
                                     || coalesce(excluded, 0) || ' excluded)'
                       END, CASE WHEN $reason IS NULL THEN $partial END),
                       achieved, breached, active, excluded, warnings, denominator, adherence_pct,
                       CASE WHEN $reason IS NULL THEN codes END
                FROM j""",
            {
                "position": position,
                "rule_id": rule.id,
                "domain": rule.domain,
                "title": rule.title,
                "source_doc": rule.source_doc,
                "source_quote": rule.source_quote,
                "calendar": rule.calendar,
                "target": rule.target.describe(),
                "reason": reason,
                "fallback": fallback,
                "met_min": rule.setting("met_min_adherence_pct", policy.met_min_adherence_pct),
                "partial": _partly_absent_note(con, rule.kind),
            },
        )


def _absent_column_reason(con: duckdb.DuckDBPyConnection, kind: str, policy: Policy) -> str | None:
    """Why a rule kind cannot be judged on any record: a column it needs is in none of the loaded files (nor do
    the ticket events that can stand in for it carry the stopping events); None when it can be judged."""
    absent = rule_columns_absent_everywhere(con, kind)
    if absent is None or not RULE_INPUTS[kind].events_stand_in or not table_exists(con, "staged_ticket_events"):
        return absent
    events_reason = events_stop_missing(con, kind, policy)
    return f"{absent}; {events_reason}" if events_reason else None


def _partly_absent_note(con: duckdb.DuckDBPyConnection, kind: str) -> str | None:
    """The files whose records are excluded because they lack a column the rule needs (others carry it)."""
    absent = absent_rule_columns(con, kind)
    return "excluded where " + "; ".join(reason for *_, reason in absent) if absent else None


def _missing_input_reason(kind: str, inputs: dict[str, tuple]) -> str | None:
    for source in RULE_SOURCES.get(kind, ()):
        status, file, problem = inputs.get(source, ("missing", None, "no export file"))
        if status == "missing":
            return f"no {source} export (looked for {source}.csv, .parquet, .jsonl)"
        if status == "unusable":
            return f"{file} is unusable: {problem}"
    return None


# Evidence timestamps: UTC with Z, fractional seconds only when there are any.
_WHOLE_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
_FRACTIONAL_SECONDS = "%Y-%m-%dT%H:%M:%S.%fZ"


def _csv_copy(con: duckdb.DuckDBPyConnection, table: str, order_by: str, path: Path) -> str:
    """COPY that writes a table as CSV: UTC timestamps with Z, text that cannot run as a formula."""
    columns = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall()
    # The UTC wall time as a plain TIMESTAMP straight from the epoch: the time-zone conversion that strftime or a
    # cast does on a TIMESTAMPTZ costs more than writing the value out.
    utc = {name: f'make_timestamp(epoch_us("{name}"))' for name, data_type in columns
           if data_type in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP")}
    # Whole seconds everywhere (the usual case): the CSV writer formats the timestamps itself, the fastest way.
    # +-infinity has no epoch, so a table holding it takes the other way, which writes it as DuckDB does.
    writer_formats = bool(utc) and con.execute(
        "SELECT (" + " AND ".join(f'bool_and(coalesce(epoch_us("{name}") % 1000000 = 0, "{name}" IS NULL))'
                                  for name in utc) + f") IS NOT FALSE FROM {table}"
    ).fetchall()[0][0]
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


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it atomically replaces ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    os.unlink(temporary)  # DuckDB's COPY wants to create the file itself
    try:
        yield Path(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


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


def package_versions() -> dict[str, str]:
    names = ("compliance-reporter", "dagster", "duckdb", "polars", "great-expectations", "plotly", "holidays", "pyarrow")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_manifest(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    as_of: datetime,
    policy: Policy,
    exports_dir: Path,
    out_dir: Path,
    outputs: list[Path],
) -> dict:
    inputs = []
    # What this run did to each file (new / unchanged / superseded) is apart from `inputs`, which describe the
    # data behind the evidence and are the same for every run on the same data.
    changes: dict[str, list[dict]] = {"new": [], "unchanged": [], "superseded": []}
    columns = _carried_columns(con)
    for source, file, file_format, status, problem, sha256, read, loaded, quarantined, change, encoding in con.execute(
        "SELECT source, file, file_format, status, problem, sha256, rows_read, rows_loaded, rows_quarantined, change, "
        "encoding FROM ingest_log ORDER BY source, file, status, sha256"
    ).fetchall():
        if change:
            changes[change].append({"file": file, "sha256": sha256})
        inputs.append(
            {
                "source": source,
                "file": file,
                "format": file_format,
                "status": status,
                "problem": problem,
                "sha256": sha256,
                "encoding": encoding,  # the text encoding it was read in (compliance.encodings)
                "rows_read": read,
                "rows_loaded": loaded,
                "rows_quarantined": quarantined,
                # the canonical columns the file carries (and, from an adapter, that it declares filled), and
                # why each other column of the contract is absent; rules needing an absent one are not assessed
                **(columns.get((source, file), {}) if status == "loaded" and change != "superseded" else {}),
            }
        )
    known = {entry["source"] for entry in inputs}
    inputs += [
        {"source": name, "file": None, "format": None, "status": "not ingested", "problem": None, "sha256": None,
         "encoding": None, "rows_read": 0, "rows_loaded": 0, "rows_quarantined": 0}
        for name in SOURCES
        if name not in known
    ]
    period = con.execute(
        "SELECT min(started_at) FROM ticket_sla WHERE state <> 'excluded'"
    ).fetchall()[0]
    return {
        "run_id": run_id,
        "as_of": iso_utc(as_of),
        "policy": {"path": str(policy.path), "sha256": policy.sha256, "profile": policy.profile},
        "source_timezone": policy.source_timezone,
        "readings": {
            "naive_timestamps": f"read in {policy.source_timezone}; wall times skipped by a DST change are quarantined",
            "adherence": "achieved / (achieved + breached); active (open, not yet due) items are shown apart",
            "reopened_tickets": "new cycle" if policy.ticket_settings.get("reopen_starts_new_cycle") else "one cycle",
        },
        "exports_dir": str(exports_dir),
        # The report period: from the first ticket clock to the as-of instant.
        "period": {"start": iso_utc(period[0]) if period[0] else None, "end": iso_utc(as_of)},
        "inputs": inputs,
        # the vendor export's format, version and per-file accounting when `convert` wrote the exports folder
        "conversion": _conversion_record(exports_dir),
        "changes": changes,
        "versions": package_versions(),
        "outputs": [
            {"file": str(path.relative_to(out_dir)), "sha256": file_sha256(path)} for path in sorted(outputs)
        ],
    }


def _carried_columns(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict]:
    """(source, file) -> {"columns": [carried], "absent_columns": {column: why}} from the ingest's record."""
    if not input_columns_known(con):
        return {}
    record: dict[tuple[str, str], dict] = {}
    for source, file, column, present, absence in con.execute(
        "SELECT source, file, column_name, present, absence FROM input_columns ORDER BY source, file, rowid"
    ).fetchall():
        entry = record.setdefault((source, file), {"columns": [], "absent_columns": {}})
        if present:
            entry["columns"].append(column)
        else:
            entry["absent_columns"][column] = absence
    return record


def _conversion_record(exports_dir: Path) -> dict | None:
    # imported here: the reconciliation module imports the adapters, which import this module
    from compliance.rules.reconciliation import conversion_record

    return conversion_record(exports_dir)


def write_json(path: Path, document: dict) -> None:
    with replacing(path) as temporary:
        temporary.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
