"""Status-page rules (STAT-MAINT-NOTICE, STAT-POSTMORTEM, STAT-LIVE, STAT-HISTORY) and incident_response."""

from __future__ import annotations

import time
from datetime import UTC, timedelta
from functools import partial

import pytest
from conftest import metric_of, ts, violations_of

from compliance.rules import status

UTC = UTC
violations = partial(violations_of, domain="status")
metric = partial(metric_of, domain="status")
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
COLUMNS = (
    "incident_id VARCHAR, kind VARCHAR, severity VARCHAR, started_at TIMESTAMPTZ, acknowledged_at TIMESTAMPTZ, "
    "resolved_at TIMESTAMPTZ, announced_at TIMESTAMPTZ, scheduled_start_at TIMESTAMPTZ, "
    "postmortem_published_at TIMESTAMPTZ, source_file VARCHAR, source_line BIGINT"
)
UPDATE_COLUMNS = "incident_id VARCHAR, posted_at TIMESTAMPTZ, source_file VARCHAR, source_line BIGINT"


def incident(iid, severity, started, acknowledged=None, resolved=None, postmortem=None):
    return (iid, "incident", severity, started, acknowledged, resolved, None, None, postmortem)


def maintenance(iid, scheduled, announced):
    return (iid, "maintenance", None, None, None, None, announced, scheduled, None)


def load(con, rows, updates=None) -> None:
    con.execute(f"CREATE OR REPLACE TABLE staged_incidents ({COLUMNS})")
    if rows:
        con.executemany(
            "INSERT INTO staged_incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'incidents.csv', ?)",
            [(*row, index + 2) for index, row in enumerate(rows)],
        )
    if updates is not None:
        con.execute(f"CREATE OR REPLACE TABLE staged_incident_updates ({UPDATE_COLUMNS})")
        if updates:
            con.executemany(
                "INSERT INTO staged_incident_updates VALUES (?, ?, 'incident_updates.csv', ?)",
                [(*row, index + 2) for index, row in enumerate(updates)],
            )


