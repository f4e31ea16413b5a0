"""The compliance report: one self-contained HTML page for the compliance officer who signs it.

The page names every commitment of the policy with its verdict and the figures behind it (always with their
denominators), the data coverage of the run, one section per domain, the open clocks closest to their deadline,
the violations with their evidence, and the provenance of the run (input hashes, package versions).

Rules of the page:
- self-contained: plotly.js is inlined once in ``<head>``; charts are rendered with ``include_plotlyjs=False``; no
  external script, style sheet or font;
- every piece of input text is escaped (Jinja2 autoescape; chart data goes through plotly's JSON encoder, which
  escapes ``<``, ``>`` and ``/`` so that a value cannot close the ``<script>`` element);
- deterministic: the same data renders the same page (chart div ids are stable), apart from the run id and the
  generation time which are part of the data;
- every timestamp is shown in UTC as ``YYYY-MM-DD HH:MM:SS UTC``.

No Dagster imports here: the publish assets call :func:`render_compliance_report` and :func:`publish_atomically`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import polars as pl
from markupsafe import Markup

from compliance.ingest.contract import SOURCES
from compliance.policy import Policy, Rule
from compliance.rule_kinds import DOMAINS
from compliance.rules import privacy as privacy_rules
from reports.charts import CHART_COLORS, base_layout, chart_html, chart_text, new_figure, plotly_js
from reports.formatting import (
    adherence_tenths,
    cell_text,
    format_adherence,
    format_count,
    format_timestamp,
    frame_rows,
    human_duration,
    shorten,
    timestamp_sort_key,
)
from reports.reconciliation_section import ReconciliationData, reconciliation_section

# plotly is imported by the functions that build a chart, when a report is rendered: never when the Dagster
# definitions load (tests/test_startup.py).
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "compliance_report.html"

# Domains that always get a section (a domain without data says so); others appear when the policy uses them.
CORE_DOMAINS = ("tickets", "privacy", "security", "status", "retention")
DOMAIN_ORDER = tuple(DOMAINS)
DOMAIN_TITLES = {name: domain.title for name, domain in DOMAINS.items()}
# Which export feeds which domain (by file stem), to name the missing input when a domain has no data.
DOMAIN_INPUTS = {name: domain.inputs for name, domain in DOMAINS.items()}
VERDICT_CLASSES = {"met": "met", "breached": "breached", "no data": "nodata", "not assessed": "notassessed"}
SEVERITY_CLASSES = {"breach": "breached", "warning": "notassessed", "coverage": "nodata"}
STATUS_CLASSES = {"loaded": "met", "missing": "breached", "unusable": "breached"}
# Exports that feed no domain (vendor_sla: only the reconciliation with the vendor's own verdicts reads it): when
# absent, no commitment goes unjudged, so the report lists them as not supplied rather than as a problem.
OPTIONAL_INPUTS = frozenset(SOURCES) - {name for domain in DOMAINS.values() for name in domain.inputs}
AT_RISK_LIMIT = 50
# Age of an open privacy request (days since receipt): lower bounds of the chart's buckets.
BACKLOG_AGE_BOUNDS = (7, 14, 30, 60, 90)
ATTESTATION_KEYS = ("prepared_by", "reviewed_by", "date")
NOT_STATED = "not stated"


class AttestationError(ValueError):
    """An attestation file that cannot be read (one line naming the file and the problem)."""


@dataclass(frozen=True)
class Attestation:
    """The sign-off block of the printed report: who prepared it, who reviewed it, and when (text as given)."""

    prepared_by: str = ""
    reviewed_by: str = ""
    date: str = ""

    def shown(self) -> dict[str, str]:
        return {key: getattr(self, key).strip() or NOT_STATED for key in ATTESTATION_KEYS}


def load_attestation(path: Path) -> Attestation:
    """An attestation YAML file: a mapping of ``prepared_by``, ``reviewed_by`` and ``date`` (each optional
    text); any other key is refused, so that a misspelled one cannot leave a blank the reader takes for intent."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise AttestationError(f"{path}: cannot read the attestation: {str(error).splitlines()[0]}") from None
    document = {} if document is None else document
    if not isinstance(document, dict):
        raise AttestationError(f"{path}: expected a mapping of {', '.join(ATTESTATION_KEYS)}")
    unknown = sorted(str(key) for key in document if key not in ATTESTATION_KEYS)
    if unknown:
        raise AttestationError(f"{path}: unknown key {', '.join(unknown)} (known: {', '.join(ATTESTATION_KEYS)})")
    return Attestation(**{str(key): "" if value is None else str(value) for key, value in document.items()})


def css_string(value: Any) -> Markup:
    """A CSS string literal of any text: quotes, backslashes, line ends and ``<`` as CSS escapes, so that the
    text can neither end the string nor the ``<style>`` element it stands in."""
    escaped = "".join(
        f"\\{ord(char):x} " if char in '"\\<>&\n\r\f' or ord(char) < 32 else char for char in cell_text(value)
    )
    return Markup(f'"{escaped}"')


