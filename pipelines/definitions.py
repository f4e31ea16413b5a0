"""The one Dagster entry point: assets, checks, resources and the job that runs the whole report."""

import dagster as dg

from assets.ingest import ingest_assets
from assets.publish import compliance_report, evidence_files, run_manifest, sla_dashboard, verdicts
from assets.rules import rule_assets
from assets.sla import ticket_sla
from pipelines.resources import default_resources

ALL_ASSETS = [*ingest_assets, ticket_sla, *rule_assets, verdicts, evidence_files, compliance_report, sla_dashboard, run_manifest]
ALL_CHECKS: list = []  # every check runs inside the step of the asset it checks (see checks/)

# Every asset writes to one DuckDB file, which allows one writing process: run steps in one process.
compliance_run = dg.define_asset_job(
    "compliance_run",
    selection=dg.AssetSelection.all(),
    description="Ingest every export, evaluate every commitment, publish evidence and the report.",
    executor_def=dg.in_process_executor,
)


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[compliance_run],
        resources=resources or default_resources(),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
