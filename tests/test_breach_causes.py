"""Why a commitment was breached: a cause on every violation, and the causes with counts in verdicts.csv."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from conftest import write

from compliance.policy import load_policy
from compliance.rules.common import CAUSE_WORDS
from compliance.rules.ticket_clocks import events_stop_missing
from pipelines.cli import main

AS_OF = "2026-03-10T00:00:00Z"
# SUP-ACCT-STD (24 h, 24/7, free plan): A1 answered 1 h late, A2 closed without an answer, A3 and A6 still open
# past due, A4 answered on time, A5 open before its deadline.
TICKETS = """ticket_id,channel,plan,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at
A1,account_billing,free,2026-03-02T10:00:00Z,2026-03-03T11:00:00Z,,open,,
A2,account_billing,free,2026-03-02T10:00:00Z,,2026-03-04T10:00:00Z,closed,,
A3,account_billing,free,2026-03-02T10:00:00Z,,,open,,
A4,account_billing,free,2026-03-02T10:00:00Z,2026-03-02T12:00:00Z,,open,,
A5,account_billing,free,2026-03-09T12:00:00Z,,,open,,
A6,account_billing,free,2026-03-03T10:00:00Z,,,pending,,
"""
# SEC-ACK (24 h) and SEC-TIMELINE (7 days): S1 acknowledged 2 h late, S2 never acknowledged; S1 got its timeline
# late, S2 none past the deadline, S3 is fine on both.
SECURITY = """report_id,received_at,acknowledged_at,timeline_sent_at,fixed_at,disclosed_at,embargo_extended_until
S1,2026-02-01T00:00:00Z,2026-02-02T02:00:00Z,2026-02-09T00:00:00Z,,,
S2,2026-02-01T00:00:00Z,,,,,
S3,2026-02-01T00:00:00Z,2026-02-01T01:00:00Z,2026-02-02T00:00:00Z,,,
"""


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run(exports: Path, out: Path, as_of: str = AS_OF) -> tuple[dict[str, dict], list[dict]]:
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", as_of]) == 0
    verdicts = {row["rule_id"]: row for row in read_csv(out / "evidence" / "verdicts.csv")}
    return verdicts, read_csv(out / "evidence" / "violations.csv")


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory) -> tuple[dict[str, dict], list[dict]]:
    folder = tmp_path_factory.mktemp("causes")
    write(folder / "exports" / "tickets.csv", TICKETS)
    write(folder / "exports" / "security_reports.csv", SECURITY)
    return run(folder / "exports", folder / "out")


def test_ticket_breaches_split_into_late_never_and_open(hand_made):
    verdicts, violations = hand_made
    causes = {row["record_id"]: row["cause"] for row in violations if row["rule_id"] == "SUP-ACCT-STD"}
    assert causes == {"A1": "answered_late", "A2": "never_answered", "A3": "open_past_due", "A6": "open_past_due"}
    standard = verdicts["SUP-ACCT-STD"]
    assert standard["verdict"] == "breached"
    assert standard["reason"] == "4 breached: 2 still open past due, 1 answered late, 1 closed without an answer"
    assert standard["causes"] == "open_past_due=2;answered_late=1;never_answered=1"


def test_security_breaches_have_their_causes(hand_made):
    verdicts, violations = hand_made
    assert {(row["rule_id"], row["record_id"]): row["cause"] for row in violations if row["domain"] == "security"} == {
        ("SEC-ACK", "S1"): "acknowledged_late",
        ("SEC-ACK", "S2"): "not_acknowledged",
        ("SEC-TIMELINE", "S1"): "timeline_late",
        ("SEC-TIMELINE", "S2"): "timeline_missing",
    }
    assert verdicts["SEC-ACK"]["reason"] == "2 breached: 1 acknowledged late, 1 not acknowledged past due"
    assert verdicts["SEC-ACK"]["causes"] == "acknowledged_late=1;not_acknowledged=1"


def test_a_met_commitment_has_no_causes(hand_made):
    verdicts, _ = hand_made
    assert verdicts["SUP-ABUSE"]["causes"] == ""


def test_a_ticket_closed_in_its_event_history_was_never_answered(tmp_path):
    # the events are the source of truth: E1's tickets row still says open, its history closes it unanswered
    write(
        tmp_path / "exports" / "tickets.csv",
        "ticket_id,channel,plan,created_at,first_response_at,status\n"
        "E1,account_billing,free,2026-03-02T10:00:00Z,,open\nE2,account_billing,free,2026-03-02T10:00:00Z,,closed\n",
    )
    write(
        tmp_path / "exports" / "ticket_events.csv",
        "ticket_id,occurred_at,event_type,actor,new_status\n"
        "E1,2026-03-02T11:00:00Z,internal_note,agent,\nE1,2026-03-04T10:00:00Z,status_change,agent,solved\n"
        "E2,2026-03-02T11:00:00Z,public_reply,agent,\n",
    )
    verdicts, violations = run(tmp_path / "exports", tmp_path / "out")
    assert {row["record_id"]: row["cause"] for row in violations if row["rule_id"] == "SUP-ACCT-STD"} == {
        "E1": "never_answered"
    }
    assert verdicts["SUP-ACCT-STD"]["causes"] == "never_answered=1"


def test_a_ticket_reopened_by_the_customer_is_still_open_past_due(tmp_path):
    # status changes carried on any event: R1 was solved, then the customer's reply reopened it (new_status open)
    write(
        tmp_path / "exports" / "tickets.csv",
        "ticket_id,channel,plan,created_at,first_response_at,status\n"
        "R1,account_billing,free,2026-03-02T10:00:00Z,,open\nR2,account_billing,free,2026-03-02T10:00:00Z,,open\n",
    )
    write(
        tmp_path / "exports" / "ticket_events.csv",
        "ticket_id,occurred_at,event_type,actor,new_status\n"
        "R1,2026-03-02T11:00:00Z,status_change,agent,solved\nR1,2026-03-02T12:00:00Z,requester_reply,requester,open\n"
        # the export carries public replies (R2's), so R1's events can stand in for its first response
        "R2,2026-03-02T11:00:00Z,public_reply,agent,\n",
    )
    _, violations = run(tmp_path / "exports", tmp_path / "out")
    assert {row["record_id"]: row["cause"] for row in violations if row["rule_id"] == "SUP-ACCT-STD"} == {
        "R1": "open_past_due"
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[dict[str, dict], list[dict]]:
    folder = tmp_path_factory.mktemp("demo")
    as_of = "2026-11-01T00:00:00Z"
    assert (
        main(
            [
                "generate",
                "--out",
                str(folder / "exports"),
                "--seed",
                "7",
                "--as-of",
                as_of,
                "--tickets",
                "800",
                "--privacy-requests",
                "120",
                "--security-reports",
                "40",
                "--incidents",
                "40",
                "--retention-records",
                "400",
            ]
        )
        == 0
    )
    return run(folder / "exports", folder / "out", as_of)


def test_every_breached_demo_commitment_says_why(demo):
    verdicts, _ = demo
    breached = [row for row in verdicts.values() if row["verdict"] == "breached"]
    assert len(breached) >= 10
    for row in breached:
        assert row["reason"], row["rule_id"]


def test_demo_causes_count_the_violations_per_cause(demo):
    verdicts, violations = demo
    counted: dict[str, Counter] = {}
    for row in violations:
        assert row["cause"] in CAUSE_WORDS, row
        if row["severity"] == "breach":
            counted.setdefault(row["rule_id"], Counter())[row["cause"]] += 1
    for rule_id, row in verdicts.items():
        stated = Counter({code: int(n) for code, n in (part.split("=") for part in row["causes"].split(";") if part)})
        assert stated == counted.get(rule_id, Counter()), rule_id
        if row["verdict"] == "breached" and stated:
            words = ", ".join(
                f"{n} {CAUSE_WORDS[code]}" for code, n in sorted(stated.items(), key=lambda c: (-c[1], c[0]))
            )
            assert row["reason"].startswith(f"{sum(stated.values())} breached: {words}"), rule_id


def test_a_solve_carried_on_a_reply_lets_the_events_stand_in_for_resolved_at(con):
    # resolution from events: the only solve is a public reply that also sets new_status solved
    policy = load_policy("city-311")
    con.execute(
        "CREATE TABLE staged_ticket_events AS SELECT 'T1' AS ticket_id, TIMESTAMPTZ '2026-03-02 11:00:00+00' AS "
        "occurred_at, 'public_reply' AS event_type, 'agent' AS actor, 'solved' AS new_status, "
        "'ticket_events.csv' AS source_file, 2 AS source_line"
    )
    assert events_stop_missing(con, "resolution", policy) is None
    con.execute("UPDATE staged_ticket_events SET new_status = 'pending'")
    assert events_stop_missing(con, "resolution", policy) == (
        "ticket_events.csv has no new_status solved or closed event"
    )
