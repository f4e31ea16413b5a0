"""Report periods (--period): the items whose clock started in [start, end), UTC, judged as of the period's end."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import write

from compliance.evidence.periods import PeriodError, parse_period, restrict_to_period
from pipelines.cli import main

# Account-and-billing tickets of the free plan (SUP-ACCT-STD: first response in 24 h on the 24/7 calendar) around
# the boundaries of September 2026: one second before it, exactly at its start, one second before its end,
# exactly at its end (October's). None is answered.
TICKETS = """ticket_id,channel,plan,created_at,first_response_at,resolved_at,status
BEFORE,account_billing,free,2026-08-31T23:59:59Z,,,open
AT_START,account_billing,free,2026-09-01T00:00:00Z,,,open
LAST_SECOND,account_billing,free,2026-09-30T23:59:59Z,,,open
AT_END,account_billing,free,2026-10-01T00:00:00Z,,,open
"""
EVENTS = """ticket_id,occurred_at,event_type,actor,new_status
BEFORE,2026-09-01T10:00:00Z,public_reply,agent,
AT_START,2026-09-01T10:00:00Z,public_reply,agent,
AT_END,2026-10-01T10:00:00Z,public_reply,agent,
"""


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-Q3", "2026-07-01", "2026-10-01"),
        ("2026-Q4", "2026-10-01", "2027-01-01"),
        ("2026-09", "2026-09-01", "2026-10-01"),
        ("2026-12", "2026-12-01", "2027-01-01"),
        ("2026", "2026-01-01", "2027-01-01"),
        ("2026-07-01..2026-09-30", "2026-07-01", "2026-10-01"),
        ("2026-09-15..2026-09-15", "2026-09-15", "2026-09-16"),
    ],
)
def test_periods_are_half_open_in_utc(text, start, end):
    period = parse_period(text)
    assert (period.start, period.end) == (
        datetime.fromisoformat(start).replace(tzinfo=UTC),
        datetime.fromisoformat(end).replace(tzinfo=UTC),
    )
    assert period.label == text


@pytest.mark.parametrize("text", ["2026-13", "2026-Q5", "Q3", "2026-09-31..2026-10-01", "2026-10-01..2026-09-01", "x"])
def test_a_value_naming_no_period_is_refused(text):
    with pytest.raises(PeriodError, match="--period"):
        parse_period(text)


def test_default_as_of_is_the_end_or_now_when_earlier():
    period = parse_period("2026-09")
    assert period.default_as_of(datetime(2026, 12, 1, tzinfo=UTC)) == datetime(2026, 10, 1, tzinfo=UTC)
    assert period.default_as_of(datetime(2026, 9, 10, tzinfo=UTC)) == datetime(2026, 9, 10, tzinfo=UTC)


def test_the_views_keep_the_period_and_its_followers(con):
    con.execute(
        "CREATE TABLE staged_tickets AS SELECT 'IN' AS ticket_id, TIMESTAMPTZ '2026-09-01 00:00:00+00' AS created_at"
    )
    con.execute("INSERT INTO staged_tickets VALUES ('OUT', TIMESTAMPTZ '2026-08-31 23:59:59+00')")
    con.execute("CREATE TABLE staged_ticket_events AS SELECT * FROM (VALUES ('IN'), ('OUT')) v(ticket_id)")
    con.execute("CREATE TABLE staged_retention_inventory AS SELECT 'R1' AS record_id")
    restrict_to_period(con, parse_period("2026-09"))
    assert con.execute("SELECT ticket_id FROM staged_tickets").fetchall() == [("IN",)]
    assert con.execute("SELECT ticket_id FROM staged_ticket_events").fetchall() == [("IN",)]
    assert con.execute("SELECT count(*) FROM staged_retention_inventory").fetchall() == [(1,)]  # a snapshot
    assert con.execute("SELECT rowid FROM staged_tickets").fetchall() == [(0,)]  # the clocks key on rowid


@pytest.fixture(scope="module")
def september(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("periods")
    write(root / "exports" / "tickets.csv", TICKETS)
    write(root / "exports" / "ticket_events.csv", EVENTS)
    assert main(["run", "--exports", str(root / "exports"), "--out", str(root / "out"), "--period", "2026-09"]) == 0
    return root / "out"


def test_a_month_judges_the_clocks_started_in_it_as_of_its_end(september):
    clocks = [row for row in read_csv(september / "evidence" / "ticket_sla.csv") if row["rule_id"] == "SUP-ACCT-STD"]
    # one second before the period and exactly at its end are other months' items; the start is included
    assert {row["record_id"] for row in clocks} == {"AT_START", "LAST_SECOND"}
    states = {row["record_id"]: row["state"] for row in clocks}
    # judged as of 2026-10-01T00:00:00Z: answered in 10 h; the last second's 24 hours are still running
    assert states == {"AT_START": "achieved", "LAST_SECOND": "active"}
    violations = read_csv(september / "evidence" / "violations.csv")
    assert not {"BEFORE", "AT_END"} & {row["record_id"] for row in violations}


def test_the_manifest_report_and_dashboard_state_the_period(september):
    manifest = json.loads((september / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["as_of"] == "2026-10-01T00:00:00Z"
    assert manifest["period"]["start"] == "2026-09-01T00:00:00Z"
    assert manifest["period"]["end"] == "2026-10-01T00:00:00Z"
    assert manifest["period_filter"]["label"] == "2026-09"
    report = (september / "compliance_report.html").read_text(encoding="utf-8")
    assert "2026-09: 2026-09-01 00:00:00 UTC to 2026-10-01 00:00:00 UTC (end excluded)" in report
    dashboard = (september / "sla_dashboard.html").read_text(encoding="utf-8")
    assert "version 2026-04-30 · period 2026-09 (items whose clock started in it)" in dashboard


def test_without_a_period_every_item_is_judged_and_the_manifest_says_so(tmp_path):
    write(tmp_path / "exports" / "tickets.csv", TICKETS)
    out = tmp_path / "out"
    assert (
        main(["run", "--exports", str(tmp_path / "exports"), "--out", str(out), "--as-of", "2026-11-01T00:00:00Z"]) == 0
    )
    clocks = {row["record_id"] for row in read_csv(out / "evidence" / "ticket_sla.csv")}
    assert clocks == {"BEFORE", "AT_START", "LAST_SECOND", "AT_END"}
    period = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["period_filter"]
    assert period == {"label": None, "items": "every item in the exports (no --period)"}


@pytest.mark.parametrize("value", ["2026-13", "last quarter"])
def test_a_bad_period_exits_2_with_one_line(tmp_path, capsys, value):
    write(tmp_path / "exports" / "tickets.csv", TICKETS)
    assert main(["run", "--exports", str(tmp_path / "exports"), "--out", str(tmp_path / "out"), "--period", value]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"compliance-report: --period {value!r}:")


def test_each_month_and_quarter_partition_writes_its_own_report_folder(september):
    """The Dagster partitions: a month's report in OUT/periods/2026-09/, the same evidence as `run --period`."""
    import dagster as dg

    from assets.partitions import monthly_report, quarterly_reports_job
    from assets.resources import ReporterSettings, Warehouse

    warehouse = september / "warehouse.duckdb"
    resources = {
        "settings": ReporterSettings(exports_dir=str(september.parent / "exports"), out_dir=str(september)),
        "warehouse": Warehouse(path=str(warehouse)),
    }
    before = (september / "evidence" / "ticket_sla.csv").read_bytes()
    assert dg.materialize([monthly_report], partition_key="2026-09-01", resources=resources).success
    month = september / "periods" / "2026-09"
    for name in ("ticket_sla.csv", "violations.csv", "metrics.csv", "verdicts.csv"):
        assert (month / "evidence" / name).read_bytes() == (september / "evidence" / name).read_bytes(), name
    assert json.loads((month / "manifest.json").read_text(encoding="utf-8"))["period_filter"]["label"] == "2026-09"
    assert main(["verify", str(month)]) == 0
    quarter_run = quarterly_reports_job.execute_in_process(
        partition_key="2026-07-01", resources=resources, instance=dg.DagsterInstance.ephemeral()
    )
    assert quarter_run.success
    quarter = read_csv(september / "periods" / "2026-Q3" / "evidence" / "ticket_sla.csv")
    assert {row["record_id"] for row in quarter} == {"BEFORE", "AT_START", "LAST_SECOND"}
    # the partitions read the warehouse and never rewrite the unpartitioned run's results
    assert (september / "evidence" / "ticket_sla.csv").read_bytes() == before


