"""The warehouse reads behind the published pages and the assets' metadata: plain functions of a connection,
each returning what its caller shows (frames for the report and the dashboard, counts for the run's metadata)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from compliance.core.sql import ident, table_exists
from compliance.evidence.at_risk import AT_RISK_TABLE
from compliance.evidence.files import evidence_month
from compliance.policy import Policy

VIOLATIONS_SHOWN = 2_000  # the violations the report lists (violations_total counts them all)
AT_RISK_SHOWN = 50
CLOCK_STATES = ("achieved", "breached", "active", "excluded", "waived")


def clock_state_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """``ticket_sla`` rows per clock state, every state named (0 when none)."""
    counts = dict(con.execute("SELECT state, count(*) FROM ticket_sla GROUP BY state").fetchall())
    return {state: int(counts.get(state, 0)) for state in CLOCK_STATES}


def verdict_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Commitments per verdict, the verdicts present only, in name order."""
    counts = dict(con.execute("SELECT verdict, count(*) FROM verdicts GROUP BY verdict").fetchall())
    return {verdict: int(count) for verdict, count in sorted(counts.items())}


def _utc_month(column: str) -> str:
    """SQL: ``YYYY-MM`` of the TIMESTAMPTZ ``column`` in UTC. The wall time straight from the epoch, which costs a
    third of a time-zone conversion over a million rows; a value without an epoch (+-infinity) is written as the
    conversion writes it."""
    ref = ident(column)
    return f"coalesce(strftime(make_timestamp(epoch_us({ref})), '%Y-%m'), strftime(timezone('UTC', {ref}), '%Y-%m'))"


# A ticket clock's violation with the segment and month its metrics rows count it in (as the tickets' items view
# writes them: month of the clock start in UTC), so that the report's figures drill down to their records.
_TICKET_SEGMENT_JOIN = f""" LEFT JOIN (
    SELECT rule_id, record_id, due_at,
           any_value('channel=' || coalesce(channel, '-') || ';tier=' || coalesce(tier, '-') || ';plan='
                     || coalesce(plan, '-')) AS segment,
           any_value({_utc_month("started_at")}) AS period
    FROM ticket_sla WHERE state = 'breached' GROUP BY ALL
) AS ticket_clock_segments USING (rule_id, record_id, due_at)"""
# The violations the report lists, first in its order: the rows shown are picked before they are joined to their
# segments (one row each: the join's side is grouped by its keys), not every violation joined and then cut.
_VIOLATIONS_SHOWN_ORDER = "ORDER BY severity <> 'breach', domain, rule_id, due_at, record_id"


