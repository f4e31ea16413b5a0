"""Ticket clocks by month, from the month partitions: a backfill's months run in parallel, on any executor."""

import time
from pathlib import Path

import dagster as dg

from assets.partitions import MONTHS, monthly_records
from assets.resources import ReporterSettings
from compliance.evidence.monthly_clocks import evaluate_month, write_period_metrics


@dg.asset(group_name="partitions", kinds={"duckdb", "parquet"}, partitions_def=MONTHS, deps=[monthly_records])
def monthly_ticket_clocks(context: dg.AssetExecutionContext, settings: ReporterSettings) -> dg.MaterializeResult:
    """The ticket clocks of the tickets created in one month: OUT/monthly/ticket_sla/month=YYYY-MM/part-0.parquet
    and that month's metrics, recomputed only when the month's partitions, the policy or the as-of changed.

    No warehouse resource: the step reads the month's Parquet only, so partitions never wait for each other."""
    started = time.monotonic()
    out_dir = Path(settings.out_dir)
    result = evaluate_month(
        out_dir / "partitions",
        out_dir,
        context.partition_key[:7],
        settings.policy_versions(),
        settings.as_of_instant(context),
    )
    return dg.MaterializeResult(
        metadata={
            "recomputed": result.recomputed,
            "clocks": result.clocks,
            "duration_seconds": round(time.monotonic() - started, 3),
        }
    )


@dg.asset(group_name="partitions", kinds={"duckdb", "parquet"}, deps=[monthly_ticket_clocks])
def monthly_ticket_figures(settings: ReporterSettings) -> dg.MaterializeResult:
    """The ticket rules' figures of every period, exact quantiles included, read with DuckDB from the stored
    months' ticket_sla parts: OUT/monthly/metrics_tickets.parquet (the tickets rows of evidence/metrics.csv)."""
    started = time.monotonic()
    path, rows = write_period_metrics(settings.policy_versions(), Path(settings.out_dir))
    return dg.MaterializeResult(
        metadata={"file": str(path), "rows": rows, "duration_seconds": round(time.monotonic() - started, 3)}
    )
