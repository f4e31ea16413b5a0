"""Ticket clocks: one row per ticket × rule (× resolution cycle), with its verdict.

Which rules apply to a ticket is policy data (`applies_to` channel / tier, `binding_plans`); the clock
arithmetic on 24/7, business-hours and working-day calendars is ``compliance.calendars.compute_clocks``.
Everything is set-based SQL over ``staged_tickets`` and, when present, ``staged_ticket_events`` (window
functions over the events; never a Python loop per ticket).

Readings (compliance officers: these are the choices, each one is a setting or written here):

* **Source of truth.**  When ``staged_ticket_events`` exists, a ticket with at least one event row (at any
  time) takes its first-response and resolution clocks from its events (``clock_source = 'events'``); other
  tickets fall back to the ``first_response_at`` / ``resolved_at`` columns (``clock_source = 'tickets'``).
  The clock always starts at ``tickets.created_at``.  Events after the as-of instant are ignored; events at the
  same instant are ordered by ``source_line``.
* **First response** stops at the first event whose ``event_type`` is in ``tickets.first_response_event_types``
  (default ``[public_reply]``); internal notes and auto-acks never stop it unless listed.  The actor is not
  checked (the event type is the policy's criterion).
* **Acknowledgment** (kind ``acknowledgment``, TG-ACK) stops at the first ``auto_ack`` event; it exists only in
  the event history, so without a ``ticket_events`` export the rule reads "no data".  With the export loaded,
  a ticket without any event row had no acknowledgment and is judged (breached once past due): an export that
  leaves a ticket's events out must not excuse it (``missing_history_binding``, default ``true``; ``false``
  excludes such tickets, "no event history for this ticket").
* **Plans.**  A rule with ``binding_plans`` (ESC-REVIEW) counts breaches only for those plans; other plans are
  excluded ("reported but not bound").  A ticket whose plan is unknown (blank, or no plan column) is bound
  (``unknown_plan_binding``, default ``true``; ``false`` excludes it), and the rule's figures carry the segment
  ``plan=unknown`` with how many of its items had no plan, zero included.
* **Tier.**  ``staged_tickets.tier`` is the tier ingest read (``compliance.ingest.tickets_reading``: explicit, keywords,
  plan or default, recorded in ``tier_source``); a staged table without ``tier_source`` gets the same reading here.
* **Status timeline.**  Every event with a ``new_status``, whatever its ``event_type`` (a ``requester_reply``
  with ``new_status: open`` is how a help desk records a customer answering a pending ticket), changes the
  status from its instant; before the first one the ticket is ``new``.  Terminal statuses are ``tickets.solved_statuses`` (default
  ``[solved, closed]``).  A *solve* is a change into a terminal status from a non-terminal one (solved ->
  closed is not a second solve); a *reopen* is a change from a terminal status to any non-terminal one.
* **Pauses.**  Time in ``tickets.pausing_statuses`` (default ``pending``, ``on_hold``) does not count toward a
  resolution clock; ``pause_seconds`` is the *open time of the rule's calendar* while paused (so a weekend in
  ``pending`` pauses 0 s on a business-hours calendar).  ``elapsed_seconds`` of a resolution clock is the open
  time from start to stop (or as-of) minus ``pause_seconds``.  ``due_at`` is the first instant at which that
  active open time reaches the target, i.e. the unpaused due shifted by the open time of the pauses that
  began before it.  A ticket still paused at the as-of time is projected as if it resumed at as-of (no
  future pause is assumed), so a paused ticket is never breached by time spent paused.  A first-response or
  senior-review clock never pauses (``pause_seconds = 0``); a resolution clock without an event history has
  ``pause_seconds`` NULL (unknown).
* **Reopened tickets**, ``tickets.reopen_starts_new_cycle``:
  - ``false`` (default): one cycle (``cycle = 1``) from creation to the *last* solve; it is stopped only when
    the ticket is in a terminal status at the as-of time.  Time between a solve and the following reopen does
    not count (the ticket was not with the team): it is treated exactly like a pause (included in
    ``pause_seconds``).
  - ``true``: cycle 1 runs from creation to the first solve; every reopen starts cycle 2, 3, ... whose clock
    starts at the reopen and stops at the next solve.  Each cycle is its own ``ticket_sla`` row (same
    ``record_id``, its own verdict, counted as its own item in the metrics).
* **Working-day targets** (``target.working_days``): ``due_at`` is ``compute_clocks``' working-day deadline;
  ``target_seconds`` in the evidence is the open time of the calendar from the clock start to that deadline
  (computed with ``compute_clocks`` elapsed), so that ``elapsed_seconds`` and ``target_seconds`` are in the
  same unit.  A pause on such a rule shifts the deadline by the paused open time like any other.
* **Range targets** (profile email-support, "24-48 h", "3-7 working days"): the commitment (slow end) decides
  ``state``, ``breached`` and the metrics; ``expectation_due_at`` is the quick end's deadline (not shifted by
  pauses) and ``met_expectation`` is true when the clock stopped at or before it, false when it stopped later
  or is still running past it, NULL while running before it or when excluded.  ``expectation_metrics`` has the
  per-rule adherence to the expectation.
* **Response times** (``response_times``, "always shown", no target): wall-clock seconds from creation to the
  first response and to the resolution (events: the start of the final terminal run; else ``resolved_at``),
  stops after as-of ignored, tickets created after as-of left out.  One row per metric overall (every
  dimension ``all``) and one per channel, per tier, per plan (``unknown`` for a missing one) and per creation
  month (``period``, UTC), the other dimensions ``all``; no cross tabulations (they are not asked for, and each
  one costs as much again).
* Performance (2 cores, DuckDB 2.0, ``make bench``): 1,000,000 generated tickets (988,062 loaded) with
  7,382,379 events, platform policy: 4.6 s for the ``ticket_sla`` step.  10,000,000 generated tickets
  (9,880,000 loaded), no events: 21 s (storing ``ticket_sla`` in evidence order 10.7 s, of which about a third
  is the sort, compute_clocks 3.8 s, response_times 2.1 s).
* Timestamps are taken to the second: pause and elapsed open times are whole seconds (``compute_clocks``
  truncates), so sub-second inputs can shift a shifted due by less than a second per pause.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.calendars import compute_clocks
from compliance.core.sql import install_macros, lit, mark_stored_order, table_exists, ts_lit
from compliance.core.timings import timed
from compliance.ingest.tickets_reading import keyword_tier_sql, tier_reading_sql
from compliance.policy import Policy
from compliance.rules.common import (
    RULE_INPUTS,
    absent_rule_columns,
    append_results,
    apply_waivers,
    create_empty_results,
    create_items_view,
    keep_waiver_outcomes,
    prepare_waivers,
    write_metrics,
    write_violations,
)

# The domains whose results evaluate_ticket_clocks writes (violations_tickets, metrics_tickets).
TICKET_DOMAINS = ("tickets",)
TICKET_SLA_COLUMNS = (
    "record_id VARCHAR, rule_id VARCHAR, metric VARCHAR, calendar VARCHAR, target_seconds BIGINT, "
    "started_at TIMESTAMPTZ, due_at TIMESTAMPTZ, stopped_at TIMESTAMPTZ, elapsed_seconds BIGINT, state VARCHAR, "
    "breached BOOLEAN, remaining_seconds BIGINT, exclusion_reason VARCHAR, channel VARCHAR, tier VARCHAR, plan VARCHAR, "
    "pause_seconds BIGINT, cycle INTEGER, expectation_due_at TIMESTAMPTZ, met_expectation BOOLEAN, clock_source VARCHAR"
)
# The orders ticket_sla and at_risk are stored in, which are the orders of their evidence files (total orders:
# one row per ticket, rule and cycle).
TICKET_SLA_ORDER = "rule_id, started_at, record_id, cycle"
AT_RISK_ORDER = "remaining_seconds, due_at, record_id, rule_id, cycle"
RESPONSE_TIME_COLUMNS = (
    "metric VARCHAR, channel VARCHAR, tier VARCHAR, plan VARCHAR, period VARCHAR, count BIGINT, "
    "median_seconds DOUBLE, p90_seconds DOUBLE, p95_seconds DOUBLE, max_seconds DOUBLE"
)
# One row per ticket: what response_times reads (the stops as the clocks read them, before the as-of filter).
RESPONSE_INPUT_COLUMNS = (
    "ticket_id VARCHAR, channel VARCHAR, tier VARCHAR, plan VARCHAR, created_at TIMESTAMPTZ, "
    "first_response_stop TIMESTAMPTZ, resolution_stop TIMESTAMPTZ"
)
# The parts of compliance.core.timings.timed the clock engine's passes are recorded as (write_clock_rows).
CLOCK_ENGINE_PARTS = ("clock_engine:unpaused", "clock_engine:auxiliary", "clock_engine:shifted")
EXPECTATION_METRIC_COLUMNS = (
    "rule_id VARCHAR, achieved_expectation BIGINT, missed_expectation BIGINT, adherence_pct DOUBLE"
)
# metric name and the (start, stop) columns of staged_tickets for each clock kind.
CLOCK_KINDS = {
    "first_response": ("created_at", "first_response_at"),
    "senior_review": ("escalated_at", "senior_reviewed_at"),
    "resolution": ("created_at", "resolved_at"),
}
# Clock kinds that only ticket events can stop (from receipt): kind -> the event type that stops the clock.
EVENT_CLOCK_KINDS = {"acknowledgment": "auto_ack"}
DEFAULT_TICKET_SETTINGS = {
    "first_response_event_types": ["public_reply"],
    "pausing_statuses": ["pending", "on_hold"],
    "solved_statuses": ["solved", "closed"],
    "reopen_starts_new_cycle": False,
}


def _rule_rows(policy: Policy) -> list[tuple]:
    rows = []
    for rule in policy.rules_of(*CLOCK_KINDS, *EVENT_CLOCK_KINDS):
        binding = rule.setting("binding_plans")
        rows.append(
            (
                rule.id,
                rule.kind,
                rule.applies_to.get("channel"),
                rule.applies_to.get("tier"),
                rule.calendar,
                rule.target.seconds,
                rule.target.working_days,
                rule.target.expectation_seconds,
                rule.target.expectation_working_days,
                list(binding) if binding is not None else None,
                # an item whose plan is unknown is bound unless the policy says otherwise: leaving the plan out of
                # an export must not excuse a breach
                bool(rule.setting("unknown_plan_binding", True)),
                # with an event export loaded, a ticket without any event had no acknowledgment either
                bool(rule.setting("missing_history_binding", True)),
            )
        )
    return rows


def ticket_settings(policy: Policy | None) -> dict:
    """The policy's ``tickets`` settings over the defaults (the defaults alone without a policy)."""
    out = dict(DEFAULT_TICKET_SETTINGS)
    out.update({k: v for k, v in ((policy.ticket_settings if policy else None) or {}).items() if v is not None})
    return out


