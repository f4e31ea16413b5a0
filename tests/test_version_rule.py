"""Which version of a record wins (``compliance.ingest.staging._version_key``): a value the run refuses or does not
take as having happened never makes an undated export outrank a dated one, and the load order never decides."""

from __future__ import annotations

import dataclasses

import duckdb
import pytest
from conftest import write

from compliance.ingest.staging import ingest_source

TICKETS = "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,subject,description\n"
DATED = "tickets-2026-11-02.csv"
# In the dated export (2026-11-02T00:00Z) T1 is open; the undated tickets.csv holds an older state of it, solved,
# created 2026-09-01: by its records' arrival, tickets.csv is of 2026-09, and the dated export's T1 wins.
DATED_TEXT = TICKETS + "T1,sales,free,,2026-09-01T09:00:00Z,,,open,subject,description\n"
OLDER_T1 = "T1,sales,free,,2026-09-01T09:00:00Z,2026-09-01T10:00:00Z,2026-09-02T09:00:00Z,solved,subject,description\n"
# One row each way a later timestamp could claim that tickets.csv is newer than 2026-11-02.
LATER_VALUES = {
    # quarantined: year 9999 (outside every timestamp window)
    "year 9999": "T2,sales,free,,9999-12-31T00:00:00Z,,,open,subject,description\n",
    # quarantined: inside the default window (1970-2100), outside the policy's own (2000-2030, below)
    "outside the policy's window": "T2,sales,free,,2050-01-01T00:00:00Z,,,open,subject,description\n",
    # accepted, but after the as-of of any run on these files: a resolution typed in the future
    "a stop after as-of": "T2,sales,free,,2026-09-05T09:00:00Z,,2027-01-15T09:00:00Z,solved,subject,description\n",
}


def _staged(con, table: str = "staged_tickets") -> list[tuple]:
    return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def _winner(con, record: str) -> tuple[str, str]:
    return con.execute("SELECT status, source_file FROM staged_tickets WHERE ticket_id = ?", [record]).fetchall()[0]


@pytest.fixture()
def narrow_window(policy):
    return dataclasses.replace(policy, timestamp_window=(2000, 2030))


@pytest.mark.parametrize("way", list(LATER_VALUES))
def test_a_refused_or_future_value_does_not_make_an_undated_export_win(tmp_path, narrow_window, way):
    write(tmp_path / DATED, DATED_TEXT)
    write(tmp_path / "tickets.csv", TICKETS + OLDER_T1 + LATER_VALUES[way])
    con = duckdb.connect()
    ingest_source(con, "tickets", tmp_path, narrow_window)
    assert _winner(con, "T1") == ("open", DATED)
    version_keys = dict(con.execute("SELECT file, version_key FROM loaded_files").fetchall())
    assert version_keys == {
        DATED: f"2026-11-02T00:00:00.000000Z|{DATED}",
        "tickets.csv": "2026-09-05T09:00:00.000000Z|tickets.csv"  # T2 arrived 2026-09-05, its stop does not count
        if way == "a stop after as-of"
        else "2026-09-01T09:00:00.000000Z|tickets.csv",  # T2 quarantined: T1's arrival alone
    }


def test_an_undated_export_holding_a_newer_record_still_wins(tmp_path, policy):
    """The rule still reads the undated file's content: a record that arrived after the dated export's date."""
    write(tmp_path / DATED, DATED_TEXT)
    newer = "T3,sales,free,,2026-11-03T08:00:00Z,,,open,subject,description\n"
    write(tmp_path / "tickets.csv", TICKETS + OLDER_T1 + newer)
    con = duckdb.connect()
    ingest_source(con, "tickets", tmp_path, policy)
    assert _winner(con, "T1") == ("solved", "tickets.csv")


SECURITY = "report_id,received_at,acknowledged_at,timeline_sent_at,fixed_at,disclosed_at,embargo_extended_until\n"


def test_a_deadline_in_the_future_does_not_date_an_export(tmp_path, policy):
    """An embargo extended until 2027 is a deadline, not news: the dated export's version of R1 wins."""
    write(tmp_path / "security_reports-2026-11-02.csv", SECURITY + "R1,2026-10-01T09:00:00Z,2026-10-01T10:00:00Z,,,,\n")
    older = "R1,2026-10-01T09:00:00Z,,,,,2027-03-01T00:00:00Z\n"
    write(tmp_path / "security_reports.csv", SECURITY + older)
    con = duckdb.connect()
    ingest_source(con, "security_reports", tmp_path, policy)
    rows = con.execute("SELECT report_id, source_file FROM staged_security_reports").fetchall()
    assert rows == [("R1", "security_reports-2026-11-02.csv")]


@pytest.mark.parametrize("way", list(LATER_VALUES))
def test_load_order_reversed_gives_the_clean_runs_staged_table(tmp_path, narrow_window, way):
    files = {DATED: DATED_TEXT, "tickets.csv": TICKETS + OLDER_T1 + LATER_VALUES[way]}
    for name, text in files.items():
        write(tmp_path / "clean" / name, text)
    clean = duckdb.connect()
    ingest_source(clean, "tickets", tmp_path / "clean", narrow_window)
    expected = (_staged(clean), _staged(clean, "quarantine"))
    for order in (list(files), list(reversed(files))):
        folder = tmp_path / "-".join(order)
        con = duckdb.connect()
        for name in order:  # one file arrives per run
            write(folder / name, files[name])
            ingest_source(con, "tickets", folder, narrow_window)
        assert (_staged(con), _staged(con, "quarantine")) == expected, order
