"""Ticket clocks of the default run, recomputed only for the tickets whose clock rows can have changed.

A ticket's clock rows (``ticket_clocks.write_clock_rows``: the ``ticket_sla`` rows before the exclusions by file
and the waivers) are a function of its staged ticket row, its staged event rows, the policy, the code and the
as-of instant. The warehouse keeps the last run's rows with what they were computed from:

* ``ticket_clock_store_key``: one row, the run-level key (:func:`run_key`): sha256 of the policy as parsed, of the
  code that computes clock rows (package, DuckDB and holidays versions, the sources of ``CODE_SOURCES``) and of
  the shape of the staged tables (their columns; whether ticket events are loaded). The reading settings of the
  ingest (time zone, mapping, encoding) act on the staged rows, which are fingerprinted; nothing else reaches
  the clocks.
* ``ticket_clock_store_tickets``: one row per ticket: ``fingerprint`` (a DuckDB ``hash`` of its staged row, of
  every staged event row of it, and of the ``input_columns`` rows of the files they come from), ``as_of`` (the
  instant its rows were computed at), ``as_of_dependent`` (a clock of it had not stopped at that instant, or a
  timestamp of the ticket or of its events lies after it) and its ``response_times`` inputs.
* ``ticket_clock_store_rows``: its clock rows, in no particular order (new rows are appended; ``ticket_sla`` is
  written from them in ``TICKET_SLA_ORDER``).

A run recomputes the tickets that are new, whose fingerprint changed, whose stored as-of is later than the run's,
or that are as-of dependent when the run's as-of differs from their stored one; every ticket when the key
changed or the store is absent. Tickets that left the staged table leave the store. Everything judged from the
clock rows (exclusions by file, waivers, violations, metrics with exact quantiles, at_risk, expectation metrics,
response times) is then computed over all the rows by ``ticket_clocks.write_tables_from_clock_rows``, the same
code as the cold path, so both give the same tables.

Those judged tables are a function of what ``ticket_clock_store_outputs`` records of the run that wrote them
(:func:`_outputs_key`: the run key, the code that judges the clock rows, the as-of instant, the staged rows as a
whole, the waiver checks and the exclusions by file). A run whose outputs key is the recorded one, on tables that
still hold what that run wrote (:func:`_tables_digest`: rows and their positions, comments and columns; a cold
or period run in between replaces them), keeps them as they are and computes nothing per ticket
(``ClockReuse.tables_kept``): the daily re-run on unchanged exports.

A run restricted to a report period (``compliance.evidence.periods.restrict_to_period``: temporary views in front
of the staged tables) takes the cold path and leaves the store alone: the store holds the whole-run default.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import duckdb

from compliance.core.sql import ident, install_macros, mark_stored_order, table_exists
from compliance.core.stored_keys import PACKAGE_ROOT, code_fingerprint, key_of
from compliance.core.timings import timed
from compliance.policy import Policy
from compliance.rules.common import WAIVER_CHECKS, absent_rule_columns, prepare_waivers
from compliance.rules.ticket_clocks import (
    CLOCK_ENGINE_PARTS,
    CLOCK_KINDS,
    EVENT_CLOCK_KINDS,
    RESPONSE_INPUT_COLUMNS,
    TICKET_SLA_COLUMNS,
    TICKET_SLA_ORDER,
    create_clock_tables,
    evaluate_ticket_clocks,
    events_stop_missing,
    write_clock_rows,
    write_tables_from_clock_rows,
)

STORE_KEY = "ticket_clock_store_key"
STORE_TICKETS = "ticket_clock_store_tickets"
STORE_ROWS = "ticket_clock_store_rows"
STORE_OUTPUTS = "ticket_clock_store_outputs"
STORE_TICKET_COLUMNS = f"fingerprint UBIGINT, as_of TIMESTAMPTZ, as_of_dependent BOOLEAN, {RESPONSE_INPUT_COLUMNS}"
# The sources whose code computes clock rows: a change to any of them recomputes every ticket.
CODE_SOURCES = (
    "rules/ticket_clocks.py",
    "rules/clock_store.py",
    "core/sql.py",
    "ingest/tickets_reading.py",
    *sorted(str(path.relative_to(PACKAGE_ROOT)) for path in (PACKAGE_ROOT / "calendars").glob("*.py")),
)
# The code that judges the clock rows (exclusions, waivers, violations, metrics: ticket_clocks and common) and what
# it reads of the rule kinds: a change to any of it writes the judged tables again.
OUTPUT_CODE_SOURCES = (*CODE_SOURCES, "rules/common.py", "rule_kinds.py")
# The tables the step writes (ticket_clocks.write_tables_from_clock_rows and the waiver outcomes it keeps).
OUTPUT_TABLES = (
    "ticket_sla",
    "violations_tickets",
    "metrics_tickets",
    "at_risk",
    "expectation_metrics",
    "response_times",
    "waiver_outcomes_ticket_sla",
)


@dataclasses.dataclass(frozen=True)
class ClockReuse:
    """How a run came by its clock rows: tickets whose stored rows were kept, tickets computed now, and why
    every ticket was computed when none was kept (``""`` otherwise)."""

    kept: int
    recomputed: int
    cold_reason: str = ""
    tables_kept: bool = False  # the judged tables were unchanged and left as the last run wrote them


def evaluate_ticket_clocks_incrementally(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> ClockReuse:
    """The tables of ``ticket_clocks.evaluate_ticket_clocks``, equal to them, computing clocks only for the
    tickets whose rows can have changed since the store was written (module docstring); updates the store."""
    if not table_exists(con, "staged_tickets"):
        evaluate_ticket_clocks(con, policy, as_of)
        return ClockReuse(0, 0, "no tickets staged")
    if _restricted(con):
        evaluate_ticket_clocks(con, policy, as_of)
        return ClockReuse(0, _count(con, "staged_tickets"), "a run restricted to a report period")
    if not policy.rules_of(*CLOCK_KINDS, *EVENT_CLOCK_KINDS):
        evaluate_ticket_clocks(con, policy, as_of)
        return ClockReuse(0, _count(con, "staged_tickets"), "no ticket clock rules in the policy")
    key = run_key(con, policy)
    stored_key = con.execute(f"SELECT run_key FROM {STORE_KEY}").fetchall() if table_exists(con, STORE_KEY) else []
    cold_reason = (
        "no stored clocks"
        if not stored_key or not (table_exists(con, STORE_TICKETS) and table_exists(con, STORE_ROWS))
        else "the policy, the code or the staged tables' columns changed"
        if stored_key != [(key,)]
        else ""
    )
    install_macros(con)
    prepare_waivers(con, policy, as_of)  # the waiver checks are part of the outputs key
    # Checked before any per-ticket work: the staged rows as a whole are part of the outputs key, so a run on the
    # same exports at the same as-of needs neither the fingerprints nor their join with the store.
    outputs_key = _outputs_key(con, policy, key, as_of)
    if not cold_reason and _outputs_unchanged(con, outputs_key):
        for part in CLOCK_ENGINE_PARTS:  # the engine did not run: no earlier run's time is left behind
            with timed(con, part):
                pass
        return ClockReuse(_count(con, STORE_TICKETS), 0, tables_kept=True)
    _create_fingerprints(con)
    create_clock_tables(con)
    if cold_reason:
        write_clock_rows(con, policy, as_of)
        _replace_store(con, key, as_of)
        reuse = ClockReuse(0, _count(con, "_clock_fingerprints"), cold_reason)
    else:
        _create_recompute_sets(con, as_of)
        reuse = _recompute_changed(con, policy, as_of)
    con.execute("DROP TABLE _clock_fingerprints")
    write_tables_from_clock_rows(con, policy, as_of)
    _record_outputs(con, outputs_key)
    return reuse


def run_key(con: duckdb.DuckDBPyConnection, policy: Policy) -> str:
    """sha256 of what every ticket's clock rows read besides its own records and the as-of instant."""
    shapes = {
        table: con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {ident(table)})").fetchall()
        for table in ("staged_tickets", "staged_ticket_events")
        if table_exists(con, table)
    }
    material = {
        "policy_sha256": policy.sha256,
        "policy": dataclasses.asdict(policy),
        **code_fingerprint(CODE_SOURCES, ("compliance-reporter", "duckdb", "holidays")),
        "staged_columns": shapes,
    }
    return key_of(material)


