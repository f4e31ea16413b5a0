"""Categorisation (TG-MAILBOX): is every ticket's category read from the mailbox it was sent to or its subject tag?

A rule of kind ``categorisation`` measures the share of tickets categorised (compliance.ingest.tickets_reading reads
the channel and records how in ``staged_tickets.channel_source``):

* a loaded ticket (created by the as-of time) is ``achieved``: its channel came from its mailbox, its subject
  tag, or the export's own channel value (a plain channel key: the help desk's categorisation, which the
  reporter cannot trace to a mailbox but does not second-guess). The segments ``channel_source=mailbox``,
  ``=subject tag`` and ``=column`` (``=unknown`` for a staged table that does not record it) show the split.
* a ticket quarantined because no channel could be read (blank channel and no subject tag that is a channel
  alias, an unknown channel spelling, or an mbox thread sent to no known mailbox and without such a tag) is
  ``breached`` with a ``warning`` that lists it: uncategorised tickets never drop out of the denominator by
  being quarantined. Severity ``warning``: the guide asks the customer to choose the mailbox; the verdict is the
  share (met while it reaches the rule's or the policy's ``met_min_adherence_pct``).
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.core.sql import lit, table_exists, ts_lit
from compliance.policy import Policy
from compliance.rules.common import append_rule_results, appending_rules_ready, create_items, drop_items, insert_items

DOMAIN = "tickets"
# The rule asset that runs this (assets/rules.py) shares the data_quality tables with the secret scan and the
# completeness rule: this rule's rows are written under a scratch name and appended there, domain kept.
_TARGET = "data_quality"
_SCRATCH = "categorisation"
# A quarantine reason about the channel: the ingest message of the channel column (first or later problem of
# the row), or the mbox adapter's.
_CHANNEL_PROBLEM = "(q.reason LIKE 'channel: %' OR q.reason LIKE '%; channel: %')"


def evaluate(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    """Append the categorisation rules' warnings and figures to ``violations_data_quality`` / ``metrics_data_quality``."""
    rules = policy.rules_of("categorisation")
    if not appending_rules_ready(con, _TARGET, rules, "staged_tickets"):
        return
    columns = {row[0] for row in con.execute("DESCRIBE staged_tickets").fetchall()}
    source = "t.channel_source" if "channel_source" in columns else "NULL"
    quarantined = table_exists(con, "quarantine")
    items = create_items(con, _SCRATCH)
    for rule in rules:
        insert_items(
            con,
            items,
            f"""SELECT {lit(rule.id)}, t.ticket_id, t.created_at, 'channel_source=' || coalesce({source}, 'unknown'),
                       'achieved', NULL, NULL, NULL, NULL, NULL, NULL, NULL
                FROM staged_tickets t WHERE t.created_at <= {ts_lit(as_of)}""",
        )
        if quarantined:
            insert_items(
                con,
                items,
                f"""SELECT {lit(rule.id)}, coalesce(q.record_id, q.source_file || ' line ' || q.line), NULL,
                           'channel_source=none', 'breached', NULL, NULL, NULL, NULL, 'warning',
                           'Ticket ' || coalesce(q.record_id, 'without an ID') || ' (' || q.source_file || ', line '
                           || coalesce(q.line::VARCHAR, '?') || ') has no category: it was quarantined ('
                           || q.reason || ').', 'uncategorised'
                    FROM quarantine q WHERE {_CHANNEL_PROBLEM}""",
            )
    append_rule_results(con, _TARGET, _SCRATCH, items, [rule.id for rule in rules], DOMAIN)
    drop_items(con, items)
