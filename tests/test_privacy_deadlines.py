"""GDPR calendar-month deadlines (PRIV-COMPLETE, PRIV-EXTEND under ``day_counting: calendar_month``).

Reg. 1182/71 Art. 3(2)(c): a period of months ends with the expiry of the last hour of the day that, in the last
month, has the date of the day it runs from, or of that month's last day when it has none; in the controller's
zone. The due instant is that expiry (24:00 of the last day, the next day's first instant): a completion at
exactly that instant is on time, one second later is a breach. Expected values are computed by hand.
"""

from __future__ import annotations

import calendar
import dataclasses
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from conftest import html_section, ts, violations_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.ingest.staging import QUARANTINE_COLUMNS
from compliance.policy import POLICY_DIR, Policy, PolicyError, load_policy
from compliance.rules import privacy
from reports.compliance_report import ReportData, render_compliance_report

COLUMNS = (
    "request_id VARCHAR, request_type VARCHAR, received_at TIMESTAMPTZ, first_response_at TIMESTAMPTZ, "
    "completed_at TIMESTAMPTZ, extended BOOLEAN, extension_notified_at TIMESTAMPTZ, status VARCHAR, "
    "source_file VARCHAR, source_line BIGINT"
)
AS_OF = ts("2035-01-01 00:00")


def month_policy(
    zone: str = "Europe/Berlin",
    *,
    roll_forward: bool = False,
    months: int | None = None,
    extension_months: int | None = None,
    counting: str = "calendar_month",
) -> Policy:
    policy = load_policy("platform")
    complete = {"day_counting": counting, "controller_timezone": zone, "roll_forward_closed_days": roll_forward}
    if months is not None:
        complete["calendar_months"] = months
    extend = {} if extension_months is None else {"extension_months": extension_months}
    changes = {"PRIV-COMPLETE": complete, "PRIV-EXTEND": extend}
    rules = tuple(
        dataclasses.replace(rule, settings={**rule.settings, **changes.get(rule.id, {})}) for rule in policy.rules
    )
    return dataclasses.replace(policy, rules=rules)


def load(con, rows) -> None:
    """rows: (request_id, received_at, completed_at, extended, notified_at)"""
    con.execute(f"CREATE TABLE IF NOT EXISTS quarantine ({QUARANTINE_COLUMNS})")
    con.execute(f"CREATE OR REPLACE TABLE staged_privacy_requests ({COLUMNS})")
    con.executemany(
        "INSERT INTO staged_privacy_requests VALUES (?, 'access', ?, NULL, ?, ?, ?, 'open', 'privacy_requests.csv', ?)",
        [(*row, index + 2) for index, row in enumerate(rows)],
    )


def due_of(con, policy: Policy, received: list[datetime], extended: bool = False) -> list[datetime]:
    """The deadline each open request is judged against (extended ones notified at receipt: a valid extension)."""
    load(con, [(f"R{i}", at, None, extended, at if extended else None) for i, at in enumerate(received)])
    privacy.evaluate(con, policy, AS_OF)
    rows = dict(con.execute("SELECT request_id, due_at FROM privacy_backlog").fetchall())
    return [rows[f"R{i}"] for i in range(len(received))]


# received (UTC) -> due (UTC), controller in Europe/Berlin (CET +1, CEST +2 from 2026-03-29 and 2028-03-26).
BERLIN_EDGES = [
    ("2026-01-31 10:00", "2026-02-28 23:00"),  # the 31st: end of 28 Feb (24:00 CET)
    ("2026-01-31 22:30", "2026-02-28 23:00"),  # 23:30 local on the 31st: the same day
    ("2026-01-31 23:30", "2026-03-01 23:00"),  # already 00:30 on 1 Feb local: end of 1 Mar
    ("2026-03-14 23:00", "2026-04-15 22:00"),  # exactly local midnight of 15 Mar: end of 15 Apr (CEST)
    ("2026-03-01 10:00", "2026-04-01 22:00"),  # across the spring change: 24:00 CEST, not 10:00 + 1 month
    ("2026-03-28 23:30", "2026-04-29 22:00"),  # 00:30 CET on 29 Mar, the day of the change
    ("2026-10-10 10:00", "2026-11-10 23:00"),  # across the autumn change: 24:00 CET
    ("2028-01-31 12:00", "2028-02-29 23:00"),  # leap year: 29 Feb
    ("2028-02-29 10:00", "2028-03-29 22:00"),  # from 29 Feb: 29 Mar, CEST
    ("2026-12-31 10:00", "2027-01-31 23:00"),  # over the year end
    ("2026-05-31 10:00", "2026-06-30 22:00"),  # 31 May: June has 30 days
]


