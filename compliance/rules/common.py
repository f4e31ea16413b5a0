"""Shared helpers of the rule modules (privacy, security, status, retention).

Every rule module follows the same pattern, all in set-based DuckDB SQL:

1. Each rule turns the staged rows into *items* (one row per record the rule judges) in a temporary table with
   the columns of ``ITEM_COLUMNS``: the record, the month it counts in, its segment, its ``state``
   (``achieved`` | ``breached`` | ``active`` | ``excluded`` | ``waived``), the measured duration, and — for the rows that are
   findings — the violation fields (``due_at``, ``actual_at``, ``overdue_seconds``, ``severity``,
   ``explanation``).  Most rules are "an event must happen by a deadline" and use :func:`deadline_items`.
2. :func:`write_violations` and :func:`write_metrics` turn the items into ``violations_<domain>`` and
   ``metrics_<domain>`` with exactly the evidence columns of the data contract.

Timestamps in explanations are formatted by the SQL macro ``cr_ts`` (``2026-04-01 10:00 UTC``, seconds shown only
when not zero) and durations by ``cr_dur`` (``3 days 23 h 12 min``); both are installed as temporary macros on the
connection by :func:`install_macros`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import duckdb

from compliance.core.sql import install_macros, lit, table_exists, table_ref, ts_lit
from compliance.rule_kinds import RULE_KINDS, RuleInputs

VIOLATION_COLUMNS = (
    "rule_id VARCHAR, domain VARCHAR, record_id VARCHAR, due_at TIMESTAMPTZ, actual_at TIMESTAMPTZ, "
    "overdue_seconds BIGINT, severity VARCHAR, explanation VARCHAR, cause VARCHAR"
)
METRIC_COLUMNS = (
    "rule_id VARCHAR, domain VARCHAR, period VARCHAR, segment VARCHAR, achieved BIGINT, breached BIGINT, "
    "active BIGINT, excluded BIGINT, denominator BIGINT, adherence_pct DOUBLE, median_seconds DOUBLE, "
    "p90_seconds DOUBLE, p95_seconds DOUBLE, max_seconds DOUBLE, waived BIGINT"
)
# Working shape shared by every rule: one row per judged record.
ITEM_COLUMNS = (
    "rule_id VARCHAR, record_id VARCHAR, period_at TIMESTAMPTZ, segment VARCHAR, state VARCHAR, "
    "duration_seconds DOUBLE, due_at TIMESTAMPTZ, actual_at TIMESTAMPTZ, overdue_seconds BIGINT, "
    "severity VARCHAR, explanation VARCHAR, cause VARCHAR"
)
_ITEM_TYPES = [tuple(part.split()) for part in ITEM_COLUMNS.split(", ")]
ITEM_NAMES = [column for column, _ in _ITEM_TYPES]

# What each rule kind reads (compliance.rule_kinds, the one registry of kinds).
RULE_INPUTS: dict[str, RuleInputs] = {kind: spec.inputs for kind, spec in RULE_KINDS.items()}

# Why an item was breached: the ``cause`` of a violation, in the words of verdicts.csv and the report.
CAUSE_WORDS: dict[str, str] = {
    "answered_late": "answered late",
    "never_answered": "closed without an answer",
    "reviewed_late": "reviewed late",
    "never_reviewed": "closed without a senior review",
    "resolved_late": "resolved late",
    "acknowledged_late": "acknowledged late",
    "never_acknowledged": "closed without an acknowledgment",
    "open_past_due": "still open past due",
    "completed_late": "completed late",
    "unrecognised_type": "type not recognised",
    "missing_type": "no request type",
    "extension_notified_late": "extension notified too late",
    "extension_not_notified": "extension never notified",
    "timeline_late": "timeline sent late",
    "timeline_missing": "no timeline past due",
    "disclosed_late": "disclosed late",
    "undisclosed_past_embargo": "undisclosed past the embargo",
    "not_acknowledged": "not acknowledged past due",
    "notice_too_short": "announced too late",
    "never_announced": "never announced",
    "postmortem_late": "post-mortem published late",
    "postmortem_missing": "post-mortem missing",
    "silence_too_long": "update gap too long",
    "history_gap": "incident history gap",
    "deleted_late": "deleted late",
    "stored_past_deadline": "still stored past the deadline",
    "deleted_prematurely": "deleted prematurely",
    "kept_past_minimum": "kept well past the minimum",
    "missing_information": "required information missing",
    "secret_in_text": "secret in the text",
    "uncategorised": "no category from mailbox, tag or export",
}


def input_columns_known(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the ingest recorded the canonical columns of the loaded files (``input_columns``)."""
    return table_exists(con, "input_columns")


