"""Which version of a record wins is one rule, independent of load history: the export's date from the name's
suffix, else the newest timestamp inside the file, ties by file name. A clean run and every order of incremental
runs give the same staged records and quarantine, byte for byte."""

from __future__ import annotations

import itertools
import shutil

import duckdb
import pytest
from conftest import write

from compliance.ingest.staging import ingest_source

HEADER = "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at,subject,description\n"


def ticket(ticket_id: str, status: str = "open", created: str = "2026-11-02T10:00:00Z") -> str:
    return f"{ticket_id},sales,free,,{created},,,{status},,,subject,description\n"


SEQUENCES = {
    # undated tickets.csv holds newer records (2026-11-25) than the dated export: it wins, whatever the order
    "undated newer than dated": {
        "tickets.csv": HEADER + ticket("T1", "solved", "2026-11-25T09:00:00Z") + ticket("T2"),
        "tickets-2026-11-20.csv": HEADER + ticket("T1", "open", "2026-11-01T09:00:00Z") + ticket("T3"),
    },
    # an older export arriving after a newer one never overrides it
    "older export arrives later": {
        "tickets-2026-11-21.csv": HEADER + ticket("T1", "solved") + ticket("T2", "solved"),
        "tickets-2026-11-19.csv": HEADER + ticket("T1", "open") + ticket("T2", "solved") + ticket("T4", "new"),
    },
    "three exports, identical and changed records, a bad row": {
        "tickets_20261101.csv": HEADER + ticket("T1") + ticket("T2") + ticket("T9", created="epoch"),
        "tickets_20261103.csv": HEADER + ticket("T1") + ticket("T2", "pending"),
        "tickets_20261102.csv": HEADER + ticket("T1", "solved") + ticket("T3"),
    },
}


def state(con) -> list:
    return [
        con.execute("SELECT * FROM staged_tickets ORDER BY ALL").fetchall(),
        con.execute("SELECT * FROM quarantine ORDER BY ALL").fetchall(),
    ]


def clean_run(tmp_path, policy, files: dict[str, str]) -> list:
    folder = tmp_path / "clean"
    for name, text in files.items():
        write(folder / name, text)
    con = duckdb.connect(str(tmp_path / "clean.duckdb"))
    ingest_source(con, "tickets", folder, policy)
    result = state(con)
    con.close()
    return result


@pytest.mark.parametrize("sequence", list(SEQUENCES))
def test_incremental_runs_in_any_order_equal_a_clean_run(tmp_path, policy, sequence):
    files = SEQUENCES[sequence]
    expected = clean_run(tmp_path, policy, files)
    for number, order in enumerate(itertools.permutations(files)):
        folder, warehouse = tmp_path / f"incremental-{number}", tmp_path / f"incremental-{number}.duckdb"
        con = duckdb.connect(str(warehouse))
        for name in order:  # one file arrives per run
            write(folder / name, files[name])
            ingest_source(con, "tickets", folder, policy)
        assert state(con) == expected, order
        con.close()
        shutil.rmtree(folder)


def test_the_winning_versions_follow_the_documented_rule(tmp_path, policy):
    def winners(sequence: str) -> dict[str, tuple[str, str]]:
        folder = tmp_path / sequence
        for name, text in SEQUENCES[sequence].items():
            write(folder / name, text)
        con = duckdb.connect()
        ingest_source(con, "tickets", folder, policy)
        rows = con.execute("SELECT ticket_id, status, source_file FROM staged_tickets").fetchall()
        return {row[0]: row[1:] for row in rows}

    assert winners("undated newer than dated") == {
        "T1": ("solved", "tickets.csv"),  # its newest timestamp, 2026-11-25, is after the other's name date
        "T2": ("open", "tickets.csv"),
        "T3": ("open", "tickets-2026-11-20.csv"),
    }
    assert winners("older export arrives later") == {
        "T1": ("solved", "tickets-2026-11-21.csv"),
        "T2": ("solved", "tickets-2026-11-21.csv"),  # identical in both: the newer export's row
        "T4": ("new", "tickets-2026-11-19.csv"),
    }


def test_a_superseded_file_is_listed_once_with_its_rows(tmp_path, policy):
    """A new version of an older export, all of whose records a newer export holds: one entry, its own rows."""
    con = duckdb.connect()
    write(tmp_path / "tickets-2026-11-01.csv", HEADER + "".join(ticket(f"T{n}") for n in range(11)))
    ingest_source(con, "tickets", tmp_path, policy)
    write(tmp_path / "tickets-2026-11-20.csv", HEADER + "".join(ticket(f"T{n}", "solved") for n in range(11)))
    ingest_source(con, "tickets", tmp_path, policy)
    write(tmp_path / "tickets-2026-11-01.csv", HEADER + "".join(ticket(f"T{n}", "pending") for n in range(11)))
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert sorted((entry.file, entry.change, entry.rows_read) for entry in result.files) == [
        ("tickets-2026-11-01.csv", "superseded", 11),
        ("tickets-2026-11-20.csv", "unchanged", 11),
    ]
    assert result.rows_read == 22
