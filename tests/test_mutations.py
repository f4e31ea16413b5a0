"""Behaviours that a mutation of the code once removed without any test failing; each test here fails under it.

- "yes" no longer read as true (``compliance.ingest.parsing._TRUE``);
- Great Expectations' example values published without redaction (``compliance.expectations._sample``);
- ``manifest.period.start`` dropped (``compliance.evidence.manifest.build_manifest``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import write

from compliance.evidence.manifest import build_manifest
from compliance.expectations import validate_table
from compliance.ingest.staging import ingest_source, prepare_warehouse

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def test_boolean_spellings_are_read_and_an_unknown_one_is_quarantined(con, tmp_path, policy):
    spellings = {
        "R1": "yes",
        "R2": "Yes",
        "R3": "y",
        "R4": "TRUE",
        "R5": "1",
        "R6": "no",
        "R7": "N",
        "R8": "false",
        "R9": "0",
    }
    lines = [f"{request},access,2026-03-02T10:00:00Z,{value}" for request, value in spellings.items()]
    write(
        tmp_path / "privacy_requests.csv",
        "request_id,request_type,received_at,extended\n"
        + "\n".join(lines)
        + "\nR10,access,2026-03-02T10:00:00Z,maybe\n",
    )
    result = ingest_source(con, "privacy_requests", tmp_path, policy)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (10, 9, 1)
    loaded = dict(con.execute("SELECT request_id, extended FROM staged_privacy_requests").fetchall())
    assert loaded == {
        "R1": True,
        "R2": True,
        "R3": True,
        "R4": True,
        "R5": True,
        "R6": False,
        "R7": False,
        "R8": False,
        "R9": False,
    }
    assert con.execute("SELECT record_id, reason_code FROM quarantine").fetchall() == [("R10", "bad_boolean")]


def test_example_values_of_a_failed_expectation_are_redacted(con, policy):
    # An unknown channel that carries an e-mail address: the outcome names the value only with the address redacted.
    con.execute(
        "CREATE TABLE staged_tickets AS SELECT * FROM (VALUES "
        "('T1', 'sales', TIMESTAMPTZ '2026-03-02 10:00:00+00', 'tickets.csv', 2), "
        "('T2', 'mail jane.doe@example.com', TIMESTAMPTZ '2026-03-02 11:00:00+00', 'tickets.csv', 3)) "
        "AS t(ticket_id, channel, created_at, source_file, source_line)"
    )
    outcomes = validate_table(con, "staged_tickets", "tickets", policy, AS_OF, None)
    (failed,) = [outcome for outcome in outcomes if not outcome.success and outcome.column == "channel"]
    assert "jane.doe@example.com" not in failed.message + failed.observed
    assert "mail [REDACTED:email]" in failed.message


def test_the_manifest_states_the_report_period(con, tmp_path, policy):
    prepare_warehouse(con)  # the warehouse's own ingest_log, empty
    # The period starts at the first ticket clock that is judged: an excluded clock does not count.
    con.execute(
        "CREATE TABLE ticket_sla AS SELECT * FROM (VALUES "
        "(TIMESTAMPTZ '2026-03-05 08:00:00+00', 'breached'), (TIMESTAMPTZ '2026-03-01 09:00:00+00', 'excluded'), "
        "(TIMESTAMPTZ '2026-03-02 10:30:00+00', 'achieved')) AS t(started_at, state)"
    )
    manifest = build_manifest(
        con, run_id="r1", as_of=AS_OF, policy=policy, exports_dir=tmp_path, out_dir=tmp_path, outputs=[]
    )
    assert manifest["period"] == {"start": "2026-03-02T10:30:00Z", "end": "2026-11-01T00:00:00Z"}
