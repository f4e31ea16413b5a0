"""Rule assets: privacy, security, status-page and retention commitments evaluated on the staged exports, and the
reconciliation of the vendor's own SLA verdicts with ours."""

import time
from pathlib import Path

import dagster as dg

from assets.ingest import staged
from assets.resources import WAREHOUSE_POOL, ReporterSettings, Warehouse
from assets.sla import ticket_sla
from compliance.rules import reconciliation
from compliance.rules.registry import RULE_STEPS

# step -> the upstream assets of its rules (which modules each step evaluates: compliance.rules.registry).
# vendor_reconciliation is defined below: named by its key (the definitions test checks every dep exists).
_DEPS = {
    "privacy": [staged["privacy_requests"]],
    "security": [staged["security_reports"]],
    "status": [staged["incidents"], staged["incident_updates"]],
    "retention": [staged["retention_inventory"]],
    "data_quality": [staged["tickets"], ticket_sla, dg.AssetKey("vendor_reconciliation")],
}


def _rules_asset(domain: str) -> dg.AssetsDefinition:
    modules, deps = RULE_STEPS[domain], _DEPS[domain]

    @dg.asset(
        name=f"{domain}_findings",
        group_name="rules",
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,
        deps=deps,
        description=f"Violations and figures of the {domain} commitments.",
    )
    def _asset(
        context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        with warehouse.connect() as con:
            for module in modules:
                module.evaluate(con, settings.load_policy(), settings.as_of_instant(context))
            violations = con.execute(f"SELECT count(*) FROM violations_{domain}").fetchall()[0][0]
        return dg.MaterializeResult(
            metadata={"violations": int(violations), "duration_seconds": round(time.monotonic() - started, 3)}
        )

    return _asset


@dg.asset(
    group_name="rules",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=[
        staged["vendor_sla"],
        ticket_sla,
        staged["incidents"],
        staged["privacy_requests"],
        staged["security_reports"],
    ],
)
def vendor_reconciliation(
    context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse
) -> dg.MaterializeResult:
    """The vendor's own SLA verdicts beside our recomputation and our policy's verdicts; conversion quarantine."""
    started = time.monotonic()
    exports_dir = Path(settings.exports_dir)
    conversion = reconciliation.conversion_record(exports_dir) or {}
    vendor = f"the {conversion['format']} export" if conversion.get("format") else "the vendor export"
    with warehouse.connect() as con:
        quarantined = reconciliation.load_conversion_quarantine(con, exports_dir)
        reconciliation.evaluate(con, settings.as_of_instant(context), vendor, settings.load_policy())
        rows, compared, agreeing = con.execute(
            "SELECT count(*), count(agrees), count(*) FILTER (WHERE agrees) FROM vendor_reconciliation"
        ).fetchall()[0]
    return dg.MaterializeResult(
        metadata={
            "vendor_rows": rows,
            "compared": compared,
            "agreeing": agreeing,
            "conversion_quarantined": quarantined,
            "duration_seconds": round(time.monotonic() - started, 3),
        }
    )


rule_assets = [*(_rules_asset(domain) for domain in RULE_STEPS), vendor_reconciliation]
