"""Evidence files whose content did not change are not written again (issue 19): a run on an unchanged warehouse
leaves every evidence file as it was, a change rewrites the files (above the spreadsheet limit: the months) it
touches and only those, and every file is byte for byte the one a cold run writes."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from conftest import small_exports

from assets.resources import ReporterSettings, Warehouse
from pipelines.definitions import ALL_ASSETS, ALL_CHECKS
from tests.test_incremental_run import FIRST_AS_OF, add_new_tickets, evidence_of, forget_row_count_history

MONTHLY_ABOVE_ROWS = 100  # the spreadsheet limit of these runs: ticket_sla and violations are written by month


def materialize(exports: Path, out: Path) -> None:
    settings = ReporterSettings(
        exports_dir=str(exports),
        out_dir=str(out),
        policy="platform",
        as_of=FIRST_AS_OF,
        spreadsheet_max_rows=MONTHLY_ABOVE_ROWS,
    )
    result = dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources={"settings": settings, "warehouse": Warehouse(path=str(out / "warehouse.duckdb"))},
    )
    assert result.success


def written_at(out: Path) -> dict[str, int]:
    return {
        str(path.relative_to(out)): path.stat().st_mtime_ns
        for path in sorted((out / "evidence").rglob("*"))
        if path.is_file()
    }


def run_and_compare(exports: Path, out: Path, cold: Path) -> None:
    forget_row_count_history(out / "warehouse.duckdb")
    materialize(exports, out)
    materialize(exports, cold)
    assert evidence_of(out) == evidence_of(cold)


def test_unchanged_evidence_files_are_not_written_again(tmp_path):
    exports = tmp_path / "exports"
    small_exports(exports)
    out = tmp_path / "out"
    materialize(exports, out)
    monthly = sorted((out / "evidence" / "ticket_sla").glob("month=*"))
    assert len(monthly) > 2 and not (out / "evidence" / "ticket_sla.csv").exists()
    first = written_at(out)

    run_and_compare(exports, out, tmp_path / "cold-unchanged")
    unchanged = written_at(out)
    evidence_files = [name for name in first if "/expectations/" not in name]
    assert {name: unchanged[name] for name in evidence_files} == {name: first[name] for name in evidence_files}

    # a file changed by hand is written again
    (out / "evidence" / "metrics.csv").write_text("tampered\n")
    run_and_compare(exports, out, tmp_path / "cold-tampered")

    # new tickets in some months: those months' files are written again, the others are left alone
    add_new_tickets(exports)
    before = written_at(out)
    run_and_compare(exports, out, tmp_path / "cold-new-tickets")
    after = written_at(out)
    sla_months = [name for name in before if name.startswith("evidence/ticket_sla/month=") and name in after]
    rewritten = [name for name in sla_months if after[name] != before[name]]
    assert rewritten and len(rewritten) < len(sla_months)
