"""Vendor-verdict reconciliation: the helpdesk's own SLA verdicts checked against the record and against our policy.

Input: ``staged_vendor_sla`` (one row per record × metric where an export states the vendor's verdict or due time,
written by the adapters as ``vendor_sla.csv``), the staged records it names, and ``ticket_sla`` (our clocks).
Output: ``vendor_reconciliation`` (one row per vendor row), ``vendor_reconciliation_metrics`` (per source ×
metric: agreement rate, disagreements both ways, rows that could not be compared and why) and
``vendor_disagreement_classes`` (per source × metric × class of disagreement: how many, and what it means;
``DISAGREEMENT_CLASSES``) and ``vendor_due_agreement`` (per source × metric, for exports that state due times,
with or without a verdict: how often our policy's due time is the vendor's, and how often our policy's verdict
is the one the vendor's due time gives on the record's own times).

Readings (an auditor's independent check of the helpdesk's own numbers):
- **recomputed_met**: the vendor's own due time applied to the record's own timestamps: the stop (``STOPS``) at or
  before ``vendor_due_at`` is met, after it missed; no stop and the as-of time past the due time is missed; no stop
  before it is still running (NULL). Stops after the as-of time have not happened yet. For tickets without the
  column, the stop is taken from their events by the clocks' own reading
  (``compliance.rules.ticket_clocks.event_stops_sql``, with the policy's ``tickets`` settings): the first event of
  a ``first_response_event_types`` type; the last solve (a change into a ``solved_statuses`` status from another)
  of a ticket whose last status is one; the first event of each event-stopped clock (the auto-ack).
- **our_state**: the state of our policy's clock on the same ticket and metric in ``ticket_sla`` (``achieved`` is
  met, ``breached`` missed); with several clocks (rules, reopen cycles) a breached one speaks first, then achieved,
  then active. Only tickets have policy clocks here.
- **agrees**: the vendor's verdict equals every reading we could make (recomputed and ours). NULL, with
  ``not_comparable_reason``, when the vendor states no verdict, the record is not loaded, or neither reading is
  decided (still running, excluded, or no due time and no clock).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb

from compliance.core.secrets import pseudonym_sql, redact_sql
from compliance.core.sql import install_macros, lit, table_exists, ts_lit
from compliance.ingest.contract import QUARANTINE_COLUMNS_SQL
from compliance.ingest.landing import CONVERSION_LOG, CONVERSION_QUARANTINE
from compliance.policy import Policy
from compliance.rules.ticket_clocks import EVENT_CLOCK_KINDS, create_event_stops, ticket_settings

SOURCE = "staged_vendor_sla"
RECONCILIATION_COLUMNS = (
    "record_id VARCHAR, source VARCHAR, metric VARCHAR, vendor_met BOOLEAN, vendor_due_at TIMESTAMPTZ, "
    "vendor_status VARCHAR, vendor_field VARCHAR, stopped_at TIMESTAMPTZ, recomputed_met BOOLEAN, our_state VARCHAR, "
    "our_rule_id VARCHAR, our_due_at TIMESTAMPTZ, agrees BOOLEAN, not_comparable_reason VARCHAR, explanation VARCHAR, "
    "source_file VARCHAR, source_line BIGINT"
)
RECONCILIATION_METRIC_COLUMNS = (
    "source VARCHAR, metric VARCHAR, vendor_rows BIGINT, compared BIGINT, agreeing BIGINT, disagreeing BIGINT, "
    "vendor_met_ours_missed BIGINT, vendor_missed_ours_met BIGINT, agreement_pct DOUBLE, not_comparable BIGINT, "
    "not_comparable_reasons VARCHAR"
)
# The exports this step reads directly (the vendor's verdicts and the records they name; the tickets are read
# after ``ticket_sla``, the step that stages their clocks), and the tables of other steps it reads.
FEEDING_SOURCES = ("vendor_sla", "incidents", "privacy_requests", "security_reports")
READS = ("ticket_sla",)
# (source, metric) -> the staged column that stops the clock; the record id column of each source.
STOPS = {
    ("tickets", "first_response"): "first_response_at",
    ("tickets", "resolution"): "resolved_at",
    ("incidents", "acknowledgement"): "acknowledged_at",
    ("incidents", "resolution"): "resolved_at",
    ("privacy_requests", "first_response"): "first_response_at",
    ("privacy_requests", "resolution"): "completed_at",
    ("security_reports", "acknowledgement"): "acknowledged_at",
    ("security_reports", "resolution"): "fixed_at",
}
RECORD_IDS = {
    "tickets": "ticket_id",
    "incidents": "incident_id",
    "privacy_requests": "request_id",
    "security_reports": "report_id",
}
METRIC_WORDS = {"first_response": "first response", "resolution": "resolution", "acknowledgement": "acknowledgement"}
RECORD_WORDS = {
    "tickets": "ticket",
    "incidents": "incident",
    "privacy_requests": "privacy request",
    "security_reports": "security report",
}
# ticket_sla names the acknowledgement clock the policy's way
OUR_METRIC = {"acknowledgement": "acknowledgment"}
DUE_AGREEMENT_COLUMNS = (
    "source VARCHAR, metric VARCHAR, vendor_due_rows BIGINT, due_compared BIGINT, due_equal BIGINT, "
    "verdicts_compared BIGINT, verdicts_agreeing BIGINT"
)
DUE_TOLERANCE_SECONDS = 60  # due times this close are the same (exports round to the minute)
DISAGREEMENT_CLASS_COLUMNS = "source VARCHAR, metric VARCHAR, class VARCHAR, rows BIGINT, meaning VARCHAR"
# Every disagreement falls in exactly one class: either the record's own times against the vendor's due time
# contradict the vendor (our policy then, when it has a clock, says the same as those times: both readings are
# booleans differing from the vendor's), or only our policy's clock does. Class -> (condition, what it means).
DISAGREEMENT_CLASSES = {
    "vendor_met_own_due_missed": (
        "vendor_met AND recomputed_met = FALSE",
        "the vendor says met, but the record's own stop is after the vendor's own due time (or there is none by "
        "the as-of time): the vendor's clock paused or counted business hours the export does not show, or it "
        "judged before a later stop (a reopening)",
    ),
    "vendor_missed_own_due_met": (
        "NOT vendor_met AND recomputed_met",
        "the vendor says missed, but the record stopped at or before the vendor's own due time: the vendor counts "
        "another stop than the export's (another reply, a reopened cycle) or a breach of another SLA",
    ),
    "vendor_met_policy_missed": (
        "vendor_met AND recomputed_met IS DISTINCT FROM FALSE AND our_state = 'breached'",
        "the vendor's verdict holds against its own due time, but our policy's clock is stricter (another target, "
        "calendar or clock start than the vendor's SLA)",
    ),
    "vendor_missed_policy_met": (
        "NOT vendor_met AND recomputed_met IS DISTINCT FROM TRUE AND our_state = 'achieved'",
        "the vendor's verdict holds against its own due time, but our policy's clock is more lenient (a longer "
        "target, a business calendar, or pauses the vendor does not grant)",
    ),
}


def reconcile(con: duckdb.DuckDBPyConnection, exports_dir: Path, as_of: datetime, policy: Policy) -> dict[str, int]:
    """The whole step: the conversion's quarantined records added to ``quarantine``, then :func:`evaluate` with the
    vendor named after the conversion's format. Returns the vendor rows, how many were compared and agreed, and
    how many conversion rows were quarantined."""
    conversion = conversion_record(exports_dir) or {}
    vendor = f"the {conversion['format']} export" if conversion.get("format") else "the vendor export"
    quarantined = load_conversion_quarantine(con, exports_dir)
    evaluate(con, as_of, vendor, policy)
    rows, compared, agreeing = con.execute(
        "SELECT count(*), count(agrees), count(*) FILTER (WHERE agrees) FROM vendor_reconciliation"
    ).fetchall()[0]
    return {"vendor_rows": rows, "compared": compared, "agreeing": agreeing, "conversion_quarantined": quarantined}


def evaluate(
    con: duckdb.DuckDBPyConnection, as_of: datetime, vendor: str = "the vendor", policy: Policy | None = None
) -> None:
    """Create ``vendor_reconciliation`` and ``vendor_reconciliation_metrics`` (empty without vendor verdicts).

    Ticket stops from events read the policy's ``tickets`` settings as the clocks do (``compliance.rules.ticket_clocks``); without
    a policy, their defaults."""
    install_macros(con)
    con.execute(f"CREATE OR REPLACE TABLE vendor_reconciliation ({RECONCILIATION_COLUMNS})")
    con.execute(f"CREATE OR REPLACE TABLE vendor_reconciliation_metrics ({RECONCILIATION_METRIC_COLUMNS})")
    con.execute(f"CREATE OR REPLACE TABLE vendor_disagreement_classes ({DISAGREEMENT_CLASS_COLUMNS})")
    con.execute(f"CREATE OR REPLACE TABLE vendor_due_agreement ({DUE_AGREEMENT_COLUMNS})")
    if not table_exists(con, SOURCE):
        return
    asof = ts_lit(as_of)
    _record_stops(con, asof, ticket_settings(policy))
    _our_clocks(con)
    metric_words = (
        "CASE v.metric "
        + " ".join(f"WHEN {lit(k)} THEN {lit(w)}" for k, w in METRIC_WORDS.items())
        + " ELSE v.metric END"
    )
    record_words = "CASE v.source " + " ".join(f"WHEN {lit(k)} THEN {lit(w)}" for k, w in RECORD_WORDS.items()) + " END"
    said = "CASE WHEN vendor_met THEN 'met' ELSE 'missed' END"
    con.execute(
        f"""INSERT INTO vendor_reconciliation
            WITH j AS (
                SELECT v.*, {metric_words} AS words, {record_words} AS record_word, r.record_id IS NOT NULL AS loaded, r.stopped_at,
                       o.state AS our_state, o.rule_id AS our_rule_id, o.due_at AS our_due_at,
                       o.exclusion_reason,
                       CASE WHEN r.record_id IS NULL OR v.vendor_due_at IS NULL THEN NULL
                            WHEN r.stopped_at IS NOT NULL THEN r.stopped_at <= v.vendor_due_at
                            WHEN {asof} > v.vendor_due_at THEN FALSE END AS recomputed_met,
                       CASE o.state WHEN 'achieved' THEN TRUE WHEN 'breached' THEN FALSE END AS our_met
                FROM {SOURCE} v
                LEFT JOIN _rec_stops r ON r.source = v.source AND r.metric = v.metric AND r.record_id = v.record_id
                LEFT JOIN _rec_ours o ON v.source = 'tickets' AND o.metric = v.metric AND o.record_id = v.record_id
            ), k AS (
                SELECT *,
                       CASE WHEN vendor_met IS NULL AND vendor_due_at > {asof} AND loaded AND stopped_at IS NULL
                                THEN 'no verdict yet: still open before the vendor''s due time at the as-of time'
                            WHEN vendor_met IS NULL THEN 'the export states no verdict'
                                || CASE WHEN vendor_due_at IS NOT NULL THEN ' (only a due time)' ELSE '' END
                            WHEN NOT loaded THEN 'the record is not loaded (quarantined, or absent from the '
                                || source || ' export)'
                            WHEN recomputed_met IS NULL AND our_met IS NULL THEN
                                CASE WHEN our_state = 'active' OR (vendor_due_at IS NOT NULL AND stopped_at IS NULL)
                                         THEN 'still running at the as-of time'
                                     WHEN our_state = 'excluded' THEN 'excluded by our policy: ' || exclusion_reason
                                     ELSE 'no vendor due time and no clock of our policy on this ' || words END
                       END AS not_comparable_reason
                FROM j
            )
            SELECT record_id, source, metric, vendor_met, vendor_due_at, vendor_status, vendor_field, stopped_at,
                   recomputed_met, our_state, our_rule_id, our_due_at,
                   CASE WHEN not_comparable_reason IS NULL
                        THEN coalesce(recomputed_met = vendor_met, TRUE) AND coalesce(our_met = vendor_met, TRUE) END,
                   not_comparable_reason,
                   {lit(vendor[:1].upper() + vendor[1:])} || ' says the ' || words || ' of ' || record_word || ' ' || record_id
                       || ' was '
                       || CASE WHEN vendor_met IS NULL THEN 'not judged' ELSE {said} END
                       || ' (' || coalesce(vendor_field, 'verdict') || ': ' || coalesce(vendor_status, '—')
                       || CASE WHEN vendor_due_at IS NOT NULL THEN ', due ' || cr_ts(vendor_due_at) ELSE '' END || '). '
                       || CASE WHEN NOT loaded THEN ''
                               WHEN vendor_due_at IS NULL THEN 'No vendor due time to recompute against. '
                               WHEN stopped_at IS NOT NULL THEN 'Recomputed from the record: ' || words || ' '
                                   || cr_ts(stopped_at) || ', ' || CASE WHEN recomputed_met THEN 'at or before'
                                   ELSE cr_dur(cr_secs(vendor_due_at, stopped_at)) || ' after' END
                                   || ' the vendor''s due time, so ' || CASE WHEN recomputed_met THEN 'met' ELSE 'missed' END || '. '
                               WHEN recomputed_met IS NOT NULL THEN 'Recomputed from the record: no ' || words
                                   || ' by the as-of time ' || cr_ts({asof}) || ', past the vendor''s due time, so missed. '
                               ELSE 'Recomputed from the record: no ' || words || ' yet, and the vendor''s due time is '
                                   || 'after the as-of time. ' END
                       || CASE WHEN our_state IS NULL THEN 'No clock of our policy measures this ' || words || '.'
                               ELSE 'Our policy (' || our_rule_id || '): ' || our_state
                                   || CASE WHEN our_due_at IS NOT NULL THEN ', due ' || cr_ts(our_due_at) ELSE '' END
                                   || CASE WHEN our_state = 'excluded' THEN ' (' || coalesce(exclusion_reason, '') || ')'
                                           ELSE '' END || '.' END
                       || CASE WHEN not_comparable_reason IS NOT NULL THEN ' Not compared: ' || not_comparable_reason || '.'
                               WHEN coalesce(recomputed_met = vendor_met, TRUE) AND coalesce(our_met = vendor_met, TRUE)
                                   THEN ' Agrees.'
                               ELSE ' Disagrees: ' || concat_ws(' and ',
                                   CASE WHEN recomputed_met <> vendor_met THEN 'the record''s own times against the '
                                       || 'vendor''s due time say ' || CASE WHEN recomputed_met THEN 'met' ELSE 'missed' END END,
                                   CASE WHEN our_met <> vendor_met THEN 'our policy says '
                                       || CASE WHEN our_met THEN 'met' ELSE 'missed' END END) || '.' END,
                   source_file, source_line
            FROM k
            ORDER BY source, metric, record_id, source_line"""
    )
    con.execute(
        """INSERT INTO vendor_reconciliation_metrics
           WITH reasons AS (
               SELECT source, metric, string_agg(n || ' ' || not_comparable_reason, '; ' ORDER BY n DESC, not_comparable_reason) AS why
               FROM (SELECT source, metric, not_comparable_reason, count(*) AS n FROM vendor_reconciliation
                     WHERE not_comparable_reason IS NOT NULL GROUP BY ALL)
               GROUP BY ALL
           )
           SELECT r.source, r.metric, count(*), count(agrees), count(*) FILTER (WHERE agrees),
                  count(*) FILTER (WHERE NOT agrees),
                  count(*) FILTER (WHERE NOT agrees AND vendor_met),
                  count(*) FILTER (WHERE NOT agrees AND NOT vendor_met),
                  CASE WHEN count(agrees) > 0 THEN 100.0 * count(*) FILTER (WHERE agrees) / count(agrees) END,
                  count(*) - count(agrees), any_value(reasons.why)
           FROM vendor_reconciliation r LEFT JOIN reasons USING (source, metric)
           GROUP BY r.source, r.metric ORDER BY r.source, r.metric"""
    )
    _classify_disagreements(con)
    _due_agreement(con)
    con.execute("DROP TABLE IF EXISTS _rec_stops")
    con.execute("DROP TABLE IF EXISTS _rec_ours")


def _classify_disagreements(con: duckdb.DuckDBPyConnection) -> None:
    """``vendor_disagreement_classes``: the disagreements of ``vendor_reconciliation`` counted per class."""
    cases = " ".join(f"WHEN {condition} THEN {lit(name)}" for name, (condition, _) in DISAGREEMENT_CLASSES.items())
    meanings = " ".join(f"WHEN {lit(name)} THEN {lit(meaning)}" for name, (_, meaning) in DISAGREEMENT_CLASSES.items())
    con.execute(
        f"""INSERT INTO vendor_disagreement_classes
            WITH classified_disagreements AS (
                SELECT source, metric, CASE {cases} END AS class FROM vendor_reconciliation WHERE NOT agrees
            )
            SELECT source, metric, class, count(*), CASE class {meanings} END
            FROM classified_disagreements GROUP BY ALL ORDER BY source, metric, count(*) DESC, class"""
    )


def _due_agreement(con: duckdb.DuckDBPyConnection) -> None:
    """``vendor_due_agreement``: for the rows with a vendor due time, our policy's due time and verdict beside the
    vendor's due time. This is how an export that states due times but no verdicts (a 311 portal's due date,
    ServiceNow's ``sla_due``) gets a measure of agreement; only tickets have clocks of our policy to compare."""
    decided = "our_state IN ('achieved', 'breached')"
    con.execute(
        f"""INSERT INTO vendor_due_agreement
            SELECT source, metric, count(*),
                   count(*) FILTER (WHERE our_due_at IS NOT NULL),
                   count(*) FILTER (WHERE abs(epoch(vendor_due_at) - epoch(our_due_at)) < {DUE_TOLERANCE_SECONDS}),
                   count(*) FILTER (WHERE recomputed_met IS NOT NULL AND {decided}),
                   count(*) FILTER (WHERE recomputed_met IS NOT NULL AND {decided}
                                    AND recomputed_met = (our_state = 'achieved'))
            FROM vendor_reconciliation WHERE vendor_due_at IS NOT NULL
            GROUP BY ALL ORDER BY source, metric"""
    )


