"""A file is parsed and checked once: its accepted rows, duplicates, quarantine and their clock starts all come from
that one parse, exactly as a large file's streamed parse gives them."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest
from conftest import write

from compliance.ingest import parsing
from compliance.ingest.staging import ingest_source

HEADER = "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at,subject,description\n"
TICKET_ROWS = [
    "T1,technical_support,plan_2,,2026-03-02T10:00:00Z,2026-03-02T11:00:00Z,,open,,,ok,fine",  # 2: kept
    "T2,fax,free,,2026-03-02T10:00:00Z,,,open,,,,",  # 3: unknown channel
    "T3,sales,free,,yesterday,,,open,,,,",  # 4: no timestamp
    ",sales,free,,2026-03-02T10:00:00Z,,,open,,,,",  # 5: no ID
    "T5,sales,free,,9999-01-01T00:00:00Z,,,open,,,,",  # 6: outside the policy's years
    "T6,sales,free,,2026-03-08 02:30 America/New_York,,,open,,,,",  # 7: a wall time the DST change skipped
    "T7,sales,free,,2026-03-02T10:00:00Z,2026-03-01T10:00:00Z,,open,,,,",  # 8: answered before created
    "T1,technical_support,plan_2,,2026-03-02T10:00:00Z,2026-03-02T11:00:00Z,,open,,,ok,fine",  # 9: line 2 again
    "T1,abuse,free,,2026-03-05T10:00:00Z,,,open,,,,",  # 10: line 2's ID, other values
    "T11,sales,free",  # 11: too few columns
    "T12,fax,free,,2026-03-02T10:00:00Z,,,weird,,,,",  # 12: two problems
    "T13,Tech,free,,2026-03-02 10:00:00,,,open,,,,",  # 13: kept (an alias, a naive UTC time)
    "T2,sales,free,,2026-03-04T10:00:00Z,,,open,,,,",  # 14: kept: line 3, its ID's first row, was rejected
]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# By hand: the reader's malformed row first, then the later duplicates, then the rows a check rejected, in line order.
EXPECTED_QUARANTINE = [
    (11, None, "malformed_row"),
    (9, "T1", "exact_duplicate", "exact duplicate of line 2"),
    (10, "T1", "duplicate_id", "ticket_id T1 already used on line 2 (that row is kept)"),
    (3, "T2", "unknown_value", "channel: unknown value fax"),
    (4, "T3", "bad_timestamp", "created_at: not an ISO-8601 timestamp: yesterday"),
    (5, None, "missing_value", "ticket_id: missing required value"),
    (6, "T5", "bad_timestamp", "created_at: outside the years 1970-2100 or not a date: 9999-01-01T00:00:00Z"),
    (
        7,
        "T6",
        "nonexistent_local_time",
        "created_at: 2026-03-08 02:30 America/New_York does not exist (skipped by a daylight-saving change)",
    ),
    (8, "T7", "out_of_order", "first_response_at 2026-03-01T10:00:00Z is before created_at 2026-03-02T10:00:00Z"),
    (12, "T12", "unknown_value", "channel: unknown value fax; status: unknown value weird"),
]
EXPECTED_STAGED = [
    ("T1", "technical_support", "plan_2", utc(2026, 3, 2, 10), utc(2026, 3, 2, 11), "tickets.csv", 2),
    ("T13", "technical_support", "free", utc(2026, 3, 2, 10), None, "tickets.csv", 13),
    ("T2", "sales", "free", utc(2026, 3, 4, 10), None, "tickets.csv", 14),
]
# The quarantined rows whose start parsed inside the policy's years (line 7's, DuckDB's reading of the skipped
# wall time: 07:30Z), in line order; the malformed line 11 was never parsed.
EXPECTED_CLOCK_STARTS = [
    ("tickets.csv", 3, utc(2026, 3, 2, 10)),
    ("tickets.csv", 5, utc(2026, 3, 2, 10)),
    ("tickets.csv", 7, utc(2026, 3, 8, 7, 30)),
    ("tickets.csv", 8, utc(2026, 3, 2, 10)),
    ("tickets.csv", 9, utc(2026, 3, 2, 10)),
    ("tickets.csv", 10, utc(2026, 3, 5, 10)),
    ("tickets.csv", 12, utc(2026, 3, 2, 10)),
]


class _RecordingConnection:
    """A connection that keeps the SQL text of every statement it runs."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con, self.statements = con, []

    def execute(self, statement: str, *arguments):
        self.statements.append(statement)
        return self._con.execute(statement, *arguments)

    def executemany(self, statement: str, *arguments):
        self.statements.append(statement)
        return self._con.executemany(statement, *arguments)

    def __getattr__(self, name: str):
        return getattr(self._con, name)


def _ingested(con, tmp_path, policy) -> dict[str, list[tuple]]:
    write(tmp_path / "tickets.csv", HEADER + "\n".join(TICKET_ROWS) + "\n")
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (13, 3, 10)
    return {
        table: con.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
        for table in ("staged_tickets", "quarantine", "quarantine_clock_starts", "ingest_log")
    }


@pytest.mark.parametrize("parsed_once", [True, False], ids=["parsed once", "streamed"])
def test_every_reason_gives_the_hand_computed_staged_rows_quarantine_and_clock_starts(
    con, tmp_path, policy, monkeypatch, parsed_once
):
    if not parsed_once:
        monkeypatch.setattr(parsing, "PARSED_ONCE_MAX_ROWS", 0)
    tables = _ingested(con, tmp_path, policy)
    staged = con.execute(
        "SELECT ticket_id, channel, plan, created_at, first_response_at, source_file, source_line "
        "FROM staged_tickets ORDER BY rowid"
    ).fetchall()
    assert staged == EXPECTED_STAGED
    quarantine = [(line, record, code, reason) for file, line, record, code, reason in tables["quarantine"]]
    assert {file for file, *_ in tables["quarantine"]} == {"tickets.csv"}
    assert quarantine[0][:3] == EXPECTED_QUARANTINE[0] and quarantine[0][3].startswith("malformed CSV row: ")
    assert quarantine[1:] == EXPECTED_QUARANTINE[1:]
    assert tables["quarantine_clock_starts"] == EXPECTED_CLOCK_STARTS


def test_both_ways_of_parsing_give_the_same_tables_byte_for_byte(tmp_path, policy, monkeypatch):
    once = duckdb.connect(str(tmp_path / "once.duckdb"))
    parsed_once = _ingested(once, tmp_path / "once", policy)
    monkeypatch.setattr(parsing, "PARSED_ONCE_MAX_ROWS", 0)
    streamed = duckdb.connect(str(tmp_path / "streamed.duckdb"))
    assert _ingested(streamed, tmp_path / "streamed", policy) == parsed_once


def test_a_small_file_is_parsed_by_one_statement(con, tmp_path, policy):
    # The timestamp casts of the parse name their results <column>__aware: the statements that plan the parse.
    recording = _RecordingConnection(con)
    write(tmp_path / "tickets.csv", HEADER + "\n".join(TICKET_ROWS) + "\n")
    ingest_source(recording, "tickets", tmp_path, policy)
    assert sum("created_at__aware" in statement for statement in recording.statements) == 1
