"""Ticket clocks by month of ticket creation, from the month partitions of the staged records.

A month's clocks depend only on that month's partitions (``compliance.evidence.partitions``: its tickets, their
whole event history, and the ``input_columns`` of their files), so months compute independently, in parallel, each
in its own in-memory DuckDB (no warehouse, no writer lock), with the same ``evaluate_ticket_clocks`` as the whole
run. Layout under the output folder:

* ``monthly/ticket_sla/month=YYYY-MM/part-0.parquet``: the ``ticket_sla`` rows of the tickets created that month
  (UTC), the columns and order of ``evidence/ticket_sla.parquet``. A clock starting in a later month (a senior
  review escalated later, a reopen cycle) is stored with its ticket's month, so the union of the parts ordered by
  ``TICKET_SLA_ORDER`` is the whole run's ``ticket_sla``.
* ``monthly/metrics_tickets/month=YYYY-MM/part-0.parquet``: the ``metrics_tickets`` rows of period YYYY-MM computed
  over those tickets' clocks. They are the month's whole figures when every clock of that month starts on a
  ticket of that month; the exact figures of every period, whatever the clock, are :func:`period_metrics` over the
  union of the ``ticket_sla`` parts.
* ``monthly/metrics_tickets.parquet``: :func:`period_metrics` of every stored month (:func:`write_period_metrics`).
* ``monthly/ticket_sla/month=YYYY-MM/stamp.json``: the sha256 of every input file, the policy sha256 and the as-of
  instant the part was computed from, written last. A month whose stamp matches is not recomputed: a daily run
  costs the months whose records changed. (The as-of is part of the stamp because open clocks depend on it: a run
  with a moving as-of recomputes every month.)

Readings that differ from the whole run's, because a month sees only its own event rows: the ticket events
"carry no stopping event" test (``events_stop_missing``) and its file list look at the month's events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from compliance.core.files import file_sha256, replacing
from compliance.core.sql import ident, install_macros, lit
from compliance.evidence.policy_versions import judge_by_version
from compliance.policy import Policy, VersionWindow, version_windows
from compliance.rules.common import create_items_view, write_metrics
from compliance.rules.ticket_clocks import (
    CLOCK_KINDS,
    EVENT_CLOCK_KINDS,
    TICKET_DOMAINS,
    TICKET_SLA_COLUMNS,
    TICKET_SLA_ORDER,
    _write_unknown_plan_figures,
    evaluate_ticket_clocks,
)

MONTHLY_FOLDER = "monthly"
# The order of evidence/metrics.csv (compliance.evidence.files.EVIDENCE_FILES), within the tickets domain.
METRICS_ORDER = "rule_id, period <> 'all', period, segment <> 'all', segment"
# The warehouse tables a month's evaluation reads, from the partition folder of the same name.
INPUT_TABLES = {"tickets": "staged_tickets", "ticket_events": "staged_ticket_events", "input_columns": "input_columns"}


@dataclass(frozen=True)
class MonthResult:
    month: str
    recomputed: bool  # False: the stamp matched and the stored part was kept
    clocks: int  # ticket_sla rows of the month's part


def ticket_sla_part(out_dir: Path, month: str) -> Path:
    return out_dir / MONTHLY_FOLDER / "ticket_sla" / f"month={month}" / "part-0.parquet"


def metrics_part(out_dir: Path, month: str) -> Path:
    return out_dir / MONTHLY_FOLDER / "metrics_tickets" / f"month={month}" / "part-0.parquet"


def _stamp(partitions_root: Path, month: str, windows: tuple[VersionWindow, ...], as_of: datetime) -> dict:
    inputs = {
        source: file_sha256(path)
        for source in INPUT_TABLES
        if (path := partitions_root / source / f"month={month}" / "part-0.parquet").exists()
    }
    policies = [window.policy.sha256 for window in windows]
    return {
        "inputs": inputs,
        "policy_sha256": policies[0] if len(policies) == 1 else policies,
        "as_of": as_of.isoformat(),
    }


def month_windows(versions: tuple[Policy, ...], month: str) -> tuple[VersionWindow, ...]:
    """The policy versions that judge the clocks of the tickets created in ``month`` (YYYY-MM), with their parts."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    return version_windows(
        versions, start, start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    )


