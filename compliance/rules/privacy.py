"""Privacy (data-subject) requests: PRIV-RESP, PRIV-COMPLETE, PRIV-EXTEND, PRIV-TYPES, and the open backlog.

Input: ``staged_privacy_requests`` (request_id, request_type, received_at, first_response_at, completed_at,
extended, extension_notified_at, status). Output: ``violations_privacy``, ``metrics_privacy``,
``privacy_backlog``.

Readings (every number comes from the policy rule):

- PRIV-RESP (kind ``privacy_first_response``): first response no later than received_at + target.
- PRIV-COMPLETE (kind ``privacy_completion``): the *original* deadline. ``day_counting: days`` is
  received_at + target (30 x 24 h on the UTC timeline); ``day_counting: calendar_month`` is received_at plus
  ``calendar_months`` months (default: the target's days / 30, i.e. 1), same time of day, clamped to the last day
  of a shorter month (DuckDB month arithmetic: Jan 31 -> Feb 28, or Feb 29 in a leap year; Feb 29 -> Mar 29).
  ``roll_forward_closed_days: true`` moves a deadline falling on a Saturday or Sunday (UTC) to the following Monday,
  same time of day (public holidays are not considered).
- PRIV-EXTEND (kind ``privacy_extension``): an extension counts only when ``extended`` is true AND
  ``extension_notified_at`` <= the original deadline (and <= as_of). Then the request is judged against the
  extended deadline = original deadline + ``extension_days`` days (or received_at + target when the setting is
  absent) under PRIV-EXTEND, and is ``excluded`` from PRIV-COMPLETE. A flagged extension notified late, or never
  (and the original deadline has passed at as_of), is a PRIV-EXTEND breach (due = original deadline, actual =
  notification or NULL) and the request is judged against the original deadline under PRIV-COMPLETE. A flagged
  extension that was never needed (request completed by the original deadline) is ``excluded`` from PRIV-EXTEND.
- PRIV-TYPES (kind ``privacy_types``): figures per request type (segment ``request_type=<type>``, a zero row for
  every configured type without requests); the state of each request is its final verdict (extended deadline
  when the extension counts, otherwise the original deadline); types outside ``request_types`` are ``excluded``
  (ingest quarantines them, so normally none). PRIV-TYPES yields no violations.
- Events after as_of count as not happened yet; requests received after as_of are excluded.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.policy import Policy, Rule
from compliance.rules.common import (
    create_empty_results,
    create_items,
    deadline_items,
    exclude_items_of_files_without,
    drop_items,
    insert_items,
    install_macros,
    lit,
    require_seconds,
    seconds_interval,
    table_exists,
    target_phrase,
    ts_lit,
    write_metrics,
    write_violations,
)

DOMAIN = "privacy"
SOURCE = "staged_privacy_requests"
BACKLOG_COLUMNS = (
    "request_id VARCHAR, request_type VARCHAR, status VARCHAR, received_at TIMESTAMPTZ, "
    "first_response_at TIMESTAMPTZ, extended BOOLEAN, extension_notified_at TIMESTAMPTZ, due_at TIMESTAMPTZ, "
    "days_left DOUBLE, deadline_rule VARCHAR, deadline VARCHAR, age_days DOUBLE"
)


def _original_due(rule: Rule, column: str) -> tuple[str, str, str]:
    """(due SQL, unrolled due SQL, phrase) of a completion rule, for the receipt timestamp ``column``."""
    seconds = require_seconds(rule)
    counting = rule.setting("day_counting", "days")
    if counting == "days":
        raw = f"({column} + {seconds_interval(seconds)})"
        phrase = target_phrase(seconds)
    elif counting == "calendar_month":
        months = int(rule.setting("calendar_months", max(1, round(seconds / (30 * 86400)))))
        raw = f"({column} + to_months({months}))"
        phrase = "one-calendar-month" if months == 1 else f"{months}-calendar-month"
    else:
        raise ValueError(f"rule {rule.id}: day_counting must be 'days' or 'calendar_month', got {counting!r}")
    if rule.setting("roll_forward_closed_days", False):
        due = (
            f"(CASE isodow(timezone('UTC', {raw})) WHEN 6 THEN {raw} + to_days(2) "
            f"WHEN 7 THEN {raw} + to_days(1) ELSE {raw} END)"
        )
    else:
        due = raw
    return due, raw, phrase


def _extended_due(rule: Rule, original_due: str) -> str:
    extension_days = rule.setting("extension_days")
    if extension_days is not None:
        return f"({original_due} + to_days({int(extension_days)}))"
    return f"(received_at + {seconds_interval(require_seconds(rule))})"


def _who(alias: str = "") -> str:
    return f"'Privacy request ' || {alias}record_id || ' (' || coalesce({alias}request_type, 'unknown type') || ')'"


def evaluate(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    install_macros(con)
    if not table_exists(con, SOURCE):
        create_empty_results(con, DOMAIN)
        con.execute(f"CREATE OR REPLACE TABLE privacy_backlog ({BACKLOG_COLUMNS})")
        return
    asof = ts_lit(as_of)
    first_response_rules = policy.rules_of("privacy_first_response")
    completion_rules = policy.rules_of("privacy_completion")
    extension_rules = policy.rules_of("privacy_extension")
    type_rules = policy.rules_of("privacy_types")

    # The original deadline of the first completion rule decides whether an extension counts.
    primary = completion_rules[0] if completion_rules else None
    if primary is not None:
        orig_due, _, orig_phrase = _original_due(primary, "received_at")
    elif extension_rules and extension_rules[0].setting("extension_days") is not None:
        rule = extension_rules[0]
        days = require_seconds(rule) // 86400 - int(rule.setting("extension_days"))
        orig_due, orig_phrase = f"(received_at + to_days({days}))", f"{days}-day"
    else:
        orig_due, orig_phrase = "CAST(NULL AS TIMESTAMPTZ)", "original"
    ext_rule = extension_rules[0] if extension_rules else None
    ext_due = _extended_due(ext_rule, "orig_due") if ext_rule is not None else "CAST(NULL AS TIMESTAMPTZ)"
    ext_phrase = target_phrase(require_seconds(ext_rule)) if ext_rule is not None else "extended"
    if ext_rule is not None and ext_rule.setting("extension_days") is not None and primary is not None:
        if primary.setting("day_counting", "days") != "days":
            ext_phrase = f"{orig_phrase} + {int(ext_rule.setting('extension_days'))}-day"

    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _priv AS
            WITH a AS (
                SELECT *, CAST(request_id AS VARCHAR) AS record_id,
                       CASE WHEN completed_at <= {asof} THEN completed_at END AS completed_eff,
                       CASE WHEN extension_notified_at <= {asof} THEN extension_notified_at END AS notified_eff,
                       {orig_due} AS orig_due
                FROM {SOURCE}
            ), b AS (
                SELECT *, coalesce(extended IS TRUE AND notified_eff <= orig_due, FALSE) AS ext_valid,
                       {ext_due} AS ext_due
                FROM a
            )
            SELECT *, CASE WHEN ext_valid THEN ext_due ELSE orig_due END AS effective_due FROM b"""
    )
    items = create_items(con, DOMAIN)
    segment = "'request_type=' || coalesce(request_type, 'unknown')"
    not_received = f"received_at IS NULL OR received_at > {asof}"

    for rule in first_response_rules:
        seconds = require_seconds(rule)
        phrase = target_phrase(seconds)
        insert_items(con, items, deadline_items(
            rule_id=rule.id, as_of=asof, source="_priv", record_id="record_id", period_at="received_at",
            due=f"received_at + {seconds_interval(seconds)}", actual="first_response_at",
            duration="cr_span(received_at, actual_at)", segment=segment,
            late_explanation=f"""{_who()} || ' received ' || cr_ts(received_at) || ' got its first response '
                || cr_ts(actual_at) || ', ' || cr_dur(overdue_seconds) || ' after the {phrase} deadline of '
                || cr_ts(due_at) || '.'""",
            open_explanation=f"""{_who()} || ' received ' || cr_ts(received_at) || ' had no first response by '
                || cr_ts({asof}) || ' (report as-of time), ' || cr_dur(overdue_seconds)
                || ' past the {phrase} deadline of ' || cr_ts(due_at) || '.'""",
            late_cause="'answered_late'", open_cause="'open_past_due'",
        ))

    extension_note = f"""CASE WHEN extended IS TRUE THEN ' The extension flagged on this request does not count: the '
        || 'requester was ' || CASE WHEN notified_eff IS NULL THEN 'never notified of it'
                                    ELSE 'notified of it only ' || cr_ts(notified_eff) || ', after the original deadline'
                               END || ' (see PRIV-EXTEND).' ELSE '' END"""
    for rule in completion_rules:
        due, raw_due, phrase = _original_due(rule, "received_at")
        roll_note = (
            f"CASE WHEN due_at <> {raw_due} THEN ' (the deadline ' || cr_ts({raw_due}) "
            f"|| ' fell on a weekend and moved to the next Monday)' ELSE '' END"
        )
        insert_items(con, items, deadline_items(
            rule_id=rule.id, as_of=asof, source="_priv", record_id="record_id", period_at="received_at",
            due=due, actual="completed_at", duration="cr_span(received_at, actual_at)", segment=segment,
            # A request with a valid extension is judged under PRIV-EXTEND instead.
            excluded=f"{not_received} OR ext_valid",
            late_explanation=f"""{_who()} || ' received ' || cr_ts(received_at) || ' was completed '
                || cr_ts(actual_at) || ', ' || cr_dur(overdue_seconds) || ' after the {phrase} deadline of '
                || cr_ts(due_at) || {roll_note} || '.' || {extension_note}""",
            open_explanation=f"""{_who()} || ' received ' || cr_ts(received_at) || ' was still not completed at '
                || cr_ts({asof}) || ' (report as-of time), ' || cr_dur(overdue_seconds)
                || ' past the {phrase} deadline of ' || cr_ts(due_at) || {roll_note} || '.' || {extension_note}""",
            late_cause="'completed_late'", open_cause="'open_past_due'",
        ))

    for rule in extension_rules:
        insert_items(con, items, deadline_items(
            rule_id=rule.id, as_of=asof, source="_priv", record_id="record_id", period_at="received_at",
            where="extended IS TRUE",
            due="CASE WHEN ext_valid THEN ext_due ELSE orig_due END",
            actual="CASE WHEN ext_valid THEN completed_at ELSE notified_eff END",
            duration="cr_span(received_at, completed_eff)", segment=segment,
            # An invalid extension that was never needed (completed by the original deadline) is not judged.
            excluded=f"{not_received} OR (NOT ext_valid AND completed_eff <= orig_due)",
            late_explanation=f"""CASE WHEN ext_valid THEN
                    {_who()} || ' received ' || cr_ts(received_at) || ' was validly extended (requester notified '
                    || cr_ts(notified_eff) || ') but completed ' || cr_ts(actual_at) || ', '
                    || cr_dur(overdue_seconds) || ' after the extended {ext_phrase} deadline of ' || cr_ts(due_at)
                    || '.'
                ELSE
                    'The extension of privacy request ' || record_id || ' (' || coalesce(request_type, 'unknown type')
                    || ') received ' || cr_ts(received_at)
                    || ' does not count: the requester was notified of it ' || cr_ts(actual_at) || ', '
                    || cr_dur(overdue_seconds) || ' after the original {orig_phrase} deadline of ' || cr_ts(due_at)
                    || '. The request is judged against the original deadline (PRIV-COMPLETE).'
                END""",
            open_explanation=f"""CASE WHEN ext_valid THEN
                    {_who()} || ' received ' || cr_ts(received_at) || ' was validly extended (requester notified '
                    || cr_ts(notified_eff) || ') but was still not completed at ' || cr_ts({asof})
                    || ' (report as-of time), ' || cr_dur(overdue_seconds) || ' past the extended {ext_phrase} '
                    || 'deadline of ' || cr_ts(due_at) || '.'
                ELSE
                    {_who()} || ' received ' || cr_ts(received_at) || ' is flagged as extended, but the requester '
                    || 'was never notified of the extension (none recorded by ' || cr_ts({asof}) || ', '
                    || cr_dur(overdue_seconds) || ' after the original {orig_phrase} deadline of ' || cr_ts(due_at)
                    || '). The extension does not count; the request is judged against the original deadline '
                    || '(PRIV-COMPLETE).'
                END""",
            late_cause="CASE WHEN ext_valid THEN 'completed_late' ELSE 'extension_notified_late' END",
            open_cause="CASE WHEN ext_valid THEN 'open_past_due' ELSE 'extension_not_notified' END",
        ))

    extra_segments: dict[str, list[str]] = {}
    for rule in type_rules:
        types = [str(t) for t in rule.setting("request_types", [])]
        type_list = ", ".join(lit(t) for t in types) or "NULL"
        extra_segments[rule.id] = [f"request_type={t}" for t in types]
        insert_items(con, items, f"""
            SELECT {lit(rule.id)}, record_id, received_at, {segment},
                   CASE WHEN {not_received} OR request_type NOT IN ({type_list}) OR effective_due IS NULL
                            THEN 'excluded'
                        WHEN completed_eff IS NOT NULL
                            THEN CASE WHEN completed_eff <= effective_due THEN 'achieved' ELSE 'breached' END
                        WHEN {asof} > effective_due THEN 'breached'
                        ELSE 'active' END,
                   cr_span(received_at, completed_eff),
                   effective_due, completed_eff, NULL, NULL, NULL, NULL
            FROM _priv""")

    exclude_items_of_files_without(con, items, [r for r in policy.rules if r.domain == DOMAIN], "privacy_requests",
                                   "CAST(s.request_id AS VARCHAR)")
    write_violations(con, DOMAIN, items)
    write_metrics(con, DOMAIN, items, [r.id for r in policy.rules if r.domain == DOMAIN], extra_segments)
    drop_items(con, items)

    # Backlog: every request open at as_of, with the deadline that applies to it.
    if primary is None:
        con.execute(f"CREATE OR REPLACE TABLE privacy_backlog ({BACKLOG_COLUMNS})")
    else:
        ext_id = lit(ext_rule.id) if ext_rule is not None else "NULL"
        con.execute(
            f"""CREATE OR REPLACE TABLE privacy_backlog AS
                SELECT CAST(request_id AS VARCHAR) AS request_id, CAST(request_type AS VARCHAR) AS request_type,
                       CAST(status AS VARCHAR) AS status, received_at,
                       CASE WHEN first_response_at <= {asof} THEN first_response_at END AS first_response_at,
                       extended, notified_eff AS extension_notified_at,
                       effective_due AS due_at,
                       round(cr_span({asof}, effective_due) / 86400, 2) AS days_left,
                       CAST(CASE WHEN ext_valid THEN {ext_id} ELSE {lit(primary.id)} END AS VARCHAR)
                           AS deadline_rule,
                       CAST(CASE WHEN ext_valid THEN 'extended {ext_phrase} deadline'
                                 WHEN extended IS TRUE THEN 'original {orig_phrase} deadline (extension flagged but not validly notified)'
                                 ELSE 'original {orig_phrase} deadline' END AS VARCHAR) AS deadline,
                       round(cr_span(received_at, {asof}) / 86400, 2) AS age_days
                FROM _priv
                WHERE received_at <= {asof} AND completed_eff IS NULL
                ORDER BY due_at, request_id"""
        )
    con.execute("DROP TABLE IF EXISTS _priv")
