"""Vendor-verdict reconciliation: hand-made vendor rows against the record's own times and our policy's clocks."""

from __future__ import annotations

import json

import pytest
from conftest import load_staged_tickets, ts, write

from compliance.rules import reconciliation
from compliance.rules.ticket_clocks import TICKET_SLA_COLUMNS

AS_OF = ts("2026-03-31 00:00")


def _vendor_rows(con, rows: list[tuple]) -> None:
    """staged_vendor_sla from (record_id, source, metric, vendor_due_at, vendor_met, vendor_status)."""
    con.execute(
        "CREATE OR REPLACE TABLE staged_vendor_sla (record_id VARCHAR, source VARCHAR, metric VARCHAR, "
        "vendor_due_at TIMESTAMPTZ, vendor_met BOOLEAN, vendor_status VARCHAR, vendor_field VARCHAR, "
        "source_file VARCHAR, source_line BIGINT)"
    )
    con.executemany(
        "INSERT INTO staged_vendor_sla VALUES (?, ?, ?, ?, ?, ?, 'made_sla', 'vendor_sla.csv', ?)",
        [[*row, line] for line, row in enumerate(rows, start=2)],
    )


def _our_clocks(con, rows: list[tuple]) -> None:
    """ticket_sla rows from (record_id, rule_id, metric, due_at, state)."""
    con.execute(f"CREATE OR REPLACE TABLE ticket_sla ({TICKET_SLA_COLUMNS})")
    con.executemany(
        "INSERT INTO ticket_sla (record_id, rule_id, metric, due_at, state, cycle) VALUES (?, ?, ?, ?, ?, 1)", rows
    )


def _reconciled(con) -> dict[str, dict]:
    cursor = con.execute("SELECT * FROM vendor_reconciliation")
    names = [column[0] for column in cursor.description]
    return {row[0]: dict(zip(names, row, strict=False)) for row in cursor.fetchall()}


@pytest.fixture
def reconciled(con):
    due = ts("2026-03-10 12:00")
    load_staged_tickets(
        con,
        [
            {
                "ticket_id": "AGREE",
                "channel": "sales",
                "created_at": ts("2026-03-01 09:00"),
                "resolved_at": ts("2026-03-09 10:00"),
            },
            {
                "ticket_id": "VENDOR-MET-LATE",
                "channel": "sales",
                "created_at": ts("2026-03-01 09:00"),
                "resolved_at": ts("2026-03-10 12:00:01"),
            },
            {
                "ticket_id": "VENDOR-MISSED-ON-TIME",
                "channel": "sales",
                "created_at": ts("2026-03-01 09:00"),
                "resolved_at": ts("2026-03-10 12:00"),
            },
            {
                "ticket_id": "OURS-DIFFER",
                "channel": "sales",
                "created_at": ts("2026-03-01 09:00"),
                "resolved_at": ts("2026-03-10 11:30"),
            },
            {"ticket_id": "OPEN-OVERDUE", "channel": "sales", "created_at": ts("2026-03-01 09:00")},
            {"ticket_id": "OPEN-RUNNING", "channel": "sales", "created_at": ts("2026-03-25 09:00")},
            {
                "ticket_id": "NO-VERDICT",
                "channel": "sales",
                "created_at": ts("2026-03-01 09:00"),
                "resolved_at": ts("2026-03-02 09:00"),
            },
            {
                "ticket_id": "NO-DUE-NO-CLOCK",
                "channel": "sales",
                "created_at": ts("2026-03-01 09:00"),
                "resolved_at": ts("2026-03-02 09:00"),
            },
            {
                "ticket_id": "LATE-AFTER-AS-OF",
                "channel": "sales",
                "created_at": ts("2026-03-01 09:00"),
                "resolved_at": ts("2026-04-02 09:00"),
            },
        ],
    )
    _our_clocks(
        con,
        [
            ("AGREE", "R-RES", "resolution", due, "achieved"),
            ("VENDOR-MET-LATE", "R-RES", "resolution", due, "breached"),
            ("VENDOR-MISSED-ON-TIME", "R-RES", "resolution", due, "achieved"),
            ("OURS-DIFFER", "R-RES", "resolution", ts("2026-03-10 11:00"), "breached"),
            ("OPEN-OVERDUE", "R-RES", "resolution", due, "breached"),
            ("NO-VERDICT", "R-RES", "resolution", due, "achieved"),
            # a first-response clock never answers for the resolution
            ("NO-DUE-NO-CLOCK", "R-FR", "first_response", due, "breached"),
        ],
    )
    _vendor_rows(
        con,
        [
            ("AGREE", "tickets", "resolution", due, True, "true"),
            ("VENDOR-MET-LATE", "tickets", "resolution", due, True, "true"),
            ("VENDOR-MISSED-ON-TIME", "tickets", "resolution", due, False, "false"),
            ("OURS-DIFFER", "tickets", "resolution", due, True, "true"),
            ("OPEN-OVERDUE", "tickets", "resolution", due, False, "false"),
            ("OPEN-RUNNING", "tickets", "resolution", ts("2026-04-24 09:00"), None, "true (still open)"),
            ("NO-VERDICT", "tickets", "resolution", None, None, ""),
            ("NO-DUE-NO-CLOCK", "tickets", "resolution", None, True, "true"),
            ("NOT-LOADED", "tickets", "resolution", due, True, "true"),
            ("LATE-AFTER-AS-OF", "tickets", "resolution", ts("2026-03-20 09:00"), False, "false"),
        ],
    )
    reconciliation.evaluate(con, AS_OF, "the servicenow export")
    return _reconciled(con)


