"""The secret scan reads each distinct text once (issue 19): the findings of a sequence of changing ticket tables,
scanned against the warehouse's store of scanned texts, are at every step those of a scan of the whole table, and
only texts not seen before are scanned."""

from __future__ import annotations

import duckdb
import pytest

import compliance.rules.secrets_in_text as secrets_in_text
from compliance.core.secrets import scan_secrets

TEXTS = [
    "my password is hunter2 if that helps.",
    "My PIN 4821 no longer works at login.",
    "You can charge card 4111 1111 1111 1111 exp 12/28 instead.",
    "please reset my pin",
    "Hi, my password is hunter2 and PIN 4821; card 4111 1111 1111 1111, mail jane.doe@example.com. Thanks!",
    "nothing to see",
]


def stage(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str | None, str | None]]) -> None:
    con.execute("CREATE OR REPLACE TABLE staged_tickets (ticket_id VARCHAR, subject VARCHAR, description VARCHAR)")
    con.executemany("INSERT INTO staged_tickets VALUES (?, ?, ?)", rows)


def cold_findings(rows: list[tuple[str, str | None, str | None]]) -> list[tuple]:
    con = duckdb.connect()
    stage(con, rows)
    scan_secrets(con, "staged_tickets", "ticket_id", ["subject", "description"])
    return con.execute("SELECT * FROM secret_findings").fetchall()


@pytest.fixture()
def scanned(monkeypatch) -> list[int]:
    """The number of texts each scan of the incremental path reads."""
    counts: list[int] = []

    def counting(con, table, id_column, text_columns):
        counts.append(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
        scan_secrets(con, table, id_column, text_columns)

    monkeypatch.setattr(secrets_in_text, "scan_secrets", counting)
    return counts


def test_only_new_texts_are_scanned_and_the_findings_are_those_of_a_whole_scan(tmp_path, scanned):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    rows = [(f"T{n}", TEXTS[n % 3], TEXTS[(n + 2) % len(TEXTS)]) for n in range(12)] + [("T99", None, None)]
    steps = [
        rows,  # cold: every distinct text
        rows,  # unchanged: nothing scanned
        rows + [("N1", TEXTS[4], "my password is swordfish7"), ("N2", TEXTS[0], TEXTS[4])],
        [(ticket, subject, "PIN 7777" if ticket == "T3" else text) for ticket, subject, text in rows[2:]],
    ]
    for step in steps:
        stage(con, step)
        secrets_in_text.scan_new_texts(con, "staged_tickets", "ticket_id", ["subject", "description"])
        findings = con.execute("SELECT * FROM secret_findings").fetchall()
        assert findings == cold_findings(step)
        assert (
            con.execute("DESCRIBE secret_findings").fetchall()
            == duckdb.connect()
            .execute(
                "CREATE TABLE f (record_id VARCHAR, column_name VARCHAR, kind VARCHAR, start BIGINT, length BIGINT);"
                "DESCRIBE f"
            )
            .fetchall()
        )
    # the distinct subjects and descriptions of the first table (T99's are NULL: no text), then none, then a new
    # description and a text seen before as a description only, now a subject; then T3's changed description
    assert scanned == [3 + len(TEXTS), 2, 1]
    assert any(findings)


def test_a_changed_scanning_code_scans_every_text_again(tmp_path, scanned, monkeypatch):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    rows = [(f"T{n}", TEXTS[n % len(TEXTS)], None) for n in range(6)]
    stage(con, rows)
    secrets_in_text.scan_new_texts(con, "staged_tickets", "ticket_id", ["subject", "description"])
    con.execute("UPDATE secret_scan_store_key SET scan_key = 'an older version of the scanner'")
    secrets_in_text.scan_new_texts(con, "staged_tickets", "ticket_id", ["subject", "description"])
    assert scanned == [len(TEXTS), len(TEXTS)]
    assert con.execute("SELECT * FROM secret_findings").fetchall() == cold_findings(rows)
