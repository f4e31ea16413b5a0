"""Retention (privacy policy §7): RET-ACCOUNT, RET-AUDIT, RET-BILLING, RET-BACKUP.

Input: ``staged_retention_inventory`` (record_id, data_class, workspace_id, account_id, created_at,
account_closed_at, workspace_deleted_at, deleted_at). Output: ``violations_retention``, ``metrics_retention``
(segment ``data_class=<class>``). Each rule judges the rows of its ``settings.data_class`` only.

A row whose ``deleted_at`` is empty — or later than as_of — is still stored at as_of; timestamps after as_of
(closure, workspace deletion) count as not happened yet.

Readings:
- RET-ACCOUNT (kind ``retention_after_closure``): deadline = account_closed_at + target (30 days). Deleted by
  the deadline: achieved; deleted later, or still stored after it: breach (over-retention; actual NULL when still
  stored). Stored before the deadline: active. Rows of accounts not closed at as_of: excluded (nothing is due).
  Period = month of closure; measured interval = closure -> deletion (0 when deleted before closure).
- RET-AUDIT (kind ``retention_workspace_lifetime``): deleted while the workspace still existed (workspace not
  deleted, or deleted_at < workspace_deleted_at): PREMATURE DELETION breach (due = workspace deletion, NULL while
  the workspace exists; overdue NULL). Deleted at/after the workspace deletion, or kept after it: achieved.
  Kept while the workspace exists: active. Period = month of created_at; interval = creation -> deletion.
- RET-BILLING (kind ``retention_minimum``): keep until created_at + target.years (calendar years; Feb 29 + 7 years
  = Feb 28). Deleted before: PREMATURE DELETION breach (due = end of retention, overdue NULL). Deleted at/after the
  end, or still stored at/after it: achieved; stored before it: active. Kept (stored, or deleted) later than the
  end + ``minimisation_grace_days``: an extra ``warning`` row (minimisation), due = end + grace, overdue = (deletion
  or as_of) - due; it does not change the verdict.
- RET-BACKUP (kind ``retention_maximum_age``): must be gone by created_at + target (30 days). Deleted by then:
  achieved; (deleted_at or as_of) later: breach (actual NULL when still stored). Stored before: active.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.core.sql import lit, seconds_interval, ts_lit
from compliance.policy import Policy, Rule
from compliance.rules.common import (
    create_items,
    deadline_inserter,
    finish_domain,
    insert_items,
    source_staged,
    target_of,
)

DOMAIN = "retention"
SOURCE = "staged_retention_inventory"


def _data_class(rule: Rule) -> str:
    data_class = rule.setting("data_class")
    if not data_class:
        raise ValueError(f"rule {rule.id}: settings.data_class is required")
    return str(data_class)


def evaluate(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    if not source_staged(con, DOMAIN, SOURCE):
        return
    asof = ts_lit(as_of)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ret AS
            SELECT *, CAST(record_id AS VARCHAR) AS rid,
                   CASE WHEN deleted_at <= {asof} THEN deleted_at END AS deleted_eff,
                   CASE WHEN account_closed_at <= {asof} THEN account_closed_at END AS closed_eff,
                   CASE WHEN workspace_deleted_at <= {asof} THEN workspace_deleted_at END AS ws_deleted_eff,
                   'data_class=' || coalesce(CAST(data_class AS VARCHAR), 'unknown') AS seg
            FROM {SOURCE}"""
    )
    items = create_items(con, DOMAIN)
    insert_deadline_items = deadline_inserter(con, items, as_of=asof, source="_ret", record_id="rid", segment="seg")

    for rule in policy.rules_of("retention_after_closure"):
        seconds, phrase = target_of(rule)
        insert_deadline_items(
            rule_id=rule.id,
            where=f"data_class = {lit(_data_class(rule))}",
            period_at="closed_eff",
            due=f"closed_eff + {seconds_interval(seconds)}",
            actual="deleted_eff",
            duration="greatest(cr_span(closed_eff, actual_at), 0)",
            late_explanation=f"""'Over-retention: account data record ' || rid || ' of account '
            || coalesce(CAST(account_id AS VARCHAR), 'unknown') || ' (closed ' || cr_ts(closed_eff)
            || ') was deleted ' || cr_ts(actual_at) || ', ' || cr_dur(overdue_seconds)
            || ' after the ' || {lit(phrase)} || ' deletion deadline of ' || cr_ts(due_at) || '.'""",
            open_explanation=f"""'Over-retention: account data record ' || rid || ' of account '
            || coalesce(CAST(account_id AS VARCHAR), 'unknown') || ' (closed ' || cr_ts(closed_eff)
            || ') is still stored at ' || cr_ts({asof}) || ' (report as-of time), ' || cr_dur(overdue_seconds)
            || ' past the ' || {lit(phrase)} || ' deletion deadline of ' || cr_ts(due_at) || '.'""",
            late_cause="'deleted_late'",
            open_cause="'stored_past_deadline'",
        )

    for rule in policy.rules_of("retention_workspace_lifetime"):
        insert_items(
            con,
            items,
            f"""
            WITH j AS (
                SELECT *, CASE
                    WHEN created_at > {asof} THEN 'excluded'
                    WHEN deleted_eff IS NOT NULL AND (ws_deleted_eff IS NULL OR deleted_eff < ws_deleted_eff)
                        THEN 'breached'
                    WHEN deleted_eff IS NOT NULL OR ws_deleted_eff IS NOT NULL THEN 'achieved'
                    ELSE 'active' END AS state
                FROM _ret WHERE data_class = {lit(_data_class(rule))}
            )
            SELECT {lit(rule.id)}, rid, created_at, seg, state,
                   CASE WHEN state <> 'excluded' THEN cr_span(created_at, deleted_eff) END,
                   CASE WHEN state = 'breached' THEN ws_deleted_eff END,
                   CASE WHEN state = 'breached' THEN deleted_eff END,
                   NULL,
                   CASE WHEN state = 'breached' THEN 'breach' END,
                   CASE WHEN state = 'breached' THEN
                       'PREMATURE DELETION: audit log record ' || rid || ' of workspace '
                       || coalesce(CAST(workspace_id AS VARCHAR), 'unknown') || ' was deleted ' || cr_ts(deleted_eff)
                       || ' while the workspace still existed ('
                       || CASE WHEN ws_deleted_eff IS NULL
                               THEN 'the workspace is not deleted at ' || cr_ts({asof}) || ', the report as-of time'
                               ELSE 'the workspace was deleted only ' || cr_ts(ws_deleted_eff) || ', '
                                    || cr_dur(cr_secs(deleted_eff, ws_deleted_eff)) || ' later' END
                       || '). Audit logs must be kept for the lifetime of the workspace.'
                   END,
                   CASE WHEN state = 'breached' THEN 'deleted_prematurely' END
            FROM j""",
        )

    for rule in policy.rules_of("retention_minimum"):
        if rule.target.years is None:
            raise ValueError(f"rule {rule.id}: needs a target in years")
        years = int(rule.target.years)
        grace_days = int(rule.setting("minimisation_grace_days", 0))
        insert_items(
            con,
            items,
            f"""
            WITH b AS (
                SELECT *, created_at + to_years({years}) AS keep_until,
                       created_at + to_years({years}) + to_days({grace_days}) AS grace_until
                FROM _ret WHERE data_class = {lit(_data_class(rule))}
            ), j AS (
                SELECT *, CASE
                    WHEN created_at IS NULL OR created_at > {asof} THEN 'excluded'
                    WHEN deleted_eff IS NOT NULL AND deleted_eff < keep_until THEN 'breached'
                    WHEN deleted_eff IS NOT NULL OR {asof} >= keep_until THEN 'achieved'
                    ELSE 'active' END AS state,
                    coalesce(deleted_eff, {asof}) > grace_until AS over_kept
                FROM b
            )
            SELECT {lit(rule.id)}, rid, created_at, seg, state,
                   CASE WHEN state <> 'excluded' THEN cr_span(created_at, deleted_eff) END,
                   CASE WHEN state = 'breached' THEN keep_until WHEN over_kept THEN grace_until END,
                   CASE WHEN state = 'breached' OR over_kept THEN deleted_eff END,
                   CASE WHEN state = 'breached' THEN NULL
                        WHEN over_kept THEN cr_secs(grace_until, coalesce(deleted_eff, {asof})) END,
                   CASE WHEN state = 'breached' THEN 'breach' WHEN over_kept THEN 'warning' END,
                   CASE WHEN state = 'breached' THEN
                       'PREMATURE DELETION: billing record ' || rid || ' created ' || cr_ts(created_at)
                       || ' was deleted ' || cr_ts(deleted_eff) || ', ' || cr_dur(cr_secs(deleted_eff, keep_until))
                       || ' before the end of its {years}-year retention period on ' || cr_ts(keep_until) || '.'
                   WHEN over_kept AND deleted_eff IS NULL THEN
                       'Minimisation warning (not a breach): billing record ' || rid || ' created ' || cr_ts(created_at)
                       || ' is still stored at ' || cr_ts({asof}) || ' (report as-of time); its {years}-year '
                       || 'retention period ended ' || cr_ts(keep_until) || ' and the {grace_days}-day grace period '
                       || 'ended ' || cr_ts(grace_until) || ', ' || cr_dur(cr_secs(grace_until, {asof})) || ' ago.'
                   WHEN over_kept THEN
                       'Minimisation warning (not a breach): billing record ' || rid || ' created ' || cr_ts(created_at)
                       || ' was kept until ' || cr_ts(deleted_eff) || ', ' || cr_dur(cr_secs(grace_until, deleted_eff))
                       || ' after its {years}-year retention period (ended ' || cr_ts(keep_until)
                       || ') plus the {grace_days}-day grace period (ended ' || cr_ts(grace_until) || ').'
                   END,
                   CASE WHEN state = 'breached' THEN 'deleted_prematurely' WHEN over_kept THEN 'kept_past_minimum' END
            FROM j""",
        )

    for rule in policy.rules_of("retention_maximum_age"):
        seconds, phrase = target_of(rule)
        insert_deadline_items(
            rule_id=rule.id,
            where=f"data_class = {lit(_data_class(rule))}",
            period_at="created_at",
            due=f"created_at + {seconds_interval(seconds)}",
            actual="deleted_eff",
            duration="cr_span(created_at, actual_at)",
            late_explanation=f"""'Over-retention: backup ' || rid || ' taken ' || cr_ts(created_at)
            || ' was purged only ' || cr_ts(actual_at) || ', ' || cr_dur(overdue_seconds)
            || ' after the end of its ' || {lit(phrase)} || ' window on ' || cr_ts(due_at) || '.'""",
            open_explanation=f"""'Over-retention: backup ' || rid || ' taken ' || cr_ts(created_at)
            || ' still exists at ' || cr_ts({asof}) || ' (report as-of time), ' || cr_dur(overdue_seconds)
            || ' after the end of its ' || {lit(phrase)} || ' window on ' || cr_ts(due_at) || '.'""",
            late_cause="'deleted_late'",
            open_cause="'stored_past_deadline'",
        )

    finish_domain(con, policy, DOMAIN, items, "retention_inventory", "CAST(s.record_id AS VARCHAR)")
    con.execute("DROP TABLE IF EXISTS _ret")
