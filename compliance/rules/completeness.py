"""Information completeness (TG-COMPLETE-INFO): does a request carry what the support guide asks for, and does
a request that lacks it wait longer for its first response?

A rule of kind ``information_completeness`` names its required items with a detection regex each
(``settings.required_information``). One set-based statement matches every pattern against every ticket's
subject and description in DuckDB; per ticket only *which* items are missing is kept, never a matched value.

This is an expectation on the customer, not a promise of the support team, so an incomplete ticket is a
``warning`` (never a ``breach``) naming the missing items. Items: a complete ticket is ``achieved``, an incomplete
one ``breached``, so that adherence is the share of complete tickets and the verdict is "met" while that share
reaches the rule's ``met_min_adherence_pct``. Duration is the ticket's first-response elapsed time from
``ticket_sla`` (open time of its first-response rule's calendar, answered tickets only), which gives the median
and p90 of complete against incomplete tickets in the segments ``information=complete|incomplete`` (also per
tier), and per item the share of tickets carrying it (segment ``item=<name>``).
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.core.sql import lit, table_exists, ts_lit
from compliance.policy import Policy, Rule
from compliance.rules.common import (
    append_results,
    append_rule_results,
    appending_rules_ready,
    create_items,
    drop_items,
    insert_items,
    write_metrics,
)

DOMAIN = "data_quality"
# write_violations / write_metrics replace their target tables; the secret scan's rows already sit in the
# data_quality tables, so this rule's rows are written under a scratch domain name and appended from there.
_SCRATCH = "completeness"
# Per rule and ticket: which required items its text lacks (their names and labels, never a matched value).
COMPLETENESS_COLUMNS = (
    "rule_id VARCHAR, record_id VARCHAR, created_at TIMESTAMPTZ, tier VARCHAR, elapsed_seconds BIGINT, "
    "stopped_at TIMESTAMPTZ, missing VARCHAR[], missing_labels VARCHAR[]"
)


def evaluate(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    """Append the completeness rules' warnings and figures to ``violations_data_quality`` / ``metrics_data_quality``."""
    rules = policy.rules_of("information_completeness")
    if not appending_rules_ready(con, DOMAIN, rules, "staged_tickets"):
        return
    _first_responses(con, policy)
    con.execute(f"CREATE OR REPLACE TABLE information_completeness ({COMPLETENESS_COLUMNS})")
    for rule in rules:
        _judge_tickets(con, rule, policy, as_of)
    items = create_items(con, _SCRATCH)
    breakdown = create_items(con, f"{_SCRATCH}_breakdown")
    insert_items(con, items, _TICKET_ITEMS)
    for rule in rules:
        insert_items(con, breakdown, _breakdown_items(rule))
    append_rule_results(con, DOMAIN, _SCRATCH, items, [rule.id for rule in rules], DOMAIN)
    write_metrics(con, _SCRATCH, breakdown, [])
    # the breakdown's all/all rows count tickets × items: not figures
    append_results(con, DOMAIN, _SCRATCH, "metrics", DOMAIN, "segment <> 'all'")
    for table in (items, breakdown, "_completeness_response"):
        drop_items(con, table)


