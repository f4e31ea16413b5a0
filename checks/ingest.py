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

from compliance.evidence.quality_records import record_expectations
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
    outcomes = record_expectations(con, asset_name, source, policy, as_of)
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
