"""Retention rules (RET-ACCOUNT, RET-AUDIT, RET-BILLING, RET-BACKUP) at the edges."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from conftest import metric_of, ts, violations_of

from compliance.rules import retention

UTC = UTC
violations = partial(violations_of, domain="retention")
metric = partial(metric_of, domain="retention")
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
COLUMNS = (
    "record_id VARCHAR, data_class VARCHAR, workspace_id VARCHAR, account_id VARCHAR, created_at TIMESTAMPTZ, "
    "account_closed_at TIMESTAMPTZ, workspace_deleted_at TIMESTAMPTZ, deleted_at TIMESTAMPTZ, source_file VARCHAR, "
    "source_line BIGINT"
)
AS_OF = datetime(2026, 5, 1, tzinfo=UTC)


def load(con, rows) -> None:
    """rows: (record_id, data_class, created_at, account_closed_at, workspace_deleted_at, deleted_at)"""
    con.execute(f"CREATE OR REPLACE TABLE staged_retention_inventory ({COLUMNS})")
    con.executemany(
        "INSERT INTO staged_retention_inventory VALUES (?, ?, 'W-1', 'AC-1', ?, ?, ?, ?, 'retention_inventory.csv', ?)",
        [(*row, index + 2) for index, row in enumerate(rows)],
    )


def test_missing_table_gives_empty_results(con, policy):
    retention.evaluate(con, policy, AS_OF)
    assert con.execute("SELECT count(*) FROM violations_retention").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM metrics_retention").fetchone()[0] == 0


def test_account_data_after_closure(con, policy):
    closed = ts("2026-03-01 00:00")
    due = closed + 30 * DAY
    load(
        con,
        [
            ("EXACT", "account_data", ts("2020-01-01 00:00"), closed, None, due),
            ("LATE", "account_data", ts("2020-01-01 00:00"), closed, None, due + SECOND),
            ("STORED", "account_data", ts("2020-01-01 00:00"), closed, None, None),
            ("RECENT", "account_data", ts("2020-01-01 00:00"), ts("2026-04-20 00:00"), None, None),
            ("OPEN-ACCOUNT", "account_data", ts("2020-01-01 00:00"), None, None, None),
        ],
    )
    retention.evaluate(con, policy, AS_OF)
    found = violations(con, "RET-ACCOUNT")
    assert set(found) == {"LATE", "STORED"}
    assert (found["LATE"]["due_at"], found["LATE"]["overdue_seconds"]) == (due, 1)
    assert found["LATE"]["explanation"].startswith("Over-retention: account data record LATE of account AC-1")
    assert found["STORED"]["actual_at"] is None
    assert found["STORED"]["overdue_seconds"] == int((AS_OF - due).total_seconds())
    assert "is still stored at 2026-05-01 00:00 UTC" in found["STORED"]["explanation"]
    m = metric(con, "RET-ACCOUNT")
    assert (m["achieved"], m["breached"], m["active"], m["excluded"]) == (1, 2, 1, 1)
    assert metric(con, "RET-ACCOUNT", "2026-03", "data_class=account_data")["denominator"] == 3


def test_audit_log_premature_deletion(con, policy):
    load(
        con,
        [
            ("AFTER-WS", "audit_log", ts("2024-01-01 00:00"), None, ts("2025-06-01 00:00"), ts("2025-06-02 00:00")),
            ("SAME-INSTANT", "audit_log", ts("2024-01-01 00:00"), None, ts("2025-06-01 00:00"), ts("2025-06-01 00:00")),
            ("BEFORE-WS", "audit_log", ts("2024-01-01 00:00"), None, ts("2025-06-01 00:00"), ts("2025-05-01 00:00")),
            ("WS-ALIVE", "audit_log", ts("2024-01-01 00:00"), None, None, ts("2025-05-01 00:00")),
            ("KEPT", "audit_log", ts("2024-01-01 00:00"), None, None, None),
        ],
    )
    retention.evaluate(con, policy, AS_OF)
    found = violations(con, "RET-AUDIT")
    assert set(found) == {"BEFORE-WS", "WS-ALIVE"}
    for record in found.values():
        assert record["severity"] == "breach"
        assert record["explanation"].startswith("PREMATURE DELETION: audit log record ")
        assert record["overdue_seconds"] is None
    assert found["BEFORE-WS"]["due_at"] == ts("2025-06-01 00:00")
    assert "the workspace was deleted only 2025-06-01 00:00 UTC, 31 days later" in found["BEFORE-WS"]["explanation"]
    assert found["WS-ALIVE"]["due_at"] is None
    assert "the workspace is not deleted" in found["WS-ALIVE"]["explanation"]
    m = metric(con, "RET-AUDIT")
    assert (m["achieved"], m["breached"], m["active"]) == (2, 2, 1)


def test_billing_minimum_and_minimisation(con, policy):
    grace = policy.rule("RET-BILLING").setting("minimisation_grace_days")
    created = ts("2018-03-01 00:00")
    keep_until = ts("2025-03-01 00:00")
    load(
        con,
        [
            ("SIX-YEARS", "billing_record", created, None, None, ts("2024-03-01 00:00")),
            ("EXACT-SEVEN", "billing_record", created, None, None, keep_until),
            ("IN-GRACE", "billing_record", created, None, None, keep_until + grace * DAY),
            ("KEPT-PAST-GRACE", "billing_record", ts("2018-01-01 00:00"), None, None, None),
            ("YOUNG", "billing_record", ts("2024-01-01 00:00"), None, None, None),
            ("LEAP", "billing_record", ts("2020-02-29 00:00"), None, None, ts("2027-02-28 00:00") - SECOND),
        ],
    )
    as_of = ts("2025-01-01 00:00") + grace * DAY + DAY  # KEPT-PAST-GRACE: 7 years + grace + 1 day
    retention.evaluate(con, policy, as_of)
    found = violations(con, "RET-BILLING")
    assert set(found) == {"SIX-YEARS", "KEPT-PAST-GRACE"}
    premature = found["SIX-YEARS"]
    assert (premature["severity"], premature["due_at"], premature["actual_at"]) == (
        "breach",
        keep_until,
        ts("2024-03-01 00:00"),
    )
    assert premature["explanation"] == (
        "PREMATURE DELETION: billing record SIX-YEARS created 2018-03-01 00:00 UTC was deleted 2024-03-01 00:00 UTC, "
        "365 days before the end of its 7-year retention period on 2025-03-01 00:00 UTC."
    )
    warning = found["KEPT-PAST-GRACE"]
    assert warning["severity"] == "warning"
    assert warning["due_at"] == ts("2025-01-01 00:00") + grace * DAY
    assert warning["overdue_seconds"] == 86400
    assert warning["explanation"].startswith("Minimisation warning (not a breach)")
    # IN-GRACE and LEAP are deleted after as_of: still stored at as_of (IN-GRACE past 7 years, LEAP before).
    m = metric(con, "RET-BILLING")
    assert (m["achieved"], m["breached"], m["active"]) == (3, 1, 2)


def test_billing_leap_day_and_grace_setting(con, policy):
    load(
        con,
        [
            ("LEAP-EARLY", "billing_record", ts("2020-02-29 00:00"), None, None, ts("2027-02-28 00:00") - SECOND),
            ("LEAP-OK", "billing_record", ts("2020-02-29 00:00"), None, None, ts("2027-02-28 00:00")),
            ("OLD", "billing_record", ts("2010-01-01 00:00"), None, None, None),
        ],
    )
    rules = tuple(
        dataclasses.replace(r, settings={**r.settings, "minimisation_grace_days": 10000})
        if r.id == "RET-BILLING"
        else r
        for r in policy.rules
    )
    retention.evaluate(con, dataclasses.replace(policy, rules=rules), ts("2030-01-01 00:00"))
    found = violations(con, "RET-BILLING")
    assert set(found) == {"LEAP-EARLY"}  # a 10,000-day grace keeps OLD out of the warnings
    assert found["LEAP-EARLY"]["due_at"] == ts("2027-02-28 00:00")


def test_backups_rolling_window(con, policy):
    taken = ts("2026-03-01 00:00")
    load(
        con,
        [
            ("EXACT", "backup", taken, None, None, taken + 30 * DAY),
            ("LATE", "backup", taken, None, None, taken + 30 * DAY + SECOND),
            ("STILL-THERE", "backup", taken, None, None, None),
            ("FRESH", "backup", ts("2026-04-20 00:00"), None, None, None),
            ("NOT-A-BACKUP", "audit_log", ts("2026-04-20 00:00"), None, None, None),
        ],
    )
    retention.evaluate(con, policy, AS_OF)
    found = violations(con, "RET-BACKUP")
    assert set(found) == {"LATE", "STILL-THERE"}
    assert found["LATE"]["overdue_seconds"] == 1
    assert found["LATE"]["explanation"] == (
        "Over-retention: backup LATE taken 2026-03-01 00:00 UTC was purged only 2026-03-31 00:00:01 UTC, 1 s after "
        "the end of its 30-day window on 2026-03-31 00:00 UTC."
    )
    assert found["STILL-THERE"]["actual_at"] is None
    m = metric(con, "RET-BACKUP")
    assert (m["achieved"], m["breached"], m["active"]) == (1, 2, 1)
    assert metric(con, "RET-BACKUP", segment="data_class=backup")["denominator"] == 3
    assert m["median_seconds"] == 30 * 86400 + 0.5  # median of 30 d and 30 d + 1 s
    # every retention rule gets an all/all row even without rows of its data class
    assert metric(con, "RET-BILLING")["denominator"] == 0


@pytest.mark.slow
def test_one_million_records_evaluate_in_seconds(con, policy):
    con.execute(f"CREATE TABLE staged_retention_inventory ({COLUMNS})")
    con.execute(
        """INSERT INTO staged_retention_inventory
           SELECT 'R-' || i, ['account_data', 'audit_log', 'billing_record', 'backup'][1 + i % 4],
                  'W-' || (i % 1000), 'AC-' || (i % 5000), t0,
                  CASE WHEN i % 3 = 0 THEN t0 + to_days(i % 400) END,
                  CASE WHEN i % 5 = 0 THEN t0 + to_days(i % 900) END,
                  CASE WHEN i % 2 = 0 THEN t0 + to_days(i % 3000) END,
                  'retention_inventory.csv', i
           FROM (SELECT i, TIMESTAMPTZ '2016-01-01 00:00:00+00' + to_seconds(i * 300) AS t0 FROM range(1000000) t(i))"""
    )
    started = time.perf_counter()
    retention.evaluate(con, policy, ts("2026-03-01 00:00"))
    elapsed = time.perf_counter() - started
    total = con.execute(
        "SELECT sum(achieved + breached + active + excluded) FROM metrics_retention WHERE period = 'all' AND segment = 'all'"
    ).fetchone()[0]
    assert total == 1_000_000
    print(f"retention: 1M records in {elapsed:.2f} s")
    assert elapsed < 30
