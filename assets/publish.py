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
from compliance.evidence.manifest import build_manifest
from compliance.evidence.verdicts import blocked_domains, build_verdicts, combine_results
from reports.compliance_report import ReportData, render_compliance_report
from reports.reconciliation_section import ReconciliationData
from reports.sla_dashboard import DashboardData, render_sla_dashboard

VIOLATIONS_SHOWN = 2_000


@dg.asset(
    group_name="publish",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=[ticket_sla, *rule_assets],
)
def verdicts(settings: ReporterSettings, warehouse: Warehouse) -> dg.MaterializeResult:
    """Every commitment of the policy with its verdict (met / breached / no data / not assessed)."""
    started = time.monotonic()
    with warehouse.connect() as con:
        combine_results(con)
        build_verdicts(con, settings.load_policy(), blocked_domains(con))
        counts = dict(con.execute("SELECT verdict, count(*) FROM verdicts GROUP BY verdict").fetchall())
    return dg.MaterializeResult(
        metadata={
            **{verdict: int(count) for verdict, count in sorted(counts.items())},
            "duration_seconds": round(time.monotonic() - started, 3),
        }
    )


@dg.asset(group_name="publish", kinds={"csv", "parquet"}, pool=WAREHOUSE_POOL, deps=[verdicts])
def evidence_files(settings: ReporterSettings, warehouse: Warehouse) -> dg.MaterializeResult:
    """The evidence folder: ticket_sla, violations, metrics, quarantine, verdicts and at-risk files."""
    started = time.monotonic()
    with warehouse.connect() as con:
        written = write_evidence(con, Path(settings.out_dir))
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
    )


def _evidence_paths(out_dir: Path) -> list[Path]:
    return sorted(path for path in (out_dir / "evidence").glob("*") if path.is_file() and not path.name.startswith("."))


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
            verdicts=con.sql("SELECT * FROM verdicts ORDER BY position").pl(),
            metrics=con.sql("SELECT * FROM metrics").pl(),
            violations=con.sql(
                f"SELECT * FROM violations ORDER BY severity <> 'breach', domain, rule_id, due_at, record_id LIMIT {VIOLATIONS_SHOWN}"
            ).pl(),
            violations_total=con.execute("SELECT count(*) FROM violations").fetchall()[0][0],
            quarantine_summary=con.sql(
                "SELECT source_file, reason_code AS reason, count(*) AS rows FROM quarantine "
                "GROUP BY ALL ORDER BY source_file, rows DESC, reason"
            ).pl(),
            at_risk=con.sql("SELECT * FROM at_risk ORDER BY remaining_seconds, due_at, record_id LIMIT 50").pl(),
            generated_at=datetime.now(UTC),
            expectations=con.sql(
                """SELECT source, count(*) AS expectations, count(*) FILTER (WHERE success) AS passed,
                          count(*) FILTER (WHERE NOT success) AS failed,
                          count(*) FILTER (WHERE NOT success AND blocking) AS blocking_failed,
                          string_agg(message, '; ' ORDER BY message) FILTER (WHERE NOT success) AS failures
                   FROM data_quality GROUP BY source ORDER BY source"""
            ).pl(),
            reconciliation=ReconciliationData.from_warehouse(con),
            secret_summary=con.sql(
                "SELECT kind, count(*) AS findings, count(DISTINCT record_id) AS records FROM secret_findings "
                "GROUP BY kind ORDER BY findings DESC, kind"
            ).pl(),
            privacy_backlog=con.sql(
                "SELECT request_type, age_days, days_left FROM privacy_backlog ORDER BY request_id"
            ).pl(),
            finding_counts=con.sql(
                "SELECT rule_id, severity, count(*) AS findings FROM violations GROUP BY ALL ORDER BY ALL"
            ).pl(),
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
            kpis=con.sql(
                "SELECT rule_id, title, domain, achieved, breached, active, denominator, adherence_pct FROM verdicts "
                "WHERE verdict IN ('met', 'breached') ORDER BY position"
            ).pl(),
            # Trends over the twelve months before as-of (retention months reach back years).
            monthly=con.sql(
                "SELECT rule_id, period, segment, achieved, breached, denominator, adherence_pct, median_seconds, p90_seconds "
                "FROM metrics WHERE period = 'all' OR period >= strftime($as_of::TIMESTAMPTZ - INTERVAL 12 MONTH, '%Y-%m') "
                "ORDER BY period, rule_id, segment",
                params={"as_of": settings.as_of_instant(context)},
            ).pl(),
            breaches_by_hour=con.sql(
                "SELECT isodow(started_at) AS weekday, hour(started_at) AS hour, count(*) AS breaches FROM ticket_sla "
                "WHERE state = 'breached' GROUP BY ALL ORDER BY ALL"
            ).pl(),
            at_risk=con.sql("SELECT * FROM at_risk ORDER BY remaining_seconds, due_at, record_id LIMIT 50").pl(),
            incident_response=con.sql("SELECT * FROM incident_response").pl(),
            privacy_on_time=con.sql(
                "SELECT rule_id, period, achieved, breached, adherence_pct FROM metrics "
                "WHERE domain = 'privacy' AND rule_id IN ('PRIV-RESP', 'PRIV-COMPLETE') AND segment = 'all' AND period <> 'all' "
                "ORDER BY rule_id, period"
            ).pl(),
            targets={rule.id: rule.target.seconds for rule in policy.rules if rule.target.seconds},
            generated_at=datetime.now(UTC),
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