def absent_rule_columns(con: duckdb.DuckDBPyConnection, kind: str) -> list[tuple[str, str, str, str]]:
    """(source, file, column, reason) for every loaded file that lacks a column the rule kind needs."""
    needed = RULE_INPUTS.get(kind, RuleInputs(())).columns
    if not needed or not input_columns_known(con):
        return []
    pairs = " OR ".join(f"(source = {lit(source)} AND column_name = {lit(column)})" for source, column in needed)
    return con.execute(
        f"SELECT source, file, column_name, absence FROM input_columns WHERE NOT present AND ({pairs}) "
        "ORDER BY source, column_name, file"
    ).fetchall()


def rule_columns_absent_everywhere(con: duckdb.DuckDBPyConnection, kind: str) -> str | None:
    """The reason a rule kind cannot be judged at all: a needed column that no loaded file of its source carries
    (each file named); None when every needed column is in at least one file."""
    absent = absent_rule_columns(con, kind)
    if not absent:
        return None
    carried = {
        (source, column)
        for source, column in con.execute(
            "SELECT DISTINCT source, column_name FROM input_columns WHERE present"
        ).fetchall()
    }
    reasons = [reason for source, _, column, reason in absent if (source, column) not in carried]
    return "; ".join(reasons) or None


def exclude_items_of_files_without(
    con: duckdb.DuckDBPyConnection, items: str, rules, source: str, record_id: str
) -> None:
    """Set the items of records from a file that lacks a column their rule needs to ``excluded``: what the
    file does not carry cannot make a breach (its ``cause`` and explanation are cleared with the state).

    ``rules`` are the policy rules judged in ``items``; ``record_id`` is the SQL of the item's record ID over
    the staged row ``s`` of ``source``."""
    for rule in rules:
        files = sorted(
            {file for absent_source, file, _, _ in absent_rule_columns(con, rule.kind) if absent_source == source}
        )
        if not files:
            continue
        con.execute(
            f"""UPDATE {table_ref(items)} i SET state = 'excluded', duration_seconds = NULL, overdue_seconds = NULL,
                       severity = NULL, explanation = NULL, cause = NULL
                FROM {table_ref(f"staged_{source}")} s
                WHERE i.rule_id = $rule_id AND i.record_id = {record_id} AND list_contains($files, s.source_file)""",
            {"rule_id": rule.id, "files": files},
        )


def target_phrase(seconds: int) -> str:
    """``604800`` -> ``7-day``, ``86400`` -> ``24-hour`` (hours below 48), ``3600`` -> ``60-minute``."""
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400}-day"
    if seconds % 3600 == 0 and seconds >= 2 * 3600:
        return f"{seconds // 3600}-hour"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60}-minute"
    return f"{seconds}-second"


def require_seconds(rule) -> int:
    if rule.target.seconds is None:
        raise ValueError(f"rule {rule.id}: needs a target in seconds/minutes/hours/days")
    return int(rule.target.seconds)


def create_items(con: duckdb.DuckDBPyConnection, domain: str) -> str:
    name = table_ref(f"_items_{domain}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({ITEM_COLUMNS})")
    return name


def insert_items(con: duckdb.DuckDBPyConnection, items: str, select_sql: str) -> None:
    con.execute(f"INSERT INTO {table_ref(items)} ({', '.join(ITEM_NAMES)}) {select_sql}")


def create_items_view(con: duckdb.DuckDBPyConnection, domain: str, select_sql: str) -> str:
    """The items of one SELECT (columns in the order of ``ITEM_COLUMNS``) as a view instead of a table.

    For items read straight off one large table: writing millions of items out first costs more than the two
    reads of :func:`write_violations` (breaches only) and :func:`write_metrics` (no explanations). Drop it with
    ``DROP VIEW``.
    """
    name = table_ref(f"_items_{domain}")
    typed = ", ".join(f"CAST({column} AS {column_type}) AS {column}" for column, column_type in _ITEM_TYPES)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {typed} FROM ({select_sql}) AS s({', '.join(ITEM_NAMES)})"
    )
    return name