def _record_stops(con: duckdb.DuckDBPyConnection, asof: str, settings: dict) -> None:
    """``_rec_stops``: every loaded record × metric a vendor row may name, with its stop (NULL when none by as-of).

    A ticket without the stop's column is stopped by its events, read as the clocks read them
    (``compliance.rules.ticket_clocks.event_stops_sql``)."""
    events = table_exists(con, "staged_ticket_events")
    parts = []
    for (source, metric), column in STOPS.items():
        table = f"staged_{source}"
        if not table_exists(con, table):
            continue
        from_events = source == "tickets" and events
        stop = f"coalesce(s.{column}, e.ev_{metric})" if from_events else f"s.{column}"
        parts.append(
            f"SELECT {lit(source)} AS source, {lit(metric)} AS metric, CAST(s.{RECORD_IDS[source]} AS VARCHAR) AS record_id, "
            f"CASE WHEN {stop} <= {asof} THEN {stop} END AS stopped_at FROM {table} s"
            + (" LEFT JOIN _rec_events e ON e.ticket_id = s.ticket_id" if from_events else "")
        )
    if events and table_exists(con, "staged_tickets"):  # the clocks only events stop exist only as events
        vendor_metric = {ours: theirs for theirs, ours in OUR_METRIC.items()}
        for kind in EVENT_CLOCK_KINDS:
            parts.append(
                f"SELECT 'tickets', {lit(vendor_metric.get(kind, kind))}, s.ticket_id, e.ev_{kind} "
                "FROM staged_tickets s LEFT JOIN _rec_events e ON e.ticket_id = s.ticket_id"
            )
        create_event_stops(con, settings, asof, "_rec_events")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _rec_stops (source VARCHAR, metric VARCHAR, record_id VARCHAR, stopped_at TIMESTAMPTZ)"
    )
    if parts:
        con.execute(f"INSERT INTO _rec_stops {' UNION ALL '.join(parts)}")
    con.execute("DROP TABLE IF EXISTS _rec_events")