def _create_recompute_sets(con: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """Temp tables ``_clock_recompute`` (the staged tickets the store cannot answer for) and ``_clock_leaving``
    (the tickets whose stored rows go: those and the tickets no longer staged, e.g. after a superseding export)."""
    # one join of the staged tickets with the stored ones answers both (the changes are few: the rest is cheap)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _clock_leaving AS
            SELECT coalesce(f.ticket_id, s.ticket_id) AS ticket_id, f.ticket_id IS NOT NULL AS staged
            FROM _clock_fingerprints f FULL JOIN {STORE_TICKETS} s ON s.ticket_id = f.ticket_id
            WHERE s.ticket_id IS NULL OR f.ticket_id IS NULL OR s.fingerprint <> f.fingerprint OR s.as_of > $as_of
               OR (s.as_of < $as_of AND s.as_of_dependent)""",
        {"as_of": as_of},
    )
    con.execute("CREATE OR REPLACE TEMP TABLE _clock_recompute AS SELECT ticket_id FROM _clock_leaving WHERE staged")


def _recompute_changed(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> ClockReuse:
    """Compute the clocks of the tickets of ``_clock_recompute``, put them in the store in place of those of
    ``_clock_leaving``, and fill ``ticket_sla`` and ``ticket_response_inputs`` from the whole store."""
    recomputed = _count(con, "_clock_recompute")
    catalog = ident(con.execute("SELECT current_database()").fetchall()[0][0])
    events = table_exists(con, "staged_ticket_events")
    # the staged tables as write_clock_rows reads them: only the tickets to recompute, and their events
    con.execute(
        f"""CREATE TEMP VIEW staged_tickets AS SELECT * FROM {catalog}.main.staged_tickets
            WHERE ticket_id IN (SELECT ticket_id FROM _clock_recompute)"""
    )
    if events:
        con.execute(
            f"""CREATE TEMP VIEW staged_ticket_events AS SELECT * FROM {catalog}.main.staged_ticket_events
                WHERE ticket_id IN (SELECT ticket_id FROM _clock_recompute)"""
        )
    try:
        write_clock_rows(con, policy, as_of)
    finally:
        con.execute("DROP VIEW temp.main.staged_tickets")
        if events:
            con.execute("DROP VIEW temp.main.staged_ticket_events")
    # The store's rows are changed in place (a deletion and an append: the rows of a few tickets) and ticket_sla is
    # sorted once from them: keeping the store in ticket_sla's order cost a second sorted write of every row.
    con.execute(f"DELETE FROM {STORE_ROWS} WHERE record_id IN (SELECT ticket_id FROM _clock_leaving)")
    con.execute(f"INSERT INTO {STORE_ROWS} SELECT * FROM ticket_sla")
    con.execute(f"DELETE FROM {STORE_TICKETS} WHERE ticket_id IN (SELECT ticket_id FROM _clock_leaving)")
    _insert_store_tickets(con, as_of)
    con.execute(f"CREATE OR REPLACE TABLE ticket_sla ({TICKET_SLA_COLUMNS})")
    con.execute(f"INSERT INTO ticket_sla SELECT * FROM {STORE_ROWS} ORDER BY {TICKET_SLA_ORDER}")
    mark_stored_order(con, "ticket_sla", TICKET_SLA_ORDER)
    response_columns = ", ".join(column.split()[0] for column in RESPONSE_INPUT_COLUMNS.split(", "))
    con.execute("DELETE FROM ticket_response_inputs")
    con.execute(f"INSERT INTO ticket_response_inputs SELECT {response_columns} FROM {STORE_TICKETS}")
    total = _count(con, "_clock_fingerprints")
    _drop(con, "_clock_recompute", "_clock_leaving")
    return ClockReuse(total - recomputed, recomputed)


def _replace_store(con: duckdb.DuckDBPyConnection, key: str, as_of: datetime) -> None:
    """The store from scratch, of the clock rows of every ticket just computed (in ticket_sla's order)."""
    con.execute(f"CREATE OR REPLACE TABLE {STORE_ROWS} AS SELECT * FROM ticket_sla")
    con.execute(f"CREATE OR REPLACE TABLE {STORE_TICKETS} ({STORE_TICKET_COLUMNS})")
    _insert_store_tickets(con, as_of)
    con.execute(f"CREATE OR REPLACE TABLE {STORE_KEY} (run_key VARCHAR)")
    con.execute(f"INSERT INTO {STORE_KEY} VALUES (?)", [key])


def _outputs_key(con: duckdb.DuckDBPyConnection, policy: Policy, key: str, as_of: datetime) -> str:
    """sha256 of everything the judged tables are a function of: the run key, the judging code, the as-of instant,
    every staged row the clocks read (tickets, events and the ``input_columns`` of their files: count, sum and xor
    of their hashes, the multiset of them), the waiver checks (``common.prepare_waivers``) and the exclusions by
    file and by event export."""
    staged = {
        table: list(
            con.execute(
                f"SELECT count(*), sum(hash(t)::HUGEINT)::VARCHAR, bit_xor(hash(t))::VARCHAR FROM {ident(table)} t"
            ).fetchall()[0]
        )
        for table in ("staged_tickets", "staged_ticket_events", "input_columns", WAIVER_CHECKS)
        if table_exists(con, table)
    }
    kinds = [*CLOCK_KINDS, *EVENT_CLOCK_KINDS]
    material = {
        "run_key": key,
        **code_fingerprint(OUTPUT_CODE_SOURCES, ("compliance-reporter", "duckdb", "holidays")),
        "as_of": as_of,
        "rows": staged,
        "absent_columns": {kind: absent_rule_columns(con, kind) for kind in kinds},
        "events_stop_missing": {kind: events_stop_missing(con, kind, policy) for kind in CLOCK_KINDS},
    }
    return key_of(material)


def _tables_digest(con: duckdb.DuckDBPyConnection) -> str:
    """sha256 of the step's tables as they stand: per table its columns, its comment (the order it is stored in)
    and its rows with their positions (count, sum and xor of ``hash(row, rowid)``); ``-`` for an absent one."""
    material = {}
    for table in OUTPUT_TABLES:
        if not table_exists(con, table):
            material[table] = "-"
            continue
        described = con.execute(
            """SELECT t.comment, list(c.column_name || ' ' || c.data_type ORDER BY c.column_index)
               FROM duckdb_tables() t JOIN duckdb_columns() c USING (database_name, schema_name, table_name)
               WHERE t.table_name = ? AND t.database_name = current_database() AND t.schema_name = current_schema()
               GROUP BY t.comment""",
            [table],
        ).fetchall()
        # A position counts from the table's first rowid: rows written in the step's transaction have rowids of
        # its own that become 0, 1, ... once committed.
        position = f"rowid - (SELECT min(rowid) FROM {ident(table)})"
        rows = con.execute(
            f"SELECT count(*), sum(hash(t, {position})::HUGEINT)::VARCHAR, bit_xor(hash(t, {position}))::VARCHAR "
            f"FROM {ident(table)} t"
        ).fetchall()[0]
        material[table] = [[list(row) for row in described], list(rows)]
    return key_of(material)


def _outputs_unchanged(con: duckdb.DuckDBPyConnection, outputs_key: str) -> bool:
    """Whether the judged tables' inputs are those the last run recorded (``outputs_key``: the same staged rows at
    the same as-of, so the store answers for every ticket) and the tables still hold what it wrote."""
    if not table_exists(con, STORE_OUTPUTS):
        return False
    recorded = con.execute(f"SELECT outputs_key, tables_digest FROM {STORE_OUTPUTS}").fetchall()
    return recorded == [(outputs_key, _tables_digest(con))]


def _record_outputs(con: duckdb.DuckDBPyConnection, outputs_key: str) -> None:
    """What the judged tables were written from and what they hold (:func:`_outputs_unchanged` reads it)."""
    con.execute(f"CREATE OR REPLACE TABLE {STORE_OUTPUTS} (outputs_key VARCHAR, tables_digest VARCHAR)")
    con.execute(f"INSERT INTO {STORE_OUTPUTS} VALUES (?, ?)", [outputs_key, _tables_digest(con)])


def _insert_store_tickets(con: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """The tickets just computed (``ticket_response_inputs``), with their fingerprint, as-of and dependence on it."""
    con.execute(
        f"""INSERT INTO {STORE_TICKETS}
            WITH running AS (  -- tickets with a clock that had not stopped at the as-of instant
                SELECT DISTINCT record_id AS ticket_id FROM ticket_sla WHERE stopped_at IS NULL
            )
            SELECT f.fingerprint, $as_of,
                   coalesce(f.latest_at > $as_of, FALSE) OR r.ticket_id IS NOT NULL, i.*
            FROM ticket_response_inputs i JOIN _clock_fingerprints f ON f.ticket_id = i.ticket_id
            LEFT JOIN running r ON r.ticket_id = i.ticket_id""",
        {"as_of": as_of},
    )


def _create_fingerprints(con: duckdb.DuckDBPyConnection) -> None:
    """Temp table ``_clock_fingerprints``: per staged ticket, the hash of everything its clock rows read and the
    latest timestamp among them (set-based: one aggregate over the tickets, one over the events)."""
    file_columns = (
        "SELECT source, file, sum(hash(c)::HUGEINT) AS columns_hash FROM input_columns c GROUP BY ALL"
        if table_exists(con, "input_columns")
        else "SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS file, NULL::HUGEINT AS columns_hash WHERE FALSE"
    )
    events = table_exists(con, "staged_ticket_events")
    event_rows = (
        f"""SELECT e.ticket_id, sum(hash(hash(e), f.columns_hash)::HUGEINT) AS events_hash, count(*) AS events,
                   {_latest(con, "staged_ticket_events", "e")} AS latest_at
            FROM staged_ticket_events e
            LEFT JOIN file_columns f ON f.source = 'ticket_events' AND f.file = e.source_file
            GROUP BY e.ticket_id"""
        if events
        else "SELECT NULL::VARCHAR AS ticket_id, NULL::HUGEINT AS events_hash, 0 AS events, "
        "NULL::TIMESTAMPTZ AS latest_at WHERE FALSE"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _clock_fingerprints AS
            WITH file_columns AS ({file_columns}),
            ticket_rows AS (
                SELECT t.ticket_id, sum(hash(hash(t), f.columns_hash)::HUGEINT) AS row_hash,
                       {_latest(con, "staged_tickets", "t")} AS latest_at
                FROM staged_tickets t LEFT JOIN file_columns f ON f.source = 'tickets' AND f.file = t.source_file
                GROUP BY t.ticket_id
            ),
            event_rows AS ({event_rows})
            SELECT t.ticket_id, hash(t.row_hash, e.events_hash, e.events) AS fingerprint,
                   greatest(t.latest_at, e.latest_at) AS latest_at
            FROM ticket_rows t LEFT JOIN event_rows e ON e.ticket_id = t.ticket_id"""
    )


def _latest(con: duckdb.DuckDBPyConnection, table: str, alias: str) -> str:
    """The latest of every timestamp column of ``table``'s rows (an aggregate; NULL when there is none)."""
    columns = [
        name
        for name, column_type in con.execute(
            f"SELECT column_name, column_type FROM (DESCRIBE {ident(table)})"
        ).fetchall()
        if column_type == "TIMESTAMP WITH TIME ZONE"
    ]
    if not columns:
        return "NULL::TIMESTAMPTZ"
    return f"max(greatest({', '.join(f'{alias}.{ident(name)}' for name in columns)}))"


def _restricted(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a temporary view stands in front of the staged tickets (a run restricted to a report period)."""
    return bool(
        con.execute("SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = 'staged_tickets'").fetchall()[
            0
        ][0]
    )


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {ident(table)}").fetchall()[0][0]


def _drop(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    for table in tables:
        con.execute(f"DROP TABLE IF EXISTS {ident(table)}")