def test_missing_tables_give_empty_results(con, policy):
    status.evaluate(con, policy, ts("2026-05-01 00:00"))
    for table in ("violations_status", "metrics_status", "incident_response"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_maintenance_notice(con, policy):
    start = ts("2026-04-20 02:00")
    as_of = ts("2026-04-15 00:00")
    load(
        con,
        [
            maintenance("EXACT", start, start - 7 * DAY),
            maintenance("LATE", start, start - 7 * DAY + SECOND),
            maintenance("MISSING", start, None),
            maintenance("FUTURE", ts("2026-06-01 00:00"), None),  # announcement not yet due: active
            incident("INC", "sev2", ts("2026-04-01 00:00")),  # incidents are not judged by this rule
        ],
    )
    status.evaluate(con, policy, as_of)
    found = violations(con, "STAT-MAINT-NOTICE")
    assert set(found) == {"LATE", "MISSING"}
    assert (found["LATE"]["due_at"], found["LATE"]["overdue_seconds"]) == (start - 7 * DAY, 1)
    assert found["LATE"]["explanation"] == (
        "Maintenance LATE scheduled to start 2026-04-20 02:00 UTC was announced 2026-04-13 02:00:01 UTC, only "
        "6 days 23 h 59 min 59 s ahead: the 7-day notice required an announcement by 2026-04-13 02:00 UTC "
        "(1 s late)."
    )
    assert found["MISSING"]["actual_at"] is None
    assert found["MISSING"]["overdue_seconds"] == int((as_of - (start - 7 * DAY)).total_seconds())
    m = metric(con, "STAT-MAINT-NOTICE")
    assert (m["achieved"], m["breached"], m["active"]) == (1, 2, 1)
    assert metric(con, "STAT-MAINT-NOTICE", "2026-04")["denominator"] == 3


def test_postmortem(con, policy):
    resolved = ts("2026-04-01 12:00")
    grace_end = resolved + 14 * DAY
    load(
        con,
        [
            incident("EXACT", "sev1", resolved - DAY, resolved - DAY, resolved, grace_end),
            incident("LATE", "sev1", resolved - DAY, resolved - DAY, resolved, grace_end + SECOND),
            incident("MISSING", "sev2", resolved - DAY, resolved - DAY, resolved, None),
            incident("IN-GRACE", "sev2", ts("2026-04-20 00:00"), None, ts("2026-04-25 00:00"), None),
            incident("UNRESOLVED", "sev2", ts("2026-04-20 00:00")),
            maintenance("MAINT", ts("2026-04-01 00:00"), ts("2026-03-01 00:00")),
        ],
    )
    as_of = ts("2026-05-01 00:00")
    status.evaluate(con, policy, as_of)
    found = violations(con, "STAT-POSTMORTEM")
    assert set(found) == {"LATE", "MISSING"}
    assert found["LATE"]["overdue_seconds"] == 1
    assert found["MISSING"]["actual_at"] is None
    assert found["MISSING"]["overdue_seconds"] == int((as_of - grace_end).total_seconds())
    assert "has no published post-mortem" in found["MISSING"]["explanation"]
    m = metric(con, "STAT-POSTMORTEM")
    assert (m["achieved"], m["breached"], m["active"], m["excluded"]) == (1, 2, 1, 0)
    assert metric(con, "STAT-POSTMORTEM", segment="severity=sev1")["breached"] == 1


def test_live_updates_gaps(con, policy):
    s = ts("2026-04-10 08:00")
    hour = timedelta(hours=1)
    as_of = ts("2026-04-10 20:00")
    load(
        con,
        [
            incident("EXACT", "sev1", s, resolved=s + 2 * hour),
            incident("LATE-POST-IGNORED", "sev1", s, resolved=s + 2 * hour),
            incident("NO-UPDATES", "sev2", s, resolved=s + hour + SECOND),
            incident("SILENT-OPEN", "sev2", s),
            incident("OPEN-FRESH", "sev3", as_of - 30 * MINUTE),
        ],
        updates=[
            ("EXACT", s + hour),
            ("EXACT", s + 2 * hour),  # an update at the resolution instant is harmless
            ("LATE-POST-IGNORED", s + hour),
            ("LATE-POST-IGNORED", s + 2 * hour + SECOND),  # posted after resolution: ignored
            ("LATE-POST-IGNORED", s + 30 * MINUTE),
            ("SILENT-OPEN", s + 10 * MINUTE),
            ("UNKNOWN", s),
        ],
    )
    status.evaluate(con, policy, as_of)
    found = violations(con, "STAT-LIVE")
    assert set(found) == {"NO-UPDATES", "SILENT-OPEN"}
    no_updates = found["NO-UPDATES"]
    assert (no_updates["due_at"], no_updates["actual_at"], no_updates["overdue_seconds"]) == (
        s + hour,
        s + hour + SECOND,
        1,
    )
    assert no_updates["explanation"] == (
        "Incident NO-UPDATES (severity sev2) started 2026-04-10 08:00 UTC had no public update for 1 h 1 s between "
        "its start at 2026-04-10 08:00 UTC and its resolution at 2026-04-10 09:00:01 UTC, 1 s more than the "
        "60-minute maximum silence (an update was due by 2026-04-10 09:00 UTC)."
    )
    silent = found["SILENT-OPEN"]
    assert silent["actual_at"] is None
    assert silent["due_at"] == s + 10 * MINUTE + hour
    assert silent["overdue_seconds"] == int((as_of - (s + 70 * MINUTE)).total_seconds())
    assert "still open at 2026-04-10 20:00 UTC" in silent["explanation"]
    m = metric(con, "STAT-LIVE")
    assert (m["achieved"], m["breached"], m["active"]) == (2, 2, 1)
    assert metric(con, "STAT-LIVE", segment="severity=sev1")["max_seconds"] == 3600


def test_live_updates_without_updates_table_has_no_data(con, policy):
    load(con, [incident("I", "sev1", ts("2026-04-10 08:00"), resolved=ts("2026-04-10 12:00"))])
    status.evaluate(con, policy, ts("2026-05-01 00:00"))
    assert violations(con, "STAT-LIVE") == {}
    assert con.execute("SELECT count(*) FROM metrics_status WHERE rule_id = 'STAT-LIVE'").fetchone()[0] == 0
    metric(con, "STAT-POSTMORTEM")


def test_history_coverage(con, policy):
    as_of = ts("2026-05-01 00:00")
    period_start = as_of - 90 * DAY
    load(con, [incident("OLD", "sev1", period_start)])
    status.evaluate(con, policy, as_of)
    assert violations(con, "STAT-HISTORY") == {}
    assert metric(con, "STAT-HISTORY")["achieved"] == 1

    load(con, [incident("LATE-START", "sev1", period_start + SECOND), incident("X", "sev2", as_of - DAY)])
    status.evaluate(con, policy, as_of)
    finding = violations(con, "STAT-HISTORY")["incidents"]
    assert finding["severity"] == "coverage"
    assert (finding["due_at"], finding["actual_at"], finding["overdue_seconds"]) == (
        period_start,
        period_start + SECOND,
        1,
    )
    assert "is not covered by the data" in finding["explanation"]
    assert metric(con, "STAT-HISTORY")["excluded"] == 1

    load(con, [])
    status.evaluate(con, policy, as_of)
    finding = violations(con, "STAT-HISTORY")["incidents"]
    assert finding["actual_at"] is None and "contains no incidents" in finding["explanation"]


def test_incident_response(con, policy):
    s = ts("2026-03-05 00:00")
    load(
        con,
        [
            incident("A", "sev1", s, s + 10 * MINUTE, s + timedelta(hours=2)),
            incident("B", "sev1", s, s + 20 * MINUTE, s + timedelta(hours=4)),
            incident("C", "sev2", ts("2026-04-05 00:00"), None, None),
            maintenance("M", ts("2026-03-10 00:00"), ts("2026-03-01 00:00")),
        ],
    )
    status.evaluate(con, policy, ts("2026-05-01 00:00"))
    cursor = con.execute("SELECT * FROM incident_response")
    names = [d[0] for d in cursor.description]
    rows = {(r[0], r[1]): dict(zip(names, r, strict=False)) for r in cursor.fetchall()}
    assert set(rows) == {
        ("all", "all"),
        ("all", "sev1"),
        ("all", "sev2"),
        ("2026-03", "all"),
        ("2026-03", "sev1"),
        ("2026-04", "all"),
        ("2026-04", "sev2"),
    }
    sev1 = rows[("2026-03", "sev1")]
    assert (sev1["incidents"], sev1["acknowledged"], sev1["resolved"]) == (2, 2, 2)
    assert sev1["mtta_median_seconds"] == 900 and sev1["mttr_median_seconds"] == 3 * 3600
    assert sev1["mtta_p90_seconds"] == pytest.approx(1140)
    assert rows[("all", "all")]["incidents"] == 3
    assert rows[("2026-04", "sev2")]["mtta_median_seconds"] is None


@pytest.mark.slow
def test_one_million_incidents_evaluate_in_seconds(con, policy):
    con.execute(f"CREATE TABLE staged_incidents ({COLUMNS})")
    con.execute(
        """INSERT INTO staged_incidents
           SELECT 'I-' || i, CASE WHEN i % 10 = 0 THEN 'maintenance' ELSE 'incident' END,
                  'sev' || (1 + i % 3), t0, t0 + to_seconds(i % 3600), t0 + to_seconds(3600 + i % 20000),
                  t0 - to_seconds((i % 12) * 86400), t0, t0 + to_seconds(3600 + (i % 30) * 86400),
                  'incidents.csv', i
           FROM (SELECT i, TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 29) AS t0 FROM range(1000000) t(i))"""
    )
    con.execute(f"CREATE TABLE staged_incident_updates ({UPDATE_COLUMNS})")
    con.execute(
        """INSERT INTO staged_incident_updates
           SELECT 'I-' || (i // 3), TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds((i // 3) * 29 + (i % 3 + 1) * 1500),
                  'incident_updates.csv', i
           FROM range(3000000) t(i)"""
    )
    started = time.perf_counter()
    status.evaluate(con, policy, ts("2026-03-01 00:00"))
    elapsed = time.perf_counter() - started
    m = metric(con, "STAT-LIVE")
    assert m["achieved"] + m["breached"] + m["active"] == 900_000
    print(f"status: 1M incidents + 3M updates in {elapsed:.2f} s")
    assert elapsed < 60