@pytest.mark.parametrize("received, due", BERLIN_EDGES)
def test_one_calendar_month_in_the_controller_zone(con, received, due):
    assert due_of(con, month_policy(), [ts(received)]) == [ts(due)]


def test_completion_exactly_at_the_end_of_the_last_day_is_on_time(con):
    received, due = ts("2026-01-31 10:00"), ts("2026-02-28 23:00")
    load(
        con,
        [
            ("LAST-SECOND", received, due - timedelta(seconds=1), False, None),
            ("EXACT", received, due, False, None),
            ("ONE-SECOND", received, due + timedelta(seconds=1), False, None),
        ],
    )
    privacy.evaluate(con, month_policy(), AS_OF)
    found = violations_of(con, "PRIV-COMPLETE", domain="privacy")
    assert set(found) == {"ONE-SECOND"}
    assert (found["ONE-SECOND"]["due_at"], found["ONE-SECOND"]["overdue_seconds"]) == (due, 1)
    assert found["ONE-SECOND"]["explanation"] == (
        "Privacy request ONE-SECOND (access) received 2026-01-31 10:00 UTC was completed 2026-02-28 23:00:01 UTC, "
        "1 s after the one-calendar-month deadline of 2026-02-28 23:00 UTC (the end of 2026-02-28 in "
        "Europe/Berlin, Reg. 1182/71 Art. 3(2)(c))."
    )


@pytest.mark.parametrize(
    "zone, received, due",
    [
        # Chile: 6 Sep 2026 00:00 is skipped (-04 -> -03); 5 Sep ends at the change, 04:00 UTC.
        ("America/Santiago", "2026-08-05 12:00", "2026-09-06 04:00"),
        # Cuba: 3 Nov 2019 00:00-01:00 happens twice (01:00 CDT -> 00:00 CST); 2 Nov ends at the first, -04.
        ("America/Havana", "2019-10-02 12:00", "2019-11-03 04:00"),
        ("UTC", "2026-01-31 10:00", "2026-03-01 00:00"),
        ("Asia/Kolkata", "2026-01-31 20:00", "2026-03-01 18:30"),  # 01:30 on 1 Feb local: end of 1 Mar, +05:30
    ],
)
def test_local_midnight_skipped_or_repeated_by_dst(con, zone, received, due):
    assert due_of(con, month_policy(zone), [ts(received)]) == [ts(due)]


def test_extension_is_two_further_months_from_the_original_last_day(con):
    # 31 Jan -> original last day 28 Feb -> two further months: 28 Apr (not 30 Apr, not 28 Feb + 60 days).
    assert due_of(con, month_policy(), [ts("2026-01-31 10:00")], extended=True) == [ts("2026-04-28 22:00")]
    assert due_of(con, month_policy(extension_months=1), [ts("2026-01-31 10:00")], extended=True) == [
        ts("2026-03-28 23:00")
    ]  # CET: the change is on 29 Mar
    # 30 Nov -> 30 Dec -> 28 Feb (February has no 30th), over the year end.
    assert due_of(con, month_policy(), [ts("2026-11-30 10:00")], extended=True) == [ts("2027-02-28 23:00")]


