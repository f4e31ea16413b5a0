"""Hostile values, one class per test: a value the contract cannot take costs its row (quarantined with a reason),
never the run; a policy value no run could honour is refused with one line."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import write

from compliance.ingest.staging import accounting_problems, ingest_source
from compliance.policy import PolicyError, load_policy
from pipelines.cli import main

HEADER = "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at,subject,description\n"


def ticket(ticket_id: str, created: str = "2026-03-02T10:00:00Z", responded: str = "") -> str:
    return f"{ticket_id},sales,free,,{created},{responded},,open,,,subject,description\n"


def quarantined(con) -> dict[str, tuple[str, str]]:
    return {
        row[0]: (row[1], row[2])
        for row in con.execute("SELECT record_id, reason_code, reason FROM quarantine").fetchall()
    }


@pytest.mark.parametrize(
    "value",
    [
        "infinity",
        "-infinity",
        "+infinity",
        "epoch",
        "allballs",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1969-12-31T23:59:59Z",
        "2101-01-01T00:00:00Z",
    ],
)
def test_a_timestamp_outside_the_window_or_a_keyword_is_a_bad_timestamp(con, tmp_path, policy, value):
    write(tmp_path / "tickets.csv", HEADER + ticket("T1") + ticket("T2", created=value) + ticket("T3", responded=value))
    result = ingest_source(con, "tickets", tmp_path, policy)
    reasons = quarantined(con)
    if value in ("allballs", "+infinity"):  # DuckDB's cast refuses them: no timestamp at all
        assert {code for code, _ in reasons.values()} == {"bad_timestamp"}
    else:
        assert reasons["T2"] == ("bad_timestamp", f"created_at: outside the years 1970-2100 or not a date: {value}")
        assert reasons["T3"][0] == "bad_timestamp"
    assert {row[0] for row in con.execute("SELECT ticket_id FROM staged_tickets").fetchall()} == {"T1"}
    assert accounting_problems(con, result) == []


def test_the_first_and_last_instants_of_the_window_are_inside(con, tmp_path, policy):
    write(
        tmp_path / "tickets.csv",
        HEADER + ticket("T1", created="1970-01-01T00:00:00Z") + ticket("T2", created="2100-12-31T23:59:59Z"),
    )
    ingest_source(con, "tickets", tmp_path, policy)
    assert con.execute("SELECT count(*) FROM staged_tickets").fetchall() == [(2,)]


def test_the_window_is_a_policy_setting_and_a_change_reads_the_files_again(con, tmp_path, policy):
    write(tmp_path / "tickets.csv", HEADER + ticket("T1", created="2019-06-01T00:00:00Z") + ticket("T2"))
    ingest_source(con, "tickets", tmp_path, policy)
    assert con.execute("SELECT count(*) FROM staged_tickets").fetchall() == [(2,)]
    narrow = dataclasses.replace(policy, timestamp_window=(2020, 2030))
    ingest_source(con, "tickets", tmp_path, narrow)
    assert quarantined(con)["T1"] == (
        "bad_timestamp",
        "created_at: outside the years 2020-2030 or not a date: 2019-06-01T00:00:00Z",
    )


def test_a_policy_window_is_read_and_checked(tmp_path):
    base = (load_policy("platform").path).read_text(encoding="utf-8")
    good = write(tmp_path / "good.yaml", base + "\ntimestamp_window: {first_year: 2000, last_year: 2030}\n")
    assert load_policy(good).timestamp_window == (2000, 2030)
    reversed_window = write(tmp_path / "bad.yaml", base + "\ntimestamp_window: {first_year: 2030, last_year: 2000}\n")
    with pytest.raises(PolicyError, match="first_year 2030 is after last_year 2000"):
        load_policy(reversed_window)
    unknown = write(tmp_path / "unknown.yaml", base + "\ntimestamp_window: {first: 2000}\n")
    with pytest.raises(PolicyError):
        load_policy(unknown)


@pytest.mark.parametrize("target", ["hours: 1.0e+300", "days: .inf", "hours: .nan", "years: 1000", "days: 40000"])
def test_a_target_no_run_could_count_is_refused_in_one_line(tmp_path, target):
    text = load_policy("platform").path.read_text(encoding="utf-8")
    assert "target: {hours: 24}" in text
    path = write(tmp_path / "policy.yaml", text.replace("target: {hours: 24}", f"target: {{{target}}}", 1))
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    assert "\n" not in str(refused.value) and "target" in str(refused.value)


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31T00:00:00Z", "1969-12-31T23:00:00Z"])
def test_an_as_of_outside_the_window_is_a_usage_error(tmp_path, capsys, as_of):
    write(tmp_path / "exports" / "tickets.csv", HEADER + ticket("T1"))
    code = main(["run", "--exports", str(tmp_path / "exports"), "--out", str(tmp_path / "out"), "--as-of", as_of])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "outside the policy's timestamp window (1970-2100)" in error


@pytest.mark.parametrize("spelling", ["T1\t", " T1", "\tT1 ", '"T1\r"', '"\r\nT1"', "\u00a0T1"])
def test_ids_that_differ_by_surrounding_whitespace_are_one_record(con, tmp_path, policy, spelling):
    write(tmp_path / "tickets.csv", HEADER + ticket("T1") + ticket(spelling, created="2026-03-03T10:00:00Z"))
    ingest_source(con, "tickets", tmp_path, policy)
    assert con.execute("SELECT ticket_id FROM staged_tickets").fetchall() == [("T1",)]
    assert [code for code, _ in quarantined(con).values()] == ["duplicate_id"]


def test_a_json_lines_key_with_a_quote_or_a_backslash_is_read(con, tmp_path, policy):
    write(
        tmp_path / "tickets.jsonl",
        '{"ticket_id": "T1", "channel": "sales", "created_at": "2026-03-02T10:00:00Z", "odd\\"key": "x"}\n'
        '{"ticket_id": "T2", "channel": "sales", "created_at": "2026-03-02T10:00:00Z", "back\\\\slash": "y"}\n',
    )
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert result.status == "loaded", result.problem
    assert con.execute("SELECT ticket_id FROM staged_tickets ORDER BY 1").fetchall() == [("T1",), ("T2",)]
