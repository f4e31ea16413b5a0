"""Security disclosures: SEC-ACK, SEC-TIMELINE, SEC-EMBARGO.

Input: ``staged_security_reports`` (report_id, received_at, acknowledged_at, timeline_sent_at, fixed_at,
disclosed_at, embargo_extended_until). Output: ``violations_security``, ``metrics_security`` (segments: none).

Readings:
- SEC-ACK (kind ``security_ack``): acknowledged_at <= received_at + target (24 h, UTC timeline).
- SEC-TIMELINE (kind ``security_timeline``): timeline_sent_at <= received_at + target (7 days).
- SEC-EMBARGO (kind ``security_embargo``): disclosed_at <= the later of received_at + target (90 days) and
  ``embargo_extended_until`` (an agreed extension can only lengthen the embargo). A report still undisclosed past
  its deadline at as_of is a breach; one undisclosed before it is active. Measured interval: receipt -> disclosure.
- Events after as_of count as not happened yet; reports received after as_of are excluded.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.core.sql import lit, seconds_interval, ts_lit
from compliance.policy import Policy
from compliance.rules.common import create_items, deadline_inserter, finish_domain, source_staged, target_of

DOMAIN = "security"
SOURCE = "staged_security_reports"

_EVENTS = {
    # kind: (column, what happened, what was missing, cause when late, cause when missing)
    "security_ack": (
        "acknowledged_at",
        "was acknowledged",
        "had no acknowledgment",
        "acknowledged_late",
        "not_acknowledged",
    ),
    "security_timeline": (
        "timeline_sent_at",
        "got its initial fix timeline and impact assessment",
        "had no initial fix timeline and impact assessment",
        "timeline_late",
        "timeline_missing",
    ),
}


def evaluate(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    if not source_staged(con, DOMAIN, SOURCE):
        return
    asof = ts_lit(as_of)
    items = create_items(con, DOMAIN)
    insert_deadline_items = deadline_inserter(
        con,
        items,
        as_of=asof,
        source=SOURCE,
        record_id="CAST(report_id AS VARCHAR)",
        period_at="received_at",
        duration="cr_span(received_at, actual_at)",
    )
    who = "'Security report ' || CAST(report_id AS VARCHAR) || ' received ' || cr_ts(received_at)"

    for rule in policy.rules_of(*_EVENTS):
        column, done, missing, late_cause, missing_cause = _EVENTS[rule.kind]
        seconds, phrase = target_of(rule)
        insert_deadline_items(
            rule_id=rule.id,
            due=f"received_at + {seconds_interval(seconds)}",
            actual=column,
            late_explanation=f"""{who} || {lit(f" {done} ")} || cr_ts(actual_at) || ', ' || cr_dur(overdue_seconds)
            || ' after the ' || {lit(phrase)} || ' deadline of ' || cr_ts(due_at) || '.'""",
            open_explanation=f"""{who} || {lit(f" {missing} by ")} || cr_ts({asof}) || ' (report as-of time), '
            || cr_dur(overdue_seconds) || ' past the ' || {lit(phrase)} || ' deadline of ' || cr_ts(due_at) || '.'""",
            late_cause=lit(late_cause),
            open_cause=lit(missing_cause),
        )

    for rule in policy.rules_of("security_embargo"):
        seconds, phrase = target_of(rule)
        standard = f"(received_at + {seconds_interval(seconds)})"
        deadline = f"""CASE WHEN embargo_extended_until > {standard}
                THEN 'agreed extended embargo deadline of ' || cr_ts(due_at)
                ELSE {lit(phrase)} || ' embargo deadline of ' || cr_ts(due_at) END"""
        insert_deadline_items(
            rule_id=rule.id,
            due=f"greatest({standard}, embargo_extended_until)",
            actual="disclosed_at",
            late_explanation=f"""{who} || ' was publicly disclosed ' || cr_ts(actual_at) || ', '
            || cr_dur(overdue_seconds) || ' after the ' || {deadline} || '.'""",
            open_explanation=f"""{who} || ' was still not publicly disclosed at ' || cr_ts({asof})
            || ' (report as-of time), ' || cr_dur(overdue_seconds) || ' past the ' || {deadline} || '.'""",
            late_cause="'disclosed_late'",
            open_cause="'undisclosed_past_embargo'",
        )

    finish_domain(con, policy, DOMAIN, items, "security_reports", "CAST(s.report_id AS VARCHAR)")
