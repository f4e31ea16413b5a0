"""Hostile files, one class per test: a bad file is named as unusable in one line and every other file is still
loaded; a file name is never a glob; the first real error is the one reported; a killed run's leftovers go."""

from __future__ import annotations

import duckdb
import pytest
from conftest import write

from compliance.core.files import replacing
from compliance.ingest import staging
from compliance.ingest.staging import accounting_problems, ingest_source

HEADER = "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at,subject,description\n"


def ticket(ticket_id: str, created: str = "2026-03-02T10:00:00Z") -> str:
    return f"{ticket_id},sales,free,,{created},,,open,,,subject,description\n"


def staged_ids(con) -> set[str]:
    return {row[0] for row in con.execute("SELECT ticket_id FROM staged_tickets").fetchall()}


def problems(result) -> dict[str, str]:
    return {entry.file: entry.problem for entry in result.files if entry.status == "unusable"}


@pytest.mark.parametrize("in_transaction", [False, True])
def test_a_truncated_parquet_file_is_named_and_the_others_load(con, tmp_path, policy, in_transaction):
    """Inside a transaction (as the Dagster asset runs it) DuckDB aborts it on the error: the load starts again
    without the file, and the error reported is the real one, not "Current transaction is aborted"."""
    write(tmp_path / "tickets-a.csv", HEADER + ticket("T1"))
    con.execute(f"COPY (SELECT 'T2' AS ticket_id) TO '{tmp_path / 'tickets-b.parquet'}'")
    whole = (tmp_path / "tickets-b.parquet").read_bytes()
    (tmp_path / "tickets-b.parquet").write_bytes(whole[: len(whole) // 2])
    write(tmp_path / "tickets-c.csv", HEADER + ticket("T3"))
    if in_transaction:
        con.begin()
    result = ingest_source(con, "tickets", tmp_path, policy)
    if in_transaction:
        con.commit()
    assert staged_ids(con) == {"T1", "T3"}
    problem = problems(result)["tickets-b.parquet"]
    assert problem.startswith("cannot be read as PARQUET") and "aborted" not in problem and "\n" not in problem
    assert str(tmp_path) not in problem  # the file's name, not the path
    assert accounting_problems(con, result) == []


def test_an_unreadable_file_is_named(con, tmp_path, policy, monkeypatch):
    write(tmp_path / "tickets-a.csv", HEADER + ticket("T1"))
    write(tmp_path / "tickets-b.csv", HEADER + ticket("T2"))
    real_sha256 = staging.file_sha256

    def denied(path):  # as for a file the process may not read (the tests may run as root, who reads anything)
        if path.name == "tickets-b.csv":
            raise PermissionError(13, "Permission denied", str(path))
        return real_sha256(path)

    monkeypatch.setattr(staging, "file_sha256", denied)
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert staged_ids(con) == {"T1"}
    assert problems(result) == {"tickets-b.csv": "the file cannot be read (permission denied)"}


def test_a_folder_named_like_an_export_and_an_empty_file_are_named(con, tmp_path, policy):
    write(tmp_path / "tickets-a.csv", HEADER + ticket("T1"))
    (tmp_path / "tickets.csv").mkdir()
    write(tmp_path / "tickets-empty.csv", "")
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert staged_ids(con) == {"T1"}
    assert problems(result) == {"tickets.csv": "a folder, not a file", "tickets-empty.csv": "the file is empty"}


@pytest.mark.parametrize("name", ["tickets-*.csv", "tickets-[12].csv", "tickets-?.csv", "tickets-[12].parquet"])
def test_a_file_name_is_never_a_glob(con, tmp_path, policy, name):
    """DuckDB's readers expand * ? [ in a path: the file would be read as tickets-1.csv (or twice)."""
    write(tmp_path / "tickets-1.csv", HEADER + ticket("T1"))
    write(tmp_path / "tickets-2.csv", HEADER + ticket("T2"))
    target = tmp_path / name
    if name.endswith(".parquet"):
        con.execute(
            f"COPY (SELECT 'T9' AS ticket_id, 'sales' AS channel, '2026-03-02T10:00:00Z' AS created_at) "
            f"TO '{tmp_path / 'plain.parquet'}'"
        )
        (tmp_path / "plain.parquet").rename(target)
    else:
        write(target, HEADER + ticket("T9"))
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert staged_ids(con) == {"T1", "T2", "T9"}
    assert {entry.file: entry.rows_read for entry in result.files}[name] == 1


def test_two_columns_of_the_same_name_refuse_the_file(con, tmp_path, policy):
    write(tmp_path / "tickets-a.csv", HEADER.replace("status", "created_at") + ticket("T1"))
    write(tmp_path / "tickets-b.csv", HEADER.replace("status", " Created_At") + ticket("T2"))
    write(tmp_path / "tickets-c.csv", HEADER + ticket("T3"))
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert staged_ids(con) == {"T3"}
    assert set(problems(result)) == {"tickets-a.csv", "tickets-b.csv"}
    assert all("'created_at' twice" in problem for problem in problems(result).values())


def test_mixed_line_endings_and_a_bare_cr_in_a_quoted_value_are_read(con, tmp_path, policy):
    (tmp_path / "tickets.csv").write_bytes(
        (HEADER + ticket("T1").replace("\n", "\r\n") + ticket("T2").replace("\n", "\r") + ticket("T3")).encode()
        + b'T4,sales,free,,2026-03-02T10:00:00Z,,,open,,,"two\rlines",x\n'
    )
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert staged_ids(con) == {"T1", "T2", "T3", "T4"}
    assert con.execute("SELECT subject FROM staged_tickets WHERE ticket_id = 'T4'").fetchall() == [("two\rlines",)]
    assert accounting_problems(con, result) == []


def test_an_unterminated_quote_is_never_read_literally(con, tmp_path, policy):
    write(tmp_path / "tickets.csv", HEADER + ticket("T1") + 'T2,sales,free,,2026-03-02T10:00:00Z,,,open,,,"x,y\n')
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert staged_ids(con) == {"T1"}
    reasons = con.execute("SELECT line, reason_code FROM quarantine").fetchall()
    assert reasons == [(3, "malformed_row")]
    assert accounting_problems(con, result) == []


def test_a_value_too_long_for_duckdb_costs_its_row_only(con, tmp_path, policy):
    long_row = ticket("T2").replace("description", "x" * 2_500_000)
    write(tmp_path / "tickets.csv", HEADER + ticket("T1") + long_row + ticket("T3"))
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert staged_ids(con) == {"T1", "T3"}
    assert con.execute("SELECT line, reason_code FROM quarantine").fetchall() == [(3, "value_too_long")]
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 2, 1)


def test_the_next_write_removes_what_a_killed_run_left(tmp_path):
    target = tmp_path / "evidence" / "ticket_sla.csv"
    target.parent.mkdir()
    leftover = target.parent / ".ticket_sla.csv.abc123.tmp"
    leftover.write_bytes(b"x" * 1000)
    other = target.parent / ".violations.csv.abc123.tmp"  # another file's: left to that file's next write
    other.write_bytes(b"y")
    with replacing(target) as temporary:
        temporary.write_text("record_id\n", encoding="utf-8")
    assert not leftover.exists() and other.exists()
    assert target.read_text(encoding="utf-8") == "record_id\n"


def test_a_transaction_error_never_hides_the_first_one(tmp_path, policy):
    """Two bad files in one transaction: each is named with its own error."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    folder = tmp_path / "exports"
    write(folder / "tickets-a.parquet", "not parquet at all")
    write(folder / "tickets-b.parquet", "PAR1 nor this")
    write(folder / "tickets-c.csv", HEADER + ticket("T1"))
    con.begin()
    result = ingest_source(con, "tickets", folder, policy)
    con.commit()
    assert staged_ids(con) == {"T1"}
    assert all("aborted" not in problem for problem in problems(result).values())
    assert set(problems(result)) == {"tickets-a.parquet", "tickets-b.parquet"}


@pytest.mark.parametrize("file_format", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("extra", ["source_line", "Source_Line", "created_at__text", "created_at__trimmed", "rejected"])
def test_a_column_of_the_file_named_like_one_of_the_readers_is_no_clash(con, tmp_path, policy, file_format, extra):
    """A column of the file's own named like the reader's line number or a column of the parse is not read in its
    place: every good row loads and the bad one is quarantined with its own line and reason."""
    rows = [("T1", "2026-03-02T10:00:00Z"), ("T2", "not a time"), ("T3", "2026-03-02T11:00:00Z")]
    con.execute(
        "CREATE TABLE export AS SELECT * FROM (VALUES "
        + ", ".join(f"('{tid}', 'sales', 'free', '{created}', 'open', 'x')" for tid, created in rows)
        + f') t(ticket_id, channel, plan, created_at, status, "{extra}")'
    )
    path = tmp_path / f"tickets.{file_format}"
    options = {"csv": "FORMAT csv, HEADER true", "jsonl": "FORMAT json", "parquet": "FORMAT parquet"}[file_format]
    con.execute(f"COPY export TO '{path}' ({options})")
    con.execute("DROP TABLE export")
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert problems(result) == {}
    assert staged_ids(con) == {"T1", "T3"}
    line = 3 if file_format == "csv" else 2  # a CSV file's header is its line 1
    assert con.execute("SELECT line, record_id, reason_code FROM quarantine").fetchall() == [
        (line, "T2", "bad_timestamp")
    ]
    assert accounting_problems(con, result) == []


def test_blank_column_names_of_a_header_are_no_reason_to_refuse_the_file(con, tmp_path, policy):
    """Spreadsheets write a trailing comma (a column without a name); two of them, or one of spaces, are still no
    column named twice: every row loads."""
    write(tmp_path / "tickets.csv", HEADER.rstrip("\n") + ",, ,\n" + ticket("T1").rstrip("\n") + ",a,b,c\n")
    write(
        tmp_path / "tickets-b.jsonl",
        '{"ticket_id": "T2", "channel": "sales", "created_at": "2026-03-02T10:00:00Z", "status": "open", "": "x"}\n',
    )
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert problems(result) == {}
    assert staged_ids(con) == {"T1", "T2"}
    assert accounting_problems(con, result) == []
