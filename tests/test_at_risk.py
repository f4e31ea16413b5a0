"""At-risk items in every domain with a clock (issue 17 item 6): privacy completions, security embargoes and
escalations beside the ticket clocks in evidence/at_risk.csv and the report, with the true total."""

from __future__ import annotations

from dataclasses import replace

import polars as pl
from conftest import ts, write
from test_reports import _data

from compliance.evidence.at_risk import AT_RISK_TABLE, combine_at_risk
from compliance.evidence.summaries import AT_RISK_SHOWN, _at_risk, _at_risk_total
from compliance.ingest.staging import ingest_source
from compliance.rules.registry import evaluate_step
from compliance.rules.ticket_clocks import evaluate_ticket_clocks
from reports.compliance_report import render_compliance_report

AS_OF = ts("2026-01-20 00:00")
REPORTS = (
    "report_id,received_at,acknowledged_at,timeline_sent_at,fixed_at,disclosed_at,embargo_extended_until\n"
    # acknowledged and timeline sent: only the 90-day embargo (CAL-247) is still open, due 2026-04-10 12:00
    "SR1,2026-01-10T12:00:00Z,2026-01-10T13:00:00Z,2026-01-11T12:00:00Z,,,\n"
    # disclosed: nothing open
    "SR2,2026-01-10T12:00:00Z,2026-01-10T13:00:00Z,2026-01-11T12:00:00Z,2026-01-12T00:00:00Z,2026-01-13T00:00:00Z,\n"
)
PRIVACY = (
    "request_id,request_type,received_at,first_response_at,completed_at,extended,extension_notified_at,status\n"
    "PR1,erasure,2026-01-15T00:00:00Z,2026-01-15T06:00:00Z,,false,,open\n"
)
TICKETS = (
    "ticket_id,channel,plan,created_at,first_response_at,status,escalated_at,senior_reviewed_at\n"
    "T1,technical_support,plan_2,2026-01-19T23:00:00Z,2026-01-19T23:30:00Z,open,2026-01-19T23:40:00Z,\n"
)


def _judged(con, tmp_path, policy):
    exports = tmp_path / "exports"
    write(exports / "security_reports.csv", REPORTS)
    write(exports / "privacy_requests.csv", PRIVACY)
    write(exports / "tickets.csv", TICKETS)
    for source in ("security_reports", "privacy_requests", "tickets", "waivers"):
        ingest_source(con, source, exports, policy)
    evaluate_ticket_clocks(con, policy, AS_OF)
    for step in ("security", "privacy", "status", "retention"):
        evaluate_step(con, step, policy, AS_OF)
    combine_at_risk(con, policy, AS_OF)
    return con


def test_open_items_of_every_domain_are_at_risk_beside_the_ticket_clocks(con, tmp_path, policy):
    _judged(con, tmp_path, policy)
    rows = con.execute(
        f"SELECT domain, rule_id, record_id, metric, due_at, remaining_seconds, state FROM {AT_RISK_TABLE}"
    ).fetchall()
    by_rule = {(domain, rule_id, record_id): rest for domain, rule_id, record_id, *rest in rows}
    # the embargo: 90 days of 24/7 time from 2026-01-10 12:00; 80 days 12 h left at the as-of time
    assert by_rule[("security", "SEC-EMBARGO", "SR1")] == [
        "security_embargo",
        ts("2026-04-10 12:00"),
        80 * 86400 + 12 * 3600,
        "active",
    ]
    assert ("security", "SEC-EMBARGO", "SR2") not in by_rule  # disclosed
    assert not any(key[1] in ("SEC-ACK", "SEC-TIMELINE") for key in by_rule)  # achieved, not at risk
    completion = by_rule[("privacy", "PRIV-COMPLETE", "PR1")]
    assert completion[0] == "privacy_completion" and completion[3] == "active"
    assert completion[2] == int((completion[1] - AS_OF).total_seconds())
    # the escalation (ESC-REVIEW) is a ticket clock, in its calendar's open time
    assert any(domain == "tickets" and rule_id == "ESC-REVIEW" for domain, rule_id, _ in by_rule)
    remaining = [row[5] for row in rows]
    assert remaining == sorted(remaining)  # one order across the domains: fewest seconds left first


def test_a_domain_without_data_leaves_no_open_item_of_an_earlier_run(con, tmp_path, policy):
    _judged(con, tmp_path, policy)
    con.execute("DROP TABLE staged_security_reports")
    evaluate_step(con, "security", policy, AS_OF)
    combine_at_risk(con, policy, AS_OF)
    domains = {row[0] for row in con.execute(f"SELECT DISTINCT domain FROM {AT_RISK_TABLE}").fetchall()}
    assert "security" not in domains and "privacy" in domains


def test_the_report_counts_every_row_of_the_evidence_file(con, policy):
    con.execute(
        f"""CREATE TABLE {AT_RISK_TABLE} AS
            SELECT 'R' || lpad(i::VARCHAR, 2, '0') AS record_id, 'SEC-EMBARGO' AS rule_id, 'security' AS domain,
                   TIMESTAMPTZ '2026-02-01 00:00:00+00' + to_seconds(i) AS due_at, 1000 + i AS remaining_seconds
            FROM range(58) t(i)"""
    )
    shown, total = _at_risk(con), _at_risk_total(con)
    assert (shown.height, total) == (AT_RISK_SHOWN, 58)
    page = render_compliance_report(replace(_data(policy, hostile=False), at_risk=shown, at_risk_total=total))
    section = page[page.index('<section id="at-risk">') : page.index('<section id="waivers">')]
    assert "Showing 50 of 58 open clocks" in section
    assert section.count("<tr><td") == 50 and "<td>security</td>" in section


def test_without_a_total_the_report_counts_the_rows_it_was_given(policy):
    frame = pl.DataFrame({"record_id": ["A", "B"], "rule_id": ["X", "X"], "remaining_seconds": [5, 6]})
    page = render_compliance_report(replace(_data(policy, hostile=False), at_risk=frame))
    assert "Showing 2 of 2 open clocks" in page
