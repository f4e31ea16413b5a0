"""Verdicts per commitment: the rule results combined, and each rule's verdict, reason and causes.

The files they are written to: :mod:`compliance.evidence.files`; the run manifest: :mod:`compliance.evidence.manifest`.
"""

from __future__ import annotations

import duckdb

from compliance.core.sql import lit, table_exists
from compliance.ingest.contract import SOURCES
from compliance.policy import Policy, Rule, VersionWindow
from compliance.rule_kinds import DOMAINS
from compliance.rules import privacy
from compliance.rules.common import (
    CAUSE_WORDS,
    METRIC_COLUMNS,
    RULE_INPUTS,
    VIOLATION_COLUMNS,
    absent_rule_columns,
    rule_columns_absent_everywhere,
)
from compliance.rules.ticket_clocks import events_stop_missing

# Every domain of the registry: a domain missing here would drop out of `violations` and `metrics` silently.
DOMAINS_WITH_RESULTS = tuple(DOMAINS)

# The sources a rule kind needs; without them its verdict is "no data" (its columns: compliance.rule_kinds).
RULE_SOURCES: dict[str, tuple[str, ...]] = {kind: inputs.sources for kind, inputs in RULE_INPUTS.items()}

VERDICT_COLUMNS = (
    "position INTEGER, rule_id VARCHAR, domain VARCHAR, title VARCHAR, source_doc VARCHAR, source_quote VARCHAR, "
    "calendar VARCHAR, target VARCHAR, verdict VARCHAR, reason VARCHAR, achieved BIGINT, breached BIGINT, "
    "active BIGINT, excluded BIGINT, warnings BIGINT, denominator BIGINT, adherence_pct DOUBLE, causes VARCHAR"
)
# cause code -> its words, as SQL over a violation's ``cause``
_CAUSE_WORDS_SQL = (
    "CASE cause "
    + " ".join(f"WHEN {lit(code)} THEN {lit(words)}" for code, words in CAUSE_WORDS.items())
    + " ELSE coalesce(cause, 'cause not recorded') END"
)


def combine_results(con: duckdb.DuckDBPyConnection) -> None:
    """Union the per-domain violations and metrics tables into ``violations`` and ``metrics``."""
    for kind, columns in (("violations", VIOLATION_COLUMNS), ("metrics", METRIC_COLUMNS)):
        parts = [
            f"SELECT * FROM {kind}_{domain}" for domain in DOMAINS_WITH_RESULTS if table_exists(con, f"{kind}_{domain}")
        ]
        con.execute(f"CREATE OR REPLACE TABLE {kind} ({columns})")
        if parts:
            con.execute(f"INSERT INTO {kind} {' UNION ALL '.join(parts)}")