@dataclass
class ReportData:
    policy: Policy
    # run_id, as_of, policy {path, sha256}, inputs [{file, sha256, rows_read, rows_loaded, rows_quarantined,
    # status ('loaded'|'missing'|'unusable'), problem}], versions {pkg: ver}, period {start, end}
    manifest: dict
    # one row per policy rule: rule_id, domain, title, source_doc, source_quote, calendar, target, verdict,
    # reason, achieved, breached, active, excluded, denominator, adherence_pct
    verdicts: pl.DataFrame
    # rule_id, domain, period, segment, achieved, breached, active, excluded, denominator, adherence_pct,
    # median_seconds, p90_seconds, p95_seconds, max_seconds
    metrics: pl.DataFrame
    # rule_id, domain, record_id, due_at, actual_at, overdue_seconds, severity, explanation (already truncated)
    violations: pl.DataFrame
    violations_total: int
    quarantine_summary: pl.DataFrame  # source_file, reason, rows
    at_risk: pl.DataFrame  # record_id, rule_id, due_at, remaining_seconds
    generated_at: datetime
    # per source: source, expectations, passed, failed, blocking_failed, failures (text of the failed ones)
    expectations: pl.DataFrame = field(default_factory=pl.DataFrame)
    # per kind of secret or personal data found in free text: kind, findings, records
    secret_summary: pl.DataFrame = field(default_factory=pl.DataFrame)
    # open privacy requests at as-of: request_type, age_days, days_left (negative: past its deadline)
    privacy_backlog: pl.DataFrame = field(default_factory=pl.DataFrame)
    # every violation counted: rule_id, severity, findings (the violations frame above is cut to its first rows)
    finding_counts: pl.DataFrame = field(default_factory=pl.DataFrame)
    # every violation counted by the month folder it is filed in above the spreadsheet size: rule_id, month, findings
    violation_months: pl.DataFrame = field(default_factory=pl.DataFrame)
    reconciliation: ReconciliationData | None = None  # the vendor's own SLA verdicts against ours
    # every row of the waivers export: record_id, rule_id, reason, approved_by, approved_at, expires_at,
    # source_file, source_line, outcome ('applied' | 'refused'), refusal (compliance.evidence.waivers)
    waivers: pl.DataFrame = field(default_factory=pl.DataFrame)
    # the rows of evidence/at_risk.csv (``at_risk`` holds the first of them); None: the rows of ``at_risk``
    at_risk_total: int | None = None
    attestation: Attestation = field(default_factory=Attestation)  # the sign-off block (CLI options or a file)


