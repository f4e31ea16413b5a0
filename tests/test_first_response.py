"""Ticket clocks of profile `platform` against a slow, obvious reference written here.

The reference walks the calendar one local day at a time with zoneinfo and the `holidays` package; the engine
under test is the set-based DuckDB code of `compliance.rules.ticket_clocks` / `compliance.calendars`. They must agree to the
second on random tickets around DST switches, holidays (observed days), weekends and closing times.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
from conftest import load_staged_tickets

from compliance.core.sql import install_macros, stored_in_order
from compliance.rules.ticket_clocks import AT_RISK_ORDER, TICKET_SLA_ORDER, evaluate_ticket_clocks

UTC = UTC
NEW_YORK = ZoneInfo("America/New_York")
US_HOLIDAYS = holidays.country_holidays("US", years=range(2025, 2028), observed=True)
AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def open_intervals(start: datetime, end: datetime):
    """Business-hours intervals (UTC) of CAL-BH-EST between two instants, one local day at a time."""
    day = start.astimezone(NEW_YORK).date() - timedelta(days=1)
    while True:
        opening = datetime.combine(day, time(9), NEW_YORK).astimezone(UTC)
        closing = datetime.combine(day, time(17), NEW_YORK).astimezone(UTC)
        if opening >= end:
            return
        if day.weekday() < 5 and day not in US_HOLIDAYS:
            low, high = max(opening, start), min(closing, end)
            if low < high:
                yield low, high
        day += timedelta(days=1)


def reference_elapsed(calendar: str, start: datetime, end: datetime) -> int:
    if calendar == "CAL-247":
        return int((end - start).total_seconds())
    return int(sum((high - low).total_seconds() for low, high in open_intervals(start, end)))


def reference_due(calendar: str, start: datetime, target: int) -> datetime:
    if calendar == "CAL-247":
        return start + timedelta(seconds=target)
    remaining = target
    for low, high in open_intervals(start, start + timedelta(days=400)):
        length = int((high - low).total_seconds())
        if remaining <= length:
            return low + timedelta(seconds=remaining)  # exactly at closing time → the closing instant
        remaining -= length
    raise AssertionError("no due time within 400 days")


def reference_clock(ticket: dict, rule) -> dict:
    due = reference_due(rule.calendar, ticket["created_at"], rule.target.seconds)
    stop = ticket["first_response_at"] if ticket["first_response_at"] and ticket["first_response_at"] <= AS_OF else None
    end = stop or AS_OF
    if ticket["created_at"] > AS_OF:
        state = "excluded"
    elif stop is not None:
        state = "achieved" if stop <= due else "breached"
    else:
        state = "breached" if due < AS_OF else "active"
    elapsed = None if state == "excluded" else reference_elapsed(rule.calendar, ticket["created_at"], end)
    return {"due_at": due, "elapsed_seconds": elapsed, "state": state}


INTERESTING_DAYS = [
    date(2026, 3, 6),
    date(2026, 3, 8),
    date(2026, 3, 9),  # spring forward (Sunday 8 March)
    date(2026, 10, 30),
    date(2026, 11, 1),
    date(2026, 11, 2),  # fall back (Sunday 1 November)
    date(2026, 7, 2),
    date(2026, 7, 3),
    date(2026, 7, 4),  # Independence Day on a Saturday, observed Friday
    date(2026, 11, 25),
    date(2026, 11, 26),
    date(2026, 11, 19),  # Thanksgiving; open at as-of
    date(2025, 12, 24),
    date(2025, 12, 25),
    date(2026, 1, 1),
    date(2026, 5, 25),
]


def random_ticket(rng: random.Random, index: int, policy) -> dict:
    day = rng.choice(INTERESTING_DAYS)
    local_time = time(rng.choice([0, 8, 9, 12, 16, 17, 23]), rng.choice([0, 0, 30, 59]), rng.choice([0, 0, 1, 59]))
    created = datetime.combine(day, local_time, NEW_YORK).astimezone(UTC)
    channel = rng.choice(["technical_support", "account_billing", "sales", "abuse", "privacy"])
    plan = rng.choice(["free", "plan_1", "plan_2", "plan_3"])
    rules = [r for r in policy.rules_of("first_response") if r.applies_to.get("channel") == channel]
    rule = next(
        r
        for r in rules
        if r.applies_to.get("tier") in (None, "priority" if plan in ("plan_2", "plan_3") else "standard")
    )
    choice = rng.random()
    if choice < 0.2:
        response = None
    elif choice < 0.45:  # exactly at the due instant, or one second either side
        response = reference_due(rule.calendar, created, rule.target.seconds) + timedelta(
            seconds=rng.choice([-1, 0, 1])
        )
    else:
        response = created + timedelta(seconds=rng.randint(0, 6 * 86400))
    return {
        "ticket_id": f"T{index:05d}",
        "channel": channel,
        "plan": plan,
        "created_at": created,
        "first_response_at": response,
        "rule": rule,
    }


def test_engine_matches_reference_on_random_tickets(con, policy):
    rng = random.Random(20261120)
    tickets = [random_ticket(rng, index, policy) for index in range(3000)]
    load_staged_tickets(con, [{**t, "status": "open"} for t in tickets])
    evaluate_ticket_clocks(con, policy, AS_OF)
    rows = {
        record: (rule_id, due, elapsed, state)
        for record, rule_id, due, elapsed, state in con.execute(
            "SELECT record_id, rule_id, due_at, elapsed_seconds, state FROM ticket_sla WHERE metric = 'first_response'"
        ).fetchall()
    }
    assert len(rows) == len(tickets)
    mismatches = []
    for ticket in tickets:
        expected = reference_clock(ticket, ticket["rule"])
        rule_id, due, elapsed, state = rows[ticket["ticket_id"]]
        actual = {"due_at": due, "elapsed_seconds": elapsed, "state": state}
        if rule_id != ticket["rule"].id or actual != expected:
            mismatches.append((ticket["ticket_id"], ticket["rule"].id, ticket["created_at"], expected, rule_id, actual))
    assert not mismatches[:5], f"{len(mismatches)} mismatches"


def test_edges_by_hand(con, policy):
    ny = lambda *args: datetime(*args, tzinfo=NEW_YORK).astimezone(UTC)  # noqa: E731
    tickets = [
        # Friday 16:00 New York, priority technical (4 business hours): due Monday 12:00.
        {
            "ticket_id": "FRI",
            "channel": "technical_support",
            "plan": "plan_2",
            "created_at": ny(2026, 3, 6, 16),
            "first_response_at": ny(2026, 3, 9, 12),
        },
        # The same, answered one second late.
        {
            "ticket_id": "LATE",
            "channel": "technical_support",
            "plan": "plan_2",
            "created_at": ny(2026, 3, 6, 16),
            "first_response_at": ny(2026, 3, 9, 12, 0, 1),
        },
        # Standard technical (24 business hours) from Monday 09:00: due Wednesday 17:00, the closing instant.
        {
            "ticket_id": "CLOSE",
            "channel": "technical_support",
            "plan": "free",
            "created_at": ny(2026, 3, 2, 9),
            "first_response_at": None,
        },
        # Created Saturday night: the clock starts Monday 09:00 (not Sunday, not Friday's observed holiday).
        {
            "ticket_id": "WEEKEND",
            "channel": "technical_support",
            "plan": "plan_3",
            "created_at": ny(2026, 7, 4, 22),
            "first_response_at": None,
        },
        # 24/7 account ticket: due exactly 24 hours later across the fall-back night (25 local hours).
        {
            "ticket_id": "FALLBACK",
            "channel": "account_billing",
            "plan": "free",
            "created_at": ny(2026, 10, 31, 12),
            "first_response_at": None,
        },
        # Created after as-of: excluded.
        {
            "ticket_id": "FUTURE",
            "channel": "abuse",
            "plan": "free",
            "created_at": AS_OF + timedelta(hours=1),
            "first_response_at": None,
        },
    ]
    load_staged_tickets(con, [{**t, "status": "open"} for t in tickets])
    evaluate_ticket_clocks(con, policy, AS_OF)
    got = {
        r[0]: r[1:] for r in con.execute("SELECT record_id, due_at, state, elapsed_seconds FROM ticket_sla").fetchall()
    }
    assert got["FRI"][:2] == (ny(2026, 3, 9, 12), "achieved")
    assert got["LATE"][:2] == (ny(2026, 3, 9, 12), "breached")
    assert got["CLOSE"][0] == ny(2026, 3, 4, 17)
    assert got["WEEKEND"][0] == ny(2026, 7, 6, 13)
    assert got["FALLBACK"][0] == ny(2026, 10, 31, 12) + timedelta(hours=24)
    assert got["FALLBACK"][0].astimezone(NEW_YORK).hour == 11
    assert got["FUTURE"][1] == "excluded"
    violations = con.execute(
        "SELECT record_id, overdue_seconds, explanation FROM violations_tickets WHERE record_id = 'LATE'"
    ).fetchall()
    assert violations[0][1] == 1 and "1 s late (1 s of CAL-BH-EST open time)" in violations[0][2]


def test_ticket_sla_and_at_risk_are_stored_in_the_order_of_their_evidence(con, policy):
    rng = random.Random(7)
    tickets = [random_ticket(rng, index, policy) for index in range(3000)]
    load_staged_tickets(con, [{**t, "status": "open"} for t in reversed(tickets)])
    evaluate_ticket_clocks(con, policy, AS_OF)
    for table, order in (("ticket_sla", TICKET_SLA_ORDER), ("at_risk", AT_RISK_ORDER)):
        stored = con.execute(f"SELECT record_id, rule_id, cycle FROM {table}").fetchall()
        assert (
            len(stored) > 100
            and stored == con.execute(f"SELECT record_id, rule_id, cycle FROM {table} ORDER BY {order}").fetchall()
        )
        assert stored_in_order(con, table, order)
    assert not stored_in_order(con, "ticket_sla", "record_id")
    con.execute("CREATE OR REPLACE TABLE ticket_sla AS SELECT * FROM ticket_sla")
    assert not stored_in_order(con, "ticket_sla", TICKET_SLA_ORDER)


def test_utc_wall_time_without_a_time_zone_conversion(con):
    install_macros(con)
    values = [
        "TIMESTAMPTZ '2026-03-08 07:00:00.25+00'",
        "TIMESTAMPTZ '1969-12-31 23:59:59.999999+00'",
        "TIMESTAMPTZ '0044-03-15 10:00:00+00' - INTERVAL 100 YEARS",
        "'infinity'::TIMESTAMPTZ",
        "'-infinity'::TIMESTAMPTZ",
        "NULL::TIMESTAMPTZ",
        "TIMESTAMP '2026-03-08 07:00:00'",
    ]
    for value in values:
        same = con.execute(
            f"SELECT cr_utc(t) IS NOT DISTINCT FROM timezone('UTC', t) FROM (SELECT {value} AS t)"
        ).fetchall()
        assert same == [(True,)], value
    assert con.execute(
        "SELECT cr_ts(TIMESTAMPTZ '2026-03-08 07:00:00+00'), cr_ts(TIMESTAMPTZ '2026-03-08 07:00:09.5+00')"
    ).fetchall() == [("2026-03-08 07:00 UTC", "2026-03-08 07:00:09 UTC")]
