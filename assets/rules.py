"""Rule assets: privacy, security, status-page and retention commitments evaluated on the staged exports, and the
reconciliation of the vendor's own SLA verdicts with ours.

The upstream assets of each step are derived from the registry (``compliance.rules.registry.step_sources`` and
``STEP_READS``; ``compliance.rules.reconciliation.FEEDING_SOURCES`` and ``READS``): a new domain or source needs
no edit here.
"""

import time
from pathlib import Path

import dagster as dg

from assets.ingest import staged
from assets.resources import WAREHOUSE_POOL, ReporterSettings, Warehouse
from assets.sla import ticket_sla
from compliance.evidence.periods import restrict_to_period
from compliance.evidence.policy_versions import judge_by_version
from compliance.rules import reconciliation
from compliance.rules.registry import RULE_STEPS, STEP_READS, evaluate_step, step_sources

# The assets a step may read besides the staged exports, by name. vendor_reconciliation is defined below: named
# by its key (the definitions test checks every dep exists).
_DERIVED = {"ticket_sla": ticket_sla, "vendor_reconciliation": dg.AssetKey("vendor_reconciliation")}


def _deps(sources: tuple[str, ...], reads: tuple[str, ...]) -> list:
    return [*(staged[source] for source in sources), *(_DERIVED[name] for name in reads)]


def _rules_asset(domain: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{domain}_findings",
        group_name="rules",
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,
        deps=_deps(step_sources(domain), STEP_READS.get(domain, ())),
        description=f"Violations and figures of the {domain} commitments.",
    )
    def _asset(
        context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        as_of = settings.as_of_instant(context)
        with warehouse.connect() as con:
            counts = judge_by_version(
                con,
                settings.policy_windows(),
                settings.report_period(),
                domain,
                (domain,),
                lambda con, window: evaluate_step(con, domain, window.policy, as_of),
            )
        return dg.MaterializeResult(metadata={**counts, "duration_seconds": round(time.monotonic() - started, 3)})

    return _asset


@dg.asset(
    group_name="rules",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=_deps(reconciliation.FEEDING_SOURCES, reconciliation.READS),
)
def vendor_reconciliation(
    context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse
) -> dg.MaterializeResult:
    """The vendor's own SLA verdicts beside our recomputation and our policy's verdicts; conversion quarantine."""
    started = time.monotonic()
    with warehouse.connect() as con:
        restrict_to_period(con, settings.report_period())
        counts = reconciliation.reconcile(
            con, Path(settings.exports_dir), settings.as_of_instant(context), settings.load_policy()
        )
    return dg.MaterializeResult(metadata={**counts, "duration_seconds": round(time.monotonic() - started, 3)})


rule_assets = [*(_rules_asset(domain) for domain in RULE_STEPS), vendor_reconciliation]