def create_empty_results(con: duckdb.DuckDBPyConnection, domain: str) -> None:
    con.execute(f"CREATE OR REPLACE TABLE {table_ref(f'violations_{domain}')} ({VIOLATION_COLUMNS})")
    con.execute(f"CREATE OR REPLACE TABLE {table_ref(f'metrics_{domain}')} ({METRIC_COLUMNS})")
    _capture(con, "empty", domain)


def source_staged(
    con: duckdb.DuckDBPyConnection, domain: str, source: str, empty_tables: dict[str, str] | None = None
) -> bool:
    """The start of a domain's ``evaluate``: install the explanation macros and tell whether ``source`` is staged.

    When it is not, the domain's results are created empty, and so is every table of ``empty_tables`` (name ->
    column definitions), and the caller returns."""
    install_macros(con)
    if table_exists(con, source):
        return True
    create_empty_results(con, domain)
    for table, columns in (empty_tables or {}).items():
        con.execute(f"CREATE OR REPLACE TABLE {table_ref(table)} ({columns})")
    return False


def appending_rules_ready(con: duckdb.DuckDBPyConnection, target: str, rules: list, source: str) -> bool:
    """The start of a rule that appends its rows to another domain's results (:func:`append_results`): the
    ``target`` results exist (created empty when not); True when there are ``rules`` to judge and ``source`` is
    staged (the explanation macros are then installed)."""
    if not table_exists(con, f"violations_{target}"):
        create_empty_results(con, target)
    if not rules or not table_exists(con, source):
        return False
    install_macros(con)
    return True


def append_results(
    con: duckdb.DuckDBPyConnection,
    target: str,
    scratch: str,
    kind: str,
    domain: str,
    where: str = "TRUE",
    segment: str | None = None,
) -> None:
    """Append ``<kind>_<scratch>`` (``kind``: violations or metrics) to ``<kind>_<target>`` under ``domain``,
    the rows that satisfy the SQL condition ``where`` (their ``segment`` renamed when given), and drop the scratch
    table.

    For rules whose rows share another domain's tables: :func:`write_violations` and :func:`write_metrics` replace
    their target, so such a rule writes under a scratch name and appends from there."""
    appended = table_ref(f"{kind}_{scratch}")
    renamed = f", CAST({lit(segment)} AS VARCHAR) AS segment" if segment is not None else ""
    con.execute(
        f"""INSERT INTO {table_ref(f"{kind}_{target}")}
            SELECT * REPLACE (CAST({lit(domain)} AS VARCHAR) AS domain{renamed}) FROM {appended} WHERE {where}"""
    )
    con.execute(f"DROP TABLE {appended}")
    if kind == "metrics":
        _capture(con, "append", scratch, target=target, label=domain, where_sql=where, segment=segment)


def append_rule_results(
    con: duckdb.DuckDBPyConnection, target: str, scratch: str, items: str, rule_ids: list[str], domain: str
) -> None:
    """Write the violations and metrics of ``items`` under the ``scratch`` name and append both to the ``target``
    results under ``domain`` (:func:`append_results`); the waivers of ``rule_ids`` are applied first."""
    apply_waivers(con, items, rule_ids)
    write_violations(con, scratch, items)
    write_metrics(con, scratch, items, rule_ids)
    for kind in ("violations", "metrics"):
        append_results(con, target, scratch, kind, domain)


def finish_domain(
    con: duckdb.DuckDBPyConnection,
    policy,
    domain: str,
    items: str,
    source: str,
    record_id: str,
    rule_ids: list[str] | None = None,
    extra_segments: dict[str, list[str]] | None = None,
) -> None:
    """The end of a domain's ``evaluate``: exclude the items of files without a needed column (``source`` and
    ``record_id`` as for :func:`exclude_items_of_files_without`), write ``violations_<domain>`` and
    ``metrics_<domain>`` (a zero row for each of ``rule_ids``, by default every policy rule of the domain) and drop
    the items."""
    rules = [rule for rule in policy.rules if rule.domain == domain]
    exclude_items_of_files_without(con, items, rules, source, record_id)
    apply_waivers(con, items, [rule.id for rule in rules])
    write_violations(con, domain, items)
    write_metrics(con, domain, items, [rule.id for rule in rules] if rule_ids is None else rule_ids, extra_segments)
    write_at_risk_items(con, domain, items)
    drop_items(con, items)


