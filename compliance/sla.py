"""Ticket clocks: one row per ticket × rule (first response, senior review, resolution), with its verdict.

Which rules apply to a ticket is policy data (`applies_to` channel / tier, `binding_plans`); the clock
arithmetic on 24/7, business-hours and working-day calendars is ``compliance.calendars.compute_clocks``.
Everything is set-based SQL over ``staged_tickets``.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.calendars import compute_clocks
from compliance.policy import Policy, Rule
from compliance.rules.common import (
    create_empty_results,
    create_items,
    drop_items,
    install_macros,
    insert_items,
    lit,
    table_exists,
    ts_lit,
    write_metrics,
    write_violations,
)

TICKET_SLA_COLUMNS = (
    "record_id VARCHAR, rule_id VARCHAR, metric VARCHAR, calendar VARCHAR, target_seconds BIGINT, "
    "started_at TIMESTAMPTZ, due_at TIMESTAMPTZ, stopped_at TIMESTAMPTZ, elapsed_seconds BIGINT, state VARCHAR, "
    "breached BOOLEAN, remaining_seconds BIGINT, exclusion_reason VARCHAR, channel VARCHAR, tier VARCHAR, plan VARCHAR"
)
# metric name and the (start, stop) columns of staged_tickets for each clock kind.
CLOCK_KINDS = {
    "first_response": ("created_at", "first_response_at"),
    "senior_review": ("escalated_at", "senior_reviewed_at"),
    "resolution": ("created_at", "resolved_at"),
}


def _rule_rows(policy: Policy) -> list[tuple]:
    rows = []
    for rule in policy.rules_of(*CLOCK_KINDS):
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
                list(binding) if binding is not None else None,
            )
        )
    return rows


def evaluate_ticket_clocks(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    """Create ``ticket_sla`` (evidence), ``violations_tickets``, ``metrics_tickets`` and ``at_risk``."""
    install_macros(con)
    con.execute(f"CREATE OR REPLACE TABLE ticket_sla ({TICKET_SLA_COLUMNS})")
    rules = _rule_rows(policy)
    if not table_exists(con, "staged_tickets") or not rules:
        create_empty_results(con, "tickets")
        con.execute("CREATE OR REPLACE TABLE at_risk AS SELECT * FROM ticket_sla")
        return
    as_of_sql = ts_lit(as_of)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE clock_rules (rule_id VARCHAR, kind VARCHAR, channel VARCHAR, tier VARCHAR, "
        "calendar_id VARCHAR, target_seconds BIGINT, target_days BIGINT, binding_plans VARCHAR[])"
    )
    con.executemany("INSERT INTO clock_rules VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rules)
    priority_plans = ", ".join(map(lit, policy.priority_plans)) or "NULL"
    starts = " ".join(f"WHEN {lit(kind)} THEN t.{start}" for kind, (start, _) in CLOCK_KINDS.items())
    stops = " ".join(f"WHEN {lit(kind)} THEN t.{stop}" for kind, (_, stop) in CLOCK_KINDS.items())
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE ticket_clocks_in AS
            WITH t AS (
                SELECT *, coalesce(tier, CASE WHEN plan IN ({priority_plans}) THEN 'priority'
                                         ELSE {lit(policy.default_tier)} END) AS effective_tier
                FROM staged_tickets
            )
            SELECT t.ticket_id || '|' || r.rule_id AS clock_key, t.ticket_id AS record_id, r.rule_id,
                   r.kind AS metric, r.calendar_id, r.target_seconds, r.target_days,
                   CASE r.kind {starts} END AS started_at,
                   -- a stop after the as-of instant had not happened yet at as-of
                   CASE WHEN (CASE r.kind {stops} END) <= {as_of_sql} THEN CASE r.kind {stops} END END AS stopped_at,
                   t.channel, t.effective_tier AS tier, t.plan,
                   CASE WHEN (CASE r.kind {starts} END) > {as_of_sql} THEN 'started after the as-of time'
                        WHEN r.binding_plans IS NOT NULL AND (t.plan IS NULL OR NOT list_contains(r.binding_plans, t.plan))
                            THEN 'plan ' || coalesce(t.plan, 'unknown') || ' is reported but not bound by ' || r.rule_id
                   END AS exclusion_reason
            FROM t JOIN clock_rules r
              ON (r.channel IS NULL OR r.channel = t.channel) AND (r.tier IS NULL OR r.tier = t.effective_tier)
            WHERE CASE r.kind {starts} END IS NOT NULL"""
    )
    compute_clocks(con, policy.calendars, "ticket_clocks_in", "ticket_clocks_out", as_of)
    con.execute(
        f"""INSERT INTO ticket_sla
            SELECT record_id, rule_id, metric, calendar_id, target_seconds,
                   started_at, due_at, stopped_at, CASE WHEN started_at <= {as_of_sql} THEN elapsed_seconds END,
                   state, state = 'breached',
                   CASE WHEN state = 'active' THEN remaining_seconds END, exclusion_reason, channel, tier, plan
            FROM (
                SELECT *,
                       CASE WHEN exclusion_reason IS NOT NULL THEN 'excluded'
                            WHEN stopped_at IS NOT NULL THEN CASE WHEN stopped_at <= due_at THEN 'achieved' ELSE 'breached' END
                            WHEN {as_of_sql} > due_at THEN 'breached'
                            ELSE 'active' END AS state
                FROM ticket_clocks_out)
            ORDER BY rule_id, started_at, record_id"""
    )
    con.execute("DROP TABLE ticket_clocks_in")
    con.execute("DROP TABLE ticket_clocks_out")
    _write_ticket_results(con, policy, as_of_sql)


def _write_ticket_results(con: duckdb.DuckDBPyConnection, policy: Policy, as_of_sql: str) -> None:
    items = create_items(con, "tickets")
    metric_words = {
        "first_response": "first response",
        "senior_review": "senior review of the escalation",
        "resolution": "resolution",
    }
    metric_phrase = "CASE metric " + " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in metric_words.items()) + " END"
    calendar_words = "CASE calendar " + " ".join(
        f"WHEN {lit(cal_id)} THEN {lit('' if spec.kind == 'always_open' else ' of ' + cal_id + ' open time')}"
        for cal_id, spec in policy.calendars.items()
    ) + " ELSE '' END"
    insert_items(
        con,
        items,
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
                       || {metric_phrase} || ' due ' || cr_ts(due_at) || ' (' || cr_dur(target_seconds) || {calendar_words}
                       || '), '
                       || CASE WHEN stopped_at IS NOT NULL THEN 'given ' || cr_ts(stopped_at) || ', '
                               ELSE 'still missing at the as-of time ' || cr_ts({as_of_sql}) || ', ' END
                       || cr_dur(cr_secs(due_at, coalesce(stopped_at, {as_of_sql}))) || ' late'
                       || CASE WHEN {calendar_words} <> '' THEN ' (' || cr_dur(greatest(elapsed_seconds - target_seconds, 0))
                               || {calendar_words} || ')' ELSE '' END || '.'
                   END
            FROM ticket_sla""",
    )
    write_violations(con, "tickets", items)
    write_metrics(con, "tickets", items, [rule.id for rule in policy.rules_of(*CLOCK_KINDS)])
    drop_items(con, items)
    con.execute(
        """CREATE OR REPLACE TABLE at_risk AS
           SELECT * FROM ticket_sla WHERE state = 'active' ORDER BY remaining_seconds, due_at, record_id"""
    )
