"""Ingest checks: every row read is either loaded or quarantined, for every export file."""

import dagster as dg

from assets.ingest import ingest_assets
from pipelines.resources import Warehouse


def _accounting_check(asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    source = asset.key.path[-1].removeprefix("staged_")

    @dg.asset_check(asset=asset, name="rows_accounted_for", blocking=True, description="rows read = loaded + quarantined")
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            rows = con.execute(
                "SELECT rows_read, rows_loaded, rows_quarantined, status FROM ingest_log WHERE source = ?", [source]
            ).fetchall()
        read, loaded, quarantined, status = rows[0] if rows else (0, 0, 0, "missing")
        return dg.AssetCheckResult(
            passed=read == loaded + quarantined,
            metadata={"status": status, "rows_read": read, "rows_loaded": loaded, "rows_quarantined": quarantined},
        )

    return _check


ingest_checks = [_accounting_check(asset) for asset in ingest_assets]
