"""The SLA dashboard: one self-contained HTML page for leadership, readable at a glance.

The page shows
- one headline tile per domain (all its commitments pooled) and one KPI tile per commitment with figures:
  adherence (achieved / denominator) and a red / amber / green status against the policy threshold (green: adherence >= ``met_min_adherence_pct``; amber: at most
  ``report.amber_band_pct`` points below it (default 5); red: further below; grey: no measured item), and the change against the month before (last two whole months), the quarter before and the year before;
- monthly adherence per rule (line chart of the first domain; a dropdown shows another domain, or one rule split
  by channel / tier / plan segment);
- median and p90 response time per rule against its target (bars as % of the target; a dropdown picks the period);
- breached ticket clocks by weekday x hour of the clock start, in the zone of the ticket rules' business-hours
  calendar (``compliance.evidence.summaries.heatmap_zone``; UTC when every ticket rule runs 24/7);
- ticket volume and open backlog by month, resolution-time percentiles by month, breaches per commitment by cause;
- the open ticket clocks closest to their deadline (top 20);
- incidents: mean time to acknowledge / resolve per severity;
- privacy requests answered / completed on time per month.

Filters (month range, channel, tier, plan; state in the URL fragment) recompute the tiles and the adherence charts
in the page from the per-month x segment counts embedded as JSON (:func:`filter_payload`); what cannot be
recomputed from counts (quantiles, means, causes, the heatmap) says "Not filtered" under a filter. Every tile
links to its commitment in the compliance report (``compliance_report.html#RULE-ID``) and to its breached records
(``#violations?rule=..``, with the filter's months and segment).

It follows the rules of the compliance report and reuses its helpers (formatting, chart embedding, Jinja2
environment, atomic publishing): plotly.js is inlined exactly once, charts are rendered without the library and
with stable div ids, every input string is escaped (Jinja2 autoescape; chart text through ``chart_text`` and
plotly's JSON encoder), no external resource, and an empty input renders a "no data" panel.

No Dagster imports here: the publish asset calls :func:`render_sla_dashboard` and
:func:`compliance.core.files.publish_atomically`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import polars as pl
from markupsafe import Markup

from compliance.policy import DEFAULT_AMBER_BAND_PCT, Policy
from compliance.rule_kinds import DOMAINS
from compliance.rules.common import CAUSE_WORDS
from reports.charts import (
    CHART_COLORS,
    SERIES_COLORS,
    add_dropdown,
    base_layout,
    chart_html,
    chart_text,
    new_figure,
    plotly_js,
)
from reports.compliance_report import at_risk_rows, period_changes, template_environment
from reports.formatting import (
    adherence_tenths,
    business_hours_text,
    cell_text,
    format_adherence,
    format_count,
    format_timestamp,
    frame_rows,
    human_duration,
    shorten,
)

if TYPE_CHECKING:  # plotly is imported by the functions that build a chart, when the dashboard is rendered
    import plotly.graph_objects as go

__all__ = ["DashboardData", "build_context", "rag_status", "render_sla_dashboard"]

TEMPLATE_NAME = "sla_dashboard.html"
REPORT_FILE = "compliance_report.html"  # beside the dashboard in the run folder: tiles link to its sections
AT_RISK_LIMIT = 20
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
RAG_LABELS = {"green": "on target", "amber": "just below target", "red": "below target", "grey": "no data"}
THRESHOLD_COLOR = "#555"
# The headline tiles: every commitment of a domain pooled (items on time / items that reached a verdict).
# Rules shown on the response-time chart: a time to act, where shorter is better. Retention ages and the
# maintenance notice (announced at least N days ahead: longer is better) would read wrongly against "100% = target".
RESPONSE_TIME_DOMAINS = ("tickets", "security", "privacy", "status")
LONGER_IS_BETTER_KINDS = frozenset({"maintenance_notice"})
DOMAIN_LABELS = {name: domain.label for name, domain in DOMAINS.items()}
HEADLINE_TITLES = {
    "tickets": "Support tickets answered on time",
    "privacy": "Privacy requests handled on time",
    "security": "Security reports handled on time",
    "status": "Incident and status commitments kept",
    "retention": "Records kept and deleted on schedule",
}


@dataclass
class DashboardData:
    policy: Policy
    as_of: datetime
    run_id: str
    # rule_id, title, domain, achieved, breached, active, denominator, adherence_pct (one row per rule with figures)
    kpis: pl.DataFrame
    # metrics rows: rule_id, period (YYYY-MM; 'all' rows are used by the response-time chart when present),
    # segment ('all' or 'channel=..;tier=..;plan=..'), achieved, breached, denominator, adherence_pct,
    # median_seconds, p90_seconds
    monthly: pl.DataFrame
    # weekday (1=Mon..7), hour (0-23, UTC), breaches: breached ticket clocks by their UTC start time
    breaches_by_hour: pl.DataFrame
    # open ticket clocks: record_id, rule_id, due_at, remaining_seconds (sorted, <= 50 rows)
    at_risk: pl.DataFrame
    # compliance.rules.status incident_response table (may be empty)
    incident_response: pl.DataFrame
    # rule_id, period, achieved, breached, adherence_pct for PRIV-RESP / PRIV-COMPLETE (may be empty)
    privacy_on_time: pl.DataFrame
    # rule_id -> target seconds
    targets: dict[str, int]
    generated_at: datetime
    # the zone breaches_by_hour is counted in (the ticket rules' business-hours calendar; UTC without one)
    heatmap_zone: str = "UTC"
    # rule_id, cause (compliance.rules.common.CAUSE_WORDS), breaches: violations of severity breach; for ticket
    # clocks also per period (YYYY-MM of the clock start) and segment (channel=..;tier=..;plan=..), else NULL
    breach_causes: pl.DataFrame | None = None
    # period ('all' or YYYY-MM of creation), count, median_seconds, p90_seconds, p95_seconds: ticket resolution
    resolution_times: pl.DataFrame | None = None
    # period (YYYY-MM, UTC), created, resolved, open_at_month_end (NULL when the export has no resolved_at)
    ticket_volume: pl.DataFrame | None = None
    period: str = ""  # the report period (--period, e.g. 2026-Q3); empty: every item in the exports
    # the rows of evidence/at_risk.csv, of which ``at_risk`` holds the first; None: the rows of ``at_risk``
    at_risk_total: int | None = None
    # the policy versions that judged the run, oldest first (a policy folder across a change); empty: policy's own
    policy_versions: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------------------------
# Status and small helpers
# --------------------------------------------------------------------------------------------------------------


def _exact(value: Any) -> Fraction:
    """A threshold as an exact fraction (99.9 means 999/10, not the nearest binary float)."""
    return Fraction(Decimal(str(value)))


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def rag_status(
    achieved: Any, denominator: Any, met_min_pct: float, amber_band_pct: float = DEFAULT_AMBER_BAND_PCT
) -> str:
    """``green`` when adherence >= the policy threshold, ``amber`` when at most ``amber_band_pct`` points below it
    (the policy's ``report.amber_band_pct``), ``red`` otherwise, ``grey`` without a measured item. Computed exactly
    from the counts."""
    achieved_n, denominator_n = _int_or_none(achieved), _int_or_none(denominator)
    if not denominator_n or denominator_n <= 0 or achieved_n is None:
        return "grey"
    adherence = Fraction(100 * achieved_n, denominator_n)
    threshold = _exact(met_min_pct)
    if adherence >= threshold:
        return "green"
    if adherence >= threshold - _exact(amber_band_pct):
        return "amber"
    return "red"


def _adherence(row: Mapping[str, Any]) -> float | None:
    denominator = _denominator(row)
    if not denominator:
        return None
    return 100.0 * int(row.get("achieved") or 0) / denominator


def _denominator(row: Mapping[str, Any]) -> int | None:
    denominator = _int_or_none(row.get("denominator"))
    if denominator is None:
        achieved, breached = _int_or_none(row.get("achieved")), _int_or_none(row.get("breached"))
        if achieved is not None and breached is not None:
            denominator = achieved + breached
    return denominator


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN -> None


def _segment_label(segment: str) -> str:
    """``channel=technical_support;tier=priority`` -> ``technical_support · priority``."""
    parts = [part.split("=", 1)[-1] for part in segment.split(";") if part]
    return " · ".join(parts) or segment


def _duration_unit(max_seconds: float) -> tuple[str, float]:
    if max_seconds >= 3 * 86400:
        return "days", 86400.0
    if max_seconds >= 2 * 3600:
        return "hours", 3600.0
    return "minutes", 60.0


def _rule_order(policy: Policy, rule_ids: list[str]) -> list[str]:
    """Policy order first, then IDs the policy does not know, sorted."""
    position = {rule.id: index for index, rule in enumerate(policy.rules)}
    return sorted(set(rule_ids), key=lambda rule_id: (rule_id not in position, position.get(rule_id, 0), rule_id))


def _on_business_hours(policy: Policy, rule_id: str) -> bool:
    """Whether the rule's clock counts open time on a business-hours calendar (its durations are business hours)."""
    try:
        calendar = policy.calendars.get(policy.rule(rule_id).calendar or "")
    except KeyError:
        return False
    return calendar is not None and calendar.kind == "business_hours"


def _duration_text(policy: Policy, rule_id: str, seconds: Any) -> str:
    """A measured duration in the unit of the rule's clock: business hours on a business calendar, else wall time."""
    return business_hours_text(seconds) if _on_business_hours(policy, rule_id) else human_duration(seconds)


def _target_text(policy: Policy, rule_id: str, seconds: Any) -> str:
    """The target as the commitment states it: "24 business hours", "48 hours", "30 days", "10 working days"."""
    if _on_business_hours(policy, rule_id):
        return business_hours_text(seconds)
    try:
        described = policy.rule(rule_id).target.describe()
    except KeyError:
        described = "—"
    if described != "—":
        return described
    return human_duration(seconds) if seconds else ""


def _color(index: int) -> str:
    return SERIES_COLORS[index % len(SERIES_COLORS)]


# --------------------------------------------------------------------------------------------------------------
# KPI tiles and table
# --------------------------------------------------------------------------------------------------------------


def _headline(achieved: Any, denominator: Any) -> str:
    """The tile's big number: adherence cut to tenths (never rounded up, as in the report), or a dash."""
    tenths = adherence_tenths(achieved, denominator)
    return "—" if tenths is None else f"{tenths // 10}.{tenths % 10}%"


def _month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _comparison_periods(as_of: datetime) -> list[tuple[str, list[str], list[str], str, str]]:
    """(label, current months, previous months, current name, previous name) for the quarter-over-quarter
    (the last whole calendar quarter before ``as_of`` against the one before) and year-over-year (the last whole
    month against the same month a year earlier) comparisons, in UTC. Month-over-month is ``period_changes``."""
    as_of = as_of.astimezone(UTC) if as_of.tzinfo is not None else as_of
    last_month = as_of.year * 12 + as_of.month - 2  # months since year 0 of the last whole month
    quarter_end = last_month - ((last_month % 12) % 3 + 1) % 3  # March, June, September, December: index % 3 == 2

    def quarter(end: int) -> tuple[list[str], str]:
        return [_month_label(end - offset) for offset in (2, 1, 0)], f"{end // 12:04d}-Q{(end % 12) // 3 + 1}"

    current_quarter, current_name = quarter(quarter_end)
    previous_quarter, previous_name = quarter(quarter_end - 3)
    return [
        ("QoQ", current_quarter, previous_quarter, current_name, previous_name),
        (
            "YoY",
            [_month_label(last_month)],
            [_month_label(last_month - 12)],
            _month_label(last_month),
            _month_label(last_month - 12),
        ),
    ]


def longer_changes(rows: list[dict[str, Any]], as_of: datetime) -> dict[str, list[dict[str, str]]]:
    """Per key (``rule_id`` of the rows: a rule, or a domain pooled), the QoQ and YoY change of adherence in
    percentage points between the cut percentages of the pooled counts of each side (rows of segment 'all')."""
    counts: dict[str, dict[str, list[int]]] = {}
    for row in rows:
        if (cell_text(row.get("segment")) or "all") != "all":
            continue
        denominator = _denominator(row)
        if denominator is None:
            continue
        pair = counts.setdefault(cell_text(row.get("rule_id")), {}).setdefault(cell_text(row.get("period")), [0, 0])
        pair[0] += int(row.get("achieved") or 0)
        pair[1] += denominator
    changes: dict[str, list[dict[str, str]]] = {}
    for key, by_month in counts.items():
        for label, current, previous, current_name, previous_name in _comparison_periods(as_of):
            sides = []
            for months in (current, previous):
                achieved = sum(by_month[month][0] for month in months if month in by_month)
                denominator = sum(by_month[month][1] for month in months if month in by_month)
                sides.append(adherence_tenths(achieved, denominator) if denominator else None)
            if None in sides:
                delta, direction = "no comparison", "none"
            else:
                step = sides[0] - sides[1]
                direction = "up" if step > 0 else "down" if step < 0 else "flat"
                sign = "+" if step > 0 else "−" if step < 0 else ""
                delta = (
                    f"{ {'up': '▲', 'down': '▼', 'flat': '='}[direction] } {sign}{abs(step) // 10}.{abs(step) % 10} pp"
                )
            changes.setdefault(key, []).append(
                {
                    "label": label,
                    "delta": delta,
                    "direction": direction,
                    "periods": f"{current_name} vs {previous_name}",
                }
            )
    return changes


def _kpi_tiles(data: DashboardData) -> list[dict[str, Any]]:
    policy, targets = data.policy, data.targets or {}
    changes = period_changes(data.monthly, data.as_of)
    longer = longer_changes(frame_rows(data.monthly), data.as_of)
    rows_by_rule: dict[str, dict[str, Any]] = {}
    for row in frame_rows(data.kpis):
        rows_by_rule.setdefault(cell_text(row.get("rule_id")), row)
    tiles = []
    for rule_id in _rule_order(policy, list(rows_by_rule)):
        row = rows_by_rule[rule_id]
        denominator = _denominator(row)
        achieved = row.get("achieved")
        status = rag_status(achieved, denominator, policy.met_min_adherence_pct, policy.amber_band_pct)
        title = cell_text(row.get("title"))
        if not title:
            try:
                title = policy.rule(rule_id).title
            except KeyError:
                title = ""
        tiles.append(
            {
                "rule_id": rule_id,
                "title": shorten(title, 90),
                "title_full": title,
                "domain": cell_text(row.get("domain")),
                "status": status,
                "status_label": RAG_LABELS[status],
                "headline": _headline(achieved, denominator),
                "change": changes.get(rule_id),
                "longer_changes": longer.get(rule_id, []),
                "adherence": format_adherence(achieved, denominator),
                "achieved": format_count(achieved),
                "breached": format_count(row.get("breached")),
                "active": format_count(row.get("active")),
                "denominator": format_count(denominator),
                "target": _target_text(policy, rule_id, targets.get(rule_id)),
            }
        )
    return tiles


def _domain_of(policy: Policy, rule_id: str) -> str:
    try:
        return policy.rule(rule_id).domain
    except KeyError:
        return ""


def _headline_tiles(data: DashboardData) -> list[dict[str, Any]]:
    """One tile per domain with measured commitments: all of its items pooled, with the month-over-month change."""
    policy = data.policy
    pooled: dict[str, dict[str, int]] = {}
    for row in frame_rows(data.kpis):
        domain = cell_text(row.get("domain")) or _domain_of(policy, cell_text(row.get("rule_id")))
        denominator = _denominator(row)
        if not domain or not denominator:
            continue
        totals = pooled.setdefault(domain, {"achieved": 0, "denominator": 0, "breached": 0, "rules": 0})
        totals["achieved"] += int(row.get("achieved") or 0)
        totals["denominator"] += denominator
        totals["breached"] += int(row.get("breached") or 0)
        totals["rules"] += 1
    monthly: dict[tuple[str, str], dict[str, Any]] = {}
    for row in frame_rows(data.monthly):
        domain = _domain_of(policy, cell_text(row.get("rule_id")))
        if (cell_text(row.get("segment")) or "all") != "all" or domain not in pooled:
            continue
        totals = monthly.setdefault(
            (domain, cell_text(row.get("period"))),
            {
                "rule_id": domain,
                "period": cell_text(row.get("period")),
                "segment": "all",
                "achieved": 0,
                "denominator": 0,
            },
        )
        totals["achieved"] += int(row.get("achieved") or 0)
        totals["denominator"] += _denominator(row) or 0
    changes = period_changes(pl.DataFrame(list(monthly.values())) if monthly else None, data.as_of)
    longer = longer_changes(list(monthly.values()), data.as_of)
    order = {rule.domain: index for index, rule in reversed(list(enumerate(policy.rules)))}
    tiles = []
    for domain in sorted(pooled, key=lambda name: (order.get(name, len(order)), name)):
        totals = pooled[domain]
        status = rag_status(
            totals["achieved"], totals["denominator"], policy.met_min_adherence_pct, policy.amber_band_pct
        )
        tiles.append(
            {
                "domain": domain,
                "title": HEADLINE_TITLES.get(domain, domain),
                "status": status,
                "status_label": RAG_LABELS[status],
                "headline": _headline(totals["achieved"], totals["denominator"]),
                "achieved": format_count(totals["achieved"]),
                "denominator": format_count(totals["denominator"]),
                "breached": format_count(totals["breached"]),
                "rules": totals["rules"],
                "change": changes.get(domain),
                "longer_changes": longer.get(domain, []),
            }
        )
    return tiles


# --------------------------------------------------------------------------------------------------------------
# Charts (each returns Markup or None for "no data")
# --------------------------------------------------------------------------------------------------------------


def _trend_chart(data: DashboardData) -> Markup | None:
    """Monthly adherence per rule; a dropdown shows another domain, or one rule split by segment."""

    met_min = data.policy.met_min_adherence_pct
    series: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in frame_rows(data.monthly):
        period = cell_text(row.get("period"))
        if not period or period == "all" or not _denominator(row):  # a month without a verdict has no point
            continue
        rule_id, segment = cell_text(row.get("rule_id")), cell_text(row.get("segment")) or "all"
        series.setdefault(rule_id, {}).setdefault(segment, []).append(row)
    rules = _rule_order(data.policy, list(series))
    if not rules:
        return None
    domains = list(dict.fromkeys(_domain_of(data.policy, rule_id) for rule_id in rules))
    shown_domain = domains[0]  # the first domain of the policy (tickets): a readable number of lines at first sight
    # the traces as plain dicts, given to the figure together: plotly validates a trace object again when a figure
    # takes it, and every trace of the figure again at each add_trace (a year of segment lines: hundreds)
    traces: list[dict[str, Any]] = []
    groups: list[tuple[str, str]] = []  # (rule_id, segment) per trace, in trace order
    for index, rule_id in enumerate(rules):
        segments = sorted(series[rule_id], key=lambda segment: (segment != "all", segment))
        for position, segment in enumerate(segments):
            points = sorted(series[rule_id][segment], key=lambda row: cell_text(row.get("period")))
            name = rule_id if segment == "all" else f"{rule_id} {_segment_label(segment)}"
            traces.append(
                dict(
                    type="scatter",
                    x=[chart_text(row.get("period")) for row in points],
                    y=[_adherence(row) for row in points],
                    customdata=[[format_count(row.get("achieved")), format_count(_denominator(row))] for row in points],
                    name=chart_text(name),
                    meta=[chart_text(rule_id), chart_text(segment)],  # what the page's filters recompute
                    mode="lines+markers",
                    # the overall line in the rule's colour; its segments in further colours, dotted
                    line={"color": _color(index + position), "dash": "solid" if segment == "all" else "dot"},
                    visible=segment == "all" and _domain_of(data.policy, rule_id) == shown_domain,
                    hovertemplate=(
                        f"{chart_text(name)}<br>%{{x}}: %{{y:.1f}}% (%{{customdata[0]}} / %{{customdata[1]}})"
                        "<extra></extra>"
                    ),
                )
            )
            groups.append((rule_id, segment))
    fig = new_figure(traces)
    base_layout(
        fig, "Adherence per rule by month of the clock start (UTC): achieved / (achieved + breached)", "adherence %"
    )
    fig.update_yaxes(range=[0, 102])
    fig.update_xaxes(type="category")
    _threshold_line(fig, met_min)
    split_rules = [rule_id for rule_id in rules if any(seg != "all" for seg in series[rule_id])]
    if split_rules or len(domains) > 1:
        buttons = [
            {
                "label": chart_text(f"{DOMAIN_LABELS.get(domain, domain or 'other')}: every rule"),
                "method": "update",
                "args": [
                    {
                        "visible": [
                            segment == "all" and _domain_of(data.policy, owner) == domain for owner, segment in groups
                        ]
                    }
                ],
            }
            for domain in domains
        ]
        buttons.append(
            {
                "label": "All rules (overall)",
                "method": "update",
                "args": [{"visible": [segment == "all" for _, segment in groups]}],
            }
        )
        for rule_id in split_rules:
            buttons.append(
                {
                    "label": chart_text(f"{rule_id} by segment"),
                    "method": "update",
                    "args": [{"visible": [owner == rule_id for owner, _ in groups]}],
                }
            )
        add_dropdown(fig, buttons, 0)
    return chart_html(fig, "chart-trend")


def _threshold_line(fig: go.Figure, met_min: float) -> None:
    """The dotted line at the adherence a rule is met at."""
    fig.add_hline(
        y=met_min,
        line_dash="dot",
        line_color=THRESHOLD_COLOR,
        annotation_text=f"met at ≥ {met_min:g}%",
        annotation_position="top left",
    )


def _is_response_time(policy: Policy, rule_id: str) -> bool:
    try:
        rule = policy.rule(rule_id)
    except KeyError:
        return False
    return rule.domain in RESPONSE_TIME_DOMAINS and rule.kind not in LONGER_IS_BETTER_KINDS


def _response_chart(data: DashboardData) -> Markup | None:
    """Median and p90 per rule as % of the rule's target (100% = target); a dropdown picks the period."""

    targets_by_rule = {
        rule_id: seconds for rule_id, seconds in (data.targets or {}).items() if _is_response_time(data.policy, rule_id)
    }
    by_period: dict[str, dict[str, dict[str, Any]]] = {}
    for row in frame_rows(data.monthly):
        if (cell_text(row.get("segment")) or "all") != "all":
            continue
        rule_id, period = cell_text(row.get("rule_id")), cell_text(row.get("period"))
        target = _float(targets_by_rule.get(rule_id))
        if not period or not target or target <= 0:
            continue
        if _float(row.get("median_seconds")) is None and _float(row.get("p90_seconds")) is None:
            continue
        by_period.setdefault(period, {}).setdefault(rule_id, row)
    if not by_period:
        return None
    periods = sorted(by_period, key=lambda period: (period != "all", period))
    default = "all" if "all" in by_period else periods[-1]
    traces: list[dict[str, Any]] = []  # plain dicts given to the figure together (see `_trend_chart`)
    owners: list[str] = []
    for period in periods:
        rules = _rule_order(data.policy, list(by_period[period]))
        for key, label, color in (
            ("median_seconds", "median", SERIES_COLORS[0]),
            ("p90_seconds", "p90", SERIES_COLORS[1]),
        ):
            values = [_float(by_period[period][rule_id].get(key)) for rule_id in rules]
            targets = [float(targets_by_rule[rule_id]) for rule_id in rules]
            traces.append(
                dict(
                    type="bar",
                    # horizontal bars: one row per rule stays readable with two dozen rules
                    y=[chart_text(rule_id) for rule_id in rules],
                    x=[
                        None if value is None else round(100.0 * value / target, 2)
                        for value, target in zip(values, targets, strict=False)
                    ],
                    orientation="h",
                    text=[
                        _duration_text(data.policy, rule_id, value)
                        for rule_id, value in zip(rules, values, strict=False)
                    ],
                    textposition="outside",
                    cliponaxis=False,
                    customdata=[
                        [_duration_text(data.policy, rule_id, value), _target_text(data.policy, rule_id, target)]
                        for rule_id, value, target in zip(rules, values, targets, strict=False)
                    ],
                    name=label,
                    marker={"color": color},  # nested: in a dict, marker_color would be written last
                    visible=period == default,
                    hovertemplate=(
                        f"%{{y}} ({chart_text(period if period != 'all' else 'whole period')})<br>"
                        f"{label}: %{{customdata[0]}} = %{{x:.0f}}% of the target %{{customdata[1]}}<extra></extra>"
                    ),
                )
            )
            owners.append(period)
    fig = new_figure(traces)
    rows_shown = max(len(rules_of_period) for rules_of_period in by_period.values())
    title = "Median and p90 response time per rule, as % of its target (100% = target)"
    base_layout(fig, title, "")
    fig.update_layout(barmode="group", height=max(360, 110 + 34 * rows_shown), bargap=0.25)
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(ticksuffix="%", rangemode="tozero")
    fig.add_vline(x=100, line_dash="dash", line_color=CHART_COLORS["breached"], annotation_text="target")
    if len(periods) > 1:
        buttons = [
            {
                "label": chart_text("whole period" if period == "all" else period),
                "method": "update",
                "args": [{"visible": [owner == period for owner in owners]}],
            }
            for period in periods
        ]
        add_dropdown(fig, buttons, periods.index(default))
    return chart_html(fig, "chart-response")


def _heatmap_chart(data: DashboardData) -> Markup | None:
    import plotly.graph_objects as go

    grid = [[0 for _ in range(24)] for _ in range(7)]
    seen = False
    for row in frame_rows(data.breaches_by_hour):
        weekday, hour, count = (
            _int_or_none(row.get("weekday")),
            _int_or_none(row.get("hour")),
            _int_or_none(row.get("breaches")),
        )
        if weekday is None or hour is None or count is None or not 1 <= weekday <= 7 or not 0 <= hour <= 23:
            continue
        grid[weekday - 1][hour] += count
        seen = True
    if not seen:
        return None
    fig = new_figure(
        go.Heatmap(
            z=grid,
            x=[f"{hour:02d}:00" for hour in range(24)],
            y=list(WEEKDAYS),
            # one hue from white to vermillion (readable without red/green vision), and the count in each cell
            colorscale=[[0.0, "#ffffff"], [0.15, "#fbe1d0"], [1.0, "#a04000"]],
            texttemplate="%{z}",
            textfont={"size": 9},
            zmin=0,
            colorbar={"title": {"text": "breaches"}},
            hovertemplate=f"%{{y}} %{{x}} {chart_text(data.heatmap_zone)}: %{{z:,}} breached<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    zone = chart_text(data.heatmap_zone)
    base_layout(fig, f"Breached ticket clocks by weekday and hour of the clock start ({zone})", "")
    fig.update_layout(height=320)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", title=f"hour of day ({zone}, the support calendar's zone)")
    return chart_html(fig, "chart-heatmap")


def _incidents_chart(data: DashboardData) -> tuple[Markup | None, list[dict[str, Any]]]:
    import plotly.graph_objects as go

    rows = [
        row
        for row in frame_rows(data.incident_response)
        if cell_text(row.get("period")) == "all" and cell_text(row.get("severity")) not in ("", "all")
    ]
    rows.sort(key=lambda row: cell_text(row.get("severity")))
    table = [
        {
            "severity": cell_text(row.get("severity")),
            "incidents": format_count(row.get("incidents")),
            "acknowledged": format_count(row.get("acknowledged")),
            "resolved": format_count(row.get("resolved")),
            "mtta": human_duration(row.get("mtta_mean_seconds")),
            "mttr": human_duration(row.get("mttr_mean_seconds")),
        }
        for row in rows
    ]
    values = [_float(row.get(key)) for row in rows for key in ("mtta_mean_seconds", "mttr_mean_seconds")]
    measured = [value for value in values if value is not None]
    if not measured:
        return None, table
    unit, size = _duration_unit(max(measured))
    fig = new_figure()
    severities = [chart_text(row.get("severity")) for row in rows]
    for key, count_key, label, color in (
        ("mtta_mean_seconds", "acknowledged", "MTTA (mean time to acknowledge)", SERIES_COLORS[0]),
        ("mttr_mean_seconds", "resolved", "MTTR (mean time to resolve)", SERIES_COLORS[1]),
    ):
        seconds = [_float(row.get(key)) for row in rows]
        fig.add_trace(
            go.Bar(
                x=severities,
                y=[None if value is None else round(value / size, 3) for value in seconds],
                text=[human_duration(value) for value in seconds],
                textposition="outside",
                customdata=[
                    [human_duration(value), format_count(row.get(count_key)), format_count(row.get("incidents"))]
                    for value, row in zip(seconds, rows, strict=False)
                ],
                name=label,
                marker_color=color,
                hovertemplate=(
                    f"severity %{{x}}<br>{label.split(' ')[0]}: %{{customdata[0]}} "
                    "(%{customdata[1]} of %{customdata[2]} incidents)<extra></extra>"
                ),
            )
        )
    base_layout(fig, "Incidents: mean time to acknowledge and to resolve, per severity", unit)
    fig.update_layout(barmode="group", uniformtext={"minsize": 9, "mode": "hide"})
    fig.update_xaxes(type="category")
    return chart_html(fig, "chart-incidents"), table


def _privacy_chart(data: DashboardData) -> Markup | None:
    import plotly.graph_objects as go

    met_min = data.policy.met_min_adherence_pct
    series: dict[str, list[dict[str, Any]]] = {}
    for row in frame_rows(data.privacy_on_time):
        period = cell_text(row.get("period"))
        if not period or period == "all" or not _denominator(row):
            continue
        series.setdefault(cell_text(row.get("rule_id")), []).append(row)
    rules = _rule_order(data.policy, list(series))
    if not rules:
        return None
    fig = new_figure()
    for index, rule_id in enumerate(rules):
        points = sorted(series[rule_id], key=lambda row: cell_text(row.get("period")))
        fig.add_trace(
            go.Bar(
                x=[chart_text(row.get("period")) for row in points],
                y=[_adherence(row) for row in points],
                text=[f"{format_count(row.get('achieved'))} / {format_count(_denominator(row))}" for row in points],
                # inside the bar end: outside labels would collide with the threshold line near 100%
                textposition="inside",
                insidetextanchor="end",
                textangle=0,
                name=chart_text(rule_id),
                marker_color=_color(index),
                hovertemplate=f"{chart_text(rule_id)} %{{x}}: %{{y:.1f}}% on time (%{{text}})<extra></extra>",
            )
        )
    base_layout(
        fig, "Privacy requests handled on time, by month of receipt (UTC): on time / (on time + late)", "on time %"
    )
    fig.update_layout(barmode="group", uniformtext={"minsize": 9, "mode": "hide"})
    fig.update_yaxes(range=[0, 108])
    fig.update_xaxes(type="category")
    _threshold_line(fig, met_min)
    return chart_html(fig, "chart-privacy")


def _volume_chart(data: DashboardData) -> Markup | None:
    """Tickets created per month (bars) and the open backlog at each month's end (line)."""
    import plotly.graph_objects as go

    rows = sorted(frame_rows(data.ticket_volume), key=lambda row: cell_text(row.get("period")))
    if not rows:
        return None
    months = [chart_text(row.get("period")) for row in rows]
    fig = new_figure()
    fig.add_trace(
        go.Bar(
            x=months,
            y=[_int_or_none(row.get("created")) for row in rows],
            name="tickets created",
            marker_color=SERIES_COLORS[5],
            hovertemplate="%{x}: %{y:,} tickets created<extra></extra>",
        )
    )
    if any(row.get("open_at_month_end") is not None for row in rows):
        fig.add_trace(
            go.Scatter(
                x=months,
                y=[_int_or_none(row.get("open_at_month_end")) for row in rows],
                name="open at the month's end",
                mode="lines+markers",
                marker_symbol="diamond",
                line={"color": SERIES_COLORS[0]},
                hovertemplate="end of %{x}: %{y:,} tickets open<extra></extra>",
            )
        )
    base_layout(fig, "Tickets created per month and open backlog at each month's end (UTC)", "tickets")
    fig.update_xaxes(type="category")
    return chart_html(fig, "chart-volume")


def _resolution_chart(data: DashboardData) -> Markup | None:
    """Median, p90 and p95 ticket resolution time by month of creation (exact quantiles from the warehouse)."""
    import plotly.graph_objects as go

    rows = sorted(
        (row for row in frame_rows(data.resolution_times) if cell_text(row.get("period")) not in ("", "all")),
        key=lambda row: cell_text(row.get("period")),
    )
    measured = [
        value
        for row in rows
        for key in ("median_seconds", "p90_seconds", "p95_seconds")
        if (value := _float(row.get(key))) is not None
    ]
    if not measured:
        return None
    unit, size = _duration_unit(max(measured))
    fig = new_figure()
    months = [chart_text(row.get("period")) for row in rows]
    for index, (key, label, symbol) in enumerate(
        (
            ("median_seconds", "median", "circle"),
            ("p90_seconds", "p90", "square"),
            ("p95_seconds", "p95", "triangle-up"),
        )
    ):
        seconds = [_float(row.get(key)) for row in rows]
        fig.add_trace(
            go.Scatter(
                x=months,
                y=[None if value is None else round(value / size, 3) for value in seconds],
                customdata=[
                    [human_duration(value), format_count(row.get("count"))]
                    for value, row in zip(seconds, rows, strict=False)
                ],
                name=label,
                mode="lines+markers",
                marker_symbol=symbol,
                line={"color": SERIES_COLORS[index], "dash": ("solid", "dash", "dot")[index]},
                hovertemplate=f"%{{x}} {label}: %{{customdata[0]}} (%{{customdata[1]}} resolved tickets)<extra></extra>",
            )
        )
    base_layout(fig, "Ticket resolution time by month of creation: median, p90, p95 (wall-clock time)", unit)
    fig.update_xaxes(type="category")
    fig.update_yaxes(rangemode="tozero")
    return chart_html(fig, "chart-resolution")


def _causes_chart(data: DashboardData) -> Markup | None:
    """Per commitment, its breaches stacked by cause (violations.cause): the "why" behind each red tile."""
    import plotly.graph_objects as go

    counts: dict[str, dict[str, int]] = {}
    for row in frame_rows(data.breach_causes):
        count = _int_or_none(row.get("breaches"))
        if count:
            by_cause = counts.setdefault(cell_text(row.get("rule_id")), {})
            cause = cell_text(row.get("cause")) or "unknown"
            by_cause[cause] = by_cause.get(cause, 0) + count
    if not counts:
        return None
    rules = _rule_order(data.policy, list(counts))
    causes = sorted(
        {cause for by_cause in counts.values() for cause in by_cause},
        key=lambda cause: (-sum(by_cause.get(cause, 0) for by_cause in counts.values()), cause),
    )
    fig = new_figure()
    for index, cause in enumerate(causes):
        label = CAUSE_WORDS.get(cause, cause)
        values = [counts[rule_id].get(cause) for rule_id in rules]
        fig.add_trace(
            go.Bar(
                y=[chart_text(rule_id) for rule_id in rules],
                x=values,
                orientation="h",
                name=chart_text(label),
                meta=chart_text(cause),  # what the page's filters recount
                marker_color=_color(index),
                # a pattern as well as a colour: causes stay apart in grey print and for colour-blind readers
                marker_pattern_shape=("", "/", ".", "x", "\\", "+", "-", "|")[index % 8],
                text=[format_count(value) if value else "" for value in values],
                textposition="inside",
                hovertemplate=f"%{{y}}: %{{x:,}} {chart_text(label)}<extra></extra>",
            )
        )
    base_layout(fig, "Breaches per commitment by cause", "")
    fig.update_layout(
        barmode="stack", height=max(320, 120 + 28 * len(rules)), uniformtext={"minsize": 8, "mode": "hide"}
    )
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(title="breached items", rangemode="tozero")
    return chart_html(fig, "chart-causes")


# --------------------------------------------------------------------------------------------------------------
# Filters: the counts the page recomputes its figures from, embedded in the page
# --------------------------------------------------------------------------------------------------------------

FILTER_DIMENSIONS = ("channel", "tier", "plan")
# Thresholds travel to the page in thousandths of a percent, so that the page compares integers exactly.
THRESHOLD_SCALE = 1000


def _segment_parts(segment: str) -> dict[str, str] | None:
    """``channel=a;tier=b;plan=c`` -> its three values; None for any other segment (``all``, ``request_type=..``,
    the ``plan=unknown`` roll-up): only a full channel x tier x plan cell can be summed under any filter."""
    parts = dict(part.split("=", 1) for part in segment.split(";") if "=" in part)
    return parts if set(parts) == set(FILTER_DIMENSIONS) else None


def filter_payload(data: DashboardData) -> dict[str, Any]:
    """What the page's filters need: per rule x month the overall counts (``totals``) and per rule x month x
    channel x tier x plan the counts of each cell (``cells``). Adherence under a filter is the sum of the achieved
    over the sum of achieved + breached of the matching rows; quantiles cannot be combined from counts, so the
    time charts stay on all data and say so."""
    totals: list[list[Any]] = []
    cells: list[list[Any]] = []
    split_rules: set[str] = set()
    months: set[str] = set()
    values: dict[str, set[str]] = {dimension: set() for dimension in FILTER_DIMENSIONS}
    for row in frame_rows(data.monthly):
        period, rule_id = cell_text(row.get("period")), cell_text(row.get("rule_id"))
        if not period or period == "all":
            continue
        achieved, breached = _int_or_none(row.get("achieved")) or 0, _int_or_none(row.get("breached")) or 0
        segment = cell_text(row.get("segment")) or "all"
        if segment == "all":
            totals.append([rule_id, period, achieved, breached])
            months.add(period)
            continue
        parts = _segment_parts(segment)
        if parts is None:
            continue
        split_rules.add(rule_id)
        for dimension in FILTER_DIMENSIONS:
            values[dimension].add(parts[dimension])
        cells.append([rule_id, period, *(parts[dimension] for dimension in FILTER_DIMENSIONS), achieved, breached])
    totals.sort()
    cells.sort()
    causes = []
    for row in frame_rows(data.breach_causes):
        parts = _segment_parts(cell_text(row.get("segment")))
        period = cell_text(row.get("period")) or None
        causes.append(
            [
                cell_text(row.get("rule_id")),
                cell_text(row.get("cause")) or "unknown",
                period,
                *(parts[dimension] if parts else None for dimension in FILTER_DIMENSIONS),
                _int_or_none(row.get("breaches")) or 0,
            ]
        )
    causes.sort(key=lambda row: [cell_text(value) for value in row])
    return {
        # rule, cause, month, channel, tier, plan, breaches (month and segment NULL outside ticket clocks)
        "causes": causes,
        "months": sorted(months),
        "dimensions": {dimension: sorted(values[dimension]) for dimension in FILTER_DIMENSIONS},
        "rules": {
            rule_id: {"domain": _domain_of(data.policy, rule_id), "split": rule_id in split_rules}
            for rule_id in _rule_order(data.policy, [row[0] for row in totals])
        },
        "totals": totals,
        "cells": cells,
        "threshold_milli": int(_exact(data.policy.met_min_adherence_pct) * THRESHOLD_SCALE),
        "band_milli": int(_exact(data.policy.amber_band_pct) * THRESHOLD_SCALE),
        "report": REPORT_FILE,
    }


def embedded_json(payload: Any) -> Markup:
    """JSON for a ``<script type="application/json">``: ``<``, ``>`` and ``&`` as ``\\u`` escapes, so that no value
    can end the element (``</script>``) or open a comment; JSON.parse reads them back as the characters."""
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


# --------------------------------------------------------------------------------------------------------------
# Page
# --------------------------------------------------------------------------------------------------------------


def build_context(data: DashboardData) -> dict[str, Any]:
    """Everything the template shows, as plain values (strings escaped by the template, charts as Markup)."""
    policy = data.policy
    tiles = _kpi_tiles(data)
    counts = {status: 0 for status in RAG_LABELS}
    for tile in tiles:
        counts[tile["status"]] += 1
    at_risk, at_risk_total = at_risk_rows(data.at_risk, AT_RISK_LIMIT, data.at_risk_total)
    incidents_chart, incidents_table = _incidents_chart(data)
    met_min = policy.met_min_adherence_pct
    return {
        "policy_title": policy.title,
        "profile": policy.profile,
        "met_min": f"{met_min:g}",
        "amber_min": f"{max(0.0, met_min - policy.amber_band_pct):g}",
        "run_id": cell_text(data.run_id) or "—",
        "as_of": format_timestamp(data.as_of),
        "period": cell_text(data.period),
        "policy_version": cell_text(", ".join(data.policy_versions) or policy.version),
        "generated_at": format_timestamp(data.generated_at),
        "tiles": tiles,
        "headline_tiles": _headline_tiles(data),
        "status_counts": counts,
        "status_labels": RAG_LABELS,
        "trend_chart": _trend_chart(data),
        "response_chart": _response_chart(data),
        "heatmap_chart": _heatmap_chart(data),
        "at_risk": at_risk,
        "at_risk_total": at_risk_total,
        # the domains of the rows shown, in the order of the domain registry, for the at-risk table's filter
        "at_risk_domains": [domain for domain in DOMAINS if any(row["domain"] == domain for row in at_risk)]
        + sorted({row["domain"] for row in at_risk} - set(DOMAINS)),
        "incidents_chart": incidents_chart,
        "incidents": incidents_table,
        "privacy_chart": _privacy_chart(data),
        "volume_chart": _volume_chart(data),
        "resolution_chart": _resolution_chart(data),
        "causes_chart": _causes_chart(data),
        "heatmap_zone": data.heatmap_zone,
        "filter_data": embedded_json(filter_payload(data)),
        "report_href": REPORT_FILE,
        "plotlyjs": plotly_js(),  # the library itself, never data
    }


def render_sla_dashboard(data: DashboardData) -> str:
    """The whole HTML document."""
    return template_environment().get_template(TEMPLATE_NAME).render(**build_context(data))