def _first_responses(con: duckdb.DuckDBPyConnection, policy: Policy) -> None:
    """``_completeness_response``: per ticket its tier and first-response elapsed time (answered tickets).

    When several first-response rules clock one ticket, the first of them in the policy decides.
    """
    order = [(position, rule.id) for position, rule in enumerate(policy.rules_of("first_response"))]
    if not order or not table_exists(con, "ticket_sla"):
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _completeness_response "
            "(record_id VARCHAR, tier VARCHAR, elapsed_seconds BIGINT, stopped_at TIMESTAMPTZ)"
        )
        return
    values = ", ".join(f"({position}, {lit(rule_id)})" for position, rule_id in order)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _completeness_response AS
            SELECT s.record_id, arg_min(s.tier, r.position) AS tier,
                   arg_min(CASE WHEN s.stopped_at IS NOT NULL AND s.state IN ('achieved', 'breached')
                                THEN s.elapsed_seconds END, r.position) AS elapsed_seconds,
                   arg_min(s.stopped_at, r.position) AS stopped_at
            FROM ticket_sla s JOIN (VALUES {values}) r(position, rule_id) ON r.rule_id = s.rule_id
            WHERE s.cycle = 1
            GROUP BY s.record_id"""
    )


def _judge_tickets(con: duckdb.DuckDBPyConnection, rule: Rule, policy: Policy, as_of: datetime) -> None:
    """Rows of ``information_completeness``: one per ticket received by as-of, with the items it lacks."""
    required = rule.setting("required_information")
    text = "coalesce(t.subject, '') || chr(10) || coalesce(t.description, '')"
    missing = ", ".join(
        f"CASE WHEN NOT regexp_matches({text}, {lit(spec['pattern'])}) THEN {lit(item)} END"
        for item, spec in required.items()
    )
    labels = (
        "CASE item "
        + " ".join(f"WHEN {lit(item)} THEN {lit(spec['label'])}" for item, spec in required.items())
        + " END"
    )
    con.execute(
        f"""INSERT INTO information_completeness
            SELECT {lit(rule.id)}, t.ticket_id, t.created_at, coalesce(r.tier, t.tier, {lit(policy.default_tier)}) AS tier,
                   r.elapsed_seconds, r.stopped_at, t.missing,
                   list_transform(t.missing, lambda item: {labels}) AS missing_labels
            FROM (SELECT t.ticket_id, t.created_at, t.tier, list_filter([{missing}], lambda item: item IS NOT NULL) AS missing
                  FROM staged_tickets t WHERE t.created_at <= {ts_lit(as_of)}) t
            LEFT JOIN _completeness_response r ON r.record_id = t.ticket_id"""
    )


_TICKET_ITEMS = """
        SELECT rule_id, record_id, created_at,
               CASE WHEN len(missing) = 0 THEN 'information=complete' ELSE 'information=incomplete' END,
               CASE WHEN len(missing) = 0 THEN 'achieved' ELSE 'breached' END,
               elapsed_seconds, NULL, stopped_at, NULL,
               CASE WHEN len(missing) > 0 THEN 'warning' END,
               CASE WHEN len(missing) > 0 THEN
                   'Ticket ' || record_id || ' (received ' || cr_ts(created_at) || ') does not carry '
                   || array_to_string(missing_labels, ', ')
                   || ', which the support guide asks every request for; '
                   || CASE WHEN elapsed_seconds IS NOT NULL
                           THEN 'its first response came after ' || cr_dur(elapsed_seconds) || ' of open time ('
                                || tier || ' tier).'
                           ELSE 'it had no first response by the as-of time.' END
               END,
               CASE WHEN len(missing) > 0 THEN 'missing_information' END
        FROM information_completeness"""


def _breakdown_items(rule: Rule) -> str:
    items = ", ".join(lit(item) for item in rule.setting("required_information"))
    return f"""
        SELECT rule_id, record_id, created_at,
               'information=' || CASE WHEN len(missing) = 0 THEN 'complete' ELSE 'incomplete' END || ';tier=' || tier,
               CASE WHEN len(missing) = 0 THEN 'achieved' ELSE 'breached' END,
               elapsed_seconds, NULL, NULL, NULL, NULL, NULL, NULL
        FROM information_completeness WHERE rule_id = {lit(rule.id)}
        UNION ALL
        SELECT rule_id, record_id, created_at, 'item=' || item,
               CASE WHEN list_contains(missing, item) THEN 'breached' ELSE 'achieved' END,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL
        FROM information_completeness, (SELECT unnest([{items}]) AS item) WHERE rule_id = {lit(rule.id)}"""
