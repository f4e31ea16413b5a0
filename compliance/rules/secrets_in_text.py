"""Free-text findings: secrets and personal data in ticket subjects and descriptions (TG-NO-SECRETS).

The scan always runs when tickets are loaded (``secret_findings``: record, column, kind, position — never the
secret itself). A policy rule of kind ``secrets_in_text`` turns it into figures and findings: a ticket whose
text carries a password, PIN, card number, one-time code or API token breaches it.

The scan reads each distinct text once, ever: what a text holds is a function of the text alone (and of the
scanning code), so the warehouse keeps every text scanned with its findings (``secret_scan_store``: column, text,
and per finding kind, start and length; a row with no kind for a text without one) and a run scans only the
texts it has not seen, matched by the text itself, not a hash of it. ``secret_findings`` is then the findings of
each staged ticket's texts: the rows ``scan_secrets`` writes when it scans the whole table. A change of the
scanning code or DuckDB (``secret_scan_store_key``) empties the store.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.core.secrets import FINDINGS_COLUMNS, SCANNED_TEXT, SECRET_KINDS, scan_secrets
from compliance.core.sql import ident, install_macros, lit, table_exists, ts_lit
from compliance.core.stored_keys import code_fingerprint, key_of
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
SCAN_STORE = "secret_scan_store"
SCAN_STORE_KEY = "secret_scan_store_key"
# The code whose change can change what a text holds: a change to any of them scans every text again.
SCAN_CODE_SOURCES = ("core/secrets.py", "core/sql.py", "rules/secrets_in_text.py")


def evaluate(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    install_macros(con)
    create_empty_results(con, DOMAIN)
    if not table_exists(con, "staged_tickets"):
        con.execute(f"CREATE OR REPLACE TABLE secret_findings ({FINDINGS_COLUMNS})")
        return
    scan_new_texts(con, "staged_tickets", "ticket_id", list(SCANNED_TEXT["tickets"]))
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


def scan_new_texts(con: duckdb.DuckDBPyConnection, table: str, id_column: str, text_columns: list[str]) -> None:
    """(Re)create ``secret_findings`` for ``table`` as :func:`scan_secrets` does, scanning only the texts that
    ``secret_scan_store`` does not hold yet (module docstring) and adding them to it."""
    key = key_of(code_fingerprint(SCAN_CODE_SOURCES, ("duckdb",)))
    stored_key = (
        con.execute(f"SELECT scan_key FROM {SCAN_STORE_KEY}").fetchall() if table_exists(con, SCAN_STORE_KEY) else []
    )
    if stored_key != [(key,)] or not table_exists(con, SCAN_STORE):
        con.execute(
            f"CREATE OR REPLACE TABLE {SCAN_STORE} (column_name VARCHAR, text VARCHAR, kind VARCHAR, start BIGINT, "
            "length BIGINT)"
        )
        con.execute(f"CREATE OR REPLACE TABLE {SCAN_STORE_KEY} AS SELECT ? AS scan_key", [key])
    texts = " UNION ALL ".join(
        f"SELECT CAST({ident(id_column)} AS VARCHAR) AS record_id, {lit(column)} AS column_name, "
        f"CAST({ident(column)} AS VARCHAR) AS text FROM {ident(table)} WHERE {ident(column)} IS NOT NULL"
        for column in text_columns
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _staged_texts AS {texts}")
    # the texts not scanned before, one row each, its text in its own column and NULL in the others
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _unscanned_texts AS
            SELECT CAST(row_number() OVER () AS VARCHAR) AS text_id, column_name, text,
                   {", ".join(f"CASE WHEN column_name = {lit(c)} THEN text END AS {ident(c)}" for c in text_columns)}
            FROM (SELECT DISTINCT column_name, text FROM _staged_texts
                  ANTI JOIN {SCAN_STORE} USING (column_name, text))"""
    )
    if con.execute("SELECT count(*) FROM _unscanned_texts").fetchall()[0][0]:
        scan_secrets(con, "_unscanned_texts", "text_id", text_columns)
        con.execute(
            f"""INSERT INTO {SCAN_STORE}
                SELECT u.column_name, u.text, f.kind, f.start, f.length
                FROM _unscanned_texts u LEFT JOIN secret_findings f
                  ON f.record_id = u.text_id AND f.column_name = u.column_name"""
        )
    con.execute(
        f"""CREATE OR REPLACE TABLE secret_findings AS
            SELECT DISTINCT t.record_id, t.column_name, s.kind, s.start, s.length
            FROM _staged_texts t JOIN {SCAN_STORE} s USING (column_name, text)
            WHERE s.kind IS NOT NULL
            ORDER BY record_id, column_name, start, kind"""
    )
    con.execute("DROP TABLE _staged_texts")
    con.execute("DROP TABLE _unscanned_texts")
