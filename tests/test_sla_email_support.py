"""Profile email-support: range targets (expectation = quick end, commitment = slow end) at the edges."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from conftest import load_staged_tickets

from compliance.policy import load_policy
from compliance.rules.ticket_clocks import evaluate_ticket_clocks

UTC = UTC
AS_OF = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
S = timedelta(seconds=1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(scope="module")
def email_policy():
    return load_policy("email-support")


def load(con, rows):
    load_staged_tickets(
        con,
        [
            {
                "ticket_id": tid,
                "channel": "technical",
                "tier": tier,
                "created_at": created,
                "first_response_at": response,
            }
            for tid, tier, created, response in rows
        ],
    )


MON = utc(2026, 11, 23, 10)  # Monday
FRI = utc(2026, 11, 13, 10)  # Friday
SAT = utc(2026, 11, 14, 15)  # Saturday
WED = utc(2026, 11, 4, 9)  # Wednesday
# rule and target (seconds of open time) of each tier; no explicit tier reads as a general issue
RULE_OF_TIER = {
    "urgent": ("TG-URGENT", 172800),
    "general": ("TG-GENERAL", 7 * 86400),
    None: ("TG-GENERAL", 7 * 86400),
    "complex": ("TG-COMPLEX", 14 * 86400),
}
FRI_GENERAL_DUE = (utc(2026, 11, 24, 10), utc(2026, 11, 18, 10))  # commitment due, expectation due
SAT_GENERAL_DUE = (utc(2026, 11, 25, 0), utc(2026, 11, 19, 0))
WED_COMPLEX_DUE = (utc(2026, 11, 24, 9), utc(2026, 11, 13, 9))


def case(tid, tier, created, response, dues, state, met_expectation):
    """id, tier, created, response, expected (rule, due, expectation due, state, met_expectation, target)."""
    rule_id, target_seconds = RULE_OF_TIER[tier]
    return (tid, tier, created, response, (rule_id, *dues, state, met_expectation, target_seconds))


MON_URGENT_DUE = (MON + 48 * H, MON + 24 * H)
CASES = [
    case("U-24", "urgent", MON, MON + 24 * H, MON_URGENT_DUE, "achieved", True),
    case("U-24+1", "urgent", MON, MON + 24 * H + S, MON_URGENT_DUE, "achieved", False),
    case("U-48", "urgent", MON, MON + 48 * H, MON_URGENT_DUE, "achieved", False),
    case("U-48+1", "urgent", MON, MON + 48 * H + S, MON_URGENT_DUE, "breached", False),
    # open at as-of: before the expectation (NULL), and past it but before the commitment (false)
    case("U-open-early", "urgent", AS_OF - 23 * H, None, (AS_OF + 25 * H, AS_OF + H), "active", None),
    case("U-open-late", "urgent", AS_OF - 30 * H, None, (AS_OF + 18 * H, AS_OF - 6 * H), "active", False),
    # Friday 10:00: 3 working days -> Wednesday 10:00, 7 working days -> Tuesday 10:00 (a weekend in between)
    case("G-FRI-3", "general", FRI, utc(2026, 11, 18, 10), FRI_GENERAL_DUE, "achieved", True),
    case("G-FRI-3+1", "general", FRI, utc(2026, 11, 18, 10) + S, FRI_GENERAL_DUE, "achieved", False),
    case("G-FRI-7", "general", FRI, utc(2026, 11, 24, 10), FRI_GENERAL_DUE, "achieved", False),
    case("G-FRI-7+1", "general", FRI, utc(2026, 11, 24, 10) + S, FRI_GENERAL_DUE, "breached", False),
    # Saturday: the clock starts Monday 00:00; 3 working days -> Thursday 00:00, 7 -> Wednesday 25th 00:00
    case("G-SAT", "general", SAT, utc(2026, 11, 19, 0), SAT_GENERAL_DUE, "achieved", True),
    case("G-SAT-open", "general", SAT, None, SAT_GENERAL_DUE, "breached", False),
    case("G-DEFAULT", None, FRI, utc(2026, 11, 18, 10), FRI_GENERAL_DUE, "achieved", True),
    # Wednesday 09:00: 7 working days -> Friday 13th 09:00, 14 -> Tuesday 24th 09:00 (14 x 24 h of open time)
    case("C-7", "complex", WED, utc(2026, 11, 13, 9), WED_COMPLEX_DUE, "achieved", True),
    case("C-14+1", "complex", WED, utc(2026, 11, 24, 9) + S, WED_COMPLEX_DUE, "breached", False),
]


# Working days of calendar CAL-WORKDAYS (Mon-Fri, UTC) end at Friday's closing instant (24:00 = Saturday 00:00)
CLOSING_CASES = [
    # Thursday 00:00: 3 days Thu Fri Mon -> Tuesday 00:00; 7 days -> Friday 13th 24:00 (= Saturday 00:00)
    case(
        "G-THU",
        "general",
        utc(2026, 11, 5),
        utc(2026, 11, 14),
        (utc(2026, 11, 14), utc(2026, 11, 10)),
        "achieved",
        False,
    ),
    case(
        "G-THU+1",
        "general",
        utc(2026, 11, 5),
        utc(2026, 11, 14, 0, 0, 1),
        (utc(2026, 11, 14), utc(2026, 11, 10)),
        "breached",
        False,
    ),
    case(
        "G-THU-SUN",
        "general",
        utc(2026, 11, 5),
        utc(2026, 11, 15, 12),
        (utc(2026, 11, 14), utc(2026, 11, 10)),
        "breached",
        False,
    ),
    # Wednesday 00:00: 3 days -> Friday 24:00, answered at that instant
    case(
        "G-WED", "general", utc(2026, 11, 4), utc(2026, 11, 7), (utc(2026, 11, 13), utc(2026, 11, 7)), "achieved", True
    ),
    # Tuesday 00:00: 14 days -> Friday 20th 24:00; 7 days -> Wednesday 11th 24:00
    case(
        "C-TUE",
        "complex",
        utc(2026, 11, 3),
        utc(2026, 11, 21),
        (utc(2026, 11, 21), utc(2026, 11, 12)),
        "achieved",
        False,
    ),
    case(
        "C-TUE+1",
        "complex",
        utc(2026, 11, 3),
        utc(2026, 11, 21, 0, 0, 1),
        (utc(2026, 11, 21), utc(2026, 11, 12)),
        "breached",
        False,
    ),
    # Saturday: starts Monday 00:00; 7 days -> Tuesday 24:00 (= Wednesday 00:00), 3 days -> Wednesday 24:00
    case(
        "G-SAT",
        "general",
        utc(2026, 10, 31, 15),
        utc(2026, 11, 11),
        (utc(2026, 11, 11), utc(2026, 11, 5)),
        "achieved",
        False,
    ),
    # Friday 18:00 (open all day): 7 days -> Tuesday 18:00 after next
    case(
        "G-FRI",
        "general",
        utc(2026, 11, 6, 18),
        None,
        (utc(2026, 11, 17, 18), utc(2026, 11, 11, 18)),
        "breached",
        False,
    ),
]


@pytest.mark.parametrize("cases", [CASES, CLOSING_CASES], ids=["edges", "friday_closing"])
def test_expectation_and_commitment_at_the_edges(con, email_policy, cases):
    load(con, [row[:4] for row in cases])
    evaluate_ticket_clocks(con, email_policy, AS_OF)
    got = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT record_id, rule_id, due_at, expectation_due_at, state, met_expectation, target_seconds "
            "FROM ticket_sla"
        ).fetchall()
    }
    assert len(got) == len(cases)
    for tid, _tier, _created, _response, expected in cases:
        assert got[tid] == expected, tid


def test_working_day_target_seconds_and_elapsed_share_a_unit(con, email_policy):
    # From Saturday, the 7 working days are 7 x 24 h of open time; the elapsed open time of a response at the
    # due instant equals it.
    load(con, [("G-SAT-DUE", "general", SAT, utc(2026, 11, 25, 0))])
    evaluate_ticket_clocks(con, email_policy, AS_OF)
    assert con.execute("SELECT target_seconds, elapsed_seconds, state FROM ticket_sla").fetchall() == [
        (7 * 86400, 7 * 86400, "achieved")
    ]


def test_expectation_metrics(con, email_policy):
    load(con, [row[:4] for row in CASES])
    evaluate_ticket_clocks(con, email_policy, AS_OF)
    rows = {r[0]: r[1:] for r in con.execute("SELECT * FROM expectation_metrics").fetchall()}
    assert rows["TG-URGENT"] == (1, 4, 20.0)  # U-open-early is still before its expectation
    assert rows["TG-GENERAL"] == (3, 4, pytest.approx(300 / 7))
    assert rows["TG-COMPLEX"] == (1, 1, 50.0)
    # the commitment still decides the metrics
    urgent = con.execute(
        "SELECT achieved, breached, active FROM metrics_tickets WHERE rule_id = 'TG-URGENT' AND period = 'all' "
        "AND segment = 'all'"
    ).fetchall()
    assert urgent == [(3, 1, 2)]


def test_response_times_table(con, email_policy):
    load(con, [row[:4] for row in CASES])
    evaluate_ticket_clocks(con, email_policy, AS_OF)
    rows = con.execute(
        "SELECT count, max_seconds FROM response_times WHERE metric = 'first_response' AND channel = 'all' "
        "AND tier = 'urgent' AND plan = 'all' AND period = 'all'"
    ).fetchall()
    assert rows == [(4, 48 * 3600 + 1)]
    # overall, per channel, per tier, per plan and per month; no cross tabulations
    breakdowns = con.execute(
        "SELECT metric, list_sort(list_filter([CASE WHEN channel <> 'all' THEN 'channel' END, "
        "CASE WHEN tier <> 'all' THEN 'tier' END, CASE WHEN plan <> 'all' THEN 'plan' END, "
        "CASE WHEN period <> 'all' THEN 'period' END], lambda x: x IS NOT NULL)) AS dims, count(*) "
        "FROM response_times GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    answered = sum(1 for row in CASES if row[3] is not None)
    assert [(dims, n) for metric, dims, n in breakdowns if metric == "first_response"] == [
        ([], 1),
        (["channel"], 1),
        (["period"], 1),
        (["plan"], 1),
        (["tier"], 3),
    ]
    assert con.execute(
        "SELECT channel, plan, period, count FROM response_times WHERE metric = 'first_response' "
        "AND (channel <> 'all' OR plan <> 'all' OR period <> 'all')"
    ).fetchall() == [
        ("all", "all", "2026-11", answered),
        ("all", "unknown", "all", answered),
        ("technical", "all", "all", answered),
    ]


def test_acknowledgment_stops_at_the_first_auto_ack_event(con, email_policy):
    """TG-ACK: 1 h on CAL-247 from receipt to the first auto_ack; internal notes and replies do not count."""
    created = MON
    load_staged_tickets(
        con,
        [
            {"ticket_id": tid, "channel": "technical", "tier": "general", "created_at": created}
            for tid in ("ACK-ON-TIME", "ACK-EXACT", "ACK-LATE", "ACK-NONE", "NO-EVENTS")
        ]
        + [{"ticket_id": "ACK-OPEN", "channel": "technical", "tier": "general", "created_at": AS_OF - 30 * 60 * S}],
    )
    con.execute(
        "CREATE TABLE staged_ticket_events (ticket_id VARCHAR, occurred_at TIMESTAMPTZ, event_type VARCHAR, "
        "actor VARCHAR, new_status VARCHAR, source_file VARCHAR, source_line BIGINT)"
    )
    events = [
        ("ACK-ON-TIME", created + 5 * 60 * S, "auto_ack"),
        ("ACK-EXACT", created + H, "auto_ack"),
        ("ACK-LATE", created + 10 * 60 * S, "internal_note"),  # does not acknowledge
        ("ACK-LATE", created + H + S, "auto_ack"),
        ("ACK-NONE", created + 2 * H, "public_reply"),
        ("ACK-OPEN", AS_OF - 20 * 60 * S, "internal_note"),
    ]
    con.executemany(
        "INSERT INTO staged_ticket_events VALUES (?, ?, ?, 'system', NULL, 'ticket_events.csv', ?)",
        [(tid, at, kind, line) for line, (tid, at, kind) in enumerate(events, start=2)],
    )
    evaluate_ticket_clocks(con, email_policy, AS_OF)
    got = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT record_id, state, due_at, stopped_at, elapsed_seconds FROM ticket_sla WHERE rule_id = 'TG-ACK'"
        ).fetchall()
    }
    assert got["ACK-ON-TIME"] == ("achieved", created + H, created + 5 * 60 * S, 300)
    assert got["ACK-EXACT"] == ("achieved", created + H, created + H, 3600)  # exactly on the deadline is on time
    assert got["ACK-LATE"] == ("breached", created + H, created + H + S, 3601)
    assert got["ACK-NONE"][:3] == ("breached", created + H, None)
    assert got["ACK-OPEN"][:3] == ("active", AS_OF + 30 * 60 * S, None)
    # with the event export loaded, a ticket without any event had no acknowledgment: judged, not excused
    assert got["NO-EVENTS"][:3] == ("breached", created + H, None)
    explanation = con.execute(
        "SELECT explanation FROM violations_tickets WHERE rule_id = 'TG-ACK' AND record_id = 'ACK-LATE'"
    ).fetchall()[0][0]
    assert "automatic acknowledgment" in explanation
    # missing_history_binding: false reads such a ticket's history as unknown
    ack = email_policy.rule("TG-ACK")
    lenient = dataclasses.replace(ack, settings={**ack.settings, "missing_history_binding": False})
    evaluate_ticket_clocks(
        con,
        dataclasses.replace(email_policy, rules=tuple(lenient if rule is ack else rule for rule in email_policy.rules)),
        AS_OF,
    )
    assert con.execute(
        "SELECT state, exclusion_reason FROM ticket_sla WHERE rule_id = 'TG-ACK' AND record_id = 'NO-EVENTS'"
    ).fetchall() == [("excluded", "no event history for this ticket (missing_history_binding: false)")]
