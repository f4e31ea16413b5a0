"""Publishing assets: verdicts per commitment, evidence files, the compliance report and the run manifest."""

import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from assets.resources import WAREHOUSE_POOL, ReporterSettings, Warehouse
from assets.rules import rule_assets
from assets.sla import ticket_sla
from compliance.core.files import publish_atomically
from compliance.evidence.files import write_evidence, write_json
from compliance.evidence.judging import judge
from compliance.evidence.manifest import build_manifest
from compliance.evidence.quality_records import write_expectation_docs
from compliance.evidence.summaries import dashboard_tables, report_tables, verdict_counts
from compliance.evidence.waivers import waiver_counts
from reports.compliance_report import Attestation, ReportData, render_compliance_report
from reports.reconciliation_section import ReconciliationData
from reports.sla_dashboard import DashboardData, render_sla_dashboard


@dg.asset(
    group_name="publish",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=[ticket_sla, *rule_assets],
)
def verdicts(
    context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Every commitment of the policy with its verdict (met / breached / no data / not assessed), and every
    waiver applied or refused."""
    started = time.monotonic()
    with warehouse.connect() as con:
        judge(con, settings.policy_windows(), settings.as_of_instant(context))
        counts = {**verdict_counts(con), **{f"waivers_{key}": value for key, value in waiver_counts(con).items()}}
    return dg.MaterializeResult(metadata={**counts, "duration_seconds": round(time.monotonic() - started, 3)})


@dg.asset(group_name="publish", kinds={"csv", "parquet"}, pool=WAREHOUSE_POOL, deps=[verdicts])
def evidence_files(settings: ReporterSettings, warehouse: Warehouse) -> dg.MaterializeResult:
    """The evidence folder: ticket_sla, violations, metrics, quarantine, verdicts and at-risk files."""
    started = time.monotonic()
    with warehouse.connect() as con:
        written = write_evidence(con, Path(settings.out_dir), settings.spreadsheet_max_rows) + write_expectation_docs(
            con, Path(settings.out_dir)
        )
    return dg.MaterializeResult(
        metadata={"files": [str(path) for path in written], "duration_seconds": round(time.monotonic() - started, 3)}
    )


def _manifest(context: dg.AssetExecutionContext, settings: ReporterSettings, con, outputs: list[Path]) -> dict:
    return build_manifest(
        con,
        run_id=context.run_id,
        as_of=settings.as_of_instant(context),
        policy=settings.load_policy(),
        exports_dir=Path(settings.exports_dir),
        out_dir=Path(settings.out_dir),
        outputs=outputs,
        period=settings.report_period(),
        windows=settings.policy_windows(),
        exports_given=settings.exports_given,
        exports_format=settings.exports_format,
    )


def _evidence_paths(out_dir: Path) -> list[Path]:
    # with the subfolder of the expectation suites and their Data Docs
    return sorted(
        path for path in (out_dir / "evidence").rglob("*") if path.is_file() and not path.name.startswith(".")
    )


@dg.asset(group_name="publish", kinds={"html"}, pool=WAREHOUSE_POOL, deps=[evidence_files])
def compliance_report(
    context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse
) -> dg.MaterializeResult:
    """compliance_report.html: verdicts, figures with denominators, violations, data coverage, provenance."""
    started = time.monotonic()
    out_dir = Path(settings.out_dir)
    with warehouse.connect() as con:
        data = ReportData(
            policy=settings.load_policy(),
            manifest=_manifest(context, settings, con, _evidence_paths(out_dir)),
            generated_at=datetime.now(UTC),
            reconciliation=ReconciliationData.from_warehouse(con),
            attestation=Attestation(settings.prepared_by, settings.reviewed_by, settings.attested_on),
            **report_tables(con),
        )
    path = out_dir / "compliance_report.html"
    publish_atomically(render_compliance_report(data), path)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), "duration_seconds": round(time.monotonic() - started, 3)}
    )


@dg.asset(group_name="publish", kinds={"html"}, pool=WAREHOUSE_POOL, deps=[evidence_files])
def sla_dashboard(
    context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse
) -> dg.MaterializeResult:
    """sla_dashboard.html: KPIs with red/amber/green status, trends, breaches by hour, at-risk items, incidents."""
    started = time.monotonic()
    policy = settings.load_policy()
    with warehouse.connect() as con:
        data = DashboardData(
            policy=policy,
            as_of=settings.as_of_instant(context),
            run_id=context.run_id,
            **dashboard_tables(con, policy, settings.as_of_instant(context)),
            generated_at=datetime.now(UTC),
            period=settings.period,
            policy_versions=tuple(w.policy.version for w in settings.policy_windows()),
        )
    path = Path(settings.out_dir) / "sla_dashboard.html"
    publish_atomically(render_sla_dashboard(data), path)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), "duration_seconds": round(time.monotonic() - started, 3)}
    )


@dg.asset(group_name="publish", kinds={"json"}, pool=WAREHOUSE_POOL, deps=[compliance_report, sla_dashboard])
def run_manifest(
    context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse
) -> dg.MaterializeResult:
    """manifest.json: run id, as-of, policy and input hashes, rows read/loaded/quarantined, output hashes."""
    started = time.monotonic()
    out_dir = Path(settings.out_dir)
    outputs = _evidence_paths(out_dir) + [out_dir / "compliance_report.html", out_dir / "sla_dashboard.html"]
    with warehouse.connect() as con:
        manifest = _manifest(context, settings, con, outputs)
    write_json(out_dir / "manifest.json", manifest)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out_dir / "manifest.json")),
            "duration_seconds": round(time.monotonic() - started, 3),
        }
    )