def test_extension_validity_and_explanations_under_calendar_months(con):
    received, original, extended = ts("2026-01-31 10:00"), ts("2026-02-28 23:00"), ts("2026-04-28 22:00")
    load(
        con,
        [
            ("NOTIFIED-AT-DUE", received, extended + timedelta(seconds=1), True, original),
            ("NOTIFIED-LATE", received, None, True, original + timedelta(seconds=1)),
        ],
    )
    privacy.evaluate(con, month_policy(), AS_OF)
    found = violations_of(con, "PRIV-EXTEND", domain="privacy")
    valid = found["NOTIFIED-AT-DUE"]
    assert (valid["due_at"], valid["overdue_seconds"]) == (extended, 1)
    assert valid["explanation"].endswith(
        "1 s after the extended one-calendar-month + two-month deadline of 2026-04-28 22:00 UTC (the end of "
        "2026-04-28 in Europe/Berlin, GDPR Art. 12(3), Reg. 1182/71 Art. 3(2)(c))."
    )
    late = found["NOTIFIED-LATE"]
    assert (late["due_at"], late["overdue_seconds"]) == (original, 1)
    assert (
        "1 s after the original one-calendar-month deadline of 2026-02-28 23:00 UTC (the end of 2026-02-28 in "
        "Europe/Berlin, Reg. 1182/71 Art. 3(2)(c)). The request is judged"
    ) in late["explanation"]
    assert violations_of(con, "PRIV-COMPLETE", domain="privacy")["NOTIFIED-LATE"]["due_at"] == original


def test_weekend_last_day_moves_to_monday_under_art_3_4(con):
    rolled = month_policy(roll_forward=True)
    # 28 Feb 2026 is a Saturday: the period ends with Monday 2 Mar.
    assert due_of(con, rolled, [ts("2026-01-31 10:00")]) == [ts("2026-03-02 23:00")]
    # The extension runs from the original last day (28 Feb), not the moved one: 28 Apr, a Tuesday.
    assert due_of(con, rolled, [ts("2026-01-31 10:00")], extended=True) == [ts("2026-04-28 22:00")]
    # 2 Feb -> Mon 2 Mar -> extended to Sat 2 May -> Mon 4 May.
    assert due_of(con, rolled, [ts("2026-02-02 10:00")], extended=True) == [ts("2026-05-04 22:00")]
    # Sunday 29 Mar 2026, the day of the spring change -> Monday 30 Mar, 24:00 CEST.
    assert due_of(con, rolled, [ts("2026-02-28 12:00")]) == [ts("2026-03-30 22:00")]


def test_days_counting_is_unchanged_by_the_controller_zone(con):
    days = month_policy(counting="days")
    # 30 x 24 h and 90 x 24 h on the UTC timeline, same time of day, whatever the zone.
    assert due_of(con, days, [ts("2026-01-31 10:00")]) == [ts("2026-03-02 10:00")]
    assert due_of(con, days, [ts("2026-01-31 10:00")], extended=True) == [ts("2026-05-01 10:00")]


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="controller_timezone: unknown time zone 'Mars/Olympus'"):
        privacy.counting_readings(month_policy("Mars/Olympus"))
    with pytest.raises(ValueError, match="day_counting must be 'days' or 'calendar_month'"):
        privacy.counting_readings(month_policy(counting="weeks"))


def test_the_report_names_the_counting_rule_applied():
    readings = privacy.counting_readings(month_policy(roll_forward=True))
    assert readings["PRIV-COMPLETE"] == (
        "1 calendar month, ending at the end of the corresponding day (or of the month's last day when it has "
        "none), Reg. 1182/71 Art. 3(2)(c), in Europe/Berlin; a last day on a Saturday or Sunday moves to the next "
        "Monday (Reg. 1182/71 Art. 3(4); public holidays not considered)"
    )
    assert readings["PRIV-EXTEND"] == (
        "the original deadline's last day + 2 further calendar months (GDPR Art. 12(3)), to the end of the "
        "corresponding day, Reg. 1182/71 Art. 3(2)(c), in Europe/Berlin; only when flagged and notified by the "
        "original deadline"
    )
    platform = privacy.counting_readings(load_policy("platform"))
    assert platform["PRIV-COMPLETE"] == "30 days (30 × 24 h on the UTC timeline)"
    assert platform["PRIV-EXTEND"].startswith("the original deadline + 60 days (60 × 24 h)")
    assert platform["PRIV-TYPES"].startswith("every request row read has one of the types erasure, access")

    empty = pl.DataFrame()
    page = render_compliance_report(
        ReportData(
            policy=month_policy(),
            manifest={"run_id": "r", "as_of": None, "policy": {}, "inputs": [], "versions": {}, "period": {}},
            verdicts=empty,
            metrics=empty,
            violations=empty,
            violations_total=0,
            quarantine_summary=empty,
            at_risk=empty,
            generated_at=datetime(2026, 3, 1, tzinfo=UTC),
        )
    )
    section = html_section(page, "domain-privacy")
    assert "Counted as: 1 calendar month, ending at the end of the corresponding day" in section
    assert "Reg. 1182/71 Art. 3(2)(c), in Europe/Berlin" in section


