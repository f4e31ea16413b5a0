"""Evidence above a spreadsheet's row limit: ticket_sla and violations per month of the clock start, as CSV and
Parquet, holding exactly the rows of the whole files; below it, the whole files, and never both layouts."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest
from conftest import write

from compliance.evidence.files import write_evidence
from compliance.evidence.summaries import report_tables
from pipelines.cli import main

TICKETS = """ticket_id,channel,plan,created_at,first_response_at,resolved_at
T1,account_billing,free,2026-08-03T10:00:00Z,2026-08-06T10:00:00Z,
T2,account_billing,free,2026-08-20T10:00:00Z,,
T3,technical_support,plan_2,2026-09-01T10:00:00Z,2026-09-01T11:00:00Z,2026-09-01T12:00:00Z
T4,sales,free,2026-10-05T10:00:00Z,,
"""


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("months")
    write(root / "exports" / "tickets.csv", TICKETS)
    code = main(["run", "--exports", str(root / "exports"), "--out", str(root / "out"), "--as-of", "2026-11-01"])
    assert code == 0
    return root / "out"


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _rewrite(out: Path, spreadsheet_max_rows: int) -> list[str]:
    con = duckdb.connect(str(out / "warehouse.duckdb"))
    try:
        written = write_evidence(con, out, spreadsheet_max_rows)
    finally:
        con.close()
    return sorted(str(path.relative_to(out)) for path in written)


def test_above_the_limit_every_row_is_in_its_month_and_nowhere_else(run_folder):
    whole = {stem: _rows(run_folder / "evidence" / f"{stem}.csv") for stem in ("ticket_sla", "violations")}
    assert len(whole["ticket_sla"]) > 2 and len(whole["violations"]) > 2

    written = _rewrite(run_folder, spreadsheet_max_rows=2)

    for stem, month_of in (("ticket_sla", "started_at"), ("violations", "due_at")):
        assert not (run_folder / "evidence" / f"{stem}.csv").exists()
        assert not (run_folder / "evidence" / f"{stem}.parquet").exists()
        months = sorted((run_folder / "evidence" / stem).iterdir())
        assert [folder.name for folder in months] == sorted(
            {f"month={row[month_of][:7] or 'none'}" for row in whole[stem]}
        )
        parts = [row for folder in months for row in _rows(folder / f"{stem}.csv")]
        assert sorted(map(repr, parts)) == sorted(map(repr, whole[stem]))
        for folder in months:
            assert all(
                row[month_of].startswith(folder.name.removeprefix("month=")) for row in _rows(folder / f"{stem}.csv")
            )
            parquet_rows = duckdb.sql(f"SELECT count(*) FROM '{folder / 'part-0.parquet'}'").fetchall()[0][0]
            assert parquet_rows == len(_rows(folder / f"{stem}.csv"))
            assert f"evidence/{stem}/{folder.name}/{stem}.csv" in written
    # the small tables stay whole
    assert "evidence/metrics.csv" in written

    # back under the limit: the whole files return and the monthly folders go
    written = _rewrite(run_folder, spreadsheet_max_rows=1_048_575)
    for stem in ("ticket_sla", "violations"):
        assert not (run_folder / "evidence" / stem).exists()
        assert _rows(run_folder / "evidence" / f"{stem}.csv") == whole[stem]
        assert f"evidence/{stem}.parquet" in written


def test_the_violations_counted_per_month_are_those_of_the_month_files(run_folder):
    """The report's appendix names the month files from ``violation_months``: it counts what each file holds."""
    _rewrite(run_folder, spreadsheet_max_rows=2)
    try:
        con = duckdb.connect(str(run_folder / "warehouse.duckdb"))
        try:
            counted = report_tables(con)["violation_months"]
        finally:
            con.close()
        per_month: dict[str, int] = {}
        for month, findings in counted.select("month", "findings").iter_rows():
            per_month[month] = per_month.get(month, 0) + findings
        folders = sorted((run_folder / "evidence" / "violations").iterdir())
        assert per_month == {
            folder.name.removeprefix("month="): len(_rows(folder / "violations.csv")) for folder in folders
        }
    finally:
        _rewrite(run_folder, spreadsheet_max_rows=1_048_575)