def _in_list(values) -> str:
    return "(" + (", ".join(lit(v) for v in values) or "NULL") + ")"


def evaluate_ticket_clocks(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    """Create ``ticket_sla`` (evidence), ``violations_tickets``, ``metrics_tickets``, ``at_risk``,
    ``expectation_metrics`` and ``response_times``: the clocks of every ticket, computed afresh (the cold path;
    ``compliance.rules.clock_store.evaluate_ticket_clocks_incrementally`` reuses the clock rows of unchanged
    tickets and gives the same tables through the same two steps)."""
    start_ticket_clocks(con, policy, as_of)
    if table_exists(con, "staged_tickets"):
        write_clock_rows(con, policy, as_of)
    write_tables_from_clock_rows(con, policy, as_of)


def start_ticket_clocks(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    """The start of the step: the macros, the waivers, and an empty ``ticket_sla`` and ``ticket_response_inputs``
    for :func:`write_clock_rows` to fill."""
    install_macros(con)
    prepare_waivers(con, policy, as_of)
    create_clock_tables(con)


def create_clock_tables(con: duckdb.DuckDBPyConnection) -> None:
    """An empty ``ticket_sla`` and ``ticket_response_inputs`` (and no waiver outcomes yet), once the macros and the
    waivers are prepared (:func:`start_ticket_clocks`)."""
    keep_waiver_outcomes(con, "ticket_sla")  # replaced below once the clocks are judged; empty without them
    con.execute(f"CREATE OR REPLACE TABLE ticket_sla ({TICKET_SLA_COLUMNS})")
    con.execute(f"CREATE OR REPLACE TEMP TABLE ticket_response_inputs ({RESPONSE_INPUT_COLUMNS})")


def write_clock_rows(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    """Insert into ``ticket_sla`` the clock rows of every ticket of ``staged_tickets`` (which must exist) as they
    stand before the exclusions by file and the waivers (:func:`write_tables_from_clock_rows` applies those), in
    ``TICKET_SLA_ORDER``, and one row per ticket into ``ticket_response_inputs``.

    A ticket's rows depend only on its own staged row, its own event rows, the policy and the as-of instant, so
    temporary views named ``staged_tickets`` / ``staged_ticket_events`` holding some tickets and their events
    give exactly those tickets' rows of a run over all of them (``compliance.rules.clock_store`` relies on it)."""
    as_of_sql = ts_lit(as_of)
    settings = ticket_settings(policy)
    _prepare_tickets(con, policy, settings, as_of_sql)
    con.execute(
        """INSERT INTO ticket_response_inputs
           SELECT ticket_id, channel, effective_tier, plan, created_at,
                  coalesce(ev_first_response, CASE WHEN NOT has_events THEN first_response_at END), final_resolution
           FROM _sla_tk"""
    )
    rules = _rule_rows(policy)
    if not rules:
        _drop(con, "_sla_tk", "_sla_cyc", "_sla_segs")
        return
    _create_clock_rules(con, rules)
    starts = " ".join(
        [f"WHEN {lit(kind)} THEN t.{start}" for kind, (start, _) in CLOCK_KINDS.items()]
        + [f"WHEN {lit(kind)} THEN t.created_at" for kind in EVENT_CLOCK_KINDS]
    )
    stops = " ".join(
        [f"WHEN {lit(kind)} THEN t.{stop}" for kind, (_, stop) in CLOCK_KINDS.items()]
        + [f"WHEN {lit(kind)} THEN t.ev_{kind}" for kind in EVENT_CLOCK_KINDS]
    )
    event_kinds = _in_list(["first_response", "resolution", *EVENT_CLOCK_KINDS])
    only_events = _in_list(EVENT_CLOCK_KINDS)
    # without any event export, event-only clocks are not created at all (their rules read "no data")
    events_present = table_exists(con, "staged_ticket_events")
    # one row per clock: ticket x rule, and x cycle for resolution clocks from events
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW ticket_clocks_in AS
            WITH j AS (
                -- the clock key packs (ticket row, rule, cycle) into one integer: unique, and far cheaper to carry
                -- through the clock engine and to join on than the text of those three
                SELECT (t.rowid::HUGEINT << 64) + (r.position::HUGEINT << 32) + coalesce(c.cycle, 1) AS clock_key,
                       t.ticket_id AS record_id, r.rule_id, r.kind AS metric, r.calendar_id, r.target_seconds,
                       r.target_days, r.exp_seconds, r.exp_days,
                       coalesce(c.cycle, 1) AS cycle,
                       CASE WHEN c.cycle IS NOT NULL THEN c.c_start ELSE CASE r.kind {starts} END END AS started_at,
                       CASE WHEN c.cycle IS NOT NULL THEN c.c_stop
                            WHEN r.kind = 'first_response' AND t.has_events THEN t.ev_first_response
                            ELSE CASE r.kind {stops} END END AS stop_raw,
                       CASE WHEN r.kind IN {event_kinds} AND t.has_events THEN 'events'
                            ELSE 'tickets' END AS clock_source, t.has_events, r.kind IN {only_events} AS events_only,
                       t.channel, t.effective_tier AS tier, t.plan, r.binding_plans, r.unknown_plan_binding,
                       r.missing_history_binding
                FROM _sla_tk t JOIN clock_rules r
                  ON (r.channel IS NULL OR r.channel = t.channel) AND (r.tier IS NULL OR r.tier = t.effective_tier)
                LEFT JOIN _sla_cyc c ON r.kind = 'resolution' AND t.has_events AND c.ticket_id = t.ticket_id
            )
            SELECT clock_key, record_id, rule_id, metric,
                   calendar_id, target_seconds, target_days, exp_seconds, exp_days, cycle, started_at,
                   -- a stop after the as-of instant had not happened yet at as-of
                   CASE WHEN stop_raw <= {as_of_sql} THEN stop_raw END AS stopped_at,
                   clock_source, channel, tier, plan,
                   CASE WHEN started_at > {as_of_sql} THEN 'started after the as-of time'
                        -- a policy may read a ticket without events as one whose history is unknown
                        WHEN events_only AND NOT has_events AND NOT missing_history_binding
                            THEN 'no event history for this ticket (missing_history_binding: false)'
                        WHEN binding_plans IS NOT NULL AND plan IS NULL AND NOT unknown_plan_binding
                            THEN 'plan unknown is reported but not bound by ' || rule_id || ' (unknown_plan_binding: false)'
                        WHEN binding_plans IS NOT NULL AND NOT list_contains(binding_plans, plan)
                            THEN 'plan ' || plan || ' is reported but not bound by ' || rule_id
                   END AS exclusion_reason
            FROM j WHERE started_at IS NOT NULL {"" if events_present else "AND NOT events_only"}"""
    )
    # pass 1: the unpaused clocks (due on the commitment target, open time from start to stop / as-of). The engine
    # gets only the columns it reads and writes them out again with its results: passing every column of the
    # clocks through it (ten million rows into the warehouse file) cost more than joining them back once.
    con.execute(
        "CREATE OR REPLACE TEMP VIEW _sla_p1_in AS "
        "SELECT clock_key, calendar_id, started_at, stopped_at, target_seconds, target_days FROM ticket_clocks_in"
    )
    with timed(con, CLOCK_ENGINE_PARTS[0]):
        compute_clocks(con, policy.calendars, "_sla_p1_in", "_sla_p1_out", as_of)
    con.execute(
        "CREATE OR REPLACE TEMP VIEW _sla_p1 AS "
        "SELECT c.*, o.clock_started_at, o.due_at, o.elapsed_seconds, o.remaining_seconds "
        "FROM ticket_clocks_in c JOIN _sla_p1_out o ON o.clock_key = c.clock_key"
    )
    # pass 2, one helper row per question (column `helper`): 'expectation' deadlines, open time to
    # 'working_day_due' deadlines, the open time of each 'pause', and the open time 'until_pause' starts
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sla_aux_in AS
            SELECT 'expectation|' || clock_key AS clock_key, 'expectation' AS helper, clock_key AS ck, 0 AS n, calendar_id,
                   started_at, NULL::TIMESTAMPTZ AS stopped_at,
                   CASE WHEN exp_days IS NULL THEN exp_seconds END AS target_seconds, exp_days AS target_days
            FROM _sla_p1 WHERE exp_seconds IS NOT NULL OR exp_days IS NOT NULL
            UNION ALL
            SELECT 'working_day_due|' || clock_key, 'working_day_due', clock_key, 0, calendar_id, started_at, due_at, NULL, NULL
            FROM _sla_p1 WHERE target_seconds IS NULL AND target_days IS NOT NULL AND due_at IS NOT NULL
            UNION ALL
            SELECT helper || '|' || clock_key || '|' || n, helper, clock_key, n, calendar_id,
                   CASE helper WHEN 'pause' THEN p_start ELSE started_at END,
                   CASE helper WHEN 'pause' THEN p_end ELSE p_start END,
                   NULL, NULL
            FROM (
                SELECT c.clock_key, c.calendar_id, c.started_at,
                       greatest(s.s_start, c.started_at) AS p_start,
                       least(coalesce(s.s_end, {as_of_sql}), coalesce(c.stopped_at, {as_of_sql})) AS p_end,
                       row_number() OVER (PARTITION BY c.clock_key ORDER BY s.s_start) AS n
                FROM ticket_clocks_in c JOIN _sla_segs s ON s.ticket_id = c.record_id
                WHERE c.metric = 'resolution' AND c.clock_source = 'events' AND c.started_at <= {as_of_sql}
                  AND s.s_start < coalesce(c.stopped_at, {as_of_sql})
                  AND (s.s_end IS NULL OR s.s_end > c.started_at)
            ) p, (VALUES ('pause'), ('until_pause')) helpers(helper)"""
    )
    with timed(con, CLOCK_ENGINE_PARTS[1]):
        compute_clocks(con, policy.calendars, "_sla_aux_in", "_sla_aux", as_of)
    # per clock: target in open seconds, total pause, and the pause open time before the due instant
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _sla_pz AS
           WITH p AS (
               SELECT p.ck, p.n, p.elapsed_seconds AS pause_s, q.elapsed_seconds AS to_pause_s,
                      coalesce(sum(p.elapsed_seconds) OVER (PARTITION BY p.ck ORDER BY p.n
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before_s
               FROM _sla_aux p JOIN _sla_aux q ON q.helper = 'until_pause' AND q.ck = p.ck AND q.n = p.n
               WHERE p.helper = 'pause'
           )
           SELECT p.ck, sum(pause_s) AS pause_total,
                  min(before_s) FILTER (WHERE to_pause_s - before_s >= coalesce(c.target_seconds, w.elapsed_seconds))
                      AS before_due
           FROM p JOIN _sla_p1 c ON c.clock_key = p.ck
           LEFT JOIN _sla_aux w ON w.helper = 'working_day_due' AND w.ck = p.ck
           GROUP BY p.ck"""
    )
    # pass 3: paused clocks whose due instant moves (pause open time before the due > 0)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _sla_shift_in AS
           SELECT c.clock_key, c.calendar_id, c.started_at, c.stopped_at,
                  coalesce(c.target_seconds, w.elapsed_seconds) + coalesce(z.before_due, z.pause_total) AS target_seconds
           FROM _sla_p1 c JOIN _sla_pz z ON z.ck = c.clock_key
           LEFT JOIN _sla_aux w ON w.helper = 'working_day_due' AND w.ck = c.clock_key
           WHERE coalesce(z.before_due, z.pause_total) > 0 AND c.due_at IS NOT NULL"""
    )
    with timed(con, CLOCK_ENGINE_PARTS[2]):
        compute_clocks(con, policy.calendars, "_sla_shift_in", "_sla_shift", as_of)
    # Pauses, moved dues, working-day targets and expectations concern few clocks, often none (no ticket events,
    # no such targets): a table without rows is left out rather than joined to every clock.
    helpers = {helper for (helper,) in con.execute("SELECT DISTINCT helper FROM _sla_aux").fetchall()}
    adjustments = [  # (has rows, join, {column: its value without the join})
        (_has_rows(con, "_sla_pz"), "LEFT JOIN _sla_pz z ON z.ck = c.clock_key", {"z.pause_total": "NULL::HUGEINT"}),
        (
            _has_rows(con, "_sla_shift"),
            "LEFT JOIN _sla_shift s ON s.clock_key = c.clock_key",
            {"s.due_at": "NULL::TIMESTAMPTZ", "s.remaining_seconds": "NULL::BIGINT"},
        ),
        (
            "working_day_due" in helpers,
            "LEFT JOIN _sla_aux w ON w.helper = 'working_day_due' AND w.ck = c.clock_key",
            {"w.elapsed_seconds": "NULL::BIGINT"},
        ),
        (
            "expectation" in helpers,
            "LEFT JOIN _sla_aux x ON x.helper = 'expectation' AND x.ck = c.clock_key",
            {"x.due_at": "NULL::TIMESTAMPTZ"},
        ),
    ]
    joins = "\n".join(join for has_rows, join, _ in adjustments if has_rows)
    col = {name: name if has_rows else null for has_rows, _, columns in adjustments for name, null in columns.items()}
    con.execute(
        f"""INSERT INTO ticket_sla
            SELECT record_id, rule_id, metric, calendar_id, target_seconds,
                   started_at, due_at, stopped_at, CASE WHEN started_at <= {as_of_sql} THEN elapsed_seconds END,
                   state, state = 'breached',
                   CASE WHEN state = 'active' THEN remaining_seconds END, exclusion_reason, channel, tier, plan,
                   pause_seconds, cycle, expectation_due_at,
                   CASE WHEN state = 'excluded' OR expectation_due_at IS NULL THEN NULL
                        WHEN stopped_at IS NOT NULL THEN stopped_at <= expectation_due_at
                        WHEN {as_of_sql} > expectation_due_at THEN FALSE END,
                   clock_source
            FROM (
                SELECT c.record_id, c.rule_id, c.metric, c.calendar_id,
                       coalesce(c.target_seconds, {col["w.elapsed_seconds"]}) AS target_seconds,
                       c.started_at, coalesce({col["s.due_at"]}, c.due_at) AS due_at, c.stopped_at,
                       c.elapsed_seconds - coalesce({col["z.pause_total"]}, 0) AS elapsed_seconds,
                       coalesce({col["s.remaining_seconds"]}, c.remaining_seconds) AS remaining_seconds,
                       c.exclusion_reason, c.channel, c.tier, c.plan,
                       CASE WHEN c.metric <> 'resolution' THEN 0
                            WHEN c.clock_source = 'events' THEN coalesce({col["z.pause_total"]}, 0) END AS pause_seconds,
                       c.cycle, {col["x.due_at"]} AS expectation_due_at, c.clock_source,
                       CASE WHEN c.exclusion_reason IS NOT NULL THEN 'excluded'
                            WHEN c.stopped_at IS NOT NULL
                                THEN CASE WHEN c.stopped_at <= coalesce({col["s.due_at"]}, c.due_at) THEN 'achieved'
                                          ELSE 'breached' END
                            WHEN {as_of_sql} > coalesce({col["s.due_at"]}, c.due_at) THEN 'breached'
                            ELSE 'active' END AS state
                FROM _sla_p1 c
                {joins})
            -- stored in the order of the evidence files, which then need no sort of their own
            ORDER BY {TICKET_SLA_ORDER}"""
    )
    mark_stored_order(con, "ticket_sla", TICKET_SLA_ORDER)
    for view in ("_sla_p1", "_sla_p1_in", "ticket_clocks_in"):
        con.execute(f"DROP VIEW {view}")
    _drop(
        con,
        "_sla_p1_out",
        "_sla_aux_in",
        "_sla_aux",
        "_sla_pz",
        "_sla_shift_in",
        "_sla_shift",
        "_sla_tk",
        "_sla_cyc",
        "_sla_segs",
    )


def write_tables_from_clock_rows(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    """From ``ticket_sla`` (the clock rows of :func:`write_clock_rows` of every ticket, in ``TICKET_SLA_ORDER``) and
    ``ticket_response_inputs``: ``response_times`` and ``expectation_metrics``, then the exclusions by file and
    the waivers in ``ticket_sla``, ``violations_tickets``, ``metrics_tickets`` (with the unknown plans) and
    ``at_risk``. Every figure is computed over all the rows here, never combined from partial ones."""
    con.execute(f"CREATE OR REPLACE TABLE expectation_metrics ({EXPECTATION_METRIC_COLUMNS})")
    con.execute(f"CREATE OR REPLACE TABLE response_times ({RESPONSE_TIME_COLUMNS})")
    as_of_sql = ts_lit(as_of)
    staged = table_exists(con, "staged_tickets")
    if staged:
        _write_response_times(con, as_of_sql)
    rules = _rule_rows(policy)
    if not staged or not rules:
        create_empty_results(con, "tickets")
        con.execute("CREATE OR REPLACE TABLE at_risk AS SELECT * FROM ticket_sla")
        return
    _create_clock_rules(con, rules)
    con.execute(
        """INSERT INTO expectation_metrics
           SELECT r.rule_id, count(*) FILTER (WHERE s.met_expectation),
                  count(*) FILTER (WHERE NOT s.met_expectation),
                  CASE WHEN count(s.met_expectation) > 0
                       THEN 100.0 * count(*) FILTER (WHERE s.met_expectation) / count(s.met_expectation) END
           FROM clock_rules r LEFT JOIN ticket_sla s ON s.rule_id = r.rule_id
           WHERE r.exp_seconds IS NOT NULL OR r.exp_days IS NOT NULL
           GROUP BY r.rule_id ORDER BY r.rule_id"""
    )
    _write_ticket_results(con, policy, as_of_sql)
    _write_unknown_plan_figures(con, [rule[0] for rule in rules if rule[9] is not None])


def _create_clock_rules(con: duckdb.DuckDBPyConnection, rules: list[tuple]) -> None:
    """Temp table ``clock_rules``: the rows of :func:`_rule_rows` with their position in the policy."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE clock_rules (rule_id VARCHAR, kind VARCHAR, channel VARCHAR, tier VARCHAR, "
        "calendar_id VARCHAR, target_seconds BIGINT, target_days BIGINT, exp_seconds BIGINT, exp_days BIGINT, "
        "binding_plans VARCHAR[], unknown_plan_binding BOOLEAN, missing_history_binding BOOLEAN, position INTEGER)"
    )
    con.executemany(
        "INSERT INTO clock_rules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*rule, position) for position, rule in enumerate(rules)],
    )


def _write_unknown_plan_figures(con: duckdb.DuckDBPyConnection, rule_ids: list[str]) -> None:
    """Segment ``plan=unknown`` of the rules bound by plan, in ``metrics_tickets``: how many of their items had no
    plan (bound or not, per ``unknown_plan_binding``), always shown, zero included."""
    if not rule_ids:
        return
    items = create_items_view(
        con,
        "tickets_unknown_plan",
        f"""SELECT rule_id, record_id, started_at, NULL, state, CASE WHEN stopped_at IS NOT NULL THEN elapsed_seconds END,
                   due_at, stopped_at, NULL, NULL, NULL, NULL
            FROM ticket_sla WHERE plan IS NULL AND rule_id IN {_in_list(rule_ids)}""",
    )
    write_metrics(con, "tickets_unknown_plan", items, rule_ids)
    append_results(con, "tickets", "tickets_unknown_plan", "metrics", "tickets", "segment = 'all'", "plan=unknown")
    con.execute(f"DROP VIEW {items}")


def _has_rows(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return con.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchall()[0][0]


def _drop(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    for name in names:
        con.execute(f"DROP TABLE IF EXISTS {name}")


# The events a ticket's clocks read: an event stamped before its ticket was created cannot answer, pause or
# solve it (a clock skew or a wrong ticket id in the export), so it is not read; `record_event_order_findings`
# names such events, and the events of tickets the export does not hold, in data quality.
EVENTS_IN_TICKET_ORDER = """SELECT e.* FROM staged_ticket_events e
    WHERE NOT EXISTS (SELECT 1 FROM staged_tickets t WHERE t.ticket_id = e.ticket_id AND e.occurred_at < t.created_at)"""

# data_quality rows of the event findings (source, expectation, what an unexpected row is)
EVENT_ORDER_FINDINGS = {
    "events_not_before_ticket_created": (
        "JOIN staged_tickets t ON t.ticket_id = e.ticket_id WHERE e.occurred_at < t.created_at",
        "events stamped before their ticket was created, not read by the clocks",
    ),
    "events_of_known_tickets": (
        "WHERE NOT EXISTS (SELECT 1 FROM staged_tickets t WHERE t.ticket_id = e.ticket_id)",
        "events of tickets the tickets export does not hold, judged nowhere",
    ),
}


def record_event_order_findings(con: duckdb.DuckDBPyConnection) -> None:
    """Replace the event findings in ``data_quality`` (when the checks have written it): per finding the count
    and the first ticket ids, never blocking (the clocks already leave such events out). Called by the run's
    ticket_sla step, beside the clocks; a period's report reads the run's findings."""
    if not (table_exists(con, "data_quality") and table_exists(con, "staged_ticket_events")):
        return
    con.execute(
        "DELETE FROM data_quality WHERE source = 'ticket_events' AND expectation IN "
        + _in_list(list(EVENT_ORDER_FINDINGS))
    )
    for expectation, (condition, meaning) in EVENT_ORDER_FINDINGS.items():
        con.execute(
            f"""INSERT INTO data_quality (source, expectation, column_name, success, unexpected_count, observed,
                                          blocking, message)
                SELECT 'ticket_events', ?, 'ticket_id', count(*) = 0, count(*),
                       array_to_string(list(DISTINCT e.ticket_id ORDER BY e.ticket_id)[1:5], ', '), FALSE,
                       CASE WHEN count(*) = 0 THEN ? ELSE count(*) || ' ' || ? END
                FROM staged_ticket_events e {condition}""",
            [expectation, f"no {meaning.split(',')[0]}", meaning],
        )


def create_status_changes(con: duckdb.DuckDBPyConnection, settings: dict, as_of_sql: str, into: str) -> None:
    """Temp table ``into``: every ticket event carrying a status by the as-of instant (any event type may carry
    one: a requester's reply reopening a pending ticket), in event order, with ``term`` (a terminal status),
    ``is_solve`` (into a terminal status from a non-terminal one), ``is_reopen``, ``is_last`` (the ticket's last
    status), ``next_at`` (the next status change) and ``cyc`` (1 + the reopens so far)."""
    terminal = _in_list(settings["solved_statuses"])
    order = "occurred_at, coalesce(source_line, 0)"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {into} AS
            WITH s AS (
                SELECT ticket_id, occurred_at, source_line, new_status, new_status IN {terminal} AS term,
                       coalesce(lag(new_status IN {terminal}) OVER w, FALSE) AS prev_term,
                       lead(occurred_at) OVER w AS next_at,
                       row_number() OVER (PARTITION BY ticket_id ORDER BY occurred_at DESC, coalesce(source_line, 0) DESC) = 1
                           AS is_last
                FROM ({EVENTS_IN_TICKET_ORDER})
                WHERE new_status IS NOT NULL AND occurred_at <= {as_of_sql}
                WINDOW w AS (PARTITION BY ticket_id ORDER BY {order})
            )
            SELECT *, term AND NOT prev_term AS is_solve, prev_term AND NOT term AS is_reopen,
                   1 + sum(CASE WHEN prev_term AND NOT term THEN 1 ELSE 0 END)
                         OVER (PARTITION BY ticket_id ORDER BY {order}
                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cyc
            FROM s"""
    )


def event_stops_sql(settings: dict, as_of_sql: str, status_changes: str) -> str:
    """The one reading of the stops a ticket's events give, by the as-of instant (a query; ``status_changes`` is a
    table of :func:`create_status_changes`): one row per ticket with events, ``ev_first_response`` (its first
    event of a ``first_response_event_types`` type), ``ev_<kind>`` for each of ``EVENT_CLOCK_KINDS`` (its first
    event of that type) and ``ev_resolution`` (the last solve of a ticket whose last status is terminal, else
    NULL). The clocks and the vendor reconciliation both read the events this way."""
    fr_types = _in_list(settings["first_response_event_types"])
    event_stops = "".join(
        f", min(occurred_at) FILTER (WHERE event_type = {lit(event)} AND occurred_at <= {as_of_sql}) AS ev_{kind}"
        for kind, event in EVENT_CLOCK_KINDS.items()
    )
    event_columns = "".join(f"e.ev_{kind}, " for kind in EVENT_CLOCK_KINDS)
    return f"""SELECT e.ticket_id, e.ev_first_response, {event_columns}
                      CASE WHEN r.ends_terminal THEN r.last_solve END AS ev_resolution
               FROM (SELECT ticket_id,
                            min(occurred_at) FILTER (WHERE event_type IN {fr_types} AND occurred_at <= {as_of_sql})
                                AS ev_first_response{event_stops}
                     FROM ({EVENTS_IN_TICKET_ORDER}) GROUP BY ticket_id) e
               LEFT JOIN (SELECT ticket_id, max(occurred_at) FILTER (WHERE is_solve) AS last_solve,
                                 bool_or(is_last AND term) AS ends_terminal
                          FROM {status_changes} GROUP BY ticket_id) r ON r.ticket_id = e.ticket_id"""


def create_event_stops(con: duckdb.DuckDBPyConnection, settings: dict, as_of_sql: str, into: str) -> None:
    """Temp table ``into``: :func:`event_stops_sql` of ``staged_ticket_events`` (which must exist)."""
    create_status_changes(con, settings, as_of_sql, f"{into}_status")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {into} AS {event_stops_sql(settings, as_of_sql, f'{into}_status')}")
    con.execute(f"DROP TABLE {into}_status")


def _prepare_tickets(con: duckdb.DuckDBPyConnection, policy: Policy, settings: dict, as_of_sql: str) -> None:
    """``_sla_tk`` (tickets + effective tier + event-derived stops), ``_sla_cyc`` (resolution cycles from
    events: ticket_id, cycle, c_start, c_stop) and ``_sla_segs`` (non-counting status segments)."""
    pausing = _in_list(settings["pausing_statuses"])
    new_cycle = bool(settings["reopen_starts_new_cycle"])
    staged_columns = {row[0] for row in con.execute("DESCRIBE staged_tickets").fetchall()}
    if "tier_source" in staged_columns:  # ingest has read the tier already (compliance.ingest.tickets_reading)
        tier_sql = "t.tier"
    else:  # a staged table built otherwise: the same reading here
        tier_sql, _ = tier_reading_sql(
            policy, "t.tier", "t.plan", keyword_tier_sql(policy, "t.subject", "t.description")
        )
    # only the columns the clocks read: free text would make this copy of every ticket several times wider
    ticket_columns = ", ".join(
        f"t.{name}"
        for name in dict.fromkeys(
            ["ticket_id", "channel", "tier", "plan", *(column for pair in CLOCK_KINDS.values() for column in pair)]
        )
    )
    event_stops_null = "".join(f"NULL::TIMESTAMPTZ AS ev_{kind}, " for kind in EVENT_CLOCK_KINDS)
    event_stop_columns = "".join(f"e.ev_{kind}, " for kind in EVENT_CLOCK_KINDS)
    if not table_exists(con, "staged_ticket_events"):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _sla_tk AS
                SELECT {ticket_columns}, {tier_sql} AS effective_tier, FALSE AS has_events,
                       NULL::TIMESTAMPTZ AS ev_first_response, {event_stops_null} t.resolved_at AS final_resolution
                FROM staged_tickets t"""
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _sla_cyc (ticket_id VARCHAR, cycle INTEGER, "
            "c_start TIMESTAMPTZ, c_stop TIMESTAMPTZ)"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _sla_segs (ticket_id VARCHAR, s_start TIMESTAMPTZ, s_end TIMESTAMPTZ)"
        )
        return
    create_status_changes(con, settings, as_of_sql, "_sla_st")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sla_tk AS
            SELECT {ticket_columns}, {tier_sql} AS effective_tier, e.ticket_id IS NOT NULL AS has_events,
                   e.ev_first_response, {event_stop_columns}
                   CASE WHEN e.ticket_id IS NULL THEN t.resolved_at ELSE e.ev_resolution END AS final_resolution
            FROM staged_tickets t
            LEFT JOIN ({event_stops_sql(settings, as_of_sql, "_sla_st")}) e ON e.ticket_id = t.ticket_id"""
    )
    if new_cycle:
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _sla_cyc AS
               WITH c AS (
                   SELECT ticket_id, 1 AS cycle, created_at AS c_start FROM _sla_tk WHERE has_events
                   UNION ALL
                   SELECT ticket_id, cyc, occurred_at FROM _sla_st WHERE is_reopen
               ), s AS (
                   SELECT ticket_id, cyc, min(occurred_at) AS c_stop FROM _sla_st WHERE is_solve GROUP BY ALL
               )
               SELECT c.ticket_id, c.cycle::INTEGER AS cycle, c.c_start, s.c_stop
               FROM c LEFT JOIN s ON s.ticket_id = c.ticket_id AND s.cyc = c.cycle"""
        )
    else:
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _sla_cyc AS
               SELECT ticket_id, 1::INTEGER AS cycle, created_at AS c_start, final_resolution AS c_stop
               FROM _sla_tk WHERE has_events"""
        )
    # segments that do not count: pausing statuses, and (one cycle) the time between a solve and a reopen
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sla_segs AS
            SELECT ticket_id, occurred_at AS s_start, next_at AS s_end FROM _sla_st
            WHERE (new_status IN {pausing} OR term) AND (next_at IS NULL OR next_at > occurred_at)"""
    )
    con.execute("DROP TABLE _sla_st")


def _write_response_times(con: duckdb.DuckDBPyConnection, as_of_sql: str) -> None:
    """``response_times`` from ``ticket_response_inputs``: exact statistics overall and per channel, per tier, per
    plan and per month."""
    # The commitments catalog asks for the times per channel / tier / plan; every grouping set of exact
    # quantiles holds all the values once more (the full cube of 16 sets took 8.8 s at 10M tickets), so only
    # these five are kept. The month is grouped on as a timestamp and written out as text afterwards.
    con.execute(
        f"""INSERT INTO response_times
           WITH d AS (
               SELECT 'first_response' AS metric, channel, tier, coalesce(plan, 'unknown') AS plan,
                      date_trunc('month', cr_utc(created_at)) AS month,
                      cr_span(created_at, first_response_stop) AS s, created_at, first_response_stop AS stop
               FROM ticket_response_inputs
               UNION ALL
               SELECT 'resolution', channel, tier, coalesce(plan, 'unknown'),
                      date_trunc('month', cr_utc(created_at)),
                      cr_span(created_at, resolution_stop), created_at, resolution_stop
               FROM ticket_response_inputs
           )
           SELECT metric,
                  CASE WHEN g_channel = 1 THEN 'all' ELSE coalesce(channel, 'unknown') END,
                  CASE WHEN g_tier = 1 THEN 'all' ELSE coalesce(tier, 'unknown') END,
                  CASE WHEN g_plan = 1 THEN 'all' ELSE plan END,
                  CASE WHEN g_month = 1 THEN 'all' ELSE strftime(month, '%Y-%m') END,
                  n, q[1], q[2], q[3], longest
           FROM (
               -- one quantile aggregate with a list of fractions keeps one copy of the values per group instead
               -- of three
               SELECT metric, channel, tier, plan, month, count(s) AS n, quantile_cont(s, [0.5, 0.9, 0.95]) AS q,
                      max(s) AS longest, grouping(channel) AS g_channel, grouping(tier) AS g_tier,
                      grouping(plan) AS g_plan, grouping(month) AS g_month
               FROM d WHERE stop IS NOT NULL AND stop <= {as_of_sql} AND created_at <= {as_of_sql}
               GROUP BY GROUPING SETS ((metric), (metric, channel), (metric, tier), (metric, plan), (metric, month)))
           ORDER BY ALL"""
    )


# The cause of a breached clock (violations.cause): stopped late, never stopped on a closed ticket, still open.
_CAUSES = {
    "first_response": ("answered_late", "never_answered"),
    "senior_review": ("reviewed_late", "never_reviewed"),
    "resolution": ("resolved_late", "open_past_due"),
    "acknowledgment": ("acknowledged_late", "never_acknowledged"),
}


def events_stop_missing(con: duckdb.DuckDBPyConnection, kind: str, policy: Policy) -> str | None:
    """Why the ticket events cannot stop a clock of ``kind`` that they stand in for (first response,
    resolution): the ticket_events export carries none of the events that stop it. None when it does, or when
    there is no event export (the ticket columns are then the only source)."""
    if not RULE_INPUTS[kind].events_stand_in or not table_exists(con, "staged_ticket_events"):
        return None
    settings = ticket_settings(policy)
    if kind == "first_response":
        stops, words = (
            f"event_type IN {_in_list(settings['first_response_event_types'])}",
            " or ".join(settings["first_response_event_types"]),
        )
    else:
        # a solve is a new_status on any event, as create_status_changes reads the timeline
        stops = f"new_status IN {_in_list(settings['solved_statuses'])}"
        words = "new_status " + " or ".join(settings["solved_statuses"])
    if con.execute(f"SELECT EXISTS (SELECT 1 FROM staged_ticket_events WHERE {stops})").fetchall()[0][0]:
        return None
    files = [
        row[0] for row in con.execute("SELECT DISTINCT source_file FROM staged_ticket_events ORDER BY ALL").fetchall()
    ]
    if not files:
        return None
    return f"{', '.join(files)} {'has' if len(files) == 1 else 'have'} no {words} event"


def _exclude_clocks_without_inputs(con: duckdb.DuckDBPyConnection, policy: Policy) -> None:
    """Clocks whose stop the ticket's file (or the event export standing in for it) cannot carry are excluded,
    naming the file and the column: an absent column is not a missing response."""
    excluded = (
        "state = 'excluded', breached = FALSE, remaining_seconds = NULL, met_expectation = NULL, "
        "exclusion_reason = $reason"
    )
    for kind in CLOCK_KINDS:
        events_reason = events_stop_missing(con, kind, policy)
        if events_reason:
            con.execute(
                f"UPDATE ticket_sla SET {excluded} WHERE metric = $kind AND clock_source = 'events' "
                "AND state <> 'excluded'",
                {"kind": kind, "reason": events_reason},
            )
        reasons: dict[str, list[str]] = {}
        for source, file, _, reason in absent_rule_columns(con, kind):
            if source == "tickets":
                reasons.setdefault(file, []).append(reason)
        for file, file_reasons in reasons.items():
            con.execute(
                f"""UPDATE ticket_sla SET {excluded}
                    WHERE metric = $kind AND clock_source = 'tickets' AND state <> 'excluded'
                      AND record_id IN (SELECT ticket_id FROM staged_tickets WHERE source_file = $file)""",
                {"kind": kind, "file": file, "reason": "; ".join(file_reasons)},
            )


def _write_ticket_results(con: duckdb.DuckDBPyConnection, policy: Policy, as_of_sql: str) -> None:
    _exclude_clocks_without_inputs(con, policy)
    # A waived clock is state 'waived' in the evidence itself, neither breached nor at risk (common.apply_waivers).
    apply_waivers(
        con,
        "ticket_sla",
        [rule.id for rule in policy.rules_of(*CLOCK_KINDS, *EVENT_CLOCK_KINDS)],
        "breached = FALSE, remaining_seconds = NULL",
    )
    keep_waiver_outcomes(con, "ticket_sla")
    settings = ticket_settings(policy)
    # Tickets closed at the as-of time while a clock other than resolution had not stopped: that response never
    # came. Closed is read like the clocks read it: from the last status change of a ticket's event history when
    # it has one (a new_status on any event, as create_status_changes reads it), else from its resolved_at / status
    # columns.
    terminal = _in_list(settings["solved_statuses"])
    events = table_exists(con, "staged_ticket_events")
    last_status = (
        f"""(SELECT ticket_id, arg_max(new_status, (occurred_at, coalesce(source_line, 0)))
                    FILTER (WHERE new_status IS NOT NULL AND occurred_at <= {as_of_sql})
                    AS status
             FROM staged_ticket_events WHERE ticket_id IN (SELECT record_id FROM b) GROUP BY ticket_id)"""
        if events
        else "(SELECT NULL::VARCHAR AS ticket_id, NULL::VARCHAR AS status WHERE FALSE)"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sla_closed AS
            WITH b AS (
                SELECT DISTINCT record_id FROM ticket_sla
                WHERE state = 'breached' AND stopped_at IS NULL AND metric <> 'resolution'
            )
            SELECT b.record_id FROM b JOIN staged_tickets t ON t.ticket_id = b.record_id
            LEFT JOIN {last_status} e ON e.ticket_id = b.record_id
            WHERE CASE WHEN e.ticket_id IS NOT NULL THEN coalesce(e.status IN {terminal}, FALSE)
                       ELSE t.resolved_at <= {as_of_sql} OR t.status IN {terminal} END"""
    )
    late_cause = (
        "CASE metric " + " ".join(f"WHEN {lit(k)} THEN {lit(late)}" for k, (late, _) in _CAUSES.items()) + " END"
    )
    closed_cause = (
        "CASE metric " + " ".join(f"WHEN {lit(k)} THEN {lit(closed)}" for k, (_, closed) in _CAUSES.items()) + " END"
    )
    metric_words = {
        "first_response": "first response",
        "senior_review": "senior review of the escalation",
        "resolution": "resolution",
        "acknowledgment": "automatic acknowledgment",
    }
    metric_phrase = "CASE metric " + " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in metric_words.items()) + " END"
    calendar_words = (
        "CASE calendar "
        + " ".join(
            f"WHEN {lit(cal_id)} THEN {lit('' if spec.kind == 'always_open' else ' of ' + cal_id + ' open time')}"
            for cal_id, spec in policy.calendars.items()
        )
        + " ELSE '' END"
    )
    items = create_items_view(
        con,
        "tickets",
        f"""SELECT rule_id, record_id, started_at,
                   'channel=' || coalesce(channel, '-') || ';tier=' || coalesce(tier, '-') || ';plan=' || coalesce(plan, '-'),
                   state,
                   CASE WHEN stopped_at IS NOT NULL THEN elapsed_seconds END,
                   due_at, stopped_at,
                   CASE WHEN state = 'breached' THEN cr_secs(due_at, coalesce(stopped_at, {as_of_sql})) END,
                   CASE WHEN state = 'breached' THEN 'breach' END,
                   CASE WHEN state = 'breached' THEN
                       'Ticket ' || record_id || ' (' || coalesce(channel, '?') || ', ' || coalesce(tier, '?') || ', '
                       || coalesce(plan, 'plan unknown') || '), started ' || cr_ts(started_at) || ': '
                       || CASE WHEN cycle > 1 THEN '(cycle ' || cycle || ' from the reopen) ' ELSE '' END
                       || {metric_phrase} || ' due ' || cr_ts(due_at) || ' (' || cr_dur(target_seconds) || {calendar_words}
                       || CASE WHEN coalesce(pause_seconds, 0) > 0
                               THEN ' not counting ' || cr_dur(pause_seconds) || ' paused' ELSE '' END
                       || '), '
                       || CASE WHEN stopped_at IS NOT NULL THEN 'given ' || cr_ts(stopped_at) || ', '
                               ELSE 'still missing at the as-of time ' || cr_ts({as_of_sql}) || ', ' END
                       || cr_dur(cr_secs(due_at, coalesce(stopped_at, {as_of_sql}))) || ' late'
                       || CASE WHEN {calendar_words} <> '' THEN ' (' || cr_dur(greatest(elapsed_seconds - target_seconds, 0))
                               || {calendar_words} || ')' ELSE '' END || '.'
                   END,
                   CASE WHEN state <> 'breached' THEN NULL
                        WHEN stopped_at IS NOT NULL THEN {late_cause}
                        WHEN record_id IN (SELECT record_id FROM _sla_closed) THEN {closed_cause}
                        ELSE 'open_past_due' END
            FROM ticket_sla""",
    )
    write_violations(con, "tickets", items)
    write_metrics(con, "tickets", items, [rule.id for rule in policy.rules_of(*CLOCK_KINDS, *EVENT_CLOCK_KINDS)])
    con.execute(f"DROP VIEW {items}")
    con.execute("DROP TABLE _sla_closed")
    con.execute(
        f"CREATE OR REPLACE TABLE at_risk AS SELECT * FROM ticket_sla WHERE state = 'active' ORDER BY {AT_RISK_ORDER}"
    )
    mark_stored_order(con, "at_risk", AT_RISK_ORDER)