def _our_clocks(con: duckdb.DuckDBPyConnection) -> None:
    """``_rec_ours``: per ticket and vendor metric, the one clock of our policy that speaks for it."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _rec_ours (record_id VARCHAR, metric VARCHAR, rule_id VARCHAR, state VARCHAR, "
        "due_at TIMESTAMPTZ, exclusion_reason VARCHAR)"
    )
    if not table_exists(con, "ticket_sla"):
        return
    vendor_metric = (
        "CASE metric "
        + " ".join(f"WHEN {lit(ours)} THEN {lit(theirs)}" for theirs, ours in OUR_METRIC.items())
        + " ELSE metric END"
    )
    con.execute(
        f"""INSERT INTO _rec_ours
            SELECT record_id, {vendor_metric}, rule_id, state, due_at, exclusion_reason FROM ticket_sla
            QUALIFY row_number() OVER (
                PARTITION BY record_id, {vendor_metric}
                ORDER BY CASE state WHEN 'breached' THEN 0 WHEN 'achieved' THEN 1 WHEN 'active' THEN 2 ELSE 3 END,
                         cycle DESC, rule_id) = 1"""
    )


def conversion_record(exports_dir: Path) -> dict | None:
    """The conversion log (format, version, per-file accounting) of a converted exports folder, for the manifest."""
    path = exports_dir / CONVERSION_LOG
    if not path.is_file():
        return None
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return {"file": CONVERSION_LOG, "problem": f"unreadable: {error}"}
    # options: the --mapping (path, sha256), --timezone and --encoding the conversion was given, which verify re-passes
    keys = ("format", "format_version", "inputs", "notes", "filled_columns", "reading", "options")
    return {key: log.get(key) for key in keys}


def load_conversion_quarantine(con: duckdb.DuckDBPyConnection, exports_dir: Path) -> int:
    """Add the vendor records the conversion quarantined to ``quarantine``, under their vendor file name.

    The rows added by a previous run on this warehouse are replaced (``conversion_quarantine`` keeps them).
    Returns how many rows were added.
    """
    con.execute(f"CREATE TABLE IF NOT EXISTS conversion_quarantine ({QUARANTINE_COLUMNS_SQL})")
    if table_exists(con, "quarantine"):
        con.execute(
            """DELETE FROM quarantine q USING conversion_quarantine c
               WHERE q.source_file = c.source_file AND q.line IS NOT DISTINCT FROM c.line
                 AND q.record_id IS NOT DISTINCT FROM c.record_id AND q.reason_code = c.reason_code"""
        )
    con.execute("DELETE FROM conversion_quarantine")
    path = exports_dir / CONVERSION_QUARANTINE
    if not path.is_file() or not table_exists(con, "quarantine"):
        return 0
    con.execute(
        f"""INSERT INTO conversion_quarantine
            SELECT source_file, TRY_CAST(line AS BIGINT), {pseudonym_sql("record_id")}, reason_code,
                   {redact_sql("reason")}
            FROM read_csv({lit(str(path))}, header = true, all_varchar = true,
                          columns = {{'source_file': 'VARCHAR', 'line': 'VARCHAR', 'record_id': 'VARCHAR',
                                      'reason_code': 'VARCHAR', 'reason': 'VARCHAR'}})"""
    )
    con.execute(
        "INSERT INTO quarantine (source_file, line, record_id, reason_code, reason) "
        "SELECT source_file, line, record_id, reason_code, reason FROM conversion_quarantine"
    )
    return con.execute("SELECT count(*) FROM conversion_quarantine").fetchall()[0][0]
