"""The one Dagster entry point: assets, checks, resources, jobs, the schedule and the landing-folder sensor."""

import dagster as dg

from assets.ingest import ingest_assets
from assets.monthly_clocks import monthly_ticket_clocks, monthly_ticket_figures
from assets.partitions import MONTHS, monthly_records, monthly_report, quarterly_reports_job
from assets.publish import compliance_report, evidence_files, run_manifest, sla_dashboard, verdicts
from assets.resources import WAREHOUSE_POOL, default_resources
from assets.rules import rule_assets
from assets.sla import ticket_sla
from checks.ingest import staged_checks
from pipelines.automation import daily_compliance_run, landing_folder_sensor

# The report: what `compliance-report run`, the schedule and the sensor execute (unpartitioned).
ALL_ASSETS = [
    *ingest_assets,
    ticket_sla,
    *rule_assets,
    verdicts,
    evidence_files,
    compliance_report,
    sla_dashboard,
    run_manifest,
]
# One blocking check step per staged table (accounting, Great Expectations), run before the rules read it.
ALL_CHECKS = staged_checks(pool=WAREHOUSE_POOL)

# Steps share one DuckDB file, which one process writes at a time: in one process by default. The multiprocess
# job runs the same graph with a process per step; steps wait for the file in turn (Warehouse.connect).
compliance_run = dg.define_asset_job(
    "compliance_run",
    selection=dg.AssetSelection.assets(*ALL_ASSETS),
    description="Ingest new exports, evaluate every commitment, publish evidence and the report.",
    executor_def=dg.in_process_executor,
)
compliance_run_multiprocess = dg.define_asset_job(
    "compliance_run_multiprocess",
    selection=dg.AssetSelection.assets(*ALL_ASSETS),
    description="compliance_run with each step in its own process (Dagster's multiprocess executor).",
    # Step processes fork from a server that has imported the definitions once, instead of each importing them.
    executor_def=dg.multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": ["pipelines.definitions"]}}}
    ),
)
monthly_records_job = dg.define_asset_job(
    "monthly_records_job",
    selection=dg.AssetSelection.assets(monthly_records),
    partitions_def=MONTHS,
    description="The staged records of one month as Parquet: backfill a year, or re-run one month.",
)
monthly_clocks_job = dg.define_asset_job(
    "monthly_clocks_job",
    selection=dg.AssetSelection.assets(monthly_records, monthly_ticket_clocks),
    partitions_def=MONTHS,
    description="One month's partitions and the ticket clocks of its tickets (skipped when its inputs are unchanged).",
)

# The report of each month / quarter in OUT/periods/<period>/ (after a compliance_run has loaded the exports):
# backfill a year of months, or re-run one.
monthly_reports_job = dg.define_asset_job(
    "monthly_reports_job",
    selection=dg.AssetSelection.assets(monthly_report),
    partitions_def=MONTHS,
    description="The report of one month (items whose clock started in it) in OUT/periods/YYYY-MM/.",
)


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[*ALL_ASSETS, monthly_records, monthly_report, monthly_ticket_clocks, monthly_ticket_figures],
        asset_checks=ALL_CHECKS,
        jobs=[
            compliance_run,
            compliance_run_multiprocess,
            monthly_records_job,
            monthly_reports_job,
            quarterly_reports_job,
            monthly_clocks_job,
        ],
        schedules=[daily_compliance_run],
        sensors=[landing_folder_sensor],
        resources=resources or default_resources(),
        executor=dg.in_process_executor,
    )


defs = build_definitions()


def multiprocess_job() -> dg.JobDefinition:
    """`compliance_run_multiprocess` of `defs`, for `dagster.reconstructable` (each step process rebuilds it)."""
    return defs.resolve_job_def("compliance_run_multiprocess")
