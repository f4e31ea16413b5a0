"""Great Expectations suites over staged tables: each failure kind is caught with a useful, correctly-flagged outcome."""

from __future__ import annotations

import great_expectations as gx
import pytest
from conftest import STAGED_TICKET_COLUMNS, clean_ticket_rows

from compliance.expectations import ExpectationOutcome, _context, _expectations, validate_table, write_data_quality
from compliance.ingest.contract import SOURCES

AS_OF = "2026-11-01T00:00:00Z"


def suite_for(source_name: str, policy, *, as_of=None, previous_rows=None) -> gx.ExpectationSuite:
    """The expectations validate_table runs on one source, as one GX suite (for GX's own reference runs)."""
    return gx.ExpectationSuite(
        name=f"{source_name}_contract", expectations=_expectations(SOURCES[source_name], policy, as_of, previous_rows)
    )


def _staged(con, rows: list[tuple]) -> None:
    con.execute(f"CREATE OR REPLACE TABLE staged_tickets ({STAGED_TICKET_COLUMNS})")
    con.executemany(f"INSERT INTO staged_tickets VALUES ({', '.join('?' * 14)})", rows)


def _failed(outcomes: list[ExpectationOutcome]) -> list[ExpectationOutcome]:
    return [outcome for outcome in outcomes if not outcome.success]


def _one_failure(con, policy, rows, previous_rows=None) -> ExpectationOutcome:
    _staged(con, rows)
    failed = _failed(validate_table(con, "staged_tickets", "tickets", policy, AS_OF, previous_rows))
    assert len(failed) == 1, failed
    return failed[0]


def test_suite_is_built_from_the_contract(policy):
    suite = suite_for("tickets", policy, as_of=AS_OF, previous_rows=100)
    assert isinstance(suite, gx.ExpectationSuite)
    types = [expectation.expectation_type for expectation in suite.expectations]
    assert types.count("expect_column_values_to_not_be_null") == 3  # ticket_id, channel, created_at
    assert types.count("expect_column_pair_values_a_to_be_greater_than_b") == 4
    assert "expect_column_values_to_be_unique" in types
    assert "expect_table_row_count_to_be_between" in types
    channel = next(
        e
        for e in suite.expectations
        if e.expectation_type == "expect_column_values_to_be_in_set" and e.configuration.kwargs["column"] == "channel"
    )
    assert set(channel.configuration.kwargs["value_set"]) == set(policy.channels)
    # ticket_events: IDs repeat by design; security_reports: embargo dates may lie in the future.
    assert "expect_column_values_to_be_unique" not in [
        e.expectation_type for e in suite_for("ticket_events", policy).expectations
    ]
    security = suite_for("security_reports", policy, as_of=AS_OF)
    max_columns = {
        e.configuration.kwargs["column"]
        for e in security.expectations
        if e.expectation_type == "expect_column_max_to_be_between"
    }
    assert "received_at" in max_columns and "embargo_extended_until" not in max_columns


def test_clean_table_passes_everything(con, policy):
    _staged(con, clean_ticket_rows(10))
    outcomes = validate_table(con, "staged_tickets", "tickets", policy, AS_OF, previous_rows=10)
    assert outcomes and all(outcome.success for outcome in outcomes), _failed(outcomes)
    assert {outcome.source for outcome in outcomes} == {"tickets"}


def test_missing_required_value(con, policy):
    rows = clean_ticket_rows(10)
    rows[3] = rows[3][:4] + (None,) + rows[3][5:]
    rows[3] = rows[3][:5] + (None, None) + rows[3][7:]  # no timestamps at all on that row
    failure = _one_failure(con, policy, rows)
    assert failure.expectation == "expect_column_values_to_not_be_null"
    assert failure.column == "created_at" and failure.unexpected_count == 1 and failure.blocking
    assert failure.message == "tickets: 1 row has no created_at (a required value)"


