"""The compliance report page: completeness, escaping, self-containment, determinism, atomic publishing."""

from __future__ import annotations

import dataclasses
import os
import re
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from conftest import HOSTILE_IMG, HOSTILE_SCRIPT, html_section, utc, without_plotlyjs

from compliance.core.files import publish_atomically
from compliance.policy import Rule, Target, load_policy
from reports.compliance_report import ReportData, change_periods, period_changes, render_compliance_report
from reports.formatting import format_adherence, format_timestamp, human_duration


@pytest.fixture(scope="module")
def policy():
    return load_policy("platform")


def _verdicts(policy, *, hostile: bool = True) -> pl.DataFrame:
    figures = {
        # rule_id: (verdict, reason, achieved, breached, active, excluded)
        "SUP-ACCT-STD": ("breached", "", 4402, 99, 7, 3),
        "SUP-ACCT-PRIO": ("met", "", 120, 0, 1, 0),
        "SUP-TECH-STD": ("breached", "", 300, 12, 0, 0),
        "SEC-ACK": ("met", "", 14, 0, 0, 0),
        "SEC-TIMELINE": ("breached", "", 10, 4, 0, 0),
        "STAT-POSTMORTEM": ("breached", "", 5, 1, 0, 0),
        "STAT-HISTORY": ("not assessed", "incident export covers only 60 of 90 days", 0, 0, 0, 0),
        "RET-ACCOUNT": ("met", "", 800, 0, 0, 0),
    }
    rows = []
    for rule in policy.rules:
        verdict, reason, achieved, breached, active, excluded = figures.get(
            rule.id, ("no data", "privacy_requests.csv is missing" if rule.domain == "privacy" else "", 0, 0, 0, 0)
        )
        denominator = achieved + breached
        title = rule.title
        if hostile and rule.id == "SUP-ACCT-STD":
            title = f"{HOSTILE_SCRIPT} {HOSTILE_IMG} {rule.title}"
        rows.append(
            {
                "rule_id": rule.id,
                "domain": rule.domain,
                "title": title,
                "source_doc": rule.source_doc,
                "source_quote": rule.source_quote,
                "calendar": rule.calendar,
                "target": rule.target.describe(),
                "verdict": verdict,
                "reason": reason,
                "achieved": achieved,
                "breached": breached,
                "active": active,
                "excluded": excluded,
                "denominator": denominator,
                "adherence_pct": (100.0 * achieved / denominator) if denominator else None,
            }
        )
    return pl.DataFrame(
        rows,
        schema_overrides={"denominator": pl.Int64, "adherence_pct": pl.Float64},
    )


def _metrics() -> pl.DataFrame:
    rows = []

    def add(rule_id, domain, period, segment, achieved, breached, active=0, median=None):
        denominator = achieved + breached
        rows.append(
            {
                "rule_id": rule_id,
                "domain": domain,
                "period": period,
                "segment": segment,
                "achieved": achieved,
                "breached": breached,
                "active": active,
                "excluded": 0,
                "denominator": denominator,
                "adherence_pct": (100.0 * achieved / denominator) if denominator else None,
                "median_seconds": median,
                "p90_seconds": None if median is None else median * 2,
                "p95_seconds": None if median is None else median * 3,
                "max_seconds": None if median is None else median * 5,
            }
        )

    add("SUP-ACCT-STD", "tickets", "all", "all", 4402, 99, 7, 11520.0)
    add("SUP-ACCT-STD", "tickets", "2024-01", "all", 2200, 60, 0, 12000.0)
    add("SUP-ACCT-STD", "tickets", "2024-02", "all", 2202, 39, 7, 11000.0)
    add("SUP-ACCT-STD", "tickets", "all", "channel=account_billing;tier=standard;plan=free", 3000, 80, 5, 13000.0)
    add("SUP-ACCT-PRIO", "tickets", "all", "all", 120, 0, 1, 3600.0)
    add("SUP-ACCT-PRIO", "tickets", "2024-01", "all", 60, 0, 0, 3500.0)
    add("SUP-ACCT-PRIO", "tickets", "2024-02", "all", 60, 0, 1, 3700.0)
    add("SEC-ACK", "security", "all", "all", 14, 0, 0, 7200.0)
    return pl.DataFrame(rows, schema_overrides={"denominator": pl.Int64, "adherence_pct": pl.Float64})


