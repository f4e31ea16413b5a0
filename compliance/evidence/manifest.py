"""The run manifest: what the evidence was built from (inputs and their hashes, conversion, policy, versions)."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import duckdb

from compliance.core.sql import table_exists
from compliance.evidence.files import output_sha256s
from compliance.evidence.periods import ReportPeriod, period_record, period_row_counts
from compliance.evidence.policy_versions import VERSION_ITEMS
from compliance.ingest.contract import SOURCES
from compliance.policy import Policy, VersionWindow, folder_reference
from compliance.rules.common import input_columns_known
from compliance.rules.reconciliation import conversion_record


def package_versions() -> dict[str, str]:
    names = (
        "compliance-reporter",
        "dagster",
        "duckdb",
        "polars",
        "great-expectations",
        "plotly",
        "holidays",
        "pyarrow",
    )
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _policy_versions(con: duckdb.DuckDBPyConnection, windows: tuple[VersionWindow, ...]) -> list[dict]:
    """Each version that judged the run: its file, its part of the run and the items (rule × record) it judged."""
    judged = dict(
        con.execute(f"SELECT version, sum(items) FROM {VERSION_ITEMS} GROUP BY version").fetchall()
        if table_exists(con, VERSION_ITEMS)
        else []
    )
    return [
        {
            "version": window.policy.version,
            "effective_from": iso_utc(window.policy.effective_from) if window.policy.effective_from else None,
            "path": window.policy.reference,
            "sha256": window.policy.sha256,
            "judged_from": iso_utc(window.start) if window.start else None,
            "judged_until": iso_utc(window.end) if window.end else None,
            "items": int(judged.get(window.policy.version) or 0),
        }
        for window in windows
    ]


def build_manifest(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    as_of: datetime,
    policy: Policy,
    exports_dir: Path,
    out_dir: Path,
    outputs: list[Path],
    period: ReportPeriod | None = None,
    windows: tuple[VersionWindow, ...] = (),
    exports_given: str = "",
    exports_format: str = "",
) -> dict:
    """The manifest of a run. ``exports_dir`` is the folder the run read (for a vendor export, the temporary folder
    it was converted into); ``exports_given`` the exports as the user named them and ``exports_format`` the vendor
    format converted (empty: canonical files), which the manifest records instead (:func:`exports_provenance`)."""
    inputs = []
    # What this run did to each file (new / unchanged / superseded) is apart from `inputs`, which describe the
    # data behind the evidence and are the same for every run on the same data.
    changes: dict[str, list[dict]] = {"new": [], "unchanged": [], "superseded": []}
    columns = _carried_columns(con)
    in_period = period_row_counts(con, period) if period else {}
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
                "encoding": encoding,  # the text encoding it was read in (compliance.ingest.encodings)
                "rows_read": read,
                "rows_loaded": loaded,
                "rows_quarantined": quarantined,
                # the canonical columns the file carries (and, from an adapter, that it declares filled), and
                # why each other column of the contract is absent; rules needing an absent one are not assessed
                **(columns.get((source, file), {}) if status == "loaded" and change != "superseded" else {}),
                # a --period run: the rows of this file that belong to the period (see `row_accounting`)
                **({"in_period": in_period[(source, file)]} if (source, file) in in_period else {}),
            }
        )
    known = {entry["source"] for entry in inputs}
    inputs += [
        {
            "source": name,
            "file": None,
            "format": None,
            "status": "not ingested",
            "problem": None,
            "sha256": None,
            "encoding": None,
            "rows_read": 0,
            "rows_loaded": 0,
            "rows_quarantined": 0,
        }
        for name in SOURCES
        if name not in known
    ]
    conversion = conversion_record(exports_dir)
    if exports_format == "auto":  # detected by the conversion, which records the format it read
        exports_format = str((conversion or {}).get("format") or "auto")
    first_clock = con.execute("SELECT min(started_at) FROM ticket_sla WHERE state <> 'excluded'").fetchall()[0][0]
    return {
        "run_id": run_id,
        "as_of": iso_utc(as_of),
        "policy": {
            "path": policy.reference,
            "sha256": policy.sha256,
            "profile": policy.profile,
            # the newest version judging the run (it reads the exports and names the commitments); a policy folder
            # of several versions: each judged the items of its part (policy_versions)
            "version": policy.version,
            "effective_from": iso_utc(policy.effective_from) if policy.effective_from else None,
            "folder": folder_reference(policy.path.parent) if len(windows) > 1 else None,
        },
        "policy_versions": _policy_versions(con, windows),
        "source_timezone": policy.source_timezone,
        "readings": {
            "naive_timestamps": f"read in {policy.source_timezone}; wall times skipped by a DST change are quarantined",
            "adherence": "achieved / (achieved + breached); active (open, not yet due) items are shown apart",
            "reopened_tickets": "new cycle" if policy.ticket_settings.get("reopen_starts_new_cycle") else "one cycle",
        },
        "exports_dir": exports_provenance(exports_given, exports_dir),
        # the vendor format converted for the run (its folder is exports_dir); null: canonical export files
        "exports_format": exports_format or None,
        # The report period: the --period's [start, end), or (no --period: every item) from the first ticket clock
        # to the as-of instant; `period_filter` says which it is.
        "period": {
            "start": iso_utc(period.start) if period else (iso_utc(first_clock) if first_clock else None),
            "end": iso_utc(period.end) if period else iso_utc(as_of),
        },
        "period_filter": period_record(period),
        "row_accounting": row_accounting(period),
        "inputs": inputs,
        # the vendor export's format, version and per-file accounting when `convert` wrote the exports folder
        "conversion": conversion,
        "changes": changes,
        "versions": package_versions(),
        "outputs": [
            {"file": str(path.relative_to(out_dir)), "sha256": sha256}
            for path, sha256 in zip(sorted(outputs), output_sha256s(con, sorted(outputs)), strict=True)
        ],
    }


def exports_provenance(given: str, exports_dir: Path) -> str:
    """The exports folder as an auditor can find it again: as given (``exports_dir`` when nothing was), relative to
    the working directory when it is inside it, never a local absolute path of the working tree."""
    path = Path(given) if given else exports_dir
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:  # outside the working directory: as given
        return path.as_posix()


def row_accounting(period: ReportPeriod | None) -> str:
    """What the rows read / loaded / quarantined of ``inputs`` count: the whole files, also in a period run (the
    ingest reads every row of a file; the period chooses the items judged), and where the period's own are."""
    whole = (
        "rows_read, rows_loaded and rows_quarantined of each input count its whole file "
        "(rows read = rows loaded + rows quarantined, per file)"
    )
    if period is None:
        return whole
    return (
        f"{whole}, not only the period's rows; in_period gives the file's rows that belong to the period: "
        "rows_loaded (its items whose clock started in the period, or the rows of such items), rows_quarantined "
        "(quarantined rows whose clock start parsed into the period, or that name such an item) and "
        "rows_quarantined_not_attributable (quarantined rows whose clock start did not parse or whose item is "
        "unknown: not attributable to a period); an export without a clock start is judged whole"
    )


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


def iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