def _at_risk(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The first rows of evidence/at_risk.csv (every domain with a clock), fewest seconds remaining first."""
    return con.sql(
        f"SELECT * FROM {AT_RISK_TABLE} ORDER BY remaining_seconds, due_at, record_id, rule_id LIMIT $shown",
        params={"shown": AT_RISK_SHOWN},
    ).pl()


def _at_risk_total(con: duckdb.DuckDBPyConnection) -> int:
    """The rows of evidence/at_risk.csv: the pages say "Showing 50 of <this>", not of the rows passed to them."""
    return int(con.execute(f"SELECT count(*) FROM {AT_RISK_TABLE}").fetchall()[0][0])


def report_tables(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame | int]:
    """The tables of the compliance report (``reports.compliance_report.ReportData`` fields of the same names)."""
    return {
        "verdicts": con.sql("SELECT * FROM verdicts ORDER BY position").pl(),
        "metrics": con.sql("SELECT * FROM metrics").pl(),
        "violations": con.sql(
            f"SELECT * FROM (SELECT * FROM violations {_VIOLATIONS_SHOWN_ORDER} LIMIT $shown) AS violations_shown"
            f"{_TICKET_SEGMENT_JOIN} {_VIOLATIONS_SHOWN_ORDER}",
            params={"shown": VIOLATIONS_SHOWN},
        ).pl(),
        "violations_total": con.execute("SELECT count(*) FROM violations").fetchall()[0][0],
        "waivers": con.sql("SELECT * FROM waivers ORDER BY outcome, rule_id, record_id, source_line").pl(),
        "quarantine_summary": con.sql(
            "SELECT source_file, reason_code AS reason, count(*) AS rows FROM quarantine "
            "GROUP BY ALL ORDER BY source_file, rows DESC, reason"
        ).pl(),
        "at_risk": _at_risk(con),
        "at_risk_total": _at_risk_total(con),
        "expectations": con.sql(
            """SELECT source, count(*) AS expectations, count(*) FILTER (WHERE success) AS passed,
                      count(*) FILTER (WHERE NOT success) AS failed,
                      count(*) FILTER (WHERE NOT success AND blocking) AS blocking_failed,
                      string_agg(message, '; ' ORDER BY message) FILTER (WHERE NOT success) AS failures
               FROM data_quality GROUP BY source ORDER BY source"""
        ).pl(),
        "secret_summary": con.sql(
            "SELECT kind, count(*) AS findings, count(DISTINCT record_id) AS records FROM secret_findings "
            "GROUP BY kind ORDER BY findings DESC, kind"
        ).pl(),
        "privacy_backlog": con.sql(
            "SELECT request_type, age_days, days_left FROM privacy_backlog ORDER BY request_id"
        ).pl(),
        "finding_counts": con.sql(
            "SELECT rule_id, severity, count(*) AS findings FROM violations GROUP BY ALL ORDER BY ALL"
        ).pl(),
        # the month folder each violation is filed in when the evidence is written by month (the appendix names
        # the monthly files that hold each domain's violations)
        "violation_months": con.sql(
            f"SELECT rule_id, {evidence_month('violations')} AS month, count(*) AS findings FROM violations "
            "GROUP BY ALL ORDER BY ALL"
        ).pl(),
    }


def dashboard_tables(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> dict[str, object]:
    """The tables of the SLA dashboard (``reports.sla_dashboard.DashboardData`` fields of the same names)."""
    return {
        "kpis": con.sql(
            "SELECT rule_id, title, domain, achieved, breached, active, denominator, adherence_pct FROM verdicts "
            "WHERE verdict IN ('met', 'breached') ORDER BY position"
        ).pl(),
        # Trends over the thirteen months before as-of, so that the last whole month has its year-before month (YoY);
        # retention months reach back years.
        "monthly": con.sql(
            "SELECT rule_id, period, segment, achieved, breached, denominator, adherence_pct, median_seconds, p90_seconds "
            "FROM metrics WHERE period = 'all' OR period >= strftime($as_of::TIMESTAMPTZ - INTERVAL 13 MONTH, '%Y-%m') "
            "ORDER BY period, rule_id, segment",
            params={"as_of": as_of},
        ).pl(),
        "at_risk": _at_risk(con),
        "at_risk_total": _at_risk_total(con),
        "incident_response": con.sql("SELECT * FROM incident_response").pl(),
        "privacy_on_time": con.sql(
            "SELECT rule_id, period, achieved, breached, adherence_pct FROM metrics "
            "WHERE domain = 'privacy' AND rule_id IN ('PRIV-RESP', 'PRIV-COMPLETE') AND segment = 'all' AND period <> 'all' "
            "ORDER BY rule_id, period"
        ).pl(),
        "targets": {rule.id: rule.target.seconds for rule in policy.rules if rule.target.seconds},
        **_dashboard_extras(con, policy, as_of),
    }


def heatmap_zone(policy: Policy) -> str:
    """The zone the breaches-by-hour grid is drawn in: that of the business-hours calendars of the ticket rules
    (the hours the support organisation works), the most used one first; UTC when they all run 24/7."""
    zones: dict[str, int] = {}
    for rule in policy.rules:
        calendar = policy.calendars.get(rule.calendar or "")
        if rule.domain == "tickets" and calendar is not None and calendar.kind != "always_open":
            zones[calendar.timezone] = zones.get(calendar.timezone, 0) + 1
    return min(zones, key=lambda zone: (-zones[zone], zone)) if zones else "UTC"


def _dashboard_extras(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> dict[str, object]:
    """What a VP asks next: breaches by hour in the calendar's zone, ticket volume and open backlog by month,
    resolution-time percentiles, the causes of the breaches per commitment."""
    zone = heatmap_zone(policy)
    tables: dict[str, object] = {
        "heatmap_zone": zone,
        "breaches_by_hour": con.sql(
            "SELECT isodow(timezone($zone, started_at)) AS weekday, hour(timezone($zone, started_at)) AS hour, "
            "count(*) AS breaches FROM ticket_sla WHERE state = 'breached' GROUP BY ALL ORDER BY ALL",
            params={"zone": zone},
        ).pl(),
        # per ticket clock's month and segment as well, so that the dashboard's filters can recount them
        "breach_causes": con.sql(
            f"SELECT rule_id, coalesce(cause, 'unknown') AS cause, period, segment, count(*) AS breaches "
            f"FROM violations{_TICKET_SEGMENT_JOIN} WHERE severity = 'breach' GROUP BY ALL ORDER BY ALL"
        ).pl(),
        "resolution_times": con.sql(
            "SELECT period, count, median_seconds, p90_seconds, p95_seconds FROM response_times "
            "WHERE metric = 'resolution' AND channel = 'all' AND tier = 'all' AND plan = 'all' ORDER BY period"
        ).pl()
        if table_exists(con, "response_times")
        else None,
        "ticket_volume": None,
    }
    if table_exists(con, "staged_tickets"):
        # Backlog at a month's end = tickets created by then - tickets resolved by then (running sums, set-based);
        # without any resolved_at in the export the backlog is unknown, not "everything open".
        tables["ticket_volume"] = con.sql(
            f"""WITH created_by_month AS (
                   SELECT {_utc_month("created_at")} AS period, count(*) AS created
                   FROM staged_tickets WHERE created_at <= $as_of GROUP BY ALL),
               resolved_by_month AS (
                   SELECT {_utc_month("resolved_at")} AS period, count(*) AS resolved
                   FROM staged_tickets WHERE created_at <= $as_of AND resolved_at <= $as_of GROUP BY ALL),
               monthly_flow AS (
                   SELECT period, coalesce(created, 0) AS created, coalesce(resolved, 0) AS resolved
                   FROM created_by_month FULL JOIN resolved_by_month USING (period))
               SELECT period, created, resolved,
                      CASE WHEN (SELECT count(resolved_at) FROM staged_tickets) > 0 THEN
                          sum(created - resolved) OVER (ORDER BY period) END AS open_at_month_end
               FROM monthly_flow
               QUALIFY period >= strftime($as_of::TIMESTAMPTZ - INTERVAL 13 MONTH, '%Y-%m')
               ORDER BY period""",
            params={"as_of": as_of},
        ).pl()
    return tables
