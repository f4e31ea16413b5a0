"""Verdicts read every rule's violations from one pass over them and what the files lack once per rule kind
(issue 19): each rule still gets its own counts, coverage and causes, and rules of one kind their own figures."""

from __future__ import annotations

from compliance.evidence.verdicts import build_verdicts, combine_results
from compliance.ingest.staging import prepare_warehouse
from compliance.rules.common import METRIC_COLUMNS, VIOLATION_COLUMNS


def _judge(con, policy, violations, metrics):
    prepare_warehouse(con)
    con.execute("INSERT INTO ingest_log (source, file, status) VALUES ('tickets', 'tickets.csv', 'loaded')")
    con.execute(f"CREATE TABLE violations_tickets ({VIOLATION_COLUMNS})")
    con.execute(f"CREATE TABLE metrics_tickets ({METRIC_COLUMNS})")
    for rule_id, record_id, severity, explanation, cause in violations:
        con.execute(
            "INSERT INTO violations_tickets (rule_id, domain, record_id, severity, explanation, cause) "
            "VALUES (?, 'tickets', ?, ?, ?, ?)",
            [rule_id, record_id, severity, explanation, cause],
        )
    for rule_id, achieved, breached in metrics:
        con.execute(
            "INSERT INTO metrics_tickets (rule_id, domain, period, segment, achieved, breached, active, excluded, "
            "denominator, adherence_pct, waived) VALUES (?, 'tickets', 'all', 'all', ?, ?, 0, 0, ?, ?, 0)",
            [rule_id, achieved, breached, achieved + breached, 100.0 * achieved / (achieved + breached)],
        )
    combine_results(con)
    build_verdicts(con, policy)
    return {
        row[0]: row[1:]
        for row in con.execute("SELECT rule_id, verdict, reason, warnings, causes FROM verdicts").fetchall()
    }


def test_each_rule_of_a_kind_gets_its_own_violations(con, policy):
    verdicts = _judge(
        con,
        policy,
        [
            ("SUP-ACCT-STD", "T1", "breach", "late", "answered_late"),
            ("SUP-ACCT-STD", "T2", "breach", "late", "answered_late"),
            ("SUP-ACCT-STD", "T3", "breach", "closed", "never_answered"),
            ("SUP-ACCT-PRIO", "T4", "breach", "closed", "never_answered"),
            ("SUP-TECH-STD", "T5", "coverage", "the export covers 3 of 12 months", None),
            ("SUP-TECH-STD", "T6", "coverage", "the export covers 4 of 12 months", None),
        ],
        [("SUP-ACCT-STD", 7, 3), ("SUP-ACCT-PRIO", 9, 1), ("SUP-TECH-STD", 5, 0), ("SUP-TECH-PRIO", 4, 0)],
    )
    # first_response, all four: hand-counted from the rows above
    assert verdicts["SUP-ACCT-STD"] == (
        "breached",
        "3 breached: 2 answered late, 1 closed without an answer",
        0,
        "answered_late=2;never_answered=1",
    )
    assert verdicts["SUP-ACCT-PRIO"] == ("breached", "1 breached: 1 closed without an answer", 0, "never_answered=1")
    assert verdicts["SUP-TECH-STD"] == ("not assessed", "the export covers 3 of 12 months", 0, None)
    assert verdicts["SUP-TECH-PRIO"] == ("met", "", 0, None)
