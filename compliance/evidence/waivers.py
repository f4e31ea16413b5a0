"""The run's waivers, each applied or refused with its reason (evidence/waivers.csv and the report).

Every rules step applies the waivers of its rules and keeps their outcomes (``waiver_outcomes_<step>``,
:func:`compliance.rules.common.apply_waivers`); a waiver no step judged (its rule unknown, or not evaluated in this
run because its export is missing) is refused here with the reason, so that every row of the waivers export is in
``waivers`` exactly once.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.core.sql import table_exists, table_ref
from compliance.policy import Policy
from compliance.rules.common import WAIVER_CHECKS, WAIVER_OUTCOME_COLUMNS, prepare_waivers
from compliance.rules.registry import RULE_STEPS

# The steps that keep waiver outcomes: the ticket clocks (asset ticket_sla) and every rules step.
WAIVER_STEPS = ("ticket_sla", *RULE_STEPS)
WAIVERS_ORDER = "source_file, source_line"


def combine_waivers(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    """``waivers``: one row per row of the waivers export (``WAIVER_OUTCOME_COLUMNS``), in file and line order."""
    prepare_waivers(con, policy, as_of)
    kept = [
        f"SELECT * FROM {table_ref(f'waiver_outcomes_{step}')}"
        for step in WAIVER_STEPS
        if table_exists(con, f"waiver_outcomes_{step}")
    ]
    con.execute(f"CREATE OR REPLACE TABLE waivers ({WAIVER_OUTCOME_COLUMNS})")
    judged = " UNION ALL ".join(kept) or "SELECT * FROM waivers"
    con.execute(
        f"""INSERT INTO waivers
            WITH judged_waivers AS ({judged}),
            unjudged_waivers AS (
                SELECT c.* FROM {WAIVER_CHECKS} c
                WHERE NOT EXISTS (SELECT 1 FROM judged_waivers j
                                  WHERE j.source_file = c.source_file AND j.source_line = c.source_line)
            )
            SELECT * FROM judged_waivers
            UNION ALL
            SELECT record_id, rule_id, reason, approved_by, approved_at, expires_at, source_file, source_line,
                   'refused', coalesce(refusal, 'rule ' || rule_id || ' was not judged in this run (no data)')
            FROM unjudged_waivers
            ORDER BY {WAIVERS_ORDER}"""
    )


def waiver_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Waivers applied and refused (both always named)."""
    counts = dict(con.execute("SELECT outcome, count(*) FROM waivers GROUP BY outcome").fetchall())
    return {outcome: int(counts.get(outcome, 0)) for outcome in ("applied", "refused")}
