"""Partitions: the loaded data of each month as Parquet files, and the report of each month and quarter in a folder
of its own (OUT/periods/2026-09/, OUT/periods/2026-Q3/): backfill a year, or re-run one month."""

import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb

from assets.ingest import ingest_assets
from assets.resources import ReporterSettings, SettingError, Warehouse, parse_as_of
from compliance.core.files import publish_atomically
from compliance.core.sql import lit, table_exists
from compliance.evidence.files import write_evidence, write_json
from compliance.evidence.judging import judge
from compliance.evidence.manifest import build_manifest
from compliance.evidence.partitions import write_month
from compliance.evidence.periods import ReportPeriod, parse_period
from compliance.evidence.policy_versions import judge_by_version
from compliance.evidence.quality_records import write_expectation_docs
from compliance.evidence.summaries import dashboard_tables, report_tables, verdict_counts
from compliance.policy import VersionWindow, load_policy_versions, version_windows
from compliance.rules import reconciliation
from compliance.rules.registry import RULE_STEPS, STEP_READS, evaluate_step
from compliance.rules.ticket_clocks import TICKET_DOMAINS, evaluate_ticket_clocks
from reports.compliance_report import ReportData, render_compliance_report
from reports.reconciliation_section import ReconciliationData
from reports.sla_dashboard import DashboardData, render_sla_dashboard


def _first_month() -> str:
    """CR_PARTITIONS_START (default 2025-01-01) as a date; another value is refused with one line naming it."""
    text = os.environ.get("CR_PARTITIONS_START", "").strip() or "2025-01-01"
    try:
        date.fromisoformat(text)
    except ValueError:
        raise SettingError(f"CR_PARTITIONS_START={text!r}: not a date (e.g. 2025-01-01)") from None
    return text


# The first month offered; the last is the current month. Set CR_PARTITIONS_START for older data. Read at import
# (not a resource's EnvVar): Dagster needs the partitions when it loads the definitions, before any run.
MONTHS = dg.MonthlyPartitionsDefinition(start_date=_first_month(), end_offset=1)


@dg.asset(
    group_name="partitions",
    kinds={"parquet"},
    partitions_def=MONTHS,
    deps=ingest_assets,
)
def monthly_records(
    context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse
) -> dg.MaterializeResult:
    """The staged records of one month, per source: OUT/partitions/<source>/month=YYYY-MM/part-0.parquet."""
    started = time.monotonic()
    month = context.partition_key[:7]
    with warehouse.connect(read_only=True) as con:  # readers of the warehouse may run side by side
        written = write_month(con, Path(settings.out_dir) / "partitions", month)
    return dg.MaterializeResult(
        metadata={
            **{f"rows_{name}": rows for name, rows in written.items()},
            "duration_seconds": round(time.monotonic() - started, 3),
        }
    )


# Quarters, for quarterly reports (partition keys are the quarter's first day, like the months').
QUARTERS = dg.TimeWindowPartitionsDefinition(
    start=_first_month(),
    cron_schedule="0 0 1 1,4,7,10 *",
    fmt="%Y-%m-%d",
    end_offset=1,
)


def month_label(partition_key: str) -> str:
    """``2026-09-01`` -> ``2026-09`` (compliance.evidence.periods)."""
    return partition_key[:7]


def quarter_label(partition_key: str) -> str:
    """``2026-07-01`` -> ``2026-Q3``."""
    return f"{partition_key[:4]}-Q{(int(partition_key[5:7]) - 1) // 3 + 1}"


def write_period_report(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
    settings: ReporterSettings,
    warehouse: Warehouse,
    label: str,
) -> dict:
    """Evidence, report, dashboard and manifest of the items whose clock started in the period ``label`` (2026-09,
    2026-Q3), in OUT/periods/<period>/; the verdict counts and where, as metadata.

    The period is judged on the loaded exports in a DuckDB of its own that reads the warehouse read-only, so
    periods run side by side and never touch the warehouse's own (unpartitioned) results."""
    started = time.monotonic()
    period = parse_period(label)
    out_dir = Path(settings.out_dir) / "periods" / period.label
    as_of = parse_as_of(settings.as_of) if settings.as_of else period.default_as_of(_run_created(context))
    windows = version_windows(load_policy_versions(settings.policy), period.start, period.end)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if warehouse.memory_limit:
            con.execute(f"SET memory_limit = {lit(warehouse.memory_limit)}")
        warehouse.attach_read_only(con, "warehouse")
        # results are written here; what the ingest recorded (staged tables, ingest_log, ...) is read there
        con.execute("SET search_path = 'memory.main,warehouse.main'")
        # the tables a publish step completes in place (the reconciliation adds a conversion's quarantine):
        # copies, as the warehouse is read-only here (a step writing another one fails, never writes it)
        for table in _COMPLETED_IN_PLACE:
            if table_exists(con, table):
                con.execute(f"CREATE TABLE memory.main.{table} AS SELECT * FROM warehouse.main.{table}")
        counts = judge_and_publish(con, windows, as_of, period, context.run_id, Path(settings.exports_dir), out_dir)
    finally:
        con.close()
    return {
        **counts,
        "path": dg.MetadataValue.path(str(out_dir)),
        "duration_seconds": round(time.monotonic() - started, 3),
    }


