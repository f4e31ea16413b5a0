"""Ingest assets: each canonical export file loaded into a typed warehouse table, bad rows quarantined."""

from pathlib import Path

import dagster as dg

from checks.ingest import accounting_result, check_specs, expectations_result
from compliance.contract import SOURCES, Source
from compliance.ingest import ingest_source
from pipelines.resources import ReporterSettings, Warehouse


def _ingest_asset(source: Source) -> dg.AssetsDefinition:
    name = f"staged_{source.name}"

    @dg.asset(
        name=name,
        group_name="ingest",
        kinds={"duckdb"},
        description=f"The {source.name} export, typed and validated; rejected rows are in quarantine.",
        check_specs=check_specs(name),
    )
    def _asset(context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse):
        policy = settings.load_policy()
        with warehouse.connect() as con:
            result = ingest_source(con, source.name, Path(settings.exports_dir), policy)
            if result.status != "loaded":
                context.log.warning(f"{source.name}: {result.file or 'no file'}: {result.problem}")
            yield dg.MaterializeResult(
                metadata={
                    "file": result.file or "",
                    "status": result.status,
                    "problem": result.problem or "",
                    "rows_read": result.rows_read,
                    "rows_loaded": result.rows_loaded,
                    "rows_quarantined": result.rows_quarantined,
                    "sha256": result.sha256 or "",
                }
            )
            yield accounting_result(name, result.rows_read, result.rows_loaded, result.rows_quarantined)
            yield expectations_result(con, name, source.name, policy, settings.as_of_instant(context))

    return _asset


ingest_assets = [_ingest_asset(source) for source in SOURCES.values()]