def _violations(*, hostile: bool = True) -> pl.DataFrame:
    record = f"T-1 {HOSTILE_SCRIPT}" if hostile else "T-1"
    explanation = f"first response 3 h late {HOSTILE_IMG}" if hostile else "first response 3 h late"
    return pl.DataFrame(
        {
            "rule_id": ["SUP-ACCT-STD", "SEC-TIMELINE", "STAT-POSTMORTEM"],
            "domain": ["tickets", "security", "status"],
            "record_id": [record, "SR-7", "INC-3"],
            "due_at": [utc(2024, 1, 2, 10, 0, 0), utc(2024, 2, 1, 0, 0, 0), utc(2024, 2, 20, 12, 0, 0)],
            "actual_at": [utc(2024, 1, 2, 13, 12, 0), None, None],
            "overdue_seconds": [11520.0, 864000.0, 3600.0],
            "severity": ["breach", "breach", "breach"],
            "explanation": [explanation, "no fix timeline sent", "post-mortem missing after grace period"],
        },
        schema_overrides={"due_at": pl.Datetime("us", "UTC"), "actual_at": pl.Datetime("us", "UTC")},
    )


def _at_risk() -> pl.DataFrame:
    count = 60
    return pl.DataFrame(
        {
            "record_id": [f"T-{1000 + i}" for i in range(count)],
            "rule_id": ["SUP-ACCT-STD"] * count,
            "due_at": [utc(2024, 3, 1, 0, 0, 0)] * count,
            # given in reverse order: the page must order by time remaining
            "remaining_seconds": [float(11520 + 60 * (count - i)) for i in range(count)],
        },
        schema_overrides={"due_at": pl.Datetime("us", "UTC")},
    )


def _manifest(policy) -> dict:
    return {
        "run_id": "run-2024-03-01-abc",
        "as_of": "2024-03-01T00:00:00Z",
        "policy": {"path": "policies/platform.yaml", "sha256": policy.sha256},
        "inputs": [
            {
                "file": "tickets.csv",
                "sha256": "a" * 64,
                "rows_read": 4700,
                "rows_loaded": 4690,
                "rows_quarantined": 10,
                "status": "loaded",
                "problem": "",
            },
            {
                "file": "privacy_requests.csv",
                "sha256": None,
                "rows_read": 0,
                "rows_loaded": 0,
                "rows_quarantined": 0,
                "status": "missing",
                "problem": "file not found in the export folder",
            },
            {
                "file": "security_reports.csv",
                "sha256": "b" * 64,
                "rows_read": 18,
                "rows_loaded": 18,
                "rows_quarantined": 0,
                "status": "loaded",
                "problem": "",
            },
            {
                "file": "incidents.jsonl",
                "sha256": "c" * 64,
                "rows_read": 5,
                "rows_loaded": 0,
                "rows_quarantined": 5,
                "status": "unusable",
                "problem": f"required column started_at absent {HOSTILE_IMG}",
            },
        ],
        "versions": {"polars": "2.1.0", "plotly": "7.1.0", "jinja2": "3.1.6"},
        "period": {"start": "2024-01-01T00:00:00Z", "end": "2024-02-29T23:59:59Z"},
    }


def _data(policy, *, hostile: bool = True, generated_at: datetime | None = None) -> ReportData:
    return ReportData(
        policy=policy,
        manifest=_manifest(policy),
        verdicts=_verdicts(policy, hostile=hostile),
        metrics=_metrics(),
        violations=_violations(hostile=hostile),
        violations_total=1234,
        quarantine_summary=pl.DataFrame(
            {
                "source_file": ["tickets.csv", "tickets.csv"],
                "reason": ["unparseable created_at", "unknown channel"],
                "rows": [7, 3],
            }
        ),
        at_risk=_at_risk(),
        generated_at=generated_at or utc(2024, 3, 1, 6, 30, 0),
    )


@pytest.fixture(scope="module")
def page(policy) -> str:
    return render_compliance_report(_data(policy))


def test_every_rule_appears_in_the_verdict_table_in_policy_order(policy, page):
    table = html_section(page, "verdicts")
    ids = re.findall(r'<tr id="rule-([^"]+)">', table)
    assert ids == [rule.id for rule in policy.rules]
    assert len(ids) == len(policy.rules) > 0


def test_verdict_table_shows_badges_figures_and_denominator_rule(page):
    table = html_section(page, "verdicts")
    assert "denominator = achieved + breached" in table
    assert "97.8% (4,402 / 4,501)" in table
    for badge in (
        'badge met">met',
        'badge breached">breached',
        'badge nodata">no data',
        'badge notassessed">not assessed',
    ):
        assert badge in table
    assert "incident export covers only 60 of 90 days" in table
    assert "CAL-BH-EST" in table