# The open items of a domain not yet due at the as-of time (``at_risk_<domain>``), which
# compliance.evidence.at_risk puts beside the ticket clocks in evidence/at_risk.csv.
AT_RISK_ITEM_COLUMNS = "rule_id VARCHAR, record_id VARCHAR, started_at TIMESTAMPTZ, due_at TIMESTAMPTZ"


def write_at_risk_items(con: duckdb.DuckDBPyConnection, domain: str, items: str | None = None) -> None:
    """``at_risk_<domain>``: the ``active`` items of ``items`` with a deadline (empty without ``items``)."""
    target = table_ref(f"at_risk_{domain}")
    con.execute(f"CREATE OR REPLACE TABLE {target} ({AT_RISK_ITEM_COLUMNS})")
    if items is not None:
        con.execute(
            f"""INSERT INTO {target}
                SELECT rule_id, record_id, period_at, due_at FROM {table_ref(items)}
                WHERE state = 'active' AND due_at IS NOT NULL"""
        )


def target_of(rule) -> tuple[int, str]:
    """A rule's target in seconds and as an adjective (:func:`target_phrase`)."""
    seconds = require_seconds(rule)
    return seconds, target_phrase(seconds)


# Columns deadline_items computes; same-named source columns are hidden so that they cannot shadow them.
_COMPUTED = "'record_id', 'period_at', 'due_at', 'actual_at', 'segment', 'state', 'overdue_seconds'"


def deadline_items(
    *,
    rule_id: str,
    as_of: str,
    source: str,
    record_id: str,
    period_at: str,
    due: str,
    actual: str,
    duration: str,
    late_explanation: str,
    open_explanation: str,
    late_cause: str,
    open_cause: str,
    segment: str = "NULL",
    where: str = "TRUE",
    excluded: str | None = None,
) -> str:
    """SELECT producing items for "``actual`` must happen no later than ``due``".

    Expressions are SQL over the source row ``s`` (all its columns are visible). ``actual`` happening after
    ``as_of`` counts as not happened yet. States: ``excluded`` when ``excluded`` holds (default: the clock start
    ``period_at`` is unknown or after as_of, or the deadline is unknown); ``achieved`` when actual <= due (the
    due instant itself is on time); ``breached`` when actual > due, or when nothing happened and as_of > due;
    ``active`` otherwise. ``duration``, ``late_explanation`` and ``open_explanation`` may use the computed
    columns ``due_at``, ``actual_at``, ``overdue_seconds`` and the source columns; ``late_cause`` and
    ``open_cause`` are SQL giving the cause code of a breach that happened late / has not happened (see
    ``CAUSE_WORDS``).
    """
    excluded = excluded or f"period_at IS NULL OR period_at > {as_of}"
    return f"""
        WITH b AS (
            SELECT COLUMNS(lambda c: c NOT IN ({_COMPUTED})), {record_id} AS record_id, {period_at} AS period_at, {due} AS due_at,
                   CASE WHEN ({actual}) <= {as_of} THEN ({actual}) END AS actual_at, {segment} AS segment
            FROM {source} s WHERE {where}
        ), j AS (
            SELECT *, CASE
                WHEN ({excluded}) OR due_at IS NULL THEN 'excluded'
                WHEN actual_at IS NOT NULL THEN CASE WHEN actual_at <= due_at THEN 'achieved' ELSE 'breached' END
                WHEN {as_of} > due_at THEN 'breached'
                ELSE 'active' END AS state
            FROM b
        ), k AS (
            SELECT *, CASE WHEN state = 'breached' THEN cr_secs(due_at, coalesce(actual_at, {as_of})) END
                AS overdue_seconds
            FROM j
        )
        SELECT {lit(rule_id)}, record_id, period_at, segment, state,
               CASE WHEN state <> 'excluded' THEN {duration} END,
               due_at, actual_at, overdue_seconds,
               CASE WHEN state = 'breached' THEN 'breach' END,
               CASE WHEN state = 'breached' AND actual_at IS NOT NULL THEN {late_explanation}
                    WHEN state = 'breached' THEN {open_explanation} END,
               CASE WHEN state = 'breached' AND actual_at IS NOT NULL THEN {late_cause}
                    WHEN state = 'breached' THEN {open_cause} END
        FROM k
    """


