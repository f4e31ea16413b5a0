"""Great Expectations per segment (the staged rows of one source file, or of a run of small consecutive files): a
daily run validates the rows of the segments that changed, reuses the stored states of the others, and gives what a
cold validation of the same table gives."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import duckdb
import pytest
from conftest import STAGED_TICKET_COLUMNS, clean_ticket_rows
from hypothesis import given, settings
from hypothesis import strategies as st

import compliance.expectations as expectations
from compliance.evidence.quality_records import record_expectations, write_expectation_docs
from compliance.expectations import SEGMENT_ROWS, cut_into_segments, table_segments, validate_table

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
TICKET_ID, CHANNEL, PLAN, CREATED, FIRST_RESPONSE, STATUS, SOURCE_FILE = 0, 1, 2, 4, 5, 7, 12
# In table order (file names): "-2026-10-01" < "-2026-10-15" < "-2026-11-02" < ".csv"
OLDER = "tickets-2026-10-01.csv"
ADDED = "tickets-2026-10-15.csv"
SUPERSEDING = "tickets-2026-11-02.csv"
MAIN = "tickets.csv"


def _with(row: tuple, index: int, value) -> tuple:
    return row[:index] + (value,) + row[index + 1 :]


def _older() -> list[tuple]:
    """60 rows; unknown channels on lines 50–54 only, an unknown plan, a duplicate of a MAIN ticket."""
    rows = clean_ticket_rows(60, OLDER, 0)
    for i in range(48, 53):
        rows[i] = _with(rows[i], CHANNEL, "telex")
    rows[10] = _with(rows[10], PLAN, "plan_9")
    rows[11] = _with(rows[11], TICKET_ID, "T01003")
    return rows


def _main() -> list[tuple]:
    """40 rows; unknown channels on lines 2–31, an empty created_at, a first response before creation."""
    rows = clean_ticket_rows(40, MAIN, 1000)
    for i in range(30):
        rows[i] = _with(rows[i], CHANNEL, "fax")
    rows[33] = _with(rows[33], CREATED, None)
    rows[35] = _with(rows[35], FIRST_RESPONSE, "2026-01-01 00:00:00Z")
    return rows


def _added() -> list[tuple]:
    """10 rows of a later daily file; unknown channels on lines 2–4, a duplicate of an OLDER ticket."""
    rows = clean_ticket_rows(10, ADDED, 2000)
    for i in range(3):
        rows[i] = _with(rows[i], CHANNEL, "pigeon")
    rows[5] = _with(rows[5], TICKET_ID, "T00020")
    return rows


def _stage(con, rows: list[tuple]) -> None:
    con.execute(f"CREATE OR REPLACE TABLE staged_tickets ({STAGED_TICKET_COLUMNS})")
    con.executemany(f"INSERT INTO staged_tickets VALUES ({', '.join('?' * 14)})", rows)


def _record(con, policy, folder) -> tuple:
    """What a run records and writes: the outcomes, ``expectation_suites``, ``data_quality`` and the bytes of
    every file under ``evidence/expectations``."""
    outcomes = record_expectations(con, "staged_tickets", "tickets", policy, AS_OF)
    written = write_expectation_docs(con, folder)
    return (
        outcomes,
        con.execute("SELECT * FROM expectation_suites ORDER BY ALL").fetchall(),
        con.execute("SELECT * FROM data_quality ORDER BY ALL").fetchall(),
        {path.name: path.read_bytes() for path in written},
    )


def _cold(policy, rows: list[tuple], folder) -> tuple:
    """A cold validation of the same table: a warehouse without stores."""
    cold = duckdb.connect()
    cold.execute("SET TimeZone = 'UTC'")
    try:
        _stage(cold, rows)
        return _record(cold, policy, folder)
    finally:
        cold.close()


@pytest.fixture()
def rows_to_gx(monkeypatch) -> list[int]:
    """Per frame that reaches Great Expectations from now on, its rows."""
    counted: list[int] = []
    chunks = expectations._segment_chunks

    def counting(*args):
        for segment, rows in chunks(*args):  # each chunk goes to the Great Expectations worker
            counted.append(rows.num_rows)
            yield segment, rows

    monkeypatch.setattr(expectations, "_segment_chunks", counting)
    return counted


@pytest.fixture()
def file_by_file(monkeypatch) -> None:
    """Every file a segment of its own (every name ends a segment), as for files of SEGMENT_ROWS rows or more."""
    monkeypatch.setattr(expectations, "SEGMENT_FILES", 1)


def test_a_daily_run_validates_the_changed_files_only_and_gives_the_cold_outcomes(
    con, policy, tmp_path, rows_to_gx, file_by_file
):
    older, main, added = _older(), _main(), _added()
    steps = [
        ("cold load", older + main, policy, 100),
        ("a new daily file", older + main + added, policy, 10),
    ]
    # a superseding export: five MAIN tickets changed (one solved ticket reopened), now from the newer file
    superseded = [_with(row, SOURCE_FILE, SUPERSEDING)[:13] + (i + 2,) for i, row in enumerate(main[:5])]
    superseded[0] = _with(superseded[0], STATUS, "open")
    steps.append(("a superseding file", older + added + superseded + main[5:], policy, 5 + 35))
    # an allowed value added: every segment's key changes
    steps.append(
        (
            "a policy change",
            older + added + superseded + main[5:],
            replace(policy, plans=(*policy.plans, "plan_9")),
            110,
        )
    )

    for step, (name, rows, step_policy, validated_rows) in enumerate(steps):
        _stage(con, rows)
        rows_to_gx.clear()
        incremental = _record(con, step_policy, tmp_path / f"incremental-{step}")
        assert sum(rows_to_gx) == validated_rows, name
        assert incremental == _cold(step_policy, rows, tmp_path / f"cold-{step}"), name
        stored = con.execute("SELECT count(*) FROM expectation_segment_store").fetchall()[0][0]
        assert stored == len({row[SOURCE_FILE] for row in rows}), name  # states of files gone are dropped
    failed = {(o.expectation, o.column) for o in incremental[0] if not o.success}
    assert ("expect_column_values_to_be_in_set", "plan") not in failed  # plan_9 allowed now
    assert ("expect_column_values_to_be_in_set", "channel") in failed


def test_an_unchanged_table_reaches_gx_with_no_row(con, policy, tmp_path, rows_to_gx, file_by_file):
    _stage(con, _older() + _main())
    first = _record(con, policy, tmp_path / "first")
    rows_to_gx.clear()
    assert _record(con, policy, tmp_path / "again") == first
    assert rows_to_gx == []


def test_examples_are_the_first_unexpected_values_in_file_name_then_line_order(con, policy):
    """Unknown channels: OLDER's 5 on lines 50–54, then ADDED's 3 on lines 2–4, then MAIN's 30 on lines 2–31; the
    first 20 in table order are 5 telex, 3 pigeon and 12 fax (by ``source_line`` alone, which ties across files,
    they would be 17 fax and 3 pigeon). Duplicate IDs: T01003 (OLDER line 13, MAIN line 5) and T00020 (OLDER
    line 22, ADDED line 7), two rows each."""
    _stage(con, _older() + _main() + _added())
    for chunk_rows in (4, 1000):  # chunks cut inside and at the end of files change nothing
        outcomes = {
            (o.expectation, o.column): o
            for o in validate_table(con, "staged_tickets", "tickets", policy, AS_OF, None, chunk_rows=chunk_rows)
        }
        channel = outcomes[("expect_column_values_to_be_in_set", "channel")]
        assert channel.observed == "38 unknown: fax, telex, pigeon"
        assert channel.unexpected_count == 38
        unique = outcomes[("expect_column_values_to_be_unique", "ticket_id")]
        assert (unique.unexpected_count, unique.observed) == (4, "4 rows share an ID (e.g. T00020, T01003)")
        order = outcomes[("expect_column_pair_values_a_to_be_greater_than_b", "created_at,first_response_at")]
        assert order.unexpected_count == 1
        assert outcomes[("expect_column_values_to_not_be_null", "created_at")].observed == "1 of 110 rows empty"


def test_a_run_with_no_changed_file_does_not_import_great_expectations(tmp_path, policy):
    import subprocess
    import sys

    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    _stage(con, _older() + _main())
    record_expectations(con, "staged_tickets", "tickets", policy, AS_OF)
    con.close()
    again = (
        "import sys, duckdb\n"
        "from datetime import UTC, datetime\n"
        "from compliance.evidence.quality_records import record_expectations\n"
        "from compliance.policy import load_policy\n"
        f"con = duckdb.connect({str(warehouse)!r})\n"
        "outcomes = record_expectations(con, 'staged_tickets', 'tickets', load_policy('platform'), "
        "datetime(2026, 11, 1, tzinfo=UTC))\n"
        "print(len(outcomes), 'great_expectations' in sys.modules)\n"
    )
    ran = subprocess.run([sys.executable, "-c", again], capture_output=True, text=True, check=True)
    assert ran.stdout.split() == [str(len(_cold(policy, _older() + _main(), tmp_path / "cold")[0])), "False"]


def _daily_files(days: range, rows_per_file: int = 4) -> list[tuple]:
    """One small file per day of October, every third row with an unknown channel."""
    rows = []
    for day in days:
        file_rows = clean_ticket_rows(rows_per_file, f"tickets-2026-10-{day:02d}.csv", 100 * day)
        rows += [_with(row, CHANNEL, "fax") if i % 3 == 0 else row for i, row in enumerate(file_rows)]
    return rows


def test_small_files_are_validated_together_and_give_what_one_validation_per_file_gives(
    con, policy, tmp_path, rows_to_gx, monkeypatch
):
    rows = _daily_files(range(1, 31))
    _stage(con, rows)
    segments = table_segments(con, "staged_tickets")
    assert [file for segment in segments for file in segment.files] == sorted({row[SOURCE_FILE] for row in rows})
    assert 1 < len(segments) < 30
    together = _record(con, policy, tmp_path / "together")
    assert len(rows_to_gx) == len(segments)  # one Great Expectations validation per segment, not per file
    monkeypatch.setattr(expectations, "SEGMENT_FILES", 1)
    assert _cold(policy, rows, tmp_path / "alone") == together


def test_a_new_small_file_validates_its_own_segment_again_not_the_others(con, policy, tmp_path, rows_to_gx):
    days = [day for day in range(1, 31) if day != 17]
    _stage(con, _daily_files(days))
    before = set(table_segments(con, "staged_tickets"))
    _record(con, policy, tmp_path / "before")
    rows = _daily_files(range(1, 31))
    _stage(con, rows)
    after = table_segments(con, "staged_tickets")
    new = [segment for segment in after if segment not in before]
    assert any("tickets-2026-10-17.csv" in segment.files for segment in new) and len(new) <= 2
    rows_to_gx.clear()
    incremental = _record(con, policy, tmp_path / "after")
    assert sum(rows_to_gx) == sum(sum(segment.rows) for segment in new) < len(rows)
    assert incremental == _cold(policy, rows, tmp_path / "cold")


_names = st.lists(st.text("abcdef", min_size=1, max_size=6), min_size=1, max_size=60, unique=True)


@settings(max_examples=200, deadline=None)
@given(names=_names, new=st.text("abcdefg", min_size=1, max_size=6), rows=st.integers(1, SEGMENT_ROWS // 100))
def test_inserting_a_file_changes_its_own_segment_and_at_most_one_other(names, new, rows):
    """Content-defined cutting: where a run of small files ends depends on the names, not on positions."""
    if new in names:
        return
    files = [(name, rows, "0", "0") for name in sorted(names)]
    before = cut_into_segments(files)
    after = cut_into_segments(sorted([*files, (new, rows, "0", "0")]))
    assert [file for segment in after for file in segment.files] == sorted([*names, new])
    changed_elsewhere = [segment for segment in after if segment not in before and new not in segment.files]
    assert len(changed_elsewhere) <= 1


def test_a_file_of_segment_rows_or_more_is_a_segment_of_its_own():
    files = [
        ("a", 10, "0", "0"),
        ("b", SEGMENT_ROWS, "0", "0"),
        ("c", 10, "0", "0"),
        ("d", SEGMENT_ROWS - 15, "0", "0"),
    ]
    segments = cut_into_segments(files)
    assert ("b",) in [segment.files for segment in segments]
    assert all(sum(segment.rows) <= SEGMENT_ROWS or len(segment.files) == 1 for segment in segments)
    assert [file for segment in segments for file in segment.files] == ["a", "b", "c", "d"]