def test_vendor_verdict_agreeing_with_both_readings(reconciled):
    row = reconciled["AGREE"]
    assert (row["vendor_met"], row["recomputed_met"], row["our_state"], row["agrees"]) == (True, True, "achieved", True)
    assert row["our_rule_id"] == "R-RES" and row["not_comparable_reason"] is None
    assert row["explanation"].startswith("The servicenow export says the resolution of ticket AGREE was met")
    assert row["explanation"].endswith("Agrees.")


def test_vendor_met_but_resolved_one_second_after_its_own_due_time(reconciled):
    row = reconciled["VENDOR-MET-LATE"]
    assert (row["recomputed_met"], row["our_state"], row["agrees"]) == (False, "breached", False)
    assert "1 s after the vendor's due time, so missed" in row["explanation"]
    assert (
        "Disagrees: the record's own times against the vendor's due time say missed and our policy says missed."
        in row["explanation"]
    )


def test_vendor_missed_but_resolved_at_the_due_instant(reconciled):
    row = reconciled["VENDOR-MISSED-ON-TIME"]
    assert (row["vendor_met"], row["recomputed_met"], row["agrees"]) == (False, True, False)
    assert "at or before the vendor's due time, so met" in row["explanation"]


def test_our_policy_alone_disagreeing_is_a_disagreement(reconciled):
    row = reconciled["OURS-DIFFER"]
    assert (row["recomputed_met"], row["our_state"], row["agrees"]) == (True, "breached", False)
    assert row["explanation"].endswith("Disagrees: our policy says missed.")
    assert "Our policy (R-RES): breached, due 2026-03-10 11:00 UTC" in row["explanation"]


def test_open_record_past_the_vendor_due_time_is_missed_by_recomputation(reconciled):
    row = reconciled["OPEN-OVERDUE"]
    assert (row["stopped_at"], row["recomputed_met"], row["agrees"]) == (None, False, True)
    assert "no resolution by the as-of time 2026-03-31 00:00 UTC" in row["explanation"]


def test_a_stop_after_the_as_of_time_has_not_happened_yet(reconciled):
    row = reconciled["LATE-AFTER-AS-OF"]
    assert (row["stopped_at"], row["recomputed_met"], row["agrees"]) == (None, False, True)