def deadline_inserter(con: duckdb.DuckDBPyConnection, items: str, **shared: str) -> Callable[..., None]:
    """A function that inserts the :func:`deadline_items` of one rule into ``items``: called with that rule's
    arguments, the ``shared`` ones (those every rule of a domain has alike: ``as_of``, ``source``, ...) added;
    an argument given in the call wins over a shared one."""

    def insert(**arguments: str) -> None:
        insert_items(con, items, deadline_items(**{**shared, **arguments}))

    return insert


def write_violations(con: duckdb.DuckDBPyConnection, domain: str, items: str) -> None:
    con.execute(
        f"""CREATE OR REPLACE TABLE {table_ref(f"violations_{domain}")} AS
            SELECT CAST(rule_id AS VARCHAR) AS rule_id, CAST({lit(domain)} AS VARCHAR) AS domain,
                   CAST(record_id AS VARCHAR) AS record_id, CAST(due_at AS TIMESTAMPTZ) AS due_at,
                   CAST(actual_at AS TIMESTAMPTZ) AS actual_at, CAST(overdue_seconds AS BIGINT) AS overdue_seconds,
                   CAST(severity AS VARCHAR) AS severity, CAST(explanation AS VARCHAR) AS explanation,
                   CAST(cause AS VARCHAR) AS cause
            FROM {table_ref(items)} WHERE severity IS NOT NULL
            ORDER BY rule_id, due_at NULLS LAST, record_id"""
    )


