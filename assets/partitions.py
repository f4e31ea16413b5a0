"""Monthly partitions of the loaded data as Parquet files: backfill a year, or re-run one month."""

import os
import time
from datetime import date
from pathlib import Path

import dagster as dg

from assets.ingest import ingest_assets
from assets.resources import ReporterSettings, SettingError, Warehouse
from compliance.evidence.partitions import write_month


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
