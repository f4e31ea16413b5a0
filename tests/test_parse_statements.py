"""The parse and the quarantine statements of a file write each piece of SQL once: planning them, not running
them, is what a small file's ingest costs, so the trimming of a value, a check's condition and a record ID's
pseudonym are planned by the parse alone and read by name above it and by the quarantine."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime

from conftest import write
from test_ingest_planning import _RecordingConnection

from compliance.ingest import parsing
from compliance.ingest.staging import ingest_source

HEADER = "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at,subject,description\n"
TRIMMED_ID_ROWS = [
    "T1,technical_support,free,,2026-03-02T10:00:00Z,,,open,,,,",  # 2: kept
    "T2,fax,free,,2026-03-02 10:00 America/New_York,,,open,,,,",  # 3: unknown channel
    "alice@example.com,sales,free,,2026-03-08 02:30 America/New_York,,,open,,,,",  # 4: a skipped wall time
]


def _statements(con, folder, policy, rows: list[str]) -> tuple[str, str, list[tuple]]:
    """The parse and the quarantine statements of a tickets file of ``rows``, and its quarantine (line, record
    ID, reason code, reason)."""
    recording = _RecordingConnection(con)
    write(folder / "tickets.csv", HEADER + "\n".join(rows) + "\n")
    ingest_source(recording, "tickets", folder, policy)
    parse = next(s for s in recording.statements if s.startswith("CREATE OR REPLACE TEMP TABLE checked_tickets"))
    quarantine = next(s for s in recording.statements if "problems[1].code" in s)
    rows = con.execute("SELECT line, record_id, reason_code, reason FROM quarantine ORDER BY line").fetchall()
    return parse, quarantine, rows


def test_the_parse_trims_each_value_of_the_file_once(con, tmp_path, policy):
    parse, _, _ = _statements(con, tmp_path, policy, TRIMMED_ID_ROWS)
    # the trimming's test of a value's last character: once per column of the file (twelve), nowhere else
    assert parse.count(parsing._TRIMMED_AT_END_PATTERN) == 12


def test_the_quarantine_reads_the_checks_and_the_record_ids_of_the_parse(con, tmp_path, policy):
    _, quarantine, rows = _statements(con, tmp_path, policy, TRIMMED_ID_ROWS)
    # no condition of a check (the zone name read from a value) and no pseudonym (its hash) planned again
    assert parsing._ZONE_NAME_PATTERN not in quarantine and "sha256(" not in quarantine
    secret_id = "[REDACTED:email]-" + hashlib.sha256(b"alice@example.com").hexdigest()[:16]
    assert rows == [
        (3, "T2", "unknown_value", "channel: unknown value fax"),
        (
            4,
            secret_id,
            "nonexistent_local_time",
            "created_at: 2026-03-08 02:30 America/New_York does not exist (skipped by a daylight-saving change)",
        ),
    ]


def test_an_untrimmed_quarantined_id_is_published_as_the_pseudonym_of_its_raw_text(con, tmp_path, policy):
    rows = [*TRIMMED_ID_ROWS, '" bob@example.com ",fax,free,,2026-03-02T10:00:00Z,,,open,,,,', '" T6",fax,,,,,,,,,,']
    _, quarantine, quarantined = _statements(con, tmp_path, policy, rows)
    assert "sha256(" in quarantine
    # the ID as written, spaces included: the pseudonym an auditor finds by hashing the export's IDs
    untrimmed_secret = "[REDACTED:email]-" + hashlib.sha256(b" bob@example.com ").hexdigest()[:16]
    assert [(line, record) for line, record, _, _ in quarantined] == [
        (3, "T2"),
        (4, "[REDACTED:email]-" + hashlib.sha256(b"alice@example.com").hexdigest()[:16]),
        (5, untrimmed_secret),
        (6, " T6"),
    ]


def test_an_infinite_wall_time_of_a_local_source_is_quarantined_and_the_file_loaded(con, tmp_path, policy):
    # An infinite value has no time of day: the lookup of the earlier instant its wall time may be, which DuckDB
    # cannot compute for it ("Cannot subtract infinite timestamps"), once ran anyway and refused the whole file;
    # its row is quarantined as no date.
    local = dataclasses.replace(policy, source_timezone="America/New_York")
    rows = [
        "T1,sales,free,,2026-03-02 10:00:00,,,open,,,,",
        "T2,sales,free,,infinity,,,open,,,,",
        "T3,sales,free,,2026-11-01 01:30:00,-infinity,,open,,,,",
    ]
    write(tmp_path / "tickets.csv", HEADER + "\n".join(rows) + "\n")
    result = ingest_source(con, "tickets", tmp_path, local)
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("loaded", 1, 2)
    assert con.execute("SELECT ticket_id, created_at FROM staged_tickets").fetchall() == [
        ("T1", datetime(2026, 3, 2, 15, tzinfo=UTC))  # 10:00 EST
    ]
    assert con.execute("SELECT line, reason_code, reason FROM quarantine ORDER BY line").fetchall() == [
        (3, "bad_timestamp", "created_at: outside the years 1970-2100 or not a date: infinity"),
        (
            4,
            "bad_timestamp",
            "first_response_at: outside the years 1970-2100 or not a date: -infinity; "
            # 01:30 repeats on 2026-11-01 in New York: read as its first occurrence, 05:30Z (EDT)
            "first_response_at -infinity is before created_at 2026-11-01T05:30:00Z",
        ),
    ]