def test_hostile_strings_are_escaped_everywhere(page):
    body = without_plotlyjs(page)
    assert "<script>alert(1)" not in body
    assert "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    # Every <script> element is ours: the library, the PlotlyConfig line, one per chart, and the table script.
    opening = re.findall(r"<script\b", body)
    closing = re.findall(r"</script>", body)
    assert len(opening) == len(closing)


def test_chart_json_cannot_close_the_script_element(page):
    body = without_plotlyjs(page)
    chart_scripts = [s for s in re.findall(r"<script>(.*?)</script>", body, re.S) if "Plotly.newPlot" in s]
    assert chart_scripts, "expected at least one chart"
    tickets_chart = next(s for s in chart_scripts if '"chart-tickets"' in s)
    # the hostile rule title is in the hover text, in escaped form
    assert "alert(1)" in tickets_chart
    for script in chart_scripts:
        assert "</script" not in script.lower()
        assert "<script" not in script.lower()
        assert "<img" not in script.lower()


def test_plotlyjs_is_inlined_exactly_once_in_the_head(page):
    head = page.split("</head>", 1)[0]
    assert page.count("* plotly.js v") == 1
    assert "* plotly.js v" in head
    assert page.count('<script id="plotlyjs">') == 1


def test_no_external_resources(page):
    body = without_plotlyjs(page)
    assert not re.search(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", body, re.I)
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", body, re.I)
    assert not re.search(r"<link\b", body, re.I)
    assert "@import" not in body
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", body, re.I)
    assert "cdn.plot.ly" not in body


def test_no_data_domain_is_stated_plainly(page):
    privacy = html_section(page, "domain-privacy")
    assert "No data" in privacy
    assert "privacy_requests.csv (missing)" in privacy
    assert "not a finding of compliance" in privacy
    assert "Plotly.newPlot" not in privacy
    for domain in ("tickets", "privacy", "security", "status", "retention"):
        assert f'<section id="domain-{domain}"' in page


def test_tickets_section_has_monthly_chart_and_other_domains_bars(page):
    tickets = html_section(page, "domain-tickets")
    assert 'id="chart-tickets"' in tickets
    assert "2024-01" in tickets and "2024-02" in tickets
    assert 'id="chart-security"' in html_section(page, "domain-security")
    assert "3 h 12 min" in tickets  # the headline median of SUP-ACCT-STD


def test_inputs_section_names_unusable_and_missing_files(page):
    coverage = html_section(page, "coverage")
    alert = re.search(r'<div class="alert">(.*?)</div>', coverage, re.S).group(1)
    assert "privacy_requests.csv" in alert and "file not found in the export folder" in alert
    assert "incidents.jsonl" in alert and "required column started_at absent" in alert
    assert "tickets.csv" not in alert
    assert "unparseable created_at" in coverage and "unknown channel" in coverage
    assert "aaaaaaaaaaaa" in coverage


def test_at_risk_lists_top_50_by_time_remaining(page):
    section = html_section(page, "at-risk")
    records = re.findall(r"<code>(T-\d+)</code>", section)
    assert len(records) == 50
    assert records[0] == "T-1059" and records[-1] == "T-1010"
    assert "Showing 50 of 60" in section
    assert "3 h 13 min" in section  # 11580 s


def test_violations_table_and_counts(page):
    section = html_section(page, "violations")
    assert "Showing 3 of 1,234 violations" in section
    assert "evidence/violations.csv" in section
    assert "still open" in section
    assert "10 d" in section
    assert "2024-01-02 13:12:00 UTC" in section
    assert 'id="violation-filter"' in section and 'id="violation-domain"' in section
    assert '<option value="security">security</option>' in section


def test_header_and_provenance(policy, page):
    header = page.split('<section id="verdicts"', 1)[0]
    for text in (
        "run-2024-03-01-abc",
        "2024-03-01 00:00:00 UTC",
        "2024-01-01 00:00:00 UTC",
        "2024-02-29 23:59:59 UTC",
        "policies/platform.yaml",
        policy.sha256,
        "2024-03-01 06:30:00 UTC",
        policy.title,
    ):
        assert text in header
    provenance = html_section(page, "provenance")
    assert "b" * 64 in provenance
    assert "2.1.0" in provenance and "plotly" in provenance


def test_rendering_is_deterministic(policy):
    first = render_compliance_report(_data(policy))
    second = render_compliance_report(_data(policy))
    assert first == second
    other_time = render_compliance_report(_data(policy, generated_at=utc(2025, 1, 1)))
    assert other_time.replace("2025-01-01 00:00:00 UTC", "2024-03-01 06:30:00 UTC") == first


def test_missing_verdict_row_is_not_assessed_not_dropped(policy):
    data = _data(policy, hostile=False)
    data.verdicts = data.verdicts.filter(pl.col("rule_id") != "RET-BACKUP")
    page = render_compliance_report(data)
    row = re.search(r'<tr id="rule-RET-BACKUP">(.*?)</tr>', page, re.S).group(1)
    assert "not assessed" in row and "no result" in row


def test_formatting_helpers():
    assert human_duration(11520) == "3 h 12 min"
    assert human_duration(45) == "45 s"
    assert human_duration(3 * 86400 + 4 * 3600 + 5) == "3 d 4 h"
    assert human_duration(None) == "—"
    assert format_adherence(4402, 4501) == "97.8% (4,402 / 4,501)"
    assert format_adherence(9999, 10000) == "99.9% (9,999 / 10,000)"  # never rounded up to 100%
    assert format_adherence(0, 0) == "— (0 / 0)"
    assert format_timestamp(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02 03:04:05 UTC"
    assert format_timestamp("2024-01-02T05:04:05+02:00") == "2024-01-02 03:04:05 UTC"


def test_publish_atomically_writes_and_replaces(tmp_path: Path):
    target = tmp_path / "compliance_report.html"
    publish_atomically("<p>old</p>", target)
    publish_atomically("<p>new ✓</p>", target)
    assert target.read_text(encoding="utf-8") == "<p>new ✓</p>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compliance_report.html"]


def test_old_report_survives_a_failed_render(policy, tmp_path: Path):
    target = tmp_path / "compliance_report.html"
    publish_atomically("<p>old</p>", target)
    broken = _data(policy)
    broken.verdicts = pl.DataFrame({"rule_id": ["SUP-ACCT-STD"], "achieved": ["not a number"]})
    with pytest.raises(Exception):  # noqa: B017 - whatever the renderer raises, the old page must stay
        publish_atomically(render_compliance_report(broken), target)
    assert target.read_text(encoding="utf-8") == "<p>old</p>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compliance_report.html"]


