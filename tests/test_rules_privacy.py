"""Privacy rules (PRIV-RESP, PRIV-COMPLETE, PRIV-EXTEND, PRIV-TYPES) and the privacy backlog, at the edges."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, timedelta
from functools import partial

import pytest
from conftest import metric_of, ts, violations_of, write

from compliance.ingest.staging import QUARANTINE_COLUMNS, ingest_source
from compliance.policy import Policy, load_policy
from compliance.rules import privacy

UTC = UTC
violations = partial(violations_of, domain="privacy")
metric = partial(metric_of, domain="privacy")
COLUMNS = (
    "request_id VARCHAR, request_type VARCHAR, received_at TIMESTAMPTZ, first_response_at TIMESTAMPTZ, "
    "completed_at TIMESTAMPTZ, extended BOOLEAN, extension_notified_at TIMESTAMPTZ, status VARCHAR, "
    "source_file VARCHAR, source_line BIGINT"
)
VIOLATION_SCHEMA = [
    ("rule_id", "VARCHAR"),
    ("domain", "VARCHAR"),
    ("record_id", "VARCHAR"),
    ("due_at", "TIMESTAMP WITH TIME ZONE"),
    ("actual_at", "TIMESTAMP WITH TIME ZONE"),
    ("overdue_seconds", "BIGINT"),
    ("severity", "VARCHAR"),
    ("explanation", "VARCHAR"),
    ("cause", "VARCHAR"),
]
METRIC_SCHEMA = [
    ("rule_id", "VARCHAR"),
    ("domain", "VARCHAR"),
    ("period", "VARCHAR"),
    ("segment", "VARCHAR"),
    ("achieved", "BIGINT"),
    ("breached", "BIGINT"),
    ("active", "BIGINT"),
    ("excluded", "BIGINT"),
    ("denominator", "BIGINT"),
    ("adherence_pct", "DOUBLE"),
    ("median_seconds", "DOUBLE"),
    ("p90_seconds", "DOUBLE"),
    ("p95_seconds", "DOUBLE"),
    ("max_seconds", "DOUBLE"),
    ("waived", "BIGINT"),
]
DAY = timedelta(days=1)


def with_settings(policy: Policy, rule_id: str, **settings) -> Policy:
    rules = tuple(
        dataclasses.replace(rule, settings={**rule.settings, **settings}) if rule.id == rule_id else rule
        for rule in policy.rules
    )
    return dataclasses.replace(policy, rules=rules)


def load(con, rows) -> None:
    """rows: (request_id, request_type, received_at, first_response_at, completed_at, extended, notified_at)

    The warehouse has its (empty) quarantine table, as after any ingest."""
    con.execute(f"CREATE TABLE IF NOT EXISTS quarantine ({QUARANTINE_COLUMNS})")
    con.execute(f"CREATE OR REPLACE TABLE staged_privacy_requests ({COLUMNS})")
    con.executemany(
        "INSERT INTO staged_privacy_requests VALUES (?, ?, ?, ?, ?, ?, ?, 'open', 'privacy_requests.csv', ?)",
        [(*row, index + 2) for index, row in enumerate(rows)],
    )


def schema(con, table: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]


def test_missing_staged_table_gives_empty_results(con, policy):
    privacy.evaluate(con, policy, ts("2026-05-01 00:00"))
    assert schema(con, "violations_privacy") == VIOLATION_SCHEMA
    assert schema(con, "metrics_privacy") == METRIC_SCHEMA
    for table in ("violations_privacy", "metrics_privacy", "privacy_backlog"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    assert [c for c, _ in schema(con, "privacy_backlog")][:5] == [
        "request_id",
        "request_type",
        "status",
        "received_at",
        "first_response_at",
    ]


def test_first_response_edges(con, policy):
    received = ts("2026-03-02 10:00")
    due = received + 7 * DAY
    as_of = ts("2026-03-12 00:00")
    load(
        con,
        [
            ("ON-TIME", "access", received, due, None, False, None),
            ("LATE", "access", received, due + timedelta(seconds=1), None, False, None),
            ("OPEN-OVERDUE", "erasure", received, None, None, False, None),
            ("OPEN-ACTIVE", "erasure", ts("2026-03-10 00:00"), None, None, False, None),
            ("AFTER-AS-OF", "erasure", received, as_of + DAY, None, False, None),  # response after as_of: not yet
        ],
    )
    privacy.evaluate(con, policy, as_of)
    found = violations(con, "PRIV-RESP")
    assert set(found) == {"LATE", "OPEN-OVERDUE", "AFTER-AS-OF"}
    late = found["LATE"]
    assert (late["due_at"], late["actual_at"], late["overdue_seconds"], late["severity"]) == (
        due,
        due + timedelta(seconds=1),
        1,
        "breach",
    )
    assert late["explanation"] == (
        "Privacy request LATE (access) received 2026-03-02 10:00 UTC got its first response "
        "2026-03-09 10:00:01 UTC, 1 s after the 7-day deadline of 2026-03-09 10:00 UTC."
    )
    overdue = found["OPEN-OVERDUE"]
    assert overdue["actual_at"] is None
    assert overdue["overdue_seconds"] == int((as_of - due).total_seconds())
    assert "had no first response by 2026-03-12 00:00 UTC" in overdue["explanation"]
    m = metric(con, "PRIV-RESP")
    assert (m["achieved"], m["breached"], m["active"], m["excluded"], m["denominator"]) == (1, 3, 1, 0, 4)
    assert m["adherence_pct"] == pytest.approx(25.0)
    assert m["max_seconds"] == 7 * 86400 + 1
    assert m["domain"] == "privacy"


def test_completion_days_example_explanation_and_edges(con, policy):
    received = ts("2026-03-02 10:00")
    due = received + 30 * DAY
    load(
        con,
        [
            ("PR-00042", "erasure", received, received + DAY, ts("2026-04-05 09:12"), False, None),
            ("EXACT", "access", received, received + DAY, due, False, None),
            ("ONE-SECOND", "access", received, received + DAY, due + timedelta(seconds=1), False, None),
        ],
    )
    privacy.evaluate(con, policy, ts("2026-06-01 00:00"))
    found = violations(con, "PRIV-COMPLETE")
    assert set(found) == {"PR-00042", "ONE-SECOND"}
    assert found["PR-00042"]["explanation"] == (
        "Privacy request PR-00042 (erasure) received 2026-03-02 10:00 UTC was completed 2026-04-05 09:12 UTC, "
        "3 days 23 h 12 min after the 30-day deadline of 2026-04-01 10:00 UTC."
    )
    assert found["PR-00042"]["overdue_seconds"] == 3 * 86400 + 23 * 3600 + 12 * 60
    assert found["ONE-SECOND"]["overdue_seconds"] == 1
    m = metric(con, "PRIV-COMPLETE")
    assert (m["achieved"], m["breached"], m["denominator"]) == (1, 2, 3)
    assert m["median_seconds"] == 30 * 86400 + 1
    assert metric(con, "PRIV-COMPLETE", "2026-03", "request_type=access")["achieved"] == 1


def calendar_month_policy(tmp_path, roll_forward: bool = False) -> Policy:
    text = (load_policy("platform").path).read_text(encoding="utf-8")
    assert "day_counting: days" in text
    text = text.replace("day_counting: days", "day_counting: calendar_month")
    if roll_forward:
        text = text.replace("roll_forward_closed_days: false", "roll_forward_closed_days: true")
    path = tmp_path / "calendar-month.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path)


def test_calendar_month_counting(con, tmp_path):
    # Reg. 1182/71 Art. 3(2)(c): the month ends at the end of the corresponding day (controller zone UTC here),
    # whatever the time of receipt; the last day of a shorter month when it has no such day.
    policy = calendar_month_policy(tmp_path)
    load(
        con,
        [
            ("JAN31", "access", ts("2026-01-31 10:00"), None, None, False, None),
            ("LEAP-JAN31", "access", ts("2028-01-31 10:00"), None, None, False, None),
            ("LEAP-DAY", "access", ts("2028-02-29 10:00"), None, None, False, None),
            ("MID", "access", ts("2026-03-15 08:30"), None, ts("2026-04-15 23:59:59"), False, None),
            ("MID-EXACT", "access", ts("2026-03-15 08:30"), None, ts("2026-04-16 00:00"), False, None),
            ("MID-LATE", "access", ts("2026-03-15 08:30"), None, ts("2026-04-16 00:00:01"), False, None),
        ],
    )
    privacy.evaluate(con, policy, ts("2029-01-01 00:00"))
    found = violations(con, "PRIV-COMPLETE")
    assert found["JAN31"]["due_at"] == ts("2026-03-01 00:00")
    assert found["LEAP-JAN31"]["due_at"] == ts("2028-03-01 00:00")
    assert found["LEAP-DAY"]["due_at"] == ts("2028-03-30 00:00")
    assert "MID" not in found and "MID-EXACT" not in found  # the end of the last day is the due instant
    assert found["MID-LATE"]["overdue_seconds"] == 1
    assert found["MID-LATE"]["explanation"] == (
        "Privacy request MID-LATE (access) received 2026-03-15 08:30 UTC was completed 2026-04-16 00:00:01 UTC, "
        "1 s after the one-calendar-month deadline of 2026-04-16 00:00 UTC (the end of 2026-04-15 in UTC, "
        "Reg. 1182/71 Art. 3(2)(c))."
    )


def test_calendar_month_roll_forward_from_weekend(con, tmp_path):
    policy = calendar_month_policy(tmp_path, roll_forward=True)
    load(
        con,
        [
            # last day Sat 2026-02-28 -> Mon 2026-03-02 (Art. 3(4)), due at its end
            ("JAN31", "access", ts("2026-01-31 10:00"), None, ts("2026-03-03 00:00"), False, None),
            ("JAN31-LATE", "access", ts("2026-01-31 10:00"), None, ts("2026-03-03 00:00:01"), False, None),
            ("WEEKDAY", "access", ts("2028-01-31 10:00"), None, None, False, None),  # Tue 2028-02-29 stays
        ],
    )
    privacy.evaluate(con, policy, ts("2029-01-01 00:00"))
    found = violations(con, "PRIV-COMPLETE")
    assert set(found) == {"JAN31-LATE", "WEEKDAY"}
    assert found["JAN31-LATE"]["due_at"] == ts("2026-03-03 00:00")
    assert found["JAN31-LATE"]["explanation"].endswith(
        "deadline of 2026-03-03 00:00 UTC (the end of 2026-03-02 in UTC, Reg. 1182/71 Art. 3(2)(c)) (the deadline "
        "2026-03-01 00:00 UTC fell on a weekend and moved to the next Monday, Reg. 1182/71 Art. 3(4))."
    )
    assert found["WEEKDAY"]["due_at"] == ts("2028-03-01 00:00")


def test_roll_forward_with_day_counting_days(con, policy):
    rolled = with_settings(policy, "PRIV-COMPLETE", roll_forward_closed_days=True)
    load(con, [("SAT", "access", ts("2026-03-05 10:00"), None, None, False, None)])  # +30 d = Sat 2026-04-04
    privacy.evaluate(con, rolled, ts("2026-05-01 00:00"))
    assert violations(con, "PRIV-COMPLETE")["SAT"]["due_at"] == ts("2026-04-06 10:00")
    privacy.evaluate(con, policy, ts("2026-05-01 00:00"))
    assert violations(con, "PRIV-COMPLETE")["SAT"]["due_at"] == ts("2026-04-04 10:00")


def test_extensions(con, policy):
    received = ts("2026-01-05 09:00")
    original = received + 30 * DAY
    extended = received + 90 * DAY
    load(
        con,
        [
            ("EXT-OK", "access", received, received + DAY, extended, True, original),  # notified exactly on time
            ("EXT-OK-LATE", "access", received, received + DAY, extended + timedelta(seconds=1), True, original),
            (
                "EXT-NOTICE-LATE",
                "erasure",
                received,
                received + DAY,
                received + 40 * DAY,
                True,
                original + timedelta(seconds=1),
            ),
            ("EXT-NEVER", "erasure", received, received + DAY, None, True, None),
            ("EXT-UNNEEDED", "erasure", received, received + DAY, received + 10 * DAY, True, None),
        ],
    )
    privacy.evaluate(con, policy, ts("2026-06-01 00:00"))
    extend = violations(con, "PRIV-EXTEND")
    assert set(extend) == {"EXT-OK-LATE", "EXT-NOTICE-LATE", "EXT-NEVER"}
    assert (extend["EXT-OK-LATE"]["due_at"], extend["EXT-OK-LATE"]["overdue_seconds"]) == (extended, 1)
    assert "validly extended" in extend["EXT-OK-LATE"]["explanation"]
    assert "extended 90-day deadline" in extend["EXT-OK-LATE"]["explanation"]
    late = extend["EXT-NOTICE-LATE"]
    assert (late["due_at"], late["actual_at"], late["overdue_seconds"]) == (
        original,
        original + timedelta(seconds=1),
        1,
    )
    assert "does not count" in late["explanation"] and "1 s after the original 30-day deadline" in late["explanation"]
    never = extend["EXT-NEVER"]
    assert never["actual_at"] is None and never["due_at"] == original
    assert "never notified" in never["explanation"]
    assert never["overdue_seconds"] == int((ts("2026-06-01 00:00") - original).total_seconds())

    complete = violations(con, "PRIV-COMPLETE")
    # A valid extension moves the request out of PRIV-COMPLETE; invalid ones are judged on the original deadline.
    assert set(complete) == {"EXT-NOTICE-LATE", "EXT-NEVER"}
    assert complete["EXT-NOTICE-LATE"]["overdue_seconds"] == 10 * 86400
    assert "notified of it only" in complete["EXT-NOTICE-LATE"]["explanation"]
    m = metric(con, "PRIV-COMPLETE")
    assert (m["achieved"], m["breached"], m["active"], m["excluded"]) == (1, 2, 0, 2)
    m = metric(con, "PRIV-EXTEND")
    assert (m["achieved"], m["breached"], m["active"], m["excluded"]) == (1, 3, 0, 1)


def test_extension_pending_before_original_deadline_is_active(con, policy):
    received = ts("2026-04-20 00:00")
    load(con, [("PENDING", "access", received, received + DAY, None, True, None)])
    privacy.evaluate(con, policy, ts("2026-05-01 00:00"))
    assert violations(con) == {}
    assert metric(con, "PRIV-EXTEND")["active"] == 1
    assert metric(con, "PRIV-COMPLETE")["active"] == 1


def test_types_metrics_and_backlog(con, policy):
    as_of = ts("2026-05-01 00:00")
    load(
        con,
        [
            ("A", "access", ts("2026-04-21 00:00"), None, None, False, None),  # due 05-21: 20 days left
            ("B", "erasure", ts("2026-03-01 00:00"), ts("2026-03-02 00:00"), None, False, None),  # overdue since 03-31
            ("C", "erasure", ts("2026-03-01 00:00"), ts("2026-03-02 00:00"), None, True, ts("2026-03-20 00:00")),
            ("D", "objection", ts("2026-02-01 00:00"), ts("2026-02-02 00:00"), ts("2026-02-11 00:00"), False, None),
            ("E", "access", as_of + DAY, None, None, False, None),  # received after as_of: not read yet
        ],
    )
    privacy.evaluate(con, policy, as_of)
    types = policy.rule("PRIV-TYPES").setting("request_types")
    segments = {
        r[0]
        for r in con.execute(
            "SELECT segment FROM metrics_privacy WHERE rule_id = 'PRIV-TYPES' AND period = 'all'"
        ).fetchall()
    }
    assert segments == {"all"} | {f"request_type={t}" for t in types}
    assert metric(con, "PRIV-TYPES", segment="request_type=portability")["denominator"] == 0
    assert metric(con, "PRIV-TYPES", segment="request_type=portability")["adherence_pct"] is None
    # Types, never timeliness: B is overdue under PRIV-COMPLETE, yet its type is recognised.
    erasure = metric(con, "PRIV-TYPES", segment="request_type=erasure")
    assert (erasure["achieved"], erasure["breached"], erasure["active"]) == (2, 0, 0)
    whole = metric(con, "PRIV-TYPES")
    assert (whole["achieved"], whole["breached"], whole["active"], whole["excluded"]) == (4, 0, 0, 1)
    assert whole["median_seconds"] is None  # no durations: those are PRIV-COMPLETE's figures
    assert metric(con, "PRIV-TYPES", "2026-02", "request_type=objection")["achieved"] == 1
    assert "PRIV-TYPES" not in {v["rule_id"] for v in violations(con).values()}
    for rule in ("PRIV-RESP", "PRIV-COMPLETE", "PRIV-EXTEND", "PRIV-TYPES"):
        metric(con, rule)  # an all/all row for every rule

    backlog = {
        r[0]: r
        for r in con.execute(
            "SELECT request_id, due_at, days_left, deadline_rule FROM privacy_backlog ORDER BY due_at"
        ).fetchall()
    }
    assert set(backlog) == {"A", "B", "C"}
    assert backlog["A"][1:] == (ts("2026-05-21 00:00"), 20.0, "PRIV-COMPLETE")
    assert backlog["B"][1:] == (ts("2026-03-31 00:00"), -31.0, "PRIV-COMPLETE")
    assert backlog["C"][1:] == (ts("2026-05-30 00:00"), 29.0, "PRIV-EXTEND")


PRIVACY_HEADER = (
    "request_id,request_type,received_at,first_response_at,completed_at,extended,extension_notified_at,status\n"
)


def test_types_counts_rows_quarantined_for_their_type_through_ingest(con, tmp_path, policy):
    """The real ingest quarantines the rows; PRIV-TYPES reads them back from its quarantine table."""
    long_value = "x" * 70
    write(
        tmp_path / "privacy_requests.csv",
        PRIVACY_HEADER
        + "\n".join(
            [
                "P1,access,2026-03-02T10:00:00Z,,2026-06-30T00:00:00Z,,,completed",  # line 2: late, type recognised
                "P2,erasure,2026-03-03T10:00:00Z,,,,,open",
                "P3,fax request,2026-03-02T10:00:00Z,,,,,open",  # unknown type
                "P4,,2026-03-02T10:00:00Z,,,,,open",  # no type
                ",ERASE; received_at: x,yesterday,,,maybe,,open",  # no ID, unknown type, two more problems
                "P6,Access,not a time,,,,,open",  # type recognised (any case), quarantined for its timestamp
                "P2,erasure,2026-03-03T10:00:00Z,,,,,open",  # exact duplicate: counted once, on line 3
                f"P8,{long_value},2026-03-02T10:00:00Z,,2026-03-01T10:00:00Z,,,open",  # unknown type, completed too early
                "P9,access",  # malformed: its type is never read
            ]
        )
        + "\n",
    )
    ingest_source(con, "privacy_requests", tmp_path, policy)
    privacy.evaluate(con, policy, ts("2026-07-01 00:00"))

    m = metric(con, "PRIV-TYPES")
    assert (m["achieved"], m["breached"], m["active"], m["excluded"], m["denominator"]) == (3, 4, 0, 2, 7)
    unrecognised = metric(con, "PRIV-TYPES", segment="request_type=unrecognised")
    assert (unrecognised["achieved"], unrecognised["breached"]) == (0, 4)
    assert metric(con, "PRIV-TYPES", segment="request_type=access")["achieved"] == 1  # P6 is in no type segment
    found = violations(con, "PRIV-TYPES")
    recognised = "erasure, access, portability, rectification, restriction, objection"
    assert set(found) == {"P3", "P4", "P8", "privacy_requests.csv line 6"}
    assert found["P3"]["explanation"] == (
        f'Privacy request P3 (privacy_requests.csv line 4) has the request type "fax request", which is not one of '
        f"the recognised types ({recognised}); the row is quarantined, so no other privacy rule judges it."
    )
    assert found["P4"]["explanation"] == (
        "Privacy request P4 (privacy_requests.csv line 5) has no request type; the row is quarantined, so no other "
        "privacy rule judges it."
    )
    assert found["privacy_requests.csv line 6"]["explanation"].startswith(
        'Privacy request without an ID (privacy_requests.csv line 6) has the request type "ERASE", which'
    )
    assert f'the request type "{"x" * 39}…", which' in found["P8"]["explanation"]  # a type name, cut
    assert all(v["severity"] == "breach" and v["due_at"] is None for v in found.values())
    # PRIV-COMPLETE keeps its own figures, on the two loaded rows: P1 completed late, P2 open past its deadline.
    complete = metric(con, "PRIV-COMPLETE")
    assert (complete["achieved"], complete["breached"]) == (0, 2)


def test_types_without_a_quarantine_table_is_not_silent(con, policy):
    con.execute(f"CREATE TABLE staged_privacy_requests ({COLUMNS})")
    con.execute(
        "INSERT INTO staged_privacy_requests VALUES ('P1', 'access', TIMESTAMPTZ '2026-03-02 10:00:00+00', "
        "NULL, NULL, false, NULL, 'open', 'privacy_requests.csv', 2)"
    )
    privacy.evaluate(con, policy, ts("2026-03-10 00:00"))
    coverage = violations(con, "PRIV-TYPES")["privacy_requests"]
    assert coverage["severity"] == "coverage"
    assert "no quarantine table" in coverage["explanation"]
    assert metric(con, "PRIV-TYPES")["achieved"] == 1


@pytest.mark.slow
def test_one_million_requests_evaluate_in_seconds(con, policy):
    con.execute(f"CREATE TABLE staged_privacy_requests ({COLUMNS})")
    con.execute(
        """INSERT INTO staged_privacy_requests
           SELECT 'PR-' || i,
                  ['erasure', 'access', 'portability', 'rectification', 'restriction', 'objection'][1 + i % 6],
                  TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 31),
                  TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 31 + (i % 9) * 86400),
                  CASE WHEN i % 10 = 0 THEN NULL
                       ELSE TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 31 + (i % 50) * 86400) END,
                  i % 7 = 0,
                  CASE WHEN i % 14 = 0 THEN TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 31 + (i % 40) * 86400) END,
                  'open', 'privacy_requests.csv', i
           FROM range(1000000) t(i)"""
    )
    started = time.perf_counter()
    privacy.evaluate(con, policy, ts("2026-03-01 00:00"))
    elapsed = time.perf_counter() - started
    assert (
        metric(con, "PRIV-TYPES")["achieved"]
        + metric(con, "PRIV-TYPES")["breached"]
        + metric(con, "PRIV-TYPES")["active"]
        == 1_000_000
    )
    assert con.execute("SELECT count(*) FROM violations_privacy").fetchone()[0] > 0
    print(f"privacy: 1M requests in {elapsed:.2f} s")
    assert elapsed < 30
