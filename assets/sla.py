"""SLA assets: every ticket clock with its due time, elapsed open time and verdict."""

import time

import dagster as dg

from assets.ingest import staged
from assets.resources import WAREHOUSE_POOL, ReporterSettings, Warehouse
from compliance.evidence.policy_versions import judge_by_version
from compliance.evidence.summaries import clock_state_counts
from compliance.rules.clock_store import evaluate_ticket_clocks_incrementally
from compliance.rules.ticket_clocks import TICKET_DOMAINS, record_event_order_findings


@dg.asset(
    group_name="sla",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=[staged["tickets"], staged["ticket_events"], staged["waivers"]],
)
def ticket_sla(
    context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse
) -> dg.MaterializeResult:
    """One row per ticket × clock rule: due, stopped, elapsed open seconds, state."""
    started = time.monotonic()
    as_of = settings.as_of_instant(context)
    with warehouse.connect() as con:
        reuse = judge_by_version(
            con,
            settings.policy_windows(),
            settings.report_period(),
            "ticket_sla",
            TICKET_DOMAINS,
            lambda con, window: evaluate_ticket_clocks_incrementally(con, window.policy, as_of),
        )
        record_event_order_findings(con)
        counts = clock_state_counts(con)
    return dg.MaterializeResult(
        metadata={
            **counts,
            # the incremental clocks (compliance.rules.clock_store): tickets whose stored clocks were kept
            "tickets_kept": reuse.kept,
            "tickets_recomputed": reuse.recomputed,
            "recomputed_all_because": reuse.cold_reason or "-",
            # nothing the judged tables read had changed: they were kept as the last run wrote them
            "judged_tables_kept": reuse.tables_kept,
            "duration_seconds": round(time.monotonic() - started, 3),
        }
    )