@dg.asset(group_name="partitions", kinds={"html", "csv"}, partitions_def=MONTHS, deps=ingest_assets)
def monthly_report(
    context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse
) -> dg.MaterializeResult:
    """The report of one month (the items whose clock started in it): OUT/periods/YYYY-MM/."""
    return dg.MaterializeResult(
        metadata=write_period_report(context, settings, warehouse, month_label(context.partition_key))
    )


@dg.op(description="The report of one quarter (the items whose clock started in it): OUT/periods/YYYY-Qn/.")
def quarterly_report(context: dg.OpExecutionContext, settings: ReporterSettings, warehouse: Warehouse) -> None:
    # An op in a partitioned job, not an asset: the assets share one partitioning (months), which lets
    # `dagster asset materialize --select '*' --partition <month>` take the whole graph.
    context.add_output_metadata(write_period_report(context, settings, warehouse, quarter_label(context.partition_key)))


@dg.job(partitions_def=QUARTERS, description="The report of one quarter in OUT/periods/YYYY-Qn/.")
def quarterly_reports_job() -> None:
    quarterly_report()


_COMPLETED_IN_PLACE = ("quarantine", "conversion_quarantine")


def _run_created(context: dg.AssetExecutionContext) -> datetime:
    record = context.instance.get_run_record_by_id(context.run_id)
    return (record.create_timestamp if record else datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


def judge_and_publish(
    con: duckdb.DuckDBPyConnection,
    windows: tuple[VersionWindow, ...],
    as_of: datetime,
    period: ReportPeriod,
    run_id: str,
    exports_dir: Path,
    out_dir: Path,
) -> dict[str, int]:
    """The rules and publish steps of compliance_run (assets/sla.py, rules.py, publish.py) in their order, on one
    connection whose staged tables are in the attached database ``warehouse``, into ``out_dir``."""
    policy = windows[-1].policy
    judge_by_version(
        con,
        windows,
        period,
        "ticket_sla",
        TICKET_DOMAINS,
        lambda con, window: evaluate_ticket_clocks(con, window.policy, as_of),
        catalog="warehouse",
    )
    reconciled = False
    for step in RULE_STEPS:
        if "vendor_reconciliation" in STEP_READS.get(step, ()) and not reconciled:
            reconciliation.reconcile(con, exports_dir, as_of, policy)
            reconciled = True
        judge_by_version(
            con,
            windows,
            period,
            step,
            (step,),
            lambda con, window, step=step: evaluate_step(con, step, window.policy, as_of),
            catalog="warehouse",
        )
    if not reconciled:
        reconciliation.reconcile(con, exports_dir, as_of, policy)
    judge(con, windows, as_of)
    written = write_evidence(con, out_dir) + write_expectation_docs(con, out_dir)

    def manifest(outputs: list[Path]) -> dict:
        return build_manifest(
            con,
            run_id=run_id,
            as_of=as_of,
            policy=policy,
            exports_dir=exports_dir,
            out_dir=out_dir,
            outputs=outputs,
            period=period,
            windows=windows,
        )

    evidence = sorted(written)
    report = ReportData(
        policy=policy,
        manifest=manifest(evidence),
        generated_at=datetime.now(UTC),
        reconciliation=ReconciliationData.from_warehouse(con),
        **report_tables(con),
    )
    publish_atomically(render_compliance_report(report), out_dir / "compliance_report.html")
    dashboard = DashboardData(
        policy=policy,
        as_of=as_of,
        run_id=run_id,
        **dashboard_tables(con, policy, as_of),
        generated_at=datetime.now(UTC),
        period=period.label,
        policy_versions=tuple(w.policy.version for w in windows),
    )
    publish_atomically(render_sla_dashboard(dashboard), out_dir / "sla_dashboard.html")
    write_json(
        out_dir / "manifest.json",
        manifest(evidence + [out_dir / "compliance_report.html", out_dir / "sla_dashboard.html"]),
    )
    return verdict_counts(con)