def test_incidents_start_at_their_start_or_schedule_and_vendor_rows_follow_their_record(con):
    con.execute(
        "CREATE TABLE staged_incidents AS SELECT * FROM (VALUES "
        "('STARTED', TIMESTAMPTZ '2026-09-10 00:00:00+00', NULL), "
        "('PLANNED', NULL, TIMESTAMPTZ '2026-09-20 00:00:00+00'), "
        "('LATER', NULL, TIMESTAMPTZ '2026-10-01 00:00:00+00')) v(incident_id, started_at, scheduled_start_at)"
    )
    con.execute(
        "CREATE TABLE staged_tickets AS SELECT 'T1' AS ticket_id, TIMESTAMPTZ '2026-08-01 00:00:00+00' AS created_at"
    )
    con.execute(
        "CREATE TABLE staged_vendor_sla AS SELECT * FROM (VALUES ('STARTED', 'incidents'), ('LATER', 'incidents'), "
        "('T1', 'tickets'), ('STARTED', 'tickets')) v(record_id, source)"
    )
    restrict_to_period(con, parse_period("2026-09"))
    assert con.execute("SELECT incident_id FROM staged_incidents ORDER BY ALL").fetchall() == [
        ("PLANNED",),
        ("STARTED",),
    ]
    # a vendor row keeps the period of the record it names, in the export it names
    assert con.execute("SELECT record_id, source FROM staged_vendor_sla").fetchall() == [("STARTED", "incidents")]


