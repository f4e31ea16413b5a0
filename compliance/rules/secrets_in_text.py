"""Free-text findings: secrets and personal data in ticket subjects and descriptions (TG-NO-SECRETS).

The scan always runs when tickets are loaded (``secret_findings``: record, column, kind, position — never the
secret itself). A policy rule of kind ``secrets_in_text`` turns it into figures and findings: a ticket whose
text carries a password, PIN, card number, one-time code or API token breaches it.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.core.secrets import FINDINGS_COLUMNS, SCANNED_TEXT, SECRET_KINDS, scan_secrets
from compliance.core.sql import install_macros, lit, table_exists, ts_lit
from compliance.policy import Policy
from compliance.rules.common import (
    apply_waivers,
    create_empty_results,
    create_items,
    drop_items,
    insert_items,
    write_metrics,
    write_violations,
)

DOMAIN = "data_quality"


def evaluate(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    install_macros(con)
    create_empty_results(con, DOMAIN)
    if not table_exists(con, "staged_tickets"):
        con.execute(f"CREATE OR REPLACE TABLE secret_findings ({FINDINGS_COLUMNS})")
        return
    scan_secrets(con, "staged_tickets", "ticket_id", list(SCANNED_TEXT["tickets"]))
    rules = policy.rules_of("secrets_in_text")
    if not rules:
        return
    items = create_items(con, DOMAIN)
    secret_kinds = ", ".join(map(lit, SECRET_KINDS))
    for rule in rules:
        insert_items(
            con,
            items,
            f"""SELECT {lit(rule.id)}, t.ticket_id, t.created_at, NULL,
                       CASE WHEN f.kinds IS NULL THEN 'achieved' ELSE 'breached' END, NULL,
                       NULL, NULL, NULL,
                       CASE WHEN f.kinds IS NOT NULL THEN 'breach' END,
                       CASE WHEN f.kinds IS NOT NULL THEN 'Ticket ' || t.ticket_id || ' (received ' || cr_ts(t.created_at)
                            || ') carries ' || f.kinds || ' in its ' || f.columns
                            || '; the values are redacted everywhere this reporter publishes text.' END,
                       CASE WHEN f.kinds IS NOT NULL THEN 'secret_in_text' END
                FROM staged_tickets t
                LEFT JOIN (SELECT record_id, string_agg(DISTINCT replace(kind, '_', ' '), ', ' ORDER BY replace(kind, '_', ' ')) AS kinds,
                                  string_agg(DISTINCT column_name, ' and ' ORDER BY column_name) AS columns
                           FROM secret_findings WHERE kind IN ({secret_kinds}) GROUP BY record_id) f
                  ON f.record_id = t.ticket_id
                WHERE t.created_at <= {ts_lit(as_of)}""",
        )
    apply_waivers(con, items, [rule.id for rule in rules])
    write_violations(con, DOMAIN, items)
    write_metrics(con, DOMAIN, items, [rule.id for rule in rules])
    drop_items(con, items)