@pytest.mark.parametrize(
    "record_id, reason",
    [
        ("OPEN-RUNNING", "no verdict yet: still open before the vendor's due time at the as-of time"),
        ("NO-VERDICT", "the export states no verdict"),
        ("NO-DUE-NO-CLOCK", "no vendor due time and no clock of our policy on this resolution"),
        ("NOT-LOADED", "the record is not loaded (quarantined, or absent from the tickets export)"),
    ],
)
def test_rows_that_cannot_be_compared_say_why(reconciled, record_id, reason):
    row = reconciled[record_id]
    assert row["agrees"] is None
    assert row["not_comparable_reason"] == reason
    assert row["explanation"].endswith(f"Not compared: {reason}.")


def test_agreement_rate_per_metric(con, reconciled):
    cursor = con.execute("SELECT * FROM vendor_reconciliation_metrics")
    names = [column[0] for column in cursor.description]
    (row,) = [dict(zip(names, values, strict=False)) for values in cursor.fetchall()]
    assert (row["source"], row["metric"], row["vendor_rows"]) == ("tickets", "resolution", 10)
    assert (row["compared"], row["agreeing"], row["disagreeing"]) == (6, 3, 3)
    assert (row["vendor_met_ours_missed"], row["vendor_missed_ours_met"]) == (2, 1)
    assert row["agreement_pct"] == pytest.approx(50.0)
    assert row["not_comparable"] == 4
    assert "1 the record is not loaded" in row["not_comparable_reasons"]


def test_ticket_stops_come_from_events_when_the_columns_are_empty(con):
    load_staged_tickets(con, [{"ticket_id": "T1", "channel": "sales", "created_at": ts("2026-03-01 09:00")}])
    con.execute(
        "CREATE TABLE staged_ticket_events (ticket_id VARCHAR, occurred_at TIMESTAMPTZ, event_type VARCHAR, "
        "actor VARCHAR, new_status VARCHAR, source_file VARCHAR, source_line BIGINT)"
    )
    con.executemany(
        "INSERT INTO staged_ticket_events VALUES ('T1', ?, ?, NULL, ?, 'ticket_events.csv', ?)",
        [
            (ts("2026-03-01 09:01"), "auto_ack", None, 2),
            (ts("2026-03-01 10:00"), "public_reply", None, 3),
            (ts("2026-03-02 10:00"), "status_change", "solved", 4),
            (ts("2026-03-03 10:00"), "status_change", "open", 5),  # reopened ...
            (ts("2026-03-04 10:00"), "status_change", "solved", 6),  # ... and solved again
        ],
    )
    _vendor_rows(
        con,
        [
            ("T1", "tickets", "first_response", ts("2026-03-01 09:30"), True, "Within SLA"),
            ("T1", "tickets", "resolution", ts("2026-03-03 12:00"), True, "Within SLA"),
            ("T1", "tickets", "acknowledgement", ts("2026-03-01 09:05"), True, "Within SLA"),
        ],
    )
    reconciliation.evaluate(con, AS_OF)
    rows = {
        row[0]: row[1:]
        for row in con.execute(
            "SELECT metric, stopped_at, recomputed_met, agrees FROM vendor_reconciliation"
        ).fetchall()
    }
    assert rows["first_response"] == (ts("2026-03-01 10:00"), False, False)
    assert rows["resolution"] == (ts("2026-03-04 10:00"), False, False)  # the last solve of a ticket ending solved
    assert rows["acknowledgement"] == (ts("2026-03-01 09:01"), True, True)


def test_a_ticket_solved_then_closed_stops_at_the_solve_as_the_clocks_read_it(con):
    # solved -> closed moves between terminal statuses: no new solve (compliance.rules.ticket_clocks.event_stops_sql)
    load_staged_tickets(con, [{"ticket_id": "T1", "channel": "sales", "created_at": ts("2026-03-01 09:00")}])
    con.execute(
        "CREATE TABLE staged_ticket_events (ticket_id VARCHAR, occurred_at TIMESTAMPTZ, event_type VARCHAR, "
        "actor VARCHAR, new_status VARCHAR, source_file VARCHAR, source_line BIGINT)"
    )
    con.executemany(
        "INSERT INTO staged_ticket_events VALUES ('T1', ?, 'status_change', NULL, ?, 'ticket_events.csv', ?)",
        [(ts("2026-03-02 10:00"), "solved", 2), (ts("2026-03-05 10:00"), "closed", 3)],
    )
    _vendor_rows(con, [("T1", "tickets", "resolution", ts("2026-03-03 12:00"), True, "Within SLA")])
    reconciliation.evaluate(con, AS_OF)
    assert con.execute("SELECT stopped_at, recomputed_met, agrees FROM vendor_reconciliation").fetchall() == [
        (ts("2026-03-02 10:00"), True, True)
    ]