# Quarantined rows around September 2026: an unknown channel whose clock start parsed into the period (BAD_IN) or
# into August (BAD_OUT), and a clock start that does not parse (BAD_TS: not attributable to a period). Events
# quarantined for their own values follow their ticket: AT_START's is September's, BEFORE's August's, and the
# event of a ticket the export does not hold (GHOST) is not attributable.
QUARANTINED_TICKETS = """BAD_IN,nope,free,2026-09-10T10:00:00Z,,,open
BAD_OUT,nope,free,2026-08-10T10:00:00Z,,,open
BAD_TS,account_billing,free,yesterday,,,open
"""
QUARANTINED_EVENTS = """AT_START,not a time,public_reply,agent,
BEFORE,2026-09-02T10:00:00Z,no_such_event,agent,
GHOST,never,public_reply,agent,
"""


@pytest.fixture(scope="module")
def september_with_quarantine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("periods_quarantine")
    write(root / "exports" / "tickets.csv", TICKETS + QUARANTINED_TICKETS)
    write(root / "exports" / "ticket_events.csv", EVENTS + QUARANTINED_EVENTS)
    assert main(["run", "--exports", str(root / "exports"), "--out", str(root / "out"), "--period", "2026-09"]) == 0
    return root / "out"


def test_a_period_run_accounts_for_the_whole_files_and_gives_the_period_s_own_rows(september_with_quarantine):
    manifest = json.loads((september_with_quarantine / "manifest.json").read_text(encoding="utf-8"))
    assert "count its whole file" in manifest["row_accounting"]
    assert "not attributable to a period" in manifest["row_accounting"]
    inputs = {item["file"]: item for item in manifest["inputs"] if item["file"]}
    tickets, events = inputs["tickets.csv"], inputs["ticket_events.csv"]
    # the whole files: every row read is loaded or quarantined
    assert (tickets["rows_read"], tickets["rows_loaded"], tickets["rows_quarantined"]) == (7, 4, 3)
    assert (events["rows_read"], events["rows_loaded"], events["rows_quarantined"]) == (6, 3, 3)
    # the period's: AT_START and LAST_SECOND loaded, BAD_IN quarantined, BAD_TS not attributable
    assert tickets["in_period"] == {"rows_loaded": 2, "rows_quarantined": 1, "rows_quarantined_not_attributable": 1}
    # AT_START's event loaded and its bad event quarantined in the period; GHOST's not attributable
    assert events["in_period"] == {"rows_loaded": 1, "rows_quarantined": 1, "rows_quarantined_not_attributable": 1}
    report = (september_with_quarantine / "compliance_report.html").read_text(encoding="utf-8")
    coverage = report[report.index('id="coverage"') : report.index("Quarantined rows by reason")]
    assert "Quarantined, not attributable to a period" in coverage
    assert "count the whole files, not only the period's rows" in coverage
    row = coverage[coverage.index("<code>tickets.csv</code>") :]
    row = row[: row.index("</tr>")]
    assert [cell.split("<")[0] for cell in row.split('<td class="num">')[1:]] == ["7", "4", "3", "2", "1", "1"]


def test_without_a_period_the_accounting_is_of_the_whole_files_and_has_no_period_figures(tmp_path):
    write(tmp_path / "exports" / "tickets.csv", TICKETS + QUARANTINED_TICKETS)
    out = tmp_path / "out"
    assert main(["run", "--exports", str(tmp_path / "exports"), "--out", str(out), "--as-of", "2026-11-01"]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["row_accounting"].startswith("rows_read, rows_loaded and rows_quarantined of each input count")
    assert all("in_period" not in item for item in manifest["inputs"])
    assert "not attributable to a period" not in (out / "compliance_report.html").read_text(encoding="utf-8")
