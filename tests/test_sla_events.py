"""Ticket clocks from ticket_events (first response, pauses, reopen cycles) against a slow, obvious reference.

The reference replays each ticket's events in Python, builds its status timeline, and intersects pause
intervals with business-hours intervals computed one local day at a time with zoneinfo and `holidays` (the
helpers of tests/test_first_response.py).  The engine under test is the set-based SQL of `compliance.rules.ticket_clocks`.
They must agree to the second on due_at, elapsed_seconds, pause_seconds, cycle and state.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, date, datetime, time, timedelta

import pytest
from conftest import load_staged_tickets

from compliance.policy import Target
from compliance.rules.ticket_clocks import evaluate_ticket_clocks, record_event_order_findings
from tests.test_first_response import INTERESTING_DAYS, NEW_YORK, open_intervals

UTC = UTC
AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TERMINAL = ("solved", "closed")
PAUSING = ("pending", "on_hold")
# the first-response tests' DST, holiday and weekend days before the as-of, and the days around it
DAYS = [day for day in INTERESTING_DAYS if day < AS_OF.date()] + [
    date(2026, 3, 7),
    date(2026, 10, 31),
    date(2026, 11, 18),
    date(2026, 11, 20),  # open at as-of
    date(2025, 12, 31),
    date(2026, 5, 22),
]


def policy_with_resolution(policy, reopen_new_cycle: bool):
    base = policy.rule("SUP-ACCT-STD")
    resolution = [
        dataclasses.replace(
            base,
            id="RES-ACCT",
            kind="resolution",
            applies_to={"channel": "account_billing"},
            target=Target(seconds=36 * 3600),
            calendar="CAL-247",
        ),
        dataclasses.replace(
            base,
            id="RES-TECH",
            kind="resolution",
            applies_to={"channel": "technical_support"},
            target=Target(seconds=16 * 3600),
            calendar="CAL-BH-EST",
        ),
    ]
    settings = dict(policy.ticket_settings, reopen_starts_new_cycle=reopen_new_cycle)
    return dataclasses.replace(policy, rules=tuple(policy.rules) + tuple(resolution), ticket_settings=settings)


# ---------------------------------------------------------------------------------------------------------
# random tickets with event histories
# ---------------------------------------------------------------------------------------------------------
def _edge(rng: random.Random, t: datetime) -> datetime:
    """Sometimes snap to a local opening / closing instant (or one second off it)."""
    if rng.random() < 0.15:
        local = t.astimezone(NEW_YORK)
        hour = rng.choice([9, 17])
        snapped = datetime.combine(local.date() + timedelta(days=rng.choice([0, 1])), time(hour), NEW_YORK)
        snapped = snapped.astimezone(UTC) + timedelta(seconds=rng.choice([-1, 0, 0, 1]))
        return max(snapped, t)  # histories move forward in time
    return t


def _dur(rng: random.Random) -> timedelta:
    return timedelta(
        seconds=rng.choice([rng.randint(1, 3600), rng.randint(3600, 86400), rng.randint(86400, 4 * 86400)])
    )


def random_ticket(rng: random.Random, index: int) -> dict:
    day = rng.choice(DAYS)
    local = time(rng.choice([0, 8, 9, 12, 16, 17, 23]), rng.choice([0, 30, 59]), rng.choice([0, 1, 59]))
    created = datetime.combine(day, local, NEW_YORK).astimezone(UTC)
    channel = rng.choice(["account_billing", "technical_support"])
    plan = rng.choice(["free", "plan_1", "plan_2", "plan_3"])
    events: list[tuple] = []

    def add(at, kind, actor, status=None):
        events.append((at, kind, actor, status))

    with_events = rng.random() < 0.9
    if rng.random() < 0.9:
        add(created, "status_change", "system", "new")
    if rng.random() < 0.8:
        add(created + timedelta(seconds=rng.randint(0, 120)), "auto_ack", "system")
    if rng.random() < 0.4:
        add(created + timedelta(seconds=rng.randint(30, 7200)), "internal_note", "agent")
    t = _edge(rng, created + _dur(rng))
    t = max(t, created)
    if rng.random() < 0.85:
        if rng.random() < 0.25:  # the reply itself sets the status (any event type may carry new_status)
            add(t, "public_reply", "agent", rng.choice(PAUSING))
            t = _edge(rng, t + _dur(rng))
            add(t, "requester_reply", "requester", "open")
        else:
            add(t, "public_reply", "agent")
        if rng.random() < 0.5:
            add(t, "status_change", "agent", rng.choice(PAUSING))
            t = _edge(rng, t + _dur(rng))
            add(t, "status_change", "requester", "open")

    def flips():
        nonlocal t
        for _ in range(rng.randint(0, 3)):
            t = _edge(rng, t + _dur(rng))
            add(t, "status_change", "agent", rng.choice(PAUSING))
            if rng.random() < 0.85:
                t = _edge(rng, t + _dur(rng))
                if rng.random() < 0.4:  # how a help desk records a customer answering a pending ticket
                    add(t, "requester_reply", "requester", "open")
                else:
                    add(t, "requester_reply", "requester")
                    add(t, "status_change", "system", rng.choice(["open", "open", "new"]))

    flips()
    if rng.random() < 0.75:
        t = _edge(rng, t + _dur(rng))
        add(t, "status_change", "agent", "solved")
        if rng.random() < 0.3:
            add(t + _dur(rng), "status_change", "system", "closed")
        if rng.random() < 0.45:
            t = _edge(rng, t + _dur(rng))
            add(
                t,
                rng.choice(["status_change", "requester_reply"]),
                "requester",
                rng.choice(["open", "open", "new", "pending"]),
            )
            flips()
            if rng.random() < 0.7:
                t = _edge(rng, t + _dur(rng))
                add(t, "status_change", "agent", "solved")
    events.sort(key=lambda e: e[0])  # stable: same-instant events keep the order they were written in
    first_reply = next((e[0] for e in events if e[1] == "public_reply"), None)
    solves = [e[0] for e in events if e[3] == "solved"]
    return {
        "ticket_id": f"E{index:05d}",
        "channel": channel,
        "plan": plan,
        "created_at": created,
        "events": events if with_events else [],
        # the tickets columns, used by tickets without events (and ignored for the others)
        "first_response_at": first_reply if first_reply is not None else None,
        "resolved_at": solves[-1] if solves else None,
    }


def load(con, tickets: list[dict]) -> None:
    columns = ("ticket_id", "channel", "plan", "created_at", "first_response_at", "resolved_at")
    load_staged_tickets(con, [{key: ticket[key] for key in columns} for ticket in tickets])
    con.execute(
        "CREATE OR REPLACE TABLE staged_ticket_events (ticket_id VARCHAR, occurred_at TIMESTAMPTZ, event_type VARCHAR, "
        "actor VARCHAR, new_status VARCHAR, source_file VARCHAR, source_line BIGINT)"
    )
    rows = []
    for t in tickets:
        for at, kind, actor, status in t["events"]:
            rows.append((t["ticket_id"], at, kind, actor, status, "ticket_events.csv", len(rows) + 2))
    rng = random.Random(5)
    rng.shuffle(rows)  # the engine must not depend on the physical row order
    con.executemany("INSERT INTO staged_ticket_events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


# ---------------------------------------------------------------------------------------------------------
# the reference
# ---------------------------------------------------------------------------------------------------------
HORIZON = timedelta(days=400)


def _events_ticket(ticket_id: str, created: datetime, events: list[tuple], channel: str = "account_billing") -> dict:
    """A free-plan ticket whose only history is ``events`` (occurred_at, event_type, actor, new_status)."""
    return {
        "ticket_id": ticket_id,
        "channel": channel,
        "plan": "free",
        "created_at": created,
        "first_response_at": None,
        "resolved_at": None,
        "events": events,
    }


def open_ivs(calendar: str, start: datetime, end: datetime):
    if calendar == "CAL-247":
        if start < end:
            yield start, end
        return
    yield from open_intervals(start, end)


def open_seconds(calendar: str, start: datetime, end: datetime) -> int:
    return int(sum((b - a).total_seconds() for a, b in open_ivs(calendar, start, end)))


def active_ivs(calendar: str, start: datetime, pauses: list[tuple[datetime, datetime]]):
    """Open intervals from start on, minus the pauses (sorted, disjoint)."""
    for low, high in open_ivs(calendar, start, start + HORIZON):
        cur = low
        for p0, p1 in pauses:
            if p1 <= cur or p0 >= high:
                continue
            if p0 > cur:
                yield cur, p0
            cur = max(cur, p1)
        if cur < high:
            yield cur, high


def reference_paused_clock(
    calendar: str,
    target: int,
    start: datetime,
    stop: datetime | None,
    segments: list[tuple[datetime, datetime | None, bool]],
) -> dict:
    end = stop or AS_OF
    pauses = []
    for s0, s1, counts in segments:
        if counts:
            continue
        a, b = max(s0, start), min(s1 or AS_OF, end)
        if a < b:
            pauses.append((a, b))
    pause = sum(open_seconds(calendar, a, b) for a, b in pauses)
    remaining, due = target, None
    for low, high in active_ivs(calendar, start, pauses):
        length = int((high - low).total_seconds())
        if remaining <= length:
            due = low + timedelta(seconds=remaining)
            break
        remaining -= length
    if start > AS_OF:
        state = "excluded"
    elif stop is not None:
        state = "achieved" if stop <= due else "breached"
    else:
        state = "breached" if due < AS_OF else "active"
    elapsed = None if state == "excluded" else open_seconds(calendar, start, end) - pause
    return {
        "due_at": due,
        "elapsed_seconds": elapsed,
        "pause_seconds": pause if start <= AS_OF else 0,
        "state": state,
        "stopped_at": stop,
    }


def reference(ticket: dict, policy, reopen_new_cycle: bool) -> dict:
    out = {}
    plan = ticket["plan"]
    tier = "priority" if plan in ("plan_2", "plan_3") else "standard"
    events = [(at, i, kind, status) for i, (at, kind, _actor, status) in enumerate(ticket["events"]) if at <= AS_OF]
    has_events = bool(ticket["events"])
    for rule in policy.rules:
        if rule.kind not in ("first_response", "resolution"):
            continue
        if rule.applies_to.get("channel") != ticket["channel"] or rule.applies_to.get("tier", tier) != tier:
            continue
        cal, target, created = rule.calendar, rule.target.seconds, ticket["created_at"]
        if rule.kind == "first_response":
            if has_events:
                stop = next((at for at, _i, kind, _s in events if kind == "public_reply"), None)
            else:
                stop = (
                    ticket["first_response_at"]
                    if ticket["first_response_at"] and ticket["first_response_at"] <= AS_OF
                    else None
                )
            row = reference_paused_clock(cal, target, created, stop, [])
            out[(rule.id, 1)] = row
            continue
        if not has_events:
            stop = ticket["resolved_at"] if ticket["resolved_at"] and ticket["resolved_at"] <= AS_OF else None
            row = reference_paused_clock(cal, target, created, stop, [])
            row["pause_seconds"] = None
            out[(rule.id, 1)] = row
            continue
        # replay the status timeline
        timeline = [(at, status) for at, _i, _kind, status in events if status]  # new_status on any event
        segments, solves, reopens = [], [], []
        previous = "new"
        for k, (at, status) in enumerate(timeline):
            nxt = timeline[k + 1][0] if k + 1 < len(timeline) else None
            segments.append((at, nxt, not (status in PAUSING or status in TERMINAL)))
            if status in TERMINAL and previous not in TERMINAL:
                solves.append((k, at))
            if status not in TERMINAL and previous in TERMINAL:
                reopens.append((k, at))
            previous = status
        if not reopen_new_cycle:
            stop = solves[-1][1] if timeline and timeline[-1][1] in TERMINAL else None
            out[(rule.id, 1)] = reference_paused_clock(cal, target, created, stop, segments)
        else:
            starts = [(-1, created)] + reopens
            for n, (k0, start) in enumerate(starts, start=1):
                k1 = starts[n][0] if n < len(starts) else len(timeline)
                stop = next((at for k, at in solves if k0 < k < k1 or (k0 == -1 and k < k1)), None)
                out[(rule.id, n)] = reference_paused_clock(cal, target, start, stop, segments)
    return out


def run_and_compare(con, policy, tickets, reopen_new_cycle):
    load(con, tickets)
    evaluate_ticket_clocks(con, policy, AS_OF)
    got = {
        (r[0], r[1], r[2]): {
            "due_at": r[3],
            "elapsed_seconds": r[4],
            "pause_seconds": r[5],
            "state": r[6],
            "stopped_at": r[7],
        }
        for r in con.execute(
            "SELECT record_id, rule_id, cycle, due_at, elapsed_seconds, pause_seconds, state, stopped_at "
            "FROM ticket_sla WHERE metric IN ('first_response', 'resolution')"
        ).fetchall()
    }
    expected = {}
    for ticket in tickets:
        for (rule_id, cycle), row in reference(ticket, policy, reopen_new_cycle).items():
            expected[(ticket["ticket_id"], rule_id, cycle)] = row
    assert set(got) == set(expected), (sorted(set(got) - set(expected))[:5], sorted(set(expected) - set(got))[:5])
    mismatches = [(key, expected[key], got[key]) for key in sorted(expected) if expected[key] != got[key]]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]}"
    return got


@pytest.mark.parametrize("reopen_new_cycle", [False, True])
def test_engine_matches_reference_on_random_event_histories(con, policy, reopen_new_cycle):
    rng = random.Random(4242 + reopen_new_cycle)
    tickets = [random_ticket(rng, i) for i in range(1000)]
    policy = policy_with_resolution(policy, reopen_new_cycle)
    got = run_and_compare(con, policy, tickets, reopen_new_cycle)
    states = {row["state"] for row in got.values()}
    assert states == {"achieved", "breached", "active", "excluded"} or states >= {"achieved", "breached", "active"}
    assert any(row["pause_seconds"] for row in got.values())
    if reopen_new_cycle:
        assert max(key[2] for key in got) >= 2


def test_internal_notes_and_auto_acks_do_not_stop_first_response(con, policy):
    created = datetime(2026, 11, 16, 14, 0, tzinfo=UTC)
    ticket = {
        "ticket_id": "N1",
        "channel": "account_billing",
        "plan": "free",
        "created_at": created,
        "first_response_at": created + timedelta(minutes=1),
        "resolved_at": None,
        "events": [
            (created, "auto_ack", "system", None),
            (created + timedelta(minutes=1), "internal_note", "agent", None),
            (created + timedelta(hours=30), "public_reply", "agent", None),
        ],
    }
    load(con, [ticket])
    evaluate_ticket_clocks(con, policy, AS_OF)
    row = con.execute("SELECT stopped_at, state, clock_source FROM ticket_sla WHERE record_id = 'N1'").fetchall()
    assert row == [(created + timedelta(hours=30), "breached", "events")]
    # a policy that lists internal notes lets them stop the clock
    settings = dict(policy.ticket_settings, first_response_event_types=["public_reply", "internal_note"])
    evaluate_ticket_clocks(con, dataclasses.replace(policy, ticket_settings=settings), AS_OF)
    row = con.execute("SELECT stopped_at, state FROM ticket_sla WHERE record_id = 'N1'").fetchall()
    assert row == [(created + timedelta(minutes=1), "achieved")]


def test_pause_on_business_hours_by_hand(con, policy):
    ny = lambda *a: datetime(*a, tzinfo=NEW_YORK).astimezone(UTC)  # noqa: E731
    created = ny(2026, 11, 16, 9)  # Monday 09:00; 16 business hours: due Tuesday 17:00 without pauses
    ticket = _events_ticket(
        "P1",
        created,
        [
            (created, "status_change", "system", "new"),
            (ny(2026, 11, 16, 10), "public_reply", "agent", None),
            (ny(2026, 11, 16, 10), "status_change", "agent", "pending"),  # 10:00 Mon
            (ny(2026, 11, 17, 11), "status_change", "requester", "open"),  # 11:00 Tue: 9 h paused
            (ny(2026, 11, 18, 16), "status_change", "agent", "solved"),
        ],
        channel="technical_support",
    )
    load(con, [ticket])
    policy = policy_with_resolution(policy, False)
    evaluate_ticket_clocks(con, policy, AS_OF)
    due, elapsed, pause, state = con.execute(
        "SELECT due_at, elapsed_seconds, pause_seconds, state FROM ticket_sla WHERE rule_id = 'RES-TECH'"
    ).fetchall()[0]
    assert pause == 9 * 3600  # 7 h Monday + 2 h Tuesday of open time; the night does not count
    assert due == ny(2026, 11, 19, 10)  # Tuesday 17:00 + 9 business hours = Thursday 10:00
    assert elapsed == (8 + 8 + 7) * 3600 - 9 * 3600 and state == "achieved"


def _resolution_row(con, policy, ticket, reopen_new_cycle=False):
    load(con, [ticket])
    evaluate_ticket_clocks(con, policy_with_resolution(policy, reopen_new_cycle), AS_OF)
    return con.execute(
        "SELECT cycle, started_at, stopped_at, pause_seconds, elapsed_seconds, due_at, state FROM ticket_sla "
        "WHERE rule_id = 'RES-ACCT' ORDER BY cycle"
    ).fetchall()


def test_requester_reply_with_new_status_open_ends_the_pause(con, policy):
    created = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    ticket = _events_ticket(
        "R1",
        created,
        [
            (created + hour, "public_reply", "agent", None),
            (created + hour, "status_change", "agent", "pending"),
            (created + 3 * hour, "requester_reply", "requester", "open"),  # the customer answers
            (created + 40 * hour, "status_change", "agent", "solved"),
        ],
    )
    # 24/7, 36 h target: paused 2 h (not 39 h until the solve), so the solve after 40 h is 2 h late
    assert _resolution_row(con, policy, ticket) == [
        (1, created, created + 40 * hour, 2 * 3600, 38 * 3600, created + 38 * hour, "breached")
    ]


def test_public_reply_with_new_status_pending_starts_a_pause(con, policy):
    created = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    ticket = _events_ticket(
        "R2",
        created,
        [
            (created + hour, "public_reply", "agent", "pending"),  # reply and pending at once
            (created + 11 * hour, "requester_reply", "requester", "open"),
            (created + 40 * hour, "status_change", "agent", "solved"),
        ],
    )
    # paused from 1 h to 11 h: 30 h of the 36 h counted, due at 46 h, solved at 40 h
    assert _resolution_row(con, policy, ticket) == [
        (1, created, created + 40 * hour, 10 * 3600, 30 * 3600, created + 46 * hour, "achieved")
    ]


def test_requester_reply_reopening_a_solved_ticket_is_a_reopen(con, policy):
    created = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    ticket = _events_ticket(
        "R3",
        created,
        [
            (created + hour, "public_reply", "agent", None),
            (created + 2 * hour, "status_change", "agent", "solved"),
            (created + 5 * hour, "requester_reply", "requester", "open"),  # "it still fails"
            (created + 50 * hour, "status_change", "agent", "solved"),
        ],
    )
    # one cycle: the 3 h between the solve and the reopen do not count; 47 h of 36 are over by 11 h
    assert _resolution_row(con, policy, ticket) == [
        (1, created, created + 50 * hour, 3 * 3600, 47 * 3600, created + 39 * hour, "breached")
    ]
    # a new cycle per reopen: the reopen starts cycle 2 at 5 h, solved 45 h later (36 h target)
    assert _resolution_row(con, policy, ticket, reopen_new_cycle=True) == [
        (1, created, created + 2 * hour, 0, 2 * 3600, created + 36 * hour, "achieved"),
        (2, created + 5 * hour, created + 50 * hour, 0, 45 * 3600, created + 41 * hour, "breached"),
    ]


def test_reconciliation_reads_status_changes_and_the_policy_as_the_clocks_do(con, policy):
    from compliance.rules import reconciliation
    from tests.test_reconciliation import _vendor_rows

    created = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    ticket = _events_ticket(
        "V1",
        created,
        [
            (created + hour, "internal_note", "agent", None),
            (created + 2 * hour, "public_reply", "agent", "solved"),  # answered and solved at once
            (created + 3 * hour, "requester_reply", "requester", "open"),  # ... reopened by the customer
            (created + 4 * hour, "status_change", "agent", "closed"),
        ],
        channel="sales",
    )
    load(con, [ticket])
    _vendor_rows(
        con,
        [
            ("V1", "tickets", "first_response", created + 5 * hour, True, "Within SLA"),
            ("V1", "tickets", "resolution", created + 5 * hour, True, "Within SLA"),
        ],
    )
    as_of = datetime(2026, 3, 31, tzinfo=UTC)

    def stops(reading_policy):
        reconciliation.evaluate(con, as_of, policy=reading_policy)
        return dict(con.execute("SELECT metric, stopped_at FROM vendor_reconciliation").fetchall())

    # the reopen by the reply counts, and the later close is the resolution
    assert stops(policy) == {"first_response": created + 2 * hour, "resolution": created + 4 * hour}
    # a policy whose only terminal status is solved, and whose first response is any agent note
    settings = dict(
        policy.ticket_settings, solved_statuses=["solved"], first_response_event_types=["public_reply", "internal_note"]
    )
    assert stops(dataclasses.replace(policy, ticket_settings=settings)) == {
        "first_response": created + hour,
        "resolution": None,
    }


def test_events_before_the_ticket_was_created_are_not_read_and_are_named(con, policy):
    """A reply stamped before its ticket existed (clock skew, a wrong ticket id) cannot answer it: the clock runs
    to the first reply after creation; such events, and events of tickets the export lacks, are in data quality."""
    created = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    ticket = _events_ticket(
        "E1",
        created,
        [
            (created - 16 * hour, "public_reply", "agent", "solved"),  # before creation: not a reply to E1
            (created + 30 * hour, "public_reply", "agent", None),
        ],
    )
    load(con, [ticket])
    con.execute(
        "INSERT INTO staged_ticket_events VALUES ('GHOST', ?, 'public_reply', 'agent', NULL, 'ticket_events.csv', 9)",
        [created],
    )
    con.execute(
        "CREATE TABLE data_quality (source VARCHAR, expectation VARCHAR, column_name VARCHAR, success BOOLEAN, "
        "unexpected_count BIGINT, observed VARCHAR, blocking BOOLEAN, message VARCHAR)"
    )
    evaluate_ticket_clocks(con, policy, AS_OF)
    record_event_order_findings(con)
    assert con.execute(
        "SELECT stopped_at, elapsed_seconds, state FROM ticket_sla WHERE record_id = 'E1' AND rule_id = 'SUP-ACCT-STD'"
    ).fetchall() == [(created + 30 * hour, 30 * 3600, "breached")]
    findings = {
        row[0]: row[1:]
        for row in con.execute(
            "SELECT expectation, success, unexpected_count, observed, blocking FROM data_quality ORDER BY ALL"
        ).fetchall()
    }
    assert findings == {
        "events_not_before_ticket_created": (False, 1, "E1", False),
        "events_of_known_tickets": (False, 1, "GHOST", False),
    }
    record_event_order_findings(con)  # a second run replaces the findings, never adds to them
    assert con.execute("SELECT count(*) FROM data_quality").fetchall() == [(2,)]
