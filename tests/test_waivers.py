"""Waivers (issue 17 item 3): an approved exception makes an item ``waived`` (out of the denominator, not a
violation); a waiver that cannot apply is refused with its reason and counted, never dropped."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import metric_of, ts, violations_of, write

from compliance.evidence.files import EVIDENCE_FILES, _csv_copy
from compliance.evidence.waivers import combine_waivers, waiver_counts
from compliance.ingest.contract import SOURCES
from compliance.ingest.staging import ingest_source
from compliance.rules.registry import evaluate_step
from compliance.rules.ticket_clocks import evaluate_ticket_clocks

AS_OF = ts("2026-01-20 00:00")
SECOND = timedelta(seconds=1)
WAIVER_HEADER = "record_id,rule_id,reason,approved_by,approved_at,expires_at\n"
# Six security reports received 2026-01-10 12:00 and never acknowledged: each a SEC-ACK breach at AS_OF (24 h).
REPORTS = "report_id,received_at,acknowledged_at,timeline_sent_at,fixed_at,disclosed_at,embargo_extended_until\n" + (
    "".join(f"R{n},2026-01-10T12:00:00Z,,,,,\n" for n in range(1, 7))
)
WAIVERS = WAIVER_HEADER + (
    "R1,SEC-ACK,Reporter asked us to wait,Dana Ops,2026-01-15T00:00:00Z,\n"
    "R2,SEC-ACK,No approver,,2026-01-15T00:00:00Z,\n"
    "R3,SEC-ACK,Approved one second after the as-of time,Dana Ops,2026-01-20T00:00:01Z,\n"
    "R4,SEC-ACK,Expires at the as-of time,Dana Ops,2026-01-15T00:00:00Z,2026-01-20T00:00:00Z\n"
    "R5,SEC-ACK,Expires one second after the as-of time,Dana Ops,2026-01-15T00:00:00Z,2026-01-20T00:00:01Z\n"
    "R6,SEC-ACK,Approved at the as-of time,Dana Ops,2026-01-20T00:00:00Z,\n"
    "R1,SEC-ACK,The same waiver again,Lee Legal,2026-01-16T00:00:00Z,\n"
    "NO-SUCH-REPORT,SEC-ACK,Unknown record,Dana Ops,2026-01-15T00:00:00Z,\n"
    "R2,SEC-NOPE,Unknown rule,Dana Ops,2026-01-15T00:00:00Z,\n"
    "PR1,PRIV-RESP,No privacy export in this run,Dana Ops,2026-01-15T00:00:00Z,\n"
    "R2,SEC-TIMELINE,,Dana Ops,2026-01-15T00:00:00Z,\n"
)


def _ingest(con, exports: Path, policy, *sources: str) -> None:
    for source in sources:
        ingest_source(con, source, exports, policy)


def _waivers(con) -> dict[int, tuple[str, str | None]]:
    return {
        line: (outcome, refusal)
        for line, outcome, refusal in con.execute(
            "SELECT source_line, outcome, refusal FROM waivers ORDER BY source_line"
        ).fetchall()
    }


@pytest.fixture()
def judged(con, tmp_path, policy):
    exports = tmp_path / "exports"
    write(exports / "security_reports.csv", REPORTS)
    write(exports / "waivers.csv", WAIVERS)
    _ingest(con, exports, policy, "security_reports", "waivers")
    evaluate_step(con, "security", policy, AS_OF)
    combine_waivers(con, policy, AS_OF)
    return con


def test_waivers_are_an_optional_source_of_the_contract():
    source = SOURCES["waivers"]
    assert [column.name for column in source.columns] == [
        "record_id",
        "rule_id",
        "reason",
        "approved_by",
        "approved_at",
        "expires_at",
    ]
    assert source.required == ("record_id", "rule_id") and not source.unique


def test_each_refusal_has_its_reason_and_every_row_is_counted(judged):
    assert _waivers(judged) == {
        2: ("applied", None),
        3: ("refused", "no approver"),
        4: ("refused", "approved 2026-01-20 00:00:01 UTC, after the as-of time 2026-01-20 00:00 UTC"),
        # expires_at <= as-of: refused as expired (never applied to part of the period)
        5: ("refused", "expired 2026-01-20 00:00 UTC, by the as-of time 2026-01-20 00:00 UTC"),
        6: ("applied", None),
        7: ("applied", None),  # approved at the as-of instant itself
        8: ("refused", "duplicate of the waiver in waivers.csv line 2"),
        9: ("refused", "unknown record: rule SEC-ACK has no item NO-SUCH-REPORT"),
        10: ("refused", "unknown rule ID SEC-NOPE"),
        11: ("refused", "rule PRIV-RESP was not judged in this run (no data)"),
        12: ("refused", "no reason given"),
    }
    assert waiver_counts(judged) == {"applied": 3, "refused": 8}


def test_a_waived_item_is_no_violation_and_leaves_the_denominator(judged):
    assert set(violations_of(judged, "SEC-ACK", domain="security")) == {"R2", "R3", "R4"}
    figures = metric_of(judged, "SEC-ACK", domain="security")
    assert (figures["achieved"], figures["breached"], figures["excluded"], figures["waived"]) == (0, 3, 0, 3)
    assert figures["denominator"] == 3
    monthly = metric_of(judged, "SEC-ACK", "2026-01", domain="security")
    assert (monthly["breached"], monthly["waived"], monthly["denominator"]) == (3, 3, 3)
    # a refused waiver changes nothing: R2's SEC-TIMELINE item (waiver without a reason) is judged as before
    assert metric_of(judged, "SEC-TIMELINE", domain="security")["waived"] == 0


def test_waivers_evidence_file_lists_applied_and_refused(judged, tmp_path):
    stem, order_by, parquet = EVIDENCE_FILES["waivers"]
    assert (stem, parquet) == ("waivers", False)
    path = tmp_path / "waivers.csv"
    judged.execute(_csv_copy(judged, "waivers", order_by, path))
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["record_id"], row["outcome"]) for row in rows][:2] == [("R1", "applied"), ("R2", "refused")]
    assert rows[0]["approved_by"] == "Dana Ops" and rows[0]["reason"] == "Reporter asked us to wait"
    assert rows[0]["approved_at"] == "2026-01-15T00:00:00Z"
    assert len(rows) == 11


def test_no_waivers_export_gives_an_empty_file_and_unchanged_figures(con, tmp_path, policy):
    exports = tmp_path / "exports"
    write(exports / "security_reports.csv", REPORTS)
    _ingest(con, exports, policy, "security_reports", "waivers")
    evaluate_step(con, "security", policy, AS_OF)
    combine_waivers(con, policy, AS_OF)
    assert waiver_counts(con) == {"applied": 0, "refused": 0}
    figures = metric_of(con, "SEC-ACK", domain="security")
    assert (figures["breached"], figures["waived"], figures["denominator"]) == (6, 0, 6)


TICKETS = (
    "ticket_id,channel,plan,created_at,first_response_at,status\n"
    "T1,technical_support,free,2026-01-05T09:00:00Z,,open\n"
    "T2,technical_support,free,2026-01-05T09:00:00Z,,open\n"
    "T3,technical_support,free,2026-02-05T09:00:00Z,,open\n"  # created after the as-of time: excluded
)


def test_a_waived_ticket_clock_has_state_waived_in_ticket_sla(con, tmp_path, policy):
    exports = tmp_path / "exports"
    write(exports / "tickets.csv", TICKETS)
    write(
        exports / "waivers.csv",
        WAIVER_HEADER
        + "T1,SUP-TECH-STD,Outage credit agreed,Dana Ops,2026-01-10T00:00:00Z,\n"
        + "T3,SUP-TECH-STD,Not judged yet,Dana Ops,2026-01-10T00:00:00Z,\n",
    )
    _ingest(con, exports, policy, "tickets", "waivers")
    evaluate_ticket_clocks(con, policy, AS_OF)
    states = dict(
        con.execute(
            "SELECT record_id, state || '/' || breached FROM ticket_sla WHERE rule_id = 'SUP-TECH-STD'"
        ).fetchall()
    )
    assert states == {"T1": "waived/false", "T2": "breached/true", "T3": "excluded/false"}
    assert set(violations_of(con, "SUP-TECH-STD", domain="tickets")) == {"T2"}
    figures = metric_of(con, "SUP-TECH-STD", domain="tickets")
    assert (figures["breached"], figures["waived"], figures["excluded"], figures["denominator"]) == (1, 1, 1, 1)
    combine_waivers(con, policy, AS_OF)
    assert _waivers(con) == {
        2: ("applied", None),
        3: ("refused", "the item is excluded from rule SUP-TECH-STD (not judged)"),
    }


def test_the_report_lists_each_waiver_with_approver_and_reason(judged, policy):
    from dataclasses import replace

    from test_reports import _data

    from reports.compliance_report import render_compliance_report

    judged.execute(
        "UPDATE waivers SET reason = '<script>alert(1)</script> hold' WHERE source_line = 2"
    )  # text from an export is escaped like any other
    frame = judged.sql("SELECT * FROM waivers ORDER BY source_line").pl()
    page = render_compliance_report(replace(_data(policy, hostile=False), waivers=frame))
    applied = page[page.index('id="waivers-applied"') : page.index('id="waivers-refused"')]
    refused = page[page.index('id="waivers-refused"') : page.index('id="violations"')]
    assert "3 applied" in page and "8 refused" in page
    assert applied.count("<tr><td") == 3 and refused.count("<tr><td") == 8
    assert "Dana Ops" in applied and "&lt;script&gt;alert(1)&lt;/script&gt; hold" in applied
    assert "<script>alert(1)" not in page
    assert "unknown rule ID SEC-NOPE" in refused and "waivers.csv line 10" in refused


def test_the_report_says_when_there_is_no_waiver(policy):
    from test_reports import _data

    from reports.compliance_report import render_compliance_report

    page = render_compliance_report(_data(policy, hostile=False))
    assert "No waiver: every item was judged" in page
