"""Platform status: STAT-MAINT-NOTICE, STAT-POSTMORTEM, STAT-LIVE, STAT-HISTORY, and incident response times.

Inputs: ``staged_incidents`` (incident_id, kind, severity, started_at, acknowledged_at, resolved_at, announced_at,
scheduled_start_at, postmortem_published_at) and optionally ``staged_incident_updates`` (incident_id, posted_at).
Outputs: ``violations_status``, ``metrics_status`` (segment ``severity=<s>`` for the incident rules),
``incident_response``.

Readings (``kind`` missing is read as ``incident``; events after as_of count as not happened yet):
- STAT-MAINT-NOTICE (kind ``maintenance_notice``), maintenance rows only: announced_at <= scheduled_start_at -
  target. Exactly target ahead is on time. Not announced and the announcement deadline passed at as_of: breach
  (actual NULL); not announced before it: active. Period = month of scheduled_start_at; measured interval =
  notice lead time (announcement -> scheduled start). Rows without scheduled_start_at are excluded.
- STAT-POSTMORTEM (kind ``postmortem``), incidents resolved by as_of only: postmortem_published_at <= resolved_at
  + target (the grace period). Missing after the grace: breach; missing within it: active. Period = month of
  resolution; measured interval = resolution -> post-mortem.
- STAT-LIVE (kind ``live_updates``), incidents started by as_of, only when ``staged_incident_updates`` exists:
  the silences while open are start -> first update, update -> next update, last update -> resolution (or ->
  as_of while unresolved); updates outside (start, end) are ignored. Longest silence > target: breach (due = start
  of that silence + target, actual = its end, NULL when the silence is still running at as_of); otherwise
  achieved when resolved, active while open. Measured interval = the longest silence. An incident without
  ``started_at`` is counted as ``excluded`` (its silences cannot be measured), never left out.
- STAT-HISTORY (kind ``incident_history``): the report period is (as_of - target, as_of]. When the earliest
  started_at (scheduled_start_at for maintenance without one) of the export is later than the period start, or
  the export is empty, one ``coverage`` violation with record_id ``incidents`` names the uncovered span; the
  metrics item is then ``excluded`` (no verdict), otherwise ``achieved``. Gaps inside the period are not checked.
- ``incident_response``: per month of started_at x severity (and 'all' roll-ups), incidents count and
  time-to-acknowledge (MTTA) / time-to-resolve (MTTR) mean, median, p90, p95, max in seconds.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.core.sql import lit, seconds_interval, table_exists, ts_lit
from compliance.policy import Policy
from compliance.rules.common import (
    create_items,
    deadline_inserter,
    finish_domain,
    insert_items,
    source_staged,
    target_of,
)

DOMAIN = "status"
SOURCE = "staged_incidents"
UPDATES = "staged_incident_updates"
RESPONSE_COLUMNS = (
    "period VARCHAR, severity VARCHAR, incidents BIGINT, acknowledged BIGINT, mtta_mean_seconds DOUBLE, "
    "mtta_median_seconds DOUBLE, mtta_p90_seconds DOUBLE, mtta_p95_seconds DOUBLE, mtta_max_seconds DOUBLE, "
    "resolved BIGINT, mttr_mean_seconds DOUBLE, mttr_median_seconds DOUBLE, mttr_p90_seconds DOUBLE, "
    "mttr_p95_seconds DOUBLE, mttr_max_seconds DOUBLE"
)
IS_INCIDENT = "lower(coalesce(CAST(kind AS VARCHAR), 'incident')) = 'incident'"
IS_MAINTENANCE = "lower(CAST(kind AS VARCHAR)) = 'maintenance'"
SEGMENT = "'severity=' || coalesce(CAST(severity AS VARCHAR), 'unknown')"
WHO = "'Incident ' || record_id || ' (severity ' || coalesce(CAST(severity AS VARCHAR), 'unknown') || ')'"


def evaluate(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    if not source_staged(con, DOMAIN, SOURCE, {"incident_response": RESPONSE_COLUMNS}):
        return
    asof = ts_lit(as_of)
    has_updates = table_exists(con, UPDATES)
    items = create_items(con, DOMAIN)
    insert_deadline_items = deadline_inserter(
        con, items, as_of=asof, source=SOURCE, record_id="CAST(incident_id AS VARCHAR)"
    )

    for rule in policy.rules_of("maintenance_notice"):
        seconds, phrase = target_of(rule)
        insert_deadline_items(
            rule_id=rule.id,
            where=IS_MAINTENANCE,
            period_at="scheduled_start_at",
            excluded="scheduled_start_at IS NULL",
            due=f"scheduled_start_at - {seconds_interval(seconds)}",
            actual="announced_at",
            duration="cr_span(actual_at, scheduled_start_at)",
            late_explanation=f"""'Maintenance ' || record_id || ' scheduled to start ' || cr_ts(scheduled_start_at)
            || ' was announced ' || cr_ts(actual_at) || ', only ' || cr_dur(cr_secs(actual_at, scheduled_start_at))
            || ' ahead: the ' || {lit(phrase)} || ' notice required an announcement by ' || cr_ts(due_at) || ' ('
            || cr_dur(overdue_seconds) || ' late).'""",
            open_explanation=f"""'Maintenance ' || record_id || ' scheduled to start ' || cr_ts(scheduled_start_at)
            || ' has no announcement recorded by ' || cr_ts({asof}) || ' (report as-of time): the ' || {lit(phrase)} || ' '
            || 'notice required an announcement by ' || cr_ts(due_at) || ' (' || cr_dur(overdue_seconds)
            || ' ago).'""",
            late_cause="'notice_too_short'",
            open_cause="'never_announced'",
        )

    for rule in policy.rules_of("postmortem"):
        seconds, phrase = target_of(rule)
        insert_deadline_items(
            rule_id=rule.id,
            where=f"{IS_INCIDENT} AND resolved_at <= {asof}",
            period_at="resolved_at",
            segment=SEGMENT,
            due=f"resolved_at + {seconds_interval(seconds)}",
            actual="postmortem_published_at",
            duration="cr_span(resolved_at, actual_at)",
            late_explanation=f"""{WHO} || ' resolved ' || cr_ts(resolved_at) || ' got its post-mortem published '
            || cr_ts(actual_at) || ', ' || cr_dur(overdue_seconds) || ' after the ' || {lit(phrase)} || ' grace period '
            || 'ended ' || cr_ts(due_at) || '.'""",
            open_explanation=f"""{WHO} || ' resolved ' || cr_ts(resolved_at) || ' has no published post-mortem at '
            || cr_ts({asof}) || ' (report as-of time), ' || cr_dur(overdue_seconds) || ' after the ' || {lit(phrase)} || ' '
            || 'grace period ended ' || cr_ts(due_at) || '.'""",
            late_cause="'postmortem_late'",
            open_cause="'postmortem_missing'",
        )

    live_rules = policy.rules_of("live_updates") if has_updates else []
    for rule in live_rules:
        seconds, phrase = target_of(rule)
        limit_us = seconds * 1_000_000
        insert_items(
            con,
            items,
            f"""
            WITH inc AS (
                SELECT CAST(incident_id AS VARCHAR) AS record_id, severity, started_at,
                       CASE WHEN resolved_at <= {asof} THEN resolved_at END AS resolved_eff,
                       coalesce(CASE WHEN resolved_at <= {asof} THEN resolved_at END, {asof}) AS end_at
                FROM {SOURCE}
                WHERE {IS_INCIDENT} AND started_at IS NOT NULL AND started_at <= {asof}
            ), pts AS (
                SELECT record_id, started_at AS t, 0 AS k FROM inc
                UNION ALL
                SELECT i.record_id, u.posted_at, 1
                FROM {UPDATES} u JOIN inc i ON CAST(u.incident_id AS VARCHAR) = i.record_id
                WHERE u.posted_at > i.started_at AND u.posted_at < i.end_at
                UNION ALL
                SELECT record_id, end_at, 2 FROM inc
            ), g AS (
                SELECT record_id, lag(t) OVER w AS gap_start, lag(k) OVER w AS start_kind, t AS gap_end,
                       k AS end_kind
                FROM pts WINDOW w AS (PARTITION BY record_id ORDER BY t, k)
            ), m AS (
                SELECT record_id,
                       arg_max({{'s': gap_start, 'sk': start_kind, 'e': gap_end, 'ek': end_kind}},
                               epoch_us(gap_end) - epoch_us(gap_start)) AS longest,
                       max(epoch_us(gap_end) - epoch_us(gap_start)) AS gap_us
                FROM g WHERE gap_start IS NOT NULL GROUP BY record_id
            ), j AS (
                SELECT inc.*, m.gap_us, m.longest.s AS gap_start, m.longest.sk AS start_kind,
                       m.longest.e AS gap_end, m.longest.ek AS end_kind,
                       CASE WHEN m.gap_us > {limit_us} THEN 'breached'
                            WHEN resolved_eff IS NOT NULL THEN 'achieved' ELSE 'active' END AS state,
                       m.longest.s + {seconds_interval(seconds)} AS due_at,
                       CASE WHEN m.longest.ek = 2 AND resolved_eff IS NULL THEN NULL ELSE m.longest.e END AS actual_at
                FROM inc JOIN m USING (record_id)
            )
            SELECT {lit(rule.id)}, record_id, started_at, {SEGMENT}, state, gap_us / 1e6,
                   CASE WHEN state = 'breached' THEN due_at END,
                   CASE WHEN state = 'breached' THEN actual_at END,
                   CASE WHEN state = 'breached' THEN cr_secs(due_at, gap_end) END,
                   CASE WHEN state = 'breached' THEN 'breach' END,
                   CASE WHEN state = 'breached' AND actual_at IS NULL THEN
                       {WHO} || ' started ' || cr_ts(started_at) || ' has had no public update since '
                       || CASE WHEN start_kind = 0 THEN 'it started' ELSE 'the update of ' || cr_ts(gap_start) END
                       || ' and is still open at ' || cr_ts({asof}) || ' (report as-of time): '
                       || cr_dur(gap_us // 1000000) || ' of silence, ' || cr_dur(cr_secs(due_at, gap_end))
                       || ' more than the ' || {lit(phrase)} || ' maximum (an update was due by ' || cr_ts(due_at) || ').'
                   WHEN state = 'breached' THEN
                       {WHO} || ' started ' || cr_ts(started_at) || ' had no public update for '
                       || cr_dur(gap_us // 1000000) || ' between '
                       || CASE WHEN start_kind = 0 THEN 'its start' ELSE 'the update' END || ' at ' || cr_ts(gap_start)
                       || ' and ' || CASE WHEN end_kind = 1 THEN 'the next update' ELSE 'its resolution' END
                       || ' at ' || cr_ts(gap_end) || ', ' || cr_dur(cr_secs(due_at, gap_end))
                       || ' more than the ' || {lit(phrase)} || ' maximum silence (an update was due by ' || cr_ts(due_at) || ').'
                   END,
                   CASE WHEN state = 'breached' THEN 'silence_too_long' END
            FROM j
            -- an incident without a start cannot be measured, but it is counted (excluded), never dropped
            UNION ALL
            SELECT {lit(rule.id)}, CAST(incident_id AS VARCHAR), NULL, {SEGMENT}, 'excluded', NULL, NULL, NULL, NULL,
                   NULL, NULL, NULL
            FROM {SOURCE} WHERE {IS_INCIDENT} AND started_at IS NULL""",
        )

    for rule in policy.rules_of("incident_history"):
        seconds, phrase = target_of(rule)
        start = f"({asof} - {seconds_interval(seconds)})"
        insert_items(
            con,
            items,
            f"""
            WITH e AS (
                SELECT min(coalesce(started_at, scheduled_start_at)) AS earliest FROM {SOURCE}
            ), j AS (
                SELECT earliest, {start} AS period_start,
                       CASE WHEN earliest <= {start} THEN 'achieved' ELSE 'excluded' END AS state
                FROM e
            )
            SELECT {lit(rule.id)}, 'incidents', period_start, NULL, state, NULL,
                   CASE WHEN state = 'excluded' THEN period_start END,
                   CASE WHEN state = 'excluded' THEN earliest END,
                   CASE WHEN state = 'excluded' THEN cr_secs(period_start, least(coalesce(earliest, {asof}), {asof})) END,
                   CASE WHEN state = 'excluded' THEN 'coverage' END,
                   CASE WHEN state = 'excluded' AND earliest IS NULL THEN
                       'The incident export contains no incidents or maintenance at all, so the ' || {lit(phrase)} || ' incident '
                       || 'history period from ' || cr_ts(period_start) || ' to ' || cr_ts({asof})
                       || ' is not covered by the data and cannot be verified.'
                   WHEN state = 'excluded' THEN
                       'The incident export starts only at ' || cr_ts(earliest) || ', but the ' || {lit(phrase)} || ' incident '
                       || 'history period runs from ' || cr_ts(period_start) || ' to ' || cr_ts({asof}) || ': '
                       || cr_dur(cr_secs(period_start, least(earliest, {asof}))) || ' of the period (from '
                       || cr_ts(period_start) || ' to ' || cr_ts(least(earliest, {asof}))
                       || ') is not covered by the data, so incidents in that span cannot be verified.'
                   END,
                   CASE WHEN state = 'excluded' THEN 'history_gap' END
            FROM j""",
        )

    rule_ids = [r.id for r in policy.rules if r.domain == DOMAIN and (r.kind != "live_updates" or has_updates)]
    finish_domain(con, policy, DOMAIN, items, "incidents", "CAST(s.incident_id AS VARCHAR)", rule_ids)

    con.execute(
        f"""CREATE OR REPLACE TABLE incident_response AS
            WITH b AS (
                SELECT strftime(timezone('UTC', started_at), '%Y-%m') AS period,
                       coalesce(CAST(severity AS VARCHAR), 'unknown') AS severity,
                       CASE WHEN acknowledged_at <= {asof} AND acknowledged_at >= started_at
                            THEN cr_span(started_at, acknowledged_at) END AS tta,
                       CASE WHEN resolved_at <= {asof} AND resolved_at >= started_at
                            THEN cr_span(started_at, resolved_at) END AS ttr
                FROM {SOURCE}
                WHERE {IS_INCIDENT} AND started_at <= {asof}
            )
            SELECT CAST(CASE WHEN grouping(period) = 1 THEN 'all' ELSE period END AS VARCHAR) AS period,
                   CAST(CASE WHEN grouping(severity) = 1 THEN 'all' ELSE severity END AS VARCHAR) AS severity,
                   CAST(count(*) AS BIGINT) AS incidents,
                   CAST(count(tta) AS BIGINT) AS acknowledged,
                   CAST(avg(tta) AS DOUBLE) AS mtta_mean_seconds,
                   CAST(quantile_cont(tta, 0.5) AS DOUBLE) AS mtta_median_seconds,
                   CAST(quantile_cont(tta, 0.9) AS DOUBLE) AS mtta_p90_seconds,
                   CAST(quantile_cont(tta, 0.95) AS DOUBLE) AS mtta_p95_seconds,
                   CAST(max(tta) AS DOUBLE) AS mtta_max_seconds,
                   CAST(count(ttr) AS BIGINT) AS resolved,
                   CAST(avg(ttr) AS DOUBLE) AS mttr_mean_seconds,
                   CAST(quantile_cont(ttr, 0.5) AS DOUBLE) AS mttr_median_seconds,
                   CAST(quantile_cont(ttr, 0.9) AS DOUBLE) AS mttr_p90_seconds,
                   CAST(quantile_cont(ttr, 0.95) AS DOUBLE) AS mttr_p95_seconds,
                   CAST(max(ttr) AS DOUBLE) AS mttr_max_seconds
            FROM b
            GROUP BY CUBE (period, severity)"""
    )
    con.execute(
        """CREATE OR REPLACE TABLE incident_response AS SELECT * FROM incident_response
            ORDER BY period <> 'all', period, severity <> 'all', severity"""
    )