def write_metrics(
    con: duckdb.DuckDBPyConnection,
    domain: str,
    items: str,
    rule_ids: list[str],
    extra_segments: dict[str, list[str]] | None = None,
) -> None:
    """Aggregate items into ``metrics_<domain>``: per rule, rows for all/all, every month, every segment and
    every month x segment. Rules in ``rule_ids`` without any item still get an all/all row of zeros. A waived item
    counts in ``waived`` only: neither in the denominator nor in ``excluded`` (which keeps its meaning, "not
    judged"), nor in the duration statistics.
    ``extra_segments`` (rule_id -> segment values) adds all-period zero rows for segments without items.
    Duration statistics are over the non-excluded items whose measured interval ended (``duration_seconds``)."""
    _capture(con, "write", domain, items=items, rule_ids=rule_ids, extra_segments=extra_segments or {})
    metrics = table_ref(f"metrics_{domain}")
    con.execute(
        f"""CREATE OR REPLACE TABLE {metrics} AS
        WITH base AS (
            -- grouped on the month as a timestamp, written as text per group: formatting every item costs more
            SELECT rule_id, date_trunc('month', cr_utc(period_at)) AS month, segment, state,
                   CASE WHEN state NOT IN ('excluded', 'waived') THEN duration_seconds END AS d
            FROM {table_ref(items)}
        ), agg AS (
            SELECT rule_id,
                   CASE WHEN grouping(month) = 1 THEN 'all' ELSE strftime(month, '%Y-%m') END AS period,
                   CASE WHEN grouping(segment) = 1 THEN 'all' ELSE segment END AS segment,
                   count(*) FILTER (WHERE state = 'achieved') AS achieved,
                   count(*) FILTER (WHERE state = 'breached') AS breached,
                   count(*) FILTER (WHERE state = 'active') AS active,
                   count(*) FILTER (WHERE state = 'excluded') AS excluded,
                   count(*) FILTER (WHERE state = 'waived') AS waived,
                   -- one aggregate for the three fractions holds the values once, not three times
                   quantile_cont(d, [0.5, 0.9, 0.95]) AS q, max(d) AS max_seconds
            FROM base
            GROUP BY GROUPING SETS ((rule_id), (rule_id, month), (rule_id, segment), (rule_id, month, segment))
            HAVING NOT (grouping(month) = 0 AND month IS NULL) AND NOT (grouping(segment) = 0 AND segment IS NULL)
        )
        SELECT CAST(rule_id AS VARCHAR) AS rule_id, CAST({lit(domain)} AS VARCHAR) AS domain,
               CAST(period AS VARCHAR) AS period, CAST(segment AS VARCHAR) AS segment,
               CAST(achieved AS BIGINT) AS achieved, CAST(breached AS BIGINT) AS breached,
               CAST(active AS BIGINT) AS active, CAST(excluded AS BIGINT) AS excluded,
               CAST(achieved + breached AS BIGINT) AS denominator,
               CAST(CASE WHEN achieved + breached > 0 THEN 100.0 * achieved / (achieved + breached) END AS DOUBLE)
                   AS adherence_pct,
               CAST(q[1] AS DOUBLE) AS median_seconds, CAST(q[2] AS DOUBLE) AS p90_seconds,
               CAST(q[3] AS DOUBLE) AS p95_seconds, CAST(max_seconds AS DOUBLE) AS max_seconds,
               CAST(waived AS BIGINT) AS waived
        FROM agg"""
    )
    zero = "0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, 0"
    for rule_id in rule_ids:
        con.execute(
            f"""INSERT INTO {metrics}
                SELECT {lit(rule_id)}, {lit(domain)}, 'all', 'all', {zero}
                WHERE NOT EXISTS (SELECT 1 FROM {metrics}
                                  WHERE rule_id = {lit(rule_id)} AND period = 'all' AND segment = 'all')"""
        )
    for rule_id, segments in (extra_segments or {}).items():
        for segment in segments:
            con.execute(
                f"""INSERT INTO {metrics}
                    SELECT {lit(rule_id)}, {lit(domain)}, 'all', {lit(segment)}, {zero}
                    WHERE NOT EXISTS (SELECT 1 FROM {metrics} WHERE rule_id = {lit(rule_id)}
                                      AND period = 'all' AND segment = {lit(segment)})"""
            )
    # A stable order for readers and tests: all/all first, then months, then segments.
    con.execute(
        f"""CREATE OR REPLACE TABLE {metrics} AS SELECT * FROM {metrics}
            ORDER BY rule_id, period <> 'all', period, segment <> 'all', segment"""
    )


def drop_items(con: duckdb.DuckDBPyConnection, items: str) -> None:
    con.execute(f"DROP TABLE IF EXISTS {table_ref(items)}")


# --- the figures of several policy versions (compliance.evidence.policy_versions) --------------------------------
# While one version of several judges its part of a run, every metric write records its items and arguments, and
# every append of figures its arguments, in order, so that the run's figures can be computed again over the items
# of every version by the same functions (policy_versions.replay_metrics). Temporary tables of the connection.
METRIC_CAPTURES = "_metric_captures"
METRIC_CAPTURE_ITEMS = "_metric_capture_items"
_CAPTURING = "_metric_capture_version"


def start_metric_capture(con: duckdb.DuckDBPyConnection, version_index: int) -> None:
    """Record the metric writes that follow as those of the ``version_index``-th version of the run."""
    con.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {METRIC_CAPTURES} (version_index INTEGER, position INTEGER, "
        "operation VARCHAR, domain VARCHAR, occurrence INTEGER, target VARCHAR, label VARCHAR, where_sql VARCHAR, "
        "segment VARCHAR, rule_ids VARCHAR[], extra_segments VARCHAR)"
    )
    con.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {METRIC_CAPTURE_ITEMS} (version_index INTEGER, domain VARCHAR, "
        "occurrence INTEGER, rule_id VARCHAR, period_at TIMESTAMPTZ, segment VARCHAR, state VARCHAR, "
        "duration_seconds DOUBLE)"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_CAPTURING} AS SELECT ?::INTEGER AS version_index", [version_index])


