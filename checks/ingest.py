"""Data-quality checks of each staged table, as Dagster asset checks: one check step per ingest asset, run right
after it and before anything downstream reads the table.

Two checks per source, both declared ``blocking=True`` so that every rule step waits for them (a blocking check
orders the assets downstream of its asset after it):

- ``rows_accounted_for``: rows read = loaded + quarantined, per file (read back from ``ingest_log``). A failure
  has severity ERROR: Dagster then runs nothing downstream, since rows lost or counted twice leave no verdict to
  trust.
- ``expectations``: the source's Great Expectations 1.x suite (``compliance.expectations``), its outcomes recorded
  in ``data_quality``. A failed *blocking* expectation must not stop the run: its domain's verdicts say "not
  assessed" with the reason (``compliance.evidence.verdicts.blocked_domains``) and the other domains are still
  judged. So this check fails with severity WARN, which a blocking check lets through; the metadata counts the
  blocking expectations that failed.

The checks open the warehouse in their own step, after the ingest step committed its load: one writer at a time,
like every step (``assets.resources.Warehouse``). They name their resources by key (``settings``,
``warehouse``), since checks/ sits below assets/, where the resource classes live.
"""

from datetime import datetime

import dagster as dg
import duckdb

from compliance.evidence.quality_records import record_expectations
from compliance.ingest.contract import SOURCES
from compliance.ingest.staging import accounting_problems, logged_result
from compliance.policy import Policy

ACCOUNTING = "rows_accounted_for"
EXPECTATIONS = "expectations"


def check_specs(asset_name: str) -> list[dg.AssetCheckSpec]:
    """The checks of one ingest asset (both blocking: see the module docstring for their severities)."""
    return [
        dg.AssetCheckSpec(
            ACCOUNTING,
            asset=asset_name,
            blocking=True,
            description="rows read = rows loaded + rows quarantined, per file",
        ),
        dg.AssetCheckSpec(
            EXPECTATIONS,
            asset=asset_name,
            blocking=True,
            description="Great Expectations suite of the staged table; a failed blocking expectation makes the "
            "domain's verdicts 'not assessed'",
        ),
    ]


def accounting_result(con: duckdb.DuckDBPyConnection, asset_name: str, source: str) -> dg.AssetCheckResult:
    """Per input file of this run's ingest: rows read = loaded + quarantined, and the quarantine table holds its
    quarantined rows."""
    result = logged_result(con, source)
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
        # WARN even for a blocking expectation: the domain is "not assessed", the run goes on (module docstring)
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(outcome.message for outcome in failed[:5]) or "all expectations met",
        metadata={
            "expectations": len(outcomes),
            "failed": len(failed),
            "blocking_failed": len(blocking),
        },
    )


def _staged_checks(source: str, pool: str) -> dg.AssetChecksDefinition:
    asset_name = f"staged_{source}"

    @dg.multi_asset_check(
        name=f"{asset_name}_checks",
        specs=check_specs(asset_name),
        required_resource_keys={"settings", "warehouse"},
        pool=pool,
        description=f"Accounting and Great Expectations suite of {asset_name}.",
    )
    def _checks(context: dg.AssetCheckExecutionContext):
        settings = context.resources.settings
        with context.resources.warehouse.connect() as con:  # one transaction: the checks and their records
            accounting = accounting_result(con, asset_name, source)
            expectations = expectations_result(
                con, asset_name, source, settings.load_policy(), settings.as_of_instant(context)
            )
        yield accounting
        yield expectations

    return _checks


def staged_checks(pool: str) -> list[dg.AssetChecksDefinition]:
    """The check step of every staged source, in the concurrency ``pool`` of the steps that open the warehouse."""
    return [_staged_checks(source, pool) for source in SOURCES]
