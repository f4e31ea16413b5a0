"""Several policy versions in one run: each item judged by the version in force when its clock started.

A judging step (the ticket clocks, a rules step) runs as :func:`judge_by_version`. Under one version it reads the
run's items (the period's, or all) and writes its tables as always. Under several, it runs once per version on
the items of that version's window (:class:`compliance.policy.VersionWindow`, read through the views of
:func:`compliance.evidence.periods.restrict_items`), each time into a schema of its own, and then puts together
the run's tables in the main schema:

* the tables of judged items (ticket clocks, violations, at-risk items, the privacy backlog, secret findings, …)
  are the union of the versions' rows, in the order the single-version table has;
* the figures (``metrics_<domain>``) are computed again, by the same :func:`compliance.rules.common.write_metrics`,
  over the union of the items every version judged (:func:`replay_metrics`): counts, adherence and the exact
  quantiles of the whole run, never combined from each version's figures;
* a waiver is applied when any version's items took it, else refused as that version refused it;
* what describes the exports rather than judging items (data-quality findings, the quarantine, response-time and
  incident summaries, expectation figures) comes from one pass over all the run's items under the newest version,
  which also reads the exports (``VersionWindow.latest``).

Every run records in ``policy_version_items`` how many items (rule × record) each version judged, per rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import duckdb

from compliance.core.sql import ident, lit, mark_stored_order, order_in_comment, table_exists, table_ref
from compliance.evidence.periods import (
    ItemSelection,
    ReportPeriod,
    lift_restriction,
    restrict_items,
    restrict_to_period,
)
from compliance.policy import VersionWindow
from compliance.rules.common import (
    METRIC_CAPTURE_ITEMS,
    METRIC_CAPTURES,
    append_results,
    create_empty_results,
    start_metric_capture,
    stop_metric_capture,
    write_metrics,
)
from compliance.rules.secrets_in_text import SCAN_STORE, SCAN_STORE_KEY

Result = TypeVar("Result")

VERSION_ITEMS = "policy_version_items"
VERSION_ITEM_COLUMNS = (
    "version VARCHAR, effective_from TIMESTAMPTZ, judged_from TIMESTAMPTZ, judged_until TIMESTAMPTZ, "
    "domain VARCHAR, rule_id VARCHAR, items BIGINT"
)
# Tables a step writes that describe the exports, not the items a version judged, and the stores a step keeps
# for the next run (the secret scan's texts): the whole pass's are kept.
WHOLE_RUN_TABLES = (
    "data_quality",
    "quarantine",
    "conversion_quarantine",
    "response_times",
    "expectation_metrics",
    "incident_response",
    SCAN_STORE,
    SCAN_STORE_KEY,
)
# The order of a table of items that its writer sorts without marking it (compliance.core.sql.mark_stored_order).
ITEM_TABLE_ORDER = {
    "privacy_backlog": "due_at, request_id",
    "secret_findings": "ALL",
    "information_completeness": "rule_id, created_at, record_id",
}
VIOLATIONS_ORDER = "rule_id, due_at NULLS LAST, record_id"
SCHEMA_PREFIX = "policy_version_"


def judge_by_version(
    con: duckdb.DuckDBPyConnection,
    windows: tuple[VersionWindow, ...],
    period: ReportPeriod | None,
    step: str,
    domains: tuple[str, ...],
    evaluate: Callable[[duckdb.DuckDBPyConnection, VersionWindow], Result],
    catalog: str = "",
) -> Result:
    """Run ``evaluate`` (a judging step writing the tables of ``domains``) so that each item is judged by the
    version of ``windows`` in force when its clock started, and record who judged how many items.

    ``period``: the run's report period (None: every item); ``catalog``: the database of the staged tables (as
    for :func:`compliance.evidence.periods.restrict_items`). Returns what the pass over all items returned."""
    _drop_schemas(con, step)
    restrict_to_period(con, period, catalog)
    result = evaluate(con, windows[-1])
    if len(windows) == 1:
        _record_version_items(con, windows, domains, [""])
        return result
    search_path = con.execute("SELECT current_setting('search_path')").fetchall()[0][0]
    main_schema = con.execute("SELECT current_schema()").fetchall()[0][0]
    try:
        for index, window in enumerate(windows):
            schema = _schema(step, index)
            con.execute(f"SET search_path = {lit(search_path)}")
            con.execute(f"CREATE SCHEMA {ident(schema)}")
            for table in WHOLE_RUN_TABLES:  # a version's writes there land in a copy that is left unused
                if table_exists(con, table):
                    con.execute(f"CREATE TABLE {ident(schema)}.{ident(table)} AS SELECT * FROM {ident(table)}")
            others = [name for name in _schemas(con) if name.endswith(f"_{index}") and name != schema]
            con.execute(f"SET search_path = {lit(','.join([schema, *others, search_path]))}")
            restrict_items(con, _selection(window, period), catalog)
            start_metric_capture(con, index)
            evaluate(con, window)
            stop_metric_capture(con)
    finally:
        con.execute(f"SET search_path = {lit(search_path)}")
        lift_restriction(con)
        restrict_to_period(con, period, catalog)
    schemas = [_schema(step, index) for index in range(len(windows))]
    _merge_item_tables(con, schemas, main_schema)
    replay_metrics(con)
    _record_version_items(con, windows, domains, schemas)
    return result


def _selection(window: VersionWindow, period: ReportPeriod | None) -> ItemSelection:
    return ItemSelection(
        window.start, window.end, keep_unknown_start=window.latest and period is None, keep_sourceless=window.latest
    )


def _schema(step: str, index: int) -> str:
    return f"{SCHEMA_PREFIX}{step}_{index}"


def _schemas(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        row[0]
        for row in con.execute(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database() "
            "AND starts_with(schema_name, ?) ORDER BY schema_name",
            [SCHEMA_PREFIX],
        ).fetchall()
    ]


def _drop_schemas(con: duckdb.DuckDBPyConnection, step: str) -> None:
    """The schemas of an earlier run of ``step``: a run under one version leaves none behind."""
    for name in _schemas(con):
        if name.rsplit("_", 1)[0] == f"{SCHEMA_PREFIX}{step}":
            con.execute(f"DROP SCHEMA {ident(name)} CASCADE")


def _in_schema(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? "
        "AND table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(rows[0][0])


def _tables(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, str | None]:
    """The tables of ``schema`` with their comments."""
    return dict(
        con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = ? ORDER BY table_name",
            [schema],
        ).fetchall()
    )


def _merge_item_tables(con: duckdb.DuckDBPyConnection, schemas: list[str], main_schema: str) -> None:
    """Each table of judged items as the union of the versions' rows (see the module's docstring)."""
    names: dict[str, str | None] = {}
    for schema in schemas:
        for table, comment in _tables(con, schema).items():
            names.setdefault(table, comment)
    for table, comment in names.items():
        if table in WHOLE_RUN_TABLES or table.startswith("metrics_"):
            continue
        parts = [f"SELECT * FROM {ident(schema)}.{ident(table)}" for schema in schemas if table in _tables(con, schema)]
        union = " UNION ALL BY NAME ".join(parts)
        target = f"{ident(main_schema)}.{ident(table)}"
        if table.startswith("waiver_outcomes_"):
            # a waiver is applied when a version had its item; else every version refused it alike but for
            # the item-dependent reason, which the newest version's refusal states
            con.execute(
                f"""CREATE OR REPLACE TABLE {target} AS
                    SELECT * EXCLUDE (version_position) FROM (
                        SELECT *, row_number() OVER () AS version_position FROM ({union}))
                    QUALIFY row_number() OVER (PARTITION BY source_file, source_line
                                               ORDER BY outcome <> 'applied', version_position DESC) = 1
                    ORDER BY source_file, source_line"""
            )
            continue
        order = order_in_comment(comment) or ITEM_TABLE_ORDER.get(table)
        if order is None and table.startswith("violations_"):
            order = VIOLATIONS_ORDER
        con.execute(f"CREATE OR REPLACE TABLE {target} AS {union}{f' ORDER BY {order}' if order else ''}")
        if order_in_comment(comment):
            mark_stored_order(con, target, order)


def replay_metrics(con: duckdb.DuckDBPyConnection) -> None:
    """The figures of every domain a step wrote, computed over the union of the items each version judged.

    The newest version's sequence of metric writes (:func:`compliance.rules.common.start_metric_capture`) is
    replayed: each write over the items of the same write (by domain and occurrence) of every version, each
    append as it was made."""
    latest = con.execute(f"SELECT max(version_index) FROM {METRIC_CAPTURES}").fetchall()[0][0]
    operations = con.execute(
        f"SELECT operation, domain, occurrence, target, label, where_sql, segment, rule_ids, extra_segments "
        f"FROM {METRIC_CAPTURES} WHERE version_index = ? ORDER BY position",
        [latest],
    ).fetchall()
    for operation, domain, occurrence, target, label, where_sql, segment, _, _ in operations:
        if operation == "empty":
            create_empty_results(con, domain)
        elif operation == "append":
            append_results(con, target, domain, "metrics", label, where_sql, segment)
        else:
            rule_ids, extra_segments = _write_arguments(con, domain, occurrence)
            items = f"_replayed_items_{domain}"
            con.execute(
                f"""CREATE OR REPLACE TEMP VIEW {table_ref(items)} AS
                    SELECT * EXCLUDE (version_index, domain, occurrence) FROM {METRIC_CAPTURE_ITEMS}
                    WHERE domain = {lit(domain)} AND occurrence = {occurrence}"""
            )
            write_metrics(con, domain, items, rule_ids, extra_segments)
            con.execute(f"DROP VIEW {table_ref(items)}")
    con.execute(f"DROP TABLE {METRIC_CAPTURES}")
    con.execute(f"DROP TABLE {METRIC_CAPTURE_ITEMS}")


def _write_arguments(
    con: duckdb.DuckDBPyConnection, domain: str, occurrence: int
) -> tuple[list[str], dict[str, list[str]]]:
    """The rules and extra segments of one metric write, over every version (each in its first version's order)."""
    rule_ids: dict[str, None] = {}
    extra_segments: dict[str, dict[str, None]] = {}
    for rules, extra in con.execute(
        f"SELECT rule_ids, extra_segments FROM {METRIC_CAPTURES} WHERE operation = 'write' AND domain = ? "
        "AND occurrence = ? ORDER BY version_index DESC",
        [domain, occurrence],
    ).fetchall():
        rule_ids.update(dict.fromkeys(rules))
        for rule_id, segments in json.loads(extra).items():
            extra_segments.setdefault(rule_id, {}).update(dict.fromkeys(segments))
    return list(rule_ids), {rule_id: list(segments) for rule_id, segments in extra_segments.items()}


def create_version_items_table(con: duckdb.DuckDBPyConnection) -> None:
    """``policy_version_items``, empty, unless a judging step wrote it."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_ITEMS} ({VERSION_ITEM_COLUMNS})")


def _record_version_items(
    con: duckdb.DuckDBPyConnection, windows: tuple[VersionWindow, ...], domains: tuple[str, ...], schemas: list[str]
) -> None:
    """``policy_version_items``: per rule of ``domains``, the items (rule × record) each version judged, from the
    figures it wrote (in its schema of ``schemas``; "": the run's own)."""
    create_version_items_table(con)
    con.execute(f"DELETE FROM {VERSION_ITEMS} WHERE list_contains(?::VARCHAR[], domain)", [list(domains)])
    for window, schema in zip(windows, schemas, strict=True):
        for domain in domains:
            table = f"metrics_{domain}"
            if not (_in_schema(con, schema, table) if schema else table_exists(con, table)):
                continue
            metrics = f"{ident(schema)}.{ident(table)}" if schema else ident(table)
            con.execute(
                f"""INSERT INTO {VERSION_ITEMS}
                    SELECT ?, ?, ?, ?, ?, rule_id, sum(achieved + breached + active + excluded + waived)
                    FROM {metrics} WHERE period = 'all' AND segment = 'all'
                    GROUP BY rule_id ORDER BY rule_id""",
                [window.policy.version, window.policy.effective_from, window.start, window.end, domain],
            )