def test_failed_publish_leaves_old_file_and_no_temp_files(tmp_path: Path, monkeypatch):
    target = tmp_path / "compliance_report.html"
    publish_atomically("<p>old</p>", target)
    # a write that fails half-way (text that cannot be encoded)
    with pytest.raises(UnicodeEncodeError):
        publish_atomically("<p>new \ud800</p>", target)

    # a rename that fails
    def failing_replace(src, dst):
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        publish_atomically("<p>new</p>", target)
    monkeypatch.undo()
    assert target.read_text(encoding="utf-8") == "<p>old</p>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compliance_report.html"]


def test_empty_run_renders_every_domain_as_no_data(policy):
    empty = pl.DataFrame()
    data = ReportData(
        policy=policy,
        manifest={"run_id": "r", "as_of": None, "policy": {}, "inputs": [], "versions": {}, "period": {}},
        verdicts=empty,
        metrics=empty,
        violations=empty,
        violations_total=0,
        quarantine_summary=empty,
        at_risk=empty,
        generated_at=utc(2024, 3, 1),
    )
    page = render_compliance_report(data)
    table = html_section(page, "verdicts")
    assert re.findall(r'<tr id="rule-([^"]+)">', table) == [rule.id for rule in policy.rules]
    assert table.count('badge notassessed">not assessed') == len(policy.rules)
    for domain in ("tickets", "privacy", "security", "status", "retention"):
        assert "No data" in html_section(page, f"domain-{domain}")
    assert "Plotly.newPlot" not in without_plotlyjs(page)
    assert "Showing 0 of 0 violations" in page


def test_a_further_domain_used_by_the_policy_gets_its_ownhtml_section(policy):
    extra = Rule(
        id="TG-NO-SECRETS",
        domain="data_quality",
        kind="secrets_in_text",
        title="Messages do not carry passwords or PINs",
        source_doc=policy.rules[0].source_doc,
        source_quote="",
        target=Target(),
        calendar=None,
    )
    extended = dataclasses.replace(policy, rules=policy.rules + (extra,))
    page = render_compliance_report(_data(extended, hostile=False))
    ids = re.findall(r'<tr id="rule-([^"]+)">', html_section(page, "verdicts"))
    assert ids[-1] == "TG-NO-SECRETS" and len(ids) == len(extended.rules)
    section = html_section(page, "domain-data_quality")
    assert "TG-NO-SECRETS" in section and "No data" in section


