"""The warehouse reads behind the published pages and the assets' metadata: plain functions of a connection,
each returning what its caller shows (frames for the report and the dashboard, counts for the run's metadata)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from compliance.evidence.at_risk import AT_RISK_TABLE
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
            "SELECT * FROM violations ORDER BY severity <> 'breach', domain, rule_id, due_at, record_id LIMIT $shown",
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
    }


def dashboard_tables(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> dict[str, object]:
    """The tables of the SLA dashboard (``reports.sla_dashboard.DashboardData`` fields of the same names)."""
    return {
        "kpis": con.sql(
            "SELECT rule_id, title, domain, achieved, breached, active, denominator, adherence_pct FROM verdicts "
            "WHERE verdict IN ('met', 'breached') ORDER BY position"
        ).pl(),
        # Trends over the twelve months before as-of (retention months reach back years).
        "monthly": con.sql(
            "SELECT rule_id, period, segment, achieved, breached, denominator, adherence_pct, median_seconds, p90_seconds "
            "FROM metrics WHERE period = 'all' OR period >= strftime($as_of::TIMESTAMPTZ - INTERVAL 12 MONTH, '%Y-%m') "
            "ORDER BY period, rule_id, segment",
            params={"as_of": as_of},
        ).pl(),
        "breaches_by_hour": con.sql(
            "SELECT isodow(started_at) AS weekday, hour(started_at) AS hour, count(*) AS breaches FROM ticket_sla "
            "WHERE state = 'breached' GROUP BY ALL ORDER BY ALL"
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
    }
