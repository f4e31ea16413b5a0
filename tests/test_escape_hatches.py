"""Escape hatches: a value missing on a row never turns a would-be breach into an exclusion or a pass.

Each reading where leaving a value out could excuse a record is binding by default, a setting where the
reading is a choice, and the records it concerns are counted."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from conftest import load_staged_tickets, metric_of, ts, violations_of

from compliance.rules import privacy, security, status
from compliance.rules.ticket_clocks import evaluate_ticket_clocks

UTC = UTC
AS_OF = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ESCALATED = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)


def escalations(con, plans: dict[str, str | None]) -> None:
    """One escalation per ticket, reviewed 72 h after the request (ESC-REVIEW: 48 h)."""
    load_staged_tickets(
        con,
        [
            {
                "ticket_id": tid,
                "channel": "sales",
                "plan": plan,
                "created_at": ESCALATED - H,
                "first_response_at": ESCALATED,
                "escalated_at": ESCALATED,
                "senior_reviewed_at": ESCALATED + 72 * H,
            }
            for tid, plan in plans.items()
        ],
    )


def review_states(con) -> dict[str, tuple]:
    return {
        row[0]: row[1:]
        for row in con.execute(
            "SELECT record_id, state, exclusion_reason FROM ticket_sla WHERE rule_id = 'ESC-REVIEW'"
        ).fetchall()
    }


def with_review_settings(policy, **settings):
    review = policy.rule("ESC-REVIEW")
    changed = dataclasses.replace(review, settings={**review.settings, **settings})
    return dataclasses.replace(policy, rules=tuple(changed if rule is review else rule for rule in policy.rules))


def test_an_escalation_whose_plan_is_unknown_is_binding(con, policy):
    escalations(con, {"PAID": "plan_1", "FREE": "free", "UNKNOWN": None})
    evaluate_ticket_clocks(con, policy, AS_OF)
    states = review_states(con)
    assert states["PAID"] == ("breached", None)
    assert states["UNKNOWN"] == ("breached", None)  # leaving the plan out does not excuse the late review
    assert states["FREE"] == ("excluded", "plan free is reported but not bound by ESC-REVIEW")
    assert "UNKNOWN" in violations_of(con, "ESC-REVIEW", domain="tickets")
    unknown = metric_of(con, "ESC-REVIEW", segment="plan=unknown", domain="tickets")
    assert (unknown["breached"], unknown["excluded"], unknown["denominator"]) == (1, 0, 1)


def test_unknown_plan_binding_false_excludes_and_still_counts_them(con, policy):
    escalations(con, {"UNKNOWN-1": None, "UNKNOWN-2": None, "PAID": "plan_2"})
    evaluate_ticket_clocks(con, with_review_settings(policy, unknown_plan_binding=False), AS_OF)
    states = review_states(con)
    assert states["UNKNOWN-1"] == (
        "excluded",
        "plan unknown is reported but not bound by ESC-REVIEW (unknown_plan_binding: false)",
    )
    unknown = metric_of(con, "ESC-REVIEW", segment="plan=unknown", domain="tickets")
    assert (unknown["breached"], unknown["excluded"]) == (0, 2)


def test_the_number_of_unknown_plans_is_shown_when_there_are_none(con, policy):
    escalations(con, {"PAID": "plan_3"})
    evaluate_ticket_clocks(con, policy, AS_OF)
    unknown = metric_of(con, "ESC-REVIEW", segment="plan=unknown", domain="tickets")
    assert (unknown["achieved"], unknown["breached"], unknown["active"], unknown["excluded"]) == (0, 0, 0, 0)


def test_a_ticket_without_events_is_judged_for_its_acknowledgment(con):
    from compliance.policy import load_policy

    email = load_policy("email-support")
    load_staged_tickets(
        con, [{"ticket_id": "SILENT", "channel": "technical", "tier": "general", "created_at": ESCALATED}]
    )
    con.execute(
        "CREATE TABLE staged_ticket_events (ticket_id VARCHAR, occurred_at TIMESTAMPTZ, event_type VARCHAR, "
        "actor VARCHAR, new_status VARCHAR, source_file VARCHAR, source_line BIGINT)"
    )
    evaluate_ticket_clocks(con, email, AS_OF)
    assert con.execute("SELECT state, due_at FROM ticket_sla WHERE rule_id = 'TG-ACK'").fetchall() == [
        ("breached", ESCALATED + H)
    ]


INCIDENT_COLUMNS = (
    "incident_id VARCHAR, kind VARCHAR, severity VARCHAR, started_at TIMESTAMPTZ, acknowledged_at TIMESTAMPTZ, "
    "resolved_at TIMESTAMPTZ, announced_at TIMESTAMPTZ, scheduled_start_at TIMESTAMPTZ, "
    "postmortem_published_at TIMESTAMPTZ, source_file VARCHAR, source_line BIGINT"
)


def test_an_incident_without_a_start_is_counted_by_stat_live(con, policy):
    con.execute(f"CREATE TABLE staged_incidents ({INCIDENT_COLUMNS})")
    start = ts("2026-04-10 08:00")
    con.executemany(
        "INSERT INTO staged_incidents VALUES (?, 'incident', 'sev1', ?, NULL, ?, NULL, NULL, NULL, 'incidents.csv', ?)",
        [("TIMED", start, start + H / 2, 2), ("UNTIMED", None, start + 5 * H, 3)],
    )
    con.execute(
        "CREATE TABLE staged_incident_updates (incident_id VARCHAR, posted_at TIMESTAMPTZ, "
        "source_file VARCHAR, source_line BIGINT)"
    )
    status.evaluate(con, policy, ts("2026-05-01 00:00"))
    live = metric_of(con, "STAT-LIVE", domain="status")
    assert (live["achieved"], live["excluded"]) == (1, 1)


PRIVACY_COLUMNS = (
    "request_id VARCHAR, request_type VARCHAR, received_at TIMESTAMPTZ, first_response_at TIMESTAMPTZ, "
    "completed_at TIMESTAMPTZ, extended BOOLEAN, extension_notified_at TIMESTAMPTZ, status VARCHAR, "
    "source_file VARCHAR, source_line BIGINT"
)


@pytest.mark.parametrize("extended, notified", [(None, None), (True, None), (None, "2026-03-05 00:00")])
def test_a_missing_extension_flag_or_notice_never_extends_the_deadline(con, policy, extended, notified):
    """Guard: PRIV-COMPLETE judges against the original 30 days unless the extension is flagged AND notified."""
    con.execute(f"CREATE TABLE staged_privacy_requests ({PRIVACY_COLUMNS})")
    con.execute(
        "INSERT INTO staged_privacy_requests VALUES ('R', 'erasure', ?, ?, ?, ?, ?, NULL, 'p.csv', 2)",
        [
            ts("2026-03-01 00:00"),
            ts("2026-03-02 00:00"),
            ts("2026-04-20 00:00"),
            extended,
            ts(notified) if notified else None,
        ],
    )
    privacy.evaluate(con, policy, ts("2026-06-01 00:00"))
    assert "R" in violations_of(con, "PRIV-COMPLETE", domain="privacy")


def test_a_missing_embargo_extension_keeps_the_90_day_deadline(con, policy):
    """Guard: SEC-EMBARGO without embargo_extended_until is due 90 days after receipt."""
    con.execute(
        "CREATE TABLE staged_security_reports (report_id VARCHAR, received_at TIMESTAMPTZ, "
        "acknowledged_at TIMESTAMPTZ, timeline_sent_at TIMESTAMPTZ, fixed_at TIMESTAMPTZ, "
        "disclosed_at TIMESTAMPTZ, embargo_extended_until TIMESTAMPTZ, source_file VARCHAR, source_line BIGINT)"
    )
    con.execute(
        "INSERT INTO staged_security_reports VALUES ('S', ?, ?, ?, NULL, NULL, NULL, 's.csv', 2)",
        [ts("2026-01-01 00:00"), ts("2026-01-01 01:00"), ts("2026-01-02 00:00")],
    )
    security.evaluate(con, policy, ts("2026-06-01 00:00"))
    found = violations_of(con, "SEC-EMBARGO", domain="security")
    assert found["S"]["due_at"] == ts("2026-04-01 00:00")