def blocked_domains(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Domains whose data failed a blocking expectation, with the reason (their verdicts are "not assessed")."""
    if not table_exists(con, "data_quality"):
        return {}
    blocked: dict[str, list[str]] = {}
    for source, message in con.execute(
        "SELECT source, message FROM data_quality WHERE blocking AND NOT success ORDER BY source, message"
    ).fetchall():
        blocked.setdefault(SOURCES[source].domain, []).append(message)
    return {
        domain: "blocking data-quality check failed: " + "; ".join(messages) for domain, messages in blocked.items()
    }


def build_verdicts(
    con: duckdb.DuckDBPyConnection,
    policy: Policy,
    blocked: dict[str, str] | None = None,
    windows: tuple[VersionWindow, ...] = (),
) -> None:
    """One row per policy rule: met / breached / no data / not assessed, with the figures behind it.

    ``blocked`` maps a domain to the reason a blocking data-quality check failed: its rules are "not assessed".
    ``windows``: the policy versions that judged the run (``policy`` is the newest): a rule only an older version
    has is listed after the newest's, and a target an older version set otherwise is named beside the newest's.
    """
    blocked = blocked or {}
    # One row per input file: a source counts as present when any of its files loaded (loaded rows come last).
    files = con.execute(
        "SELECT source, status, file, problem FROM ingest_log ORDER BY source, status = 'loaded', file"
    ).fetchall()
    inputs = {row[0]: row[1:] for row in files}
    unusable = _unusable_files(files)
    quarantined = _quarantined_by_source(con)
    con.execute(f"CREATE OR REPLACE TABLE verdicts ({VERDICT_COLUMNS})")
    violations_by_rule = _violations_by_rule(con)
    # what the loaded files lack is a function of the rule kind (and, for the stopping events, of the policy):
    # read once per kind, not once per rule (each reading queries the catalog and the ingest's records)
    absent_reasons: dict[tuple[str, int], str | None] = {}
    partly_absent: dict[str, str | None] = {}
    for position, (rule, rule_policy) in enumerate(_verdict_rules(policy, windows)):
        reason = _missing_input_reason(rule.kind, inputs) or blocked.get(rule.domain)
        fallback = "no data" if rule.domain not in blocked else "not assessed"
        if rule.kind not in RULE_SOURCES:
            fallback, reason = "not assessed", f"rule kind {rule.kind} is not evaluated by this version"
        elif reason is None:
            if (rule.kind, id(rule_policy)) not in absent_reasons:
                absent_reasons[rule.kind, id(rule_policy)] = _absent_column_reason(con, rule.kind, rule_policy)
            reason = absent_reasons[rule.kind, id(rule_policy)]
            fallback = "not assessed"
        if rule.kind not in partly_absent:
            partly_absent[rule.kind] = _partly_absent_note(con, rule.kind)
        con.execute(
            """INSERT INTO verdicts
                WITH m AS (SELECT * FROM metrics WHERE rule_id = $rule_id AND period = 'all' AND segment = 'all'),
                v AS (SELECT CAST($warnings AS BIGINT) AS warnings, CAST($breaches AS BIGINT) AS breaches,
                             CAST($coverage AS VARCHAR) AS coverage),
                c AS (SELECT CAST($codes AS VARCHAR) AS codes, CAST($words AS VARCHAR) AS words),
                judged AS (SELECT *, CASE WHEN $reason IS NOT NULL THEN $fallback
                            WHEN v.coverage IS NOT NULL THEN 'not assessed'
                            WHEN coalesce(m.denominator, 0) = 0 AND v.breaches > 0 THEN 'breached'
                            WHEN m.rule_id IS NULL THEN 'not assessed'
                            WHEN coalesce(m.denominator, 0) = 0 THEN 'no data'
                            WHEN m.breached > 0 AND m.adherence_pct < $met_min THEN 'breached'
                            ELSE 'met' END AS judged_verdict
                      FROM v LEFT JOIN m ON true, c),
                -- an unread file's records could hold a breach: the loaded files' "met" or "no data" cannot stand
                j AS (SELECT *, CASE WHEN $reason IS NULL AND $unread IS NOT NULL AND judged_verdict IN ('met', 'no data')
                                     THEN 'not assessed' ELSE judged_verdict END AS verdict
                      FROM judged)
                SELECT $position, $rule_id, $domain, $title, $source_doc, $source_quote, $calendar, $target, verdict,
                       concat_ws('; ', CASE WHEN $reason IS NOT NULL THEN $reason
                            WHEN coverage IS NOT NULL THEN coverage
                            WHEN rule_id IS NULL THEN 'the rule produced no figures'
                            -- a rule judged on figures alone (PRIV-TYPES) lists no violations to give causes
                            WHEN verdict = 'breached' AND words IS NULL THEN breached || ' breached'
                            WHEN verdict = 'breached' THEN breaches || ' breached: ' || words
                            WHEN coalesce(denominator, 0) = 0 AND breaches = 0
                                THEN 'no item reached its deadline in the data (' || coalesce(active, 0) || ' still open, '
                                     || coalesce(excluded, 0) || ' excluded)'
                       END, CASE WHEN $reason IS NULL THEN $partial END,
                       CASE WHEN $reason IS NULL AND $unread IS NOT NULL THEN $unread || CASE
                            WHEN verdict = 'not assessed' AND judged_verdict <> 'not assessed'
                                THEN ' (the loaded files show no breach; the unread records may hold one)'
                            ELSE ' (its records not judged)' END END,
                       CASE WHEN $reason IS NULL THEN $quarantined END),
                       achieved, breached, active, excluded, warnings, denominator, adherence_pct,
                       CASE WHEN $reason IS NULL THEN codes END
                FROM j""",
            {
                "position": position,
                "rule_id": rule.id,
                "domain": rule.domain,
                "title": rule.title,
                "source_doc": rule.source_doc,
                "source_quote": rule.source_quote,
                "calendar": rule.calendar,
                "target": _target_words(rule, rule_policy, windows),
                "reason": reason,
                "fallback": fallback,
                "met_min": rule.setting("met_min_adherence_pct", rule_policy.met_min_adherence_pct),
                "partial": partly_absent[rule.kind],
                "quarantined": "; ".join(
                    quarantined[source] for source in RULE_SOURCES.get(rule.kind, ()) if source in quarantined
                )
                or None,
                "unread": "; ".join(unusable[source] for source in _unread_sources(rule, inputs) if source in unusable)
                or None,
                **violations_by_rule.get(rule.id, _NO_VIOLATIONS),
            },
        )


# What a rule without violations has of them (the figures of `_violations_by_rule`).
_NO_VIOLATIONS = {"warnings": 0, "breaches": 0, "coverage": None, "codes": None, "words": None}


def _violations_by_rule(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, object]]:
    """Per rule with violations, what its verdict reads of them, from one pass over every violation (not one per
    rule): its warnings and breaches, the first coverage explanation (a rule whose data does not cover what it
    judges is not assessed), and its breaches by cause, most frequent first, as codes and as words."""
    rows = con.execute(
        f"""WITH counts_by_rule AS (
                SELECT rule_id, count(*) FILTER (WHERE severity = 'warning') AS warnings,
                       count(*) FILTER (WHERE severity = 'breach') AS breaches,
                       first(explanation ORDER BY explanation) FILTER (WHERE severity = 'coverage') AS coverage
                FROM violations GROUP BY rule_id),
            breaches_by_cause AS (
                SELECT rule_id, cause, {_CAUSE_WORDS_SQL} AS words, count(*) AS n FROM violations
                WHERE severity = 'breach' GROUP BY ALL),
            causes_by_rule AS (
                SELECT rule_id,
                       string_agg(coalesce(cause, 'unknown') || '=' || n, ';' ORDER BY n DESC, cause) AS codes,
                       string_agg(n || ' ' || words, ', ' ORDER BY n DESC, cause) AS words
                FROM breaches_by_cause GROUP BY rule_id)
            SELECT rule_id, warnings, breaches, coverage, codes, words
            FROM counts_by_rule LEFT JOIN causes_by_rule USING (rule_id)"""
    ).fetchall()
    return {
        rule_id: dict(zip(_NO_VIOLATIONS, figures, strict=True)) for rule_id, *figures in rows if rule_id is not None
    }


def _verdict_rules(policy: Policy, windows: tuple[VersionWindow, ...]) -> list[tuple[Rule, Policy]]:
    """The newest version's rules, then those only older versions of the run have (from the newest that has it)."""
    rules = [(rule, policy) for rule in policy.rules]
    listed = {rule.id for rule in policy.rules}
    for window in reversed(windows[:-1]):
        for rule in window.policy.rules:
            if rule.id not in listed:
                rules.append((rule, window.policy))
                listed.add(rule.id)
    return rules


def _target_words(rule: Rule, policy: Policy, windows: tuple[VersionWindow, ...]) -> str:
    """The rule's target; with the different target of each older version of the run and the items it judged."""
    words = privacy.target_text(rule, policy) or rule.target.describe()
    earlier = []
    for window in windows[:-1]:
        older = next((candidate for candidate in window.policy.rules if candidate.id == rule.id), None)
        if older is None or window.policy is policy:
            continue
        older_words = privacy.target_text(older, window.policy) or older.target.describe()
        if older_words != words:
            earlier.append(
                f"{older_words} for items started before {window.end:%Y-%m-%d} (version {window.policy.version})"
            )
    return "; ".join([words, *earlier])


def _absent_column_reason(con: duckdb.DuckDBPyConnection, kind: str, policy: Policy) -> str | None:
    """Why a rule kind cannot be judged on any record: a column it needs is in none of the loaded files (nor do
    the ticket events that can stand in for it carry the stopping events); None when it can be judged."""
    absent = rule_columns_absent_everywhere(con, kind)
    if absent is None or not RULE_INPUTS[kind].events_stand_in or not table_exists(con, "staged_ticket_events"):
        return absent
    events_reason = events_stop_missing(con, kind, policy)
    return f"{absent}; {events_reason}" if events_reason else None


def _partly_absent_note(con: duckdb.DuckDBPyConnection, kind: str) -> str | None:
    """The files whose records are excluded because they lack a column the rule needs (others carry it)."""
    absent = absent_rule_columns(con, kind)
    return "excluded where " + "; ".join(reason for *_, reason in absent) if absent else None


def _unusable_files(files: list[tuple]) -> dict[str, str]:
    """Per source, its files of ``files`` (ingest_log rows) that could not be used (a new version of a loaded file
    included, whose older version is what is judged), with their problems."""
    unusable: dict[str, list[str]] = {}
    for source, status, file, problem in files:
        if status == "unusable":
            unusable.setdefault(source, []).append(f"{file} is unusable: {problem}")
    return {source: "; ".join(problems) for source, problems in unusable.items()}


def _unread_sources(rule: Rule, inputs: dict[str, tuple]) -> list[str]:
    """The sources whose unusable files hold records a verdict judged on the loaded ones did not read: a source the
    rule needs, when another of its files loaded (else the verdict is "no data" for want of it), and every other
    export that feeds the rule's domain (ticket events, incident updates), which a verdict reads when present."""
    needed = RULE_SOURCES.get(rule.kind, ())
    return [source for source in needed if inputs.get(source, ("missing",))[0] == "loaded"] + [
        source for source in DOMAINS[rule.domain].inputs if source not in needed
    ]


def _quarantined_by_source(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Per source, its quarantined rows that held something of their own (all but exact duplicates of a kept line),
    in words: a verdict judged without them says so, since one of them could have been a breach."""
    if not table_exists(con, "quarantine"):
        return {}
    return {
        source: f"{rows:,} quarantined {'row' if rows == 1 else 'rows'} of {source} not judged (quarantine.csv)"
        for source, rows in con.execute(
            """SELECT l.source, count(*) FROM quarantine q
               JOIN (SELECT DISTINCT source, file FROM ingest_log) l ON l.file = q.source_file
               WHERE q.reason_code <> 'exact_duplicate' GROUP BY l.source"""
        ).fetchall()
    }


def _missing_input_reason(kind: str, inputs: dict[str, tuple]) -> str | None:
    for source in RULE_SOURCES.get(kind, ()):
        status, file, problem = inputs.get(source, ("missing", None, "no export file"))
        if status == "missing":
            return f"no {source} export (looked for {source}.csv, .parquet, .jsonl)"
        if status == "unusable":
            return f"{file} is unusable: {problem}"
    return None