def test_incident_acknowledgement_against_the_vendor_due_time(con):
    con.execute(
        "CREATE TABLE staged_incidents (incident_id VARCHAR, kind VARCHAR, severity VARCHAR, started_at TIMESTAMPTZ, "
        "acknowledged_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ, source_file VARCHAR, source_line BIGINT)"
    )
    con.execute(
        "INSERT INTO staged_incidents VALUES ('P1', 'incident', 'high', ?, ?, NULL, 'incidents.csv', 2)",
        [ts("2026-03-01 09:00"), ts("2026-03-01 09:20")],
    )
    _vendor_rows(con, [("P1", "incidents", "acknowledgement", ts("2026-03-01 09:15"), True, "acknowledged in time")])
    reconciliation.evaluate(con, AS_OF)
    ((recomputed, our_state, agrees, explanation),) = con.execute(
        "SELECT recomputed_met, our_state, agrees, explanation FROM vendor_reconciliation"
    ).fetchall()
    assert (recomputed, our_state, agrees) == (False, None, False)
    assert "No clock of our policy measures this acknowledgement." in explanation


def test_without_vendor_verdicts_the_tables_are_empty(con):
    reconciliation.evaluate(con, AS_OF)
    assert con.execute("SELECT count(*) FROM vendor_reconciliation").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM vendor_reconciliation_metrics").fetchall() == [(0,)]


def test_conversion_quarantine_joins_the_run_quarantine_once(con, tmp_path):
    con.execute(
        "CREATE TABLE quarantine (source_file VARCHAR, line BIGINT, record_id VARCHAR, reason_code VARCHAR, reason VARCHAR)"
    )
    con.execute("INSERT INTO quarantine VALUES ('tickets.csv', 5, 'T5', 'bad_timestamp', 'created_at: not ISO')")
    write(
        tmp_path / "conversion_quarantine.csv",
        "source_file,line,record_id,reason_code,reason\n"
        'cases.csv,7,C7,bad_timestamp,"OPEN_DT: not a timestamp this format knows: 13/45/2015, 9 AM"\n',
    )
    assert reconciliation.load_conversion_quarantine(con, tmp_path) == 1
    assert reconciliation.load_conversion_quarantine(con, tmp_path) == 1  # a rerun replaces its own rows
    rows = con.execute(
        "SELECT source_file, line, record_id, reason_code FROM quarantine ORDER BY source_file"
    ).fetchall()
    assert rows == [("cases.csv", 7, "C7", "bad_timestamp"), ("tickets.csv", 5, "T5", "bad_timestamp")]


def test_conversion_record_for_the_manifest(tmp_path):
    assert reconciliation.conversion_record(tmp_path) is None
    write(
        tmp_path / "conversion.json",
        json.dumps(
            {
                "format": "open311",
                "format_version": "open311 crm case export csv",
                "outputs": ["tickets.csv"],
                "inputs": [{"file": "cases.csv", "rows_read": 3, "rows_converted": 2, "rows_quarantined": 1}],
                "notes": [],
            }
        ),
    )
    record = reconciliation.conversion_record(tmp_path)
    assert record["format"] == "open311" and record["inputs"][0]["rows_quarantined"] == 1


def test_every_disagreement_falls_in_one_explained_class(con, reconciled):
    classes = con.execute("SELECT class, rows, meaning FROM vendor_disagreement_classes ORDER BY class").fetchall()
    # VENDOR-MET-LATE: resolved 1 s after the vendor's due time; VENDOR-MISSED-ON-TIME: resolved at it;
    # OURS-DIFFER: on time by the vendor's due time, late by our policy's earlier one
    assert [(name, rows) for name, rows, _ in classes] == [
        ("vendor_met_own_due_missed", 1),
        ("vendor_met_policy_missed", 1),
        ("vendor_missed_own_due_met", 1),
    ]
    assert (
        sum(rows for _, rows, _ in classes)
        == con.execute("SELECT count(*) FROM vendor_reconciliation WHERE NOT agrees").fetchone()[0]
    )
    assert all(meaning for _, _, meaning in classes)