def stop_metric_capture(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP TABLE IF EXISTS temp.main.{_CAPTURING}")


def _capture(
    con: duckdb.DuckDBPyConnection,
    operation: str,
    domain: str,
    items: str | None = None,
    rule_ids: list[str] | None = None,
    extra_segments: dict[str, list[str]] | None = None,
    target: str | None = None,
    label: str | None = None,
    where_sql: str | None = None,
    segment: str | None = None,
) -> None:
    if not table_exists(con, _CAPTURING):
        return
    version_index, position, occurrence = con.execute(
        f"""SELECT c.version_index,
                   (SELECT count(*) FROM {METRIC_CAPTURES} m WHERE m.version_index = c.version_index),
                   (SELECT count(*) FROM {METRIC_CAPTURES} m WHERE m.version_index = c.version_index
                        AND m.operation = ? AND m.domain = ?)
            FROM {_CAPTURING} c""",
        [operation, domain],
    ).fetchall()[0]
    con.execute(
        f"INSERT INTO {METRIC_CAPTURES} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            version_index,
            position,
            operation,
            domain,
            occurrence,
            target,
            label,
            where_sql,
            segment,
            list(rule_ids or []),
            json.dumps(extra_segments or {}),
        ],
    )
    if items is not None:
        con.execute(
            f"""INSERT INTO {METRIC_CAPTURE_ITEMS}
                SELECT ?, ?, ?, rule_id, period_at, segment, state, duration_seconds FROM {table_ref(items)}""",
            [version_index, domain, occurrence],
        )


# --- waivers (the optional waivers export: approved exceptions, one per record and rule) -------------------------
# Readings: a waiver applies to every item (every cycle) of its record under its rule that the rule judged; the
# item gets state ``waived``: out of the denominator, not a violation. It is refused, with its reason, when it has
# no approver or no reason, names a rule the policy does not have, has no approval time or was approved after the
# as-of time, has expired at the as-of time (``expires_at <= as_of``: refused as expired, never applied to part of
# the period), repeats an applicable waiver of the same record and rule (the first by file and line applies), or
# names a record the rule has no item for, or only excluded ones. A refused waiver changes no verdict.
WAIVER_OUTCOME_COLUMNS = (
    "record_id VARCHAR, rule_id VARCHAR, reason VARCHAR, approved_by VARCHAR, approved_at TIMESTAMPTZ, "
    "expires_at TIMESTAMPTZ, source_file VARCHAR, source_line BIGINT, outcome VARCHAR, refusal VARCHAR"
)
# The run's waivers with the refusals that do not depend on the items (temp, per connection) and the outcomes
# the rules of one step gave them (temp; each step keeps its own as waiver_outcomes_<step>).
WAIVER_CHECKS = "_waiver_checks"
WAIVER_OUTCOMES = "_waiver_outcomes"


def waiver_checks_sql(rule_ids: list[str], as_of_sql: str) -> str:
    """SELECT of every staged waiver (columns of ``WAIVER_OUTCOME_COLUMNS`` but ``outcome``) with its ``refusal``
    by the checks that need no item (NULL when it can apply). Needs the ``cr_ts`` macro (:func:`install_macros`)."""
    known = "[" + ", ".join(lit(rule_id) for rule_id in rule_ids) + "]::VARCHAR[]"
    return f"""
        WITH waiver_rows AS (
            SELECT CAST(record_id AS VARCHAR) AS record_id, CAST(rule_id AS VARCHAR) AS rule_id,
                   nullif(trim(reason), '') AS reason, nullif(trim(approved_by), '') AS approved_by,
                   approved_at, expires_at, source_file, source_line
            FROM staged_waivers
        ), checked_alone AS (
            SELECT *, CASE
                WHEN approved_by IS NULL THEN 'no approver'
                WHEN reason IS NULL THEN 'no reason given'
                WHEN NOT list_contains({known}, rule_id) THEN 'unknown rule ID ' || rule_id
                WHEN approved_at IS NULL THEN 'no approval time'
                WHEN approved_at > {as_of_sql}
                    THEN 'approved ' || cr_ts(approved_at) || ', after the as-of time ' || cr_ts({as_of_sql})
                WHEN expires_at <= {as_of_sql}
                    THEN 'expired ' || cr_ts(expires_at) || ', by the as-of time ' || cr_ts({as_of_sql})
                END AS refusal
            FROM waiver_rows
        )
        SELECT record_id, rule_id, reason, approved_by, approved_at, expires_at, source_file, source_line,
               coalesce(refusal, CASE WHEN row_number() OVER same_item > 1
                   THEN 'duplicate of the waiver in ' || first_value(source_file || ' line ' || source_line) OVER same_item
                   END) AS refusal
        FROM checked_alone
        WINDOW same_item AS (PARTITION BY record_id, rule_id, refusal IS NULL ORDER BY source_file, source_line)
    """