def evaluate_month(
    partitions_root: Path, out_dir: Path, month: str, versions: tuple[Policy, ...], as_of: datetime
) -> MonthResult:
    """Compute (or keep, when its stamp matches) the ticket clocks of the tickets created in ``month`` (YYYY-MM),
    each judged by the version of ``versions`` in force when its clock started."""
    part, metrics = ticket_sla_part(out_dir, month), metrics_part(out_dir, month)
    stamp_path = part.with_name("stamp.json")
    windows = month_windows(versions, month)
    stamp = _stamp(partitions_root, month, windows, as_of)
    unchanged = part.exists() and metrics.exists() and stamp_path.exists()
    if unchanged and json.loads(stamp_path.read_text(encoding="utf-8")) == stamp:
        with duckdb.connect() as reader:
            clocks = reader.execute(
                f"SELECT count(*) FROM read_parquet({lit(str(part))}, hive_partitioning = false)"
            ).fetchall()[0][0]
        return MonthResult(month, recomputed=False, clocks=clocks)
    with duckdb.connect() as con:  # in memory: months run side by side, none needs the warehouse
        con.execute("SET TimeZone = 'UTC'")
        for source, table in INPUT_TABLES.items():
            if source in stamp["inputs"]:
                path = partitions_root / source / f"month={month}" / "part-0.parquet"
                # rowid order is file order, as the warehouse's staged tables are read
                con.execute(
                    f"CREATE TABLE {ident(table)} AS SELECT * FROM read_parquet({lit(str(path))}, hive_partitioning = false)"
                )
        judge_by_version(
            con,
            windows,
            None,
            "ticket_sla",
            TICKET_DOMAINS,
            lambda con, window: evaluate_ticket_clocks(con, window.policy, as_of),
        )
        with replacing(part) as temporary:
            con.execute(
                f"COPY (SELECT * FROM ticket_sla ORDER BY {TICKET_SLA_ORDER}) TO {lit(str(temporary))} (FORMAT parquet)"
            )
        with replacing(metrics) as temporary:
            con.execute(
                f"COPY (SELECT * FROM metrics_tickets WHERE period = {lit(month)}) TO {lit(str(temporary))} "
                "(FORMAT parquet)"
            )
        clocks = con.execute("SELECT count(*) FROM ticket_sla").fetchall()[0][0]
    # last: an interrupted month has no matching stamp and is computed again
    with replacing(stamp_path) as temporary:
        temporary.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return MonthResult(month, recomputed=True, clocks=clocks)


def load_monthly_ticket_sla(con: duckdb.DuckDBPyConnection, out_dir: Path, into: str = "ticket_sla") -> None:
    """Table ``into``: the union of the stored monthly ``ticket_sla`` parts in ``TICKET_SLA_ORDER`` (the whole
    run's ``ticket_sla``); empty, with its columns, when no month has been computed."""
    parts = sorted((out_dir / MONTHLY_FOLDER / "ticket_sla").glob("month=*/part-0.parquet"))
    con.execute(f"CREATE OR REPLACE TABLE {ident(into)} ({TICKET_SLA_COLUMNS})")
    if parts:
        files = "[" + ", ".join(lit(str(path)) for path in parts) + "]"
        con.execute(
            f"INSERT INTO {ident(into)} SELECT * FROM read_parquet({files}, hive_partitioning = false) ORDER BY {TICKET_SLA_ORDER}"
        )


def period_metrics(con: duckdb.DuckDBPyConnection, versions: tuple[Policy, ...], out_dir: Path) -> None:
    """``metrics_tickets`` of every period (``all`` and each month of the clock start) from the stored monthly
    parts: the items are read off the union of the ``ticket_sla`` parts, so the quantiles are exact
    (``quantile_cont`` over every clock, as the whole run computes them), never combined from monthly figures.

    ``con`` should be a connection of its own: its ``ticket_sla`` and ``metrics_tickets`` are replaced."""
    install_macros(con)
    load_monthly_ticket_sla(con, out_dir)
    # the segment and duration of a ticket clock item, as ticket_clocks._write_ticket_results reads them (the other
    # item columns do not enter the metrics)
    items = create_items_view(
        con,
        "tickets_from_months",
        """SELECT rule_id, record_id, started_at,
                  'channel=' || coalesce(channel, '-') || ';tier=' || coalesce(tier, '-') || ';plan=' || coalesce(plan, '-'),
                  state, CASE WHEN stopped_at IS NOT NULL THEN elapsed_seconds END,
                  NULL, NULL, NULL, NULL, NULL, NULL
           FROM ticket_sla""",
    )
    # the rules of every version, each once (a clock rule only an older version has still has its figures)
    rules = list(
        {rule.id: rule for policy in versions for rule in policy.rules_of(*CLOCK_KINDS, *EVENT_CLOCK_KINDS)}.values()
    )
    write_metrics(con, "tickets", items, [rule.id for rule in rules])
    con.execute(f"DROP VIEW {items}")
    _write_unknown_plan_figures(con, [rule.id for rule in rules if rule.setting("binding_plans") is not None])


def write_period_metrics(versions: tuple[Policy, ...], out_dir: Path) -> tuple[Path, int]:
    """``monthly/metrics_tickets.parquet``: :func:`period_metrics` of the stored months, in the order of
    ``evidence/metrics.csv``; the file and its rows."""
    target = out_dir / MONTHLY_FOLDER / "metrics_tickets.parquet"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        period_metrics(con, versions, out_dir)
        with replacing(target) as temporary:
            con.execute(
                f"COPY (SELECT * FROM metrics_tickets ORDER BY {METRICS_ORDER}) TO {lit(str(temporary))} (FORMAT parquet)"
            )
        rows = con.execute("SELECT count(*) FROM metrics_tickets").fetchall()[0][0]
    return target, rows