def test_verdict_table_shows_the_change_against_the_month_before(page):
    table = html_section(page, "verdicts")
    assert "2024-02 vs</span><br>2024-01" in table
    rows = dict(re.findall(r'<tr id="rule-([^"]+)">(.*?)</tr>', table, re.S))
    # 2024-02: 2,202 / 2,241 = 98.2%; 2024-01: 2,200 / 2,260 = 97.3% (both cut): +0.9 points
    assert "change-up" in rows["SUP-ACCT-STD"] and "▲</span> +0.9 pp" in rows["SUP-ACCT-STD"]
    assert "98.2% vs 97.3%" in rows["SUP-ACCT-STD"]
    assert "2024-02: 98.2% (2,202 / 2,241); 2024-01: 97.3% (2,200 / 2,260)" in rows["SUP-ACCT-STD"]
    assert "change-flat" in rows["SUP-ACCT-PRIO"] and "0.0 pp" in rows["SUP-ACCT-PRIO"]
    assert re.search(r'<td class="num change change-none">—</td>', rows["SEC-ACK"])  # no monthly figures


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        ("2024-03-01T00:00:00Z", ("2024-01", "2024-02")),  # the as-of month has not begun
        ("2024-03-20T08:00:00+00:00", ("2024-01", "2024-02")),  # a partial month is never compared
        (utc(2025, 1, 5), ("2024-11", "2024-12")),
        ("2025-02-01T00:30:00+01:00", ("2024-11", "2024-12")),  # 2025-01-31 23:30 UTC
        ("not a time", None),
    ],
)
def test_change_periods_are_the_last_two_whole_months(as_of, expected):
    assert change_periods(as_of) == expected


def test_period_changes_down_and_without_a_month():
    metrics = pl.DataFrame(
        {
            "rule_id": ["A", "A", "B", "B", "C"],
            "period": ["2024-01", "2024-02", "2024-01", "2024-02", "2024-02"],
            "segment": ["all"] * 5,
            "achieved": [10, 9, 5, 0, 3],
            "breached": [0, 1, 0, 0, 0],
            "denominator": [10, 10, 5, 0, 3],
        }
    )
    changes = period_changes(metrics, "2024-03-01T00:00:00Z")
    assert (changes["A"]["direction"], changes["A"]["arrow"], changes["A"]["delta"]) == ("down", "▼", "−10.0 pp")
    assert changes["B"]["direction"] == "none" and changes["B"]["current"] == "— (0 / 0)"
    assert changes["C"]["direction"] == "none" and changes["C"]["previous"] == "—"


def test_domain_sections_chart_response_times_backlog_and_data_classes(policy):
    data = _data(policy, hostile=False)
    measured = pl.col("rule_id") == "PRIV-COMPLETE"  # the privacy domain measured, so that it gets its charts
    data.verdicts = data.verdicts.with_columns(
        pl.when(measured).then(pl.lit("breached")).otherwise(pl.col("verdict")).alias("verdict"),
        pl.when(measured).then(pl.lit(10)).otherwise(pl.col("achieved")).alias("achieved"),
        pl.when(measured).then(pl.lit(2)).otherwise(pl.col("breached")).alias("breached"),
        pl.when(measured).then(pl.lit(12)).otherwise(pl.col("denominator")).alias("denominator"),
    )
    data.privacy_backlog = pl.DataFrame(
        {
            "request_type": ["access", "erasure", "access"],
            "age_days": [3.5, 45.0, 120.0],
            "days_left": [26.5, -15.0, -90.0],
        }
    )
    data.metrics = pl.concat(
        [
            data.metrics,
            pl.DataFrame(
                {
                    "rule_id": ["RET-BILLING"],
                    "domain": ["retention"],
                    "period": ["all"],
                    "segment": ["data_class=billing_record"],
                    "achieved": [30],
                    "breached": [2],
                    "active": [7],
                    "excluded": [0],
                    "denominator": [32],
                }
            ),
        ],
        how="diagonal_relaxed",
    )
    data.finding_counts = pl.DataFrame(
        {"rule_id": ["RET-BILLING", "RET-BILLING"], "severity": ["breach", "warning"], "findings": [2, 6]}
    )
    page = render_compliance_report(data)
    tickets = html_section(page, "domain-tickets")
    assert 'id="chart-tickets-response"' in tickets
    # SUP-ACCT-STD: median 11,520 s of a 24 h target = 13.33 %; p95 34,560 s = 40 %
    assert "13.33" in tickets and "40.0" in tickets
    backlog = html_section(page, "domain-privacy")
    assert 'id="chart-privacy-backlog"' in backlog and "past its deadline" in backlog
    retention = html_section(page, "domain-retention")
    assert (
        'id="chart-retention-classes"' in retention
        and "billing_record" in retention
        and "minimisation warning" in retention
    )