def change_periods(as_of: Any) -> tuple[str, str] | None:
    """The month before the last whole calendar month (UTC) before ``as_of``, and that month, as ``YYYY-MM``:
    as of 2026-11-01 00:00 or 2026-11-20, October 2026 is compared with September 2026."""
    if isinstance(as_of, str):
        try:
            as_of = datetime.fromisoformat(as_of.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(as_of, datetime):
        return None
    if as_of.tzinfo is not None:
        as_of = as_of.astimezone(UTC)
    months = as_of.year * 12 + as_of.month - 1  # months since year 0 of the as-of month
    current, previous = months - 1, months - 2
    return f"{previous // 12:04d}-{previous % 12 + 1:02d}", f"{current // 12:04d}-{current % 12 + 1:02d}"


def period_changes(metrics: pl.DataFrame | None, as_of: Any) -> dict[str, dict[str, Any]]:
    """Per rule: adherence of the last whole month before ``as_of`` against the month before it (metrics rows of
    segment 'all'), with the change in percentage points between the two shown (cut) percentages."""
    periods = change_periods(as_of)
    if periods is None:
        return {}
    previous_period, current_period = periods
    counts: dict[str, dict[str, tuple[Any, Any]]] = {}
    for row in frame_rows(metrics):
        period = cell_text(row.get("period"))
        if (cell_text(row.get("segment")) or "all") == "all" and period in periods:
            denominator = row.get("denominator")
            if denominator is None and row.get("achieved") is not None and row.get("breached") is not None:
                denominator = int(row["achieved"]) + int(row["breached"])
            counts.setdefault(cell_text(row.get("rule_id")), {})[period] = (row.get("achieved"), denominator)
    changes = {}
    for rule_id, by_period in counts.items():
        current = by_period.get(current_period, (None, None))
        previous = by_period.get(previous_period, (None, None))
        current_tenths, previous_tenths = adherence_tenths(*current), adherence_tenths(*previous)
        if current_tenths is None or previous_tenths is None:
            direction, arrow, delta = "none", "", "no comparison"
        else:
            step = current_tenths - previous_tenths
            direction = "up" if step > 0 else "down" if step < 0 else "flat"
            arrow = {"up": "▲", "down": "▼", "flat": "="}[direction]
            delta = f"{'+' if step > 0 else '−' if step < 0 else ''}{abs(step) // 10}.{abs(step) % 10} pp"
        changes[rule_id] = {
            "direction": direction,
            "arrow": arrow,
            "delta": delta,
            "current_period": current_period,
            "previous_period": previous_period,
            "current": format_adherence(*current) if current[1] is not None else "—",
            "previous": format_adherence(*previous) if previous[1] is not None else "—",
            "current_pct": "—" if current_tenths is None else f"{current_tenths // 10}.{current_tenths % 10}%",
            "previous_pct": "—" if previous_tenths is None else f"{previous_tenths // 10}.{previous_tenths % 10}%",
        }
    return changes


def _adherence_sort_value(row: Mapping[str, Any]) -> float:
    denominator = row.get("denominator")
    if not denominator:
        return -1.0
    return 100.0 * int(row.get("achieved") or 0) / int(denominator)


def _policy_version_rows(versions: object) -> list[dict]:
    """The manifest's ``policy_versions``: each version, the part of the run it judged and its items."""
    rows = []
    for item in versions if isinstance(versions, list) else []:
        if not isinstance(item, Mapping):
            continue
        start, end = item.get("judged_from"), item.get("judged_until")
        window = (
            f"from {format_timestamp(start)} until {format_timestamp(end)} (excluded)"
            if start and end
            else f"from {format_timestamp(start)}"
            if start
            else f"before {format_timestamp(end)}"
            if end
            else "any time"
        )
        rows.append(
            {
                "version": cell_text(item.get("version")),
                "window": window,
                "items": format_count(item.get("items") or 0),
                "path": cell_text(item.get("path")),
                "sha256": cell_text(item.get("sha256")),
            }
        )
    return rows


def _items_judged(verdicts: pl.DataFrame | None) -> int:
    """How many items (rule x record: achieved, breached, active or excluded) the run's policy version judged."""
    columns = ("achieved", "breached", "active", "excluded")
    if verdicts is None or verdicts.is_empty() or not set(columns) <= set(verdicts.columns):
        return 0
    return int(sum(verdicts[column].fill_null(0).sum() for column in columns))


def _verdict_rows(policy: Policy, verdicts: pl.DataFrame) -> list[dict[str, Any]]:
    """One row per policy rule, in policy order; a rule the run produced no verdict for is 'not assessed'."""
    by_rule: dict[str, dict[str, Any]] = {}
    for row in frame_rows(verdicts):
        by_rule.setdefault(cell_text(row.get("rule_id")), row)
    rows: list[dict[str, Any]] = []
    for rule in policy.rules:
        row = by_rule.pop(rule.id, None)
        rows.append(_verdict_row(policy, rule, row))
    # Verdicts for IDs the policy does not know are shown, never dropped (they point at a mismatch).
    for rule_id in sorted(by_rule):
        rows.append(_verdict_row(policy, None, by_rule[rule_id]))
    return rows


def _verdict_row(policy: Policy, rule: Rule | None, row: dict[str, Any] | None) -> dict[str, Any]:
    row = row or {}

    def pick(column: str, fallback: Any) -> Any:
        value = row.get(column)
        return fallback if value is None or value == "" else value

    verdict = cell_text(row.get("verdict")) or "not assessed"
    reason = cell_text(row.get("reason"))
    if not row:
        reason = "the run produced no result for this rule"
    elif rule is None:
        reason = (reason + "; " if reason else "") + "rule ID not in the policy file"
    source_doc = cell_text(pick("source_doc", rule.source_doc if rule else ""))
    source_title = ""
    source_info = policy.sources.get(source_doc) if isinstance(policy.sources, Mapping) else None
    if isinstance(source_info, Mapping):
        source_title = cell_text(source_info.get("title"))
    calendar = cell_text(pick("calendar", rule.calendar if rule else "")) or "—"
    calendar_description = ""
    calendar_spec = policy.calendars.get(calendar) if calendar != "—" else None
    if calendar_spec is not None:
        calendar_description = cell_text(getattr(calendar_spec, "description", "") or "")
    quote = cell_text(pick("source_quote", rule.source_quote if rule else ""))
    achieved, denominator = row.get("achieved"), row.get("denominator")
    return {
        "rule_id": cell_text(pick("rule_id", rule.id if rule else "")),
        "title": cell_text(pick("title", rule.title if rule else "")),
        "domain": cell_text(pick("domain", rule.domain if rule else "")),
        "verdict": verdict,
        "verdict_class": VERDICT_CLASSES.get(verdict, "notassessed"),
        "reason": reason,
        "adherence": format_adherence(achieved, denominator),
        "adherence_sort": _adherence_sort_value(row),
        "achieved": format_count(achieved),
        "breached": format_count(row.get("breached")),
        "breached_raw": int(row.get("breached") or 0),
        "achieved_raw": int(achieved or 0),
        "active": format_count(row.get("active")),
        "excluded": format_count(row.get("excluded")),
        "target": cell_text(pick("target", rule.target.describe() if rule else "")) or "—",
        "calendar": calendar,
        "calendar_description": calendar_description,
        "source_doc": source_doc or "—",
        "source_title": source_title,
        "quote_short": shorten(quote),
        "quote_full": " ".join(quote.split()),
    }


def _in_period_counts(in_period: Any) -> dict[str, str]:
    """A --period run's own figures of one input (manifest ``in_period``), formatted; "—" where the manifest has
    none (no period, or a file whose rows the period does not count: not loaded, superseded)."""
    figures = in_period if isinstance(in_period, Mapping) else {}
    return {
        f"period_{key}": format_count(figures[key]) if figures.get(key) is not None else "—"
        for key in ("rows_loaded", "rows_quarantined", "rows_quarantined_not_attributable")
    }


def _input_rows(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for item in manifest.get("inputs") or []:
        status = cell_text(item.get("status")) or "loaded"
        read, loaded, quarantined = item.get("rows_read"), item.get("rows_loaded"), item.get("rows_quarantined")
        balanced = None
        if read is not None and loaded is not None and quarantined is not None:
            balanced = int(read) == int(loaded) + int(quarantined)
        sha = cell_text(item.get("sha256"))
        file = cell_text(item.get("file")) or cell_text(item.get("source"))  # a missing export has no file name
        optional = status in ("missing", "not ingested") and cell_text(item.get("source")) in OPTIONAL_INPUTS
        if optional:
            status = "not supplied (optional)"
        rows.append(
            {
                "file": file,
                "stem": Path(file).name.split(".")[0],
                "status": status,
                "status_class": "nodata" if optional else STATUS_CLASSES.get(status, "notassessed"),
                "optional": optional,
                "problem": cell_text(item.get("problem")),
                "rows_read": format_count(read),
                "rows_loaded": format_count(loaded),
                "rows_quarantined": format_count(quarantined),
                "balanced": balanced,
                "sha256": sha,
                "sha256_short": sha[:12] if sha else "—",
                # contract columns the file does not carry: the rules that need them are not assessed on its rows
                "absent_columns": sorted((item.get("absent_columns") or {}).items()),
                **_in_period_counts(item.get("in_period")),
            }
        )
    return rows


def _whole_period_rows(metrics: pl.DataFrame | None) -> list[dict[str, Any]]:
    """The metrics rows of period 'all', in frame order: picked by polars before they become dicts (the monthly
    rows are most of the frame, and every domain's section reads it twice)."""
    if metrics is None or "period" not in metrics.columns:
        return []
    return frame_rows(metrics.filter(pl.col("period") == "all"))


def _metric_rows_for(metrics: pl.DataFrame, rule_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The headline (period 'all', segment 'all') metrics row of each rule."""
    wanted = set(rule_ids)
    found: dict[str, dict[str, Any]] = {}
    for row in _whole_period_rows(metrics):
        if row.get("period") == "all" and row.get("segment") == "all" and row.get("rule_id") in wanted:
            found.setdefault(row["rule_id"], row)
    return found


def _segment_rows(metrics: pl.DataFrame, rule_order: list[str]) -> list[dict[str, Any]]:
    order = {rule_id: index for index, rule_id in enumerate(rule_order)}
    rows = [
        row
        for row in _whole_period_rows(metrics)
        if row.get("period") == "all" and row.get("segment") not in (None, "all") and row.get("rule_id") in order
    ]
    rows.sort(key=lambda row: (order[row["rule_id"]], cell_text(row.get("segment"))))
    return [_metric_view(row) for row in rows]


def _metric_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "rule_id": cell_text(row.get("rule_id")),
        "segment": cell_text(row.get("segment")),
        "achieved": format_count(row.get("achieved")),
        "breached": format_count(row.get("breached")),
        "active": format_count(row.get("active")),
        "excluded": format_count(row.get("excluded")),
        "adherence": format_adherence(row.get("achieved"), row.get("denominator")),
        "median": human_duration(row.get("median_seconds")),
        "p90": human_duration(row.get("p90_seconds")),
        "p95": human_duration(row.get("p95_seconds")),
        "max": human_duration(row.get("max_seconds")),
    }


def _tickets_chart(metrics: pl.DataFrame, rules: list[dict[str, Any]], met_min: float) -> Markup | None:
    """Monthly adherence per rule (segment 'all', period YYYY-MM)."""
    import plotly.graph_objects as go

    rule_ids = [row["rule_id"] for row in rules]
    titles = {row["rule_id"]: row["title"] for row in rules}
    monthly: dict[str, list[dict[str, Any]]] = {rule_id: [] for rule_id in rule_ids}
    for row in frame_rows(metrics):
        period = cell_text(row.get("period"))
        if row.get("segment") == "all" and period != "all" and row.get("rule_id") in monthly and row.get("denominator"):
            monthly[row["rule_id"]].append(row)
    if not any(monthly.values()):
        return None
    fig = new_figure()
    for rule_id in rule_ids:
        points = sorted(monthly[rule_id], key=lambda row: cell_text(row.get("period")))
        if not points:
            continue
        fig.add_trace(
            go.Scatter(
                x=[cell_text(row.get("period")) for row in points],
                y=[
                    None
                    if not row.get("denominator")
                    else 100.0 * int(row.get("achieved") or 0) / int(row["denominator"])
                    for row in points
                ],
                customdata=[
                    [
                        format_count(row.get("achieved")),
                        format_count(row.get("denominator")),
                        format_count(row.get("active")),
                    ]
                    for row in points
                ],
                name=chart_text(rule_id),
                mode="lines+markers",
                hovertemplate=(
                    f"{chart_text(rule_id)}: {chart_text(shorten(titles.get(rule_id, ''), 80))}"
                    "<br>%{x}: %{y:.1f}% (%{customdata[0]} / %{customdata[1]}; active %{customdata[2]})"
                    "<extra></extra>"
                ),
            )
        )
    base_layout(
        fig, "Adherence per rule by month of the clock start (UTC): achieved / (achieved + breached)", "adherence %"
    )
    fig.update_yaxes(range=[0, 102])
    fig.update_xaxes(type="category")
    fig.add_hline(
        y=met_min,
        line_dash="dot",
        line_color="#555",
        annotation_text=f"met at ≥ {met_min:g}%",
        annotation_position="top left",
    )
    return chart_html(fig, "chart-tickets")


def _counts_chart(domain: str, rules: list[dict[str, Any]]) -> Markup | None:
    """Achieved / breached per rule, as stacked bars."""
    import plotly.graph_objects as go

    measured = [row for row in rules if row["achieved_raw"] or row["breached_raw"]]
    if not measured:
        return None
    fig = new_figure()
    x = [chart_text(row["rule_id"]) for row in measured]
    hover = [chart_text(shorten(row["title"], 80)) for row in measured]
    for key, label in (("achieved_raw", "achieved"), ("breached_raw", "breached")):
        fig.add_trace(
            go.Bar(
                x=x,
                y=[row[key] for row in measured],
                name=label,
                marker_color=CHART_COLORS[label],
                customdata=hover,
                hovertemplate=f"%{{x}}: %{{customdata}}<br>{label}: %{{y:,}}<extra></extra>",
            )
        )
    base_layout(fig, "Items achieved and breached per rule", "items")
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category")
    return chart_html(fig, f"chart-{domain}")


def _response_time_chart(metrics: pl.DataFrame, rules: list[dict[str, Any]], policy: Policy) -> Markup | None:
    """Median, p90 and p95 of each rule's measured time as % of its target (whole period): how far the
    distribution reaches past the promise."""
    import plotly.graph_objects as go

    targets = {}
    for row in rules:
        try:
            seconds = policy.rule(row["rule_id"]).target.seconds
        except KeyError:
            seconds = None
        if seconds:
            targets[row["rule_id"]] = float(seconds)
    headline = _metric_rows_for(metrics, list(targets))
    measured = [
        row["rule_id"]
        for row in rules
        if row["rule_id"] in headline and headline[row["rule_id"]].get("median_seconds") is not None
    ]
    if not measured:
        return None
    fig = new_figure()
    for key, label, color in (
        ("median_seconds", "median", "#2a5db0"),
        ("p90_seconds", "p90", "#e07b00"),
        ("p95_seconds", "p95", "#8e24aa"),
    ):
        values = [headline[rule_id].get(key) for rule_id in measured]
        fig.add_trace(
            go.Bar(
                y=[chart_text(rule_id) for rule_id in measured],
                x=[
                    None if value is None else round(100.0 * float(value) / targets[rule_id], 2)
                    for value, rule_id in zip(values, measured, strict=False)
                ],
                orientation="h",
                name=label,
                marker_color=color,
                customdata=[
                    [human_duration(value), human_duration(targets[rule_id])]
                    for value, rule_id in zip(values, measured, strict=False)
                ],
                hovertemplate=f"%{{y}} {label}: %{{customdata[0]}} = %{{x:.0f}}% of the target %{{customdata[1]}}<extra></extra>",
            )
        )
    base_layout(fig, "Response time against the target, whole period: median, p90 and p95 as % of the target", "")
    fig.update_layout(barmode="group", height=max(320, 110 + 40 * len(measured)))
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(ticksuffix="%", rangemode="tozero")
    fig.add_vline(x=100, line_dash="dash", line_color=CHART_COLORS["breached"], annotation_text="target")
    return chart_html(fig, "chart-tickets-response")


def _backlog_chart(backlog: pl.DataFrame | None) -> Markup | None:
    """Open privacy requests at the as-of time by age, within their deadline or past it."""
    import plotly.graph_objects as go

    if backlog is None or backlog.height == 0 or "age_days" not in backlog.columns:
        return None
    labels = (
        [f"< {BACKLOG_AGE_BOUNDS[0]} d"]
        + [f"{low}–{high} d" for low, high in zip(BACKLOG_AGE_BOUNDS, BACKLOG_AGE_BOUNDS[1:], strict=False)]
        + [f"≥ {BACKLOG_AGE_BOUNDS[-1]} d"]
    )
    counts = (
        backlog.filter(pl.col("age_days").is_not_null())
        .with_columns(
            pl.col("age_days")
            .cut(list(BACKLOG_AGE_BOUNDS), labels=labels, left_closed=True)
            .cast(pl.String)
            .alias("age"),
            (pl.col("days_left") < 0).fill_null(False).alias("past_due"),
        )
        .group_by("age", "past_due")
        .agg(pl.len().alias("requests"))
    )
    if counts.height == 0:
        return None
    by_key = {(row["age"], row["past_due"]): row["requests"] for row in counts.to_dicts()}
    fig = new_figure()
    for past_due, label, color in (
        (False, "within its deadline", CHART_COLORS["active"]),
        (True, "past its deadline", CHART_COLORS["breached"]),
    ):
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[by_key.get((age, past_due), 0) for age in labels],
                name=label,
                marker_color=color,
                hovertemplate=f"open %{{x}}: %{{y:,}} {label}<extra></extra>",
            )
        )
    base_layout(fig, "Privacy backlog at the as-of time: open requests by days since receipt", "open requests")
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category")
    return chart_html(fig, "chart-privacy-backlog")


def _data_class_chart(
    metrics: pl.DataFrame, rules: list[dict[str, Any]], finding_counts: pl.DataFrame | None
) -> Markup | None:
    """Retention findings per data class: kept to schedule, breached, minimisation warnings, not yet due."""
    import plotly.graph_objects as go

    rule_ids = {row["rule_id"] for row in rules}
    classes: dict[str, dict[str, Any]] = {}
    for row in frame_rows(metrics):
        segment = cell_text(row.get("segment"))
        if row.get("period") == "all" and segment.startswith("data_class=") and row.get("rule_id") in rule_ids:
            figures = classes.setdefault(
                segment.split("=", 1)[1], {"rules": set(), "achieved": 0, "breached": 0, "active": 0, "warning": 0}
            )
            figures["rules"].add(cell_text(row.get("rule_id")))
            for key in ("achieved", "breached", "active"):
                figures[key] += int(row.get(key) or 0)
    if not classes:
        return None
    for row in frame_rows(finding_counts):
        if row.get("severity") == "warning":
            for figures in classes.values():
                if row.get("rule_id") in figures["rules"]:
                    figures["warning"] += int(row.get("findings") or 0)
    names = sorted(classes)
    fig = new_figure()
    for key, label, color in (
        ("achieved", "kept to schedule", CHART_COLORS["achieved"]),
        ("breached", "breached", CHART_COLORS["breached"]),
        ("warning", "minimisation warning", "#e0a800"),
        ("active", "not yet due", CHART_COLORS["active"]),
    ):
        fig.add_trace(
            go.Bar(
                x=[chart_text(name) for name in names],
                y=[classes[name][key] for name in names],
                name=label,
                marker_color=color,
                customdata=[chart_text(", ".join(sorted(classes[name]["rules"]))) for name in names],
                hovertemplate=f"%{{x}} (%{{customdata}}): %{{y:,}} {label}<extra></extra>",
            )
        )
    base_layout(fig, "Retention findings by data class (records)", "records")
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    return chart_html(fig, "chart-retention-classes")


def _domain_sections(
    data: ReportData, verdict_rows: list[dict[str, Any]], inputs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    used = {row["domain"] for row in verdict_rows}
    domains = [d for d in DOMAIN_ORDER if d in CORE_DOMAINS or d in used]
    domains += sorted(d for d in used if d and d not in DOMAIN_ORDER)
    inputs_by_stem = {row["stem"]: row for row in inputs}
    # How each privacy rule counts its deadline (days or calendar months, and under which legal rule).
    readings = privacy_rules.counting_readings(data.policy)
    sections = []
    for domain in domains:
        rules = [row for row in verdict_rows if row["domain"] == domain]
        rule_ids = [row["rule_id"] for row in rules]
        headline = _metric_rows_for(data.metrics, rule_ids)
        figures = []
        for row in rules:
            metric = headline.get(row["rule_id"])
            figures.append(
                {**row, "metric": _metric_view(metric) if metric else None, "reading": readings.get(row["rule_id"], "")}
            )
        feeding = [inputs_by_stem[stem] for stem in DOMAIN_INPUTS.get(domain, ()) if stem in inputs_by_stem]
        missing_inputs = [row for row in feeding if row["status"] != "loaded"]
        measured = any(row["verdict"] in ("met", "breached") for row in rules)
        has_metrics = bool(headline)
        no_data = bool(rules) and not measured and not has_metrics
        if no_data:
            names = ", ".join(f"{row['file']} ({row['status']})" for row in missing_inputs)
            no_data_text = (
                "No data: none of this domain's commitments could be measured in this run"
                + (f"; input {names}." if names else ".")
                + " This is not a finding of compliance."
            )
        else:
            no_data_text = ""
        charts: list[Markup | None] = []
        if not no_data:
            if domain == "tickets":
                charts = [
                    _tickets_chart(data.metrics, rules, data.policy.met_min_adherence_pct),
                    _response_time_chart(data.metrics, rules, data.policy),
                ]
            elif domain == "retention":
                charts = [_data_class_chart(data.metrics, rules, data.finding_counts) or _counts_chart(domain, rules)]
            else:
                charts = [_counts_chart(domain, rules)]
            if domain == "privacy":
                charts.append(_backlog_chart(data.privacy_backlog))
        sections.append(
            {
                "domain": domain,
                "title": DOMAIN_TITLES.get(domain, domain),
                "rules": figures,
                "no_rules": not rules,
                "no_data": no_data,
                "no_data_text": no_data_text,
                "missing_inputs": missing_inputs,
                "charts": [chart for chart in charts if chart is not None],
                "segments": _segment_rows(data.metrics, rule_ids),
            }
        )
    return sections


def at_risk_rows(
    at_risk: pl.DataFrame, limit: int = AT_RISK_LIMIT, total: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Open clocks by time remaining (fewest first), the first ``limit`` formatted, and how many there are:
    ``total`` (the rows of evidence/at_risk.csv, of which ``at_risk`` holds the first) when given."""
    rows = frame_rows(at_risk)
    rows.sort(
        key=lambda row: (
            row.get("remaining_seconds") is None,
            float(row.get("remaining_seconds") or 0),
            cell_text(row.get("rule_id")),
            cell_text(row.get("record_id")),
        )
    )
    shown = [
        {
            "record_id": cell_text(row.get("record_id")),
            "rule_id": cell_text(row.get("rule_id")),
            "domain": cell_text(row.get("domain")) or "tickets",
            "due_at": format_timestamp(row.get("due_at")),
            "remaining": human_duration(row.get("remaining_seconds")),
        }
        for row in rows[:limit]
    ]
    return shown, len(rows) if total is None else max(total, len(rows))


def _violation_rows(violations: pl.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for row in frame_rows(violations):
        severity = cell_text(row.get("severity"))
        overdue = row.get("overdue_seconds")
        actual = row.get("actual_at")
        rows.append(
            {
                "rule_id": cell_text(row.get("rule_id")),
                "domain": cell_text(row.get("domain")),
                "record_id": cell_text(row.get("record_id")),
                "due_at": format_timestamp(row.get("due_at")),
                "due_sort": timestamp_sort_key(row.get("due_at")),
                "actual_at": format_timestamp(actual) if actual is not None else "still open",
                "actual_sort": timestamp_sort_key(actual) if actual is not None else "9999",
                "overdue": human_duration(overdue),
                "overdue_sort": "" if overdue is None else repr(float(overdue)),
                "severity": severity,
                "severity_class": SEVERITY_CLASSES.get(severity, "notassessed"),
                "explanation": cell_text(row.get("explanation")),
                # where the violation counts in the metrics (ticket clocks), for the drill-down from a figure
                "segment": cell_text(row.get("segment")),
                "period": cell_text(row.get("period")),
            }
        )
    return rows


def waiver_rows(waivers: pl.DataFrame) -> dict[str, list[dict[str, str]]]:
    """The waivers applied and those refused, every one of them (a waiver is an exception to a commitment: the
    printed report names each with its approver and reason)."""
    grouped: dict[str, list[dict[str, str]]] = {"applied": [], "refused": []}
    for row in frame_rows(waivers):
        grouped.setdefault(cell_text(row.get("outcome")), []).append(
            {
                "rule_id": cell_text(row.get("rule_id")),
                "record_id": cell_text(row.get("record_id")),
                "approved_by": cell_text(row.get("approved_by")) or "—",
                "approved_at": format_timestamp(row.get("approved_at")) if row.get("approved_at") is not None else "—",
                "expires_at": format_timestamp(row.get("expires_at")) if row.get("expires_at") is not None else "—",
                "reason": cell_text(row.get("reason")) or "—",
                "refusal": cell_text(row.get("refusal")),
                "line": f"{cell_text(row.get('source_file'))} line {cell_text(row.get('source_line'))}",
            }
        )
    return grouped


def _quarantine_rows(summary: pl.DataFrame) -> list[dict[str, Any]]:
    rows = frame_rows(summary)
    rows.sort(
        key=lambda row: (cell_text(row.get("source_file")), -int(row.get("rows") or 0), cell_text(row.get("reason")))
    )
    return [
        {
            "source_file": cell_text(row.get("source_file")),
            "reason": cell_text(row.get("reason")),
            "rows": format_count(row.get("rows")),
        }
        for row in rows
    ]


@functools.cache
def template_environment() -> jinja2.Environment:
    """The pages' Jinja2 environment, one per process: it keeps each template compiled (it compiles a template
    again when its file changes), so the report and the dashboard, and every later render, do not recompile the
    templates they share. Read-only for its callers: it is shared."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["ts"] = format_timestamp
    env.filters["count"] = format_count
    env.filters["duration"] = human_duration
    env.filters["css_string"] = css_string
    return env


def evidence_locations(outputs: list[dict]) -> dict[str, str]:
    """Where the run wrote ticket_sla and violations: one CSV, or one per month above a spreadsheet's row limit."""
    files = {row["file"] for row in outputs}
    return {
        stem: f"evidence/{stem}/month=YYYY-MM/{stem}.csv"
        if any(file.startswith(f"evidence/{stem}/month=") for file in files)
        else f"evidence/{stem}.csv"
        for stem in ("ticket_sla", "violations")
    }


def conversion_reading_rows(conversion: Any) -> list[dict[str, Any]]:
    """The conversion's reading report (``conversion.json`` ``reading``), one row per canonical table: each
    contract column with the vendor column it came from, the vendor columns no contract column is read from, and
    the contract columns left empty (the rules needing them are "not assessed"). Empty without a conversion."""
    reading = conversion.get("reading") if isinstance(conversion, Mapping) else None
    if not isinstance(reading, Mapping):
        return []
    rows = []
    for source, table in sorted(reading.items()):
        if not isinstance(table, Mapping):
            continue
        columns = table.get("columns") if isinstance(table.get("columns"), Mapping) else {}
        rows.append(
            {
                "source": cell_text(source),
                "columns": [(cell_text(name), cell_text(origin)) for name, origin in columns.items()],
                "ignored": [cell_text(name) for name in table.get("ignored") or []],
                "empty": [cell_text(name) for name in table.get("empty") or []],
            }
        )
    return rows


# An evidence file the manifest does not list (its hash cannot be given), and the monthly violations' CSV files.
NOT_IN_MANIFEST = "not recorded in the manifest"
_MONTH_FILE = re.compile(r"evidence/violations/month=([^/]+)/violations\.csv")


def _violation_appendix(
    policy: Policy, finding_counts: pl.DataFrame, violation_months: pl.DataFrame, outputs: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """Violations per domain (breaches, warnings, all) from the counts of every violation, in domain order, each
    with the evidence files that hold them: ``evidence/violations.csv``, or, when the run wrote the violations by
    month (above ``spreadsheet_max_rows``), the month files holding the domain's violations, each with its count.
    Every file carries its sha256 from the manifest."""
    domains = {rule.id: rule.domain for rule in policy.rules}
    counts: dict[str, dict[str, Any]] = {}
    for row in frame_rows(finding_counts):
        domain = domains.get(cell_text(row.get("rule_id")), "other")
        entry = counts.setdefault(domain, {"domain": domain, "breaches": 0, "warnings": 0, "total": 0})
        findings = int(row.get("findings") or 0)
        entry["breaches" if row.get("severity") == "breach" else "warnings"] += findings
        entry["total"] += findings
    monthly = _monthly_violation_files(outputs)
    if monthly:
        months: dict[str, dict[str, int]] = {}
        for row in frame_rows(violation_months):
            domain_months = months.setdefault(domains.get(cell_text(row.get("rule_id")), "other"), {})
            month = cell_text(row.get("month"))
            domain_months[month] = domain_months.get(month, 0) + int(row.get("findings") or 0)
        for domain, entry in counts.items():
            # without the months counted (an older caller), every month file: none that may hold one is left out
            held = months.get(domain) or {month: None for month in monthly}
            entry["files"] = [
                {
                    **(monthly.get(month) or {"file": _month_file(month), "sha256": NOT_IN_MANIFEST}),
                    "findings": findings,
                }
                for month, findings in sorted(held.items())
            ]
    else:
        whole = _violations_file(outputs)
        for entry in counts.values():
            entry["files"] = [{**whole, "findings": entry["total"]}]
    order = {name: position for position, name in enumerate(DOMAIN_ORDER)}
    return sorted(counts.values(), key=lambda entry: (order.get(entry["domain"], len(order)), entry["domain"]))


def _month_file(month: str) -> str:
    return f"evidence/violations/month={month}/violations.csv"


def _monthly_violation_files(outputs: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    """month -> the manifest's entry (file, sha256) of ``evidence/violations/month=<month>/violations.csv``."""
    files = {}
    for item in outputs:
        matched = _MONTH_FILE.fullmatch(item["file"].replace("\\", "/"))
        if matched:
            files[matched.group(1)] = {"file": _month_file(matched.group(1)), "sha256": item["sha256"]}
    return files


def _violations_file(outputs: list[dict[str, str]]) -> dict[str, str]:
    """The evidence file holding every violation, with its sha256 from the manifest."""
    for item in outputs:
        if item["file"].replace("\\", "/").endswith("evidence/violations.csv"):
            return item
    return {"file": "evidence/violations.csv", "sha256": NOT_IN_MANIFEST}


# The Great Expectations Data Docs of the run (compliance.evidence.quality_records), relative to the report.
DATA_DOCS = "evidence/expectations/index.html"


def _data_docs_link(outputs: list[dict]) -> str | None:
    """The link to the Data Docs when the run wrote them (the manifest lists them), else None."""
    return DATA_DOCS if any(item["file"] == DATA_DOCS for item in outputs) else None


def build_context(data: ReportData) -> dict[str, Any]:
    """Everything the template shows, as plain values (strings escaped by the template, charts as Markup)."""
    policy, manifest = data.policy, data.manifest or {}
    verdict_rows = _verdict_rows(policy, data.verdicts)
    inputs = _input_rows(manifest)
    at_risk, at_risk_total = at_risk_rows(data.at_risk, AT_RISK_LIMIT, data.at_risk_total)
    violations = _violation_rows(data.violations)
    manifest_policy = manifest.get("policy") or {}
    period = manifest.get("period") or {}
    counts = {key: 0 for key in VERDICT_CLASSES}
    for row in verdict_rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    changes = period_changes(data.metrics, manifest.get("as_of"))
    for row in verdict_rows:
        row["change"] = changes.get(row["rule_id"])
    change_periods_shown = change_periods(manifest.get("as_of"))
    versions = manifest.get("versions") or {}
    outputs = [
        {"file": cell_text(item.get("file")), "sha256": cell_text(item.get("sha256"))}
        for item in (manifest.get("outputs") or [])
        if isinstance(item, Mapping)
    ]
    violations_total = max(int(data.violations_total or 0), len(violations))
    policy_versions = _policy_version_rows(manifest.get("policy_versions"))
    policy_version = (
        ", ".join(row["version"] for row in policy_versions)
        if len(policy_versions) > 1
        else cell_text(manifest_policy.get("version")) or policy.version or NOT_STATED
    )
    policy_label = cell_text(manifest_policy.get("path")) or policy.profile
    return {
        "evidence_locations": evidence_locations(outputs),
        "policy_title": policy.title,
        "profile": policy.profile,
        "met_min": f"{policy.met_min_adherence_pct:g}",
        "source_timezone": policy.source_timezone,
        "run_id": cell_text(manifest.get("run_id")) or "—",
        "as_of": format_timestamp(manifest.get("as_of")),
        "period_start": format_timestamp(period.get("start")),
        "period_end": format_timestamp(period.get("end")),
        # the --period (empty: every item in the exports) and which items that judged
        "period_label": cell_text((manifest.get("period_filter") or {}).get("label")),
        "period_items": cell_text((manifest.get("period_filter") or {}).get("items")),
        "policy_path": cell_text(manifest_policy.get("path")) or policy.reference,
        "policy_sha256": cell_text(manifest_policy.get("sha256")) or policy.sha256,
        # the exports as the run was given them, and the vendor format when they were converted for the run
        "exports_given": cell_text(manifest.get("exports_dir")) or NOT_STATED,
        "exports_format": cell_text(manifest.get("exports_format")),
        "policy_version": policy_version,
        "policy_versions": policy_versions,
        "policy_folder": cell_text(manifest_policy.get("folder")),
        "policy_effective_from": format_timestamp(manifest_policy.get("effective_from")),
        "policy_items_judged": format_count(_items_judged(data.verdicts)),
        "policy_sha_matches": not manifest_policy.get("sha256") or manifest_policy.get("sha256") == policy.sha256,
        "generated_at": format_timestamp(data.generated_at),
        "verdict_rows": verdict_rows,
        "verdict_counts": counts,
        "change_periods": change_periods_shown,
        "inputs": inputs,
        "problem_inputs": [
            row for row in inputs if not row["optional"] and (row["status"] != "loaded" or row["problem"])
        ],
        "quarantine": _quarantine_rows(data.quarantine_summary),
        "expectations": frame_rows(data.expectations),
        "data_docs": _data_docs_link(outputs),
        "secret_summary": frame_rows(data.secret_summary),
        "reconciliation": reconciliation_section(data.reconciliation, manifest.get("conversion")),
        "conversion_reading": conversion_reading_rows(manifest.get("conversion")),
        "sections": _domain_sections(data, verdict_rows, inputs),
        "at_risk": at_risk,
        "at_risk_total": at_risk_total,
        "waivers": waiver_rows(data.waivers),
        "violations": violations,
        "violations_shown": len(violations),
        "violations_total": violations_total,
        # the printed copy is the report: every violation, or above the policy's size an appendix (never a cut list)
        "print_every_violation": violations_total <= policy.print_violations_max
        and violations_total <= len(violations),
        "print_violations_max": policy.print_violations_max,
        "violation_appendix": _violation_appendix(policy, data.finding_counts, data.violation_months, outputs),
        "attestation": data.attestation.shown(),
        "print_header": f"{policy.title} · policy {policy_label} version {policy_version} · period "
        f"{format_timestamp(period.get('start'))} to {format_timestamp(period.get('end'))} · as of "
        f"{format_timestamp(manifest.get('as_of'))}",
        "print_footer": f"Run {cell_text(manifest.get('run_id')) or '—'}",
        "violation_domains": sorted({row["domain"] for row in violations if row["domain"]}),
        "versions": [
            {"package": cell_text(k), "version": cell_text(v)}
            for k, v in sorted(versions.items(), key=lambda kv: str(kv[0]))
        ],
        "outputs": outputs,
        "plotlyjs": plotly_js(),  # the library itself, never data
    }


def render_compliance_report(data: ReportData) -> str:
    """The whole HTML document."""
    return template_environment().get_template(TEMPLATE_NAME).render(**build_context(data))
