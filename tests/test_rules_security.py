"""Security disclosure rules (SEC-ACK, SEC-TIMELINE, SEC-EMBARGO) at the edges."""

from __future__ import annotations

import time
from datetime import UTC, timedelta
from functools import partial

import pytest
from conftest import metric_of, ts, violations_of

from compliance.rules import security

UTC = UTC
violations = partial(violations_of, domain="security")
metric = partial(metric_of, domain="security")
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
COLUMNS = (
    "report_id VARCHAR, received_at TIMESTAMPTZ, acknowledged_at TIMESTAMPTZ, timeline_sent_at TIMESTAMPTZ, "
    "fixed_at TIMESTAMPTZ, disclosed_at TIMESTAMPTZ, embargo_extended_until TIMESTAMPTZ, source_file VARCHAR, "
    "source_line BIGINT"
)


def load(con, rows) -> None:
    """rows: (report_id, received_at, acknowledged_at, timeline_sent_at, disclosed_at, embargo_extended_until)"""
    con.execute(f"CREATE OR REPLACE TABLE staged_security_reports ({COLUMNS})")
    con.executemany(
        "INSERT INTO staged_security_reports VALUES (?, ?, ?, ?, NULL, ?, ?, 'security_reports.csv', ?)",
        [(*row, index + 2) for index, row in enumerate(rows)],
    )


def test_missing_table_gives_empty_results(con, policy):
    security.evaluate(con, policy, ts("2026-05-01 00:00"))
    assert con.execute("SELECT count(*) FROM violations_security").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM metrics_security").fetchone()[0] == 0
    assert (
        len(con.execute("DESCRIBE metrics_security").fetchall()) == 15
    )  # the contract's metrics columns, waived included


def test_acknowledgment_and_timeline_edges(con, policy):
    r = ts("2026-01-10 12:00")
    as_of = ts("2026-01-20 00:00")
    load(
        con,
        [
            ("ON-TIME", r, r + DAY, r + 7 * DAY, r + DAY, None),
            ("LATE", r, r + DAY + SECOND, r + 7 * DAY + SECOND, r + DAY, None),
            ("NEVER", r, None, None, r + DAY, None),
            ("FRESH", ts("2026-01-19 12:00"), None, None, None, None),  # both deadlines still ahead
        ],
    )
    security.evaluate(con, policy, as_of)
    ack = violations(con, "SEC-ACK")
    assert set(ack) == {"LATE", "NEVER"}
    assert (ack["LATE"]["due_at"], ack["LATE"]["overdue_seconds"], ack["LATE"]["severity"]) == (r + DAY, 1, "breach")
    assert ack["LATE"]["explanation"] == (
        "Security report LATE received 2026-01-10 12:00 UTC was acknowledged 2026-01-11 12:00:01 UTC, 1 s after "
        "the 24-hour deadline of 2026-01-11 12:00 UTC."
    )
    assert ack["NEVER"]["actual_at"] is None
    assert ack["NEVER"]["overdue_seconds"] == int((as_of - r - DAY).total_seconds())
    timeline = violations(con, "SEC-TIMELINE")
    assert set(timeline) == {"LATE", "NEVER"}
    assert timeline["LATE"]["overdue_seconds"] == 1
    assert "7-day deadline" in timeline["LATE"]["explanation"]
    m = metric(con, "SEC-ACK")
    assert (m["achieved"], m["breached"], m["active"], m["denominator"]) == (1, 2, 1, 3)
    assert m["adherence_pct"] == pytest.approx(100 / 3)
    assert metric(con, "SEC-ACK", "2026-01")["denominator"] == 3


def test_embargo(con, policy):
    r = ts("2026-01-01 00:00")
    due = r + 90 * DAY
    as_of = ts("2026-06-01 00:00")
    load(
        con,
        [
            ("EXACT", r, r, r, due, None),
            ("LATE", r, r, r, due + SECOND, None),
            ("UNDISCLOSED", r, r, r, None, None),
            ("EXTENDED-OK", r, r, r, ts("2026-05-15 00:00"), ts("2026-05-15 00:00")),
            ("EXTENDED-OPEN", r, r, r, None, ts("2026-07-01 00:00")),  # agreed date still ahead: active
            ("EXTENDED-LATE", r, r, r, None, ts("2026-05-01 00:00")),
        ],
    )
    security.evaluate(con, policy, as_of)
    found = violations(con, "SEC-EMBARGO")
    assert set(found) == {"LATE", "UNDISCLOSED", "EXTENDED-LATE"}
    assert found["LATE"]["overdue_seconds"] == 1
    assert found["UNDISCLOSED"]["actual_at"] is None
    assert found["UNDISCLOSED"]["overdue_seconds"] == int((as_of - due).total_seconds())
    assert "still not publicly disclosed" in found["UNDISCLOSED"]["explanation"]
    assert found["EXTENDED-LATE"]["due_at"] == ts("2026-05-01 00:00")
    assert "agreed extended embargo deadline of 2026-05-01 00:00 UTC" in found["EXTENDED-LATE"]["explanation"]
    m = metric(con, "SEC-EMBARGO")
    assert (m["achieved"], m["breached"], m["active"]) == (2, 3, 1)


@pytest.mark.slow
def test_one_million_reports_evaluate_in_seconds(con, policy):
    con.execute(f"CREATE TABLE staged_security_reports ({COLUMNS})")
    con.execute(
        """INSERT INTO staged_security_reports
           SELECT 'S-' || i, t0, t0 + to_seconds((i % 30) * 3600), t0 + to_seconds((i % 9) * 86400), NULL,
                  CASE WHEN i % 5 <> 0 THEN t0 + to_seconds((i % 100) * 86400) END,
                  CASE WHEN i % 11 = 0 THEN t0 + to_days(120) END, 'security_reports.csv', i
           FROM (SELECT i, TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 29) AS t0 FROM range(1000000) t(i))"""
    )
    started = time.perf_counter()
    security.evaluate(con, policy, ts("2026-03-01 00:00"))
    elapsed = time.perf_counter() - started
    m = metric(con, "SEC-ACK")
    assert m["achieved"] + m["breached"] + m["active"] == 1_000_000
    print(f"security: 1M reports in {elapsed:.2f} s")
    assert elapsed < 30
