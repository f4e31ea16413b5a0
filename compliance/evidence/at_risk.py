"""At risk: the open items not yet due at the as-of time in every domain with a clock (evidence/at_risk.csv).

The ticket clocks' rows are ``ticket_sla``'s (``at_risk``, remaining time in open time of the rule's calendar);
the other domains' open items (``at_risk_<domain>``, compliance.rules.common.write_at_risk_items) get the same
columns, their ``metric`` the rule's kind and ``remaining_seconds`` the wall-clock seconds from the as-of time to
the deadline (their deadlines are instants: calendar or working days already counted into ``due_at``). Every row
carries its ``domain`` (a column added at the end of the file: the ticket columns keep their places).
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.core.sql import lit, mark_stored_order, table_exists, table_ref, ts_lit
from compliance.policy import Policy
from compliance.rule_kinds import DOMAINS
from compliance.rules.ticket_clocks import AT_RISK_ORDER, TICKET_SLA_COLUMNS

AT_RISK_TABLE = "at_risk_all_domains"


def combine_at_risk(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    """``at_risk_all_domains``: the ticket clocks at risk and every other domain's open items, by time remaining."""
    kinds = "CASE rule_id " + " ".join(f"WHEN {lit(rule.id)} THEN {lit(rule.kind)}" for rule in policy.rules) + " END"
    parts = ["SELECT *, CAST('tickets' AS VARCHAR) AS domain FROM at_risk"] if table_exists(con, "at_risk") else []
    parts += [
        f"""SELECT record_id, rule_id, CAST({kinds} AS VARCHAR) AS metric, started_at, due_at,
                   CAST('active' AS VARCHAR) AS state, FALSE AS breached,
                   CAST(epoch(due_at) - epoch({ts_lit(as_of)}) AS BIGINT) AS remaining_seconds,
                   CAST({lit(domain)} AS VARCHAR) AS domain
            FROM {table_ref(f"at_risk_{domain}")}"""
        for domain in DOMAINS
        if domain != "tickets" and table_exists(con, f"at_risk_{domain}")
    ]
    if not parts:
        con.execute(f"CREATE OR REPLACE TABLE {AT_RISK_TABLE} ({TICKET_SLA_COLUMNS}, domain VARCHAR)")
        return
    con.execute(
        f"CREATE OR REPLACE TABLE {AT_RISK_TABLE} AS {' UNION ALL BY NAME '.join(parts)} ORDER BY {AT_RISK_ORDER}"
    )
    mark_stored_order(con, AT_RISK_TABLE, AT_RISK_ORDER)