def prepare_waivers(con: duckdb.DuckDBPyConnection, policy, as_of) -> None:
    """The start of a rules step: ``_waiver_checks`` (:func:`waiver_checks_sql`; empty without a waivers export)
    and an empty ``_waiver_outcomes`` that :func:`apply_waivers` fills."""
    install_macros(con)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {WAIVER_OUTCOMES} ({WAIVER_OUTCOME_COLUMNS})")
    if table_exists(con, "staged_waivers"):
        checks = waiver_checks_sql([rule.id for rule in policy.rules], ts_lit(as_of))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {WAIVER_CHECKS} AS {checks}")
    else:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {WAIVER_CHECKS} AS SELECT * EXCLUDE (outcome) "
            f"FROM {WAIVER_OUTCOMES} WHERE FALSE"
        )


def apply_waivers(
    con: duckdb.DuckDBPyConnection,
    items: str,
    rule_ids: list[str],
    waived: str = "overdue_seconds = NULL, severity = NULL, explanation = NULL, cause = NULL",
) -> None:
    """Give the items of ``items`` (a table with ``rule_id``, ``record_id``, ``state``) that an applicable waiver
    of ``rule_ids`` names the state ``waived`` (and the assignments ``waived``: a waived item is no finding), and
    record every waiver of those rules in ``_waiver_outcomes``, applied or refused with its reason.

    Without :func:`prepare_waivers` on the connection (a rule module evaluated on its own) nothing is waived."""
    if not rule_ids or not table_exists(con, WAIVER_CHECKS):
        return
    con.execute(
        f"""INSERT INTO {WAIVER_OUTCOMES}
            WITH waivers_of_rules AS (
                SELECT * FROM {WAIVER_CHECKS} WHERE list_contains($rule_ids, rule_id)
            ), named_items AS (
                SELECT rule_id, record_id, bool_or(state <> 'excluded') AS judged
                FROM {table_ref(items)}
                WHERE list_contains($rule_ids, rule_id) AND record_id IN (SELECT record_id FROM waivers_of_rules)
                GROUP BY rule_id, record_id
            )
            SELECT w.record_id, w.rule_id, w.reason, w.approved_by, w.approved_at, w.expires_at, w.source_file,
                   w.source_line, CASE WHEN w.refusal IS NULL AND i.judged THEN 'applied' ELSE 'refused' END,
                   CASE WHEN w.refusal IS NOT NULL THEN w.refusal
                        WHEN i.record_id IS NULL THEN 'unknown record: rule ' || w.rule_id || ' has no item ' || w.record_id
                        WHEN NOT i.judged THEN 'the item is excluded from rule ' || w.rule_id || ' (not judged)' END
            FROM waivers_of_rules w LEFT JOIN named_items i ON i.rule_id = w.rule_id AND i.record_id = w.record_id""",
        {"rule_ids": rule_ids},
    )
    con.execute(
        f"""UPDATE {table_ref(items)} i SET state = 'waived', {waived}
            FROM {WAIVER_OUTCOMES} w
            WHERE w.outcome = 'applied' AND w.rule_id = i.rule_id AND w.record_id = i.record_id
              AND i.state <> 'excluded' AND list_contains($rule_ids, i.rule_id)""",
        {"rule_ids": rule_ids},
    )


def keep_waiver_outcomes(con: duckdb.DuckDBPyConnection, step: str) -> None:
    """The end of a rules step: its waiver outcomes as ``waiver_outcomes_<step>`` (empty when it applied none),
    which :mod:`compliance.evidence.waivers` combines."""
    kept = table_ref(f"waiver_outcomes_{step}")
    con.execute(f"CREATE OR REPLACE TABLE {kept} ({WAIVER_OUTCOME_COLUMNS})")
    if table_exists(con, WAIVER_OUTCOMES):
        con.execute(f"INSERT INTO {kept} SELECT * FROM {WAIVER_OUTCOMES}")