def test_section_headlines_agreement_and_lists_findings_escaped(con, reconciled):
    from reports.reconciliation_section import ReconciliationData, reconciliation_section

    conversion = {
        "format": "servicenow",
        "format_version": "servicenow table export",
        "inputs": [
            {
                "file": "incident.csv",
                "variant": "table export",
                "rows_read": 10,
                "rows_converted": 10,
                "rows_quarantined": 0,
                "encoding": "cp1252",
                "replaced_characters": 2,
            }
        ],
        "notes": [
            "consistency: 1 record with resolved_at after closed_at (<INC1>); reading: resolved_at kept as written",
            "made_sla is not read as a verdict",
        ],
    }
    html = str(reconciliation_section(ReconciliationData.from_warehouse(con), conversion))
    headline = " ".join(html.split('id="vendor-agreement"', 1)[1].split("</ul>", 1)[0].split())
    assert (
        "tickets resolution: the vendor agrees on 3 of 6</strong> (50.0% (3 / 6)), disagrees on 3; 4 not compared"
        in (headline)
    )
    assert (
        "tickets resolution, against the vendor's own due times (8 rows): our policy's verdict is the one the "
        "vendor's due time gives on 4 of 5; our due time is the vendor's on 4 of 5." in headline
    )
    findings = html.split('id="consistency-findings"', 1)[1].split("</ul>", 1)[0]
    assert "1 record with resolved_at after closed_at (&lt;INC1&gt;); reading: resolved_at kept as written" in findings
    assert "made_sla is not read as a verdict" not in findings and "made_sla is not read as a verdict" in html
    assert "incident.csv: 2 character(s) did not decode in cp1252 and were replaced by U+FFFD" in findings
    assert html.index('id="vendor-agreement"') < html.index("Why they disagree") < html.index("Disagreements (")


def test_due_times_are_compared_even_without_a_vendor_verdict(con, reconciled):
    (row,) = con.execute("SELECT * FROM vendor_due_agreement").fetchall()
    # 8 rows carry a vendor due time (NO-VERDICT and NO-DUE-NO-CLOCK do not); 5 of them have a clock of ours
    # (AGREE, VENDOR-MET-LATE, VENDOR-MISSED-ON-TIME, OPEN-OVERDUE due at the vendor's time; OURS-DIFFER an hour
    # earlier); the vendor's due time on the record's times gives our verdict on all but OURS-DIFFER.
    assert row == ("tickets", "resolution", 8, 5, 4, 5, 4)


def test_section_headline_of_an_export_with_due_times_only(con):
    from reports.reconciliation_section import ReconciliationData, reconciliation_section

    due = ts("2026-03-10 12:00")
    load_staged_tickets(
        con,
        [
            {
                "ticket_id": "D1",
                "channel": "sales",
                "created_at": ts("2026-03-01 09:00"),
                "resolved_at": ts("2026-03-09"),
            }
        ],
    )
    _our_clocks(con, [("D1", "R-RES", "resolution", due, "achieved")])
    _vendor_rows(con, [("D1", "tickets", "resolution", due, None, "")])  # a 311 portal's due date: no verdict
    reconciliation.evaluate(con, AS_OF)
    html = str(reconciliation_section(ReconciliationData.from_warehouse(con), None))
    headline = " ".join(html.split('id="vendor-agreement"', 1)[1].split("</ul>", 1)[0].split())
    assert (
        "tickets resolution: no vendor verdict to compare</strong> (1 vendor row: 1 the export states no verdict"
        in (headline)
    )
    assert (
        "our policy's verdict is the one the vendor's due time gives on 1 of 1; our due time is the vendor's on 1 of 1"
        in (headline)
    )
