"""Ingest: every quarantine reason, row accounting, file formats, time zones, unusable files."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import duckdb
import pytest
from conftest import write

from compliance.ingest.staging import ingest_source

HEADER = "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at,subject,description\n"


def quarantine(con) -> list[tuple]:
    return con.execute("SELECT line, record_id, reason_code, reason FROM quarantine ORDER BY line").fetchall()


def staged(con, columns: str = "ticket_id") -> list[tuple]:
    return con.execute(f"SELECT {columns} FROM staged_tickets ORDER BY source_line").fetchall()


def test_each_quarantine_reason_and_accounting(con, tmp_path, policy):
    rows = [
        "T1,technical_support,plan_2,,2026-03-02T10:00:00Z,2026-03-02T11:00:00Z,,open,,,ok,fine",  # line 2 ok
        "T2,fax,free,,2026-03-02T10:00:00Z,,,open,,,,",  # unknown channel
        "T3,sales,free,,yesterday,,,open,,,,",  # bad timestamp
        ",sales,free,,2026-03-02T10:00:00Z,,,open,,,,",  # missing id
        "T5,sales,free,,,,,open,,,,",  # missing created_at
        "T6,sales,plan_9,,2026-03-02T10:00:00Z,,,open,,,,",  # unknown plan
        "T7,sales,free,,2026-03-02T10:00:00Z,2026-03-01T10:00:00Z,,open,,,,",  # response before creation
        "T1,technical_support,plan_2,,2026-03-02T10:00:00Z,2026-03-02T11:00:00Z,,open,,,ok,fine",  # exact duplicate
        "T1,abuse,free,,2026-03-05T10:00:00Z,,,open,,,,",  # same id, other content
        "T10,sales,free,,2026-03-02T10:00:00Z,,,weird,,,,",  # unknown status
        "T11,sales,free",  # malformed: too few columns
        "T12,Tech,free,,2026-03-02 10:00:00,,,open,,,,",  # alias + naive timestamp: fine
    ]
    write(tmp_path / "tickets.csv", HEADER + "\n".join(rows) + "\n")
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert (result.status, result.rows_read, result.rows_loaded, result.rows_quarantined) == ("loaded", 12, 2, 10)
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    reasons = {line: (record, code, reason) for line, record, code, reason in quarantine(con)}
    assert reasons[3] == ("T2", "unknown_value", "channel: unknown value fax")
    assert reasons[4] == ("T3", "bad_timestamp", "created_at: not an ISO-8601 timestamp: yesterday")
    assert reasons[5][1:] == ("missing_value", "ticket_id: missing required value")
    assert reasons[6][1] == "missing_value" and "created_at" in reasons[6][2]
    assert reasons[7][2] == "plan: unknown value plan_9"
    assert (
        reasons[8][1] == "out_of_order"
        and "first_response_at 2026-03-01T10:00:00Z is before created_at" in reasons[8][2]
    )
    assert reasons[9] == ("T1", "exact_duplicate", "exact duplicate of line 2")
    assert reasons[10][1] == "duplicate_id" and "already used on line 2" in reasons[10][2]
    assert reasons[11][2] == "status: unknown value weird"
    assert reasons[12][1] == "malformed_row"
    assert staged(con, "ticket_id, channel") == [("T1", "technical_support"), ("T12", "technical_support")]
    log = con.execute("SELECT rows_read, rows_loaded, rows_quarantined FROM ingest_log").fetchall()
    assert log == [(12, 2, 10)]


def test_rerun_replaces_previous_load(con, tmp_path, policy):
    write(
        tmp_path / "tickets.csv",
        HEADER + "T1,sales,free,,2026-03-02T10:00:00Z,,,open,,,,\nT2,fax,free,,2026-03-02T10:00:00Z,,,open,,,,\n",
    )
    for _ in range(2):
        ingest_source(con, "tickets", tmp_path, policy)
    assert con.execute("SELECT count(*) FROM quarantine").fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM ingest_log").fetchall() == [(1,)]
    assert staged(con) == [("T1",)]


def test_bom_multiline_and_extra_columns(con, tmp_path, policy):
    text = HEADER.rstrip("\n") + ",vendor_field\n" + 'T1,sales,free,,2026-03-02T10:00:00Z,,,open,,,"two\nlines","d",x\n'
    write(tmp_path / "tickets.csv", text, bom=True)
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert (result.rows_read, result.rows_loaded) == (1, 1)
    assert staged(con, "ticket_id, subject") == [("T1", "two\nlines")]


def test_naive_timestamps_read_in_source_timezone_and_dst_gap_quarantined(con, tmp_path, policy):
    policy = dataclasses.replace(policy, source_timezone="America/New_York")
    rows = [
        "T1,sales,free,,2026-07-01T09:00:00,,,open,,,,",  # EDT: 13:00Z
        "T2,sales,free,,2026-01-15 09:00:00,,,open,,,,",  # EST: 14:00Z
        "T3,sales,free,,2026-03-08T02:30:00,,,open,,,,",  # does not exist in New York
        "T4,sales,free,,2026-07-01T09:00:00+02:00,,,open,,,,",  # explicit offset wins
        "T5,sales,free,,2026-07-01,,,open,,,,",  # a date alone: local midnight
        "T6,sales,free,,2026-07-01 09:00:00 Europe/Paris,,,open,,,,",  # a zone name wins too: 07:00Z
        "T7,sales,free,,2026-07-01T09:00:00Z,,,open,,,,",  # Z is UTC, not New York
    ]
    write(tmp_path / "tickets.csv", HEADER + "\n".join(rows) + "\n")
    ingest_source(con, "tickets", tmp_path, policy)
    created = dict(staged(con, "ticket_id, created_at"))
    utc = UTC
    assert created["T1"] == datetime(2026, 7, 1, 13, tzinfo=utc)
    assert created["T2"] == datetime(2026, 1, 15, 14, tzinfo=utc)
    assert created["T4"] == datetime(2026, 7, 1, 7, tzinfo=utc)
    assert created["T5"] == datetime(2026, 7, 1, 4, tzinfo=utc)
    assert created["T6"] == datetime(2026, 7, 1, 7, tzinfo=utc)
    assert created["T7"] == datetime(2026, 7, 1, 9, tzinfo=utc)
    [(_line, record, code, reason)] = quarantine(con)
    assert (record, code) == ("T3", "nonexistent_local_time")
    assert "America/New_York" in reason


def test_zone_names_and_offsets_in_a_utc_source(con, tmp_path, policy):
    rows = [
        "T1,sales,free,,2026-01-15 09:00:00 America/New_York,,,open,,,,",  # EST: 14:00Z
        "T2,sales,free,,2026-01-15T09:00:00-05:00,,,open,,,,",
        "T3,sales,free,,2026-01-15T09:00:00,,,open,,,,",  # naive: the source zone, UTC
        "T4,sales,free,,2026-01-15T09:00:00 Mars/Olympus,,,open,,,,",  # no such zone
    ]
    write(tmp_path / "tickets.csv", HEADER + "\n".join(rows) + "\n")
    ingest_source(con, "tickets", tmp_path, policy)
    created = dict(staged(con, "ticket_id, created_at"))
    assert created == {
        "T1": datetime(2026, 1, 15, 14, tzinfo=UTC),
        "T2": datetime(2026, 1, 15, 14, tzinfo=UTC),
        "T3": datetime(2026, 1, 15, 9, tzinfo=UTC),
    }
    assert [(record, code) for _, record, code, _ in quarantine(con)] == [("T4", "bad_timestamp")]


@pytest.mark.parametrize("file_format", ["parquet", "jsonl"])
def test_parquet_and_jsonl(con, tmp_path, policy, file_format):
    records = [
        {"ticket_id": "T1", "channel": "sales", "created_at": "2026-03-02T10:00:00Z", "first_response_at": None},
        {"ticket_id": "T2", "channel": "sales", "created_at": "not a date", "first_response_at": None},
    ]
    path = tmp_path / f"tickets.{file_format}"
    if file_format == "parquet":
        source = duckdb.connect()
        source.execute(
            "CREATE TABLE t (ticket_id VARCHAR, channel VARCHAR, created_at VARCHAR, first_response_at TIMESTAMPTZ)"
        )
        source.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [tuple(r.values()) for r in records])
        source.execute(f"COPY t TO '{path}' (FORMAT parquet)")
        expected_lines = [2]
    else:
        lines = [json.dumps(records[0]), "{broken", "", json.dumps(records[1]), "[1, 2]"]
        write(path, "\n".join(lines) + "\n")
        expected_lines = [2, 4, 5]
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert result.rows_loaded == 1
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    assert [row[0] for row in quarantine(con)] == expected_lines
    assert staged(con) == [("T1",)]


def test_unusable_files_are_named_with_the_problem(con, tmp_path, policy):
    write(tmp_path / "tickets.csv", "ticket_id,channel\nT1,sales\n")
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert (result.status, result.problem) == ("unusable", "missing required column created_at")
    assert con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'staged_tickets'"
    ).fetchall() == [(0,)]

    write(tmp_path / "tickets.csv", "")
    assert ingest_source(con, "tickets", tmp_path, policy).problem == "the file is empty"

    (tmp_path / "tickets.csv").unlink()
    write(tmp_path / "tickets.parquet", "this is not parquet")
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert result.status == "unusable" and result.problem.startswith("cannot be read as PARQUET")

    write(tmp_path / "tickets.jsonl", "{}\n")
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert result.problem == "tickets.parquet and tickets.jsonl are both present; keep one file per source"

    result = ingest_source(con, "privacy_requests", tmp_path, policy)
    assert (result.status, result.problem) == ("missing", "no export file")


def test_bytes_that_are_not_utf8_never_cost_the_row(con, tmp_path, policy):
    # Nothing else in the file is UTF-8 beyond ASCII: it is read as cp1252 (tests/test_encodings.py has the rest).
    path = tmp_path / "tickets.csv"
    path.write_bytes(
        HEADER.encode()
        + b"T1,sales,free,,2026-03-02T10:00:00Z,,,open,,,\xff\xfe bad,\nT2,sales,free,,2026-03-02T10:00:00Z,,,open,,,,\n"
    )
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert result.rows_read == result.rows_loaded + result.rows_quarantined == 2
    assert staged(con, "ticket_id, subject") == [("T1", "\u00ff\u00fe bad"), ("T2", None)]
    assert result.files[0].encoding == "cp1252"


def test_every_source_ingests_generated_exports(con, tmp_path, policy):
    from compliance.ingest.contract import SOURCES
    from compliance.samples.generate import GenerateOptions, generate

    generate(
        GenerateOptions(
            out_dir=tmp_path, tickets=400, privacy_requests=60, security_reports=20, incidents=20, retention_records=200
        )
    )
    for name in SOURCES:
        if name in ("vendor_sla", "waivers"):  # optional: adapters and approvers write them, the generator does not
            continue
        result = ingest_source(con, name, tmp_path, policy)
        assert result.status == "loaded", (name, result.problem)
        assert result.rows_read == result.rows_loaded + result.rows_quarantined > 0, name


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_every_line_is_loaded_or_quarantined_once_and_loads_keep_file_order(con, tmp_path, policy, file_format):
    # A slow, obvious reference: walk the lines in order, reject bad ones, keep the first accepted row of an ID.
    rows, expected_loaded, expected_duplicates, seen = [], [], [], set()
    first_line = 2 if file_format == "csv" else 1  # a CSV's line 1 is its header; Parquet counts rows
    for number in range(3000):
        line = number + first_line
        ticket = f"T{number % 2000 if number % 7 == 0 else number}"  # every 7th row may repeat an earlier ID
        channel = "fax" if number % 11 == 0 else "sales"
        rows.append((ticket, channel, "free", None, "2026-03-02T10:00:00Z", None, None, "open", None, None, "s", "d"))
        if channel == "fax":
            continue
        if ticket in seen:
            expected_duplicates.append(line)
        else:
            seen.add(ticket)
            expected_loaded.append(line)
    columns = HEADER.strip().split(",")
    if file_format == "csv":
        write(tmp_path / "tickets.csv", HEADER + "".join(",".join(v or "" for v in row) + "\n" for row in rows))
    else:
        con.execute(f"CREATE TEMP TABLE t ({', '.join(f'{c} VARCHAR' for c in columns)})")
        con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(columns))})", rows)
        con.execute(f"COPY t TO '{tmp_path / 'tickets.parquet'}' (FORMAT parquet)")
    result = ingest_source(con, "tickets", tmp_path, policy)
    stored = [line for (line,) in con.execute("SELECT source_line FROM staged_tickets ORDER BY rowid").fetchall()]
    assert stored == expected_loaded  # the file order, without a sort
    duplicates = [line for line, _, code, _ in quarantine(con) if code in ("exact_duplicate", "duplicate_id")]
    assert duplicates == expected_duplicates
    assert result.rows_read == 3000 == result.rows_loaded + result.rows_quarantined
