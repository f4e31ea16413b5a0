"""Data-quality checks run right after each export is loaded, as Dagster asset checks of its staged table.

Two checks per source: rows read = loaded + quarantined, and its Great Expectations 1.x suite (run on pandas
frames taken from DuckDB, chunk by chunk). They run in the ingest step itself (``check_specs``) so that every
result is recorded before any rule reads the table, in the same transaction as the load. The accounting check
is a blocking asset check: when it fails, the step fails and nothing downstream runs. A failed *blocking*
expectation makes that domain's verdicts "not assessed" instead of stopping the run.
"""

from datetime import datetime

import dagster as dg
import duckdb

from compliance.core.sql import table_exists
from compliance.expectations import DATA_QUALITY_COLUMNS, decoding_outcomes, validate_table, write_data_quality
from compliance.ingest.staging import IngestResult, accounting_problems
from compliance.policy import Policy

ACCOUNTING = "rows_accounted_for"
EXPECTATIONS = "expectations"


def check_specs(asset_name: str) -> list[dg.AssetCheckSpec]:
    """The checks of one ingest asset. A failed accounting stops the run before any rule reads the table (rows lost
    or counted twice leave no verdict to trust); failed expectations do not block, they turn the domain's
    verdicts into "not assessed" with the reason (``compliance.evidence.verdicts.blocked_domains``)."""
    return [
        dg.AssetCheckSpec(
            ACCOUNTING,
            asset=asset_name,
            blocking=True,
            description="rows read = rows loaded + rows quarantined, per file",
        ),
        dg.AssetCheckSpec(EXPECTATIONS, asset=asset_name, description="Great Expectations suite of the staged table"),
    ]


def accounting_result(con: duckdb.DuckDBPyConnection, asset_name: str, result: IngestResult) -> dg.AssetCheckResult:
    """Per input file: rows read = loaded + quarantined, and the quarantine table holds its quarantined rows."""
    problems = accounting_problems(con, result)
    return dg.AssetCheckResult(
        asset_key=asset_name,
        check_name=ACCOUNTING,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems[:5]) or "every row of every file accounted for",
        metadata={
            "rows_read": result.rows_read,
            "rows_loaded": result.rows_loaded,
            "rows_quarantined": result.rows_quarantined,
        },
    )


def expectations_result(
    con: duckdb.DuckDBPyConnection, asset_name: str, source: str, policy: Policy, as_of: datetime
) -> dg.AssetCheckResult:
    """Validate the staged table, record outcomes in ``data_quality`` and the row count for the next run."""
    con.execute(f"CREATE TABLE IF NOT EXISTS data_quality ({DATA_QUALITY_COLUMNS})")
    con.execute("DELETE FROM data_quality WHERE source = ?", [source])
    con.execute("CREATE TABLE IF NOT EXISTS row_count_history (source VARCHAR, as_of TIMESTAMPTZ, rows_loaded BIGINT)")
    previous = con.execute(
        "SELECT rows_loaded FROM row_count_history WHERE source = ? AND as_of < ? ORDER BY as_of DESC LIMIT 1",
        [source, as_of],
    ).fetchall()
    outcomes = validate_table(con, asset_name, source, policy, as_of, previous[0][0] if previous else None)
    outcomes += decoding_outcomes(con, source)
    write_data_quality(con, outcomes)
    if table_exists(con, asset_name):
        con.execute("DELETE FROM row_count_history WHERE source = ? AND as_of = ?", [source, as_of])
        con.execute(f"INSERT INTO row_count_history SELECT ?, ?, count(*) FROM {asset_name}", [source, as_of])
    failed = [outcome for outcome in outcomes if not outcome.success]
    blocking = [outcome for outcome in failed if outcome.blocking]
    return dg.AssetCheckResult(
        asset_key=asset_name,
        check_name=EXPECTATIONS,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        description="; ".join(outcome.message for outcome in failed[:5]) or "all expectations met",
        metadata={
            "expectations": len(outcomes),
            "failed": len(failed),
            "blocking_failed": len(blocking),
        },
    )