def test_missing_required_column(con, policy):
    _staged(con, clean_ticket_rows(10))
    con.execute("ALTER TABLE staged_tickets DROP COLUMN channel")
    failed = _failed(validate_table(con, "staged_tickets", "tickets", policy, AS_OF, None))
    # One blocking outcome for the missing column; the checks on its values cannot run and are left out.
    assert [(f.expectation, f.column, f.blocking) for f in failed] == [("expect_column_to_exist", "channel", True)]
    assert failed[0].message == "tickets: required column channel is missing"


def test_duplicate_id(con, policy):
    rows = clean_ticket_rows(10)
    rows[7] = ("T00002",) + rows[7][1:]
    failure = _one_failure(con, policy, rows)
    assert failure.expectation == "expect_column_values_to_be_unique"
    assert failure.unexpected_count == 2 and failure.blocking
    assert "2 rows share a ticket_id" in failure.message and "T00002" in failure.message


def test_unknown_value(con, policy):
    rows = clean_ticket_rows(10)
    rows[1] = rows[1][:1] + ("carrier_pigeon",) + rows[1][2:]
    failure = _one_failure(con, policy, rows)
    assert failure.expectation == "expect_column_values_to_be_in_set" and failure.column == "channel"
    assert failure.unexpected_count == 1 and failure.blocking  # channel is required
    assert failure.message.startswith("tickets: 1 row has an unknown channel (e.g. carrier_pigeon; allowed: ")

    rows = clean_ticket_rows(10)
    rows[1] = rows[1][:7] + ("archived",) + rows[1][8:]
    failure = _one_failure(con, policy, rows)
    assert failure.column == "status" and not failure.blocking  # optional column


def test_order_violation(con, policy):
    rows = clean_ticket_rows(10)
    for i in (2, 4, 6):
        rows[i] = rows[i][:5] + ("2026-02-01 09:00:00Z",) + rows[i][6:]
    failure = _one_failure(con, policy, rows)
    assert failure.expectation == "expect_column_pair_values_a_to_be_greater_than_b"
    assert failure.column == "created_at,first_response_at" and failure.unexpected_count == 3 and failure.blocking
    assert failure.message == "tickets: 3 rows have first_response_at before created_at"


def test_after_as_of(con, policy):
    rows = clean_ticket_rows(10)
    rows[5] = rows[5][:6] + ("2027-01-02 00:00:00Z",) + rows[5][7:]
    failure = _one_failure(con, policy, rows)
    assert failure.expectation == "expect_column_max_to_be_between" and failure.column == "resolved_at"
    assert failure.unexpected_count == 1 and not failure.blocking  # the rules read it as "not happened yet"
    assert failure.message == (
        "tickets: 1 row has resolved_at after the as-of instant 2026-11-01T00:00:00Z (latest 2027-01-02T00:00:00Z)"
    )


def test_implausible_row_count(con, policy):
    failure = _one_failure(con, policy, clean_ticket_rows(10), previous_rows=100)
    assert failure.expectation == "expect_table_row_count_to_be_between"
    assert not failure.blocking
    assert "10 rows, but the previous run had 100 (expected 50–150" in failure.message
    _staged(con, clean_ticket_rows(10))
    ok = validate_table(con, "staged_tickets", "tickets", policy, AS_OF, previous_rows=14)
    assert all(outcome.success for outcome in ok)


def test_chunked_validation_equals_unchunked(con, policy):
    rows = clean_ticket_rows(40)
    rows[30] = ("T00003",) + rows[30][1:]  # duplicate ID in another chunk
    rows[35] = ("T00003",) + rows[35][1:]
    rows[12] = rows[12][:1] + ("fax",) + rows[12][2:]
    rows[22] = rows[22][:5] + ("2026-01-01 00:00:00Z",) + rows[22][6:]
    rows[39] = rows[39][:6] + ("2027-05-01 00:00:00Z",) + rows[39][7:]
    rows[1] = rows[1][:4] + (None, None, None) + rows[1][7:]
    _staged(con, rows)
    whole = validate_table(con, "staged_tickets", "tickets", policy, AS_OF, 100)
    chunked = validate_table(con, "staged_tickets", "tickets", policy, AS_OF, 100, chunk_rows=7)
    assert whole == chunked
    failed = {(o.expectation, o.column): o.unexpected_count for o in _failed(whole)}
    assert failed == {
        ("expect_column_values_to_not_be_null", "created_at"): 1,
        ("expect_column_values_to_be_unique", "ticket_id"): 3,
        ("expect_column_values_to_be_in_set", "channel"): 1,
        ("expect_column_pair_values_a_to_be_greater_than_b", "created_at,first_response_at"): 1,
        ("expect_column_max_to_be_between", "resolved_at"): 1,
        ("expect_table_row_count_to_be_between", None): None,
    }


