"""Hostile inputs never stop the run: one folder with a file per class of bad value and bad file beside good rows.

The reporter runs once on it, as a user runs it (a subprocess, so that anything a native library prints on the
process's own stderr is seen too), and must exit 0, judge every good row, name every bad row and file with its
reason, account for every row read, print no traceback or panic, and publish no planted secret. The focused tests
of each class are in tests/test_hostile_values.py and tests/test_hostile_files.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import write

REPOSITORY = Path(__file__).resolve().parents[1]
AS_OF = "2026-11-01T00:00:00Z"
HEADER = "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at,subject,description\n"
SECRET = "hunter2-planted"


def ticket(ticket_id: str, created: str = "2026-03-02T10:00:00Z", responded: str = "", description: str = "") -> str:
    return f"{ticket_id},sales,free,,{created},{responded},,open,,,subject,{description}"


# File -> (good ticket ids, bad lines with their reason code); None: the file as a whole is unusable.
GOOD_TICKETS = {"G1", "G2", "G3", "G4", "G5", "G6", "G7", "=1+1"}  # "\r=1+1" trimmed by the one rule


def build_folder(folder: Path) -> None:
    write(
        folder / "tickets.csv",
        HEADER
        + "\n".join(
            [
                ticket("G1", responded="2026-03-02T11:00:00Z", description=f"password: {SECRET}"),
                ticket("B1", created="infinity"),
                ticket("B2", created="-infinity"),
                ticket("B3", created="epoch"),
                ticket("B4", created="0001-01-01T00:00:00Z"),
                ticket("B5", responded="9999-12-31T00:00:00Z"),
                '"\r=1+1",sales,free,,2026-03-02T10:00:00Z,,,open,,,"a\rb",y',
            ]
        )
        + "\n",
    )
    write(folder / "tickets-[12].csv", HEADER + ticket("G2") + "\n")  # a glob would read tickets-1.csv instead
    write(folder / "tickets-1.csv", HEADER + ticket("G3") + "\n")
    (folder / "tickets-mixed.csv").write_bytes(
        (HEADER + ticket("G4") + "\r\n" + ticket("G5") + "\r" + ticket("G6") + "\n").encode()
    )
    write(folder / "tickets-long.csv", HEADER + ticket("L1", description="x" * 3_000_000) + "\n" + ticket("G7") + "\n")
    write(folder / "tickets-twice.csv", HEADER.replace("status", "created_at") + ticket("D1") + "\n")
    write(folder / "tickets-quote.csv", HEADER + ticket("Q1", description='"never closed') + "\n" + ticket("Q2") + "\n")
    write(folder / "tickets-empty.csv", "")
    (folder / "tickets-folder.csv").mkdir()
    connection = duckdb.connect()
    connection.execute(
        f"COPY (SELECT 'P1' AS request_id, 'erasure' AS request_type, '2026-03-02T10:00:00Z' AS received_at) "
        f"TO '{folder / 'privacy_requests.parquet'}'"
    )
    connection.close()
    whole = (folder / "privacy_requests.parquet").read_bytes()
    (folder / "privacy_requests.parquet").write_bytes(whole[: len(whole) // 2])  # truncated
    write(folder / "security_reports.csv", "report_id,received_at,acknowledged_at\nS1,2026-03-02T10:00:00Z,\n")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    exports, out = folder / "exports", folder / "out"
    build_folder(exports)
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        timeout=600,
    )
    return completed, out


def inputs(out: Path) -> dict[str, dict]:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {entry["file"]: entry for entry in manifest["inputs"] if entry["file"]}


def test_the_run_succeeds_without_a_traceback_or_a_panic(hostile_run):
    completed, _ = hostile_run
    assert completed.returncode == 0, completed.stderr
    for text in ("Traceback", "panicked", "RUST_BACKTRACE", "Current transaction is aborted"):
        assert text not in completed.stdout + completed.stderr


def test_every_good_row_is_judged(hostile_run):
    _, out = hostile_run
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    staged = {row[0] for row in con.execute("SELECT ticket_id FROM staged_tickets").fetchall()}
    judged = {row[0] for row in con.execute("SELECT DISTINCT record_id FROM ticket_sla").fetchall()}
    con.close()
    assert staged == GOOD_TICKETS
    assert judged == GOOD_TICKETS
    assert inputs(out)["security_reports.csv"]["rows_loaded"] == 1  # another domain, judged as well


def test_every_bad_row_is_named_with_its_reason(hostile_run):
    _, out = hostile_run
    lines = (out / "evidence" / "quarantine.csv").read_text(encoding="utf-8").splitlines()[1:]
    reasons = {(line.split(",")[0], line.split(",")[2]): line.split(",")[3] for line in lines}
    for ticket_id in ("B1", "B2", "B3", "B4", "B5"):
        assert reasons[("tickets.csv", ticket_id)] == "bad_timestamp", ticket_id
    assert reasons[("tickets-long.csv", "")] == "value_too_long"
    assert reasons[("tickets-quote.csv", "")] == "malformed_row"  # the quote is not read literally


def test_every_bad_file_is_named_and_every_row_accounted_for(hostile_run):
    _, out = hostile_run
    files = inputs(out)
    unusable = {name: entry["problem"] for name, entry in files.items() if entry["status"] == "unusable"}
    assert set(unusable) == {"tickets-twice.csv", "tickets-empty.csv", "tickets-folder.csv", "privacy_requests.parquet"}
    assert "created_at" in unusable["tickets-twice.csv"]
    assert "folder" in unusable["tickets-folder.csv"]
    assert "\n" not in "".join(unusable.values())
    for name, entry in files.items():
        assert entry["rows_read"] == entry["rows_loaded"] + entry["rows_quarantined"], name
    assert (files["tickets-[12].csv"]["rows_read"], files["tickets-1.csv"]["rows_read"]) == (1, 1)
    assert files["tickets-mixed.csv"]["rows_loaded"] == 3


def test_no_planted_secret_is_published(hostile_run):
    """Every file under --out but the warehouse, which keeps the exports' raw text (README, Bad input)."""
    _, out = hostile_run
    leaking = [
        path.name
        for path in out.rglob("*")
        if path.is_file() and not path.name.startswith("warehouse.duckdb") and SECRET.encode() in path.read_bytes()
    ]
    assert leaking == []