# --- against a slow, obvious reference ------------------------------------------------------------------------


def months_later(day: date, months: int) -> date:
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def end_of_local_day(day: date, zone: ZoneInfo) -> datetime:
    """The first instant whose local date is after ``day``: of the two readings of the next local midnight (one
    per side of a DST change), the earliest one before which the local date is still ``day`` or earlier."""
    following = day + timedelta(days=1)
    candidates = sorted(
        datetime(following.year, following.month, following.day, fold=fold, tzinfo=zone).astimezone(UTC)
        for fold in (0, 1)
    )
    just_before = timedelta(microseconds=1)
    return next(
        c
        for c in candidates
        if c.astimezone(zone).date() >= following and (c - just_before).astimezone(zone).date() <= day
    )


def reference_due(
    received: datetime, zone: str, months: int, roll_forward: bool, extension_months: int | None
) -> datetime:
    tz = ZoneInfo(zone)
    last_day = months_later(received.astimezone(tz).date(), months)
    if extension_months is not None:
        last_day = months_later(last_day, extension_months)
    while roll_forward and last_day.weekday() >= 5:
        last_day += timedelta(days=1)
    return end_of_local_day(last_day, tz)


# Zones whose rules the tz database of DuckDB (ICU) and of Python agree on for these years; Havana has a midnight
# that happens twice, Santiago one that is skipped, Lord Howe half-hour changes, Apia skipped 30 Dec 2011.
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "America/Havana",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Asia/Kolkata",
]
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2025, 6, 30), timezones=st.just(UTC))
# Receipts at and around local midnights of the month ends, where the arithmetic has its edges.
edge_instants = st.builds(
    lambda day, zone_index, minutes: (
        datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(ZONES[zone_index])).astimezone(UTC)
        + timedelta(minutes=minutes)
    ),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2025, 6, 30)).filter(lambda d: d.day >= 28 or d.day == 1),
    st.integers(0, len(ZONES) - 1),
    st.integers(-90, 90),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    zone=st.sampled_from(ZONES),
    months=st.integers(1, 3),
    extension_months=st.none() | st.integers(1, 3),
    roll_forward=st.booleans(),
    received=st.lists(instants | edge_instants, min_size=1, max_size=80),
)
def test_calendar_month_deadlines_match_the_reference(con, zone, months, extension_months, roll_forward, received):
    policy = month_policy(zone, roll_forward=roll_forward, months=months, extension_months=extension_months or 2)
    found = due_of(con, policy, received, extended=extension_months is not None)
    assert found == [reference_due(at, zone, months, roll_forward, extension_months) for at in received]


def test_the_verdict_table_states_calendar_months_not_days():
    policy = month_policy()
    assert privacy.target_text(policy.rule("PRIV-COMPLETE"), policy) == "1 calendar month (Reg. 1182/71 Art. 3(2)(c))"
    assert (
        privacy.target_text(policy.rule("PRIV-EXTEND"), policy)
        == "3 calendar months with the extension (GDPR Art. 12(3))"
    )
    days = month_policy(counting="days")
    assert privacy.target_text(days.rule("PRIV-COMPLETE"), days) is None  # Target.describe: "30 days"


def test_an_unknown_controller_zone_is_refused_when_the_policy_loads(tmp_path):
    text = (POLICY_DIR / "platform.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "p.yaml"
    broken.write_text(text.replace("controller_timezone: UTC", "controller_timezone: Mars/Olympus"), encoding="utf-8")
    with pytest.raises(
        PolicyError,
        match=r"p\.yaml: rules\.PRIV-COMPLETE\.settings\.controller_timezone: unknown time zone 'Mars/Olympus'",
    ):
        load_policy(broken)