def _gx_on_the_whole_table(con, policy) -> dict[tuple[str, str], tuple[bool, int, str]]:
    """What GX itself reports for the row-by-row expectations on the whole table as one frame of its real values
    (SUMMARY): per expectation, success, unexpected count and its three most frequent examples."""
    frame = con.sql(
        "SELECT * EXCLUDE (subject, description, source_file, source_line) FROM staged_tickets ORDER BY source_line"
    ).df()
    batch = (
        _context()
        .data_sources.add_pandas("reference")
        .add_dataframe_asset("tickets")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    reference = {}
    for result in batch.validate(suite_for("tickets", policy, as_of=AS_OF), result_format="SUMMARY").results:
        if "unexpected_count" not in result.result:
            continue
        kwargs = result.expectation_config.kwargs
        column = kwargs.get("column") or f"{kwargs['column_B']},{kwargs['column_A']}"
        counts = sorted(
            (
                (item["count"], item["value"])
                for item in result.result.get("partial_unexpected_counts") or []
                if isinstance(item["value"], str)
            ),
            key=lambda item: (-item[0], item[1]),
        )
        reference[(result.expectation_config.type, column)] = (
            result.success,
            result.result["unexpected_count"],
            ", ".join(value for _, value in counts[:3]),
        )
    return reference


@pytest.mark.parametrize("chunk_rows", [7, 1000])
def test_outcomes_are_those_of_gx_on_the_whole_table(con, policy, chunk_rows):
    """Chunks, null markers for IDs and uniqueness counted in DuckDB change nothing: counts and examples are what
    GX reports on the whole table, also where its first 20 unexpected values span chunks."""
    rows = clean_ticket_rows(60)
    for i in range(5):
        rows[i] = rows[i][:1] + ("fax",) + rows[i][2:]
    for i in range(10, 30):
        rows[i] = rows[i][:1] + ("telex",) + rows[i][2:]
    for i in range(40, 50):
        rows[i] = rows[i][:1] + ("pigeon",) + rows[i][2:]  # after the first 20 unknown channels: no example
    for i in range(30, 60):
        rows[i] = ("D1" if i < 42 else "D2",) + rows[i][1:]  # D2 is the most repeated, D1 repeated first
    rows[6] = (None,) + rows[6][1:]
    rows[8] = rows[8][:4] + (None,) + rows[8][5:]
    rows[9] = rows[9][:5] + ("2026-01-01 00:00:00Z",) + rows[9][6:]
    _staged(con, rows)
    outcomes = validate_table(con, "staged_tickets", "tickets", policy, AS_OF, None, chunk_rows=chunk_rows)
    reference = _gx_on_the_whole_table(con, policy)
    checked = [outcome for outcome in outcomes if (outcome.expectation, outcome.column) in reference]
    assert len(checked) == len(reference) == 12
    for outcome in checked:
        success, unexpected_count, examples = reference[(outcome.expectation, outcome.column)]
        assert (outcome.success, outcome.unexpected_count) == (success, unexpected_count), outcome
        assert examples in outcome.observed, outcome
    failed = {(o.expectation, o.column): o.observed for o in _failed(outcomes)}
    assert failed[("expect_column_values_to_be_in_set", "channel")] == "35 unknown: telex, fax"
    assert failed[("expect_column_values_to_be_unique", "ticket_id")] == "30 rows share an ID (e.g. D1, D2)"
    assert failed[("expect_column_values_to_not_be_null", "ticket_id")] == "1 of 60 rows empty"


def test_missing_table_gives_no_outcomes(con, policy):
    assert validate_table(con, "staged_tickets", "tickets", policy, AS_OF, None) == []


def test_write_data_quality(con, policy):
    rows = clean_ticket_rows(10)
    rows[7] = ("T00002",) + rows[7][1:]
    _staged(con, rows)
    outcomes = validate_table(con, "staged_tickets", "tickets", policy, AS_OF, None)
    write_data_quality(con, outcomes)
    write_data_quality(con, outcomes)  # rerun replaces the source's rows
    assert con.execute("SELECT count(*) FROM data_quality").fetchall()[0][0] == len(outcomes)
    assert con.execute(
        "SELECT column_name, unexpected_count, blocking FROM data_quality WHERE NOT success"
    ).fetchall() == [("ticket_id", 2, True)]
    columns = [row[0] for row in con.execute("DESCRIBE data_quality").fetchall()]
    assert columns == [
        "source",
        "expectation",
        "column_name",
        "success",
        "unexpected_count",
        "observed",
        "blocking",
        "message",
    ]


@pytest.mark.parametrize("source_name", ["privacy_requests", "security_reports", "incidents", "retention_inventory"])
def test_every_source_has_a_suite(source_name, policy):
    suite = suite_for(source_name, policy, as_of=AS_OF)
    assert any(e.expectation_type == "expect_column_values_to_not_be_null" for e in suite.expectations)


# --- the suites that ran as GX JSON, their validation results and Data Docs --------------------------------------


def test_the_suites_that_ran_are_written_as_gx_json_with_their_results_and_offline_data_docs(con, policy, tmp_path):
    import json

    from compliance.evidence.quality_records import record_expectations, write_expectation_docs

    rows = clean_ticket_rows(10)
    rows[1] = rows[1][:1] + ("jane.doe@example.com",) + rows[1][2:]  # an unknown channel that is personal data
    _staged(con, rows)
    outcomes = record_expectations(con, "staged_tickets", "tickets", policy, _as_of_instant())
    written = write_expectation_docs(con, tmp_path)
    folder = tmp_path / "evidence" / "expectations"
    assert sorted(path.name for path in written) == [
        "index.html",
        "tickets_contract.json",
        "tickets_contract.validation.json",
    ]
    suite = json.loads((folder / "tickets_contract.json").read_text(encoding="utf-8"))
    # GX reads it back as the suite that ran
    assert gx.ExpectationSuite(**suite).to_json_dict() == suite_for("tickets", policy, as_of=AS_OF).to_json_dict()
    validation = json.loads((folder / "tickets_contract.validation.json").read_text(encoding="utf-8"))
    ran = [outcome for outcome in outcomes if outcome.expectation.startswith("expect_")]
    assert validation["statistics"] == {
        "evaluated_expectations": len(ran),
        "successful_expectations": len(ran) - 1,
        "unsuccessful_expectations": 1,
        "success_percent": round(100 * (len(ran) - 1) / len(ran), 2),
    }
    assert validation["success"] is False
    failed = [result for result in validation["results"] if result["success"] is False]
    assert [(r["expectation_config"]["type"], r["expectation_config"]["kwargs"]["column"]) for r in failed] == [
        ("expect_column_values_to_be_in_set", "channel")
    ]
    assert failed[0]["result"]["unexpected_count"] == 1
    docs = (folder / "index.html").read_text(encoding="utf-8")
    assert "tickets_contract" in docs and 'href="tickets_contract.validation.json"' in docs
    for remote in ("http://", "https://", "//cdn", "<script", "<link"):
        assert remote not in docs  # opens offline
    for path in written:
        text = path.read_text(encoding="utf-8")
        assert "jane.doe@example.com" not in text, path.name  # GX's example values are redacted
    assert "[REDACTED:email]" in docs


def test_a_source_that_did_not_run_leaves_no_suite_file(con, policy, tmp_path):
    from compliance.evidence.quality_records import record_expectations, write_expectation_docs

    _staged(con, clean_ticket_rows(10))
    record_expectations(con, "staged_tickets", "tickets", policy, _as_of_instant())
    write_expectation_docs(con, tmp_path)
    con.execute("DROP TABLE staged_tickets")
    record_expectations(con, "staged_tickets", "tickets", policy, _as_of_instant())
    written = write_expectation_docs(con, tmp_path)
    assert [path.name for path in written] == ["index.html"]
    assert sorted(path.name for path in (tmp_path / "evidence" / "expectations").iterdir()) == ["index.html"]


def _as_of_instant():
    from datetime import UTC, datetime

    return datetime(2026, 11, 1, tzinfo=UTC)


# --- a table validated before with the same inputs reuses the stored results -------------------------------------


def _recorded(con, policy, as_of) -> tuple[list[ExpectationOutcome], list[tuple], list[tuple]]:
    from compliance.evidence.quality_records import record_expectations

    outcomes = record_expectations(con, "staged_tickets", "tickets", policy, as_of)
    suites = con.execute("SELECT * FROM expectation_suites ORDER BY ALL").fetchall()
    quality = con.execute("SELECT * FROM data_quality ORDER BY ALL").fetchall()
    return outcomes, suites, quality


def _count_validations(monkeypatch) -> list[str]:
    """The tables whose rows Great Expectations validates from now on, once per validation of some of them."""
    import compliance.evidence.quality_records as quality_records
    from compliance.expectations import validate_segments

    calls: list[str] = []

    def counting(con, table, source, policy, files, *args, **kwargs):
        if files:
            calls.append(table)
        return validate_segments(con, table, source, policy, files, *args, **kwargs)

    monkeypatch.setattr(quality_records, "validate_segments", counting)
    return calls


def test_an_unchanged_table_reuses_its_stored_validation(con, policy, monkeypatch):
    rows = clean_ticket_rows(10)
    rows[1] = rows[1][:1] + ("unknown-channel",) + rows[1][2:]
    _staged(con, rows)
    calls = _count_validations(monkeypatch)
    first = _recorded(con, policy, _as_of_instant())
    assert calls == ["staged_tickets"]
    con.execute("DELETE FROM row_count_history")  # the same previous row count (none) as the first run
    again = _recorded(con, policy, _as_of_instant())
    assert calls == ["staged_tickets"]  # not validated again
    assert again == first
    assert any(not outcome.success for outcome in again[0])  # the failure is kept, not lost


def _drop_stores(con) -> None:
    for store in ("expectation_segment_store", "expectation_suite_store"):
        con.execute(f"DROP TABLE {store}")


def _changed_row(rows: list[tuple]) -> list[tuple]:
    return rows[:3] + [rows[3][:7] + ("no-such-status",) + rows[3][8:]] + rows[4:]


def _moved_line(rows: list[tuple]) -> list[tuple]:
    return rows[:-1] + [rows[-1][:-1] + (rows[-1][-1] + 100,)]


@pytest.mark.parametrize(
    ("change", "validated_again"),
    [
        ("a changed value", True),
        ("a changed source line", True),
        ("another policy", True),
        ("a later as-of", False),  # the stored outcomes do not read it: those that do are computed anew
        ("a previous row count", False),
    ],
)
def test_a_changed_input_validates_again_or_gives_the_outcomes_of_a_validation(
    con, policy, monkeypatch, change, validated_again
):
    from dataclasses import replace
    from datetime import timedelta

    rows = clean_ticket_rows(10)
    rows[5] = rows[5][:6] + ("2026-11-02 10:00:00Z",) + rows[5][7:]  # resolved after the first as-of only
    _staged(con, rows)
    calls = _count_validations(monkeypatch)
    as_of = _as_of_instant()
    _recorded(con, policy, as_of)
    con.execute("DELETE FROM row_count_history")
    if change == "a changed value":
        _staged(con, _changed_row(rows))
    elif change == "a changed source line":
        _staged(con, _moved_line(rows))
    elif change == "a later as-of":
        as_of += timedelta(days=2)
    elif change == "a previous row count":
        con.execute("INSERT INTO row_count_history VALUES ('tickets', '2026-10-01T00:00:00Z', 30)")
    else:
        policy = replace(policy, plans=tuple(plan for plan in policy.plans if plan != "plan_2"))
    outcomes, suites, quality = _recorded(con, policy, as_of)
    assert calls == ["staged_tickets"] * (2 if validated_again else 1)
    _drop_stores(con)  # a cold validation of the same inputs
    assert _recorded(con, policy, as_of) == (outcomes, suites, quality)
    assert len(calls) == (3 if validated_again else 2)


AS_OF_FORMS = ["2026-11-01T00:00:00Z", "2026-03-02T10:30:00.250000+02:00", "2026-03-02T11:00:00Z"]


@pytest.mark.parametrize("as_of", AS_OF_FORMS)
@pytest.mark.parametrize("previous_rows", [None, 10, 40])
def test_the_as_of_checks_computed_in_duckdb_are_those_of_gx(con, policy, as_of, previous_rows):
    import json

    from compliance.expectations import AS_OF_CHECKS, as_of_expectations_json, as_of_outcomes, suite_json

    rows = clean_ticket_rows(10)
    rows[2] = rows[2][:5] + (None,) + rows[2][6:]  # an empty first_response_at
    rows[7] = rows[7][:6] + ("2026-11-02 10:00:00.5Z",) + rows[7][7:]
    _staged(con, rows)
    con.execute("UPDATE staged_tickets SET escalated_at = NULL")  # a column with no value at all
    outcomes = as_of_outcomes(con, "staged_tickets", "tickets", as_of, previous_rows)
    assert {(o.expectation, o.column): (o.success, o.observed.split(" (")[0]) for o in outcomes} == _as_of_by_gx(
        con, policy, as_of, previous_rows
    )
    assert any(not outcome.success for outcome in outcomes)
    assert set(outcomes) <= set(validate_table(con, "staged_tickets", "tickets", policy, as_of, previous_rows))
    suite = json.loads(json.dumps(suite_json(SOURCES["tickets"], policy, as_of, previous_rows)))
    assert as_of_expectations_json(SOURCES["tickets"], as_of, previous_rows) == [
        e for e in suite["expectations"] if e["meta"]["check"] in AS_OF_CHECKS
    ]


def _as_of_by_gx(con, policy, as_of, previous_rows) -> dict[tuple[str, str | None], tuple[bool, str]]:
    """GX's own results for the as-of and row-count checks on the whole table as one frame: per expectation, its
    success and what it observed (the latest value, or the row count), as the outcomes word them. A column with
    no value at all has nothing after the as-of instant."""
    import pandas as pd

    from compliance.expectations import AS_OF_CHECKS, _iso

    expectations = [
        e for e in _expectations(SOURCES["tickets"], policy, as_of, previous_rows) if e.meta["check"] in AS_OF_CHECKS
    ]
    batch = (
        _context()
        .data_sources.add_pandas("reference")
        .add_dataframe_asset("tickets")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": con.sql("SELECT * FROM staged_tickets").df()})
    )
    found = {}
    for result in batch.validate(gx.ExpectationSuite(name="as_of", expectations=expectations)).results:
        observed = result.result["observed_value"]
        if result.expectation_config.type == "expect_table_row_count_to_be_between":
            found[(result.expectation_config.type, None)] = (result.success, f"{observed} rows")
        else:
            empty = observed is None or pd.isna(observed)
            found[(result.expectation_config.type, result.expectation_config.kwargs["column"])] = (
                empty or result.success,
                f"latest {_iso(observed)}",
            )
    return found


def test_a_missing_table_is_not_validated(con, policy, monkeypatch):
    calls = _count_validations(monkeypatch)
    assert _recorded(con, policy, _as_of_instant()) == ([], [], [])
    assert calls == []  # not even Great Expectations imported for it
