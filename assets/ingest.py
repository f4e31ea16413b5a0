"""Ingest assets: each source's new export files merged into a typed warehouse table, bad rows quarantined.

Their checks (accounting, Great Expectations) are asset checks of their own in checks/ingest.py, run in a step
after each ingest step and before any rule step reads the table."""

import time
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from assets.resources import WAREHOUSE_POOL, ReporterSettings, Warehouse
from compliance.ingest.contract import SOURCES, Source
from compliance.ingest.staging import ingest_source


def _ingest_asset(source: Source) -> dg.AssetsDefinition:
    name = f"staged_{source.name}"

    @dg.asset(
        name=name,
        group_name="ingest",
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,
        description=f"The {source.name} exports, typed and validated, newer versions replacing older ones; rejected rows are in quarantine.",
    )
    def _asset(context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse):
        started = time.monotonic()
        policy = settings.load_policy()
        with warehouse.connect() as con:  # one transaction: the load and its records
            result = ingest_source(con, source.name, Path(settings.exports_dir), policy, settings.encoding or None)
        for entry in result.files:
            if entry.status == "unusable":
                context.log.warning(f"{source.name}: {entry.file}: {entry.problem}")
            elif entry.status == "missing":
                context.log.info(f"{source.name}: no export file")
        changes = [entry.change for entry in result.files]
        return dg.MaterializeResult(
            metadata={
                "status": result.status,
                "problem": result.problem or "",
                "rows_read": result.rows_read,
                "rows_loaded": result.rows_loaded,
                "rows_quarantined": result.rows_quarantined,
                "rows_inserted": result.merged.inserted,
                "rows_replaced": result.merged.replaced,
                "rows_unchanged": result.merged.unchanged,
                "rows_withdrawn": result.merged.withdrawn,
                "files_new": changes.count("new"),
                "files_unchanged": changes.count("unchanged"),
                "files_superseded": changes.count("superseded"),
                "files": dg.MetadataValue.json([asdict(entry) for entry in result.files]),
                "duration_seconds": round(time.monotonic() - started, 3),
            }
        )

    return _asset


# By source name, so that downstream assets name their inputs as objects: a misspelled source fails at import.
staged = {source.name: _ingest_asset(source) for source in SOURCES.values()}
ingest_assets = list(staged.values())
