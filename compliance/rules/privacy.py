"""Privacy (data-subject) requests: PRIV-RESP, PRIV-COMPLETE, PRIV-EXTEND, PRIV-TYPES, and the open backlog.

Input: ``staged_privacy_requests`` (request_id, request_type, received_at, first_response_at, completed_at,
extended, extension_notified_at, status). Output: ``violations_privacy``, ``metrics_privacy``,
``privacy_backlog``.

Readings (every number comes from the policy rule):

- PRIV-RESP (kind ``privacy_first_response``): first response no later than received_at + target.
- PRIV-COMPLETE (kind ``privacy_completion``): the *original* deadline. ``day_counting: days`` (the platform
  default) is received_at + target (30 x 24 h on the UTC timeline); ``roll_forward_closed_days: true`` then moves
  a deadline falling on a Saturday or Sunday (UTC) to the following Monday, same time of day.
  ``day_counting: calendar_month`` (GDPR Art. 12(3)) counts as Reg. 1182/71 Art. 3(2)(c): the period of
  ``calendar_months`` months (default: the target's days / 30, i.e. 1) runs from the local date of receipt in
  ``controller_timezone`` (an IANA zone; default: the policy's ``source_timezone``) and ends with the expiry of
  the last hour of the same date in the last month, or of that month's last day when it has none (Jan 31 -> Feb
  28, or Feb 29 in a leap year); the time of receipt does not matter. The due instant is that expiry, 24:00 local
  of the last day (the next day's first instant, DST-aware): as everywhere, an act at exactly the due instant is
  on time and one a second later is a breach. With ``roll_forward_closed_days: true`` a last day on a Saturday
  or Sunday (local) moves to the following Monday (Art. 3(4)). Public holidays are not considered.
- PRIV-EXTEND (kind ``privacy_extension``): an extension counts only when ``extended`` is true AND
  ``extension_notified_at`` <= the original deadline (and <= as_of). Then the request is judged against the
  extended deadline under PRIV-EXTEND, and is ``excluded`` from PRIV-COMPLETE. Under ``days`` the extended
  deadline is the original deadline + ``extension_days`` days (or received_at + target when the setting is
  absent); under ``calendar_month`` it is "two further months" (GDPR Art. 12(3)): ``extension_months`` (default
  2) further months counted from the original period's last day (before any roll-forward) to the end of the
  corresponding day, moved off a weekend as the original one is. A flagged extension notified late, or never
  (and the original deadline has passed at as_of), is a PRIV-EXTEND breach (due = original deadline, actual =
  notification or NULL) and the request is judged against the original deadline under PRIV-COMPLETE. A flagged
  extension that was never needed (request completed by the original deadline) is ``excluded`` from PRIV-EXTEND.
- PRIV-TYPES (kind ``privacy_types``): about types only, never timeliness, one item per privacy request row read
  from the exports. A loaded row is achieved when its type is one of ``request_types`` (segment
  ``request_type=<type>``, a zero row for every configured type without requests), excluded when received after
  as_of. A row ingest quarantined for an unknown or missing request_type is breached (segment
  ``request_type=unrecognised``) and listed with its record ID, file, line and the value (cut). A row quarantined
  for another reason had a recognised type (ingest lists every problem of a row) and is achieved, in no type
  segment; a malformed line (its type never read) and a duplicate line (its request is counted on the line kept)
  are excluded. No durations. Without a ``quarantine`` table the rule gets a coverage finding (not assessed).
- Events after as_of count as not happened yet; requests received after as_of are excluded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import available_timezones

import duckdb

from compliance.core.sql import lit, seconds_interval, table_exists, ts_lit
from compliance.ingest.contract import REQUEST_TYPES, SOURCES
from compliance.ingest.landing import file_pattern
from compliance.policy import Policy, Rule
from compliance.rules.common import (
    create_items,
    deadline_inserter,
    finish_domain,
    insert_items,
    require_seconds,
    source_staged,
    target_of,
    target_phrase,
)

DOMAIN = "privacy"
SOURCE = "staged_privacy_requests"
BACKLOG_COLUMNS = (
    "request_id VARCHAR, request_type VARCHAR, status VARCHAR, received_at TIMESTAMPTZ, "
    "first_response_at TIMESTAMPTZ, extended BOOLEAN, extension_notified_at TIMESTAMPTZ, due_at TIMESTAMPTZ, "
    "days_left DOUBLE, deadline_rule VARCHAR, deadline VARCHAR, age_days DOUBLE"
)


# The rules the calendar_month counting applies, cited in explanations and in the report.
PERIOD_RULE = "Reg. 1182/71 Art. 3(2)(c)"
EXTENSION_RULE = "GDPR Art. 12(3)"
CLOSED_DAY_RULE = "Reg. 1182/71 Art. 3(4)"
_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def _counting(rule: Rule) -> str:
    counting = rule.setting("day_counting", "days")
    if counting not in ("days", "calendar_month"):
        raise ValueError(f"rule {rule.id}: day_counting must be 'days' or 'calendar_month', got {counting!r}")
    return counting


def _controller_zone(rule: Rule, policy: Policy) -> str:
    zone = str(rule.setting("controller_timezone", policy.source_timezone))
    if zone != "UTC" and zone not in available_timezones():
        raise ValueError(f"rule {rule.id}: controller_timezone: unknown time zone {zone!r}")
    return zone


def _calendar_months(rule: Rule) -> int:
    return int(rule.setting("calendar_months", max(1, round(require_seconds(rule) / (30 * 86400)))))


def _extension_months(rule: Rule) -> int:
    return int(rule.setting("extension_months", 2))


def _month_phrase(months: int) -> str:
    return f"{_NUMBER_WORDS.get(months, str(months))}-calendar-month"


@dataclass(frozen=True)
class _Deadline:
    """One deadline of a privacy request: SQL over its row, and how explanations name it."""

    due: str  # TIMESTAMPTZ: the due instant; an act at exactly this instant is on time
    unrolled: str  # TIMESTAMPTZ: the due instant before a closed-day roll-forward
    phrase: str  # the deadline as an adjective: "30-day", "one-calendar-month"
    last_day: str = "CAST(NULL AS DATE)"  # calendar_month: the period's last day in the controller's zone
    zone: str = ""  # calendar_month: the controller's zone
    citation: str = ""  # calendar_month: the rules the period is counted by

    def end_note(self) -> str:
        """SQL text for after the due instant in an explanation: the local day that ends there, and the rule."""
        if not self.zone:
            return "''"
        return (
            f"' (the end of ' || strftime({self.last_day}, '%Y-%m-%d') || ' in ' || {lit(self.zone)} "
            f"|| ', ' || {lit(self.citation)} || ')'"
        )


def _local_day(instant: str, zone: str) -> str:
    return f"CAST(timezone({lit(zone)}, {instant}) AS DATE)"


def _months_later(day: str, months: int) -> str:
    """SQL: the same date ``months`` later, or the last day of that month when it has no such date (DuckDB clamps:
    Jan 31 -> Feb 28, or Feb 29 in a leap year)."""
    return f"CAST({day} + to_months({months}) AS DATE)"


def _weekend_to_monday(day: str) -> str:
    return f"(CASE isodow({day}) WHEN 6 THEN {day} + 2 WHEN 7 THEN {day} + 1 ELSE {day} END)"


def _day_end(day: str, zone: str) -> str:
    """SQL: the instant the local date ``day`` ends in ``zone``, i.e. the first instant of a later local date.

    DuckDB reads a local midnight that a DST change skips at the offset before the change, which is the instant of
    the change (right), but a midnight that occurs twice at its later instant: the earlier one, at the offset in
    force a day before, is taken when it reads back as that same midnight.
    """
    z = lit(zone)
    midnight = f"CAST({day} + 1 AS TIMESTAMP)"
    later = f"timezone({z}, {midnight})"
    day_before = f"({later} - INTERVAL 1 DAY)"
    earlier = f"timezone('UTC', {midnight} - (timezone({z}, {day_before}) - cr_utc({day_before})))"
    return f"(CASE WHEN {earlier} < {later} AND timezone({z}, {earlier}) = {midnight} THEN {earlier} ELSE {later} END)"


def _period_deadline(last_day: str, zone: str, roll_forward: bool, phrase: str, citation: str) -> _Deadline:
    """The deadline at the end of the local date ``last_day`` (SQL DATE), moved off a weekend when asked."""
    rolled = _weekend_to_monday(last_day) if roll_forward else last_day
    return _Deadline(
        due=_day_end(rolled, zone),
        unrolled=_day_end(last_day, zone),
        phrase=phrase,
        last_day=rolled,
        zone=zone,
        citation=citation,
    )


def _original_deadline(rule: Rule, policy: Policy) -> _Deadline:
    """The original deadline of a completion rule (PRIV-COMPLETE) of a request row."""
    roll_forward = bool(rule.setting("roll_forward_closed_days", False))
    if _counting(rule) == "calendar_month":
        zone, months = _controller_zone(rule, policy), _calendar_months(rule)
        last_day = _months_later(_local_day("received_at", zone), months)
        return _period_deadline(last_day, zone, roll_forward, _month_phrase(months), PERIOD_RULE)
    seconds, phrase = target_of(rule)
    raw = f"(received_at + {seconds_interval(seconds)})"
    due = (
        f"(CASE isodow(timezone('UTC', {raw})) WHEN 6 THEN {raw} + to_days(2) "
        f"WHEN 7 THEN {raw} + to_days(1) ELSE {raw} END)"
        if roll_forward
        else raw
    )
    return _Deadline(due=due, unrolled=raw, phrase=phrase)


def _extended_deadline(rule: Rule, primary: Rule | None, policy: Policy, original_due: str) -> _Deadline:
    """The deadline of a validly extended request (PRIV-EXTEND), counted as the original one (``primary``).

    ``original_due``: SQL of the original due instant, which ``extension_days`` adds to.
    """
    if primary is not None and _counting(primary) == "calendar_month":
        # "extended by two further months" (GDPR Art. 12(3)): a period of months of its own, running from the
        # original period's last day (before any roll-forward) to the corresponding day, moved off a weekend as
        # the original one is.
        zone, months = _controller_zone(primary, policy), _extension_months(rule)
        original_last_day = _months_later(_local_day("received_at", zone), _calendar_months(primary))
        return _period_deadline(
            _months_later(original_last_day, months),
            zone,
            bool(primary.setting("roll_forward_closed_days", False)),
            f"{_month_phrase(_calendar_months(primary))} + {_NUMBER_WORDS.get(months, str(months))}-month",
            f"{EXTENSION_RULE}, {PERIOD_RULE}",
        )
    extension_days = rule.setting("extension_days")
    if extension_days is not None:
        due = f"({original_due} + to_days({int(extension_days)}))"
    else:
        due = f"(received_at + {seconds_interval(require_seconds(rule))})"
    return _Deadline(due=due, unrolled=due, phrase=target_phrase(require_seconds(rule)))


def _elapsed_reading(seconds: int) -> str:
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''} ({days} × 24 h on the UTC timeline)"
    return f"{target_phrase(seconds)} period on the UTC timeline"


def target_text(rule: Rule, policy: Policy) -> str | None:
    """The target of a privacy rule as the verdict table states it, when calendar-month counting makes
    ``Target.describe`` (days) wrong; None otherwise."""
    completion_rules = policy.rules_of("privacy_completion")
    if rule.kind == "privacy_completion" and _counting(rule) == "calendar_month":
        months = _calendar_months(rule)
        return f"{months} calendar month{'s' if months != 1 else ''} ({PERIOD_RULE})"
    if rule.kind == "privacy_extension" and completion_rules and _counting(completion_rules[0]) == "calendar_month":
        months = _calendar_months(completion_rules[0]) + _extension_months(rule)
        return f"{months} calendar months with the extension ({EXTENSION_RULE})"
    return None


def counting_readings(policy: Policy) -> dict[str, str]:
    """Rule ID -> what a privacy rule judges and how it counts its deadline, in words, for the report."""
    completion_rules = policy.rules_of("privacy_completion")
    primary = completion_rules[0] if completion_rules else None
    readings: dict[str, str] = {}
    for rule in policy.rules:
        if rule.kind == "privacy_first_response":
            readings[rule.id] = _elapsed_reading(require_seconds(rule))
        elif rule.kind == "privacy_completion":
            roll_forward = rule.setting("roll_forward_closed_days", False)
            if _counting(rule) == "calendar_month":
                months = _calendar_months(rule)
                readings[rule.id] = (
                    f"{months} calendar month{'s' if months != 1 else ''}, ending at the end of the corresponding day "
                    f"(or of the month's last day when it has none), {PERIOD_RULE}, in {_controller_zone(rule, policy)}"
                    + (
                        f"; a last day on a Saturday or Sunday moves to the next Monday ({CLOSED_DAY_RULE}; public "
                        "holidays not considered)"
                        if roll_forward
                        else ""
                    )
                )
            else:
                moved = "; a deadline on a Saturday or Sunday (UTC) moves to the next Monday, same time"
                readings[rule.id] = _elapsed_reading(require_seconds(rule)) + (moved if roll_forward else "")
        elif rule.kind == "privacy_extension":
            if primary is not None and _counting(primary) == "calendar_month":
                months = _extension_months(rule)
                counted = (
                    f"the original deadline's last day + {months} further calendar "
                    f"month{'s' if months != 1 else ''} ({EXTENSION_RULE}), to the end of the corresponding "
                    f"day, {PERIOD_RULE}, in {_controller_zone(primary, policy)}"
                )
            elif rule.setting("extension_days") is not None:
                days = int(rule.setting("extension_days"))
                counted = f"the original deadline + {days} days ({days} × 24 h)"
            else:
                counted = _elapsed_reading(require_seconds(rule)) + " from receipt"
            readings[rule.id] = f"{counted}; only when flagged and notified by the original deadline"
        elif rule.kind == "privacy_types":
            types = ", ".join(str(t) for t in rule.setting("request_types", REQUEST_TYPES))
            readings[rule.id] = (
                f"every request row read has one of the types {types}; rows quarantined for an "
                "unknown or missing type are the breaches"
            )
    return readings


def _who(alias: str = "") -> str:
    return f"'Privacy request ' || {alias}record_id || ' (' || coalesce({alias}request_type, 'unknown type') || ')'"


# Quarantine codes of rows whose request type was never judged: the line could not be read as a record, or it
# repeats a request already counted on the line that was kept.
_TYPE_NOT_JUDGED_CODES = ("malformed_row", "exact_duplicate", "duplicate_id")
UNRECOGNISED_SEGMENT = "request_type=unrecognised"
_SHOWN_VALUE_CHARS = 40


def _type_problem_pattern() -> str:
    """Regex finding the request_type problem in a quarantine reason, the unrecognised value as group 2.

    Ingest lists every problem of a row, in contract column order, joined by '; ', as
    ``request_type: unknown value <value>`` or ``request_type: missing required value``; the value ends where the
    message of a later column begins (``<column>: ...``, or ``<column> ... is before ...``) or at the end.
    """
    columns = [column.name for column in SOURCES["privacy_requests"].columns]
    later = "|".join(columns[columns.index("request_type") + 1 :])
    return rf"(?s)(?:^|; )request_type: (unknown value (.*?)|missing required value)(?:; (?:{later})[: ]|$)"


def _type_items(con: duckdb.DuckDBPyConnection, rule: Rule, types: list[str], asof: str, not_received: str) -> str:
    """PRIV-TYPES items: one per privacy request row read, judged on its type alone (never on timeliness).

    Loaded rows are achieved when their type is recognised; rows quarantined for an unknown or missing
    request_type are breached, listed with the value; rows quarantined for another reason had their type
    recognised (ingest lists every problem of a row) and are achieved, except those in ``_TYPE_NOT_JUDGED_CODES``
    (excluded). Without the quarantine table the rule cannot count unrecognised rows: a coverage item says so.
    """
    type_list = ", ".join(lit(t) for t in types) or "NULL"
    recognised = ", ".join(types) or "none"
    loaded = f"""
        SELECT {lit(rule.id)}, record_id, received_at, 'request_type=' || request_type, state,
               NULL, NULL, NULL, NULL, CASE WHEN state = 'breached' THEN 'breach' END,
               CASE WHEN state = 'breached' THEN {_who()} || ' has the request type "' || request_type
                   || '", which is not one of the recognised types (' || {lit(recognised)} || ').' END,
               CASE WHEN state = 'breached' THEN 'unrecognised_type' END
        FROM (SELECT *, CASE WHEN {not_received} THEN 'excluded' WHEN request_type IN ({type_list}) THEN 'achieved'
                             ELSE 'breached' END AS state FROM _priv)"""
    if not table_exists(con, "quarantine"):
        return (
            loaded
            + f"""
        UNION ALL
        SELECT {lit(rule.id)}, 'privacy_requests', NULL, NULL, 'excluded', NULL, NULL, NULL, NULL, 'coverage',
               'The warehouse has no quarantine table, so the privacy request rows quarantined for an unrecognised '
               || 'request type cannot be counted: the types of the requests read cannot be verified.', NULL"""
        )
    value = "regexp_replace(unknown_value, '[[:cntrl:]]', ' ', 'g')"
    shown = (
        f"CASE WHEN length({value}) > {_SHOWN_VALUE_CHARS} THEN left({value}, {_SHOWN_VALUE_CHARS - 1}) || '…' "
        f"ELSE {value} END"
    )
    not_judged = ", ".join(lit(code) for code in _TYPE_NOT_JUDGED_CODES)
    return (
        loaded
        + f"""
        UNION ALL
        SELECT {lit(rule.id)}, coalesce(request_id, source_file || ' line ' || line), NULL,
               CASE WHEN state = 'breached' THEN {lit(UNRECOGNISED_SEGMENT)} END, state,
               NULL, NULL, NULL, NULL, CASE WHEN state = 'breached' THEN 'breach' END,
               CASE WHEN state = 'breached' THEN
                   'Privacy request ' || coalesce(request_id, 'without an ID') || ' (' || source_file || ' line '
                   || line || ') ' || CASE WHEN problem LIKE 'unknown value%'
                                           THEN 'has the request type "' || {shown} || '", which is not one of '
                                                || 'the recognised types (' || {lit(recognised)} || ')'
                                           ELSE 'has no request type' END
                   || '; the row is quarantined, so no other privacy rule judges it.' END,
               CASE WHEN state = 'breached' THEN CASE WHEN problem LIKE 'unknown value%' THEN 'unrecognised_type'
                                                      ELSE 'missing_type' END END
        FROM (SELECT *, CASE WHEN problem <> '' THEN 'breached' WHEN reason_code IN ({not_judged}) THEN 'excluded'
                             ELSE 'achieved' END AS state
              FROM (SELECT source_file, line, nullif(trim(record_id), '') AS request_id, reason_code,
                           regexp_extract(reason, {lit(_type_problem_pattern())}, 1) AS problem,
                           regexp_extract(reason, {lit(_type_problem_pattern())}, 2) AS unknown_value
                    FROM quarantine WHERE regexp_matches(source_file, {lit(file_pattern("privacy_requests"))})))"""
    )


def evaluate(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    if not source_staged(con, DOMAIN, SOURCE, {"privacy_backlog": BACKLOG_COLUMNS}):
        return
    asof = ts_lit(as_of)
    first_response_rules = policy.rules_of("privacy_first_response")
    completion_rules = policy.rules_of("privacy_completion")
    extension_rules = policy.rules_of("privacy_extension")
    type_rules = policy.rules_of("privacy_types")

    # The original deadline of the first completion rule decides whether an extension counts.
    primary = completion_rules[0] if completion_rules else None
    if primary is not None:
        original_deadline = _original_deadline(primary, policy)
    elif extension_rules and extension_rules[0].setting("extension_days") is not None:
        rule = extension_rules[0]
        days = require_seconds(rule) // 86400 - int(rule.setting("extension_days"))
        original_deadline = _Deadline(due=f"(received_at + to_days({days}))", unrolled="NULL", phrase=f"{days}-day")
    else:
        original_deadline = _Deadline(due="CAST(NULL AS TIMESTAMPTZ)", unrolled="NULL", phrase="original")
    ext_rule = extension_rules[0] if extension_rules else None
    extended_deadline = (
        _extended_deadline(ext_rule, primary, policy, "orig_due")
        if ext_rule is not None
        else _Deadline(due="CAST(NULL AS TIMESTAMPTZ)", unrolled="NULL", phrase="extended")
    )
    orig_phrase, ext_phrase = original_deadline.phrase, extended_deadline.phrase

    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _priv AS
            WITH a AS (
                SELECT *, CAST(request_id AS VARCHAR) AS record_id,
                       CASE WHEN completed_at <= {asof} THEN completed_at END AS completed_eff,
                       CASE WHEN extension_notified_at <= {asof} THEN extension_notified_at END AS notified_eff,
                       {original_deadline.due} AS orig_due
                FROM {SOURCE}
            ), b AS (
                SELECT *, coalesce(extended IS TRUE AND notified_eff <= orig_due, FALSE) AS ext_valid,
                       {extended_deadline.due} AS ext_due
                FROM a
            )
            SELECT *, CASE WHEN ext_valid THEN ext_due ELSE orig_due END AS effective_due FROM b"""
    )
    items = create_items(con, DOMAIN)
    segment = "'request_type=' || coalesce(request_type, 'unknown')"
    not_received = f"received_at IS NULL OR received_at > {asof}"
    insert_deadline_items = deadline_inserter(
        con, items, as_of=asof, source="_priv", record_id="record_id", period_at="received_at", segment=segment
    )

    for rule in first_response_rules:
        seconds, phrase = target_of(rule)
        insert_deadline_items(
            rule_id=rule.id,
            due=f"received_at + {seconds_interval(seconds)}",
            actual="first_response_at",
            duration="cr_span(received_at, actual_at)",
            late_explanation=f"""{_who()} || ' received ' || cr_ts(received_at) || ' got its first response '
            || cr_ts(actual_at) || ', ' || cr_dur(overdue_seconds) || ' after the ' || {lit(phrase)} || ' deadline of '
            || cr_ts(due_at) || '.'""",
            open_explanation=f"""{_who()} || ' received ' || cr_ts(received_at) || ' had no first response by '
            || cr_ts({asof}) || ' (report as-of time), ' || cr_dur(overdue_seconds)
            || ' past the ' || {lit(phrase)} || ' deadline of ' || cr_ts(due_at) || '.'""",
            late_cause="'answered_late'",
            open_cause="'open_past_due'",
        )

    extension_note = """CASE WHEN extended IS TRUE THEN ' The extension flagged on this request does not count: the '
        || 'requester was ' || CASE WHEN notified_eff IS NULL THEN 'never notified of it'
                                    ELSE 'notified of it only ' || cr_ts(notified_eff) || ', after the original deadline'
                               END || ' (see PRIV-EXTEND).' ELSE '' END"""
    for rule in completion_rules:
        deadline = original_deadline if rule is primary else _original_deadline(rule, policy)
        closed_day_rule = f", {CLOSED_DAY_RULE}" if deadline.zone else ""
        roll_note = (
            f"CASE WHEN due_at <> {deadline.unrolled} THEN ' (the deadline ' || cr_ts({deadline.unrolled}) "
            f"|| {lit(f' fell on a weekend and moved to the next Monday{closed_day_rule})')} ELSE '' END"
        )
        due, phrase, end_note = ("orig_due" if rule is primary else deadline.due), deadline.phrase, deadline.end_note()
        insert_deadline_items(
            rule_id=rule.id,
            due=due,
            actual="completed_at",
            duration="cr_span(received_at, actual_at)",
            # A request with a valid extension is judged under PRIV-EXTEND instead.
            excluded=f"{not_received} OR ext_valid",
            late_explanation=f"""{_who()} || ' received ' || cr_ts(received_at) || ' was completed '
            || cr_ts(actual_at) || ', ' || cr_dur(overdue_seconds) || ' after the ' || {lit(phrase)} || ' deadline of '
            || cr_ts(due_at) || {end_note} || {roll_note} || '.' || {extension_note}""",
            open_explanation=f"""{_who()} || ' received ' || cr_ts(received_at) || ' was still not completed at '
            || cr_ts({asof}) || ' (report as-of time), ' || cr_dur(overdue_seconds)
            || ' past the ' || {lit(phrase)} || ' deadline of ' || cr_ts(due_at) || {end_note} || {roll_note} || '.'
            || {extension_note}""",
            late_cause="'completed_late'",
            open_cause="'open_past_due'",
        )

    for rule in extension_rules:
        insert_deadline_items(
            rule_id=rule.id,
            where="extended IS TRUE",
            due="CASE WHEN ext_valid THEN ext_due ELSE orig_due END",
            actual="CASE WHEN ext_valid THEN completed_at ELSE notified_eff END",
            duration="cr_span(received_at, completed_eff)",
            # An invalid extension that was never needed (completed by the original deadline) is not judged.
            excluded=f"{not_received} OR (NOT ext_valid AND completed_eff <= orig_due)",
            late_explanation=f"""CASE WHEN ext_valid THEN
                {_who()} || ' received ' || cr_ts(received_at) || ' was validly extended (requester notified '
                || cr_ts(notified_eff) || ') but completed ' || cr_ts(actual_at) || ', '
                || cr_dur(overdue_seconds) || ' after the extended ' || {lit(ext_phrase)} || ' deadline of ' || cr_ts(due_at)
                || {extended_deadline.end_note()} || '.'
            ELSE
                'The extension of privacy request ' || record_id || ' (' || coalesce(request_type, 'unknown type')
                || ') received ' || cr_ts(received_at)
                || ' does not count: the requester was notified of it ' || cr_ts(actual_at) || ', '
                || cr_dur(overdue_seconds) || ' after the original ' || {lit(orig_phrase)} || ' deadline of ' || cr_ts(due_at)
                || {original_deadline.end_note()}
                || '. The request is judged against the original deadline (PRIV-COMPLETE).'
            END""",
            open_explanation=f"""CASE WHEN ext_valid THEN
                {_who()} || ' received ' || cr_ts(received_at) || ' was validly extended (requester notified '
                || cr_ts(notified_eff) || ') but was still not completed at ' || cr_ts({asof})
                || ' (report as-of time), ' || cr_dur(overdue_seconds) || ' past the extended ' || {lit(ext_phrase)} || ' '
                || 'deadline of ' || cr_ts(due_at) || {extended_deadline.end_note()} || '.'
            ELSE
                {_who()} || ' received ' || cr_ts(received_at) || ' is flagged as extended, but the requester '
                || 'was never notified of the extension (none recorded by ' || cr_ts({asof}) || ', '
                || cr_dur(overdue_seconds) || ' after the original ' || {lit(orig_phrase)} || ' deadline of ' || cr_ts(due_at)
                || {original_deadline.end_note()} || '). The extension does not count; the request is judged '
                || 'against the original deadline (PRIV-COMPLETE).'
            END""",
            late_cause="CASE WHEN ext_valid THEN 'completed_late' ELSE 'extension_notified_late' END",
            open_cause="CASE WHEN ext_valid THEN 'open_past_due' ELSE 'extension_not_notified' END",
        )

    extra_segments: dict[str, list[str]] = {}
    for rule in type_rules:
        types = [str(t) for t in rule.setting("request_types", REQUEST_TYPES)]
        extra_segments[rule.id] = [f"request_type={t}" for t in types]
        insert_items(con, items, _type_items(con, rule, types, asof, not_received))

    finish_domain(
        con, policy, DOMAIN, items, "privacy_requests", "CAST(s.request_id AS VARCHAR)", extra_segments=extra_segments
    )

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
                       CAST(CASE WHEN ext_valid THEN 'extended ' || {lit(ext_phrase)} || ' deadline'
                                 WHEN extended IS TRUE THEN 'original ' || {lit(orig_phrase)} || ' deadline (extension flagged but not validly notified)'
                                 ELSE 'original ' || {lit(orig_phrase)} || ' deadline' END AS VARCHAR) AS deadline,
                       round(cr_span(received_at, {asof}) / 86400, 2) AS age_days
                FROM _priv
                WHERE received_at <= {asof} AND completed_eff IS NULL
                ORDER BY due_at, request_id"""
        )
    con.execute("DROP TABLE IF EXISTS _priv")
